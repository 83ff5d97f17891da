//! The admission pipeline's fast path allocates nothing: once a source is known,
//! checking a clean request (or a response, or an in-dialog request) costs no
//! heap allocation in any layer (issue 7: no boxing or allocation per message).
//!
//! Counting is per thread, so tests running in parallel do not disturb each other.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sipveil::admission::{Admission, AdmissionConfig, Admit, IfacePolicy, Verdict};
use sipveil::sip::SipMessage;

#[path = "common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations;

const INVITE: &[u8] = include_bytes!("../fixtures/sip/valid/typical-invite.sip");

fn bye() -> SipMessage {
    SipMessage::parse(
        b"BYE sip:alice@192.0.2.1:5060 SIP/2.0\r\n\
          Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK-bye\r\n\
          Max-Forwards: 70\r\nFrom: <sip:bob@example.test>;tag=b\r\n\
          To: <sip:alice@example.test>;tag=a\r\nCall-ID: c@x\r\nCSeq: 2 BYE\r\n\
          User-Agent: Example Phone 1.0\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap()
}

#[test]
fn checking_known_sources_allocates_nothing() {
    let ifaces = vec![IfacePolicy::default(); 2];
    let mut adm = Admission::new(&AdmissionConfig::default(), &ifaces);
    let invite = SipMessage::parse(INVITE).unwrap();
    let bye = bye();
    let src: SocketAddr = "198.51.100.1:5060".parse().unwrap();
    let t0 = Instant::now();
    // The first message of a source enters the tables (and the scanner's
    // buffer grows to the longest User-Agent): that may allocate.
    for m in [&invite, &bye] {
        assert_eq!(adm.check(&Admit::new(m, src, 0, false, t0)), Verdict::Pass);
    }
    adm.tick(t0);
    let (n, passed) = allocations(|| {
        let mut passed = 0;
        for i in 1..=200u64 {
            // 5 INVITEs a second: inside the default budget and flood threshold.
            let now = t0 + Duration::from_millis(200 * i);
            adm.set_load(100, 10);
            adm.tick(now);
            for m in [&invite, &bye] {
                passed += usize::from(adm.check(&Admit::new(m, src, 0, false, now)).is_pass());
            }
        }
        passed
    });
    assert_eq!(passed, 400);
    assert_eq!(n, 0, "{n} allocations on the fast path");
}
