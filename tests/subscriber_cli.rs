//! `sipveil subscriber add|list|remove` as an operator uses it, on the real
//! binary: with sipveil stopped (the command opens the store) and with it running
//! on the same data_dir (the command goes through the admin socket).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sipveil");

/// A scratch directory of its own for each test (tests run in parallel).
fn scratch(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("subcli-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A loopback config in `dir` with its data_dir inside, on a port free right now.
fn write_config(dir: &Path) -> PathBuf {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("free port")
        .port();
    let text = format!(
        r#"[node]
name = "test"
data_dir = "{data}"

[[interface]]
name = "access"
udp = "127.0.0.1:{port}"

[registrar]
domain = "example.test"
interface = "access"

[[route]]
from = "access"
to = "registrar"
egress = "access"

[policy]
dir = "{policies}"
"#,
        data = dir.join("data").display(),
        policies = dir.join("policies").display(),
    );
    let file = dir.join("sipveil.toml");
    std::fs::write(&file, text).expect("write config");
    file
}

fn sipveil(args: &[&str], config: &Path) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--config", config.to_str().expect("utf-8 path")]);
    Command::new(BIN)
        .args(&all)
        .env_remove("RUST_LOG")
        .output()
        .expect("sipveil runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

#[track_caller]
fn fails_with(o: &Output, needle: &str) {
    assert!(
        !o.status.success(),
        "unexpected success: {}",
        text(&o.stdout)
    );
    assert!(
        text(&o.stderr).contains(needle),
        "wanted {needle:?} in stderr: {}",
        text(&o.stderr)
    );
}

fn list(config: &Path) -> Vec<String> {
    ok(&sipveil(&["subscriber", "list"], config))
        .lines()
        .map(str::to_string)
        .collect()
}

/// Whether any file under `dir` holds `needle`.
fn files_contain(dir: &Path, needle: &[u8]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let p = e.path();
        if p.is_dir() {
            files_contain(&p, needle)
        } else {
            std::fs::read(&p)
                .map(|b| b.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        }
    })
}

/// `printf 'user:example.test:pw' | md5sum`, via the library's own helper (the
/// helper is checked against coreutils in its unit tests).
fn md5_ha1(user: &str, password: &str) -> String {
    sipveil::registrar::digest::ha1(
        sipveil::registrar::digest::Algorithm::Md5,
        user,
        "example.test",
        password,
    )
}

#[test]
fn stopped_add_list_remove() {
    let dir = scratch("stopped");
    let cfg = write_config(&dir);
    let pw = "Plaintext-Needle-4e1f9";

    assert!(list(&cfg).is_empty());
    let out = ok(&sipveil(
        &["subscriber", "add", "bob@example.test", "--password", pw],
        &cfg,
    ));
    assert!(out.contains("bob@example.test"), "{out}");
    ok(&sipveil(
        &[
            "subscriber",
            "add",
            "alice@example.test",
            "--password",
            "other-pw",
        ],
        &cfg,
    ));
    assert_eq!(list(&cfg), ["alice@example.test", "bob@example.test"]);

    // Re-adding changes the password in place.
    ok(&sipveil(
        &[
            "subscriber",
            "add",
            "alice@example.test",
            "--password",
            "third-pw",
        ],
        &cfg,
    ));
    assert_eq!(list(&cfg), ["alice@example.test", "bob@example.test"]);

    let data = dir.join("data");
    assert!(
        files_contain(&data, md5_ha1("bob", pw).as_bytes()),
        "the HA1 is readable in the store files, so the search below can see text"
    );
    assert!(
        !files_contain(&data, pw.as_bytes()),
        "plaintext password found in the store"
    );

    ok(&sipveil(
        &["subscriber", "remove", "bob@example.test"],
        &cfg,
    ));
    assert_eq!(list(&cfg), ["alice@example.test"]);
    fails_with(
        &sipveil(&["subscriber", "remove", "bob@example.test"], &cfg),
        "no subscriber bob@example.test",
    );
    fails_with(
        &sipveil(&["subscriber", "add", "carol", "--password", "x"], &cfg),
        "not USER@DOMAIN",
    );
    fails_with(
        &sipveil(
            &["subscriber", "add", "carol@example.test", "--password", ""],
            &cfg,
        ),
        "password must not be empty",
    );
    // Another domain is stored, with a warning that it cannot register here.
    let o = sipveil(
        &[
            "subscriber",
            "add",
            "dave@elsewhere.test",
            "--password",
            "x",
        ],
        &cfg,
    );
    ok(&o);
    assert!(text(&o.stderr).contains("not in the registrar domain"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The running node; killed if the test fails before stopping it.
struct Node {
    child: Child,
    log: PathBuf,
}

impl Node {
    fn start(cfg: &Path, dir: &Path) -> Node {
        let log = dir.join("sipveil.log");
        let child = Command::new(BIN)
            .args(["run", "--config", cfg.to_str().expect("utf-8 path")])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("sipveil run starts");
        Node { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for `path` to exist while the process lives.
    fn wait_for(&mut self, path: &Path) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !path.exists() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sipveil exited ({status}) before {path:?}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "no {path:?} after 30 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM by PID, then wait for a clean exit.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "exit {status}:\n{}", self.log());
                return;
            }
            assert!(Instant::now() < deadline, "no exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn running_add_list_remove_through_the_admin_socket() {
    let dir = scratch("running");
    let cfg = write_config(&dir);
    let pw = "Running-Needle-93bd2";
    // One subscriber from before the start: the node loads it.
    ok(&sipveil(
        &[
            "subscriber",
            "add",
            "alice@example.test",
            "--password",
            "a-pw",
        ],
        &cfg,
    ));

    let mut node = Node::start(&cfg, &dir);
    let sock = dir.join("data").join("admin.sock");
    node.wait_for(&sock);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&sock)
            .expect("socket")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "admin socket is private to its owner");
    }

    assert_eq!(list(&cfg), ["alice@example.test"]);
    ok(&sipveil(
        &["subscriber", "add", "carol@example.test", "--password", pw],
        &cfg,
    ));
    assert_eq!(list(&cfg), ["alice@example.test", "carol@example.test"]);
    ok(&sipveil(
        &["subscriber", "remove", "alice@example.test"],
        &cfg,
    ));
    assert_eq!(list(&cfg), ["carol@example.test"]);
    fails_with(
        &sipveil(&["subscriber", "remove", "alice@example.test"], &cfg),
        "no subscriber alice@example.test",
    );
    assert!(
        node.log().contains("subscriber added"),
        "the running node made the change:\n{}",
        node.log()
    );

    // With the socket gone but the node still holding the store, the command
    // says what is wrong instead of failing on sled's lock.
    std::fs::remove_file(&sock).expect("remove socket");
    fails_with(
        &sipveil(&["subscriber", "list"], &cfg),
        "in use by another process",
    );

    node.stop();
    assert!(!sock.exists());
    // Stopped again: the changes made through the running node are on disk.
    assert_eq!(list(&cfg), ["carol@example.test"]);
    let data = dir.join("data");
    assert!(files_contain(&data, md5_ha1("carol", pw).as_bytes()));
    assert!(!files_contain(&data, pw.as_bytes()));
    let _ = std::fs::remove_dir_all(&dir);
}
