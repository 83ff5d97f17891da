//! The SIP message: parsed once into spans over one owned copy of the header section,
//! edited in place, and serialized with every untouched line emitted byte for byte.

use std::sync::LazyLock;

use bytes::Bytes;
use memchr::memmem;

use super::error::{ErrorKind, ParseError};
use super::name::HeaderName;
use super::Limits;

/// Text that is either a span of the message's received header section or an owned
/// string written by an edit. Spans keep parsing free of per-header allocations.
#[derive(Clone, Debug)]
enum Text {
    Span(u32, u32),
    Owned(Box<str>),
}

impl Text {
    fn get<'a>(&'a self, head: &'a str) -> &'a str {
        match self {
            Text::Span(s, e) => head.get(*s as usize..*e as usize).unwrap_or(""),
            Text::Owned(s) => s,
        }
    }

    fn owned(s: &str) -> Text {
        Text::Owned(s.into())
    }
}

/// A SIP method. Method names are case-sensitive (RFC 3261 §7.1); anything that is
/// a token but not a method sipveil knows is an `Extension`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    #[allow(missing_docs)]
    Invite,
    #[allow(missing_docs)]
    Ack,
    #[allow(missing_docs)]
    Bye,
    #[allow(missing_docs)]
    Cancel,
    #[allow(missing_docs)]
    Options,
    #[allow(missing_docs)]
    Register,
    #[allow(missing_docs)]
    Prack,
    #[allow(missing_docs)]
    Update,
    #[allow(missing_docs)]
    Info,
    #[allow(missing_docs)]
    Message,
    #[allow(missing_docs)]
    Notify,
    #[allow(missing_docs)]
    Subscribe,
    #[allow(missing_docs)]
    Refer,
    #[allow(missing_docs)]
    Publish,
    /// Any other token; kept so extension methods can be relayed or answered 501.
    Extension(Box<str>),
}

impl Method {
    /// Parses a method token; `None` when the text is not a token.
    pub fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "PRACK" => Method::Prack,
            "UPDATE" => Method::Update,
            "INFO" => Method::Info,
            "MESSAGE" => Method::Message,
            "NOTIFY" => Method::Notify,
            "SUBSCRIBE" => Method::Subscribe,
            "REFER" => Method::Refer,
            "PUBLISH" => Method::Publish,
            other if !other.is_empty() && other.bytes().all(super::grammar::is_token_char) => {
                Method::Extension(other.into())
            }
            _ => return None,
        })
    }

    /// The method as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Info => "INFO",
            Method::Message => "MESSAGE",
            Method::Notify => "NOTIFY",
            Method::Subscribe => "SUBSCRIBE",
            Method::Refer => "REFER",
            Method::Publish => "PUBLISH",
            Method::Extension(s) => s,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug)]
enum Start {
    Request {
        method: Method,
        uri: Text,
        version: Text,
    },
    Response {
        version: Text,
        code: u16,
        reason: Text,
    },
}

#[derive(Clone, Debug)]
struct Header {
    name: HeaderName,
    name_text: Text,
    value: Text,
    /// The whole received line (folding included) while the header is untouched.
    raw: Option<(u32, u32)>,
}

impl Header {
    /// A slot the parser fills in place.
    fn empty() -> Header {
        Header {
            name: HeaderName::Other,
            name_text: Text::Span(0, 0),
            value: Text::Span(0, 0),
            raw: None,
        }
    }
}

/// One header as seen by iteration: its classified name, its name as written and
/// its value (unfolded, trimmed).
#[derive(Clone, Copy, Debug)]
pub struct HeaderRef<'a> {
    /// Classified name (`Other` for extension headers).
    pub name: HeaderName,
    /// The name exactly as written (compact forms stay compact).
    pub written_name: &'a str,
    /// The value with surrounding whitespace removed and folding undone.
    pub value: &'a str,
}

/// A parsed or built SIP request or response.
#[derive(Clone, Debug)]
pub struct SipMessage {
    head: String,
    start: Start,
    start_raw: Option<(u32, u32)>,
    headers: Vec<Header>,
    body: Bytes,
}

/// Searchers for the two ways a header section can end, built once.
static BLANK_CRLF: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\n\r\n"));
static BLANK_LF: LazyLock<memmem::Finder<'static>> = LazyLock::new(|| memmem::Finder::new(b"\n\n"));

/// Where the header section ends: (end of the last header line, start of the body).
/// The first empty line ends it, whether written CRLF or bare LF.
pub(crate) fn find_head_end(b: &[u8]) -> Option<(usize, usize)> {
    let crlf = BLANK_CRLF.find(b);
    let scope = crlf.map_or(b, |p| b.get(..p + 1).unwrap_or(b));
    let (nl, body) = match (BLANK_LF.find(scope), crlf) {
        (Some(p), _) => (p, p + 2),
        (None, Some(p)) => (p, p + 3),
        (None, None) => return None,
    };
    let end = if nl > 0 && b.get(nl - 1) == Some(&b'\r') {
        nl - 1
    } else {
        nl
    };
    Some((end, body))
}

/// Skips CRLFs before the start line (RFC 3261 §7.5).
fn skip_leading_crlf(b: &[u8]) -> usize {
    b.iter()
        .take_while(|c| **c == b'\r' || **c == b'\n')
        .count()
}

/// The offsets of `part` inside `base`. `part` must be a subslice of `base` (every
/// caller passes one); anything else yields an empty span rather than wrong text.
fn span(base: &str, part: &str) -> (u32, u32) {
    let start = (part.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
    match start.checked_add(part.len()) {
        Some(end) if end <= base.len() && end <= u32::MAX as usize => (start as u32, end as u32),
        _ => (0, 0),
    }
}

fn is_wsp(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

fn parse_start(head: &str, line: &str) -> Result<Start, ParseError> {
    let bad = |why: &str| ParseError::new(ErrorKind::StartLine, why.to_string());
    if line.len() >= 4
        && line
            .as_bytes()
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
    {
        let (version, rest) = line
            .split_once(' ')
            .ok_or_else(|| bad("status line without status code"))?;
        if !super::grammar::is_version(version) {
            return Err(bad("malformed SIP version in status line"));
        }
        // No reason phrase at all: an empty span at the end of the line (not a
        // literal "", which would not be a subslice of `head`).
        let (code_s, reason) = rest
            .split_once(' ')
            .unwrap_or((rest, rest.get(rest.len()..).unwrap_or("")));
        if code_s.len() != 3 || !code_s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad("status code is not three digits"));
        }
        let code: u16 = code_s
            .parse()
            .map_err(|_| bad("status code is not a number"))?;
        if !(100..=699).contains(&code) {
            return Err(bad("status code out of range 100-699"));
        }
        let (vs, ve) = span(head, version);
        let (rs, re) = span(head, reason);
        return Ok(Start::Response {
            version: Text::Span(vs, ve),
            code,
            reason: Text::Span(rs, re),
        });
    }
    let (method_s, rest) = line
        .split_once(' ')
        .ok_or_else(|| bad("request line without request-URI"))?;
    let method = Method::parse(method_s).ok_or_else(|| bad("method is not a token"))?;
    let (uri, version) = rest
        .rsplit_once(' ')
        .ok_or_else(|| bad("request line without SIP version"))?;
    if version.is_empty() && line.ends_with([' ', '\t']) {
        return Err(bad("whitespace at the end of the request line"));
    }
    if uri.is_empty() {
        return Err(bad("empty request-URI"));
    }
    if uri.starts_with([' ', '\t']) || uri.ends_with([' ', '\t']) {
        return Err(bad("more than one space between request line elements"));
    }
    if uri.bytes().any(|c| c.is_ascii_whitespace()) {
        return Err(bad("whitespace inside request-URI"));
    }
    if !super::grammar::is_version(version) {
        return Err(bad("malformed SIP version in request line"));
    }
    let (us, ue) = span(head, uri);
    let (vs, ve) = span(head, version);
    Ok(Start::Request {
        method,
        uri: Text::Span(us, ue),
        version: Text::Span(vs, ve),
    })
}

/// Joins a folded continuation `cont` to a header value: the result is written at the
/// end of `owned` (after the `received` bytes of the header section) and its span is
/// returned. A value already at the end of `owned` (an earlier continuation of the
/// same header) is extended in place, so long folded headers stay linear and the
/// appended text never exceeds the received bytes. Only called while parsing, when
/// every value is a span of `owned`.
fn unfold(owned: &mut String, received: usize, value: &Text, cont: &str) -> Text {
    let (s, e) = match *value {
        Text::Span(s, e) => (s as usize, e as usize),
        Text::Owned(_) => (0, 0),
    };
    if s >= received && s < e && e == owned.len() {
        owned.push(' ');
        owned.push_str(cont);
        return Text::Span(s as u32, owned.len() as u32);
    }
    let start = owned.len();
    if s < e && owned.get(s..e).is_some() {
        owned.extend_from_within(s..e);
        owned.push(' ');
    }
    owned.push_str(cont);
    Text::Span(start as u32, owned.len() as u32)
}

/// A header line split into name and value, or why it cannot be: the classified
/// name, the end of the name and the range of the value (trimmed), as offsets into
/// `b`. The colon is found first; a name sipveil knows is a token by construction,
/// so only extension names are checked character by character.
fn split_header_line(b: &[u8]) -> Result<(HeaderName, usize, usize, usize), &'static str> {
    let Some(colon) = memchr::memchr(b':', b) else {
        return Err("header line without colon");
    };
    let before = b.get(..colon).unwrap_or(&[]);
    let name_end = before
        .iter()
        .rposition(|c| !is_wsp(*c))
        .map_or(0, |e| e + 1);
    let name = before.get(..name_end).unwrap_or(&[]);
    if name.is_empty() {
        return Err("header line with empty name");
    }
    let kind = HeaderName::classify_bytes(name);
    if kind == HeaderName::Other && !name.iter().all(|c| super::grammar::is_token_char(*c)) {
        return Err("header name is not a token");
    }
    let (vs, ve) = trim_wsp_range(b, colon + 1);
    Ok((kind, name_end, vs, ve))
}

/// How many spaces and tabs `b` starts with.
fn skip_wsp(b: &[u8]) -> usize {
    b.iter().position(|c| !is_wsp(*c)).unwrap_or(b.len())
}

/// The range of `b[from..]` without leading and trailing spaces and tabs.
fn trim_wsp_range(b: &[u8], from: usize) -> (usize, usize) {
    let start = from + skip_wsp(b.get(from..).unwrap_or(&[]));
    let end = b
        .iter()
        .rposition(|c| !is_wsp(*c))
        .map_or(start, |e| (e + 1).max(start));
    (start, end)
}

/// The lines of a header section, each as (start, end) offsets without its LF and
/// the CR before it.
struct Lines<'a> {
    bytes: &'a [u8],
    pos: usize,
    newlines: memchr::Memchr<'a>,
    done: bool,
    /// Lines that ended in CRLF so far.
    crlf: usize,
    /// Whether a line ended in a bare LF.
    bare_lf: bool,
}

impl Iterator for Lines<'_> {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        if self.done {
            return None;
        }
        let b = self.bytes;
        let (end, stop) = match self.newlines.next() {
            Some(end) if end > self.pos && b.get(end - 1) == Some(&b'\r') => {
                self.crlf += 1;
                (end, end - 1)
            }
            Some(end) => {
                self.bare_lf = true;
                (end, end)
            }
            None => {
                // The last line has no line end: a CR there ends nothing.
                self.done = true;
                (b.len(), b.len())
            }
        };
        let start = self.pos;
        self.pos = end + 1;
        Some((start, stop.max(start)))
    }
}

impl SipMessage {
    /// Parses one datagram (RFC 3261 §18.3): bytes after the body that Content-Length
    /// announces are discarded; a Content-Length beyond the datagram is an error.
    pub fn parse(buf: &[u8]) -> Result<SipMessage, ParseError> {
        Self::parse_datagram(buf, &Limits::default())
    }

    /// Parses one datagram under explicit limits.
    pub fn parse_datagram(buf: &[u8], limits: &Limits) -> Result<SipMessage, ParseError> {
        let skip = skip_leading_crlf(buf);
        let buf = buf.get(skip..).unwrap_or(&[]);
        if buf.is_empty() {
            return Err(ParseError::new(ErrorKind::Empty, "empty message"));
        }
        // Common case first: the head ends at the first CRLF CRLF, which is the
        // first empty line whenever every line of the head ends in CRLF (then no
        // bare "\n\n" can come earlier). Anything else takes the general search.
        let fast = BLANK_CRLF.find(buf).and_then(|p| {
            let end = p.checked_sub(1).filter(|e| buf.get(*e) == Some(&b'\r'))?;
            let (msg, all_crlf) = Self::parse_head_counted(buf.get(..end)?, limits).ok()?;
            all_crlf.then_some((msg, p + 3))
        });
        let (mut msg, body_start) = match fast {
            Some(found) => found,
            None => {
                let Some((head_end, body_start)) = find_head_end(buf) else {
                    if buf.len() > limits.max_message_size {
                        return Err(ParseError::new(ErrorKind::TooLarge, "message too large"));
                    }
                    return Err(ParseError::new(
                        ErrorKind::Incomplete,
                        "header section not terminated by an empty line",
                    ));
                };
                (
                    Self::parse_head(buf.get(..head_end).unwrap_or(&[]), limits)?,
                    body_start,
                )
            }
        };
        let rest = buf.get(body_start..).unwrap_or(&[]);
        let body_len = match msg.declared_content_length() {
            Ok(Some(n)) => n,
            Ok(None) => rest.len(),
            Err(mut e) => {
                e.partial = Some(Box::new(msg));
                return Err(e);
            }
        };
        // A Content-Length beyond the datagram is the sender's fault (400), checked
        // before the size limit so a huge bogus value is not reported as 413.
        let Some(body) = rest.get(..body_len) else {
            let mut e = ParseError::new(
                ErrorKind::ContentLength,
                "Content-Length larger than the body received",
            );
            e.partial = Some(Box::new(msg));
            return Err(e);
        };
        if body_start.saturating_add(body_len) > limits.max_message_size {
            let mut e = ParseError::new(ErrorKind::TooLarge, "message too large");
            e.partial = Some(Box::new(msg));
            return Err(e);
        }
        msg.body = Bytes::copy_from_slice(body);
        Ok(msg)
    }

    /// Parses the start line and header section (without the blank line). Used by the
    /// datagram parser and the stream framer, which find the body themselves.
    pub fn parse_head(head: &[u8], limits: &Limits) -> Result<SipMessage, ParseError> {
        Self::parse_head_counted(head, limits).map(|(msg, _)| msg)
    }

    /// [`SipMessage::parse_head`], also telling whether every line ended in CRLF.
    fn parse_head_counted(head: &[u8], limits: &Limits) -> Result<(SipMessage, bool), ParseError> {
        if head.len() > limits.max_message_size || head.len() > (u32::MAX / 2) as usize {
            return Err(ParseError::new(
                ErrorKind::TooLarge,
                "header section too large",
            ));
        }
        if memchr::memchr(0, head).is_some() {
            return Err(ParseError::new(
                ErrorKind::Encoding,
                "NUL byte in header section",
            ));
        }
        // Every CR must end a line; compared with the line ends seen below.
        let carriage_returns = memchr::memchr_iter(b'\r', head).count();
        let head = std::str::from_utf8(head).map_err(|_| {
            ParseError::new(ErrorKind::Encoding, "header section is not valid UTF-8")
        })?;
        let bytes = head.as_bytes();
        let mut lines = Lines {
            bytes,
            pos: 0,
            newlines: memchr::memchr_iter(b'\n', bytes),
            done: false,
            crlf: 0,
            bare_lf: false,
        };
        let (fs, fe) = lines.next().unwrap_or((0, 0));
        if fe - fs > limits.max_header_line {
            return Err(ParseError::new(ErrorKind::TooLarge, "start line too long"));
        }
        let first = head.get(fs..fe).unwrap_or("");
        let start = parse_start(head, first)?;
        let start_raw = Some(span(head, first));
        // One allocation for the header table, so parsing does not grow it header by
        // header. With CRLF line ends (the rule) every header line ends in one of the
        // CRs already counted; lines ending in a bare LF are counted when the first
        // one is met, and the table is enlarged once for all of them.
        let slots = carriage_returns.min(limits.max_headers);
        let mut headers: Vec<Header> = Vec::with_capacity(slots);
        headers.resize_with(slots, Header::empty);
        let mut used = 0usize;
        // The owned copy of the header section. Unfolded values of folded headers are
        // appended after the received bytes; together they never exceed the received
        // bytes (see `unfold`), so the first folded line reserves that much once and
        // folding costs one allocation per message, not one per header.
        let mut owned = String::with_capacity(head.len());
        owned.push_str(head);
        let mut first_error: Option<ParseError> = None;
        let fail = |e: &mut Option<ParseError>, kind: ErrorKind, why: &str| {
            if e.is_none() {
                *e = Some(ParseError::new(kind, why.to_string()));
            }
        };
        // Lines are handled as byte offsets into `head` (spans are what is stored);
        // text is taken out only for the rare folded line.
        for (at, end) in lines.by_ref() {
            let line = bytes.get(at..end).unwrap_or(&[]);
            if line.first().copied().is_some_and(is_wsp) {
                // Folded continuation of the previous header (RFC 3261 §7.3.1).
                let Some(prev) = used.checked_sub(1).and_then(|i| headers.get_mut(i)) else {
                    fail(
                        &mut first_error,
                        ErrorKind::HeaderLine,
                        "continuation line before any header",
                    );
                    continue;
                };
                let (rs, _) = prev.raw.unwrap_or((0, 0));
                if end.saturating_sub(rs as usize) > limits.max_header_line {
                    fail(
                        &mut first_error,
                        ErrorKind::TooLarge,
                        "header line too long",
                    );
                    continue;
                }
                prev.raw = Some((rs, end as u32));
                if owned.capacity() < 2 * head.len() {
                    owned.reserve_exact(head.len());
                }
                let (cs, ce) = trim_wsp_range(line, 0);
                let cont = head.get(at + cs..at + ce).unwrap_or("");
                if !cont.is_empty() {
                    prev.value = unfold(&mut owned, head.len(), &prev.value, cont);
                }
                continue;
            }
            if line.len() > limits.max_header_line {
                fail(
                    &mut first_error,
                    ErrorKind::TooLarge,
                    "header line too long",
                );
                continue;
            }
            if used >= limits.max_headers {
                fail(
                    &mut first_error,
                    ErrorKind::TooManyHeaders,
                    "too many header lines",
                );
                break;
            }
            match split_header_line(line) {
                Ok((kind, name_end, vs, ve)) => {
                    let name_text = Text::Span(at as u32, (at + name_end) as u32);
                    let value = Text::Span((at + vs) as u32, (at + ve) as u32);
                    let raw = Some((at as u32, end as u32));
                    match headers.get_mut(used) {
                        Some(slot) => {
                            slot.name = kind;
                            slot.name_text = name_text;
                            slot.value = value;
                            slot.raw = raw;
                        }
                        None => {
                            if headers.len() == headers.capacity() {
                                let rest = bytes.get(at..).unwrap_or(&[]);
                                let more = memchr::memchr_iter(b'\n', rest).count() + 1;
                                let room = limits.max_headers.saturating_sub(used).max(1);
                                headers.reserve_exact(more.min(room));
                            }
                            headers.push(Header {
                                name: kind,
                                name_text,
                                value,
                                raw,
                            })
                        }
                    }
                    used += 1;
                }
                Err(why) => fail(&mut first_error, ErrorKind::HeaderLine, why),
            }
        }
        headers.truncate(used);
        // A CR that does not end a line would be read as a line break by some peers
        // and not by others: forwarding it would let a header hide inside another.
        lines.by_ref().for_each(drop);
        if lines.crlf != carriage_returns {
            return Err(ParseError::new(
                ErrorKind::HeaderLine,
                "bare CR in header section",
            ));
        }
        // Counted on the unfolded values: a folded Via line can carry more values.
        let vias: usize = headers
            .iter()
            .filter(|h| h.name == HeaderName::Via)
            .map(|h| {
                let v = h.value.get(&owned);
                if memchr::memchr(b',', v.as_bytes()).is_none() {
                    1
                } else {
                    super::grammar::split_list(v).count().max(1)
                }
            })
            .sum();
        if vias > limits.max_via && first_error.is_none() {
            first_error = Some(ParseError::new(
                ErrorKind::TooManyHeaders,
                "too many Via values",
            ));
        }
        let all_crlf = !lines.bare_lf;
        let msg = SipMessage {
            head: owned,
            start,
            start_raw,
            headers,
            body: Bytes::new(),
        };
        match first_error {
            Some(mut e) => {
                e.partial = Some(Box::new(msg));
                Err(e)
            }
            None => Ok((msg, all_crlf)),
        }
    }

    /// Content-Length as declared: `None` when absent; an error when it is not a
    /// number or is repeated with different values.
    pub fn declared_content_length(&self) -> Result<Option<usize>, ParseError> {
        let mut found: Option<usize> = None;
        for v in self.header_values_raw(HeaderName::ContentLength) {
            let n = super::grammar::parse_u32(v).ok_or_else(|| {
                let digits = !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit());
                ParseError::new(
                    ErrorKind::ContentLength,
                    if digits {
                        "Content-Length out of range"
                    } else {
                        "Content-Length is not a number"
                    },
                )
            })? as usize;
            if found.is_some_and(|f| f != n) {
                return Err(ParseError::new(
                    ErrorKind::ContentLength,
                    "conflicting Content-Length headers",
                ));
            }
            found = Some(n);
        }
        Ok(found)
    }

    /// A new request with no headers and no body.
    pub fn new_request(method: Method, uri: &str) -> SipMessage {
        SipMessage {
            head: String::new(),
            start: Start::Request {
                method,
                uri: Text::owned(uri),
                version: Text::owned("SIP/2.0"),
            },
            start_raw: None,
            headers: Vec::with_capacity(16),
            body: Bytes::new(),
        }
    }

    /// A new response with no headers and no body.
    pub fn new_response(code: u16, reason: &str) -> SipMessage {
        SipMessage {
            head: String::new(),
            start: Start::Response {
                version: Text::owned("SIP/2.0"),
                code,
                reason: Text::owned(reason),
            },
            start_raw: None,
            headers: Vec::with_capacity(16),
            body: Bytes::new(),
        }
    }

    /// True for requests.
    pub fn is_request(&self) -> bool {
        matches!(self.start, Start::Request { .. })
    }

    /// The request method, `None` for responses.
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            Start::Request { method, .. } => Some(method),
            Start::Response { .. } => None,
        }
    }

    /// The request-URI as written, `None` for responses.
    pub fn request_uri(&self) -> Option<&str> {
        match &self.start {
            Start::Request { uri, .. } => Some(uri.get(&self.head)),
            Start::Response { .. } => None,
        }
    }

    /// Replaces the request-URI (no effect on responses).
    pub fn set_request_uri(&mut self, new_uri: &str) {
        if let Start::Request { uri, .. } = &mut self.start {
            *uri = Text::owned(new_uri);
            self.start_raw = None;
        }
    }

    /// The status code, `None` for requests.
    pub fn status(&self) -> Option<u16> {
        match &self.start {
            Start::Response { code, .. } => Some(*code),
            Start::Request { .. } => None,
        }
    }

    /// The reason phrase exactly as received, `None` for requests.
    pub fn reason(&self) -> Option<&str> {
        match &self.start {
            Start::Response { reason, .. } => Some(reason.get(&self.head)),
            Start::Request { .. } => None,
        }
    }

    /// Replaces status code and reason phrase (no effect on requests).
    pub fn set_status(&mut self, new_code: u16, new_reason: &str) {
        if let Start::Response { code, reason, .. } = &mut self.start {
            *code = new_code;
            *reason = Text::owned(new_reason);
            self.start_raw = None;
        }
    }

    /// The SIP version as written ("SIP/2.0").
    pub fn version(&self) -> &str {
        match &self.start {
            Start::Request { version, .. } | Start::Response { version, .. } => {
                version.get(&self.head)
            }
        }
    }

    /// Whether the version is SIP/2.0; anything else is answered 505 by the caller.
    pub fn is_sip2(&self) -> bool {
        self.version().eq_ignore_ascii_case("SIP/2.0")
    }

    /// The body as received or set.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Sets the body and rewrites Content-Length to match it.
    pub fn set_body(&mut self, body: Bytes) {
        let len = body.len().to_string();
        self.body = body;
        self.replace(HeaderName::ContentLength, &len);
    }

    /// Sets the body without touching headers (the stream framer uses this).
    pub(crate) fn attach_body(&mut self, body: Bytes) {
        self.body = body;
    }

    fn header_ref<'a>(&'a self, h: &'a Header) -> HeaderRef<'a> {
        let written_name = match (&h.name_text, h.name) {
            (Text::Owned(s), _) => s,
            (t, _) => t.get(&self.head),
        };
        HeaderRef {
            name: h.name,
            written_name,
            value: h.value.get(&self.head),
        }
    }

    /// Every header in order.
    pub fn headers(&self) -> impl Iterator<Item = HeaderRef<'_>> + '_ {
        self.headers.iter().map(move |h| self.header_ref(h))
    }

    /// Number of header lines.
    pub fn header_count(&self) -> usize {
        self.headers.len()
    }

    fn matches(&self, h: &Header, name: HeaderName, text: Option<&str>) -> bool {
        h.name == name
            && (name != HeaderName::Other
                || text.is_some_and(|t| h.name_text.get(&self.head).eq_ignore_ascii_case(t)))
    }

    fn header_values_raw(&self, name: HeaderName) -> impl Iterator<Item = &str> + '_ {
        self.headers
            .iter()
            .filter(move |h| h.name == name)
            .map(move |h| h.value.get(&self.head))
    }

    /// The first line's value of a known header.
    pub fn header(&self, name: HeaderName) -> Option<&str> {
        self.header_values_raw(name).next()
    }

    /// Every line's value of a known header (not split at commas).
    pub fn header_lines(&self, name: HeaderName) -> impl Iterator<Item = &str> + '_ {
        self.header_values_raw(name)
    }

    /// Every value of a header, list headers split at commas outside quotes and
    /// angle brackets (RFC 3261 §7.3.1).
    pub fn header_values(&self, name: HeaderName) -> impl Iterator<Item = &str> + '_ {
        let split = name.is_list();
        self.header_values_raw(name).flat_map(move |v| {
            let mut it = super::grammar::split_list(v);
            let single = if split { None } else { Some(v) };
            let mut once = single;
            std::iter::from_fn(move || if split { it.next() } else { once.take() })
        })
    }

    /// The first value of a header given by any name (full, compact, extension).
    pub fn header_named(&self, name: &str) -> Option<&str> {
        let kind = HeaderName::classify(name);
        self.headers
            .iter()
            .find(|h| self.matches(h, kind, Some(name)))
            .map(|h| h.value.get(&self.head))
    }

    /// Every line's value of a header given by any name.
    pub fn header_lines_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let kind = HeaderName::classify(name);
        self.headers
            .iter()
            .filter(move |h| self.matches(h, kind, Some(name)))
            .map(move |h| h.value.get(&self.head))
    }

    /// Whether a header given by any name is present.
    pub fn has_header_named(&self, name: &str) -> bool {
        self.header_named(name).is_some()
    }

    fn new_header(name: HeaderName, written: &str, value: &str) -> Header {
        Header {
            name,
            name_text: Text::owned(written),
            value: Text::owned(value),
            raw: None,
        }
    }

    /// Appends a known header with its canonical name.
    pub fn push(&mut self, name: HeaderName, value: &str) {
        self.headers
            .push(Self::new_header(name, name.as_str(), value));
    }

    /// Appends a header by any name (extension headers included).
    pub fn push_named(&mut self, name: &str, value: &str) {
        let kind = HeaderName::classify(name);
        let written = if kind == HeaderName::Other {
            name
        } else {
            kind.as_str()
        };
        self.headers.push(Self::new_header(kind, written, value));
    }

    /// Inserts a known header before every other header (a new top Via).
    pub fn prepend(&mut self, name: HeaderName, value: &str) {
        self.headers
            .insert(0, Self::new_header(name, name.as_str(), value));
    }

    /// Removes every line of a known header; returns how many were removed.
    pub fn remove(&mut self, name: HeaderName) -> usize {
        let before = self.headers.len();
        self.headers.retain(|h| h.name != name);
        before - self.headers.len()
    }

    /// Removes every line of a header given by any name.
    pub fn remove_named(&mut self, name: &str) -> usize {
        let kind = HeaderName::classify(name);
        let before = self.headers.len();
        let head = &self.head;
        self.headers.retain(|h| {
            !(h.name == kind
                && (kind != HeaderName::Other || h.name_text.get(head).eq_ignore_ascii_case(name)))
        });
        before - self.headers.len()
    }

    /// Removes the first value of a list header (the top Via of a response), keeping
    /// any values that shared its line.
    pub fn remove_first_value(&mut self, name: HeaderName) -> Option<String> {
        let idx = self.headers.iter().position(|h| h.name == name)?;
        let line = self.headers.get(idx)?.value.get(&self.head).to_string();
        let mut parts = super::grammar::split_list(&line);
        let first = parts.next().unwrap_or("").to_string();
        let rest: Vec<&str> = parts.collect();
        if rest.is_empty() {
            self.headers.remove(idx);
        } else if let Some(h) = self.headers.get_mut(idx) {
            h.value = Text::Owned(rest.join(", ").into());
            h.raw = None;
        }
        Some(first)
    }

    /// Keeps only headers for which `keep` returns true.
    pub fn retain(&mut self, mut keep: impl FnMut(HeaderRef<'_>) -> bool) {
        let head = &self.head;
        self.headers.retain(|h| {
            keep(HeaderRef {
                name: h.name,
                written_name: h.name_text.get(head),
                value: h.value.get(head),
            })
        });
    }

    /// Sets a known header to one value: the first line is replaced in place, other
    /// lines are removed; appended when absent.
    pub fn replace(&mut self, name: HeaderName, value: &str) {
        match self.headers.iter().position(|h| h.name == name) {
            Some(idx) => {
                if let Some(h) = self.headers.get_mut(idx) {
                    h.value = Text::owned(value);
                    h.raw = None;
                }
                let mut i = 0usize;
                self.headers.retain(|h| {
                    let keep = h.name != name || i == idx;
                    i += 1;
                    keep
                });
            }
            None => self.push(name, value),
        }
    }

    /// Sets a header given by any name to one value (see [`SipMessage::replace`]).
    pub fn replace_named(&mut self, name: &str, value: &str) {
        let kind = HeaderName::classify(name);
        if kind != HeaderName::Other {
            return self.replace(kind, value);
        }
        let head = &self.head;
        let pos = self
            .headers
            .iter()
            .position(|h| h.name == kind && h.name_text.get(head).eq_ignore_ascii_case(name));
        match pos {
            Some(idx) => {
                self.remove_named_except(name, idx);
                let last = self.headers.len().saturating_sub(1);
                if let Some(h) = self.headers.get_mut(idx.min(last)) {
                    h.value = Text::owned(value);
                    h.raw = None;
                }
            }
            None => self.push_named(name, value),
        }
    }

    fn remove_named_except(&mut self, name: &str, keep_idx: usize) {
        let head = &self.head;
        let mut i = 0usize;
        self.headers.retain(|h| {
            let same =
                h.name == HeaderName::Other && h.name_text.get(head).eq_ignore_ascii_case(name);
            let keep = !same || i == keep_idx;
            i += 1;
            keep
        });
    }

    /// Writes the message in wire form into `out`. Untouched lines are copied as
    /// received; edited and new ones are written `Name: value`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match (self.start_raw, &self.start) {
            (Some((s, e)), _) => out.extend_from_slice(
                self.head
                    .get(s as usize..e as usize)
                    .unwrap_or("")
                    .as_bytes(),
            ),
            (
                None,
                Start::Request {
                    method,
                    uri,
                    version,
                },
            ) => {
                out.extend_from_slice(method.as_str().as_bytes());
                out.push(b' ');
                out.extend_from_slice(uri.get(&self.head).as_bytes());
                out.push(b' ');
                out.extend_from_slice(version.get(&self.head).as_bytes());
            }
            (
                None,
                Start::Response {
                    version,
                    code,
                    reason,
                },
            ) => {
                out.extend_from_slice(version.get(&self.head).as_bytes());
                out.push(b' ');
                let mut buf = itoa_u16(*code);
                out.extend_from_slice(buf.as_mut_slice());
                out.push(b' ');
                out.extend_from_slice(reason.get(&self.head).as_bytes());
            }
        }
        out.extend_from_slice(b"\r\n");
        for h in &self.headers {
            match h.raw {
                Some((s, e)) => out.extend_from_slice(
                    self.head
                        .get(s as usize..e as usize)
                        .unwrap_or("")
                        .as_bytes(),
                ),
                None => {
                    out.extend_from_slice(h.name_text.get(&self.head).as_bytes());
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(h.value.get(&self.head).as_bytes());
                }
            }
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
    }

    /// The message in wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.head.len() + self.body.len() + 256);
        self.write_to(&mut out);
        out
    }
}

fn itoa_u16(n: u16) -> [u8; 3] {
    let n = n % 1000;
    [
        b'0' + (n / 100) as u8,
        b'0' + (n / 10 % 10) as u8,
        b'0' + (n % 10) as u8,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK776asdhds\r\n\
v : SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK1,\r\n SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bK2;rport\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@example.com>\r\n\
f: \"Alice, A.\" <sip:alice@example.com>;tag=1928301774\r\n\
i: a84b4c76e66710@pc33.example.com\r\n\
CSeq: 314159 INVITE\r\n\
m: <sip:alice@10.0.0.1>\r\n\
X-Custom:  keep  this \r\n\
Content-Type: application/sdp\r\n\
l: 4\r\n\r\nv=0\ntrailing-garbage";

    #[test]
    fn parses_and_reserializes_byte_for_byte() {
        let m = SipMessage::parse(INVITE.as_bytes()).unwrap();
        assert_eq!(m.method(), Some(&Method::Invite));
        assert_eq!(m.request_uri(), Some("sip:bob@example.com"));
        assert_eq!(m.call_id(), Some("a84b4c76e66710@pc33.example.com"));
        assert_eq!(m.vias().count(), 3);
        assert_eq!(m.vias().nth(2).unwrap().unwrap().port, Some(5070));
        assert_eq!(
            m.from_header().unwrap().display_name().unwrap(),
            "Alice, A."
        );
        assert_eq!(m.header_named("x-custom"), Some("keep  this"));
        assert_eq!(&m.body()[..], b"v=0\n");
        let out = m.to_bytes();
        let expected = INVITE.replace("trailing-garbage", "");
        assert_eq!(String::from_utf8(out).unwrap(), expected);
        m.validate().unwrap();
    }

    #[test]
    fn reason_phrase_kept() {
        let raw = "SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n";
        let m = SipMessage::parse(raw.as_bytes()).unwrap();
        assert_eq!(m.status(), Some(486));
        assert_eq!(m.reason(), Some("Busy Here"));
        assert_eq!(m.to_bytes(), raw.as_bytes());
    }

    #[test]
    fn edits() {
        let mut m = SipMessage::parse(INVITE.as_bytes()).unwrap();
        m.set_request_uri("sip:bob@192.0.2.1:5090");
        assert_eq!(m.remove(HeaderName::Via), 2);
        m.prepend(HeaderName::Via, "SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKnew");
        m.replace(HeaderName::MaxForwards, "69");
        m.push_named("X-New", "1");
        m.remove_named("x-custom");
        m.set_body(Bytes::from_static(b"hello"));
        let s = String::from_utf8(m.to_bytes()).unwrap();
        assert!(s.starts_with("INVITE sip:bob@192.0.2.1:5090 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKnew\r\n"));
        assert!(s.contains("Max-Forwards: 69\r\n"));
        assert!(!s.contains("X-Custom"));
        assert!(s.contains("l: 5\r\n") || s.contains("Content-Length: 5\r\n"));
        assert!(s.ends_with("X-New: 1\r\n\r\nhello"));
        let again = SipMessage::parse(s.as_bytes()).unwrap();
        assert_eq!(&again.body()[..], b"hello");
    }

    #[test]
    fn build_from_scratch() {
        let mut m = SipMessage::new_response(180, "Ringing");
        m.push(HeaderName::Via, "SIP/2.0/UDP h;branch=z9hG4bK1");
        m.push(HeaderName::ContentLength, "0");
        assert_eq!(
            m.to_bytes(),
            b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn content_length_rules() {
        let short = "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 10\r\n\r\nabc";
        let e = SipMessage::parse(short.as_bytes()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ContentLength);
        assert!(e.partial.is_some());
        let dup = "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nab";
        assert_eq!(
            SipMessage::parse(dup.as_bytes()).unwrap_err().kind,
            ErrorKind::ContentLength
        );
        let none = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\n\r\nabc";
        assert_eq!(
            &SipMessage::parse(none.as_bytes()).unwrap().body()[..],
            b"abc"
        );
    }

    #[test]
    fn limits_and_errors() {
        let big = format!(
            "OPTIONS sip:a@b SIP/2.0\r\nX: {}\r\n\r\n",
            "a".repeat(70_000)
        );
        assert_eq!(SipMessage::parse(big.as_bytes()).unwrap_err().status(), 413);
        let e = SipMessage::parse(b"OPTIONS sip:a@b SIP/2.0\r\nNoColonHere\r\nCall-ID: x\r\n\r\n")
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::HeaderLine);
        assert_eq!(e.partial.unwrap().call_id(), Some("x"));
        let v = SipMessage::parse(b"OPTIONS sip:a@b SIP/7.0\r\n\r\n").unwrap();
        assert!(!v.is_sip2());
        assert!(SipMessage::parse(b"OPTIONS  sip:a@b SIP/2.0\r\n\r\n").is_err());
        assert!(SipMessage::parse(b"").is_err());
        assert!(SipMessage::parse(b"\xff\xfe\r\n\r\n").is_err());
        let ext = SipMessage::parse(b"NEWMETHOD sip:a@b SIP/2.0\r\n\r\n").unwrap();
        assert_eq!(ext.method(), Some(&Method::Extension("NEWMETHOD".into())));
    }
}

#[cfg(test)]
mod rule_tests {
    //! One test per rule of the message grammar that the examples above do not cover.
    use super::*;

    fn parse(s: &str) -> Result<SipMessage, ParseError> {
        SipMessage::parse(s.as_bytes())
    }

    #[test]
    fn status_line_without_reason_phrase() {
        for raw in ["SIP/2.0 100\r\n\r\n", "SIP/2.0 100 \r\n\r\n"] {
            let m = parse(raw).unwrap();
            assert_eq!(m.status(), Some(100));
            assert_eq!(m.reason(), Some(""));
            assert_eq!(m.to_bytes(), raw.as_bytes());
        }
        assert!(parse("SIP/2.0 1000 Big\r\n\r\n").is_err());
        assert!(parse("SIP/2.0 099 Small\r\n\r\n").is_err());
        assert!(parse("SIP/2.0  200 OK\r\n\r\n").is_err());
    }

    #[test]
    fn names_case_insensitive_and_compact() {
        let m = parse(
            "OPTIONS sip:a@b SIP/2.0\r\nvIa: SIP/2.0/UDP h;branch=z9hG4bK1\r\nI: cid\r\nCSEQ: 1 OPTIONS\r\nk: 100rel\r\nSupported: timer\r\nX-Odd: 1\r\n\r\n",
        )
        .unwrap();
        assert_eq!(m.call_id(), Some("cid"));
        assert_eq!(m.header_named("call-id"), Some("cid"));
        assert_eq!(m.header_named("i"), Some("cid"));
        assert_eq!(m.header_named("x-odd"), Some("1"));
        assert_eq!(m.supported().collect::<Vec<_>>(), vec!["100rel", "timer"]);
        assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bK1"));
        let written: Vec<_> = m.headers().map(|h| h.written_name).collect();
        assert_eq!(written, vec!["vIa", "I", "CSEQ", "k", "Supported", "X-Odd"]);
    }

    #[test]
    fn whitespace_around_colon() {
        let m = parse("OPTIONS sip:a@b SIP/2.0\r\nCall-ID \t:\t x@y \r\nSubject:\r\n\r\n").unwrap();
        assert_eq!(m.call_id(), Some("x@y"));
        assert_eq!(m.header(HeaderName::Subject), Some(""));
    }

    #[test]
    fn folding_over_several_lines_and_empty_first_line() {
        let raw = "OPTIONS sip:a@b SIP/2.0\r\nSubject: one\r\n two\r\n\tthree\r\nX-Empty:\r\n  later\r\nCall-ID: c\r\n\r\n";
        let m = parse(raw).unwrap();
        assert_eq!(m.header(HeaderName::Subject), Some("one two three"));
        assert_eq!(m.header_named("X-Empty"), Some("later"));
        assert_eq!(m.call_id(), Some("c"));
        assert_eq!(m.to_bytes(), raw.as_bytes());
    }

    #[test]
    fn list_headers_split_others_not() {
        let m = parse(
            "OPTIONS sip:a@b SIP/2.0\r\nAllow: INVITE, ACK ,BYE\r\nAllow: CANCEL\r\nSubject: hello, world\r\nRoute: <sip:p1;lr>, <sip:p2;lr>\r\nRecord-Route: <sip:r1;lr>\r\nWWW-Authenticate: Digest realm=\"a,b\", nonce=\"n\"\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            m.allow().collect::<Vec<_>>(),
            vec!["INVITE", "ACK", "BYE", "CANCEL"]
        );
        assert_eq!(
            m.header_values(HeaderName::Subject).collect::<Vec<_>>(),
            vec!["hello, world"]
        );
        assert_eq!(m.routes().count(), 2);
        assert_eq!(m.record_routes().count(), 1);
        assert_eq!(m.header_values(HeaderName::WwwAuthenticate).count(), 1);
        let ch = m.www_authenticate().next().unwrap().unwrap();
        assert_eq!(ch.get("realm").unwrap(), "a,b");
    }

    #[test]
    fn contact_star() {
        let m = parse("REGISTER sip:r SIP/2.0\r\nContact: *\r\nExpires: 0\r\n\r\n").unwrap();
        assert!(m.contact_is_star());
        assert_eq!(m.contacts().count(), 0);
        assert_eq!(m.expires(), Some(0));
    }

    #[test]
    fn limits_header_count_line_length_and_vias() {
        let limits = Limits {
            max_headers: 5,
            ..Limits::default()
        };
        let mut raw = String::from("OPTIONS sip:a@b SIP/2.0\r\n");
        for i in 0..6 {
            raw.push_str(&format!("X-{i}: v\r\n"));
        }
        raw.push_str("\r\n");
        let e = SipMessage::parse_datagram(raw.as_bytes(), &limits).unwrap_err();
        assert_eq!(e.kind, ErrorKind::TooManyHeaders);
        assert!(e.reason.contains("too many header lines"));

        let limits = Limits {
            max_header_line: 40,
            ..Limits::default()
        };
        let long = format!("OPTIONS sip:a@b SIP/2.0\r\nX: {}\r\n\r\n", "a".repeat(50));
        let e = SipMessage::parse_datagram(long.as_bytes(), &limits).unwrap_err();
        assert!(e.reason.contains("header line too long"));
        // Folding does not escape the line limit.
        let folded = format!(
            "OPTIONS sip:a@b SIP/2.0\r\nX: {}\r\n {}\r\n\r\n",
            "a".repeat(30),
            "b".repeat(30)
        );
        let e = SipMessage::parse_datagram(folded.as_bytes(), &limits).unwrap_err();
        assert!(e.reason.contains("header line too long"));
        let start = format!("OPTIONS sip:{}@b SIP/2.0\r\n\r\n", "a".repeat(50));
        let e = SipMessage::parse_datagram(start.as_bytes(), &limits).unwrap_err();
        assert!(e.reason.contains("start line too long"));

        let limits = Limits {
            max_via: 3,
            ..Limits::default()
        };
        let ok = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP a, SIP/2.0/UDP b\r\nv: SIP/2.0/UDP c\r\n\r\n";
        assert!(SipMessage::parse_datagram(ok.as_bytes(), &limits).is_ok());
        // The fourth value hides in a folded continuation: still counted.
        let over = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP a, SIP/2.0/UDP b\r\nv: SIP/2.0/UDP c,\r\n SIP/2.0/UDP d\r\n\r\n";
        let e = SipMessage::parse_datagram(over.as_bytes(), &limits).unwrap_err();
        assert!(e.reason.contains("too many Via values"));
    }

    #[test]
    fn bare_cr_and_nul_are_refused() {
        let e = parse("OPTIONS sip:a@b SIP/2.0\r\nX: a\rP-Asserted-Identity: <sip:x@y>\r\n\r\n")
            .unwrap_err();
        assert!(e.reason.contains("bare CR"));
        for raw in [
            "OPTIONS sip:a@b SIP/2.0\r\nX: a\r\r\n\r\n",
            "SIP/2.0 200 O\rK\r\nX: a\r\n\r\n",
            "OPTIONS sip:a@b SIP/2.0\r\nX: a\r\nY: b\r",
        ] {
            let e =
                SipMessage::parse_head(raw.trim_end_matches("\r\n").as_bytes(), &Limits::default())
                    .unwrap_err();
            assert!(e.reason.contains("bare CR"), "{raw:?}: {}", e.reason);
        }
        // Counted on every line, also after a limit stopped the parse.
        let limits = Limits {
            max_headers: 1,
            ..Limits::default()
        };
        let e =
            SipMessage::parse_datagram(b"OPTIONS sip:a@b SIP/2.0\r\nX: 1\r\nY: 2\r\n\r\n", &limits)
                .unwrap_err();
        assert!(e.reason.contains("too many header lines"), "{}", e.reason);
        let e = parse("OPTIONS sip:a@b SIP/2.0\r\nX: a\0b\r\n\r\n").unwrap_err();
        assert!(e.reason.contains("NUL"));
        // A NUL in the body is fine.
        let m = parse("OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 3\r\n\r\na\0b").unwrap();
        assert_eq!(&m.body()[..], b"a\0b");
    }

    #[test]
    fn first_empty_line_ends_the_head_however_written() {
        // A bare-LF empty line before a CRLF one: the head ends at the first.
        let m = parse("OPTIONS sip:a@b SIP/2.0\nCall-ID: c\n\nbody\r\n\r\nmore").unwrap();
        assert_eq!(m.header_count(), 1);
        assert_eq!(&m.body()[..], b"body\r\n\r\nmore");
        let m = parse("OPTIONS sip:a@b SIP/2.0\r\nCall-ID: c\r\nX: 1\n\r\nbody").unwrap();
        assert_eq!((m.header_count(), &m.body()[..]), (2, &b"body"[..]));
        let m = parse("OPTIONS sip:a@b SIP/2.0\r\nCall-ID: c\n\nX: 1\r\n\r\nbody").unwrap();
        assert_eq!(m.header_count(), 1);
        assert_eq!(&m.body()[..], b"X: 1\r\n\r\nbody");
        // An error found past a bare-LF empty line belongs to the body, not the head.
        let m = parse("OPTIONS sip:a@b SIP/2.0\nCall-ID: c\n\nno colon here\r\n\r\n").unwrap();
        assert_eq!(m.call_id(), Some("c"));
    }

    #[test]
    fn bare_lf_line_ends_parse() {
        let m = parse("OPTIONS sip:a@b SIP/2.0\nCall-ID: c\nSubject: a\n b\n\nbody").unwrap();
        assert_eq!(m.call_id(), Some("c"));
        assert_eq!(m.header(HeaderName::Subject), Some("a b"));
        assert_eq!(&m.body()[..], b"body");
    }

    #[test]
    fn huge_content_length_in_datagram_is_400_not_413() {
        let e =
            parse("OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 4000000000\r\n\r\nabc").unwrap_err();
        assert_eq!(e.kind, ErrorKind::ContentLength);
        assert_eq!(e.status(), 400);
        let e =
            parse("OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 99999999999\r\n\r\n").unwrap_err();
        assert_eq!(e.kind, ErrorKind::ContentLength);
        assert!(e.reason.contains("out of range"));
        let e = parse("OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n").unwrap_err();
        assert!(e.reason.contains("not a number"));
    }

    #[test]
    fn leading_crlf_before_start_line_is_skipped() {
        let m = parse("\r\n\r\nOPTIONS sip:a@b SIP/2.0\r\nCall-ID: c\r\n\r\n").unwrap();
        assert_eq!(m.call_id(), Some("c"));
        assert!(parse("\r\n\r\n").is_err());
    }

    #[test]
    fn request_line_errors_name_the_fault() {
        let cases = [
            ("INVITE sip:a@b SIP/2.0 \r\n\r\n", "whitespace at the end"),
            ("INVITE  sip:a@b SIP/2.0\r\n\r\n", "more than one space"),
            ("INVITE sip:a@b  SIP/2.0\r\n\r\n", "more than one space"),
            ("INVITE sip:a@b\r\n\r\n", "SIP version"),
            ("INVITE\r\n\r\n", "without request-URI"),
            ("INV(ITE sip:a@b SIP/2.0\r\n\r\n", "method is not a token"),
            (
                "INVITE sip:a b SIP/2.0\r\n\r\n",
                "whitespace inside request-URI",
            ),
            ("INVITE sip:a@b SIP/2\r\n\r\n", "SIP version"),
            ("INVITE sip:a@b HTTP/1.1\r\n\r\n", "SIP version"),
            ("SIP/2.0 2x0 OK\r\n\r\n", "three digits"),
            ("SIP/X.0 200 OK\r\n\r\n", "SIP version"),
        ];
        for (raw, why) in cases {
            let e = parse(raw).unwrap_err();
            assert_eq!(e.kind, ErrorKind::StartLine, "{raw:?}");
            assert!(e.reason.contains(why), "{raw:?}: {}", e.reason);
        }
    }

    #[test]
    fn edited_lines_written_canonically_untouched_kept() {
        let raw =
            "SIP/2.0 486 Busy Here\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nX-A :  1\r\nl: 0\r\n\r\n";
        let mut m = parse(raw).unwrap();
        assert_eq!(m.to_bytes(), raw.as_bytes());
        m.replace_named("X-A", "2");
        let s = String::from_utf8(m.to_bytes()).unwrap();
        assert_eq!(
            s,
            "SIP/2.0 486 Busy Here\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nX-A: 2\r\nl: 0\r\n\r\n"
        );
        m.set_status(480, "Temporarily Unavailable");
        assert!(m
            .to_bytes()
            .starts_with(b"SIP/2.0 480 Temporarily Unavailable\r\n"));
        let top = m.remove_first_value(HeaderName::Via).unwrap();
        assert_eq!(top, "SIP/2.0/UDP h;branch=z9hG4bK1");
        assert_eq!(m.vias().count(), 0);
    }
}
