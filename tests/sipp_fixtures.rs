//! The SIPp scenarios under fixtures/sipp/ run SIPp to SIPp, with nothing in
//! between: proves the scenarios themselves (and the harness in
//! tests/common) are right, so a failure in tests/b2bua_sipp.rs points at
//! sipveil. Also checks that the leak checker does see leaks when the two
//! sides talk directly.
//!
//! Addresses: 127.0.<70..>.1:25061 (caller) and 127.0.<70..>.2:25090 (callee),
//! one third octet per test so the tests can run in parallel.

mod common;

use common::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

fn caller(net: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, net, 1)), 25061)
}

fn callee(net: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, net, 2)), 25090)
}

/// Runs `uac_file` against `uas_file` directly and asserts every call passed
/// on both sides. Returns the results, or `None` when SIPp is missing (SKIP).
fn direct(
    test: &str,
    net: u8,
    uac_file: &str,
    uas_file: &str,
    calls: u32,
    transport: Transport,
    tune: impl Fn(Sipp) -> Sipp,
) -> Option<(SippResult, SippResult, TempDir)> {
    require_sipp(test)?;
    let dir = TempDir::new(test);
    let uas = Sipp::uas("callee", uas_file, callee(net), calls)
        .transport(transport)
        .timeout(Duration::from_secs(60));
    let uac = Sipp::uac("caller", uac_file, caller(net), callee(net), calls)
        .transport(transport)
        .rate(10)
        .hold_ms(200)
        .timeout(Duration::from_secs(60));
    let uac = tune(uac);
    let (a, b) = run_pair(dir.path(), &uac, &uas);
    a.assert_calls_ok(calls as u64);
    b.assert_calls_ok(calls as u64);
    Some((a, b, dir))
}

fn same(s: Sipp) -> Sipp {
    s
}

#[test]
fn direct_basic_udp() {
    direct(
        "direct_basic_udp",
        70,
        "uac_basic.xml",
        "uas_basic.xml",
        5,
        Transport::Udp,
        same,
    );
}

#[test]
fn direct_basic_tcp() {
    direct(
        "direct_basic_tcp",
        71,
        "uac_basic.xml",
        "uas_basic.xml",
        5,
        Transport::Tcp,
        same,
    );
}

/// SIPp's -lost drops on send and on receive. Behind a B2BUA each SIPp is the
/// only lossy end of its leg; SIPp to SIPp, one lossy side gives the same loss
/// per message (both lossy would double it and exceed what the pair is built for).
#[test]
fn direct_lossy_5_percent() {
    let test = "direct_lossy_5_percent";
    let Some(_) = require_sipp(test) else { return };
    let dir = TempDir::new(test);
    let calls = 200;
    let uas =
        Sipp::uas("callee", "uas_lossy.xml", callee(72), calls).timeout(Duration::from_secs(60));
    let uac = Sipp::uac("caller", "uac_lossy.xml", caller(72), callee(72), calls)
        .rate(100)
        .lost(5)
        .timeout(Duration::from_secs(60));
    let (a, b) = run_pair(dir.path(), &uac, &uas);
    a.assert_calls_ok(calls as u64);
    b.assert_calls_ok(calls as u64);
    assert!(
        a.stats.retransmissions + b.stats.retransmissions > 0,
        "-lost 5 should have caused retransmissions"
    );
}

#[test]
fn direct_busy() {
    direct(
        "direct_busy",
        73,
        "uac_busy.xml",
        "uas_busy.xml",
        3,
        Transport::Udp,
        same,
    );
}

#[test]
fn direct_cancel() {
    direct(
        "direct_cancel",
        74,
        "uac_cancel.xml",
        "uas_cancel.xml",
        3,
        Transport::Udp,
        same,
    );
}

#[test]
fn direct_callee_bye() {
    direct(
        "direct_callee_bye",
        75,
        "uac_callee_bye.xml",
        "uas_callee_bye.xml",
        3,
        Transport::Udp,
        same,
    );
}

#[test]
fn direct_reinvite_from_caller() {
    direct(
        "direct_reinvite_from_caller",
        76,
        "uac_reinvite.xml",
        "uas_reinvite.xml",
        3,
        Transport::Udp,
        same,
    );
}

#[test]
fn direct_reinvite_from_callee() {
    direct(
        "direct_reinvite_from_callee",
        77,
        "uac_callee_reinvite.xml",
        "uas_callee_reinvite.xml",
        3,
        Transport::Udp,
        same,
    );
}

#[test]
fn direct_update() {
    direct(
        "direct_update",
        78,
        "uac_update.xml",
        "uas_update.xml",
        3,
        Transport::Udp,
        same,
    );
}

#[test]
fn direct_info() {
    direct(
        "direct_info",
        79,
        "uac_info.xml",
        "uas_info.xml",
        3,
        Transport::Udp,
        same,
    );
}

#[test]
fn direct_early_media() {
    direct(
        "direct_early_media",
        80,
        "uac_early_media.xml",
        "uas_early_media.xml",
        3,
        Transport::Udp,
        same,
    );
}

#[test]
fn direct_fork() {
    direct(
        "direct_fork",
        81,
        "uac_fork.xml",
        "uas_fork.xml",
        3,
        Transport::Udp,
        same,
    );
}

#[test]
fn direct_route_miss_gets_404() {
    let r = direct(
        "direct_route_miss_gets_404",
        82,
        "uac_route_miss.xml",
        "uas_reject.xml",
        3,
        Transport::Udp,
        same,
    );
    if let Some((a, _, _)) = r {
        assert!(
            a.messages()
                .iter()
                .any(|m| m.direction == Direction::Received
                    && m.start_line.starts_with("SIP/2.0 404"))
        );
    }
}

#[test]
fn direct_max_forwards_0_gets_483() {
    let r = direct(
        "direct_max_forwards_0_gets_483",
        83,
        "uac_max_forwards_0.xml",
        "uas_reject.xml",
        3,
        Transport::Udp,
        same,
    );
    if let Some((a, _, _)) = r {
        assert!(
            a.messages()
                .iter()
                .any(|m| m.direction == Direction::Received
                    && m.start_line.starts_with("SIP/2.0 483"))
        );
    }
}

/// A caller that expects a 404 must fail against a callee that answers.
#[test]
fn direct_route_miss_fails_against_answering_callee() {
    let test = "direct_route_miss_fails_against_answering_callee";
    let Some(_) = require_sipp(test) else { return };
    let dir = TempDir::new(test);
    let uas = Sipp::uas("callee", "uas_basic.xml", callee(84), 1).timeout(Duration::from_secs(15));
    let uac = Sipp::uac("caller", "uac_route_miss.xml", caller(84), callee(84), 1)
        .timeout(Duration::from_secs(15));
    let (a, _) = run_pair(dir.path(), &uac, &uas);
    assert!(!a.all_calls_ok(1), "{}", a.summary(1));
    assert_eq!(a.stats.failed, 1, "{}", a.summary(1));
}

/// Talking directly, the two sides share everything: the checker must say so,
/// naming Call-IDs, tags, and the callee's address.
#[test]
fn leak_checker_sees_direct_calls() {
    let Some((a, b, _dir)) = direct(
        "leak_checker_sees_direct_calls",
        85,
        "uac_basic.xml",
        "uas_basic.xml",
        2,
        Transport::Udp,
        same,
    ) else {
        return;
    };
    let (am, bm) = (a.messages(), b.messages());
    assert!(am.len() >= 2 * 7, "caller trace has {} messages", am.len());
    let r = check_leaks("caller", &am, "callee", &bm);
    let kinds: std::collections::HashSet<IdKind> = r.leaks.iter().map(|l| l.kind).collect();
    // (Bare hosts are not expected: the caller itself addressed the callee's
    // host in its request-URI, and a side's own hosts are never counted.)
    for k in [
        IdKind::CallId,
        IdKind::Tag,
        IdKind::Branch,
        IdKind::HostPort,
    ] {
        assert!(
            kinds.contains(&k),
            "no {k} leak found in a direct call:\n{r}"
        );
    }
    let callee_addr = callee(85).to_string();
    assert!(r.leaks.iter().any(|l| l.value == callee_addr), "{r}");
    let r2 = check_leaks("callee", &bm, "caller", &am);
    assert!(!r2.is_clean());
    assert!(
        r2.leaks.iter().any(|l| l.value == caller(85).to_string()),
        "{r2}"
    );
}

const TRACE_A: &str = "----------------------------------------------- 2026-11-26 11:24:54.208670
UDP message sent (10 bytes):

INVITE sip:bob@127.0.0.10:5060 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-a-1;rport
From: \"Alice\" <sip:alice@example.test>;tag=atag1
To: <sip:bob@example.test>
Call-ID: a-call-1@127.0.0.1
CSeq: 1 INVITE
Contact: <sip:alice@127.0.0.1:5061;transport=UDP>
Content-Length: 21

v=0
c=IN IP4 127.0.0.1

UDP message voluntary lost (while sending).----------------------------------------------- 2026-11-26 11:24:54.208702
UDP message received [239] bytes :

SIP/2.0 200 OK
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-a-1;rport=5061;received=127.0.0.1
From: \"Alice\" <sip:alice@example.test>;tag=atag1
To: <sip:bob@example.test>;tag=sbc-tag-a
i: a-call-1@127.0.0.1
CSeq: 1 INVITE
m: <sip:bob@127.0.0.10:5060>
Content-Length: 40

v=0
c=IN IP4 127.0.0.2
o=- 1 1 IN IP4 127.0.0.20

";

const TRACE_B: &str = "----------------------------------------------- 2026-11-26 11:24:54.208680
UDP message received [10] bytes :

INVITE sip:bob@127.0.0.2:5090 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.20:5060;branch=z9hG4bK-sbc-b-1
From: \"Alice\" <sip:alice@127.0.0.20>;tag=sbc-tag-b
To: <sip:bob@127.0.0.2>
Call-ID: sbc-call-b
CSeq: 1 INVITE
Contact: <sip:alice@127.0.0.20:5060>
Content-Length: 0


----------------------------------------------- 2026-11-26 11:24:54.208690
UDP message sent (10 bytes):

SIP/2.0 200 OK
Via: SIP/2.0/UDP 127.0.0.20:5060;branch=z9hG4bK-sbc-b-1
From: \"Alice\" <sip:alice@127.0.0.20>;tag=sbc-tag-b
To: <sip:bob@127.0.0.2>;tag=btag1
Call-ID: sbc-call-b
CSeq: 1 INVITE
Contact: \"Bob\" <sip:bob@127.0.0.2:5090;transport=UDP>
Content-Length: 0

";

#[test]
fn trace_parser_reads_sipp_message_files() {
    let a = parse_message_trace(TRACE_A);
    assert_eq!(a.len(), 2);
    assert_eq!(a[0].direction, Direction::Sent);
    assert_eq!(a[0].transport, "UDP");
    assert_eq!(a[0].start_line, "INVITE sip:bob@127.0.0.10:5060 SIP/2.0");
    assert_eq!(a[0].body, "v=0\nc=IN IP4 127.0.0.1");
    assert_eq!(a[1].direction, Direction::Received);
    assert_eq!(
        a[1].header_values("Call-ID").next(),
        Some("a-call-1@127.0.0.1")
    );
    assert_eq!(
        a[1].header_values("contact").next(),
        Some("<sip:bob@127.0.0.10:5060>")
    );
}

#[test]
fn leak_checker_ignores_bodies_and_longer_addresses() {
    let a = parse_message_trace(TRACE_A);
    let b = parse_message_trace(TRACE_B);
    // The body of the 200 the caller got names 127.0.0.2 and 127.0.0.20: fine.
    let r = check_leaks("caller", &a, "callee", &b);
    assert!(r.is_clean(), "{r}");
    assert_eq!(r.messages_checked, 1);
    let r = check_leaks("callee", &b, "caller", &a);
    assert!(r.is_clean(), "{r}");
}

#[test]
fn leak_checker_names_what_leaked() {
    let a = parse_message_trace(TRACE_A);
    // The callee's tag and Contact and the B leg's Call-ID show up on the A side.
    let leaky = TRACE_A
        .replace("tag=sbc-tag-a", "tag=btag1")
        .replace(
            "m: <sip:bob@127.0.0.10:5060>",
            "m: <sip:bob@127.0.0.2:5090>",
        )
        .replace("i: a-call-1@127.0.0.1\nCSeq", "i: sbc-call-b\nCSeq");
    let leaky = parse_message_trace(&leaky);
    let b = parse_message_trace(TRACE_B);
    let r = check_leaks("caller", &leaky, "callee", &b);
    let values: Vec<&str> = r.leaks.iter().map(|l| l.value.as_str()).collect();
    for v in ["btag1", "127.0.0.2:5090", "127.0.0.2", "sbc-call-b"] {
        assert!(values.contains(&v), "{v} not reported:\n{r}");
    }
    let text = r.to_string();
    assert!(
        text.contains("btag1") && text.contains("127.0.0.2:5090"),
        "{text}"
    );
    // and nothing from the untouched trace
    assert!(check_leaks("caller", &a, "callee", &b).is_clean());
}

#[test]
fn sipp_error_log_is_split_into_events() {
    let log = "The following events occurred:\n2026-11-26\t11:54:40.499921\t1795694080.499921: Call-Id: 1-6779@127.0.99.1, receive timeout on message uac_basic:5, jumping to label 62026-11-26\t11:54:40.503545\t1795694080.503545: Aborting call on unexpected message\nSIP/2.0 180 Ringing\n";
    let ev = split_sipp_events(log);
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert!(ev[0].ends_with("jumping to label 6"));
    assert!(ev[1].contains("Aborting call") && ev[1].ends_with("180 Ringing"));
}

#[test]
fn config_writer_follows_the_operator_contract() {
    let (ifs, routes) = edge_config(
        "127.0.0.10:5060".parse().unwrap(),
        "127.0.0.20:5060".parse().unwrap(),
        "127.0.0.2:5090".parse().unwrap(),
    );
    let text = config_toml("edge-1", std::path::Path::new("/tmp/x"), &ifs, &routes);
    let v: toml::Value = toml::from_str(&text).expect("valid TOML");
    assert_eq!(v["node"]["data_dir"].as_str(), Some("/tmp/x"));
    let i = v["interface"].as_array().unwrap();
    assert_eq!(i.len(), 2);
    assert_eq!(i[0]["name"].as_str(), Some("access"));
    assert_eq!(i[0]["udp"].as_str(), Some("127.0.0.10:5060"));
    assert_eq!(i[0]["tcp"].as_str(), Some("127.0.0.10:5060"));
    assert_eq!(i[1]["trusted"].as_bool(), Some(true));
    assert!(i[1].get("tcp").is_none());
    let r = v["route"].as_array().unwrap();
    assert_eq!(r[0]["to"].as_str(), Some("sip:127.0.0.2:5090"));
    assert_eq!(r[0]["egress"].as_str(), Some("core"));
}
