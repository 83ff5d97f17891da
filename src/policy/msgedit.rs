//! Header edits policy needs beyond the message API: changing the value of chosen
//! lines of a header while every header keeps its place, and writing header names
//! in canonical form. Both rebuild the header list only when something changes, so
//! untouched messages keep their received bytes.

use crate::sip::{HeaderName, HeaderRef, SipMessage};

/// A header name from a policy file, classified once at load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HeaderKey {
    kind: HeaderName,
    /// Canonical spelling for known headers, as written for extension headers.
    text: Box<str>,
}

impl HeaderKey {
    pub(crate) fn new(name: &str) -> HeaderKey {
        let kind = HeaderName::classify(name);
        let text = match kind {
            HeaderName::Other => name,
            k => k.as_str(),
        };
        HeaderKey {
            kind,
            text: text.into(),
        }
    }

    /// The classified name (`Other` for extension headers).
    pub(crate) fn kind(&self) -> HeaderName {
        self.kind
    }

    /// The name to write and to look up by.
    pub(crate) fn name(&self) -> &str {
        &self.text
    }

    /// Whether a header line is of this name (compact forms and case included).
    pub(crate) fn matches(&self, h: &HeaderRef<'_>) -> bool {
        h.name == self.kind
            && (self.kind != HeaderName::Other || h.written_name.eq_ignore_ascii_case(&self.text))
    }
}

/// Replaces every header of `msg` by `items` (name, value), in order.
fn rebuild(msg: &mut SipMessage, items: Vec<(String, String)>) {
    msg.retain(|_| false);
    for (name, value) in items {
        msg.push_named(&name, &value);
    }
}

/// Offers each line of header `key` to `f`; lines for which it returns a different
/// value get it, in place. Returns how many lines changed.
pub(crate) fn edit_lines(
    msg: &mut SipMessage,
    key: &HeaderKey,
    mut f: impl FnMut(&str) -> Option<String>,
) -> usize {
    let mut lines = 0usize;
    let mut changes: Vec<(usize, String)> = Vec::new();
    for (i, h) in msg.headers().enumerate() {
        if key.matches(&h) {
            lines += 1;
            if let Some(v) = f(h.value).filter(|v| v != h.value) {
                changes.push((i, v));
            }
        }
    }
    let changed = changes.len();
    if changed == 0 {
        return 0;
    }
    if lines == 1 {
        // One line: replaced where it stands, the rest of the message untouched.
        if let Some((_, v)) = changes.pop() {
            msg.replace_named(key.name(), &v);
        }
        return changed;
    }
    let mut changes = changes.into_iter().peekable();
    let items = msg
        .headers()
        .enumerate()
        .map(|(i, h)| {
            let value = match changes.next_if(|(j, _)| *j == i) {
                Some((_, v)) => v,
                None => h.value.to_string(),
            };
            (h.written_name.to_string(), value)
        })
        .collect();
    rebuild(msg, items);
    changed
}

/// Writes every known header name in canonical form (`f:` becomes `From:`,
/// `CALL-ID:` becomes `Call-ID:`), keeping order. Extension names are left as
/// written: their "canonical" case is not knowable. Returns whether any changed.
pub(crate) fn canonical_names(msg: &mut SipMessage) -> bool {
    let needed = msg
        .headers()
        .any(|h| h.name != HeaderName::Other && h.written_name != h.name.as_str());
    if !needed {
        return false;
    }
    let items = msg
        .headers()
        .map(|h| (h.written_name.to_string(), h.value.to_string()))
        .collect();
    rebuild(msg, items);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &str = "INVITE sip:b@example.test SIP/2.0\r\n\
        v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
        X-A: one\r\n\
        f: <sip:a@example.test>;tag=1\r\n\
        t: <sip:b@example.test>\r\n\
        i: c1\r\n\
        CSEQ: 1 INVITE\r\n\
        x-a: two\r\n\
        l: 0\r\n\r\n";

    fn names(m: &SipMessage) -> Vec<String> {
        m.headers().map(|h| h.written_name.to_string()).collect()
    }

    #[test]
    fn edits_keep_order() {
        let mut m = SipMessage::parse(MSG.as_bytes()).unwrap();
        let key = HeaderKey::new("X-A");
        assert_eq!(edit_lines(&mut m, &key, |v| Some(v.to_uppercase())), 2);
        let vals: Vec<&str> = m.headers().map(|h| h.value).collect();
        assert_eq!(vals[1], "ONE");
        assert_eq!(vals[6], "TWO");
        assert_eq!(edit_lines(&mut m, &key, |v| Some(v.to_string())), 0);
        m.validate().unwrap();
    }

    #[test]
    fn single_line_edit_leaves_other_lines_as_received() {
        let mut m = SipMessage::parse(MSG.as_bytes()).unwrap();
        let n = edit_lines(&mut m, &HeaderKey::new("From"), |_| {
            Some("<sip:z@example.test>;tag=1".into())
        });
        assert_eq!(n, 1);
        let text = String::from_utf8(m.to_bytes()).unwrap();
        assert!(
            text.contains("\r\nf: <sip:z@example.test>;tag=1\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nv: SIP/2.0/UDP"), "{text}");
    }

    #[test]
    fn canonical_names_expand_compact_forms() {
        let mut m = SipMessage::parse(MSG.as_bytes()).unwrap();
        assert!(canonical_names(&mut m));
        assert_eq!(
            names(&m),
            [
                "Via",
                "X-A",
                "From",
                "To",
                "Call-ID",
                "CSeq",
                "x-a",
                "Content-Length"
            ]
        );
        assert!(!canonical_names(&mut m));
        m.validate().unwrap();
    }
}
