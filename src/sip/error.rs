//! Parse errors that say what is wrong and which status code answers them.

use std::fmt;

use super::message::SipMessage;

/// What kind of fault the input had; decides the status code of the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The message (or a part of it) is above a configured size limit.
    TooLarge,
    /// Too many header lines, or too many Via values.
    TooManyHeaders,
    /// No bytes, or only whitespace.
    Empty,
    /// The request or status line does not follow the grammar.
    StartLine,
    /// A header line has no colon, or an empty or invalid name.
    HeaderLine,
    /// The header section is not valid UTF-8.
    Encoding,
    /// Content-Length is not a number, is repeated with different values, or is
    /// larger than the body that arrived.
    ContentLength,
    /// A stream message without Content-Length cannot be framed.
    MissingContentLength,
    /// The header section never ended (no empty line) in a complete datagram.
    Incomplete,
    /// A URI does not follow the grammar.
    Uri,
    /// A typed header value does not follow its grammar.
    HeaderValue,
    /// A header every request must carry is missing.
    MissingHeader,
}

/// A malformed input: its kind, a human-readable reason naming the fault, and, when
/// the start line and some headers were read, the partial message so the caller can
/// still address a 400 response.
#[derive(Debug)]
pub struct ParseError {
    /// The class of fault.
    pub kind: ErrorKind,
    /// A short reason suitable for a reason phrase or Warning text.
    pub reason: String,
    /// What was readable of the message, when enough was to answer it.
    pub partial: Option<Box<SipMessage>>,
}

impl ParseError {
    /// An error with no partial message.
    pub fn new(kind: ErrorKind, reason: impl Into<String>) -> Self {
        ParseError {
            kind,
            reason: reason.into(),
            partial: None,
        }
    }

    /// The status code that answers this fault (RFC 3261 §21).
    pub fn status(&self) -> u16 {
        match self.kind {
            ErrorKind::TooLarge => 413,
            _ => 400,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.reason)
    }
}

impl std::error::Error for ParseError {}
