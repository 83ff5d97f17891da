//! Helpers for the layer tests, and tests of the assembled pipeline. Time is a
//! fake clock: a fixed `Instant` plus offsets, never a sleep.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::*;
use crate::sip::SipMessage;

/// A request of `method` with the usual headers plus `extra` (full lines).
pub(crate) fn request(method: &str, to_tag: bool, extra: &str) -> SipMessage {
    let tag = if to_tag { ";tag=callee" } else { "" };
    let text = format!(
        "{method} sip:bob@example.test SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-t1;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.test>;tag=caller\r\n\
         To: <sip:bob@example.test>{tag}\r\n\
         Call-ID: c1@192.0.2.1\r\n\
         CSeq: 1 {method}\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    );
    match SipMessage::parse(text.as_bytes()) {
        Ok(m) => m,
        Err(e) => panic!("test request does not parse: {e}\n{text}"),
    }
}

/// An out-of-dialog INVITE.
pub(crate) fn invite() -> SipMessage {
    request("INVITE", false, "")
}

/// A 200 response to an INVITE.
pub(crate) fn response() -> SipMessage {
    let text = "SIP/2.0 200 OK\r\n\
                Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-t1\r\n\
                From: <sip:alice@example.test>;tag=caller\r\n\
                To: <sip:bob@example.test>;tag=callee\r\n\
                Call-ID: c1@192.0.2.1\r\n\
                CSeq: 1 INVITE\r\n\
                Content-Length: 0\r\n\r\n";
    match SipMessage::parse(text.as_bytes()) {
        Ok(m) => m,
        Err(e) => panic!("test response does not parse: {e}"),
    }
}

/// A source address 198.51.100.`n`:5060.
pub(crate) fn src(n: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::from([198, 51, 100, n]), 5060)
}

/// A request to admit on untrusted interface 0 at `now`.
pub(crate) fn admit(msg: &SipMessage, source: SocketAddr, now: Instant) -> Admit<'_> {
    Admit::new(msg, source, 0, false, now)
}

fn one_iface() -> Vec<IfacePolicy> {
    vec![IfacePolicy::default(), IfacePolicy::default()]
}

#[test]
fn admit_new_reads_the_dialog_from_the_to_tag() {
    let t0 = Instant::now();
    let ood = invite();
    assert!(!admit(&ood, src(1), t0).in_dialog);
    let bye = request("BYE", true, "");
    assert!(admit(&bye, src(1), t0).in_dialog);
    let reg = request("REGISTER", true, "");
    assert!(!admit(&reg, src(1), t0).in_dialog);
    let r = response();
    let a = admit(&r, src(1), t0);
    assert!(!a.in_dialog && !a.out_of_dialog_request());
}

#[test]
fn a_clean_request_passes_and_is_counted() {
    let mut adm = Admission::new(&AdmissionConfig::default(), &one_iface());
    let m = invite();
    assert_eq!(adm.check(&admit(&m, src(1), Instant::now())), Verdict::Pass);
    assert_eq!(adm.metrics().snapshot().passed, 1);
}

#[test]
fn disabled_pipeline_keeps_only_sanity() {
    let cfg = AdmissionConfig {
        enabled: false,
        ..AdmissionConfig::default()
    };
    let mut adm = Admission::new(&cfg, &one_iface());
    let m = request("OPTIONS", false, "User-Agent: friendly-scanner\r\n");
    assert_eq!(adm.check(&admit(&m, src(1), Instant::now())), Verdict::Pass);
    let bad = SipMessage::parse(
        b"OPTIONS sip:x@example.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-1\r\n\
          From: <sip:a@example.test>;tag=1\r\nTo: <sip:x@example.test>\r\nCSeq: 1 OPTIONS\r\n\r\n",
    )
    .unwrap();
    let v = adm.check(&admit(&bad, src(1), Instant::now()));
    assert!(matches!(v, Verdict::Reply { code: 400, .. }), "{v:?}");
}

#[test]
fn layers_run_in_order_scanner_before_sanity() {
    // A scanner's malformed request is dropped, not answered with a 400.
    let mut adm = Admission::new(&AdmissionConfig::default(), &one_iface());
    let text = "OPTIONS sip:x@example.test SIP/2.0\r\n\
                Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-1\r\n\
                From: <sip:a@example.test>;tag=1\r\nTo: <sip:x@example.test>\r\n\
                Call-ID: c\r\nCSeq: 1 INVITE\r\nUser-Agent: sipvicious\r\n\r\n";
    let m = SipMessage::parse(text.as_bytes()).unwrap();
    assert!(matches!(
        adm.check(&admit(&m, src(1), Instant::now())),
        Verdict::Drop { .. }
    ));
}

#[test]
fn flood_through_the_pipeline_bans_and_the_ban_ends_on_tick() {
    let cfg = AdmissionConfig {
        flood: FloodConfig {
            threshold: 10,
            window: Duration::from_secs(2),
            ban: Duration::from_secs(60),
        },
        ..AdmissionConfig::default()
    };
    let mut adm = Admission::new(&cfg, &one_iface());
    let t0 = Instant::now();
    let m = request("OPTIONS", false, "");
    let verdicts: Vec<Verdict> = (0..12).map(|_| adm.check(&admit(&m, src(9), t0))).collect();
    assert!(verdicts.iter().take(10).all(Verdict::is_pass));
    assert!(matches!(verdicts[10], Verdict::Drop { why: "flood ban" }));
    // Others are not affected; the flooder stays banned, even its responses.
    assert!(adm.check(&admit(&m, src(10), t0)).is_pass());
    let r = response();
    assert!(!adm.check(&admit(&r, src(9), t0)).is_pass());
    adm.tick(t0 + Duration::from_secs(61));
    let s = adm.metrics().snapshot();
    assert_eq!((s.flood_bans_started, s.flood_bans_ended), (1, 1));
    assert!(adm
        .check(&admit(&m, src(9), t0 + Duration::from_secs(61)))
        .is_pass());
}

#[test]
fn malformed_garbage_counts_toward_the_flood_ban() {
    let cfg = AdmissionConfig {
        flood: FloodConfig {
            threshold: 5,
            ..FloodConfig::default()
        },
        ..AdmissionConfig::default()
    };
    let mut adm = Admission::new(&cfg, &one_iface());
    let t0 = Instant::now();
    let err = match SipMessage::parse(b"\x01\x02garbage") {
        Err(e) => e,
        Ok(_) => panic!("garbage parsed"),
    };
    for _ in 0..5 {
        let v = adm.check_malformed(&err, src(3), 0, false, t0);
        assert!(matches!(v, Verdict::Drop { .. }));
    }
    adm.check_malformed(&err, src(3), 0, false, t0);
    assert_eq!(adm.metrics().snapshot().flood_bans_started, 1);
    let m = invite();
    assert_eq!(
        adm.check(&admit(&m, src(3), t0)),
        Verdict::Drop { why: "flood ban" }
    );
}

#[test]
fn oversize_partial_is_answered_413_through_the_pipeline() {
    let mut adm = Admission::new(&AdmissionConfig::default(), &one_iface());
    let mut text = String::from(
        "MESSAGE sip:bob@example.test SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-big\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@example.test>;tag=1\r\n\
         To: <sip:bob@example.test>\r\nCall-ID: big\r\nCSeq: 1 MESSAGE\r\n\
         Content-Type: text/plain\r\nContent-Length: 70000\r\n\r\n",
    );
    text.push_str(&"x".repeat(70_000));
    let err = match SipMessage::parse(text.as_bytes()) {
        Err(e) => e,
        Ok(_) => panic!("oversize parsed"),
    };
    let v = adm.check_malformed(&err, src(4), 0, false, Instant::now());
    let Verdict::Reply { code, reason, .. } = &v else {
        panic!("{v:?}")
    };
    assert_eq!(*code, 413);
    assert!(reason.starts_with("Request Entity Too Large ("), "{reason}");
    let partial = err.partial.as_deref().unwrap();
    let resp = v.response_to(partial).unwrap();
    assert_eq!(resp.status(), Some(413));
}

#[test]
fn overload_and_auth_are_reached_through_the_facade() {
    let cfg = AdmissionConfig {
        overload: OverloadConfig {
            max_calls: 2,
            ..OverloadConfig::default()
        },
        auth: AuthConfig {
            source_failures: 2,
            ..AuthConfig::default()
        },
        ..AdmissionConfig::default()
    };
    let mut adm = Admission::new(&cfg, &one_iface());
    let t0 = Instant::now();
    let m = invite();
    adm.set_load(10, 2);
    let v = adm.check(&admit(&m, src(5), t0));
    assert_eq!(
        v,
        Verdict::unavailable("Service Unavailable (overload)", 10)
    );
    let resp = v.response_to(&m).unwrap();
    assert_eq!(resp.header(crate::sip::HeaderName::RetryAfter), Some("10"));
    adm.set_load(10, 1);
    assert!(adm.check(&admit(&m, src(5), t0)).is_pass());

    adm.auth_failed(src(6).ip(), "alice", t0);
    adm.auth_failed(src(6).ip(), "alice", t0);
    assert!(matches!(
        adm.check(&admit(&m, src(6), t0)),
        Verdict::Drop { .. }
    ));
    adm.tick(t0 + cfg.auth.source_ban);
    assert!(adm
        .check(&admit(&m, src(6), t0 + cfg.auth.source_ban))
        .is_pass());
}

#[test]
fn the_stack_is_a_tower_service() {
    use tower::Service;
    let mut stack = tower::ServiceBuilder::new()
        .layer(GuardLayer::new(|| {
            scanner::Scanner::new(
                &["sipcli".to_string()],
                std::sync::Arc::new(AdmissionMetrics::default()),
                1,
            )
        }))
        .service(Accept);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    assert!(stack.poll_ready(&mut cx).is_ready());
    let m = request("OPTIONS", false, "User-Agent: SIPcli/v1.8\r\n");
    let t0 = Instant::now();
    assert!(!stack::verdict_now(&mut stack, admit(&m, src(1), t0)).is_pass());
    let ok = invite();
    assert!(stack::verdict_now(&mut stack, admit(&ok, src(1), t0)).is_pass());
}
