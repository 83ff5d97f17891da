//! Datagram parser: `SipMessage::parse_datagram`, `validate`, every typed accessor,
//! a few edits, and the serialize/re-parse invariants (see `../checks.rs`), under
//! small and default limits. Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::datagram(data));
