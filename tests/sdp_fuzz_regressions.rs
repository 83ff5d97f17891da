//! Replays the `sdp_rewrite` fuzz target's seed corpus and findings
//! (`fuzz/corpus/sdp_rewrite/`, `fuzz/regressions/sdp_rewrite/`) and every SDP
//! fixture under every plan through the target's invariant checks
//! (`fuzz/sdp_checks.rs`), so they hold without installing cargo-fuzz.

#[path = "common/inputs.rs"]
mod inputs;
use inputs::files;

#[path = "../fuzz/sdp_checks.rs"]
mod sdp_checks;

#[test]
fn corpus_and_regressions_hold_the_invariants() {
    let corpus = files("fuzz/corpus/sdp_rewrite");
    assert!(!corpus.is_empty());
    for (name, data) in corpus
        .into_iter()
        .chain(files("fuzz/regressions/sdp_rewrite"))
    {
        eprintln!("{name}");
        sdp_checks::rewrite(&data);
    }
}

#[test]
fn fixtures_hold_the_invariants_under_every_plan() {
    let fixtures: Vec<_> = files("fixtures/sdp")
        .into_iter()
        .filter(|(name, _)| name.ends_with(".sdp"))
        .collect();
    assert!(fixtures.len() >= 12);
    for (name, body) in fixtures {
        for flags in 0..32u8 {
            eprintln!("{name} flags {flags}");
            let mut data = vec![flags];
            data.extend_from_slice(&body);
            sdp_checks::rewrite(&data);
        }
    }
}
