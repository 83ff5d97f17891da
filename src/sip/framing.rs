//! Stream framing (TCP/TLS): messages cut by Content-Length, CRLF keep-alives
//! recognized (RFC 5626 §3.5.1). Datagram framing lives in `SipMessage::parse_datagram`.

use bytes::{Buf, BytesMut};

use super::error::{ErrorKind, ParseError};
use super::message::{find_head_end, SipMessage};
use super::Limits;

/// What a stream yielded.
#[derive(Debug)]
pub enum Frame {
    /// A complete message.
    Message(SipMessage),
    /// A double-CRLF keep-alive ping; answer with a single CRLF.
    Ping,
    /// A single-CRLF keep-alive pong.
    Pong,
}

/// A head already parsed while the body is still arriving.
struct Pending {
    msg: SipMessage,
    body_start: usize,
    body_len: usize,
}

/// Accumulates bytes read from a stream and cuts them into frames. An error is
/// fatal for the connection: after it the stream position is unknown.
pub struct StreamFramer {
    buf: BytesMut,
    limits: Limits,
    pending: Option<Pending>,
    /// Leading bytes of `buf` already searched for the end of a header section
    /// without finding it, so a head that trickles in is not rescanned from the start.
    scanned: usize,
}

impl StreamFramer {
    /// A framer enforcing `limits`.
    pub fn new(limits: Limits) -> Self {
        StreamFramer {
            buf: BytesMut::with_capacity(4096),
            limits,
            pending: None,
            scanned: 0,
        }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered and not yet framed (for idle and slow-sender limits).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ParseError> {
        if let Some(p) = self.pending.take() {
            return Ok(self.finish(p));
        }
        // A ping split across reads: do not mistake its first half for a pong.
        if self.buf.as_ref() == b"\r\n\r" {
            return Ok(None);
        }
        if self.buf.starts_with(b"\r\n\r\n") {
            self.buf.advance(4);
            self.scanned = 0;
            return Ok(Some(Frame::Ping));
        }
        if self.buf.starts_with(b"\r\n") {
            self.buf.advance(2);
            self.scanned = 0;
            return Ok(Some(Frame::Pong));
        }
        let stray = self
            .buf
            .iter()
            .take_while(|c| **c == b'\n' || **c == b'\r')
            .count();
        if stray == self.buf.len() {
            // Only line ends that are neither ping nor pong (bare LFs from a sloppy
            // peer): drop them, keeping a trailing CR that may start a CRLF.
            let keep = usize::from(self.buf.ends_with(b"\r"));
            self.buf.advance(stray - keep);
            self.scanned = 0;
            return Ok(None);
        }
        if stray > 0 {
            self.buf.advance(stray);
            self.scanned = 0;
        }
        // Resume a few bytes early: a blank line may straddle the old end.
        let from = self.scanned.saturating_sub(3).min(self.buf.len());
        let found = find_head_end(self.buf.get(from..).unwrap_or(&[]))
            .map(|(end, body)| (end + from, body + from));
        let Some((head_end, body_start)) = found else {
            if self.buf.len() > self.limits.max_message_size {
                return Err(ParseError::new(ErrorKind::TooLarge, "message too large"));
            }
            self.scanned = self.buf.len();
            return Ok(None);
        };
        self.scanned = 0;
        let msg = SipMessage::parse_head(self.buf.get(..head_end).unwrap_or(&[]), &self.limits)?;
        let body_len = match msg.declared_content_length() {
            Ok(Some(n)) => n,
            Ok(None) => {
                let mut e = ParseError::new(
                    ErrorKind::MissingContentLength,
                    "missing Content-Length on a stream transport",
                );
                e.partial = Some(Box::new(msg));
                return Err(e);
            }
            Err(mut e) => {
                e.partial = Some(Box::new(msg));
                return Err(e);
            }
        };
        if body_start.saturating_add(body_len) > self.limits.max_message_size {
            let mut e = ParseError::new(ErrorKind::TooLarge, "message too large");
            e.partial = Some(Box::new(msg));
            return Err(e);
        }
        Ok(self.finish(Pending {
            msg,
            body_start,
            body_len,
        }))
    }

    fn finish(&mut self, p: Pending) -> Option<Frame> {
        let total = p.body_start + p.body_len;
        if self.buf.len() < total {
            self.pending = Some(p);
            return None;
        }
        let mut frame = self.buf.split_to(total);
        frame.advance(p.body_start);
        let mut msg = p.msg;
        msg.attach_body(frame.freeze());
        Some(Frame::Message(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPT: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 4\r\n\r\nbody";

    #[test]
    fn two_messages_in_one_read_and_split_reads() {
        let mut f = StreamFramer::new(Limits::default());
        let mut data = OPT.to_vec();
        data.extend_from_slice(b"\r\n\r\n");
        data.extend_from_slice(OPT);
        f.push(&data[..30]);
        assert!(f.next_frame().unwrap().is_none());
        f.push(&data[30..]);
        let mut got = 0;
        let mut pings = 0;
        while let Some(fr) = f.next_frame().unwrap() {
            match fr {
                Frame::Message(m) => {
                    assert_eq!(&m.body()[..], b"body");
                    got += 1;
                }
                Frame::Ping => pings += 1,
                Frame::Pong => {}
            }
        }
        assert_eq!((got, pings), (2, 1));
    }

    #[test]
    fn body_split_across_reads() {
        let mut f = StreamFramer::new(Limits::default());
        f.push(&OPT[..OPT.len() - 2]);
        assert!(f.next_frame().unwrap().is_none());
        f.push(&OPT[OPT.len() - 2..]);
        assert!(matches!(f.next_frame().unwrap(), Some(Frame::Message(_))));
    }

    #[test]
    fn missing_content_length_is_error() {
        let mut f = StreamFramer::new(Limits::default());
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n");
        let e = f.next_frame().unwrap_err();
        assert_eq!(e.kind, ErrorKind::MissingContentLength);
        assert!(e.partial.is_some());
    }

    #[test]
    fn oversize_without_end_is_error() {
        let limits = Limits {
            max_message_size: 100,
            ..Limits::default()
        };
        let mut f = StreamFramer::new(limits);
        f.push(&[b'a'; 200]);
        assert_eq!(f.next_frame().unwrap_err().kind, ErrorKind::TooLarge);
    }
}

#[cfg(test)]
mod rule_tests {
    use super::*;

    fn drain(f: &mut StreamFramer) -> Vec<&'static str> {
        let mut out = Vec::new();
        while let Some(fr) = f.next_frame().unwrap() {
            out.push(match fr {
                Frame::Message(_) => "msg",
                Frame::Ping => "ping",
                Frame::Pong => "pong",
            });
        }
        out
    }

    const MSG: &[u8] =
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: 2\r\n\r\nhi";

    #[test]
    fn ping_split_across_reads_is_one_ping() {
        let mut f = StreamFramer::new(Limits::default());
        f.push(b"\r\n\r");
        assert!(drain(&mut f).is_empty());
        f.push(b"\n");
        assert_eq!(drain(&mut f), vec!["ping"]);
        f.push(b"\r\n");
        assert_eq!(drain(&mut f), vec!["pong"]);
    }

    #[test]
    fn bare_line_feeds_between_messages_are_skipped() {
        let mut f = StreamFramer::new(Limits::default());
        f.push(b"\n\n\n");
        assert!(drain(&mut f).is_empty());
        assert_eq!(f.buffered(), 0);
        f.push(MSG);
        assert_eq!(drain(&mut f), vec!["msg"]);
    }

    #[test]
    fn head_arriving_byte_by_byte() {
        let mut f = StreamFramer::new(Limits::default());
        let mut got = Vec::new();
        for chunk in MSG.chunks(1).chain(MSG.chunks(1)) {
            f.push(chunk);
            got.extend(drain(&mut f));
        }
        assert_eq!(got, vec!["msg", "msg"]);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn bad_content_length_on_stream_is_error() {
        let mut f = StreamFramer::new(Limits::default());
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: x\r\n\r\n");
        let e = f.next_frame().unwrap_err();
        assert_eq!(e.kind, ErrorKind::ContentLength);
        let mut f = StreamFramer::new(Limits::default());
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 70000\r\n\r\n");
        assert_eq!(f.next_frame().unwrap_err().status(), 413);
    }
}
