//! The header allow-list through the real binary (issue 5, policies/README.md
//! `[[headers]]`): what crosses by default, and how `pass`/`block` widen and
//! narrow it per interface and direction. Layout in tests/common/call.rs.

mod common;

use common::call::*;

/// Default list: an unknown header stays on its leg; listed ones (Allow,
/// Subject, Accept, Date, Priority, Session-Expires) cross as written;
/// User-Agent (request) and Server (response) carry sipveil's own token;
/// Supported and Require are filtered to the tags sipveil relays.
#[test]
fn default_allow_list() {
    let edge = Edge::start("default_allow_list", Net(20));
    let mut caller = edge.caller();
    let mut callee = edge.callee();
    let text = Invite::new(&caller, "bob")
        .header("X-Foo: secret-topology 10.1.2.3")
        .header("Allow: INVITE, ACK, BYE, CANCEL")
        .header("Subject: lunch")
        .header("Accept: application/sdp")
        .header("Date: Sat, 13 Nov 2010 23:29:00 GMT")
        .header("Priority: urgent")
        .header("Session-Expires: 1800;refresher=uac")
        .header("User-Agent: AlicePhone/1.0")
        .header("Supported: 100rel, timer, replaces, path")
        .header("Require: timer")
        .text(&caller);
    let answer_extra = ["Server: BobPBX/7", "X-Internal-Route: pbx-3"];
    let (d, _) = call(&edge, &mut caller, &mut callee, &text, &answer_extra);
    let b = &d.b_invite;
    assert_absent(b, "X-Foo");
    assert!(!b.raw.contains("10.1.2.3"), "{}", b.raw);
    for (n, v) in [
        ("Allow", "INVITE, ACK, BYE, CANCEL"),
        ("Subject", "lunch"),
        ("Accept", "application/sdp"),
        ("Date", "Sat, 13 Nov 2010 23:29:00 GMT"),
        ("Priority", "urgent"),
        ("Session-Expires", "1800;refresher=uac"),
        ("Require", "timer"),
    ] {
        assert_eq!(b.header_all(n), [v], "{n}:\n{}", b.raw);
    }
    assert_eq!(b.header_all("Supported"), ["100rel, timer"], "{}", b.raw);
    let ua = value(b, "User-Agent");
    assert!(ua.starts_with("sipveil/"), "User-Agent: {ua}");

    // The answer: the callee's Server and unknown headers do not reach the caller.
    let ok = &d.a_ok;
    assert_absent(ok, "X-Internal-Route");
    let server = ok.header_all("Server");
    assert!(
        server.len() == 1 && server[0].starts_with("sipveil/"),
        "Server: {server:?}"
    );
}

/// `[[headers]]` per interface and direction: `pass` on access `in` lets
/// X-Account-Code and the phone's own User-Agent into the core; `block` on
/// core `out` keeps Subject from the core although it is on the built-in
/// list; on the way back, `block = ["Server"]` on access `out` sends no Server
/// at all, and `pass` on core `in` lets the callee's X-Billing-Id through.
#[test]
fn pass_and_block_per_direction() {
    let policy = "\
[[headers]]
interface = \"access\"
direction = \"in\"
pass = [\"X-Account-Code\", \"User-Agent\"]

[[headers]]
interface = \"core\"
direction = \"out\"
block = [\"Subject\"]

[[headers]]
interface = \"access\"
direction = \"out\"
block = [\"Server\"]

[[headers]]
interface = \"core\"
direction = \"in\"
pass = [\"X-Billing-Id\"]
";
    let edge = Edge::build("pass_and_block_per_direction", Net(21))
        .policy("20-headers.toml", policy)
        .start();
    let mut caller = edge.caller();
    let mut callee = edge.callee();
    let text = Invite::new(&caller, "bob")
        .header("X-Account-Code: 4711")
        .header("X-Other: no")
        .header("User-Agent: AlicePhone/1.0")
        .header("Subject: lunch")
        .text(&caller);
    let extra = ["Server: BobPBX/7", "X-Billing-Id: b-99", "X-Other: no"];
    let (d, _) = call(&edge, &mut caller, &mut callee, &text, &extra);
    let b = &d.b_invite;
    assert_eq!(b.header_all("X-Account-Code"), ["4711"], "{}", b.raw);
    assert_eq!(b.header_all("User-Agent"), ["AlicePhone/1.0"], "{}", b.raw);
    assert_absent(b, "Subject");
    assert_absent(b, "X-Other");
    let ok = &d.a_ok;
    assert_absent(ok, "Server");
    assert_absent(ok, "X-Other");
    assert_eq!(ok.header_all("X-Billing-Id"), ["b-99"], "{}", ok.raw);

    // A pass on one interface does not open another: from core toward access
    // X-Account-Code is not passed.
    let mut core_caller = edge.core_caller();
    let mut phone = edge.phone();
    let text = Invite::new(&core_caller, "dave")
        .header("X-Account-Code: 4711")
        .header("Subject: from core")
        .text(&core_caller);
    let (d, _) = call(&edge, &mut core_caller, &mut phone, &text, &[]);
    assert_absent(&d.b_invite, "X-Account-Code");
    assert_eq!(value(&d.b_invite, "Subject"), "from core");
}
