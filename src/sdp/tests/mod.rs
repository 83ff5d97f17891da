//! Tests of the SDP layer over the fixtures in `fixtures/sdp/`.

mod codec;
mod parse;
mod rewrite;

use std::net::IpAddr;

use super::{MediaPlan, RewritePlan, Sdp};

/// Every valid fixture.
pub(super) const FIXTURES: &[&str] = &[
    "audio_video.sdp",
    "t38.sdp",
    "opus.sdp",
    "ice.sdp",
    "rtcp_mux.sdp",
    "hold_sendonly.sdp",
    "hold_inactive.sdp",
    "hold_zero.sdp",
    "port_zero.sdp",
    "unknown_attrs.sdp",
    "unusual_order.sdp",
    "ipv6.sdp",
    "multi_c.sdp",
    "lf_endings.sdp",
    "mixed_endings.sdp",
    "trailing_blank.sdp",
];

/// sipveil's address in the tests.
pub(super) const OURS4: &str = "198.51.100.7";
pub(super) const OURS6: &str = "2001:db8:ffff::7";

pub(super) fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/sdp/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub(super) fn parsed(name: &str) -> Sdp {
    Sdp::parse(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A plan anchoring every section at `ours`, ports 40000, 40002, ...
pub(super) fn plan(sdp: &Sdp, ours: &str) -> RewritePlan {
    let mut plan = RewritePlan::new(ours.parse().unwrap());
    plan.media = (0..sdp.media().len())
        .map(|i| MediaPlan::port(40000 + 2 * i as u16))
        .collect();
    plan
}

/// Every IP literal in a body other than the unspecified ones.
pub(super) fn addresses(body: &[u8]) -> Vec<IpAddr> {
    let text = String::from_utf8_lossy(body);
    let mut out: Vec<IpAddr> = text
        .split([' ', '\t', '\r', '\n', '/'])
        .filter_map(|t| t.parse::<IpAddr>().ok())
        .filter(|ip| !ip.is_unspecified())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The lines of a body, without their endings.
pub(super) fn lines(body: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(body)
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_owned())
        .collect()
}

/// Lines the rewriter has no business changing (everything but o=, c=, m=,
/// a=rtcp: and ICE attributes).
pub(super) fn untouchable(body: &[u8]) -> Vec<String> {
    const ICE: [&str; 9] = [
        "a=candidate",
        "a=ice-ufrag",
        "a=ice-pwd",
        "a=ice-options",
        "a=ice-lite",
        "a=ice-mismatch",
        "a=ice-pacing",
        "a=remote-candidates",
        "a=end-of-candidates",
    ];
    lines(body)
        .into_iter()
        .filter(|l| {
            !(l.starts_with("o=")
                || l.starts_with("c=")
                || l.starts_with("m=")
                || l.starts_with("a=rtcp:")
                || ICE.iter().any(|p| l.starts_with(p)))
        })
        .collect()
}
