//! Every shipped example in `policies/examples/` passes `sipveil check` and, all
//! loaded together, does in real calls what its header comment says (issue 5).
//! Layout in tests/common/call.rs.

mod common;

use std::path::Path;

use common::call::*;
use common::{Interface, Sipveil, TempDir};

fn examples() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples");
    let mut v: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("policies/examples")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| {
            let name = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read_to_string(&p).expect("read example"))
        })
        .collect();
    v.sort();
    v
}

/// `sipveil check` accepts each example alone, with the interface names of
/// DESIGN.md's example config.
#[test]
fn each_example_passes_check() {
    let all = examples();
    assert!(all.len() >= 4, "examples: {all:?}");
    for (name, text) in all {
        let dir = TempDir::new(&format!("example_check_{name}"));
        let policies = dir.subdir("policies");
        std::fs::write(policies.join(&name), text).expect("copy example");
        let net = Net(40);
        let sbc = Sipveil::configure(
            &dir.subdir("sipveil"),
            &[
                Interface::udp("access", net.access()),
                Interface::udp("core", net.core()).trusted(true),
            ],
            &[],
            &format!("[policy]\ndir = \"{}\"\n", policies.display()),
        );
        let out = sbc.cli(&["check"]);
        assert!(
            out.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// All examples at once in calls: e164 (national in, national back out),
/// headers (X-Account-Code and the phone's User-Agent into the core; Subject
/// not toward the phones), manipulation (`*98` reaches voicemail),
/// trusted-core (core's `Require: sec-agree` not refused, access's is: 420).
#[test]
fn examples_in_calls() {
    let mut b = Edge::build("examples_in_calls", Net(41));
    for (name, text) in examples() {
        b = b.policy(&name, &text);
    }
    let edge = b.start();
    let mut caller = edge.caller();
    let mut callee = edge.callee();

    let text = Invite::new(&caller, "0409876")
        .from("<sip:0301234@example.test>")
        .header("X-Account-Code: 4711")
        .header("User-Agent: Desk/9")
        .text(&caller);
    let (d, _) = call(&edge, &mut caller, &mut callee, &text, &[]);
    let b = &d.b_invite;
    assert_eq!(user_of(b.request_uri().unwrap_or_default()), "+49409876");
    assert_eq!(user_of(value(b, "From")), "+49301234");
    assert_eq!(value(b, "X-Account-Code"), "4711");
    assert_eq!(value(b, "User-Agent"), "Desk/9");

    let text = Invite::new(&caller, "*98").text(&caller);
    let (d, _) = call(&edge, &mut caller, &mut callee, &text, &[]);
    assert_eq!(
        user_of(d.b_invite.request_uri().unwrap_or_default()),
        "voicemail"
    );

    let text = Invite::new(&caller, "bob")
        .header("Require: sec-agree")
        .text(&caller);
    let fin = refused(&edge, &mut caller, &mut callee, &text);
    assert_eq!(fin.status(), Some(420), "{}", fin.raw);

    let mut core_caller = edge.core_caller();
    let mut phone = edge.phone();
    let text = Invite::new(&core_caller, "+49301234")
        .from("<sip:+4940555@example.test>")
        .header("Require: sec-agree")
        .header("Subject: from the core")
        .text(&core_caller);
    let (d, _) = call(&edge, &mut core_caller, &mut phone, &text, &[]);
    let b = &d.b_invite;
    assert_eq!(user_of(b.request_uri().unwrap_or_default()), "0301234");
    assert_eq!(user_of(value(b, "From")), "040555");
    assert_absent(b, "Subject");
    assert!(value(b, "User-Agent").starts_with("sipveil/"));
}
