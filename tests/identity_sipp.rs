//! Identity at the boundary with SIPp on both sides (issue 5): a representative
//! set of the cases of tests/identity_e2e.rs, checked by the callee scenarios
//! themselves (`ereg` with `check_it` / `check_it_inverse`): forged identity
//! from an untrusted caller removed, `Privacy: id` toward untrusted applied,
//! trusted-to-trusted pass-through, PAI to Remote-Party-ID conversion. Every
//! call uses fixtures/sipp/uac_identity.xml (PAI, RPID, PPI and `Privacy: id`
//! for +15551234). SKIPs without SIPp unless SIPVEIL_REQUIRE_INTEROP=1.

mod common;

use std::time::Duration;

use common::call::{Edge, EdgeBuilder, Net};
use common::*;

/// One SIPp call through `edge` from `caller_side` ("access" or "core") to the
/// callee on the other side running `uas`; panics unless both complete it.
fn sipp_call(edge: &Edge, from_core: bool, uas: &str, label: &str) {
    let net = edge.net;
    let (local, remote, callee, user) = if from_core {
        (net.core_caller(), net.core(), net.phone(), "dave")
    } else {
        (net.caller(), net.access(), net.callee(), "bob")
    };
    let dir = edge.dir.subdir(label);
    let uas = Sipp::uas("callee", uas, callee, 1).timeout(Duration::from_secs(30));
    let uac = Sipp::uac("caller", "uac_identity.xml", local, remote, 1)
        .service(user)
        .hold_ms(200)
        .timeout(Duration::from_secs(30));
    let (a, b) = run_pair(&dir, &uac, &uas);
    assert!(
        a.all_calls_ok(1) && b.all_calls_ok(1),
        "{}\n\n{}\n\n--- sipveil log ---\n{}",
        a.summary(1),
        b.summary(1),
        edge.log()
    );
}

fn start(test: &str, net: Net, f: impl FnOnce(EdgeBuilder) -> EdgeBuilder) -> Option<Edge> {
    require_sipp(test)?;
    Some(f(Edge::build(test, net)).start())
}

/// Untrusted caller -> trusted core: no PAI, RPID or PPI arrives.
#[test]
fn sipp_forged_identity_removed() {
    let test = "sipp_forged_identity_removed";
    let Some(edge) = start(test, Net(50), |b| b) else {
        return;
    };
    sipp_call(&edge, false, "uas_identity_none.xml", "call");
}

/// Trusted core -> untrusted access with `Privacy: id`: anonymous From, no
/// identity, no Privacy, no trace of the number.
#[test]
fn sipp_privacy_id_toward_untrusted() {
    let test = "sipp_privacy_id_toward_untrusted";
    let Some(edge) = start(test, Net(51), |b| b) else {
        return;
    };
    sipp_call(&edge, true, "uas_identity_anonymous.xml", "call");
}

/// Trusted access -> trusted core: PAI and `Privacy: id` pass, From kept.
#[test]
fn sipp_trusted_to_trusted_pass_through() {
    let test = "sipp_trusted_to_trusted_pass_through";
    let Some(edge) = start(test, Net(52), |b| b.access(|i| i.trusted(true))) else {
        return;
    };
    sipp_call(&edge, false, "uas_identity_pai.xml", "call");
}

/// Trusted access -> core with `identity_header = "rpid"`: Remote-Party-ID
/// with privacy=full, no PAI.
#[test]
fn sipp_pai_converted_to_rpid() {
    let test = "sipp_pai_converted_to_rpid";
    let Some(edge) = start(test, Net(53), |b| {
        b.access(|i| i.trusted(true))
            .core(|i| i.option("identity_header = \"rpid\""))
    }) else {
        return;
    };
    sipp_call(&edge, false, "uas_identity_rpid.xml", "call");
}

/// The callee checks really check: SIPp to SIPp, without sipveil in between,
/// the forged identity reaches the callee, and `uas_identity_none.xml` and
/// `uas_identity_anonymous.xml` fail the call.
#[test]
fn sipp_identity_checks_catch_a_leak() {
    let test = "sipp_identity_checks_catch_a_leak";
    if require_sipp(test).is_none() {
        return;
    }
    let dir = TempDir::new(test);
    let net = Net(54);
    for (i, uas) in ["uas_identity_none.xml", "uas_identity_anonymous.xml"]
        .into_iter()
        .enumerate()
    {
        let callee = Sipp::uas("callee", uas, net.callee(), 1).timeout(Duration::from_secs(15));
        let caller = Sipp::uac("caller", "uac_identity.xml", net.caller(), net.callee(), 1)
            .hold_ms(200)
            .timeout(Duration::from_secs(15));
        let (_, b) = run_pair(&dir.subdir(&format!("direct{i}")), &caller, &callee);
        assert!(
            !b.all_calls_ok(1),
            "{uas} accepted a leak:\n{}",
            b.summary(1)
        );
    }
}
