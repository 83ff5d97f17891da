//! Rewriter: topology hiding, preservation, ports, hold, ICE, o= versioning, relay view.

use std::net::IpAddr;

use super::super::{Direction, HoldMode, MediaPlan, OriginState, RewritePlan, Sdp, SdpError};
use super::{addresses, fixture, lines, parsed, plan, untouchable, FIXTURES, OURS4, OURS6};

fn rewritten(name: &str, ours: &str) -> (Sdp, Vec<u8>) {
    let sdp = parsed(name);
    let out = sdp
        .rewrite(&plan(&sdp, ours))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    (sdp, out)
}

#[test]
fn no_original_address_survives_and_every_address_is_ours() {
    for ours in [OURS4, OURS6] {
        let ours_ip: IpAddr = ours.parse().unwrap();
        for name in FIXTURES {
            let (sdp, out) = rewritten(name, ours);
            let text = String::from_utf8_lossy(&out);
            for ip in addresses(sdp.as_bytes()) {
                assert!(
                    !text.contains(&ip.to_string()),
                    "{name}: {ip} left in\n{text}"
                );
            }
            assert_eq!(addresses(&out), vec![ours_ip], "{name}:\n{text}");
            let again = Sdp::parse(&out).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
            assert_eq!(again.origin().address, ours, "{name}");
            let family = if ours_ip.is_ipv4() { "IP4" } else { "IP6" };
            assert_eq!(again.origin().addrtype, family, "{name}");
            for i in 0..again.media().len() {
                if let Some(c) = again.connection_for(i) {
                    assert!(c.ip == Some(ours_ip) || c.is_hold(), "{name} section {i}");
                    assert_eq!(c.addrtype, family, "{name} section {i}");
                }
            }
        }
    }
}

#[test]
fn every_other_line_survives_byte_for_byte_in_order() {
    for name in FIXTURES {
        let (sdp, out) = rewritten(name, OURS4);
        assert_eq!(untouchable(&out), untouchable(sdp.as_bytes()), "{name}");
    }
}

#[test]
fn line_endings_are_kept_per_line() {
    let (_, out) = rewritten("lf_endings.sdp", OURS4);
    assert!(!out.contains(&b'\r'));
    let (_, out) = rewritten("audio_video.sdp", OURS4);
    let lfs = out.iter().filter(|b| **b == b'\n').count();
    assert_eq!(lfs, out.windows(2).filter(|w| w == b"\r\n").count());
    let (_, out) = rewritten("mixed_endings.sdp", OURS4);
    let text = String::from_utf8(out).unwrap();
    assert!(text
        .starts_with("v=0\r\no=ivy 9 9 IN IP4 198.51.100.7\ns=mixed\r\nc=IN IP4 198.51.100.7\n"));
    assert!(text.ends_with("a=rtcp:40001 IN IP4 198.51.100.7\r\na=X-last:no newline at end"));
    let (_, out) = rewritten("trailing_blank.sdp", OURS4);
    assert!(out.ends_with(b"a=sendrecv\r\n\r\n\r\n"));
}

#[test]
fn opus_rtpmap_is_untouched() {
    let (_, out) = rewritten("opus.sdp", OURS4);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n")
    );
    assert!(text.contains("m=audio 40000 RTP/AVP 111 0 8 101 100\r\nc=IN IP4 198.51.100.7\r\n"));
}

#[test]
fn ports_and_rtcp_follow_the_plan() {
    let (_, out) = rewritten("audio_video.sdp", OURS4);
    let l = lines(&out);
    assert!(l.contains(&"m=audio 40000 RTP/AVP 0 8 9 101".to_owned()));
    assert!(l.contains(&"a=rtcp:40001 IN IP4 198.51.100.7".to_owned()));
    assert!(l.contains(&"m=video 40002 RTP/AVP 96 97".to_owned()));

    let sdp = parsed("audio_video.sdp");
    let mut p = plan(&sdp, OURS4);
    p.media[0].rtcp_port = Some(45000);
    let l = lines(&sdp.rewrite(&p).unwrap());
    assert!(l.contains(&"a=rtcp:45000 IN IP4 198.51.100.7".to_owned()));

    // a=rtcp on the RTP port under rtcp-mux stays on the (new) RTP port.
    let (_, out) = rewritten("rtcp_mux.sdp", OURS4);
    let l = lines(&out);
    assert!(l.contains(&"a=rtcp:40000".to_owned()) && l.contains(&"a=rtcp-mux".to_owned()));

    // Port counts survive.
    let (_, out) = rewritten("multi_c.sdp", OURS4);
    assert!(lines(&out).contains(&"m=video 40004/2 RTP/AVP 34".to_owned()));
}

#[test]
fn port_zero_stays_zero() {
    let (_, out) = rewritten("port_zero.sdp", OURS4);
    let l = lines(&out);
    assert!(l.contains(&"m=audio 40000 RTP/AVP 0".to_owned()));
    assert!(l.contains(&"m=video 0 RTP/AVP 31".to_owned()));
    assert!(
        !l.iter().any(|l| l.starts_with("a=rtcp")),
        "a rejected stream's RTCP is dropped"
    );
    assert!(l.contains(&"a=rtpmap:31 H261/90000".to_owned()));

    // A plan port of 0 rejects the stream too; and a rejected section needs no plan.
    let sdp = parsed("port_zero.sdp");
    let mut p = RewritePlan::new(OURS4.parse().unwrap());
    p.media = vec![MediaPlan::port(0)];
    let l = lines(&sdp.rewrite(&p).unwrap());
    assert!(l.contains(&"m=audio 0 RTP/AVP 0".to_owned()));
}

#[test]
fn a_plan_without_a_port_for_an_active_stream_is_refused() {
    let sdp = parsed("audio_video.sdp");
    let mut p = plan(&sdp, OURS4);
    p.media.pop();
    let err = sdp.rewrite(&p).unwrap_err();
    assert_eq!(err, SdpError::Plan("no port for media section 1".into()));
    let mut p = plan(&sdp, OURS4);
    p.media[0].port = u16::MAX; // no room for RTCP at port + 1
    assert!(matches!(sdp.rewrite(&p), Err(SdpError::Plan(_))));
}

#[test]
fn hold_stays_hold() {
    for name in ["hold_sendonly.sdp", "hold_inactive.sdp"] {
        let (sdp, out) = rewritten(name, OURS4);
        let again = Sdp::parse(&out).unwrap();
        assert_eq!(again.direction_for(0), sdp.direction_for(0), "{name}");
    }
    // c=0.0.0.0 kept as such (in the leg's family), a=rtcp too.
    let (_, out) = rewritten("hold_zero.sdp", OURS4);
    let l = lines(&out);
    assert!(l.contains(&"c=IN IP4 0.0.0.0".to_owned()));
    assert!(l.contains(&"a=rtcp:40001 IN IP4 0.0.0.0".to_owned()));
    assert!(l.contains(&"o=legacy 1 2 IN IP4 198.51.100.7".to_owned()));
    let (_, out) = rewritten("hold_zero.sdp", OURS6);
    assert!(lines(&out).contains(&"c=IN IP6 ::".to_owned()));

    // Or as a direction attribute, with our address.
    let sdp = parsed("hold_zero.sdp");
    let mut p = plan(&sdp, OURS4);
    p.hold = HoldMode::AsDirection;
    let out = sdp.rewrite(&p).unwrap();
    let again = Sdp::parse(&out).unwrap();
    assert_eq!(again.direction_for(0), Direction::SendOnly);
    assert_eq!(again.session_connection().unwrap().address, OURS4);
    assert!(String::from_utf8(out)
        .unwrap()
        .ends_with("a=rtcp:40001 IN IP4 198.51.100.7\r\na=sendonly\r\n"));
}

#[test]
fn hold_as_direction_rewrites_an_explicit_direction() {
    for (written, held) in [
        ("sendrecv", "sendonly"),
        ("recvonly", "inactive"),
        ("inactive", "inactive"),
    ] {
        let body = format!(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 1000 RTP/AVP 0\r\nc=IN IP4 0.0.0.0\r\na={written}\r\nm=audio 1002 RTP/AVP 0\r\nc=IN IP4 10.0.0.1\r\na={written}\r\n"
        );
        let sdp = Sdp::parse(body.as_bytes()).unwrap();
        let mut p = plan(&sdp, OURS4);
        p.hold = HoldMode::AsDirection;
        let again = Sdp::parse(&sdp.rewrite(&p).unwrap()).unwrap();
        assert_eq!(again.direction_for(0).as_str(), held);
        assert_eq!(
            again.direction_for(1).as_str(),
            written,
            "an unheld section is untouched"
        );
    }
}

#[test]
fn ice_is_stripped_or_passed() {
    let (_, out) = rewritten("ice.sdp", OURS4);
    let again = Sdp::parse(&out).unwrap();
    assert!(again.session_ice().is_empty() && again.media()[0].ice.is_empty());
    assert!(lines(&out).contains(&"a=sendrecv".to_owned()));

    let sdp = parsed("ice.sdp");
    let mut p = plan(&sdp, OURS4);
    p.strip_ice = false;
    let again = Sdp::parse(&sdp.rewrite(&p).unwrap()).unwrap();
    assert_eq!(again.media()[0].ice, sdp.media()[0].ice);
    assert_eq!(again.session_ice(), sdp.session_ice());
}

#[test]
fn duplicate_connections_collapse_to_one() {
    let (_, out) = rewritten("multi_c.sdp", OURS4);
    let again = Sdp::parse(&out).unwrap();
    assert_eq!(again.media()[0].connections.len(), 1);
    assert!(lines(&out).contains(&"c=IN IP4 198.51.100.7".to_owned()));
}

#[test]
fn origin_username_override() {
    let sdp = parsed("audio_video.sdp");
    let mut p = plan(&sdp, OURS4);
    p.origin_username = Some("sipveil".into());
    let l = lines(&sdp.rewrite(&p).unwrap());
    assert_eq!(l[1], "o=sipveil 2890844526 2890844526 IN IP4 198.51.100.7");
}

#[test]
fn origin_version_moves_only_when_the_sent_body_changes() {
    let sdp = parsed("audio_video.sdp");
    let p = plan(&sdp, OURS4);
    let mut leg = OriginState::new(7777, 1);
    assert!(!leg.has_sent());
    let first = sdp.rewrite_for_leg(&p, &mut leg).unwrap();
    assert_eq!(lines(&first)[1], "o=alice 7777 1 IN IP4 198.51.100.7");
    // The same offer again (e.g. a retransmitted or refreshed re-INVITE): same version.
    assert_eq!(sdp.rewrite_for_leg(&p, &mut leg).unwrap(), first);
    assert_eq!(leg.version, 1);
    // The far side bumps its own version without changing anything: ours stays.
    let bumped = String::from_utf8(fixture("audio_video.sdp"))
        .unwrap()
        .replace("2890844526 2890844526", "2890844526 2890844999");
    let bumped = Sdp::parse(bumped.as_bytes()).unwrap();
    assert_eq!(bumped.rewrite_for_leg(&p, &mut leg).unwrap(), first);
    // A changed port changes the body: version 2, and only o= and m= differ.
    let mut moved = p.clone();
    moved.media[0].port = 41000;
    let second = sdp.rewrite_for_leg(&moved, &mut leg).unwrap();
    assert_eq!(leg.version, 2);
    assert_eq!(lines(&second)[1], "o=alice 7777 2 IN IP4 198.51.100.7");
    let diff: Vec<_> = lines(&first)
        .into_iter()
        .zip(lines(&second))
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(diff.len(), 3, "{diff:?}"); // o=, m=audio, a=rtcp
                                           // Hold by direction is a change too; going back is another.
    let held = Sdp::parse(&fixture("hold_sendonly.sdp")).unwrap();
    let mut hp = plan(&held, OURS4);
    hp.media[0].port = 41000;
    sdp.rewrite_for_leg(&moved, &mut leg).unwrap();
    held.rewrite_for_leg(&hp, &mut leg).unwrap();
    assert_eq!(leg.version, 3);
    sdp.rewrite_for_leg(&moved, &mut leg).unwrap();
    assert_eq!(leg.version, 4);
    // The state survives persistence.
    let json = serde_json::to_string(&leg).unwrap();
    let mut back: OriginState = serde_json::from_str(&json).unwrap();
    sdp.rewrite_for_leg(&moved, &mut back).unwrap();
    assert_eq!(back.version, 4);
}

#[test]
fn relay_targets_name_the_far_side() {
    let t = parsed("audio_video.sdp").media_targets();
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].address, Some("10.0.0.11".parse().unwrap()));
    assert_eq!(
        (t[0].port, t[0].rtcp_port, t[0].rtcp_mux),
        (49170, Some(49171), false)
    );
    assert_eq!((t[1].port, t[1].rtcp_port), (51372, Some(51373)));
    assert_eq!(t[1].direction, Direction::SendRecv);

    let t = parsed("ice.sdp").media_targets();
    assert_eq!(t[0].rtcp_address, Some("203.0.113.141".parse().unwrap()));

    let t = parsed("hold_zero.sdp").media_targets();
    assert_eq!((t[0].address, t[0].direction), (None, Direction::SendOnly));
    assert_eq!(t[0].host, "0.0.0.0");

    let t = parsed("port_zero.sdp").media_targets();
    assert_eq!((t[1].port, t[1].rtcp_port), (0, None));

    let t = parsed("rtcp_mux.sdp").media_targets();
    assert!(t[0].rtcp_mux);
    let t = parsed("multi_c.sdp").media_targets();
    assert_eq!(t[0].host, "10.3.3.4");
    assert_eq!(t[1].host, "10.3.3.3");
    let t = parsed("hold_inactive.sdp").media_targets();
    assert!(!t[0].direction.receives() && !t[0].direction.sends());
}

#[test]
fn rewriting_twice_changes_nothing_more() {
    for name in FIXTURES {
        let (sdp, once) = rewritten(name, OURS4);
        let again = Sdp::parse(&once).unwrap();
        let twice = again.rewrite(&plan(&sdp, OURS4)).unwrap();
        assert_eq!(twice, once, "{name}");
    }
}

#[test]
fn an_added_direction_line_respects_a_missing_final_newline() {
    let body = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 0.0.0.0\nt=0 0\nm=audio 1000 RTP/AVP 0";
    let sdp = Sdp::parse(body.as_bytes()).unwrap();
    let mut p = plan(&sdp, OURS4);
    p.hold = HoldMode::AsDirection;
    let out = String::from_utf8(sdp.rewrite(&p).unwrap()).unwrap();
    assert!(
        out.ends_with("\nm=audio 40000 RTP/AVP 0\na=sendonly"),
        "{out}"
    );
}

#[test]
fn a_session_level_rtcp_is_dropped() {
    let body = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\na=rtcp:5 IN IP4 10.0.0.2\r\nt=0 0\r\nm=audio 1000 RTP/AVP 0\r\n";
    let sdp = Sdp::parse(body.as_bytes()).unwrap();
    let out = sdp.rewrite(&plan(&sdp, OURS4)).unwrap();
    assert!(!String::from_utf8(out).unwrap().contains("a=rtcp"));
}

#[test]
fn a_held_section_ending_in_a_stripped_line_still_gets_its_direction() {
    for end in ["\r\n", ""] {
        let body = format!(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 1000 RTP/AVP 0\r\na=candidate:1 1 UDP 1 10.0.0.1 1000 typ host{end}"
        );
        let sdp = Sdp::parse(body.as_bytes()).unwrap();
        let mut p = plan(&sdp, OURS4);
        p.hold = HoldMode::AsDirection;
        let out = String::from_utf8(sdp.rewrite(&p).unwrap()).unwrap();
        assert!(
            out.ends_with(&format!("RTP/AVP 0\r\na=sendonly{end}")),
            "{out:?}"
        );
    }
}

#[test]
fn a_username_that_is_not_a_token_is_refused() {
    let sdp = parsed("audio_video.sdp");
    let mut p = plan(&sdp, OURS4);
    p.origin_username = Some("a b\r\nc=IN IP4 6.6.6.6".into());
    assert!(matches!(sdp.rewrite(&p), Err(SdpError::Plan(_))));
}
