//! The relay on real loopback sockets: far ends are plain UDP sockets, packets
//! are RTP-shaped (12-byte header + payload).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use super::*;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Each test has its own port range so tests run in parallel.
fn relay(first_port: u16, relatch_ms: u64) -> MediaRelay {
    MediaRelay::new(MediaConfig {
        port_min: first_port,
        port_max: first_port + 39,
        relatch_after: Duration::from_millis(relatch_ms),
        port_quarantine: Duration::ZERO,
        ..MediaConfig::default()
    })
    .unwrap()
}

fn far_end() -> UdpSocket {
    let s = UdpSocket::bind((LO, 0)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(1000)))
        .unwrap();
    s
}

fn addr(s: &UdpSocket) -> SocketAddr {
    s.local_addr().unwrap()
}

fn to(port: u16) -> SocketAddr {
    SocketAddr::new(LO, port)
}

fn rtp(seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![
        0x80,
        0,
        (seq >> 8) as u8,
        seq as u8,
        0,
        0,
        0,
        160,
        1,
        2,
        3,
        4,
    ];
    p.extend_from_slice(payload);
    p
}

fn rtcp_sr() -> Vec<u8> {
    vec![0x80, 200, 0, 6, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0]
}

fn recv(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 2048];
    let (n, from) = s.recv_from(&mut buf).expect("packet expected");
    (buf[..n].to_vec(), from)
}

fn nothing(s: &UdpSocket) {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 2048];
    assert!(s.recv_from(&mut buf).is_err(), "no packet expected");
    s.set_read_timeout(Some(Duration::from_millis(1000)))
        .unwrap();
}

/// Sends from `from` until `rx` gets it, for the first packet of a test (the
/// worker learns of a new stream asynchronously).
fn first(from: &UdpSocket, dst: SocketAddr, pkt: &[u8], rx: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    rx.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buf = [0u8; 2048];
    for _ in 0..40 {
        from.send_to(pkt, dst).unwrap();
        if let Ok((n, a)) = rx.recv_from(&mut buf) {
            rx.set_read_timeout(Some(Duration::from_millis(1000)))
                .unwrap();
            return (buf[..n].to_vec(), a);
        }
    }
    panic!("relay never forwarded");
}

#[test]
fn rtp_and_rtcp_both_ways() {
    let r = relay(21000, 2000);
    let p = r.allocate("c1", 0, LO, LO).unwrap();
    assert_eq!((p.a_rtcp, p.b_rtcp), (p.a_rtp + 1, p.b_rtp + 1));
    assert_eq!(p.a_rtp % 2, 0);
    let (a, a_c, b, b_c) = (far_end(), far_end(), far_end(), far_end());
    r.set_remote("c1", 0, Side::A, Some(addr(&a)), Some(addr(&a_c)), false)
        .unwrap();
    r.set_remote("c1", 0, Side::B, Some(addr(&b)), Some(addr(&b_c)), false)
        .unwrap();

    let pkt = rtp(1, b"hello from A");
    let (got, from) = first(&a, to(p.a_rtp), &pkt, &b);
    assert_eq!(got, pkt);
    assert_eq!(from, to(p.b_rtp), "leaves from B's relay port");

    let back = rtp(7, b"hello from B");
    b.send_to(&back, to(p.b_rtp)).unwrap();
    let (got, from) = recv(&a);
    assert_eq!((got, from), (back.clone(), to(p.a_rtp)));

    a_c.send_to(&rtcp_sr(), to(p.a_rtcp)).unwrap();
    let (got, from) = recv(&b_c);
    assert_eq!((got, from), (rtcp_sr(), to(p.b_rtcp)));
    b_c.send_to(&rtcp_sr(), to(p.b_rtcp)).unwrap();
    let (got, from) = recv(&a_c);
    assert_eq!((got, from), (rtcp_sr(), to(p.a_rtcp)));

    // Counters are bumped right after the send: give the worker a moment.
    std::thread::sleep(Duration::from_millis(50));
    let s = r.stats("c1").unwrap();
    assert_eq!(s.len(), 1);
    assert!(s[0].a_to_b.packets >= 2);
    assert_eq!(s[0].b_to_a.packets, 2);
    assert_eq!(s[0].b_to_a.bytes, (back.len() + rtcp_sr().len()) as u64);
    let fin = r.release("c1").unwrap();
    assert_eq!(fin[0].b_to_a.packets, 2);
    assert!(r.stats("c1").is_none());
}

#[test]
fn rtcp_mux_and_mixed() {
    let r = relay(21040, 2000);
    let p = r.allocate("mux", 0, LO, LO).unwrap();
    let (a, b, b_c) = (far_end(), far_end(), far_end());
    r.set_remote("mux", 0, Side::A, Some(addr(&a)), None, true)
        .unwrap();
    r.set_remote("mux", 0, Side::B, Some(addr(&b)), None, true)
        .unwrap();
    let (got, from) = first(&a, to(p.a_rtp), &rtp(1, b"x"), &b);
    assert_eq!((got, from), (rtp(1, b"x"), to(p.b_rtp)));
    // RTCP on the RTP port goes out of the other side's RTP port.
    a.send_to(&rtcp_sr(), to(p.a_rtp)).unwrap();
    assert_eq!(recv(&b), (rtcp_sr(), to(p.b_rtp)));
    b.send_to(&rtcp_sr(), to(p.b_rtp)).unwrap();
    assert_eq!(recv(&a), (rtcp_sr(), to(p.a_rtp)));

    // B stops muxing (a re-INVITE without a=rtcp-mux, same RTP address).
    r.set_remote("mux", 0, Side::B, Some(addr(&b)), Some(addr(&b_c)), false)
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    a.send_to(&rtcp_sr(), to(p.a_rtp)).unwrap();
    assert_eq!(recv(&b_c), (rtcp_sr(), to(p.b_rtcp)));
    b_c.send_to(&rtcp_sr(), to(p.b_rtcp)).unwrap();
    assert_eq!(recv(&a), (rtcp_sr(), to(p.a_rtp)));
}

#[test]
fn stranger_is_dropped_while_latched() {
    let r = relay(21080, 2000);
    let p = r.allocate("c", 0, LO, LO).unwrap();
    let (a, b, stranger) = (far_end(), far_end(), far_end());
    // A's SDP named nothing usable (NAT, hold): A is learned by latching only.
    r.set_remote("c", 0, Side::A, None, None, false).unwrap();
    r.set_remote("c", 0, Side::B, Some(addr(&b)), None, false)
        .unwrap();
    first(&a, to(p.a_rtp), &rtp(1, b"a"), &b);
    stranger.send_to(&rtp(2, b"evil"), to(p.a_rtp)).unwrap();
    nothing(&b);
    // B's media still goes to the latched A, not to the stranger.
    b.send_to(&rtp(3, b"b"), to(p.b_rtp)).unwrap();
    assert_eq!(recv(&a).0, rtp(3, b"b"));
    nothing(&stranger);
    let s = r.stats("c").unwrap();
    assert_eq!(s[0].dropped_source, 1);
}

#[test]
fn relatch_after_silence_and_signaled_source_wins() {
    let r = relay(21120, 300);
    let p = r.allocate("c", 0, LO, LO).unwrap();
    let (a1, a2, a_sig, b) = (far_end(), far_end(), far_end(), far_end());
    r.set_remote("c", 0, Side::A, Some(addr(&a_sig)), None, false)
        .unwrap();
    r.set_remote("c", 0, Side::B, Some(addr(&b)), None, false)
        .unwrap();
    first(&a1, to(p.a_rtp), &rtp(1, b"1"), &b);
    // Too soon: refused.
    a2.send_to(&rtp(2, b"2"), to(p.a_rtp)).unwrap();
    nothing(&b);
    // After 300 ms of silence from a1, a2 takes over.
    std::thread::sleep(Duration::from_millis(350));
    a2.send_to(&rtp(3, b"3"), to(p.a_rtp)).unwrap();
    assert_eq!(recv(&b).0, rtp(3, b"3"));
    b.send_to(&rtp(4, b"4"), to(p.b_rtp)).unwrap();
    assert_eq!(recv(&a2).0, rtp(4, b"4"));
    // The SDP-named address wins at once, silence or not.
    a_sig.send_to(&rtp(5, b"5"), to(p.a_rtp)).unwrap();
    assert_eq!(recv(&b).0, rtp(5, b"5"));
    b.send_to(&rtp(6, b"6"), to(p.b_rtp)).unwrap();
    assert_eq!(recv(&a_sig).0, rtp(6, b"6"));
}

#[test]
fn reinvite_moving_the_far_port_redirects() {
    let r = relay(21160, 2000);
    let p = r.allocate("c", 0, LO, LO).unwrap();
    let (a, b1, b2) = (far_end(), far_end(), far_end());
    r.set_remote("c", 0, Side::A, Some(addr(&a)), None, false)
        .unwrap();
    r.set_remote("c", 0, Side::B, Some(addr(&b1)), None, false)
        .unwrap();
    first(&a, to(p.a_rtp), &rtp(1, b"1"), &b1);
    b1.send_to(&rtp(2, b"2"), to(p.b_rtp)).unwrap();
    assert_eq!(recv(&a).0, rtp(2, b"2"));
    // Re-INVITE: B now receives on another port.
    r.set_remote("c", 0, Side::B, Some(addr(&b2)), None, false)
        .unwrap();
    let (got, from) = first(&a, to(p.a_rtp), &rtp(3, b"3"), &b2);
    assert_eq!((got, from), (rtp(3, b"3"), to(p.b_rtp)));
    // Hold (c=0.0.0.0) before B's new port sent anything: nowhere to send.
    let hold = Some("0.0.0.0:0".parse().unwrap());
    r.set_remote("c", 0, Side::B, hold, None, false).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    a.send_to(&rtp(4, b"4"), to(p.a_rtp)).unwrap();
    nothing(&b2);
    assert!(r.stats("c").unwrap()[0].dropped_unroutable >= 1);
    // Resume on b2; once b2 has sent (latched), a later hold keeps the flow.
    r.set_remote("c", 0, Side::B, Some(addr(&b2)), None, false)
        .unwrap();
    first(&b2, to(p.b_rtp), &rtp(5, b"5"), &a);
    r.set_remote("c", 0, Side::B, hold, None, false).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    a.send_to(&rtp(6, b"6"), to(p.a_rtp)).unwrap();
    assert_eq!(recv(&b2).0, rtp(6, b"6"));
}

#[test]
fn release_frees_ports_within_two_seconds() {
    let r = relay(21200, 2000);
    let p = r.allocate("c", 0, LO, LO).unwrap();
    let p1 = r.allocate("c", 1, LO, LO).unwrap();
    assert_eq!(
        r.allocate("c", 1, LO, LO).unwrap(),
        p1,
        "re-offer keeps ports"
    );
    let (a, b) = (far_end(), far_end());
    r.set_remote("c", 0, Side::B, Some(addr(&b)), None, false)
        .unwrap();
    first(&a, to(p.a_rtp), &rtp(1, b"1"), &b);
    let t0 = Instant::now();
    assert_eq!(r.release("c").unwrap().len(), 2);
    assert!(r.release("c").is_none());
    let ports = [p.a_rtp, p.a_rtcp, p.b_rtp, p.b_rtcp, p1.a_rtp, p1.b_rtcp];
    let mut held = Vec::new();
    for port in ports {
        let sock = loop {
            match UdpSocket::bind((LO, port)) {
                Ok(s) => break s,
                Err(_) if t0.elapsed() < Duration::from_secs(2) => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => panic!("port {port} still bound after 2 s: {e}"),
            }
        };
        held.push(sock);
    }
    let took = t0.elapsed();
    eprintln!("release: all ports bindable again after {took:?}");
    assert!(took < Duration::from_secs(2));
    // Nothing is forwarded any more: A's packet lands on our own socket now.
    a.send_to(&rtp(2, b"2"), to(p.a_rtp)).unwrap();
    nothing(&b);
}

#[test]
fn silent_calls_are_reported() {
    let r = relay(21240, 2000);
    let q = r.allocate("quiet", 0, LO, LO).unwrap();
    let p = r.allocate("busy", 0, LO, LO).unwrap();
    let _ = q;
    let (a, b) = (far_end(), far_end());
    r.set_remote("busy", 0, Side::B, Some(addr(&b)), None, false)
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    first(&a, to(p.a_rtp), &rtp(1, b"1"), &b);
    let now = Instant::now();
    assert_eq!(
        r.silent_calls(now, Duration::from_millis(250)),
        vec!["quiet"]
    );
    assert!(r.silent_calls(now, Duration::ZERO).is_empty());
    let mut both = r.silent_calls(now + Duration::from_secs(10), Duration::from_secs(5));
    both.sort();
    assert_eq!(both, vec!["busy", "quiet"]);
}

#[test]
fn limits_and_errors() {
    let r = MediaRelay::new(MediaConfig {
        port_min: 21280,
        port_max: 21283,
        max_streams_per_call: 1,
        port_quarantine: Duration::ZERO,
        ..MediaConfig::default()
    })
    .unwrap();
    r.allocate("c", 0, LO, LO).unwrap();
    assert!(matches!(
        r.allocate("c", 1, LO, LO),
        Err(MediaError::TooManyStreams(_))
    ));
    // Two pairs in the range, both in use now.
    assert!(matches!(
        r.allocate("d", 0, LO, LO),
        Err(MediaError::Ports { .. })
    ));
    assert!(matches!(
        r.set_remote("x", 0, Side::A, None, None, false),
        Err(MediaError::UnknownCall(_))
    ));
    assert!(matches!(
        r.set_remote("c", 3, Side::A, None, None, false),
        Err(MediaError::UnknownStream { .. })
    ));
    r.release("c").unwrap();
    // (The worker closes the sockets asynchronously, within milliseconds.)
    std::thread::sleep(Duration::from_millis(50));
    // An address that is not ours fails cleanly and leaks nothing.
    let not_ours: IpAddr = "192.0.2.77".parse().unwrap();
    assert!(matches!(
        r.allocate("e", 0, LO, not_ours),
        Err(MediaError::Ports { ip, .. }) if ip == not_ours
    ));
    assert_eq!(r.calls(), 0);
    // A's pair went back: both pairs are there for the next call.
    std::thread::sleep(Duration::from_millis(50));
    r.allocate("f", 0, LO, LO).unwrap();
}

#[test]
fn flood_from_a_stranger_does_not_starve_a_stream() {
    let r = relay(21320, 2000);
    let p = r.allocate("c", 0, LO, LO).unwrap();
    let q = r.allocate("d", 0, LO, LO).unwrap();
    let (a, b, c_far, d_far, stranger) = (far_end(), far_end(), far_end(), far_end(), far_end());
    r.set_remote("c", 0, Side::B, Some(addr(&b)), None, false)
        .unwrap();
    r.set_remote("d", 0, Side::B, Some(addr(&d_far)), None, false)
        .unwrap();
    first(&a, to(p.a_rtp), &rtp(1, b"1"), &b);
    first(&c_far, to(q.a_rtp), &rtp(1, b"1"), &d_far);
    // The stranger floods call c's port while call d's media keeps flowing.
    for i in 0..2000u16 {
        let _ = stranger.send_to(&rtp(i, b"flood"), to(p.a_rtp));
        if i % 200 == 0 {
            c_far.send_to(&rtp(i, b"d"), to(q.a_rtp)).unwrap();
            assert_eq!(recv(&d_far).0, rtp(i, b"d"));
        }
    }
    nothing(&b);
    std::thread::sleep(Duration::from_millis(50));
    assert!(r.stats("c").unwrap()[0].dropped_source > 0);
}

#[test]
fn handle_is_shareable() {
    fn send_sync<T: Send + Sync + Clone>() {}
    send_sync::<MediaRelay>();
}
