//! The built-in media relay end to end on the real binary (issue 6,
//! "Integration"): the test plays both SIP peers itself over UDP and checks
//! that
//! - the SDP each side receives names only sipveil's address on that side;
//! - RTP-shaped packets cross the relay in both directions, and RTCP too,
//!   leaving from sipveil's own address and advertised ports;
//! - a re-INVITE moving the caller's media port moves the relay's target;
//! - the relay's ports are free again within 2 s of the BYE.
//!
//! Caller 127.0.63.1:25061 (media 30000/30001, later 30010/30011) -> sipveil
//! access 127.0.63.10:25060 -> sipveil core 127.0.63.20:25060 -> callee
//! 127.0.63.2:25090 (media 30002/30003). The config has no `[media]` section:
//! the relay is the default.

mod common;

use common::peer::{self, *};
use common::ua::SipMsg;
use common::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

const NET: u8 = 63;

fn ip(host: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, NET, host))
}

fn addr(host: u8, port: u16) -> SocketAddr {
    SocketAddr::new(ip(host), port)
}

const CALLER: u8 = 1;
const CALLEE: u8 = 2;
const ACCESS: u8 = 10;
const CORE: u8 = 20;

/// The media address of a host of this test (see `common::peer::sdp`).
fn sdp(host: u8, version: u32, rtp: u16, rtcp: bool) -> String {
    peer::sdp(ip(host), version, rtp, rtcp)
}

// ---------------------------------------------------------------------------
// Media
// ---------------------------------------------------------------------------

/// Sends `packet` from `from` to `to` until it arrives at `at` (up to 5 tries,
/// 400 ms each) and checks it came unchanged from `expect_src`.
fn relay_one(
    what: &str,
    packet: &[u8],
    from: &UdpSocket,
    to: SocketAddr,
    at: &UdpSocket,
    expect_src: SocketAddr,
) {
    let mut buf = [0u8; 2048];
    at.set_read_timeout(Some(Duration::from_millis(400)))
        .unwrap();
    for _ in 0..5 {
        from.send_to(packet, to).unwrap();
        while let Ok((n, src)) = at.recv_from(&mut buf) {
            if &buf[..n] != packet {
                // a late copy of an earlier packet
                continue;
            }
            assert_eq!(
                src,
                expect_src,
                "{what}: packet arrived at {} from {src}, not from sipveil's {expect_src}",
                at.local_addr().unwrap()
            );
            return;
        }
    }
    panic!(
        "{what}: packet sent from {} to {to} never arrived at {}",
        from.local_addr().unwrap(),
        at.local_addr().unwrap()
    );
}

/// Several RTP packets in a row, each checked.
fn relay_rtp(
    what: &str,
    from: &UdpSocket,
    to: SocketAddr,
    at: &UdpSocket,
    expect_src: SocketAddr,
    ssrc: u32,
    seq0: u16,
) {
    for seq in seq0..seq0 + 5 {
        relay_one(what, &rtp_packet(seq, ssrc), from, to, at, expect_src);
    }
}

// ---------------------------------------------------------------------------
// The call
// ---------------------------------------------------------------------------

#[test]
fn relayed_call_rewrites_sdp_forwards_media_follows_reinvite_and_releases_ports() {
    let started = Instant::now();
    let dir = TempDir::new("media_e2e");
    let access = addr(ACCESS, 25060);
    let callee_sip = addr(CALLEE, 25090);
    let (interfaces, routes) = edge_config(access, addr(CORE, 25060), callee_sip);
    let sbc = Sipveil::start(&dir.subdir("sipveil"), &interfaces, &routes);

    let mut caller = Peer::bind(addr(CALLER, 25061));
    let mut callee = Peer::bind(callee_sip);
    let caller_rtp = media_socket(addr(CALLER, 30000));
    let caller_rtcp = media_socket(addr(CALLER, 30001));
    let callee_rtp = media_socket(addr(CALLEE, 30002));
    let callee_rtcp = media_socket(addr(CALLEE, 30003));

    // --- INVITE ------------------------------------------------------------
    let call_id = format!("media-e2e-{}", std::process::id());
    let from_hdr = "<sip:caller@example.test>;tag=caller-tag-1";
    let offer = sdp(CALLER, 1, 30000, true);
    send_invite(&mut caller, access, &call_id, from_hdr, &offer);

    let (b_invite, core_from) = callee.expect("B-leg INVITE", |m| is_request(m, "INVITE", None));
    let (b_rtp, b_rtcp) = check_sdp(&b_invite, ip(CORE), ip(CALLER));
    let sbc_b_rtp = addr(CORE, b_rtp);
    let sbc_b_rtcp = addr(CORE, b_rtcp);
    let b_cseq = b_invite.cseq().unwrap().0;
    let to_tag = "callee-tag-1";
    callee.respond(&b_invite, core_from, "100 Trying", to_tag, None);
    callee.respond(
        &b_invite,
        core_from,
        "200 OK",
        to_tag,
        Some(&sdp(CALLEE, 1, 30002, false)),
    );

    let (ok, _) = caller.expect("200 to the INVITE", |m| is_response(m, 200, "INVITE", 1));
    let (a_rtp, a_rtcp) = check_sdp(&ok, ip(ACCESS), ip(CALLEE));
    let sbc_a_rtp = addr(ACCESS, a_rtp);
    let sbc_a_rtcp = addr(ACCESS, a_rtcp);
    let dialog = CallerDialog::from_ok(&ok, &call_id, from_hdr);
    let in_dialog = |caller: &mut Peer, method: &str, cseq: u32, body: Option<&str>| {
        dialog.request(caller, method, cseq, body)
    };
    in_dialog(&mut caller, "ACK", 1, None);
    callee.expect("B-leg ACK", |m| is_request(m, "ACK", Some(b_cseq)));

    // --- media both ways -------------------------------------------------
    relay_rtp(
        "RTP caller -> callee",
        &caller_rtp,
        sbc_a_rtp,
        &callee_rtp,
        sbc_b_rtp,
        0x1111_1111,
        1,
    );
    relay_rtp(
        "RTP callee -> caller",
        &callee_rtp,
        sbc_b_rtp,
        &caller_rtp,
        sbc_a_rtp,
        0x2222_2222,
        1,
    );
    relay_one(
        "RTCP caller -> callee",
        &rtcp_packet(0x1111_1111, 1),
        &caller_rtcp,
        sbc_a_rtcp,
        &callee_rtcp,
        sbc_b_rtcp,
    );
    relay_one(
        "RTCP callee -> caller",
        &rtcp_packet(0x2222_2222, 1),
        &callee_rtcp,
        sbc_b_rtcp,
        &caller_rtcp,
        sbc_a_rtcp,
    );

    // --- re-INVITE: the caller moves its media to 30010 ------------------
    let moved_rtp = media_socket(addr(CALLER, 30010));
    let reoffer = sdp(CALLER, 2, 30010, true);
    in_dialog(&mut caller, "INVITE", 2, Some(&reoffer));
    let (b_reinvite, core_from) = callee.expect("B-leg re-INVITE", |m| {
        is_request(m, "INVITE", None) && m.cseq().is_some_and(|(c, _)| c > b_cseq)
    });
    let (b_rtp2, _) = check_sdp(&b_reinvite, ip(CORE), ip(CALLER));
    let b_recseq = b_reinvite.cseq().unwrap().0;
    callee.respond(
        &b_reinvite,
        core_from,
        "200 OK",
        to_tag,
        Some(&sdp(CALLEE, 2, 30002, false)),
    );
    let (ok2, _) = caller.expect("200 to the re-INVITE", |m| is_response(m, 200, "INVITE", 2));
    let (a_rtp2, _) = check_sdp(&ok2, ip(ACCESS), ip(CALLEE));
    in_dialog(&mut caller, "ACK", 2, None);
    callee.expect("B-leg ACK of the re-INVITE", |m| {
        is_request(m, "ACK", Some(b_recseq))
    });

    // The callee speaks first: the relay must follow the new SDP, not the
    // source it had latched on 30000.
    relay_rtp(
        "RTP callee -> caller after the re-INVITE",
        &callee_rtp,
        addr(CORE, b_rtp2),
        &moved_rtp,
        addr(ACCESS, a_rtp2),
        0x2222_2222,
        100,
    );
    relay_rtp(
        "RTP caller (moved) -> callee after the re-INVITE",
        &moved_rtp,
        addr(ACCESS, a_rtp2),
        &callee_rtp,
        addr(CORE, b_rtp2),
        0x3333_3333,
        100,
    );

    // --- BYE ---------------------------------------------------------------
    // While the call is up sipveil holds its ports (so the check after the BYE
    // means something).
    assert!(
        UdpSocket::bind(sbc_a_rtp).is_err() && UdpSocket::bind(sbc_b_rtp).is_err(),
        "sipveil's relay ports {sbc_a_rtp} / {sbc_b_rtp} are not bound during the call"
    );
    in_dialog(&mut caller, "BYE", 3, None);
    let (bye, core_from) = callee.expect("B-leg BYE", |m| is_request(m, "BYE", None));
    callee.respond(&bye, core_from, "200 OK", to_tag, None);
    caller.expect("200 to the BYE", |m| is_response(m, 200, "BYE", 3));

    let mut held: Vec<SocketAddr> = vec![sbc_a_rtp, sbc_a_rtcp, sbc_b_rtp, sbc_b_rtcp];
    for a in [addr(ACCESS, a_rtp2), addr(CORE, b_rtp2)] {
        if !held.contains(&a) {
            held.push(a);
        }
    }
    for &a in &held {
        assert_released(a, &sbc);
    }
    println!(
        "relay ports: A side {a_rtp}/{a_rtcp} (after re-INVITE {a_rtp2}), \
         B side {b_rtp}/{b_rtcp} (after re-INVITE {b_rtp2}); released: {held:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the test took {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------
// Restart and rtpengine: a call set up by a helper
// ---------------------------------------------------------------------------

/// INVITE with `offer`, 200 with `answer`, ACK. Returns the dialog, the B-leg
/// INVITE and the 200 the caller got.
fn establish(
    caller: &mut Peer,
    callee: &mut Peer,
    access: SocketAddr,
    offer: &str,
    answer: &str,
) -> (CallerDialog, SipMsg, SipMsg) {
    let call_id = format!("media-e2e-{}-{}", std::process::id(), caller.local.port());
    let from_hdr = "<sip:caller@example.test>;tag=caller-tag-2";
    send_invite(caller, access, &call_id, from_hdr, offer);
    let (b_invite, core_from) = callee.expect("B-leg INVITE", |m| is_request(m, "INVITE", None));
    callee.respond(&b_invite, core_from, "200 OK", "callee-tag-2", Some(answer));
    let (ok, _) = caller.expect("200 to the INVITE", |m| is_response(m, 200, "INVITE", 1));
    let dialog = CallerDialog::from_ok(&ok, &call_id, from_hdr);
    dialog.request(caller, "ACK", 1, None);
    let b_cseq = b_invite.cseq().unwrap().0;
    callee.expect("B-leg ACK", |m| is_request(m, "ACK", Some(b_cseq)));
    (dialog, b_invite, ok)
}

/// The sess-id and sess-version of the o= line of `m`'s SDP.
fn origin_of(m: &SipMsg) -> (String, u64) {
    let line = m
        .body
        .lines()
        .find_map(|l| l.strip_prefix("o="))
        .unwrap_or_else(|| panic!("no o= in:\n{}", m.raw));
    let f: Vec<&str> = line.split_whitespace().collect();
    (f[1].to_string(), f[2].parse().unwrap())
}

/// Caller re-INVITEs with `offer`; the callee answers `answer`. Returns the
/// B-leg re-INVITE and the caller's 200.
fn reinvite(
    caller: &mut Peer,
    callee: &mut Peer,
    d: &CallerDialog,
    cseq: u32,
    offer: &str,
    answer: &str,
) -> (SipMsg, SipMsg) {
    d.request(caller, "INVITE", cseq, Some(offer));
    let (b_re, core_from) = callee.expect("B-leg re-INVITE", |m| is_request(m, "INVITE", None));
    callee.respond(&b_re, core_from, "200 OK", "callee-tag-2", Some(answer));
    let (ok, _) = caller.expect("200 to the re-INVITE", |m| {
        is_response(m, 200, "INVITE", cseq)
    });
    d.request(caller, "ACK", cseq, None);
    let b_cseq = b_re.cseq().unwrap().0;
    callee.expect("B-leg ACK", |m| is_request(m, "ACK", Some(b_cseq)));
    (b_re, ok)
}

/// Invariant 4 for media: after SIGKILL and restart, an established relayed
/// call keeps its relay ports (media flows where the peers were told), and the
/// next re-INVITE carries the same o= sess-id with the next version.
#[test]
fn relayed_call_keeps_its_media_ports_and_origin_across_a_restart() {
    let (caller_h, callee_h, access_h, core_h) = (3, 4, 30, 40);
    let dir = TempDir::new("media_e2e_restart");
    let access = addr(access_h, 25060);
    let callee_sip = addr(callee_h, 25090);
    let (interfaces, routes) = edge_config(access, addr(core_h, 25060), callee_sip);
    let mut sbc = Sipveil::start(&dir.subdir("sipveil"), &interfaces, &routes);
    let mut caller = Peer::bind(addr(caller_h, 25061));
    let mut callee = Peer::bind(callee_sip);
    let caller_rtp = media_socket(addr(caller_h, 30100));
    let callee_rtp = media_socket(addr(callee_h, 30102));

    let (d, b_invite, ok) = establish(
        &mut caller,
        &mut callee,
        access,
        &sdp(caller_h, 1, 30100, false),
        &sdp(callee_h, 1, 30102, false),
    );
    let (b_rtp, _) = check_sdp(&b_invite, ip(core_h), ip(caller_h));
    let (a_rtp, _) = check_sdp(&ok, ip(access_h), ip(callee_h));
    let (sbc_a, sbc_b) = (addr(access_h, a_rtp), addr(core_h, b_rtp));
    let (b_sess, b_version) = origin_of(&b_invite);
    relay_rtp(
        "RTP caller -> callee",
        &caller_rtp,
        sbc_a,
        &callee_rtp,
        sbc_b,
        0x4444_4444,
        1,
    );

    // Give the store writer its batch interval, then kill without warning.
    std::thread::sleep(Duration::from_millis(300));
    sbc.restart();

    relay_rtp(
        "RTP callee -> caller after the restart",
        &callee_rtp,
        sbc_b,
        &caller_rtp,
        sbc_a,
        0x5555_5555,
        10,
    );
    relay_rtp(
        "RTP caller -> callee after the restart",
        &caller_rtp,
        sbc_a,
        &callee_rtp,
        sbc_b,
        0x4444_4444,
        20,
    );

    // A re-offer that changes nothing keeps the ports; o= keeps its sess-id
    // and moves its version on (the body on the B leg changed: new o= from
    // the caller's side is not what counts, the rewritten body is).
    let (b_re, ok2) = reinvite(
        &mut caller,
        &mut callee,
        &d,
        2,
        &sdp(caller_h, 2, 30100, true),
        &sdp(callee_h, 2, 30102, false),
    );
    let (b_rtp2, _) = check_sdp(&b_re, ip(core_h), ip(caller_h));
    let (a_rtp2, _) = check_sdp(&ok2, ip(access_h), ip(callee_h));
    assert_eq!(
        (a_rtp2, b_rtp2),
        (a_rtp, b_rtp),
        "ports moved after the restart"
    );
    let (b_sess2, b_version2) = origin_of(&b_re);
    assert_eq!(
        b_sess2, b_sess,
        "B-leg o= sess-id changed across the restart"
    );
    assert_eq!(b_version2, b_version + 1, "B-leg o= version:\n{}", b_re.raw);

    d.request(&mut caller, "BYE", 3, None);
    let (bye, core_from) = callee.expect("B-leg BYE", |m| is_request(m, "BYE", None));
    callee.respond(&bye, core_from, "200 OK", "callee-tag-2", None);
    caller.expect("200 to the BYE", |m| is_response(m, 200, "BYE", 3));
    assert_released(sbc_a, &sbc);
    assert_released(sbc_b, &sbc);
}

/// `[media] mode = "rtpengine"`: sipveil drives Debian's rtpengine over ng; each
/// side's SDP names only rtpengine's address, RTP crosses both ways through it,
/// a re-INVITE is offered to it too, and the BYE deletes the call there.
#[test]
fn rtpengine_mode_anchors_the_call_at_rtpengine() {
    let (caller_h, callee_h, access_h, core_h, engine_h) = (5, 6, 50, 60, 70);
    let ng = addr(engine_h, 22223);
    let Some(_engine) = Rtpengine::start(
        "media_e2e::rtpengine_mode_anchors_the_call_at_rtpengine",
        ip(engine_h),
        ng,
        (31_200, 31_299),
    ) else {
        return;
    };
    let dir = TempDir::new("media_e2e_rtpengine");
    let access = addr(access_h, 25060);
    let callee_sip = addr(callee_h, 25090);
    let (interfaces, routes) = edge_config(access, addr(core_h, 25060), callee_sip);
    let mut sbc = Sipveil::configure(
        &dir.subdir("sipveil"),
        &interfaces,
        &routes,
        &format!("[media]\nmode = \"rtpengine\"\nrtpengine = \"{ng}\"\n"),
    );
    sbc.launch();
    let mut caller = Peer::bind(addr(caller_h, 25061));
    let mut callee = Peer::bind(callee_sip);
    let caller_rtp = media_socket(addr(caller_h, 30200));
    let callee_rtp = media_socket(addr(callee_h, 30202));

    let (d, b_invite, ok) = establish(
        &mut caller,
        &mut callee,
        access,
        &sdp(caller_h, 1, 30200, false),
        &sdp(callee_h, 1, 30202, false),
    );
    let (b_rtp, _) = check_sdp(&b_invite, ip(engine_h), ip(caller_h));
    let (a_rtp, _) = check_sdp(&ok, ip(engine_h), ip(callee_h));
    assert!((31_200..=31_299).contains(&a_rtp) && (31_200..=31_299).contains(&b_rtp));
    let (rtp_a, rtp_b) = (addr(engine_h, a_rtp), addr(engine_h, b_rtp));
    relay_rtp(
        "RTP caller -> callee",
        &caller_rtp,
        rtp_a,
        &callee_rtp,
        rtp_b,
        0x6666_6666,
        1,
    );
    relay_rtp(
        "RTP callee -> caller",
        &callee_rtp,
        rtp_b,
        &caller_rtp,
        rtp_a,
        0x7777_7777,
        1,
    );

    let (b_re, ok2) = reinvite(
        &mut caller,
        &mut callee,
        &d,
        2,
        &sdp(caller_h, 2, 30200, false),
        &sdp(callee_h, 2, 30202, false),
    );
    check_sdp(&b_re, ip(engine_h), ip(caller_h));
    check_sdp(&ok2, ip(engine_h), ip(callee_h));
    relay_rtp(
        "RTP after the re-INVITE",
        &caller_rtp,
        rtp_a,
        &callee_rtp,
        rtp_b,
        0x6666_6666,
        50,
    );

    d.request(&mut caller, "BYE", 3, None);
    let (bye, core_from) = callee.expect("B-leg BYE", |m| is_request(m, "BYE", None));
    callee.respond(&bye, core_from, "200 OK", "callee-tag-2", None);
    caller.expect("200 to the BYE", |m| is_response(m, 200, "BYE", 3));
    std::thread::sleep(Duration::from_millis(200));
    // The delete reached rtpengine (started with --delete-delay=0): it no
    // longer forwards on the call's ports.
    drain_count(&callee_rtp);
    for seq in 0..5 {
        caller_rtp
            .send_to(&rtp_packet(900 + seq, 0x6666_6666), rtp_a)
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        drain_count(&callee_rtp),
        0,
        "rtpengine still forwards after the BYE"
    );
    let log = sbc.log_tail(20_000);
    assert!(!log.contains("rtpengine delete"), "{log}");
    assert!(
        !log.contains("rtpengine:"),
        "rtpengine command failed:\n{log}"
    );
}
