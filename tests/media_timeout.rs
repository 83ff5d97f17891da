//! `[media] media_timeout` on the real binary (issue 6, acceptance): the test
//! plays caller and callee itself over UDP through sipveil's relay with
//! `media_timeout = 2` and checks that
//! - a call with no RTP at all is ended by sipveil: a BYE on each leg carrying
//!   `Reason: SIP;cause=408`, both answered 200 by the test's UAs (and not
//!   sent again, so sipveil took the 200s), the call end
//!   logged (the CDR's status and reason) with "media timeout", and the relay
//!   ports free again afterwards;
//! - a call whose RTP flows both ways for well over the timeout is not ended
//!   while it flows, and is ended the same way once the media stops.
//!
//! caller 127.0.N.1:25061 (media 30000) -> sipveil access 127.0.N.10:25060 ->
//! sipveil core 127.0.N.20:25060 -> callee 127.0.N.2:25090 (media 30002);
//! N = 182 for the silent call, 183 for the talking one.

mod common;

use common::peer::*;
use common::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// The configured `media_timeout`, seconds.
const TIMEOUT_S: u64 = 2;
/// How long after the timeout sipveil may take to notice (it checks once a
/// second) and its BYEs may take to arrive on a busy machine.
const GRACE: Duration = Duration::from_secs(6);

const CALLER: u8 = 1;
const CALLEE: u8 = 2;
const ACCESS: u8 = 10;
const CORE: u8 = 20;

/// Addresses of one test's loopback net 127.0.N.x.
#[derive(Clone, Copy)]
struct Net(u8);

impl Net {
    fn ip(self, host: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, self.0, host))
    }
    fn addr(self, host: u8, port: u16) -> SocketAddr {
        SocketAddr::new(self.ip(host), port)
    }
}

/// One answered call through sipveil and everything needed to drive it.
struct Call {
    sbc: Sipveil,
    caller: Peer,
    callee: Peer,
    caller_rtp: UdpSocket,
    callee_rtp: UdpSocket,
    /// sipveil's relay ports: toward the caller (access) and the callee (core).
    sbc_a_rtp: SocketAddr,
    sbc_b_rtp: SocketAddr,
    held: Vec<SocketAddr>,
    /// When the INVITE left the caller (the relay's silence clock starts at
    /// its ports' allocation, shortly after).
    invited: Instant,
    _dir: TempDir,
}

/// Starts sipveil with the relay (`port_range`) and `media_timeout = 2` and
/// sets up one call with a PCMU stream each way (INVITE, 200, ACK).
fn answered_call(label: &str, net: Net, port_range: &str) -> Call {
    let dir = TempDir::new(label);
    let access = net.addr(ACCESS, 25060);
    let callee_sip = net.addr(CALLEE, 25090);
    let (interfaces, routes) = edge_config(access, net.addr(CORE, 25060), callee_sip);
    let extra = format!("[media]\nport_range = \"{port_range}\"\nmedia_timeout = {TIMEOUT_S}\n");
    let mut sbc = Sipveil::configure(&dir.subdir("sipveil"), &interfaces, &routes, &extra);
    sbc.launch();

    let mut caller = Peer::bind(net.addr(CALLER, 25061));
    let mut callee = Peer::bind(callee_sip);
    let caller_rtp = media_socket(net.addr(CALLER, 30000));
    let callee_rtp = media_socket(net.addr(CALLEE, 30002));

    let call_id = format!("{label}-{}", std::process::id());
    let from_hdr = "<sip:caller@example.test>;tag=caller-tag-1";
    let invited = Instant::now();
    send_invite(
        &mut caller,
        access,
        &call_id,
        from_hdr,
        &sdp(net.ip(CALLER), 1, 30000, true),
    );
    let (b_invite, core_from) = callee.expect("B-leg INVITE", |m| is_request(m, "INVITE", None));
    let (b_rtp, b_rtcp) = check_sdp(&b_invite, net.ip(CORE), net.ip(CALLER));
    let b_cseq = b_invite.cseq().unwrap().0;
    callee.respond(
        &b_invite,
        core_from,
        "200 OK",
        "callee-tag-1",
        Some(&sdp(net.ip(CALLEE), 1, 30002, true)),
    );
    let (ok, _) = caller.expect("200 to the INVITE", |m| is_response(m, 200, "INVITE", 1));
    let (a_rtp, a_rtcp) = check_sdp(&ok, net.ip(ACCESS), net.ip(CALLEE));
    CallerDialog::from_ok(&ok, &call_id, from_hdr).request(&mut caller, "ACK", 1, None);
    callee.expect("B-leg ACK", |m| is_request(m, "ACK", Some(b_cseq)));

    let (sbc_a_rtp, sbc_b_rtp) = (net.addr(ACCESS, a_rtp), net.addr(CORE, b_rtp));
    let held = vec![
        sbc_a_rtp,
        net.addr(ACCESS, a_rtcp),
        sbc_b_rtp,
        net.addr(CORE, b_rtcp),
    ];
    Call {
        sbc,
        caller,
        callee,
        caller_rtp,
        callee_rtp,
        sbc_a_rtp,
        sbc_b_rtp,
        held,
        invited,
        _dir: dir,
    }
}

impl Call {
    /// Waits for sipveil's BYE on both legs (until `deadline`), checks each
    /// carries a Reason with cause 408, and answers each with 200. Returns the
    /// Reason values.
    fn expect_byes(&mut self, deadline: Instant) -> [String; 2] {
        let mut reasons = [String::new(), String::new()];
        for (i, (who, peer)) in [("callee", &mut self.callee), ("caller", &mut self.caller)]
            .into_iter()
            .enumerate()
        {
            let left = deadline.saturating_duration_since(Instant::now());
            let (bye, from) = peer.expect_within(&format!("BYE to the {who}"), left, |m| {
                is_request(m, "BYE", None)
            });
            let reason = bye.header("Reason").unwrap_or_else(|| {
                panic!("sipveil's BYE to the {who} has no Reason:\n{}", bye.raw)
            });
            assert!(
                reason.starts_with("SIP") && reason.contains("cause=408"),
                "Reason {reason:?} of the BYE to the {who}"
            );
            peer.respond(&bye, from, "200 OK", "unused", None);
            reasons[i] = reason.to_string();
        }
        reasons
    }

    /// After the BYEs: the call end is logged with status 408 and reason
    /// "media timeout", a "media released" line follows, and the relay ports
    /// are free. Returns the released stream.
    fn check_ended(&self) -> MediaReleased {
        let ends = self
            .sbc
            .wait_log_lines("call end call=", 1, Duration::from_secs(5));
        assert_eq!(ends.len(), 1, "one call end expected: {ends:#?}");
        assert_eq!(log_field(&ends[0], "status"), Some("408"), "{}", ends[0]);
        assert_eq!(
            log_field(&ends[0], "reason"),
            Some("\"media timeout\""),
            "{}",
            ends[0]
        );
        let released = self
            .sbc
            .wait_log_lines("media released", 1, Duration::from_secs(5));
        let streams: Vec<MediaReleased> = released
            .iter()
            .filter_map(|l| MediaReleased::parse(l))
            .collect();
        assert_eq!(streams.len(), 1, "{released:#?}");
        for &a in &self.held {
            assert_released(a, &self.sbc);
        }
        streams[0].clone()
    }

    /// Nothing at all (not even a retransmitted BYE, which would mean a 200
    /// was not taken) reaches either UA during `span`.
    fn assert_sip_silent(&mut self, span: Duration, when: &str) {
        let half = span / 2;
        for (who, peer) in [("callee", &mut self.callee), ("caller", &mut self.caller)] {
            if let Some((m, _)) = peer.next_any(half) {
                panic!("{who} got {:?} {when}:\n{}", m.start_line, m.raw);
            }
        }
    }

    /// No new SIP message reaches either UA during `span`.
    fn assert_sip_quiet(&mut self, span: Duration, when: &str) {
        let half = span / 2;
        for (who, peer) in [("callee", &mut self.callee), ("caller", &mut self.caller)] {
            if let Some((m, _)) = peer.next_new(half) {
                panic!("{who} got {:?} {when}:\n{}", m.start_line, m.raw);
            }
        }
    }
}

#[test]
fn silent_call_is_ended_with_bye_and_reason_on_both_legs() {
    let mut call = answered_call("media_timeout_silent", Net(182), "42000-42099");
    // The relay holds its ports while the call is up (so the release check
    // after the BYE means something).
    assert!(
        UdpSocket::bind(call.sbc_a_rtp).is_err() && UdpSocket::bind(call.sbc_b_rtp).is_err(),
        "relay ports not bound during the call"
    );
    let timeout = Duration::from_secs(TIMEOUT_S);
    let reasons = call.expect_byes(call.invited + timeout + GRACE);
    let after = call.invited.elapsed();
    assert!(
        after >= timeout,
        "the call was ended {after:?} after the INVITE, before media_timeout"
    );
    let s = call.check_ended();
    // Timer E would resend a BYE within 500 ms had its 200 gone unanswered.
    call.assert_sip_silent(Duration::from_millis(1500), "after answering the BYEs");
    assert_eq!(
        (s.a_to_b_packets, s.b_to_a_packets),
        (0, 0),
        "no media was sent: {s:?}"
    );
    println!(
        "silent call ended {after:?} after the INVITE (media_timeout {TIMEOUT_S} s); \
         BYE Reasons: callee {:?}, caller {:?}; relay ports {:?} released",
        reasons[0], reasons[1], call.held
    );
}

#[test]
fn call_is_kept_while_media_flows_and_ended_once_it_stops() {
    let mut call = answered_call("media_timeout_talking", Net(183), "42100-42199");
    let timeout = Duration::from_secs(TIMEOUT_S);
    // Media both ways, a packet every 20 ms each, for 2.5 times the timeout;
    // no SIP message may reach either UA meanwhile.
    let talk = timeout * 5 / 2;
    let started = Instant::now();
    let (mut sent, mut at_callee, mut at_caller) = (0u64, 0u64, 0u64);
    let mut seq = 0u16;
    while started.elapsed() < talk {
        seq = seq.wrapping_add(1);
        call.caller_rtp
            .send_to(&rtp_packet(seq, 0x1111_1111), call.sbc_a_rtp)
            .expect("send caller RTP");
        call.callee_rtp
            .send_to(&rtp_packet(seq, 0x2222_2222), call.sbc_b_rtp)
            .expect("send callee RTP");
        sent += 1;
        at_callee += drain_count(&call.callee_rtp);
        at_caller += drain_count(&call.caller_rtp);
        if let Some((m, _)) = call.caller.next_new(Duration::from_millis(10)) {
            panic!(
                "caller got {:?} while media flowed:\n{}",
                m.start_line, m.raw
            );
        }
        if let Some((m, _)) = call.callee.next_new(Duration::from_millis(10)) {
            panic!(
                "callee got {:?} while media flowed:\n{}",
                m.start_line, m.raw
            );
        }
    }
    let stopped = Instant::now();
    std::thread::sleep(Duration::from_millis(100));
    at_callee += drain_count(&call.callee_rtp);
    at_caller += drain_count(&call.caller_rtp);
    assert!(
        at_callee > 0 && at_caller > 0,
        "media did not cross the relay (sent {sent} each way; callee got {at_callee}, caller {at_caller})"
    );

    // Silence now: sipveil ends the call after the timeout, not before.
    call.assert_sip_quiet(timeout / 2, "within half the timeout of the media stopping");
    let reasons = call.expect_byes(stopped + timeout + GRACE);
    let after = stopped.elapsed();
    let s = call.check_ended();
    call.assert_sip_silent(Duration::from_millis(1500), "after answering the BYEs");
    assert!(
        s.a_to_b_packets > 0 && s.b_to_a_packets > 0,
        "relay counted no media: {s:?}"
    );
    println!(
        "talking call kept for {talk:?} of media (sent {sent} RTP packets each way; \
         relay counted a_to_b {} / b_to_a {}), ended {after:?} after the media stopped \
         (media_timeout {TIMEOUT_S} s); BYE Reasons: callee {:?}, caller {:?}",
        s.a_to_b_packets, s.b_to_a_packets, reasons[0], reasons[1]
    );
}
