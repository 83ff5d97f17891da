//! Replays every input the fuzzers found a fault with (`fuzz/regressions/<target>/`)
//! through the same invariant checks the fuzz targets run (`fuzz/checks.rs`), and
//! the seed corpora too, so a fix stays fixed without installing cargo-fuzz.

#[path = "common/inputs.rs"]
mod inputs;
use inputs::files;

/// `files`, which must not be empty (a missing directory is a broken checkout).
fn some(dir: &str) -> Vec<(String, Vec<u8>)> {
    let found = files(dir);
    assert!(!found.is_empty(), "{dir} is empty or missing");
    found
}

#[path = "../fuzz/checks.rs"]
mod checks;

#[test]
fn parse_datagram_regressions() {
    let found = some("fuzz/regressions/parse_datagram");
    assert!(!found.is_empty());
    for (name, data) in found {
        eprintln!("{name}");
        checks::datagram(&data);
    }
}

#[test]
fn stream_framer_regressions() {
    for (name, data) in files("fuzz/regressions/stream_framer") {
        eprintln!("{name}");
        checks::stream(&data);
    }
}

#[test]
fn seed_corpora_hold_the_invariants() {
    for (name, data) in some("fuzz/corpus/parse_datagram") {
        eprintln!("{name}");
        checks::datagram(&data);
    }
    for (name, data) in some("fuzz/corpus/stream_framer") {
        eprintln!("{name}");
        checks::stream(&data);
    }
}
