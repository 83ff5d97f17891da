//! Building responses to a received request (RFC 3261 §8.2.6.2): the headers a
//! response must echo, copied verbatim, and nothing else.

use super::message::SipMessage;
use super::name::HeaderName;

impl SipMessage {
    /// A response to this request: every Via, From, To, Call-ID and CSeq copied as
    /// received (Timestamp too), `Content-Length: 0`. Add a To tag with
    /// [`SipMessage::set_to_tag`] when the response creates or belongs to a dialog.
    pub fn make_response(&self, code: u16, reason: &str) -> SipMessage {
        let mut r = SipMessage::new_response(code, reason);
        for name in [
            HeaderName::Via,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
        ] {
            for v in self.header_lines(name) {
                r.push(name, v);
            }
        }
        if let Some(ts) = self.header_named("Timestamp") {
            r.push_named("Timestamp", ts);
        }
        r.push(HeaderName::ContentLength, "0");
        r
    }

    /// Adds `;tag=TAG` to the To header when it has none.
    pub fn set_to_tag(&mut self, tag: &str) {
        let Some(to) = self.header(HeaderName::To) else {
            return;
        };
        let has_tag = super::headers::NameAddr::parse(to)
            .map(|n| n.tag().is_some())
            .unwrap_or(false);
        if !has_tag {
            let v = format!("{to};tag={tag}");
            self.replace(HeaderName::To, &v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_dialog_headers() {
        let req = SipMessage::parse(
            b"INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP b;branch=z9hG4bK2\r\n\
From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        let mut r = req.make_response(486, "Busy Here");
        r.set_to_tag("xyz");
        assert_eq!(r.vias().count(), 2);
        assert_eq!(r.to_header().unwrap().tag(), Some("xyz"));
        assert_eq!(r.header(HeaderName::MaxForwards), None);
        let s = String::from_utf8(r.to_bytes()).unwrap();
        assert!(s.starts_with("SIP/2.0 486 Busy Here\r\n"));
    }
}
