//! Invariants of the SIP message layer, shared by the cargo-fuzz targets
//! (`fuzz_targets/*.rs`) and the regression test that replays their findings
//! (`tests/fuzz_regressions.rs`, which includes this file by path). A broken
//! invariant panics.

#![allow(dead_code)]

use sipveil::sip::uri::Uri;
use sipveil::sip::{ErrorKind, Frame, HeaderName, Limits, ParseError, SipMessage, StreamFramer};

/// The small limits both targets also run under, to reach the limit paths cheaply.
pub const SMALL: Limits = Limits {
    max_message_size: 2048,
    max_headers: 12,
    max_header_line: 200,
    max_via: 4,
};

/// The `parse_datagram` target: parse `data` under small and default limits and
/// check every invariant.
pub fn datagram(data: &[u8]) {
    let strict_ok = check(data, &SMALL);
    let default_ok = check(data, &Limits::default());
    // Looser limits never refuse what stricter ones accept.
    assert!(!strict_ok || default_ok, "accepted under small limits only");
}

/// The `stream_framer` target: byte 0 picks the limits, bytes 1..9 the chunk
/// sizes; the rest is the stream.
pub fn stream(data: &[u8]) {
    if data.len() < 9 {
        return;
    }
    let limits = if data[0] & 1 == 0 {
        Limits::default()
    } else {
        SMALL
    };
    let chunks: Vec<usize> = data[1..9]
        .iter()
        .map(|b| usize::from(*b % 64) + 1)
        .collect();
    let stream = &data[9..];
    let whole = run(stream, &[stream.len()], limits);
    let chunked = run(stream, &chunks, limits);
    assert_eq!(whole, chunked, "framing depends on chunking");
}

/// Limits for re-parsing our own output: serialization turns bare LFs into CRLFs
/// (the message may grow), and edits add header lines and write edited lines in
/// canonical form (full names, `", "` between values, added tags), which can be
/// longer than the received line. The limits guard the wire, not our own output.
fn relaxed(l: &Limits) -> Limits {
    Limits {
        max_message_size: l.max_message_size * 2 + 1024,
        max_headers: l.max_headers + 16,
        max_header_line: l.max_header_line * 2 + 64,
        ..*l
    }
}

fn check_error(e: &ParseError) {
    assert!(!e.reason.is_empty());
    assert!(matches!(e.status(), 400 | 413));
    if let Some(p) = &e.partial {
        // A partial message is still safe to read.
        let _ = observe(p);
    }
}

/// Everything a caller can read, as text, so two messages can be compared.
fn observe(m: &SipMessage) -> String {
    let mut o = String::new();
    let mut add = |s: String| {
        o.push_str(&s);
        o.push('\n');
    };
    add(format!(
        "{:?} {:?} {:?}",
        m.method(),
        m.status(),
        m.reason()
    ));
    add(format!(
        "{:?} {} {}",
        m.request_uri(),
        m.version(),
        m.is_sip2()
    ));
    if let Some(u) = m.request_uri() {
        add(format!("{:?}", Uri::parse(u)));
        if let Ok(u) = Uri::parse(u) {
            add(format!("{:?} {:?}", u.user_decoded(), u.transport()));
        }
    }
    for h in m.headers() {
        add(format!("{:?} {:?} {:?}", h.name, h.written_name, h.value));
    }
    for v in m.vias() {
        match v {
            Ok(v) => add(format!(
                "{v:?} {:?} {} {:?} {:?} {:?} {:?}",
                v.branch(),
                v.has_rfc3261_branch(),
                v.received(),
                v.rport(),
                v.maddr(),
                v.params.iter().collect::<Vec<_>>()
            )),
            Err(e) => add(e.reason),
        }
    }
    add(format!("{:?}", m.top_via()));
    for na in [m.from_header(), m.to_header()] {
        add(format!("{na:?}"));
        if let Ok(n) = na {
            add(format!("{:?} {:?}", n.display_name(), n.tag()));
        }
    }
    add(format!(
        "{:?} {:?} {:?}",
        m.call_id(),
        m.cseq(),
        m.max_forwards()
    ));
    add(format!("{}", m.contact_is_star()));
    let lists = [
        m.contacts().collect::<Vec<_>>(),
        m.routes().collect(),
        m.record_routes().collect(),
        m.p_asserted_identities().collect(),
        m.p_preferred_identities().collect(),
        m.remote_party_ids().collect(),
    ];
    for list in lists {
        for c in list {
            add(format!("{c:?}"));
            if let Ok(c) = c {
                add(format!(
                    "{:?} {:?} {:?} {:?} {:?}",
                    c.display_name(),
                    c.expires(),
                    c.q(),
                    c.uri.user_decoded(),
                    c.uri.host.ip()
                ));
            }
        }
    }
    add(format!(
        "{:?} {:?} {:?}",
        m.content_length(),
        m.content_type(),
        m.expires()
    ));
    for d in [m.authorization(), m.proxy_authorization()]
        .into_iter()
        .flatten()
        .chain(m.www_authenticate())
        .chain(m.proxy_authenticate())
    {
        add(format!("{d:?}"));
        if let Ok(d) = d {
            add(format!(
                "{:?} {:?} {:?}",
                d.params().collect::<Vec<_>>(),
                d.get("nonce"),
                d.get("realm")
            ));
        }
    }
    add(format!("{:?}", m.privacy().collect::<Vec<_>>()));
    add(format!("{:?}", m.require().collect::<Vec<_>>()));
    add(format!("{:?}", m.supported().collect::<Vec<_>>()));
    add(format!("{:?}", m.allow().collect::<Vec<_>>()));
    add(format!("{:?}", m.session_expires()));
    add(format!("{:?}", m.validate().map_err(|e| e.reason)));
    add(format!("{:?}", m.body()));
    o
}

fn reparse(bytes: &[u8], limits: &Limits, what: &str) -> SipMessage {
    match SipMessage::parse_datagram(bytes, &relaxed(limits)) {
        Ok(m) => m,
        Err(e) => panic!("{what} does not re-parse: {e}"),
    }
}

pub fn check(data: &[u8], limits: &Limits) -> bool {
    let m = match SipMessage::parse_datagram(data, limits) {
        Ok(m) => m,
        Err(e) => {
            check_error(&e);
            return false;
        }
    };
    let seen = observe(&m);

    // Serialization re-parses to the same message and is a fixed point.
    let out = m.to_bytes();
    let again = reparse(&out, limits, "serialization");
    assert_eq!(observe(&again), seen, "re-parse differs");
    assert_eq!(again.to_bytes(), out, "serialization is not a fixed point");

    // Untouched CRLF-only input is written back byte for byte (minus leading line
    // ends and anything after the body).
    let skip = data
        .iter()
        .take_while(|c| **c == b'\r' || **c == b'\n')
        .count();
    let wire = &data[skip..];
    if let Some(end) = wire.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = &wire[..end + 4];
        let bare_lf = head
            .iter()
            .enumerate()
            .any(|(i, c)| *c == b'\n' && (i == 0 || head[i - 1] != b'\r'));
        if !bare_lf {
            assert!(
                wire.starts_with(&out),
                "untouched message not kept byte for byte"
            );
        }
    }

    // Responses built from a request re-parse and echo its dialog headers.
    if m.is_request() {
        let mut r = m.make_response(486, "Busy Here");
        r.set_to_tag("fuzz");
        let rb = r.to_bytes();
        let rr = reparse(&rb, limits, "response");
        for name in [
            HeaderName::Via,
            HeaderName::From,
            HeaderName::CallId,
            HeaderName::CSeq,
        ] {
            assert!(
                rr.header_lines(name).eq(m.header_lines(name)),
                "{name:?} not echoed"
            );
        }
        assert_eq!(rr.reason(), Some("Busy Here"));
    }

    // Edits keep the message parseable.
    let mut e = m.clone();
    let vias_before = e.vias().count();
    e.remove_first_value(HeaderName::Via);
    assert!(e.vias().count() <= vias_before);
    e.prepend(HeaderName::Via, "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKfuzz");
    e.replace(HeaderName::MaxForwards, "69");
    e.remove_named("x-fuzz");
    e.set_body(m.body().clone());
    let eb = e.to_bytes();
    let er = reparse(&eb, limits, "edited message");
    assert_eq!(
        er.top_via().ok().and_then(|v| v.branch()),
        Some("z9hG4bKfuzz")
    );
    assert_eq!(er.max_forwards().ok().flatten(), Some(69));
    assert_eq!(er.body(), m.body());
    true
}

/// What a stream yielded: the framed messages in wire form, and how it ended.
#[derive(Debug, PartialEq)]
pub struct Outcome {
    /// Framed messages, serialized.
    pub messages: Vec<Vec<u8>>,
    /// The error that ended the stream.
    pub error: Option<ErrorKind>,
}

pub fn run(data: &[u8], chunks: &[usize], limits: Limits) -> Outcome {
    let mut f = StreamFramer::new(limits);
    let mut out = Outcome {
        messages: Vec::new(),
        error: None,
    };
    let mut rest = data;
    let mut i = 0usize;
    while !rest.is_empty() {
        let n = chunks
            .get(i % chunks.len().max(1))
            .copied()
            .unwrap_or(rest.len())
            .clamp(1, rest.len());
        i += 1;
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        f.push(piece);
        loop {
            match f.next_frame() {
                Ok(Some(Frame::Message(m))) => {
                    let bytes = m.to_bytes();
                    // A framed message carries a body of exactly Content-Length bytes.
                    let declared = m.content_length().ok().flatten();
                    assert_eq!(declared, Some(m.body().len()));
                    let again = SipMessage::parse_datagram(&bytes, &relaxed(&limits))
                        .unwrap_or_else(|e| panic!("framed message does not re-parse: {e}"));
                    assert_eq!(again.to_bytes(), bytes);
                    out.messages.push(bytes);
                }
                Ok(Some(Frame::Ping | Frame::Pong)) => {}
                Ok(None) => break,
                Err(e) => {
                    assert!(!e.reason.is_empty());
                    out.error = Some(e.kind);
                    return out;
                }
            }
        }
        assert!(f.buffered() <= data.len());
    }
    out
}
