//! Typed views of the SDP lines sipveil reads or rewrites. They are copies made at
//! parse time; the body itself stays as received in [`super::Sdp`], so a view can
//! never drift from the bytes that are sent on.

use std::fmt;
use std::net::IpAddr;
use std::ops::Range;

/// The `o=` line (RFC 4566 §5.2). The rewriter replaces its address, because the
/// originator's address is the inside topology, and owns sess-id and version per leg.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// `<username>`; `-` when the originator has none.
    pub username: String,
    /// `<sess-id>`, a numeric string, kept as text because peers exceed u64 at times.
    pub sess_id: String,
    /// `<sess-version>`, kept as text for the same reason.
    pub sess_version: String,
    /// `<nettype>`, normally `IN`.
    pub nettype: String,
    /// `<addrtype>`, normally `IP4` or `IP6`.
    pub addrtype: String,
    /// `<unicast-address>`: an address or a host name.
    pub address: String,
}

/// A `c=` line (RFC 4566 §5.7), at session or media level, or the address part of
/// an `a=rtcp` attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    /// `<nettype>`, normally `IN`.
    pub nettype: String,
    /// `<addrtype>`, normally `IP4` or `IP6`.
    pub addrtype: String,
    /// The address or host name, without a multicast `/ttl/count` suffix.
    pub address: String,
    /// The address as an IP literal, when it is one; `None` for a host name.
    pub ip: Option<IpAddr>,
}

impl Connection {
    /// True for `0.0.0.0` (and `::`): the RFC 2543 way of putting a stream on hold,
    /// which the rewriter must carry through rather than replace by a live address.
    pub fn is_hold(&self) -> bool {
        self.ip.is_some_and(|ip| ip.is_unspecified())
    }
}

/// The media type of an `m=` line. Unknown types are kept by name so that their
/// sections survive rewriting untouched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaKind {
    /// `audio`
    Audio,
    /// `video`
    Video,
    /// `image`, in practice T.38 fax over UDPTL
    Image,
    /// `application`, e.g. BFCP or data channels
    Application,
    /// `text`, real-time text (T.140)
    Text,
    /// `message`, MSRP
    Message,
    /// any other token, as received
    Other(String),
}

impl MediaKind {
    /// Classifies a media token; SDP tokens are case-sensitive but peers vary.
    pub fn from_token(token: &str) -> MediaKind {
        const KNOWN: [(&str, MediaKind); 6] = [
            ("audio", MediaKind::Audio),
            ("video", MediaKind::Video),
            ("image", MediaKind::Image),
            ("application", MediaKind::Application),
            ("text", MediaKind::Text),
            ("message", MediaKind::Message),
        ];
        KNOWN
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(token))
            .map_or_else(|| MediaKind::Other(token.to_owned()), |(_, k)| k.clone())
    }

    /// The token as SDP spells it.
    pub fn as_str(&self) -> &str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Image => "image",
            MediaKind::Application => "application",
            MediaKind::Text => "text",
            MediaKind::Message => "message",
            MediaKind::Other(s) => s,
        }
    }
}

/// A direction attribute (RFC 3264 §5.1, §8.4): what the sender of the SDP is
/// willing to do; the relay and hold handling read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `a=sendrecv`, the default when none is given
    SendRecv,
    /// `a=sendonly`, typically "I put you on hold"
    SendOnly,
    /// `a=recvonly`
    RecvOnly,
    /// `a=inactive`
    Inactive,
}

impl Direction {
    /// Parses an attribute name; `None` if it is not a direction.
    pub fn from_attribute(name: &str) -> Option<Direction> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| d.as_str().eq_ignore_ascii_case(name))
    }

    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// This direction with receiving taken away: what a `c=0.0.0.0` hold means
    /// ("do not send to me") expressed as a direction attribute.
    pub fn without_recv(self) -> Direction {
        match self {
            Direction::SendRecv | Direction::SendOnly => Direction::SendOnly,
            Direction::RecvOnly | Direction::Inactive => Direction::Inactive,
        }
    }

    /// True if the sender of the SDP wants to receive media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// True if the sender of the SDP will send media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `a=rtcp:<port> [<nettype> <addrtype> <address>]` (RFC 3605): where the far side
/// wants RTCP when it is not on port+1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rtcp {
    /// The RTCP port.
    pub port: u16,
    /// The RTCP address, when it differs from the media's `c=`.
    pub connection: Option<Connection>,
}

/// `a=rtpmap:<pt> <encoding>/<clock rate>[/<parameters>]`: names a payload type,
/// which the codec policy matches on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RtpMap {
    /// The payload type number, 0..=127.
    pub payload_type: u8,
    /// The encoding name as received (compare case-insensitively).
    pub encoding: String,
    /// The clock rate in Hz.
    pub clock_rate: u32,
    /// Encoding parameters (channels for audio), as received.
    pub params: Option<String>,
}

/// `a=fmtp:<format> <parameters>`, kept as text: only `apt=` of RTX is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fmtp {
    /// The format token it applies to.
    pub format: String,
    /// The parameter string, as received.
    pub params: String,
}

/// An ICE `a=candidate` (RFC 8839 §5.1). The relay anchors media, so these name
/// addresses of the far side that must not leak; they are parsed so they can be
/// recognised and, when a policy passes ICE through, inspected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// `<foundation>`
    pub foundation: String,
    /// `<component-id>`: 1 for RTP, 2 for RTCP.
    pub component: u16,
    /// `<transport>`, e.g. `UDP`.
    pub transport: String,
    /// `<priority>`
    pub priority: u32,
    /// `<connection-address>`: an IP or an mDNS host name.
    pub address: String,
    /// `<port>`
    pub port: u16,
    /// `typ <cand-type>`: host, srflx, prflx, relay.
    pub kind: String,
    /// `raddr`, if given.
    pub related_address: Option<String>,
    /// `rport`, if given.
    pub related_port: Option<u16>,
}

/// The ICE attributes of one level (session or media).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ice {
    /// `a=ice-ufrag`
    pub ufrag: Option<String>,
    /// `a=ice-pwd`
    pub pwd: Option<String>,
    /// `a=ice-options` tokens, e.g. `trickle`.
    pub options: Vec<String>,
    /// `a=ice-lite` is present.
    pub lite: bool,
    /// `a=candidate` lines.
    pub candidates: Vec<Candidate>,
    /// The value of `a=remote-candidates`, as received.
    pub remote_candidates: Option<String>,
    /// `a=end-of-candidates` is present.
    pub end_of_candidates: bool,
}

impl Ice {
    /// True if no ICE attribute is present at this level.
    pub fn is_empty(&self) -> bool {
        *self == Ice::default()
    }
}

/// One media section: the `m=` line and the lines after it up to the next `m=`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Media {
    /// The media type.
    pub kind: MediaKind,
    /// The port; 0 means the stream is rejected or disabled.
    pub port: u16,
    /// The `/<number of ports>` suffix, when given.
    pub port_count: Option<u16>,
    /// The transport protocol, e.g. `RTP/AVP`, `udptl`.
    pub proto: String,
    /// The format list in order: payload type numbers for RTP, tokens otherwise.
    pub formats: Vec<String>,
    /// Media-level `c=` lines (the first is the one that counts).
    pub connections: Vec<Connection>,
    /// `a=rtcp`, if present.
    pub rtcp: Option<Rtcp>,
    /// `a=rtcp-mux` is present.
    pub rtcp_mux: bool,
    /// The media-level direction attribute, if any (the last one wins).
    pub direction: Option<Direction>,
    /// `a=rtpmap` lines.
    pub rtpmaps: Vec<RtpMap>,
    /// `a=fmtp` lines.
    pub fmtps: Vec<Fmtp>,
    /// Media-level ICE attributes.
    pub ice: Ice,
    /// Line indexes of the section (the `m=` line first).
    pub(crate) lines: Range<usize>,
    /// Byte range of the port digits in the body.
    pub(crate) port_span: Range<usize>,
    /// Byte offset in the body where the format list starts (end of line if empty).
    pub(crate) formats_at: usize,
}

impl Media {
    /// True if the port is 0: the stream is rejected and must stay so.
    pub fn is_rejected(&self) -> bool {
        self.port == 0
    }

    /// True for RTP-based profiles (`RTP/AVP`, `RTP/SAVPF`, `UDP/TLS/RTP/SAVPF`...),
    /// whose formats are payload types.
    pub fn is_rtp(&self) -> bool {
        self.proto.to_ascii_uppercase().contains("RTP/")
    }

    /// The `a=rtpmap` for a format, if any.
    /// Matches the format token as written: `00` is not payload type 0's token, so
    /// it gets no rtpmap (the same rule decides which lines belong to a format).
    pub fn rtpmap(&self, format: &str) -> Option<&RtpMap> {
        let pt: u8 = format.parse().ok()?;
        if format.len() > 1 && format.starts_with('0') || format.starts_with('+') {
            return None;
        }
        self.rtpmaps.iter().find(|m| m.payload_type == pt)
    }

    /// The `a=fmtp` for a format, if any.
    pub fn fmtp(&self, format: &str) -> Option<&Fmtp> {
        self.fmtps.iter().find(|f| f.format == format)
    }

    /// The first media-level `c=`, which overrides the session's.
    pub fn connection(&self) -> Option<&Connection> {
        self.connections.first()
    }
}
