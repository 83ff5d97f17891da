//! sipveil's ng client against a real rtpengine (Debian's `rtpengine-daemon`,
//! userspace forwarding, loopback only): ping, offer, answer, RTP both ways
//! through the ports rtpengine put in the SDP, delete.
//!
//! Skipped when `rtpengine` is not on PATH, unless `SIPVEIL_REQUIRE_INTEROP=1`.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use sipveil::media::rtpengine::{NgClient, NgError, Session};

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `m=audio` port and the connection address in an SDP.
fn media_of(sdp: &str) -> (String, u16) {
    let c = sdp
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .expect("c= line")
        .trim()
        .to_string();
    let port = sdp
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split(' ').next())
        .expect("m=audio line")
        .parse()
        .unwrap();
    (c, port)
}

fn sdp(port: u16, session: &str) -> String {
    format!(
        "v=0\r\no=- {session} 1 IN IP4 10.9.9.9\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    )
}

fn rtp(seq: u8) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, seq, 0, 0, 0, 160, 9, 9, 9, 9];
    p.extend_from_slice(&[0xff; 160]);
    p
}

/// Sends `pkt` from `tx` to `dst` until `rx` receives it (rtpengine may need a
/// packet or two to latch); returns where it came from.
fn through(tx: &UdpSocket, dst: SocketAddr, pkt: &[u8], rx: &UdpSocket) -> SocketAddr {
    rx.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 2048];
    for _ in 0..30 {
        tx.send_to(pkt, dst).unwrap();
        if let Ok((n, from)) = rx.recv_from(&mut buf) {
            assert_eq!(&buf[..n], pkt);
            return from;
        }
    }
    panic!("rtpengine did not forward to {:?}", rx.local_addr());
}

#[test]
fn offer_answer_rtp_delete() {
    let ng = free_udp_port();
    let (pmin, pmax) = (31_000, 31_099);
    let server: SocketAddr = format!("127.0.0.1:{ng}").parse().unwrap();
    let Some(_daemon) = common::Rtpengine::start(
        "rtpengine::offer_answer_rtp_delete",
        [127, 0, 0, 1].into(),
        server,
        (pmin, pmax),
    ) else {
        return;
    };
    let c = NgClient::new(server, Duration::from_millis(200), 2);

    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (a_port, b_port) = (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    );
    let call_id = format!("sipveil-test-{}", std::process::id());
    let replace = ["origin", "session-connection"];

    let to_b = c
        .offer(&Session {
            call_id: &call_id,
            from_tag: "a-tag",
            sdp: sdp(a_port, "111").as_bytes(),
            replace: &replace,
            ice: Some("remove"),
            ..Session::default()
        })
        .expect("offer");
    let to_b = String::from_utf8(to_b).unwrap();
    let (addr_b, relay_for_b) = media_of(&to_b);
    assert_eq!(addr_b, "127.0.0.1");
    assert!((pmin..=pmax).contains(&relay_for_b), "{to_b}");
    assert!(!to_b.contains("10.9.9.9"), "origin replaced: {to_b}");
    assert!(to_b.contains("telephone-event"), "{to_b}");

    let to_a = c
        .answer(&Session {
            call_id: &call_id,
            from_tag: "a-tag",
            to_tag: Some("b-tag"),
            sdp: sdp(b_port, "222").as_bytes(),
            replace: &replace,
            ice: Some("remove"),
            ..Session::default()
        })
        .expect("answer");
    let to_a = String::from_utf8(to_a).unwrap();
    let (_, relay_for_a) = media_of(&to_a);
    assert!((pmin..=pmax).contains(&relay_for_a), "{to_a}");
    assert_ne!(relay_for_a, relay_for_b);

    // A sends to the port its answer named; B receives it from B's relay port.
    let from = through(&a, ([127, 0, 0, 1], relay_for_a).into(), &rtp(1), &b);
    assert_eq!(from.port(), relay_for_b);
    let from = through(&b, ([127, 0, 0, 1], relay_for_b).into(), &rtp(2), &a);
    assert_eq!(from.port(), relay_for_a);

    c.delete(&call_id, "a-tag", None).expect("delete");
    // An answer for a call rtpengine does not know is refused with a reason.
    let stray = c.answer(&Session {
        call_id: "no-such-call",
        from_tag: "x",
        to_tag: Some("y"),
        sdp: sdp(b_port, "333").as_bytes(),
        ..Session::default()
    });
    match stray {
        Err(NgError::Refused(reason)) => eprintln!("unknown call refused: {reason}"),
        other => panic!("answer to an unknown call: {other:?}"),
    }
}
