//! Replays every input the fuzzers found a fault with (`fuzz/regressions/<target>/`)
//! through the same invariant checks the fuzz targets run (`fuzz/checks.rs`), and
//! the seed corpora too, so a fix stays fixed without installing cargo-fuzz.

use std::path::Path;

#[path = "../fuzz/checks.rs"]
mod checks;

fn inputs(dir: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn parse_datagram_regressions() {
    let found = inputs("fuzz/regressions/parse_datagram");
    assert!(!found.is_empty());
    for (name, data) in found {
        eprintln!("{name}");
        checks::datagram(&data);
    }
}

#[test]
fn stream_framer_regressions() {
    for (name, data) in inputs("fuzz/regressions/stream_framer") {
        eprintln!("{name}");
        checks::stream(&data);
    }
}

#[test]
fn seed_corpora_hold_the_invariants() {
    for (name, data) in inputs("fuzz/corpus/parse_datagram") {
        eprintln!("{name}");
        checks::datagram(&data);
    }
    for (name, data) in inputs("fuzz/corpus/stream_framer") {
        eprintln!("{name}");
        checks::stream(&data);
    }
}
