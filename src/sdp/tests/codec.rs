//! Codec policy: removal, reordering, companions, rejection, NoAcceptableCodec.

use super::super::{static_payload, CodecPolicy, Sdp, SdpError};
use super::{lines, parsed};

fn policy(allow: &[&str], deny: &[&str], prefer: &[&str]) -> CodecPolicy {
    let v = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect();
    CodecPolicy {
        allow: v(allow),
        deny: v(deny),
        prefer: v(prefer),
    }
}

fn apply(name: &str, p: &CodecPolicy) -> Sdp {
    parsed(name)
        .apply_codec_policy(p)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn deny_removes_the_format_and_its_lines() {
    let out = apply("audio_video.sdp", &policy(&[], &["pcmu", "VP8"], &[]));
    assert_eq!(out.media()[0].formats, ["8", "9", "101"]);
    assert_eq!(out.media()[1].formats, ["96"]);
    let l = lines(out.as_bytes());
    assert!(!l
        .iter()
        .any(|l| l.starts_with("a=rtpmap:0 ") || l.starts_with("a=rtpmap:97 ")));
    assert!(!l.contains(&"a=rtcp-fb:97 nack".to_owned()));
    assert!(l.contains(&"a=rtcp-fb:96 nack pli".to_owned()));
    assert!(l.contains(&"a=rtcp-fb:* ccm fir".to_owned()));
    assert!(out.as_bytes().windows(2).filter(|w| w == b"\r\n").count() == l.len() - 1);
}

#[test]
fn allow_keeps_companions_and_rejects_emptied_sections() {
    let out = apply("audio_video.sdp", &policy(&["PCMA"], &[], &[]));
    assert_eq!(out.media()[0].formats, ["8", "101"]);
    let video = &out.media()[1];
    assert_eq!(video.port, 0, "no allowed video codec: rejected");
    assert_eq!(
        video.formats,
        ["96", "97"],
        "a rejected section is otherwise untouched"
    );
    assert!(lines(out.as_bytes()).contains(&"a=rtpmap:96 H264/90000".to_owned()));
}

#[test]
fn prefer_reorders() {
    let out = apply("audio_video.sdp", &policy(&[], &[], &["g722", "PCMA"]));
    assert_eq!(out.media()[0].formats, ["9", "8", "0", "101"]);
    assert!(lines(out.as_bytes()).contains(&"m=audio 49170 RTP/AVP 9 8 0 101".to_owned()));
    let out = apply("audio_video.sdp", &policy(&[], &[], &["VP8"]));
    assert_eq!(out.media()[1].formats, ["97", "96"]);
}

#[test]
fn telephone_event_follows_the_clock_rate_of_its_codec() {
    let opus = apply("opus.sdp", &policy(&["opus"], &[], &[]));
    assert_eq!(opus.media()[0].formats, ["111", "101"]);
    let l = lines(opus.as_bytes());
    assert!(l.contains(&"a=rtpmap:111 opus/48000/2".to_owned()));
    assert!(!l.contains(&"a=fmtp:100 0-15".to_owned()));
    let pcmu = apply("opus.sdp", &policy(&["PCMU"], &[], &[]));
    assert_eq!(pcmu.media()[0].formats, ["0", "100"]);
    let no_dtmf = apply("opus.sdp", &policy(&[], &["telephone-event"], &[]));
    assert_eq!(no_dtmf.media()[0].formats, ["111", "0", "8"]);
}

#[test]
fn static_payload_types_need_no_rtpmap() {
    assert_eq!(static_payload(18), Some(("G729", 8000)));
    assert_eq!(static_payload(96), None);
    let out = apply("ipv6.sdp", &policy(&[], &["PCMA"], &[]));
    assert_eq!(out.media()[0].formats, ["0"]);
    // Dynamic payload type without rtpmap: unknown, dropped under an allow list.
    let body = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 1000 RTP/AVP 0 98\r\n";
    let sdp = Sdp::parse(body.as_bytes()).unwrap();
    let out = sdp
        .apply_codec_policy(&policy(&["PCMU"], &[], &[]))
        .unwrap();
    assert_eq!(out.media()[0].formats, ["0"]);
    let out = sdp
        .apply_codec_policy(&policy(&[], &["PCMU"], &[]))
        .unwrap();
    assert_eq!(out.media()[0].formats, ["98"]);
}

#[test]
fn rtx_goes_with_the_codec_it_repairs() {
    let body = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
        m=video 1000 RTP/AVPF 96 97 98 99\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\n\
        a=fmtp:97 apt=96\r\na=rtpmap:98 H264/90000\r\na=rtpmap:99 rtx/90000\r\na=fmtp:99 apt=98\r\n";
    let sdp = Sdp::parse(body.as_bytes()).unwrap();
    let out = sdp
        .apply_codec_policy(&policy(&["H264"], &[], &[]))
        .unwrap();
    assert_eq!(out.media()[0].formats, ["98", "99"]);
    assert_eq!(out.media()[0].fmtps.len(), 1);
}

#[test]
fn non_rtp_streams_answer_only_to_deny() {
    let t38 = apply("t38.sdp", &policy(&["PCMU"], &[], &[]));
    assert_eq!(t38.as_bytes(), parsed("t38.sdp").as_bytes());
    let err = parsed("t38.sdp")
        .apply_codec_policy(&policy(&[], &["t38"], &[]))
        .unwrap_err();
    assert_eq!(err, SdpError::NoAcceptableCodec);
}

#[test]
fn nothing_acceptable_is_488_with_a_warning() {
    let err = parsed("opus.sdp")
        .apply_codec_policy(&policy(&["G729"], &[], &[]))
        .unwrap_err();
    assert_eq!(err, SdpError::NoAcceptableCodec);
    assert_eq!(err.status(), 488);
    assert_eq!(
        err.warning("sbc.example.net"),
        "399 sbc.example.net \"no acceptable codec\""
    );
    // Companions alone are no codec.
    let err = parsed("opus.sdp")
        .apply_codec_policy(&policy(&["telephone-event"], &[], &[]))
        .unwrap_err();
    assert_eq!(err, SdpError::NoAcceptableCodec);
}

#[test]
fn already_rejected_streams_and_empty_policies_change_nothing() {
    let sdp = parsed("port_zero.sdp");
    let out = sdp
        .apply_codec_policy(&policy(&["PCMU"], &[], &[]))
        .unwrap();
    assert_eq!(out.as_bytes(), sdp.as_bytes());
    let sdp = parsed("unknown_attrs.sdp");
    assert_eq!(
        sdp.apply_codec_policy(&CodecPolicy::default()).unwrap(),
        sdp
    );
}

#[test]
fn policy_is_idempotent_and_keeps_other_lines() {
    let p = policy(&["PCMU", "opus", "H264"], &["G722"], &["opus", "PCMA"]);
    for name in super::FIXTURES {
        let sdp = parsed(name);
        let Ok(once) = sdp.apply_codec_policy(&p) else {
            continue;
        };
        assert_eq!(once.apply_codec_policy(&p).unwrap(), once, "{name}");
        let kept: Vec<String> = lines(sdp.as_bytes())
            .into_iter()
            .filter(|l| {
                !l.starts_with("m=")
                    && !l.starts_with("a=rtpmap")
                    && !l.starts_with("a=fmtp")
                    && !l.starts_with("a=rtcp-fb")
            })
            .collect();
        let after: Vec<String> = lines(once.as_bytes())
            .into_iter()
            .filter(|l| {
                !l.starts_with("m=")
                    && !l.starts_with("a=rtpmap")
                    && !l.starts_with("a=fmtp")
                    && !l.starts_with("a=rtcp-fb")
            })
            .collect();
        assert_eq!(after, kept, "{name}");
    }
}
