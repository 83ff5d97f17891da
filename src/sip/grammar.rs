//! Small pieces of the RFC 3261 §25 grammar shared by the parsers: tokens, lists,
//! parameters and quoted strings. All of them borrow; none allocates.

use std::borrow::Cow;

/// `token` characters of RFC 3261 §25.1, as a table indexed by byte.
static TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0usize;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        c += 1;
    }
    t
};

/// `token` characters of RFC 3261 §25.1.
#[inline]
pub fn is_token_char(c: u8) -> bool {
    TOKEN.get(usize::from(c)).copied().unwrap_or(false)
}

/// Whether `s` is a non-empty token.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// `SIP-Version` (case-insensitive "SIP/" 1*DIGIT "." 1*DIGIT).
pub fn is_version(s: &str) -> bool {
    let Some(prefix) = s.get(..4) else {
        return false;
    };
    if !prefix.eq_ignore_ascii_case("SIP/") {
        return false;
    }
    let Some((major, minor)) = s.get(4..).and_then(|r| r.split_once('.')) else {
        return false;
    };
    let digits = |p: &str| !p.is_empty() && p.len() <= 5 && p.bytes().all(|c| c.is_ascii_digit());
    digits(major) && digits(minor)
}

/// A decimal number of at most 10 digits that fits in u32, surrounding whitespace allowed.
pub fn parse_u32(s: &str) -> Option<u32> {
    let s = s.trim();
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Splits a header value at commas that are outside quoted strings and angle
/// brackets, trimming whitespace; empty elements are skipped.
pub fn split_list(v: &str) -> impl Iterator<Item = &str> + '_ {
    let mut rest = v;
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let end = find_unquoted(rest, b',').unwrap_or(rest.len());
        let item = rest.get(..end).unwrap_or("").trim();
        rest = rest.get(end + 1..).unwrap_or("");
        if !item.is_empty() {
            return Some(item);
        }
    })
}

/// Position of the first `needle` outside quoted strings and `<...>`.
pub fn find_unquoted(s: &str, needle: u8) -> Option<usize> {
    let mut in_quote = false;
    let mut in_angle = false;
    let mut escaped = false;
    for (i, c) in s.bytes().enumerate() {
        if in_quote {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_quote = false;
            }
            continue;
        }
        if c == needle && !in_angle {
            return Some(i);
        }
        match c {
            b'"' => in_quote = true,
            b'<' => in_angle = true,
            b'>' => in_angle = false,
            _ => {}
        }
    }
    None
}

/// Removes surrounding quotes and resolves `\x` escapes (RFC 3261 quoted-pair).
/// Borrows when there is nothing to resolve.
pub fn unquote(s: &str) -> Cow<'_, str> {
    let s = s.trim();
    let Some(inner) = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return Cow::Borrowed(s);
    };
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Parameters written `;name[=value]` (header or URI parameters), kept as the raw
/// text and looked up on demand so parsing allocates nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Params<'a>(pub &'a str);

impl<'a> Params<'a> {
    /// Every parameter as (name, value); value `None` for a bare flag. Values keep
    /// their quotes (use [`unquote`]).
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        let mut rest = self.0;
        std::iter::from_fn(move || loop {
            let r = rest.trim_start_matches([' ', '\t', ';']);
            if r.is_empty() {
                return None;
            }
            let end = find_unquoted(r, b';').unwrap_or(r.len());
            let item = r.get(..end).unwrap_or("").trim();
            rest = r.get(end..).unwrap_or("");
            if item.is_empty() {
                continue;
            }
            return Some(match item.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim())),
                None => (item, None),
            });
        })
    }

    /// `Some(value)` when the parameter is present (`Some(None)` for a flag);
    /// names compare case-insensitively.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Whether the parameter is present.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The raw text, including the leading `;`.
    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_respect_quotes_and_angles() {
        let v = r#""Doe, John" <sip:j@x;a=b,c>;tag=1 , <sip:k@y>"#;
        let items: Vec<_> = split_list(v).collect();
        assert_eq!(
            items,
            vec![r#""Doe, John" <sip:j@x;a=b,c>;tag=1"#, "<sip:k@y>"]
        );
        let v = r#""a\",b" <sip:x>, sip:y"#;
        assert_eq!(split_list(v).count(), 2);
    }

    #[test]
    fn params_lookup() {
        let p = Params(";branch=z9hG4bK1;rport;received=1.2.3.4; ttl = 3");
        assert_eq!(p.get("branch"), Some(Some("z9hG4bK1")));
        assert_eq!(p.get("RPORT"), Some(None));
        assert_eq!(p.get("ttl"), Some(Some("3")));
        assert_eq!(p.get("maddr"), None);
    }

    #[test]
    fn unquote_escapes() {
        assert_eq!(unquote(r#""a \"b\" c""#), r#"a "b" c"#);
        assert_eq!(unquote("token"), "token");
    }

    #[test]
    fn versions() {
        assert!(is_version("SIP/2.0"));
        assert!(is_version("sip/2.0"));
        assert!(is_version("SIP/7.0"));
        assert!(!is_version("SIP/2"));
        assert!(!is_version("HTTP/1.1"));
    }
}
