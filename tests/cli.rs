//! The command line as an operator uses it: the real `sipveil` binary, run on the
//! shipped example config and on broken variants of it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_sipveil");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn example() -> String {
    std::fs::read_to_string(Path::new(ROOT).join("deploy/sipveil.toml"))
        .expect("deploy/sipveil.toml is readable")
}

/// A scratch directory of its own for each test (tests run in parallel).
fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn sipveil(args: &[&str], cwd: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .output()
        .expect("sipveil runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes `text` as a config in a fresh scratch dir and runs `check` on it.
fn check_text(test: &str, text: &str) -> (Output, PathBuf) {
    let dir = scratch(test);
    let file = dir.join("sipveil.toml");
    std::fs::write(&file, text).expect("write config");
    let out = sipveil(
        &["check", "--config", file.to_str().expect("utf-8 path")],
        &dir,
    );
    (out, file)
}

#[test]
fn check_accepts_the_deploy_example() {
    let out = sipveil(
        &["check", "--config", "deploy/sipveil.toml"],
        Path::new(ROOT),
    );
    assert!(out.status.success(), "check failed: {}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().count(),
        1,
        "one-line summary expected: {stdout}"
    );
    assert!(stdout.contains("OK"), "{stdout}");
    assert!(
        stdout.contains("access") && stdout.contains("core"),
        "{stdout}"
    );
}

#[test]
fn unknown_key_is_named_with_its_line() {
    let text = example().replacen("udp = \"127.0.0.20:5060\"", "udpp = \"127.0.0.20:5060\"", 1);
    let line = text
        .lines()
        .position(|l| l.starts_with("udpp"))
        .expect("edited line")
        + 1;
    let (out, file) = check_text("unknown-key", &text);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let expect = format!("{}:{line}: unknown key `udpp`", file.display());
    assert!(err.contains(&expect), "wanted {expect:?} in:\n{err}");
}

#[test]
fn route_to_unknown_interface_is_refused() {
    let text = example().replacen("egress = \"core\"", "egress = \"nowhere\"", 1);
    let (out, _) = check_text("unknown-iface", &text);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("egress = \"nowhere\" names no [[interface]]"),
        "{err}"
    );
}

#[test]
fn missing_config_file_fails() {
    let dir = scratch("missing-file");
    let out = sipveil(&["check", "--config", "no-such.toml"], &dir);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read no-such.toml"));
}

#[test]
fn subscriber_commands_need_a_readable_config() {
    let dir = scratch("subscriber");
    let out = sipveil(
        &[
            "subscriber",
            "add",
            "alice@example.test",
            "--password",
            "secret",
            "--config",
            "x.toml",
        ],
        &dir,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read x.toml"),
        "{}",
        stderr(&out)
    );
}
