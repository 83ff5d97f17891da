//! Boundary policy reload under load (issue 5): a SIPp run at 50 calls/s through
//! sipveil while the policy directory changes and SIGHUP is sent five times —
//! including once with an invalid file — completes with zero failed calls, and
//! each reload is accounted for in the log.

mod common;

use common::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

fn addr(host: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 61, host)), port)
}

const HEADERS_POLICY: &str =
    "[[headers]]\ninterface = \"core\"\ndirection = \"out\"\npass = [\"X-Trace-Id\"]\n";
const INVALID_POLICY: &str = "[[rule]]\ninterface = \"access\"\ndirection = \"sideways\"\n";

#[test]
fn five_reloads_during_50_cps_lose_no_call() {
    let test = "five_reloads_during_50_cps_lose_no_call";
    if require_sipp(test).is_none() {
        return;
    }
    let dir = TempDir::new(test);
    let policy_dir = dir.subdir("policies");
    let (interfaces, routes) = edge_config(addr(10, 25060), addr(20, 25060), addr(2, 25090));
    let extra = format!("[policy]\ndir = \"{}\"\n", policy_dir.display());
    let mut sbc = Sipveil::configure(&dir.subdir("sipveil"), &interfaces, &routes, &extra);
    sbc.launch();
    let pid = sbc.pid().expect("sipveil pid");

    let calls = 600u32;
    let callee = Sipp::uas("callee", "uas_basic.xml", addr(2, 25090), calls)
        .timeout(Duration::from_secs(60));
    let caller = Sipp::uac(
        "caller",
        "uac_basic.xml",
        addr(1, 25061),
        addr(10, 25060),
        calls,
    )
    .rate(50)
    .hold_ms(500)
    .timeout(Duration::from_secs(60));
    let uas = callee.spawn(dir.path());
    let uac = caller.spawn(dir.path());

    let file = policy_dir.join("10-test.toml");
    let contents = [HEADERS_POLICY, "", INVALID_POLICY, HEADERS_POLICY, ""];
    for text in contents {
        std::thread::sleep(Duration::from_secs(2));
        if text.is_empty() {
            let _ = std::fs::remove_file(&file);
        } else {
            std::fs::write(&file, text).expect("write policy");
        }
        let status = std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .expect("kill -HUP");
        assert!(status.success());
    }
    let a = uac.wait();
    let b = uas.wait();
    assert!(sbc.is_running(), "sipveil died during reloads");
    assert!(
        a.all_calls_ok(calls.into()) && b.all_calls_ok(calls.into()),
        "{}\n{}\n--- sipveil log ---\n{}",
        a.summary(calls.into()),
        b.summary(calls.into()),
        sbc.log_tail(4000)
    );
    let log = sbc.log_tail(usize::MAX);
    let reloaded = log.matches("policy reloaded").count();
    let refused = log.matches("policy reload refused").count();
    assert_eq!(
        (reloaded, refused),
        (4, 1),
        "expected four reloads and one refusal:\n{}",
        sbc.log_tail(4000)
    );
}
