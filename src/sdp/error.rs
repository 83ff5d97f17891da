//! Errors of the SDP layer. Each one names the fault, so the answer to the peer
//! (400 or 488 with a Warning) says what was wrong, and none of them leaves a half
//! rewritten body behind: every operation either returns a whole body or an error.

/// What went wrong with an SDP body or with a rewrite of it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// A line does not follow the grammar; `line` counts from 1.
    #[error("SDP line {line}: {reason}")]
    Syntax {
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A mandatory session-level line is absent (`"v="`, `"o="`, `"s="`, `"t="`), or a
    /// media section has no connection address at all.
    #[error("SDP has no {0}")]
    Missing(String),
    /// The body exceeds a size bound (bytes, lines, media sections, formats).
    #[error("SDP too large: {0}")]
    TooLarge(String),
    /// The rewrite plan does not fit the body (e.g. no port for an active stream).
    /// This is sipveil's own fault, never the peer's.
    #[error("SDP rewrite plan: {0}")]
    Plan(String),
    /// The codec policy left no media section with an acceptable format.
    #[error("no acceptable codec")]
    NoAcceptableCodec,
    /// The media anchor (relay ports, rtpengine) cannot take the stream now; the
    /// request may succeed later.
    #[error("media unavailable: {0}")]
    Unavailable(String),
}

impl SdpError {
    /// The SIP status that answers a request carrying this SDP: 488 Not Acceptable
    /// Here when the codec policy refuses everything, 500 for our own plan faults,
    /// 503 when the media anchor is out of ports or unreachable, 400 Bad Request
    /// for a malformed body.
    pub fn status(&self) -> u16 {
        match self {
            SdpError::NoAcceptableCodec => 488,
            SdpError::Plan(_) => 500,
            SdpError::Unavailable(_) => 503,
            _ => 400,
        }
    }

    /// The reason phrase that goes with [`SdpError::status`].
    pub fn reason(&self) -> &'static str {
        match self.status() {
            488 => "Not Acceptable Here",
            500 => "Server Internal Error",
            503 => "Service Unavailable",
            _ => "Bad Request",
        }
    }

    /// A Warning header value (RFC 3261 §20.43) for the answer, naming `host` as the
    /// agent: `399 host "no acceptable codec"`.
    pub fn warning(&self, host: &str) -> String {
        warning(host, &self.to_string())
    }
}

/// Builds a Warning value with code 399 (miscellaneous), quoting `text` so that it
/// stays one quoted-string whatever it contains.
pub fn warning(host: &str, text: &str) -> String {
    let mut out = String::with_capacity(host.len() + text.len() + 8);
    out.push_str("399 ");
    out.push_str(host);
    out.push_str(" \"");
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Shorthand for a syntax error at a 1-based line.
pub(crate) fn syntax(line: usize, reason: impl Into<String>) -> SdpError {
    SdpError::Syntax {
        line,
        reason: reason.into(),
    }
}
