//! sipveil's own SIP message layer: parser, serializer, typed header views and
//! stream framing. DESIGN.md ("Dependencies") explains why this is not rsip.

pub mod error;
pub mod framing;
pub mod grammar;
pub mod headers;
pub mod message;
pub mod name;
pub mod response;
pub mod uri;

pub use error::{ErrorKind, ParseError};
pub use framing::{Frame, StreamFramer};
pub use headers::{CSeq, Digest, NameAddr, SessionExpires, Via};
pub use message::{HeaderRef, Method, SipMessage};
pub use name::HeaderName;
pub use uri::{Host, Scheme, Uri};

/// Explicit bounds on what the parser accepts from the wire (DESIGN.md invariant 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest message (head and body) accepted; above it the answer is 413.
    pub max_message_size: usize,
    /// Most header lines in one message.
    pub max_headers: usize,
    /// Longest header line, folding included, and longest start line.
    pub max_header_line: usize,
    /// Most Via values in one message.
    pub max_via: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size: 64 * 1024,
            max_headers: 128,
            max_header_line: 8 * 1024,
            max_via: 32,
        }
    }
}
