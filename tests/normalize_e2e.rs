//! Normalization of buggy clients (`[normalize]`, policies/README.md) through the
//! real binary (issue 5): each fix seen from the other leg or in sipveil's
//! answer, and fixes switched off per interface. Layout in tests/common/call.rs.

mod common;

use common::call::*;
use common::ua::{param, uri_of, Register, Ua};
use common::Route;

/// Whether a header name is written in full, canonical-looking form.
fn canonical(name: &str) -> bool {
    name.len() > 1 && name != name.to_ascii_uppercase() && name != name.to_ascii_lowercase()
}

/// Compact and oddly cased header names from the caller come out on the other
/// leg (and in the answers to the caller) in full canonical form, with their
/// values: `s:` Subject, `k:` Supported, `c:` Content-Type.
#[test]
fn compact_forms_expanded() {
    let edge = Edge::start("compact_forms_expanded", Net(30));
    let mut caller = edge.caller();
    let mut callee = edge.callee();
    let body = sdp(caller.local.ip(), &caller.local.ip().to_string(), 40000, "");
    let text = format!(
        "INVITE sip:bob@{server} SIP/2.0\r\n\
         v: {via}\r\n\
         MAX-FORWARDS: 70\r\n\
         f: <sip:alice@{DOMAIN}>;tag={tag}\r\n\
         t: <sip:bob@{DOMAIN}>\r\n\
         i: {cid}\r\n\
         cseq: 1 INVITE\r\n\
         m: <sip:alice@{local}>\r\n\
         s: compact subject\r\n\
         k: timer\r\n\
         c: application/sdp\r\n\
         l: {len}\r\n\r\n{body}",
        server = caller.server,
        via = via(&caller),
        tag = common::ua::unique("ft"),
        cid = common::ua::unique("call-"),
        local = caller.local,
        len = body.len(),
    );
    let (d, _) = call(&edge, &mut caller, &mut callee, &text, &[]);
    let b = &d.b_invite;
    for (n, _) in &b.headers {
        assert!(
            canonical(n),
            "header name {n:?} on the core leg:\n{}",
            b.raw
        );
    }
    for (n, v) in [
        ("Subject", "compact subject"),
        ("Supported", "timer"),
        ("Content-Type", "application/sdp"),
    ] {
        let got: Vec<&str> = b
            .headers
            .iter()
            .filter(|(name, _)| name == n)
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(got, [v], "{n}:\n{}", b.raw);
    }
    for (n, _) in &d.a_ok.headers {
        assert!(canonical(n), "header name {n:?} toward the caller");
    }
}

/// Per-interface switches: with every fix on (access), a request without
/// Max-Forwards gets one before the rules look (a rule on "Max-Forwards
/// absent" does not fire) and `Require: foo` is answered 420 with
/// `Unsupported: foo`; with `max_forwards` and `require` off for core, the
/// rule fires and the call with `Require: foo` goes through (the tag is not
/// relayed). A supported tag (timer) is relayed from access.
#[test]
fn max_forwards_and_require_with_switches() {
    let policy = "\
[normalize]
interfaces = [\"core\"]
max_forwards = false
require = false

[[headers]]
interface = \"*\"
direction = \"in\"
pass = [\"X-No-Max-Forwards\"]

[[rule]]
interface = \"*\"
direction = \"in\"
methods = [\"INVITE\"]
header_absent = \"Max-Forwards\"
add_header = { name = \"X-No-Max-Forwards\", value = \"1\" }
";
    let edge = Edge::build("max_forwards_and_require_with_switches", Net(31))
        .policy("10-normalize.toml", policy)
        .start();

    // access: fixes on.
    let mut caller = edge.caller();
    let mut callee = edge.callee();
    let mut inv = Invite::new(&caller, "bob").header("Require: timer");
    inv.max_forwards = false;
    let text = inv.text(&caller);
    let (d, _) = call(&edge, &mut caller, &mut callee, &text, &[]);
    assert_eq!(value(&d.b_invite, "Max-Forwards"), "69");
    assert_absent(&d.b_invite, "X-No-Max-Forwards");
    assert_eq!(value(&d.b_invite, "Require"), "timer");

    let text = Invite::new(&caller, "bob")
        .header("Require: foo, timer")
        .text(&caller);
    let fin = refused(&edge, &mut caller, &mut callee, &text);
    assert_eq!(fin.status(), Some(420), "{}", fin.raw);
    assert_eq!(value(&fin, "Unsupported"), "foo");

    // core: max_forwards and require off.
    let mut core_caller = edge.core_caller();
    let mut phone = edge.phone();
    let mut inv = Invite::new(&core_caller, "dave").header("Require: foo");
    inv.max_forwards = false;
    let text = inv.text(&core_caller);
    let (d, _) = call(&edge, &mut core_caller, &mut phone, &text, &[]);
    let b = &d.b_invite;
    assert_eq!(value(b, "X-No-Max-Forwards"), "1", "{}", b.raw);
    assert_eq!(value(b, "Max-Forwards"), "69");
    assert_absent(b, "Require");
}

/// Call-ID, CSeq, Content-Length, From or To written twice with different
/// values: 400 naming the header, nothing relayed; identical repeats are
/// merged and the call goes through; with `duplicate_headers = false` (core)
/// identical repeats are refused too.
#[test]
fn duplicate_single_headers() {
    let edge = Edge::build("duplicate_single_headers", Net(32))
        .policy(
            "10-normalize.toml",
            "[normalize]\ninterfaces = [\"core\"]\nduplicate_headers = false\n",
        )
        .start();
    let mut caller = edge.caller();
    let mut callee = edge.callee();

    let dup = |text: &str, name: &str, other: Option<&str>| -> String {
        let start = text
            .find(&format!("\r\n{name}: "))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            + 2;
        let end = start + text[start..].find("\r\n").expect("line end");
        let line = &text[start..end];
        let copy = match other {
            Some(v) => format!("{name}: {v}"),
            None => line.to_string(),
        };
        format!("{}\r\n{copy}{}", &text[..end], &text[end..])
    };
    let cases = [
        ("Call-ID", "another-call-id@example.test"),
        ("CSeq", "7 INVITE"),
        ("Content-Length", "0"),
        ("From", "<sip:mallory@example.test>;tag=m1"),
        ("To", "<sip:carol@example.test>"),
    ];
    for (name, other) in cases {
        let text = dup(
            &Invite::new(&caller, "bob").text(&caller),
            name,
            Some(other),
        );
        let fin = refused(&edge, &mut caller, &mut callee, &text);
        assert_eq!(fin.status(), Some(400), "{name}: {}", fin.raw);
        assert!(
            fin.start_line.contains(name),
            "400 does not name {name}: {}",
            fin.start_line
        );
    }

    let mut text = Invite::new(&caller, "bob").text(&caller);
    for (name, _) in cases {
        text = dup(&text, name, None);
    }
    let (d, _) = call(&edge, &mut caller, &mut callee, &text, &[]);
    assert_eq!(d.b_invite.header_all("From").len(), 1);

    // With the fix off (core), even identical repeats are refused.
    let mut core_caller = edge.core_caller();
    let mut phone = edge.phone();
    let text = dup(
        &Invite::new(&core_caller, "dave").text(&core_caller),
        "Call-ID",
        None,
    );
    let fin = refused(&edge, &mut core_caller, &mut phone, &text);
    assert_eq!(fin.status(), Some(400), "{}", fin.raw);
    assert!(fin.start_line.contains("Call-ID"), "{}", fin.start_line);
}

/// Content-Length: a UDP request without one (the body runs to the end of the
/// datagram, RFC 3261 §18.3) crosses with the body's real length; one that
/// claims more than the datagram holds is refused with 400.
#[test]
fn content_length_recomputed() {
    let edge = Edge::start("content_length_recomputed", Net(33));
    let mut caller = edge.caller();
    let mut callee = edge.callee();
    let full = Invite::new(&caller, "bob").text(&caller);
    let (head, body) = full.split_once("\r\n\r\n").expect("head and body");
    let without: String = head
        .split("\r\n")
        .filter(|l| !l.starts_with("Content-Length:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    let text = format!("{without}\r\n{body}");
    let (d, _) = call(&edge, &mut caller, &mut callee, &text, &[]);
    let b = &d.b_invite;
    assert_eq!(value(b, "Content-Length"), b.body.len().to_string());
    assert!(b.body.starts_with("v=0"), "{}", b.raw);

    let full = Invite::new(&caller, "bob").text(&caller);
    let too_long = full.replacen(
        &format!("Content-Length: {}", body.len()),
        &format!("Content-Length: {}", body.len() + 40),
        1,
    );
    let fin = refused(&edge, &mut caller, &mut callee, &too_long);
    assert_eq!(fin.status(), Some(400), "{}", fin.raw);
}

/// Registrar side of normalization: a Contact `;expires=` wins over the
/// Expires header (a Contact without it takes the header's value); a phone
/// behind NAT registering a private Contact (192.168.x) is called at the source
/// address of its REGISTER with that Contact as request-URI, and the rest of
/// the dialog (the caller's BYE) reaches it there although its 200 names the
/// private address again.
#[test]
fn expires_and_private_contact() {
    let net = Net(34);
    let pw = "erin-pw-55a1";
    let edge = Edge::build("expires_and_private_contact", net)
        .extra(&format!(
            "[registrar]\ndomain = \"{DOMAIN}\"\ninterface = \"access\"\nauth = true\n\
             min_expires = 10\n"
        ))
        .subscriber(&format!("erin@{DOMAIN}"), pw)
        .routes(vec![Route::new("core", "registrar", "access")])
        .start();
    let mut phone = Ua::bind(net.phone(), net.access(), "erin", pw, DOMAIN).expect("bind phone");

    let both = Register {
        contacts: vec![
            "<sip:erin@192.168.1.50:5060>;expires=60".into(),
            "<sip:erin-2@192.168.1.50:5060>".into(),
        ],
        expires: Some(300),
        ..Register::default()
    };
    let ok = phone.register_ok(&both);
    let mut got: Vec<(String, Option<String>)> = ok
        .contacts()
        .iter()
        .map(|c| {
            (
                uri_of(c).to_string(),
                param(c, "expires").map(str::to_string),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("sip:erin-2@192.168.1.50:5060".into(), Some("300".into())),
            ("sip:erin@192.168.1.50:5060".into(), Some("60".into())),
        ],
        "{}",
        ok.raw
    );
    // Only the NATed contact stays for the call.
    let one = Register {
        contacts: vec!["<sip:erin-2@192.168.1.50:5060>;expires=0".into()],
        ..Register::default()
    };
    phone.register_ok(&one);

    let mut caller = edge.core_caller();
    let text = Invite::new(&caller, "erin").text(&caller);
    let mut d = answer_call(
        &edge,
        &mut caller,
        &mut phone,
        &text,
        &["Contact: <sip:erin@192.168.1.50:5060>"],
    );
    assert_eq!(
        d.b_invite.request_uri(),
        Some("sip:erin@192.168.1.50:5060"),
        "{}",
        d.b_invite.raw
    );
    assert_eq!(d.b_peer.ip(), net.access().ip());
    d.hangup(&edge, &mut caller, &mut phone);
}

/// Whether an SDP puts its audio on hold: a zero connection address or a
/// sendonly/inactive direction.
fn is_hold(sdp: &str) -> bool {
    sdp.lines().any(|l| l.trim() == "c=IN IP4 0.0.0.0")
        || sdp
            .lines()
            .any(|l| matches!(l.trim(), "a=sendonly" | "a=inactive"))
}

/// A re-INVITE with `c=IN IP4 0.0.0.0` (RFC 2543 hold) reaches the callee,
/// through the media relay, still as hold, not as the caller's address with
/// media flowing; the un-hold afterwards reaches it as an active stream. With
/// `hold_zero_address` on (the default) the hold arrives in RFC 3264 form:
/// sipveil's address and `a=sendonly`; switched off, as `c=0.0.0.0`.
#[test]
fn zero_address_hold_stays_hold() {
    for (net, fix) in [(35, true), (36, false)] {
        let mut b = Edge::build("zero_address_hold_stays_hold", Net(net));
        if !fix {
            b = b.policy(
                "10-normalize.toml",
                "[normalize]\nhold_zero_address = false\n",
            );
        }
        let edge = b.start();
        let mut caller = edge.caller();
        let mut callee = edge.callee();
        let text = Invite::new(&caller, "bob").text(&caller);
        let mut d = answer_call(&edge, &mut caller, &mut callee, &text, &[]);
        assert!(!is_hold(&d.b_invite.body), "{}", d.b_invite.raw);

        let ip = caller.local.ip();
        let hold = sdp(ip, "0.0.0.0", 40000, "");
        let re = d.reinvite(&edge, &mut caller, &mut callee, &hold);
        assert!(is_hold(&re.body), "hold lost on the way:\n{}", re.raw);
        assert!(!re.body.contains(&ip.to_string()), "{}", re.raw);
        let zero = re.body.lines().any(|l| l.trim() == "c=IN IP4 0.0.0.0");
        let sendonly = re.body.lines().any(|l| l.trim() == "a=sendonly");
        if fix {
            assert!(!zero && sendonly, "hold not in RFC 3264 form:\n{}", re.raw);
        } else {
            assert!(
                zero && !sendonly,
                "hold not carried as written:\n{}",
                re.raw
            );
        }

        let resume = sdp(ip, &ip.to_string(), 40000, "");
        let re = d.reinvite(&edge, &mut caller, &mut callee, &resume);
        assert!(!is_hold(&re.body), "still on hold:\n{}", re.raw);
        d.hangup(&edge, &mut caller, &mut callee);
    }
}
