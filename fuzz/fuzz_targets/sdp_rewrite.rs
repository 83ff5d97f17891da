//! SDP: parse, rewrite under a plan picked by the first byte, re-parse, rewrite
//! again, per-leg versioning and codec policy, checking the invariants in
//! `../sdp_checks.rs`. Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../sdp_checks.rs"]
mod sdp_checks;

fuzz_target!(|data: &[u8]| sdp_checks::rewrite(data));
