//! The whole message path: fuzzed datagrams from several peers go through
//! `parse_datagram`, the admission pipeline and the sans-IO B2BUA core under a
//! fake clock, as the runtime feeds them (see `../path_checks.rs` for the input
//! format and the invariants). Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../path_checks.rs"]
mod path_checks;

fuzz_target!(|data: &[u8]| {
    path_checks::run(data);
});
