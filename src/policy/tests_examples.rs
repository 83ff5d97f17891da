//! Every shipped example in `policies/examples/` loads, and does what its header
//! comment (and `policies/README.md`) says, on a sample message.

use std::path::{Path, PathBuf};

use super::testutil::{header, ifaces, invite, msg, ringing};
use super::{Direction, PolicySet};
use crate::dialog::crossing::PRODUCT;
use crate::sip::{Method, SipMessage};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples")
}

fn example(name: &str) -> PolicySet {
    let path = examples_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    match PolicySet::from_sources(&[(name, &text)], &ifaces()) {
        Ok(p) => p,
        Err(e) => panic!("{name} refused:\n{e}"),
    }
}

fn request_to(user: &str) -> SipMessage {
    msg(&format!(
        "INVITE sip:{user}@sbc.example.net SIP/2.0\n\
         Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK7\n\
         From: <sip:0301234@example.test>;tag=7\n\
         To: <sip:{user}@example.test>\n\
         Call-ID: ex1\n\
         CSeq: 1 INVITE\n\
         Subject: lunch\n\
         Date: Sat, 13 Nov 2010 23:29:00 GMT\n\
         X-Account-Code: 4711\n\
         User-Agent: Desk/9\n\
         Require: sec-agree\n\
         X-Internal-Route: pbx7\n\
         Content-Length: 0\n\n"
    ))
}

#[test]
fn every_example_loads_alone_and_together() {
    let dir = examples_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "e164.toml",
            "headers.toml",
            "manipulation.toml",
            "trusted-core.toml"
        ],
        "a new example needs a test of its effect here"
    );
    for n in &names {
        example(n);
    }
    let all = PolicySet::load(&dir, &ifaces()).unwrap();
    assert_eq!(all.files().len(), names.len());
    // The shipped `policies/` directory itself activates none of them.
    let shipped = PolicySet::load(&dir.join(".."), &ifaces()).unwrap();
    assert!(shipped.files().is_empty());
}

#[test]
fn e164_example() {
    let p = example("e164.toml");
    let mut m = request_to("0409876");
    p.rewrite_numbers("access", Direction::In, &mut m);
    assert_eq!(m.request_uri(), Some("sip:+49409876@sbc.example.net"));
    assert_eq!(
        header(&m, "From").as_deref(),
        Some("<sip:+49301234@example.test>;tag=7")
    );
    let mut m = request_to("0044201234");
    p.rewrite_numbers("access", Direction::In, &mut m);
    assert_eq!(m.request_uri(), Some("sip:+44201234@sbc.example.net"));
    let mut m = request_to("+49301234");
    p.rewrite_numbers("access", Direction::Out, &mut m);
    assert_eq!(m.request_uri(), Some("sip:0301234@sbc.example.net"));
    let mut m = request_to("+44201234");
    p.rewrite_numbers("access", Direction::Out, &mut m);
    assert_eq!(m.request_uri(), Some("sip:+44201234@sbc.example.net"));
}

#[test]
fn headers_example() {
    let p = example("headers.toml");
    let src = request_to("100");
    let mut into_core = SipMessage::new_request(Method::Invite, "sip:100@core.example");
    p.crossing("access", "core")
        .copy_across(&src, &mut into_core);
    assert_eq!(
        header(&into_core, "X-Account-Code").as_deref(),
        Some("4711")
    );
    assert_eq!(header(&into_core, "User-Agent").as_deref(), Some("Desk/9"));
    assert_eq!(header(&into_core, "Subject").as_deref(), Some("lunch"));

    let mut to_access = SipMessage::new_request(Method::Invite, "sip:100@192.0.2.10");
    p.crossing("core", "access")
        .copy_across(&src, &mut to_access);
    assert_eq!(header(&to_access, "Subject"), None);
    assert_eq!(header(&to_access, "Date"), None);
    assert_eq!(header(&to_access, "X-Account-Code"), None);
    assert_eq!(header(&to_access, "User-Agent").as_deref(), Some(PRODUCT));
}

#[test]
fn manipulation_example() {
    let p = example("manipulation.toml");
    let partner = "198.51.100.20".parse().ok();
    let mut m = request_to("100");
    p.apply_rules("access", Direction::In, &mut m, partner);
    assert_eq!(header(&m, "X-Partner").as_deref(), Some("acme"));
    let mut m = request_to("100");
    p.apply_rules("access", Direction::In, &mut m, "192.0.2.10".parse().ok());
    assert_eq!(header(&m, "X-Partner"), None);

    let mut m = request_to("*98");
    p.apply_rules("access", Direction::In, &mut m, None);
    assert_eq!(m.request_uri(), Some("sip:voicemail@sbc.example.net"));

    let mut r = ringing();
    r.set_status(503, "Service Unavailable");
    r.push_named("Warning", "399 pbx7.internal \"trunk down\"");
    p.apply_rules("access", Direction::Out, &mut r, None);
    assert_eq!(header(&r, "Warning"), None);
    let mut r = ringing();
    r.push_named("Warning", "399 pbx7.internal \"ringing\"");
    p.apply_rules("access", Direction::Out, &mut r, None);
    assert!(header(&r, "Warning").is_some(), "only 5xx and 6xx lose it");

    let mut m = invite();
    p.apply_rules("access", Direction::Out, &mut m, None);
    assert_eq!(header(&m, "X-Internal-Route"), None);
}

#[test]
fn trusted_core_example() {
    let p = example("trusted-core.toml");
    let mut m = request_to("100");
    assert!(p.normalize_incoming("core", &mut m).is_ok());
    let mut m = request_to("100");
    assert_eq!(
        p.normalize_incoming("access", &mut m).map_err(|r| r.code),
        Err(420)
    );
}
