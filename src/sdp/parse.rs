//! The line-preserving parser. The body is kept as received; each line is recorded
//! as a byte range plus the role it plays for the rewriter, and the typed views
//! are filled in on the way. A body that does not parse is refused as a whole.

use std::ops::Range;

use super::error::SdpError;
use super::parser::{split_lines, Parser};
use super::types::{Connection, Direction, Ice, Media, Origin};

/// Size bounds applied while parsing, so a hostile body costs bounded work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest body in bytes.
    pub max_size: usize,
    /// Most lines.
    pub max_lines: usize,
    /// Most media sections.
    pub max_media: usize,
    /// Most formats on one `m=` line.
    pub max_formats: usize,
}

impl Default for Limits {
    /// Generous for real offers (WebRTC bundles with many candidates fit easily),
    /// small enough that one body cannot cost much.
    fn default() -> Self {
        Limits {
            max_size: 64 * 1024,
            max_lines: 1024,
            max_media: 64,
            max_formats: 128,
        }
    }
}

impl Limits {
    /// No bound beyond memory: used to re-read sipveil's own output, which is never
    /// larger than an input that already passed the caller's limits.
    pub(crate) const UNBOUNDED: Limits = Limits {
        max_size: usize::MAX,
        max_lines: usize::MAX,
        max_media: usize::MAX,
        max_formats: usize::MAX,
    };
}

/// What a line is to the rewriter; everything `Other` is copied byte for byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Other,
    Origin,
    Connection,
    Media,
    Rtcp,
    Direction,
    /// Any ICE attribute (candidate, ufrag, pwd, options, lite, ...).
    Ice,
    /// An attribute that belongs to one format (rtpmap, fmtp, rtcp-fb).
    FormatAttr(String),
}

/// One line of the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Line {
    /// The text between the start of the line and its ending.
    pub text: Range<usize>,
    /// The line ending (`\r\n`, `\n`, or empty for a last line without one).
    pub ending: Range<usize>,
    pub role: Role,
    /// The media section it belongs to; `None` at session level.
    pub section: Option<usize>,
}

/// Session-level state the views expose.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Session {
    pub connections: Vec<Connection>,
    pub direction: Option<Direction>,
    pub ice: Ice,
}

/// A parsed SDP body: the bytes as received, the lines, and typed views of the
/// parts sipveil reads. Built only by [`Sdp::parse`], so a value of this type is
/// always a body that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sdp {
    pub(crate) raw: Vec<u8>,
    pub(crate) lines: Vec<Line>,
    /// Trailing blank lines (some UAs end with an extra CRLF), kept verbatim.
    pub(crate) tail: Range<usize>,
    pub(crate) origin: Origin,
    pub(crate) session: Session,
    pub(crate) media: Vec<Media>,
}

impl Sdp {
    /// Parses a body under the default [`Limits`].
    pub fn parse(body: &[u8]) -> Result<Sdp, SdpError> {
        Sdp::parse_with(body, &Limits::default())
    }

    /// Parses a body under explicit limits.
    pub fn parse_with(body: &[u8], limits: &Limits) -> Result<Sdp, SdpError> {
        if body.len() > limits.max_size {
            return Err(SdpError::TooLarge(format!(
                "{} bytes, limit {}",
                body.len(),
                limits.max_size
            )));
        }
        let (spans, tail) = split_lines(body, limits)?;
        let mut p = Parser::new(body, limits, spans.len());
        for (index, (text, ending)) in spans.into_iter().enumerate() {
            p.line(index, text, ending)?;
        }
        p.finish(body, tail)
    }

    /// The body exactly as received.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The `o=` line.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The session-level `c=` (the first, if a peer sent several).
    pub fn session_connection(&self) -> Option<&Connection> {
        self.session.connections.first()
    }

    /// The session-level direction attribute, the default for every section.
    pub fn session_direction(&self) -> Option<Direction> {
        self.session.direction
    }

    /// Session-level ICE attributes.
    pub fn session_ice(&self) -> &Ice {
        &self.session.ice
    }

    /// The media sections, in order; indexes here are the indexes a
    /// [`super::RewritePlan`] uses.
    pub fn media(&self) -> &[Media] {
        &self.media
    }

    /// The connection that applies to section `index`: its own first `c=`, else the
    /// session's.
    pub fn connection_for(&self, index: usize) -> Option<&Connection> {
        self.media
            .get(index)
            .and_then(Media::connection)
            .or_else(|| self.session_connection())
    }

    /// The direction that applies to section `index` as written: its own attribute,
    /// else the session's, else sendrecv. A `c=0.0.0.0` hold is not folded in here;
    /// see [`Sdp::media_targets`].
    pub fn direction_for(&self, index: usize) -> Direction {
        self.media
            .get(index)
            .and_then(|m| m.direction)
            .or(self.session.direction)
            .unwrap_or(Direction::SendRecv)
    }

    /// The text of line `line` (without its ending).
    pub(crate) fn text(&self, line: &Line) -> &[u8] {
        self.raw.get(line.text.clone()).unwrap_or_default()
    }

    /// The ending of line `line`.
    pub(crate) fn ending(&self, line: &Line) -> &[u8] {
        self.raw.get(line.ending.clone()).unwrap_or_default()
    }
}
