//! Stream framer: the input is cut into chunks of fuzzer-chosen sizes and pushed
//! into a `StreamFramer`. The messages it yields (and the kind of error that ends
//! the stream, if any) must not depend on how the bytes were chunked, and every
//! framed message must re-parse as a datagram to itself (see `../checks.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::stream(data));
