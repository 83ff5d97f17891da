//! Fuzz corpora and findings as the replay tests read them. Included by path
//! (`#[path = "common/inputs.rs"]`) so those tests do not pull in the harness.

use std::path::Path;

/// Every file directly in `dir` (relative to the crate root), name and bytes,
/// sorted by name; dot files are skipped and a missing directory is empty.
pub fn files(dir: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
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
