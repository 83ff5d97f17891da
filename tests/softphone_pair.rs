//! Two real softphones talking through sipveil's media relay (issue 6,
//! acceptance): two baresip instances register with digest auth, one calls the
//! other through sipveil, the callee answers on its own, both send a 440 Hz
//! sine in G.711 for a few seconds, and the caller hangs up.
//!
//! alice 127.0.181.30 ─┐                          ┌─ bob 127.0.181.31
//!   REGISTER, INVITE  └─▶ sipveil access 127.0.181.10:5060 ─┘ REGISTER, auto-answer
//!
//! Both legs use the one access interface (route access → registrar), and the
//! relay runs in its default mode. The test proves
//! - that RTP crossed the relay in both directions: sipveil's "media released"
//!   line for the call counts packets each way (printed for the record), and
//!   each phone reports its incoming RTP coming from sipveil's address;
//! - that each phone was told only sipveil's address: the SDP alice received
//!   in the 200 and the SDP bob received in the INVITE (baresip's `-s` SIP
//!   trace) name 127.0.181.10 and never the other phone.
//!
//! SKIP when baresip is missing, unless SIPVEIL_REQUIRE_INTEROP=1.

mod common;

use common::baresip::{sip_trace, Baresip, Ctrl, PhoneConfig};
use common::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

const NET: u8 = 181;
const DOMAIN: &str = "example.test";
/// How long the phones talk between the answer and the hangup.
const TALK: Duration = Duration::from_secs(5);

fn ip(host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, NET, host))
}

fn addr(host: u8, port: u16) -> SocketAddr {
    SocketAddr::new(ip(host), port)
}

/// The SDP bodies of the SIP messages `phone` received (per its `-s`
/// trace) whose start line begins with `start` (e.g. `INVITE ` or
/// `SIP/2.0 200`).
fn received_sdp(phone: &Baresip, log: &str, start: &str) -> Vec<String> {
    let own = phone.cfg.sip.to_string();
    sip_trace(log)
        .into_iter()
        .filter(|m| m.dst == own && m.start_line().starts_with(start))
        .map(|m| m.body())
        .filter(|b| b.contains("m="))
        .collect()
}

/// Whether `text` names `ip` as a whole address (127.0.181.3 is not in 127.0.181.30).
fn mentions(text: &str, ip: IpAddr) -> bool {
    let needle = ip.to_string();
    text.match_indices(&needle).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + needle.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit() || c == '.')
            && !after.is_some_and(|c| c.is_ascii_digit() || c == '.')
    })
}

/// Every o= and c= line of `sdp` names `sbc`, and `other` appears nowhere.
fn check_sdp(who: &str, sdp: &str, sbc: IpAddr, other: IpAddr) {
    assert!(
        !mentions(sdp, other),
        "SDP received by {who} names the other phone's {other}:\n{sdp}"
    );
    let addresses: Vec<&str> = sdp
        .lines()
        .map(str::trim_end)
        .filter(|l| l.starts_with("o=") || l.starts_with("c="))
        .collect();
    assert!(!addresses.is_empty(), "no o=/c= in SDP for {who}:\n{sdp}");
    for l in addresses {
        assert!(
            l.ends_with(&format!(" {sbc}")),
            "SDP line {l:?} received by {who} does not name sipveil's {sbc}:\n{sdp}"
        );
    }
}

#[test]
fn two_baresips_talk_through_the_relay_both_ways() {
    let test = "two_baresips_talk_through_the_relay_both_ways";
    let Some(binary) = require_tool(test, "baresip") else {
        return;
    };
    let access = addr(10, 5060);
    let dir = TempDir::new(test);

    let interfaces = [Interface::udp_tcp("access", access)];
    let routes = [Route::new("access", "registrar", "access")];
    // MD5 only: libre 1.x gives up on a 401 that offers any other algorithm
    // (see tests/softphone.rs). The relay's ports stay clear of the phones'.
    let extra = format!(
        "[registrar]\ndomain = \"{DOMAIN}\"\ninterface = \"access\"\nauth = true\n\
         min_expires = 10\ndigest_algorithms = [\"MD5\"]\n\n\
         [media]\nport_range = \"41800-41899\"\n"
    );
    let mut sbc = Sipveil::configure(&dir.subdir("sipveil"), &interfaces, &routes, &extra);
    let phone = |user: &str, host: u8, rtp: u16, auto_answer: bool| PhoneConfig {
        sip: addr(host, 5060),
        ctrl: addr(host, 4444),
        rtp_ports: (rtp, rtp + 99),
        user: user.into(),
        domain: DOMAIN.into(),
        password: format!("{user}-pw-81c3"),
        proxy: access,
        auto_answer,
    };
    let (alice_cfg, bob_cfg) = (
        phone("alice", 30, 31800, false),
        phone("bob", 31, 31900, true),
    );
    for p in [&alice_cfg, &bob_cfg] {
        sbc.add_subscriber(&format!("{}@{DOMAIN}", p.user), &p.password);
    }
    sbc.launch();

    let pdir = dir.subdir("phones");
    let mut alice = Baresip::start(&binary, &pdir, "alice", alice_cfg, &["-s"]);
    let mut bob = Baresip::start(&binary, &pdir, "bob", bob_cfg, &["-s"]);
    let query_from = addr(2, 0);
    for p in [&alice, &bob] {
        let bound = p.wait_registered(query_from, Duration::from_secs(15));
        assert!(
            bound.is_some(),
            "{} did not register\n--- phone ---\n{}\n--- sipveil ---\n{}",
            p.cfg.user,
            p.log(),
            sbc.log_tail(4000)
        );
    }

    // alice dials bob by name; sipveil challenges her INVITE, finds bob's
    // binding and calls him; bob answers at once.
    let mut ctrl: Ctrl = alice.ctrl().expect("alice's ctrl_tcp");
    ctrl.send("dial", &format!("sip:bob@{DOMAIN}"))
        .expect("send dial");
    let established = ctrl.wait_for("CALL_ESTABLISHED", Duration::from_secs(15));
    assert!(
        established.is_some(),
        "the call was not established; alice's ctrl events: {:#?}\n--- sipveil ---\n{}",
        ctrl.seen,
        sbc.log_tail(6000)
    );
    std::thread::sleep(TALK);
    ctrl.send("hangup", "").expect("send hangup");
    let closed = ctrl.wait_for("CALL_CLOSED", Duration::from_secs(10));
    let released = sbc.wait_log_lines("media released", 1, Duration::from_secs(5));

    // Quit while sipveil still answers the un-REGISTERs (their stdout, with
    // the SIP trace, is complete only once they exited).
    let alice_quit = alice.quit(Duration::from_secs(5));
    let bob_quit = bob.quit(Duration::from_secs(5));
    let (alice_log, bob_log) = (alice.log(), bob.log());
    let diag = || {
        format!(
            "--- alice ---\n{alice_log}\n--- bob ---\n{bob_log}\n--- sipveil ---\n{}",
            sbc.log_tail(6000)
        )
    };
    assert!(
        closed.is_some(),
        "no CALL_CLOSED after hangup: {:#?}\n{}",
        ctrl.seen,
        diag()
    );
    let streams: Vec<MediaReleased> = released
        .iter()
        .filter_map(|l| MediaReleased::parse(l))
        .collect();
    assert_eq!(
        streams.len(),
        1,
        "one audio stream expected: {released:#?}\n{}",
        diag()
    );
    let s = &streams[0];
    println!(
        "relay counts for {TALK:?} of talk (RTP + RTCP datagrams / payload bytes): \
         alice->bob (a_to_b) {} / {} B, bob->alice (b_to_a) {} / {} B, dropped {}; \
         phones quit cleanly: alice {alice_quit}, bob {bob_quit}",
        s.a_to_b_packets, s.a_to_b_bytes, s.b_to_a_packets, s.b_to_a_bytes, s.dropped
    );
    // G.711 at 20 ms is 50 packets a second each way; 50 is one second's worth.
    assert!(
        s.a_to_b_packets > 50 && s.b_to_a_packets > 50,
        "too little media crossed the relay: {s:?}\n{}",
        diag()
    );

    // Each phone saw its incoming RTP come from sipveil's relay.
    let sbc_ip = ip(10);
    let from_relay = format!("incoming rtp for 'audio' established, receiving from {sbc_ip}:");
    for (who, log) in [("alice", &alice_log), ("bob", &bob_log)] {
        assert!(
            log.contains(&from_relay),
            "{who} did not report RTP from sipveil ({from_relay:?})\n{}",
            diag()
        );
    }

    // The SDP each phone received names sipveil only.
    let to_bob = received_sdp(&bob, &bob_log, "INVITE ");
    let to_alice = received_sdp(&alice, &alice_log, "SIP/2.0 200");
    assert!(
        !to_bob.is_empty() && !to_alice.is_empty(),
        "no SDP found in the SIP traces (bob's INVITE: {}, alice's 200: {})\n{}",
        to_bob.len(),
        to_alice.len(),
        diag()
    );
    for sdp in &to_bob {
        check_sdp("bob", sdp, sbc_ip, ip(30));
    }
    for sdp in &to_alice {
        check_sdp("alice", sdp, sbc_ip, ip(31));
    }
    println!(
        "SDP checked: {} offer(s) bob received, {} answer(s) alice received, all naming {sbc_ip} only",
        to_bob.len(),
        to_alice.len()
    );
}
