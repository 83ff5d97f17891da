//! Invariants of the SDP layer, shared by the `sdp_rewrite` cargo-fuzz target and
//! the test that replays its corpus and findings (`tests/sdp_fuzz_regressions.rs`,
//! which includes this file by path). A broken invariant panics.
//!
//! Input: byte 0 picks the plan (bit 0: IPv6 address, bit 1: hold as direction,
//! bit 2: keep ICE, bit 3: override the o= username, bit 4: reject section 0);
//! the rest is the SDP body.

#![allow(dead_code)]

use std::net::IpAddr;

use sipveil::sdp::{
    CodecPolicy, HoldMode, Limits, MediaPlan, OriginState, RewritePlan, Sdp, SdpError,
};

/// Room for what the rewriter may add (longer addresses, one direction line per
/// section) when re-reading its output.
const ROOMY: Limits = Limits {
    max_size: 1 << 20,
    max_lines: 4096,
    max_media: 1024,
    max_formats: 1024,
};

/// The `sdp_rewrite` target.
pub fn rewrite(data: &[u8]) {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let Ok(sdp) = Sdp::parse(body) else {
        return;
    };
    assert_eq!(sdp.as_bytes(), body, "parse keeps the bytes");
    let plan = plan_for(&sdp, flags);

    let out = sdp.rewrite(&plan).expect("a plan with every port rewrites");
    let again = Sdp::parse_with(&out, &ROOMY).expect("rewritten body re-parses");
    check_addresses(&again, &plan);
    assert_eq!(again.media().len(), sdp.media().len(), "sections kept");
    for (i, (before, after)) in sdp.media().iter().zip(again.media()).enumerate() {
        let want = if before.port == 0 {
            0
        } else {
            plan.media[i].port
        };
        assert_eq!(after.port, want, "section {i} port");
        assert_eq!(after.formats, before.formats, "section {i} formats");
        if plan.strip_ice {
            assert!(after.ice.is_empty(), "section {i} ICE stripped");
        }
    }
    if plan.strip_ice {
        assert!(again.session_ice().is_empty(), "session ICE stripped");
    }
    let as_direction = plan.hold == HoldMode::AsDirection;
    // Byte for byte, endings included; only an unterminated last line may gain a
    // line ending, when sipveil adds a direction line after it.
    let (mut kept, mut received) = (untouched(&out, as_direction), untouched(body, as_direction));
    if let (Some(k), Some(r)) = (kept.last_mut(), received.last_mut()) {
        if !r.ends_with(b"\n") {
            // A last line ending in a bare CR is completed with just the LF.
            *k = if r.ends_with(b"\r") {
                k.strip_suffix(b"\n").unwrap_or(k)
            } else {
                k.strip_suffix(b"\r\n")
                    .or(k.strip_suffix(b"\n"))
                    .unwrap_or(k)
            };
        }
    }
    assert_eq!(kept, received, "other lines kept in order");
    assert_eq!(
        again.rewrite(&plan).expect("rewrites again"),
        out,
        "idempotent"
    );
    // Hold stays hold: what the relay reads (direction with a zero-address hold
    // folded in) is the same before and after, for every stream still active.
    let (before, after) = (sdp.media_targets(), again.media_targets());
    assert_eq!(before.len(), sdp.media().len());
    for (b, a) in before.iter().zip(&after) {
        if a.port != 0 {
            assert_eq!(a.direction, b.direction, "section {} direction", b.index);
        }
    }

    let mut leg = OriginState::new(1, 1);
    let first = sdp.rewrite_for_leg(&plan, &mut leg).expect("leg rewrite");
    let second = sdp.rewrite_for_leg(&plan, &mut leg).expect("leg rewrite");
    assert_eq!((first, leg.version), (second, 1), "same body, same version");

    let policy = CodecPolicy {
        allow: vec!["PCMU".into(), "opus".into(), "H264".into(), "t38".into()],
        deny: vec!["G729".into()],
        prefer: vec!["opus".into(), "PCMA".into()],
    };
    match sdp.apply_codec_policy(&policy) {
        Ok(filtered) => {
            assert_eq!(filtered.media().len(), sdp.media().len());
            let twice = filtered.apply_codec_policy(&policy).expect("policy again");
            assert_eq!(twice, filtered, "policy idempotent");
            assert!(
                filtered.media().iter().any(|m| m.port != 0)
                    || sdp.media().iter().all(|m| m.port == 0)
            );
        }
        Err(SdpError::NoAcceptableCodec) => {}
        Err(e) => panic!("codec policy failed: {e}"),
    }
}

fn plan_for(sdp: &Sdp, flags: u8) -> RewritePlan {
    let address: IpAddr = if flags & 1 == 0 {
        "198.51.100.7".parse().unwrap()
    } else {
        "2001:db8:ffff::7".parse().unwrap()
    };
    let mut plan = RewritePlan::new(address);
    plan.hold = if flags & 2 == 0 {
        HoldMode::KeepZeroAddress
    } else {
        HoldMode::AsDirection
    };
    plan.strip_ice = flags & 4 == 0;
    plan.origin_username = (flags & 8 != 0).then(|| "sipveil".to_owned());
    plan.media = (0..sdp.media().len())
        .map(|i| {
            MediaPlan::port(if i == 0 && flags & 16 != 0 {
                0
            } else {
                30000 + 2 * (i as u16 % 1000)
            })
        })
        .collect();
    plan
}

/// o=, every c= and every a=rtcp address is the plan's, or a kept hold.
fn check_addresses(sdp: &Sdp, plan: &RewritePlan) {
    let ours = plan.address.to_string();
    assert_eq!(sdp.origin().address, ours, "o= address");
    let ok = |c: &sipveil::sdp::Connection| {
        c.address == ours || (c.is_hold() && plan.hold == HoldMode::KeepZeroAddress)
    };
    if let Some(c) = sdp.session_connection() {
        assert!(ok(c), "session c= {}", c.address);
    }
    for m in sdp.media() {
        for c in &m.connections {
            assert!(ok(c), "media c= {}", c.address);
        }
        if let Some(c) = m.rtcp.as_ref().and_then(|r| r.connection.as_ref()) {
            assert!(ok(c), "a=rtcp {}", c.address);
        }
    }
}

/// The lines the rewriter must copy as they are, each with its ending.
fn untouched(body: &[u8], as_direction: bool) -> Vec<&[u8]> {
    const ICE: [&str; 9] = [
        "candidate",
        "ice-ufrag",
        "ice-pwd",
        "ice-options",
        "ice-lite",
        "ice-mismatch",
        "ice-pacing",
        "remote-candidates",
        "end-of-candidates",
    ];
    const DIRECTIONS: [&str; 4] = ["sendrecv", "sendonly", "recvonly", "inactive"];
    body.split_inclusive(|b| *b == b'\n')
        .filter(|line| {
            if line.starts_with(b"o=") || line.starts_with(b"c=") || line.starts_with(b"m=") {
                return false;
            }
            let Some(attr) = line.strip_prefix(b"a=") else {
                return true;
            };
            let name = attr.split(|b| *b == b':').next().unwrap_or_default();
            let name = String::from_utf8_lossy(name).to_ascii_lowercase();
            let name = name.trim_end_matches(['\r', '\n']);
            !(name == "rtcp" || ICE.contains(&name) || (as_direction && DIRECTIONS.contains(&name)))
        })
        .collect()
}
