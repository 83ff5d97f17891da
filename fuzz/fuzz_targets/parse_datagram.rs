//! Datagram parser: `SipMessage::parse_datagram`, `validate`, every typed accessor,
//! a few edits, and the serialize/re-parse invariants. Any panic is a bug; so is a
//! broken invariant (checked with `assert!`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipveil::sip::uri::Uri;
use sipveil::sip::{HeaderName, Limits, ParseError, SipMessage};

/// Limits for re-parsing our own output: serialization turns bare LFs into CRLFs
/// (the message may grow) and edits add header lines.
fn relaxed(l: &Limits) -> Limits {
    Limits {
        max_message_size: l.max_message_size * 2 + 1024,
        max_headers: l.max_headers + 16,
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
    add(format!("{:?} {:?} {:?}", m.method(), m.status(), m.reason()));
    add(format!("{:?} {} {}", m.request_uri(), m.version(), m.is_sip2()));
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
            Err(e) => add(format!("{}", e.reason)),
        }
    }
    add(format!("{:?}", m.top_via()));
    for na in [m.from_header(), m.to_header()] {
        add(format!("{na:?}"));
        if let Ok(n) = na {
            add(format!("{:?} {:?}", n.display_name(), n.tag()));
        }
    }
    add(format!("{:?} {:?} {:?}", m.call_id(), m.cseq(), m.max_forwards()));
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

fn check(data: &[u8], limits: &Limits) -> bool {
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
    let skip = data.iter().take_while(|c| **c == b'\r' || **c == b'\n').count();
    let wire = &data[skip..];
    if let Some(end) = wire.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = &wire[..end + 4];
        let bare_lf = head
            .iter()
            .enumerate()
            .any(|(i, c)| *c == b'\n' && (i == 0 || head[i - 1] != b'\r'));
        if !bare_lf {
            assert!(wire.starts_with(&out), "untouched message not kept byte for byte");
        }
    }

    // Responses built from a request re-parse and echo its dialog headers.
    if m.is_request() {
        let mut r = m.make_response(486, "Busy Here");
        r.set_to_tag("fuzz");
        let rb = r.to_bytes();
        let rr = reparse(&rb, limits, "response");
        for name in [HeaderName::Via, HeaderName::From, HeaderName::CallId, HeaderName::CSeq] {
            assert!(rr.header_lines(name).eq(m.header_lines(name)), "{name:?} not echoed");
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
    assert_eq!(er.top_via().ok().and_then(|v| v.branch()), Some("z9hG4bKfuzz"));
    assert_eq!(er.max_forwards().ok().flatten(), Some(69));
    assert_eq!(er.body(), m.body());
    true
}

fuzz_target!(|data: &[u8]| {
    let small = Limits {
        max_message_size: 2048,
        max_headers: 12,
        max_header_line: 200,
        max_via: 4,
    };
    let strict_ok = check(data, &small);
    let default_ok = check(data, &Limits::default());
    // Looser limits never refuse what stricter ones accept.
    assert!(!strict_ok || default_ok, "accepted under small limits only");
});
