//! SIGHUP re-reads the config file (issue 5, "Operating it"): a changed route
//! takes effect for the next call without a restart; an invalid file, or one
//! that moves a listen address, is refused and the running config stays.
//!
//! Caller 127.0.64.1 -> sipveil access 127.0.64.10:25060 -> core
//! 127.0.64.20:25060 -> callee X 127.0.64.2:25090, after the reload callee Y
//! 127.0.64.3:25090.

mod common;

use common::peer::*;
use common::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

fn addr(host: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 64, host)), port)
}

/// Sends SIGHUP to sipveil and waits for the `count`-th log line with `needle`.
fn hangup(sbc: &Sipveil, needle: &str, count: usize) {
    let pid = sbc.pid().expect("sipveil runs");
    let ok = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("kill -HUP")
        .success();
    assert!(ok, "kill -HUP {pid}");
    sbc.wait_log_lines(needle, count, Duration::from_secs(5));
}

/// One INVITE from the caller; the callee that gets it answers 486. Returns
/// whether `callee` got it (within `STEP`).
fn call_reaches(caller: &mut Peer, callee: &mut Peer, access: SocketAddr, n: u32) -> bool {
    let call_id = format!("config-reload-{}-{n}", std::process::id());
    let from = format!("<sip:caller@example.test>;tag=cr-{n}");
    send_invite(
        caller,
        access,
        &call_id,
        &from,
        &sdp(caller.local.ip(), 1, 30400, false),
    );
    // The ACKs of earlier 486s may come first: only an INVITE counts.
    let deadline = std::time::Instant::now() + STEP;
    let (inv, src) = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match callee.next_new(left) {
            None => return false,
            Some((m, src)) if m.method() == Some("INVITE") => break (m, src),
            Some(_) => continue,
        }
    };
    callee.respond(&inv, src, "486 Busy Here", "busy-1", None);
    caller.expect("486 to the caller", |m| m.status() == Some(486));
    true
}

#[test]
fn sighup_reloads_routes_and_refuses_what_needs_a_restart() {
    let dir = TempDir::new("config_reload");
    let access = addr(10, 25060);
    let (x, y) = (addr(2, 25090), addr(3, 25090));
    let (interfaces, routes) = edge_config(access, addr(20, 25060), x);
    let sbc = Sipveil::start(&dir.subdir("sipveil"), &interfaces, &routes);
    let mut caller = Peer::bind(addr(1, 25061));
    let mut callee_x = Peer::bind(x);
    let mut callee_y = Peer::bind(y);

    assert!(
        call_reaches(&mut caller, &mut callee_x, access, 1),
        "first call to X"
    );

    // The route now names Y.
    let text = std::fs::read_to_string(&sbc.config_path).unwrap();
    let to_y = text.replace(&format!("sip:{x}"), &format!("sip:{y}"));
    assert_ne!(text, to_y, "the config names X:\n{text}");
    std::fs::write(&sbc.config_path, &to_y).unwrap();
    hangup(&sbc, "config reloaded", 1);
    assert!(
        call_reaches(&mut caller, &mut callee_y, access, 2),
        "call after reload to Y"
    );

    // An unknown key: refused, Y stays.
    std::fs::write(&sbc.config_path, format!("{to_y}\n[node2]\nx = 1\n")).unwrap();
    hangup(&sbc, "config reload refused", 1);
    assert!(
        call_reaches(&mut caller, &mut callee_y, access, 3),
        "invalid file kept Y"
    );

    // A moved listen address needs a restart: refused, Y stays.
    let moved = to_y.replace(&access.to_string(), &addr(11, 25060).to_string());
    std::fs::write(&sbc.config_path, moved).unwrap();
    hangup(&sbc, "change only with a restart", 1);
    assert!(
        call_reaches(&mut caller, &mut callee_y, access, 4),
        "listen change kept Y"
    );
    while let Some((m, _)) = callee_x.next_new(Duration::from_millis(300)) {
        assert_ne!(m.method(), Some("INVITE"), "X got a call after the reload");
    }
}
