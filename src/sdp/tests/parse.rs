//! Parser: typed views, byte preservation, malformed input, limits.

use std::net::IpAddr;

use super::super::{Direction, Limits, MediaKind, Sdp, SdpError};
use super::{fixture, parsed, FIXTURES};

#[test]
fn every_fixture_parses_and_keeps_its_bytes() {
    for name in FIXTURES {
        let body = fixture(name);
        let sdp = Sdp::parse(&body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(sdp.as_bytes(), &body[..], "{name}");
    }
}

#[test]
fn origin_and_session_views() {
    let sdp = parsed("audio_video.sdp");
    let o = sdp.origin();
    assert_eq!(
        (
            o.username.as_str(),
            o.sess_id.as_str(),
            o.sess_version.as_str()
        ),
        ("alice", "2890844526", "2890844526")
    );
    assert_eq!((o.nettype.as_str(), o.addrtype.as_str()), ("IN", "IP4"));
    assert_eq!(o.address, "10.0.0.11");
    let c = sdp.session_connection().unwrap();
    assert_eq!(c.ip, Some("10.0.0.11".parse().unwrap()));
    assert!(!c.is_hold());
}

#[test]
fn media_views() {
    let sdp = parsed("audio_video.sdp");
    let [audio, video] = sdp.media() else {
        panic!("two sections")
    };
    assert_eq!(audio.kind, MediaKind::Audio);
    assert_eq!((audio.port, audio.port_count), (49170, None));
    assert_eq!(audio.proto, "RTP/AVP");
    assert_eq!(audio.formats, ["0", "8", "9", "101"]);
    let rtcp = audio.rtcp.as_ref().unwrap();
    assert_eq!(rtcp.port, 49171);
    assert_eq!(rtcp.connection.as_ref().unwrap().address, "10.0.0.11");
    assert_eq!(audio.direction, Some(Direction::SendRecv));
    assert_eq!(audio.rtpmap("101").unwrap().encoding, "telephone-event");
    assert_eq!(audio.fmtp("101").unwrap().params, "0-16");
    assert_eq!(video.kind, MediaKind::Video);
    assert_eq!(
        video.fmtp("96").unwrap().params,
        "profile-level-id=42e01f;packetization-mode=1"
    );

    let multi = parsed("multi_c.sdp");
    let m = multi.media();
    assert_eq!(m[0].connections.len(), 2);
    assert_eq!(m[0].connection().unwrap().address, "10.3.3.4");
    assert!(m[1].connections.is_empty());
    assert_eq!(multi.connection_for(1).unwrap().address, "10.3.3.3");
    assert_eq!((m[2].port, m[2].port_count), (11004, Some(2)));
    assert_eq!(m[2].connection().unwrap().address, "224.2.17.12");
}

#[test]
fn opus_t38_ipv6_rtcp_mux_views() {
    let opus = parsed("opus.sdp");
    let map = opus.media()[0].rtpmap("111").unwrap();
    assert_eq!(
        (map.encoding.as_str(), map.clock_rate, map.params.as_deref()),
        ("opus", 48000, Some("2"))
    );

    let t38 = parsed("t38.sdp");
    let m = &t38.media()[0];
    assert_eq!(
        (&m.kind, m.proto.as_str(), m.is_rtp()),
        (&MediaKind::Image, "udptl", false)
    );
    assert_eq!(m.formats, ["t38"]);

    let v6 = parsed("ipv6.sdp");
    assert_eq!(v6.origin().addrtype, "IP6");
    let rtcp = v6.media()[0].rtcp.as_ref().unwrap();
    assert_eq!(
        rtcp.connection.as_ref().unwrap().ip,
        Some("2001:db8:1::11".parse::<IpAddr>().unwrap())
    );

    let mux = parsed("rtcp_mux.sdp");
    assert!(mux.media()[0].rtcp_mux);
    assert!(mux.media()[0].is_rtp());
}

#[test]
fn ice_views() {
    let sdp = parsed("ice.sdp");
    let s = sdp.session_ice();
    assert_eq!(s.ufrag.as_deref(), Some("8hhY"));
    assert_eq!(s.pwd.as_deref(), Some("asd88fgpdd777uzjYhagZg"));
    assert_eq!(s.options, ["trickle"]);
    let m = &sdp.media()[0].ice;
    assert_eq!(m.candidates.len(), 4);
    let srflx = &m.candidates[2];
    assert_eq!(
        (srflx.component, srflx.kind.as_str(), srflx.port),
        (1, "srflx", 45664)
    );
    assert_eq!(srflx.related_address.as_deref(), Some("192.168.1.40"));
    assert_eq!(srflx.related_port, Some(45664));
    assert!(m.remote_candidates.is_some());
    assert!(m.end_of_candidates);
}

#[test]
fn hold_views() {
    assert_eq!(
        parsed("hold_sendonly.sdp").direction_for(0),
        Direction::SendOnly
    );
    assert_eq!(
        parsed("hold_inactive.sdp").direction_for(0),
        Direction::Inactive
    );
    let zero = parsed("hold_zero.sdp");
    assert!(zero.session_connection().unwrap().is_hold());
    assert_eq!(zero.direction_for(0), Direction::SendRecv);
}

#[test]
fn malformed_fixtures_name_their_fault() {
    let cases = [
        ("missing_v.sdp", "no v= line"),
        ("missing_o.sdp", "no o= line"),
        ("missing_s.sdp", "no s= line"),
        ("missing_t.sdp", "no t= line"),
        ("bad_m.sdp", "line 6: m= line needs media, port, proto"),
        (
            "c_no_address.sdp",
            "line 4: c= line needs nettype, addrtype and address",
        ),
        (
            "port_not_numeric.sdp",
            "line 6: m= port \"10x0\" is not a number",
        ),
        ("no_equals.sdp", "line 6: line is not of the form x=value"),
        ("no_connection.sdp", "no c= line for media section 0"),
    ];
    for (name, fault) in cases {
        let err = Sdp::parse(&fixture(&format!("invalid/{name}"))).unwrap_err();
        assert!(err.to_string().contains(fault), "{name}: {err}");
        assert_eq!(err.status(), 400);
    }
}

fn fault(body: &str) -> String {
    Sdp::parse(body.as_bytes()).unwrap_err().to_string()
}

const HEAD: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n";

#[test]
fn malformed_lines_name_their_fault() {
    let cases = [
        (
            "m=audio 1000 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n",
            "no clock rate",
        ),
        (
            "m=audio 1000 RTP/AVP 0\r\na=rtpmap:x PCMU/8000\r\n",
            "payload type \"x\"",
        ),
        (
            "m=audio 1000 RTP/AVP 0\r\na=rtcp:abc\r\n",
            "a=rtcp port \"abc\"",
        ),
        ("m=audio 70000 RTP/AVP 0\r\n", "out of range"),
        ("m=audio 1000 RTP/AVP\r\n", "m= line has no formats"),
        (
            "m=audio 1000 RTP/AVP 0\r\na=candidate:1 1 UDP 1 10.0.0.1\r\n",
            "a=candidate needs 8 fields",
        ),
        (
            "m=audio 1000 RTP/AVP 0\r\no=- 1 1 IN IP4 10.0.0.1\r\n",
            "o= line inside a media section",
        ),
        ("o=- 2 2 IN IP4 10.0.0.1\r\n", "second o= line"),
        (
            "m=audio 1000 RTP/AVP 0\r\nc=IN IP4 2001:db8::1\r\n",
            "does not match addrtype",
        ),
        (
            "\r\nm=audio 1000 RTP/AVP 0\r\n",
            "line 6: line is not of the form x=value",
        ),
        (" a=x\r\n", "line 6: line is not of the form"),
    ];
    for (tail, want) in cases {
        let got = fault(&format!("{HEAD}{tail}"));
        assert!(got.contains(want), "{tail:?}: {got}");
    }
    assert!(fault("v=0\r\no=- 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\n")
        .contains("o= line needs 6 fields"));
    assert!(fault("v=1\r\no=- 1 1 IN IP4 a\r\ns=-\r\nt=0 0\r\n").contains("v= is not 0"));
    let mut bad = HEAD.as_bytes().to_vec();
    bad.extend_from_slice(b"m=audio 1000 RTP/AVP 0\r\nc=IN IP4 \xff\r\n");
    assert!(Sdp::parse(&bad)
        .unwrap_err()
        .to_string()
        .contains("c= line is not UTF-8"));
}

#[test]
fn a_rejected_stream_needs_no_connection_and_no_formats() {
    let body = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP\r\n";
    let sdp = Sdp::parse(body.as_bytes()).unwrap();
    assert!(sdp.media()[0].is_rejected());
}

#[test]
fn limits_bound_the_work() {
    let body = fixture("audio_video.sdp");
    let small = |f: fn(&mut Limits)| {
        let mut l = Limits::default();
        f(&mut l);
        Sdp::parse_with(&body, &l).unwrap_err()
    };
    assert!(matches!(small(|l| l.max_size = 100), SdpError::TooLarge(_)));
    assert!(matches!(small(|l| l.max_lines = 10), SdpError::TooLarge(_)));
    assert!(matches!(small(|l| l.max_media = 1), SdpError::TooLarge(_)));
    assert!(matches!(
        small(|l| l.max_formats = 3),
        SdpError::TooLarge(_)
    ));
    let huge = "a=x\r\n".repeat(2000);
    assert!(matches!(
        Sdp::parse(format!("{HEAD}{huge}").as_bytes()),
        Err(SdpError::TooLarge(_))
    ));
}

#[test]
fn unknown_types_and_attributes_are_views_of_nothing_but_stay() {
    let sdp = parsed("unknown_attrs.sdp");
    assert_eq!(sdp.media().len(), 1);
    assert_eq!(sdp.media()[0].formats, ["0", "13"]);
    let order = parsed("unusual_order.sdp");
    assert_eq!(order.media()[0].connection().unwrap().address, "10.9.9.10");
    assert_eq!(order.media()[0].rtcp.as_ref().unwrap().port, 7079);
}

#[test]
fn warning_text_is_one_quoted_string() {
    assert_eq!(
        SdpError::NoAcceptableCodec.warning("sbc.example.net"),
        "399 sbc.example.net \"no acceptable codec\""
    );
    assert_eq!(
        super::super::warning("h", "a \"b\" \\ c\r\n"),
        "399 h \"a \\\"b\\\" \\\\ c  \""
    );
}
