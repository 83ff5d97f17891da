//! Loading as a whole: directory scanning, errors located by file and line across
//! files, and the reload swap.

use std::path::PathBuf;
use std::sync::Arc;

use super::testutil::{header, ifaces, invite, refused};
use super::{Direction, PolicySet};

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!("sipveil-policy-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.0.join(name), text).unwrap();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const ADD_A: &str = "[[rule]]\ninterface = \"access\"\ndirection = \"in\"\nadd_header = { name = \"X-Order\", value = \"a\" }\n";
const ADD_B: &str = "[[rule]]\ninterface = \"access\"\ndirection = \"in\"\nadd_header = { name = \"X-Order\", value = \"b\" }\n";

fn order(p: &PolicySet) -> Vec<String> {
    let mut m = invite();
    p.apply_rules("access", Direction::In, &mut m, None);
    m.header_lines_named("X-Order")
        .map(str::to_string)
        .collect()
}

#[test]
fn missing_or_empty_directory_is_builtin_only() {
    let p = PolicySet::load(&PathBuf::from("/nonexistent/sipveil/policies"), &ifaces()).unwrap();
    assert!(p.files().is_empty());
    let d = TempDir::new();
    let p = PolicySet::load(&d.0, &ifaces()).unwrap();
    assert!(p.files().is_empty());
    assert_eq!(
        p.summary(),
        "0 policy file(s): 0 rule(s), 0 number rule(s), 0 header list(s)"
    );
}

#[test]
fn files_sorted_by_name_hidden_subdirs_and_other_names_skipped() {
    let d = TempDir::new();
    d.write("20-b.toml", ADD_B);
    d.write("10-a.toml", ADD_A);
    d.write(".#10-a.toml", "not toml at all [");
    d.write("30-c.toml.example", "not toml at all [");
    d.write("README.md", "# hi");
    std::fs::create_dir_all(d.0.join("examples")).unwrap();
    std::fs::write(d.0.join("examples/x.toml"), "not toml at all [").unwrap();
    let p = PolicySet::load(&d.0, &ifaces()).unwrap();
    let names: Vec<String> = p
        .files()
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["10-a.toml", "20-b.toml"]);
    assert_eq!(order(&p), ["a", "b"]);
}

#[test]
fn errors_name_every_file_and_line() {
    let d = TempDir::new();
    d.write("10-ok.toml", ADD_A);
    d.write(
        "20-syntax.toml",
        "[[rule]]\ninterface = \"access\"\ndirection = \n",
    );
    d.write("30-meaning.toml", "# comment\n\n[[number]]\ninterface = \"core\"\ndirection = \"in\"\nmatch = '('\nreplace = \"x\"\n");
    d.write(
        "40-key.toml",
        "[[headers]]\ninterface = \"core\"\ndirection = \"in\"\npas = [\"X\"]\n",
    );
    let e = PolicySet::load(&d.0, &ifaces()).unwrap_err();
    let text = e.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let f = |name: &str| d.0.join(name).display().to_string();
    assert!(
        lines[0].starts_with(&format!("{}:3: ", f("20-syntax.toml"))),
        "{text}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "{}:6: [[number]] #1: match: invalid pattern",
            f("30-meaning.toml")
        )),
        "{text}"
    );
    assert!(
        lines[2].starts_with(&format!(
            "{}:4: unknown key `pas` in [[headers]] #1",
            f("40-key.toml")
        )),
        "{text}"
    );
    assert_eq!(e.problems[1].line, Some(6));
}

#[test]
fn top_level_typos_and_missing_keys() {
    let e = refused("[[rules]]\ninterface = \"access\"\n");
    assert!(
        e.starts_with("t.toml:1: unknown key `rules` at the top level"),
        "{e}"
    );
    let e = refused("[[rule]]\ndirection = \"in\"\nremove_header = \"X\"\n");
    assert!(
        e.starts_with("t.toml:1: missing key `interface` in [[rule]] #1"),
        "{e}"
    );
}

#[test]
fn reload_swaps_a_valid_policy_and_keeps_the_old_on_error() {
    let d = TempDir::new();
    d.write("10-a.toml", ADD_A);
    let first = Arc::new(PolicySet::load(&d.0, &ifaces()).unwrap());
    assert_eq!(order(&first), ["a"]);

    d.write("20-b.toml", ADD_B);
    let second = crate::runtime::reload_policy(&first, &d.0, &ifaces());
    assert!(!Arc::ptr_eq(&first, &second));
    assert_eq!(order(&second), ["a", "b"]);
    // The old set is untouched: holders of it keep its behaviour.
    assert_eq!(order(&first), ["a"]);

    d.write("30-bad.toml", "[[rule]]\ninterface = \"nowhere\"\n");
    let third = crate::runtime::reload_policy(&second, &d.0, &ifaces());
    assert!(Arc::ptr_eq(&second, &third));

    std::fs::remove_file(d.0.join("30-bad.toml")).unwrap();
    std::fs::remove_file(d.0.join("10-a.toml")).unwrap();
    let fourth = crate::runtime::reload_policy(&third, &d.0, &ifaces());
    assert_eq!(order(&fourth), ["b"]);
}

#[test]
fn a_policy_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PolicySet>();
    let p = Arc::new(super::testutil::policy(ADD_A));
    let q = p.clone();
    let got = std::thread::spawn(move || order(&q)).join().unwrap();
    assert_eq!(got, ["a"]);
    assert_eq!(header(&invite(), "X-Order"), None);
}
