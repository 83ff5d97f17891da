//! The parser proper: cuts the body into lines, checks each against the grammar,
//! records its role for the rewriter and fills the typed views.

use std::ops::Range;

use super::error::{syntax, SdpError};
use super::fields;
use super::parse::{Limits, Line, Role, Sdp, Session};
use super::types::{Direction, Fmtp, Ice, Media, Origin};

pub(crate) type Spans = Vec<(Range<usize>, Range<usize>)>;

/// Cuts the body into (text, ending) ranges and finds the blank tail.
pub(crate) fn split_lines(body: &[u8], limits: &Limits) -> Result<(Spans, Range<usize>), SdpError> {
    let mut spans = Vec::new();
    let mut start = 0;
    while start < body.len() {
        if spans.len() >= limits.max_lines {
            return Err(SdpError::TooLarge(format!(
                "more than {} lines",
                limits.max_lines
            )));
        }
        let (text_end, next) = match memchr::memchr(b'\n', body.get(start..).unwrap_or_default()) {
            Some(off) => {
                let lf = start + off;
                let cr = lf > start && body.get(lf - 1) == Some(&b'\r');
                (if cr { lf - 1 } else { lf }, lf + 1)
            }
            None => (body.len(), body.len()),
        };
        spans.push((start..text_end, text_end..next));
        start = next;
    }
    let blank = |r: &Range<usize>| {
        body.get(r.clone())
            .is_some_and(|t| t.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')))
    };
    let mut keep = spans.len();
    while keep > 0 && spans.get(keep - 1).is_some_and(|(t, _)| blank(t)) {
        keep -= 1;
    }
    let tail_start = spans.get(keep).map_or(body.len(), |(t, _)| t.start);
    spans.truncate(keep);
    Ok((spans, tail_start..body.len()))
}

#[derive(Default)]
struct Seen {
    v: bool,
    s: bool,
    t: bool,
}

pub(crate) struct Parser<'a> {
    raw: &'a [u8],
    limits: &'a Limits,
    lines: Vec<Line>,
    origin: Option<Origin>,
    session: Session,
    media: Vec<Media>,
    seen: Seen,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(raw: &'a [u8], limits: &'a Limits, lines: usize) -> Parser<'a> {
        Parser {
            raw,
            limits,
            lines: Vec::with_capacity(lines),
            origin: None,
            session: Session::default(),
            media: Vec::new(),
            seen: Seen::default(),
        }
    }

    pub(crate) fn line(
        &mut self,
        index: usize,
        text: Range<usize>,
        ending: Range<usize>,
    ) -> Result<(), SdpError> {
        let n = index + 1;
        let bytes = self.raw.get(text.clone()).unwrap_or_default();
        let (kind, value) = match bytes {
            [k, b'=', value @ ..] if k.is_ascii_alphabetic() => (*k, value),
            _ => return Err(syntax(n, "line is not of the form x=value")),
        };
        let value_at = text.start + 2;
        let section = self.media.len().checked_sub(1);
        let role = match kind {
            b'm' => self.media_line(n, index, value, value_at)?,
            b'v' if section.is_none() => {
                if utf8(value, n, "v=")?.trim() != "0" {
                    return Err(syntax(n, "v= is not 0"));
                }
                self.seen.v = true;
                Role::Other
            }
            b's' if section.is_none() => {
                self.seen.s = true;
                Role::Other
            }
            b't' if section.is_none() => {
                self.seen.t = true;
                Role::Other
            }
            b'o' => {
                if section.is_some() {
                    return Err(syntax(n, "o= line inside a media section"));
                }
                if self.origin.is_some() {
                    return Err(syntax(n, "second o= line"));
                }
                self.origin = Some(fields::origin(utf8(value, n, "o=")?, n)?);
                Role::Origin
            }
            b'c' => {
                let c = fields::connection_line(utf8(value, n, "c=")?, n)?;
                match self.media.last_mut() {
                    Some(m) => m.connections.push(c),
                    None => self.session.connections.push(c),
                }
                Role::Connection
            }
            b'a' => self.attribute(n, value)?,
            _ => Role::Other,
        };
        self.lines.push(Line {
            text,
            ending,
            role,
            section: self.media.len().checked_sub(1),
        });
        if let Some(m) = self.media.last_mut() {
            m.lines.end = index + 1;
        }
        Ok(())
    }

    fn media_line(
        &mut self,
        n: usize,
        index: usize,
        value: &[u8],
        value_at: usize,
    ) -> Result<Role, SdpError> {
        if self.media.len() >= self.limits.max_media {
            return Err(SdpError::TooLarge(format!(
                "more than {} media sections",
                self.limits.max_media
            )));
        }
        let m = fields::media(utf8(value, n, "m=")?, n, self.limits.max_formats)?;
        self.media.push(Media {
            kind: m.kind,
            port: m.port,
            port_count: m.port_count,
            proto: m.proto,
            formats: m.formats,
            connections: Vec::new(),
            rtcp: None,
            rtcp_mux: false,
            direction: None,
            rtpmaps: Vec::new(),
            fmtps: Vec::new(),
            ice: Ice::default(),
            lines: index..index + 1,
            port_span: value_at + m.port_span.start..value_at + m.port_span.end,
            formats_at: value_at + m.formats_at,
        });
        Ok(Role::Media)
    }

    /// Reads an `a=` line; attributes sipveil does not know keep `Role::Other`.
    fn attribute(&mut self, n: usize, value: &[u8]) -> Result<Role, SdpError> {
        let (name, arg) = match memchr::memchr(b':', value) {
            Some(i) => (value.get(..i).unwrap_or_default(), value.get(i + 1..)),
            None => (value, None),
        };
        let Ok(name) = std::str::from_utf8(name) else {
            return Ok(Role::Other);
        };
        let name = name.to_ascii_lowercase();
        let arg_text = |what: &str| utf8(arg.unwrap_or_default(), n, what);
        if let Some(d) = Direction::from_attribute(&name) {
            match self.media.last_mut() {
                Some(m) => m.direction = Some(d),
                None => self.session.direction = Some(d),
            }
            return Ok(Role::Direction);
        }
        let ice = match self.media.last_mut() {
            Some(m) => &mut m.ice,
            None => &mut self.session.ice,
        };
        match name.as_str() {
            "candidate" => ice
                .candidates
                .push(fields::candidate(arg_text("a=candidate")?, n)?),
            "ice-ufrag" => ice.ufrag = Some(arg_text("a=ice-ufrag")?.trim().to_owned()),
            "ice-pwd" => ice.pwd = Some(arg_text("a=ice-pwd")?.trim().to_owned()),
            "ice-options" => ice.options = fields::option_tokens(arg_text("a=ice-options")?),
            "ice-lite" => ice.lite = true,
            "remote-candidates" => {
                ice.remote_candidates = Some(arg_text("a=remote-candidates")?.trim().to_owned());
            }
            "end-of-candidates" => ice.end_of_candidates = true,
            "ice-mismatch" | "ice-pacing" => {}
            _ => return self.media_attribute(n, &name, arg),
        }
        Ok(Role::Ice)
    }

    /// Attributes that only mean something inside a media section.
    fn media_attribute(
        &mut self,
        n: usize,
        name: &str,
        arg: Option<&[u8]>,
    ) -> Result<Role, SdpError> {
        let Some(m) = self.media.last_mut() else {
            // a=rtcp means nothing at session level, but may still name an address.
            return Ok(if name == "rtcp" {
                Role::Rtcp
            } else {
                Role::Other
            });
        };
        let arg_text = |what: &str| utf8(arg.unwrap_or_default(), n, what);
        Ok(match name {
            "rtcp" => {
                m.rtcp = Some(fields::rtcp(arg_text("a=rtcp")?, n)?);
                Role::Rtcp
            }
            "rtcp-mux" => {
                m.rtcp_mux = true;
                Role::Other
            }
            "rtpmap" => {
                let map = fields::rtpmap(arg_text("a=rtpmap")?, n)?;
                let pt = map.payload_type.to_string();
                m.rtpmaps.push(map);
                Role::FormatAttr(pt)
            }
            "fmtp" => {
                let (format, params) = fields::fmtp(arg_text("a=fmtp")?, n)?;
                m.fmtps.push(Fmtp {
                    format: format.clone(),
                    params,
                });
                Role::FormatAttr(format)
            }
            "rtcp-fb" => match fields::tokens(arg_text("a=rtcp-fb")?).next() {
                Some((_, "*")) => Role::Other,
                Some((_, pt)) => Role::FormatAttr(pt.to_owned()),
                None => return Err(syntax(n, "a=rtcp-fb has no payload type")),
            },
            _ => Role::Other,
        })
    }

    pub(crate) fn finish(self, body: &[u8], tail: Range<usize>) -> Result<Sdp, SdpError> {
        let Some(origin) = self.origin else {
            return Err(SdpError::Missing("o= line".into()));
        };
        for (seen, what) in [
            (self.seen.v, "v="),
            (self.seen.s, "s="),
            (self.seen.t, "t="),
        ] {
            if !seen {
                return Err(SdpError::Missing(format!("{what} line")));
            }
        }
        let has_session_c = !self.session.connections.is_empty();
        for (i, m) in self.media.iter().enumerate() {
            if !m.is_rejected() && !has_session_c && m.connections.is_empty() {
                return Err(SdpError::Missing(format!(
                    "c= line for media section {i} (and none at session level)"
                )));
            }
        }
        Ok(Sdp {
            raw: body.to_vec(),
            lines: self.lines,
            tail,
            origin,
            session: self.session,
            media: self.media,
        })
    }
}

/// The value of a line sipveil must read, as text.
fn utf8<'a>(value: &'a [u8], n: usize, what: &str) -> Result<&'a str, SdpError> {
    std::str::from_utf8(value).map_err(|_| syntax(n, format!("{what} line is not UTF-8")))
}
