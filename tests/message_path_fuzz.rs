//! Replays the `message_path` fuzz target's seed corpus and findings
//! (`fuzz/corpus/message_path/`, `fuzz/regressions/message_path/`) through the
//! target's own driver and invariant checks (`fuzz/path_checks.rs`), so they hold
//! without installing cargo-fuzz; and checks that the seed call flows really get
//! through admission into the core and back out.

use std::path::Path;

#[path = "common/inputs.rs"]
mod inputs;
use inputs::files;

#[path = "../fuzz/path_checks.rs"]
mod path_checks;

fn seed(name: &str) -> path_checks::Trace {
    let path = format!("fuzz/corpus/message_path/{name}");
    let data = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(&path))
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    path_checks::run(&data)
}

#[test]
fn corpus_and_regressions_hold_the_invariants() {
    let corpus = files("fuzz/corpus/message_path");
    assert!(corpus.len() >= 10);
    for (name, data) in corpus
        .into_iter()
        .chain(files("fuzz/regressions/message_path"))
    {
        eprintln!("{name}");
        path_checks::run(&data);
    }
}

/// The seeds are worth fuzzing from only if they get where they claim to: these
/// call flows pass admission and the placeholders let the fake peers answer
/// sipveil's own Call-IDs, tags, branches and digest challenges.
#[test]
fn seed_call_flows_reach_the_core() {
    let caller = "192.0.2.10:5060";
    let callee = "127.0.0.2:5090";

    let t = seed("call-invite-ack-bye");
    assert_eq!(t.to_engine, t.delivered);
    for (to, start) in [
        (callee, "INVITE "),
        (caller, "SIP/2.0 180 "),
        (caller, "SIP/2.0 200 "),
        (callee, "ACK "),
        (callee, "BYE "),
    ] {
        assert!(t.sent_to(to, start), "call: no {start} to {to}: {t:#?}");
    }

    let t = seed("call-cancel");
    assert!(t.sent_to(callee, "CANCEL "), "{t:#?}");
    assert!(t.sent_to(caller, "SIP/2.0 487 "), "{t:#?}");

    let t = seed("register-then-call-from-core");
    assert!(t.sent_to(caller, "SIP/2.0 401 "), "{t:#?}");
    assert!(
        t.sent_to(caller, "SIP/2.0 200 "),
        "REGISTER with $A: {t:#?}"
    );
    assert!(t.sent_to(caller, "INVITE sip:alice@"), "{t:#?}");
    assert!(t.sent_to(callee, "BYE "), "{t:#?}");

    let t = seed("invite-claiming-subscriber-authenticates");
    assert!(t.sent_to(caller, "SIP/2.0 407 "), "{t:#?}");
    assert!(t.sent_to(callee, "INVITE "), "{t:#?}");

    // Admission as configured: the brute-force ban ends the guessing.
    let t = seed("register-bad-credentials-default-admission");
    assert!(t.to_engine < t.delivered, "{t:#?}");
}
