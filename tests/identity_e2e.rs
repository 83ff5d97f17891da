//! Identity at the boundary through the real binary (issue 5; RFC 3325, RFC
//! 3323): which asserted identity, From and Privacy reach the other leg, for
//! each trust combination and interface option (`trusted`, `send_identity`,
//! `identity_header`). Two Rust UAs play caller and callee (tests/common/call.rs
//! has the layout: access untrusted, core trusted unless a test says
//! otherwise); every call is answered and hung up.

mod common;

use common::call::*;
use common::ua::{param, uri_of, Ua};

const ALICE_PW: &str = "alice-pw-3c9d";

/// The `[registrar]` section for tests with an authenticated caller.
fn registrar() -> String {
    format!("[registrar]\ndomain = \"{DOMAIN}\"\ninterface = \"access\"\nauth = true\n")
}

/// A caller on the core side (trusted) calling the phone behind access.
fn core_call(edge: &Edge, inv: impl FnOnce(&Ua) -> Invite) -> (Dialog, common::ua::SipMsg) {
    let mut caller = edge.core_caller();
    let mut phone = edge.phone();
    let text = inv(&caller).text(&caller);
    call(edge, &mut caller, &mut phone, &text, &[])
}

/// The anonymous From of RFC 3323 §4.1.1, with a tag of sipveil's own.
#[track_caller]
fn assert_anonymous_from(b: &common::ua::SipMsg, caller_tag: &str) {
    let from = value(b, "From");
    assert!(
        from.starts_with("\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag="),
        "From not anonymous: {from}"
    );
    let tag = param(from, "tag").unwrap_or_default();
    assert!(!tag.is_empty() && tag != caller_tag, "From tag: {from}");
}

/// Headers RFC 3323 §5.1 names for `Privacy: header`, passed by policy so that
/// only Privacy can be what keeps them off the other leg.
const REVEALING: [(&str, &str); 6] = [
    ("Subject", "quarterly numbers"),
    (
        "Call-Info",
        "<http://alice.example.test/photo.png>;purpose=icon",
    ),
    ("Organization", "Example Corp"),
    ("User-Agent", "CarolPhone/2.1"),
    ("Reply-To", "<sip:carol-assistant@example.test>"),
    ("In-Reply-To", "70710@saturn.example.test"),
];

const PASS_REVEALING: &str = "[[headers]]\ninterface = \"core\"\ndirection = \"in\"\n\
    pass = [\"Call-Info\", \"Organization\", \"User-Agent\", \"Reply-To\", \"In-Reply-To\"]\n";

fn with_revealing(mut inv: Invite) -> Invite {
    for (n, v) in REVEALING {
        inv = inv.header(&format!("{n}: {v}"));
    }
    inv
}

/// An untrusted caller cannot assert an identity: P-Asserted-Identity,
/// Remote-Party-ID and P-Preferred-Identity it wrote do not reach the trusted
/// core, and sipveil asserts none (no registrar, nobody authenticated).
#[test]
fn forged_identity_from_untrusted_is_removed() {
    let edge = Edge::start("forged_identity_from_untrusted_is_removed", Net(1));
    let mut caller = edge.caller();
    let mut callee = edge.callee();
    let text = Invite::new(&caller, "bob")
        .header("P-Asserted-Identity: \"CEO\" <sip:ceo@example.test>")
        .header("P-Asserted-Identity: <tel:+15550001>")
        .header("Remote-Party-ID: <sip:ceo@example.test>;party=calling;screen=yes")
        .header("P-Preferred-Identity: <sip:ceo@example.test>")
        .text(&caller);
    let (d, _) = call(&edge, &mut caller, &mut callee, &text, &[]);
    for h in [
        "P-Asserted-Identity",
        "Remote-Party-ID",
        "P-Preferred-Identity",
    ] {
        assert_absent(&d.b_invite, h);
    }
    // And nothing of it leaks into From either.
    assert_eq!(user_of(value(&d.b_invite, "From")), "alice");
}

/// A caller that authenticated as subscriber alice (digest, 407) gets
/// `P-Asserted-Identity: <sip:alice@example.test>` toward the core, whatever
/// PAI it wrote itself; its P-Preferred-Identity is honoured when it names
/// alice herself and refused when it names someone else; PPI never crosses.
#[test]
fn authenticated_caller_is_asserted_and_ppi_checked() {
    let edge = Edge::build("authenticated_caller_is_asserted", Net(2))
        .extra(&registrar())
        .subscriber(&format!("alice@{DOMAIN}"), ALICE_PW)
        .subscriber(&format!("boss@{DOMAIN}"), "boss-pw")
        .start();
    let mut caller = edge.caller();
    let mut callee = edge.callee();

    let cases = [
        // (extra header, expected PAI)
        (
            "P-Asserted-Identity: <sip:boss@example.test>",
            "<sip:alice@example.test>",
        ),
        (
            "P-Preferred-Identity: \"Alice Desk\" <sip:alice@example.test>",
            "\"Alice Desk\" <sip:alice@example.test>",
        ),
        (
            "P-Preferred-Identity: <sip:boss@example.test>",
            "<sip:alice@example.test>",
        ),
    ];
    for (extra, want) in cases {
        let inv = Invite::new(&caller, "bob").header(extra);
        let text = authenticated_invite(&edge, &mut caller, &inv, ALICE_PW);
        let (d, _) = call(&edge, &mut caller, &mut callee, &text, &[]);
        let pai = d.b_invite.header_all("P-Asserted-Identity");
        assert_eq!(pai, [want], "for {extra}:\n{}", d.b_invite.raw);
        assert_absent(&d.b_invite, "P-Preferred-Identity");
        assert_absent(&d.b_invite, "Proxy-Authorization");
    }
}

/// `Privacy: id` from the trusted core toward the untrusted access side: no
/// asserted identity, an anonymous From with a fresh tag for the whole dialog
/// (the BYE too), and no Privacy header left once the service is applied;
/// headers that `id` does not cover still cross.
#[test]
fn privacy_id_toward_untrusted() {
    let edge = Edge::start("privacy_id_toward_untrusted", Net(3));
    let mut tag = String::new();
    let (d, bye) = core_call(&edge, |ua| {
        let inv = Invite::new(ua, "dave")
            .from("\"Carol\" <sip:+15551234@example.test>")
            .header("P-Asserted-Identity: <sip:+15551234@example.test>")
            .header("Privacy: id")
            .header("Subject: hello");
        tag = inv.from_tag.clone();
        inv
    });
    let b = &d.b_invite;
    assert_absent(b, "P-Asserted-Identity");
    assert_absent(b, "Remote-Party-ID");
    assert_absent(b, "Privacy");
    assert_anonymous_from(b, &tag);
    assert!(!b.raw.contains("15551234"), "the number leaked:\n{}", b.raw);
    assert_eq!(value(b, "Subject"), "hello");
    assert_eq!(value(&bye, "From"), value(b, "From"), "BYE:\n{}", bye.raw);
}

/// `Privacy: user` anonymizes From toward untrusted; the asserted identity
/// (not covered by `user`) is sent, as `send_identity` defaults to true.
#[test]
fn privacy_user_toward_untrusted() {
    let edge = Edge::start("privacy_user_toward_untrusted", Net(4));
    let mut tag = String::new();
    let (d, _) = core_call(&edge, |ua| {
        let inv = Invite::new(ua, "dave")
            .from("<sip:+15551234@example.test>")
            .header("P-Asserted-Identity: <sip:+15551234@example.test>")
            .header("Privacy: user");
        tag = inv.from_tag.clone();
        inv
    });
    let b = &d.b_invite;
    assert_anonymous_from(b, &tag);
    assert_eq!(
        b.header_all("P-Asserted-Identity"),
        ["<sip:+15551234@example.test>"]
    );
    assert_absent(b, "Privacy");
}

/// `Privacy: header` anonymizes From and strips Subject, Call-Info,
/// Organization, User-Agent, Reply-To and In-Reply-To (RFC 3323 §5.1), even
/// though a policy passes them; `Privacy: none` on the same setup leaves all of
/// them, the From and the asserted identity as they were.
#[test]
fn privacy_header_and_none_toward_untrusted() {
    let edge = Edge::build("privacy_header_and_none", Net(5))
        .policy("10-pass.toml", PASS_REVEALING)
        .start();

    let mut tag = String::new();
    let (d, _) = core_call(&edge, |ua| {
        let inv = with_revealing(Invite::new(ua, "dave")).header("Privacy: header");
        tag = inv.from_tag.clone();
        inv
    });
    let b = &d.b_invite;
    assert_anonymous_from(b, &tag);
    for (n, _) in REVEALING {
        assert_absent(b, n);
    }
    assert_absent(b, "Privacy");

    let (d, _) = core_call(&edge, |ua| {
        with_revealing(Invite::new(ua, "dave"))
            .header("P-Asserted-Identity: <sip:carol@example.test>")
            .header("Privacy: none")
    });
    let b = &d.b_invite;
    for (n, v) in REVEALING {
        assert_eq!(b.header_all(n), [v], "{n}:\n{}", b.raw);
    }
    assert_eq!(user_of(value(b, "From")), "carol");
    assert_eq!(
        b.header_all("P-Asserted-Identity"),
        ["<sip:carol@example.test>"]
    );
}

/// `Privacy: id;critical` toward untrusted is met (the call goes through
/// anonymized); a critical level sipveil cannot meet, `session` without a
/// media relay (`[media] mode = "passthrough"`), is answered 500 with the
/// reason, and the callee hears nothing (RFC 3323 §4.2).
#[test]
fn critical_privacy_met_or_refused() {
    let edge = Edge::build("critical_privacy_met_or_refused", Net(6))
        .extra("[media]\nmode = \"passthrough\"\n")
        .start();
    let mut tag = String::new();
    let (d, _) = core_call(&edge, |ua| {
        let inv = Invite::new(ua, "dave")
            .header("P-Asserted-Identity: <sip:carol@example.test>")
            .header("Privacy: id;critical");
        tag = inv.from_tag.clone();
        inv
    });
    assert_anonymous_from(&d.b_invite, &tag);
    assert_absent(&d.b_invite, "P-Asserted-Identity");
    assert_absent(&d.b_invite, "Privacy");

    let mut caller = edge.core_caller();
    let mut phone = edge.phone();
    let text = Invite::new(&caller, "dave")
        .header("Privacy: session;critical")
        .text(&caller);
    let fin = refused(&edge, &mut caller, &mut phone, &text);
    assert_eq!(fin.status(), Some(500), "{}", fin.raw);
    assert!(
        fin.start_line.contains("session"),
        "500 without a reason: {}",
        fin.start_line
    );
}

/// `send_identity = false` on the untrusted access interface: even without any
/// Privacy request, no asserted identity leaves toward it.
#[test]
fn send_identity_false_withholds_identity() {
    let edge = Edge::build("send_identity_false_withholds_identity", Net(7))
        .access(|i| i.option("send_identity = false"))
        .start();
    let (d, _) = core_call(&edge, |ua| {
        Invite::new(ua, "dave").header("P-Asserted-Identity: <sip:carol@example.test>")
    });
    assert_absent(&d.b_invite, "P-Asserted-Identity");
    assert_absent(&d.b_invite, "Remote-Party-ID");
    // Without Privacy, From is not anonymized.
    assert_eq!(user_of(value(&d.b_invite, "From")), "carol");
}

/// Between two trusted interfaces the asserted identity and the Privacy request
/// pass through unchanged (RFC 3325 §7: the next element of the trust domain
/// applies privacy), From is not anonymized; with `identity_header = "both"` on
/// the egress, PAI and the equivalent Remote-Party-ID are both sent.
#[test]
fn trusted_to_trusted_passes_identity_and_privacy() {
    let edge = Edge::build("trusted_to_trusted_passes_identity", Net(8))
        .access(|i| i.trusted(true).option("identity_header = \"both\""))
        .start();
    let mut caller = edge.caller();
    let mut callee = edge.callee();
    let text = Invite::new(&caller, "bob")
        .header("P-Asserted-Identity: \"Alice\" <sip:+4930123@example.test>")
        .header("P-Asserted-Identity: <tel:+4930123>")
        .header("Privacy: id")
        .text(&caller);
    let (d, _) = call(&edge, &mut caller, &mut callee, &text, &[]);
    let b = &d.b_invite;
    assert_eq!(
        b.header_all("P-Asserted-Identity"),
        ["\"Alice\" <sip:+4930123@example.test>", "<tel:+4930123>"]
    );
    assert_eq!(value(b, "Privacy"), "id");
    assert_absent(b, "Remote-Party-ID");
    assert_eq!(user_of(value(b, "From")), "alice");

    // The other way, toward access with identity_header = "both".
    let (d, _) = core_call(&edge, |ua| {
        Invite::new(ua, "dave").header("P-Asserted-Identity: <sip:carol@example.test>")
    });
    let b = &d.b_invite;
    assert_eq!(
        b.header_all("P-Asserted-Identity"),
        ["<sip:carol@example.test>"]
    );
    let rpid = b.header_all("Remote-Party-ID");
    assert_eq!(rpid.len(), 1, "{}", b.raw);
    assert_eq!(uri_of(rpid[0]), "sip:carol@example.test");
    assert_eq!(param(rpid[0], "party"), Some("calling"), "{}", rpid[0]);
    assert_eq!(param(rpid[0], "privacy"), Some("off"), "{}", rpid[0]);
}

/// `identity_header = "rpid"` toward a legacy gateway: PAI from a trusted peer
/// becomes Remote-Party-ID (`privacy=full` for `Privacy: id`); and from that
/// gateway, Remote-Party-ID with `privacy=full` becomes PAI plus `Privacy: id`
/// toward a PAI peer.
#[test]
fn pai_and_rpid_converted_between_trusted_peers() {
    let edge = Edge::build("pai_and_rpid_converted", Net(9))
        .access(|i| i.trusted(true))
        .core(|i| i.option("identity_header = \"rpid\""))
        .start();
    let mut caller = edge.caller();
    let mut callee = edge.callee();
    let text = Invite::new(&caller, "bob")
        .header("P-Asserted-Identity: <sip:+4930123@example.test>")
        .header("Privacy: id")
        .text(&caller);
    let (d, _) = call(&edge, &mut caller, &mut callee, &text, &[]);
    let b = &d.b_invite;
    assert_absent(b, "P-Asserted-Identity");
    let rpid = b.header_all("Remote-Party-ID");
    assert_eq!(rpid.len(), 1, "{}", b.raw);
    assert_eq!(uri_of(rpid[0]), "sip:+4930123@example.test");
    assert_eq!(param(rpid[0], "privacy"), Some("full"), "{}", rpid[0]);

    let (d, _) = core_call(&edge, |ua| {
        Invite::new(ua, "dave")
            .header("Remote-Party-ID: <sip:+4940555@example.test>;party=calling;privacy=full")
    });
    let b = &d.b_invite;
    assert_eq!(
        b.header_all("P-Asserted-Identity"),
        ["<sip:+4940555@example.test>"]
    );
    assert_absent(b, "Remote-Party-ID");
    assert_eq!(value(b, "Privacy"), "id");
}
