//! sipveil as a B2BUA between two SIPp instances (issue 3, "How it is checked").
//!
//! SIPp caller -> sipveil access (127.0.N.10:25060, UDP+TCP) -> sipveil core
//! (127.0.N.20:25060, UDP) -> SIPp callee (127.0.N.2:25090); the caller sits on
//! 127.0.N.1:25061. Every test has its own N, so the tests run in parallel
//! without sharing a port; the ports are not SIP's usual 5060/5061 so that a
//! SIPp or softphone someone runs with a wildcard bind on the same machine
//! does not take them away. Each test checks the call counts of both SIPp
//! instances and, where there are two sides, that neither side received
//! anything that identifies the other (Call-ID, tags, branches, addresses).
//!
//! The scenarios are under fixtures/sipp/ and are validated SIPp to SIPp by
//! tests/sipp_fixtures.rs; a failure here is about sipveil.

mod common;

use common::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// The addresses of one test: 127.0.N.x.
#[derive(Clone, Copy)]
struct Net(u8);

impl Net {
    fn addr(self, host: u8, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, self.0, host)), port)
    }
    fn caller(self) -> SocketAddr {
        self.addr(1, 25061)
    }
    fn callee(self) -> SocketAddr {
        self.addr(2, 25090)
    }
    fn access(self) -> SocketAddr {
        self.addr(10, 25060)
    }
    fn core(self) -> SocketAddr {
        self.addr(20, 25060)
    }
}

/// A running sipveil for one test, with its scratch directory.
struct Bench {
    net: Net,
    sbc: Sipveil,
    // dropped last: keeps the traces if the test panicked
    dir: TempDir,
}

impl Bench {
    /// `None` (after printing SKIP) when SIPp is missing.
    fn start(test: &str, net: Net) -> Option<Bench> {
        require_sipp(test)?;
        let dir = TempDir::new(test);
        let (interfaces, routes) = edge_config(net.access(), net.core(), net.callee());
        let sbc = Sipveil::start(&dir.subdir("sipveil"), &interfaces, &routes);
        Some(Bench { net, sbc, dir })
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// A caller placing `calls` calls into the access interface.
    fn caller(&self, scenario: &str, calls: u32) -> Sipp {
        Sipp::uac(
            "caller",
            scenario,
            self.net.caller(),
            self.net.access(),
            calls,
        )
        .timeout(Duration::from_secs(60))
    }

    /// The callee behind the core interface.
    fn callee(&self, scenario: &str, calls: u32) -> Sipp {
        Sipp::uas("callee", scenario, self.net.callee(), calls).timeout(Duration::from_secs(60))
    }

    /// Both sides completed `calls` calls, and neither saw the other.
    fn expect(&self, caller: &SippResult, callee: &SippResult, calls: u64) {
        if !(caller.all_calls_ok(calls) && callee.all_calls_ok(calls)) {
            panic!(
                "{}\n\n{}\n\n--- sipveil log tail ---\n{}",
                caller.summary(calls),
                callee.summary(calls),
                self.sbc.log_tail(4000)
            );
        }
        assert_no_topology_leaks(caller, callee);
    }

    /// Only a caller (refusals sipveil answers itself).
    fn expect_alone(&self, caller: &SippResult, calls: u64) {
        if !caller.all_calls_ok(calls) {
            panic!(
                "{}\n\n--- sipveil log tail ---\n{}",
                caller.summary(calls),
                self.sbc.log_tail(4000)
            );
        }
    }

    /// Runs a caller/callee pair of scenarios for `calls` calls at 10 calls/s.
    fn pair(&self, uac: &str, uas: &str, calls: u32) {
        let caller = self.caller(uac, calls).hold_ms(500);
        let callee = self.callee(uas, calls);
        let (a, b) = run_pair(self.path(), &caller, &callee);
        self.expect(&a, &b, calls as u64);
    }
}

// --- load and transports ---------------------------------------------------

#[test]
fn udp_to_udp_1000_calls_at_100_cps() {
    let Some(t) = Bench::start("udp_to_udp_1000_calls_at_100_cps", Net(31)) else {
        return;
    };
    let calls = 1000;
    let caller = t
        .caller("uac_basic.xml", calls)
        .rate(100)
        .hold_ms(1000)
        .timeout(Duration::from_secs(90));
    let callee = t
        .callee("uas_basic.xml", calls)
        .timeout(Duration::from_secs(90));
    let (a, b) = run_pair(t.path(), &caller, &callee);
    t.expect(&a, &b, calls as u64);
}

#[test]
fn tcp_caller_udp_callee_1000_calls() {
    let Some(t) = Bench::start("tcp_caller_udp_callee_1000_calls", Net(32)) else {
        return;
    };
    let calls = 1000;
    let caller = t
        .caller("uac_basic.xml", calls)
        .transport(Transport::Tcp)
        .rate(100)
        .hold_ms(1000)
        .timeout(Duration::from_secs(90));
    let callee = t
        .callee("uas_basic.xml", calls)
        .timeout(Duration::from_secs(90));
    let (a, b) = run_pair(t.path(), &caller, &callee);
    t.expect(&a, &b, calls as u64);
    assert!(
        a.messages().iter().all(|m| m.transport == "TCP"),
        "the caller should have spoken TCP only"
    );
    assert!(
        b.messages().iter().all(|m| m.transport == "UDP"),
        "the callee should have spoken UDP only"
    );
}

#[test]
fn five_percent_loss_on_both_sides_every_call_completes() {
    let Some(t) = Bench::start("five_percent_loss_on_both_sides", Net(33)) else {
        return;
    };
    let calls = 1000;
    let caller = t
        .caller("uac_lossy.xml", calls)
        .rate(100)
        .lost(5)
        .timeout(Duration::from_secs(120));
    let callee = t
        .callee("uas_lossy.xml", calls)
        .lost(5)
        .timeout(Duration::from_secs(120));
    let (a, b) = run_pair(t.path(), &caller, &callee);
    t.expect(&a, &b, calls as u64);
}

// --- call flows ------------------------------------------------------------

#[test]
fn callee_busy_486() {
    let Some(t) = Bench::start("callee_busy_486", Net(34)) else {
        return;
    };
    t.pair("uac_busy.xml", "uas_busy.xml", 10);
}

#[test]
fn caller_cancels_while_ringing_487() {
    let Some(t) = Bench::start("caller_cancels_while_ringing_487", Net(35)) else {
        return;
    };
    t.pair("uac_cancel.xml", "uas_cancel.xml", 10);
}

#[test]
fn callee_hangs_up() {
    let Some(t) = Bench::start("callee_hangs_up", Net(36)) else {
        return;
    };
    t.pair("uac_callee_bye.xml", "uas_callee_bye.xml", 10);
}

#[test]
fn reinvite_from_caller() {
    let Some(t) = Bench::start("reinvite_from_caller", Net(37)) else {
        return;
    };
    t.pair("uac_reinvite.xml", "uas_reinvite.xml", 10);
}

#[test]
fn reinvite_from_callee() {
    let Some(t) = Bench::start("reinvite_from_callee", Net(38)) else {
        return;
    };
    t.pair("uac_callee_reinvite.xml", "uas_callee_reinvite.xml", 10);
}

#[test]
fn update_in_dialog() {
    let Some(t) = Bench::start("update_in_dialog", Net(39)) else {
        return;
    };
    t.pair("uac_update.xml", "uas_update.xml", 10);
}

#[test]
fn info_in_dialog() {
    let Some(t) = Bench::start("info_in_dialog", Net(40)) else {
        return;
    };
    t.pair("uac_info.xml", "uas_info.xml", 10);
}

#[test]
fn early_media_183_then_200() {
    let Some(t) = Bench::start("early_media_183_then_200", Net(41)) else {
        return;
    };
    t.pair("uac_early_media.xml", "uas_early_media.xml", 10);
}

#[test]
fn forked_early_dialogs_keep_distinct_tags() {
    let Some(t) = Bench::start("forked_early_dialogs_keep_distinct_tags", Net(42)) else {
        return;
    };
    t.pair("uac_fork.xml", "uas_fork.xml", 10);
}

// --- refusals --------------------------------------------------------------

#[test]
fn request_matching_no_route_gets_404() {
    let Some(t) = Bench::start("request_matching_no_route_gets_404", Net(43)) else {
        return;
    };
    // The only route is from "access": an INVITE arriving on "core" has none.
    let caller = Sipp::uac(
        "caller",
        "uac_route_miss.xml",
        t.net.caller(),
        t.net.core(),
        5,
    )
    .timeout(Duration::from_secs(30));
    let a = caller.run(t.path());
    t.expect_alone(&a, 5);
}

#[test]
fn max_forwards_0_gets_483() {
    let Some(t) = Bench::start("max_forwards_0_gets_483", Net(44)) else {
        return;
    };
    let a = t
        .caller("uac_max_forwards_0.xml", 5)
        .timeout(Duration::from_secs(30))
        .run(t.path());
    t.expect_alone(&a, 5);
}

// --- restart ---------------------------------------------------------------

/// 10 calls established, sipveil killed with SIGKILL and started again on the
/// same data_dir, then BYE from each caller: every BYE gets its 200 and every
/// callee receives its BYE.
#[test]
fn established_calls_survive_kill_and_restart() {
    let Some(mut t) = Bench::start("established_calls_survive_kill_and_restart", Net(45)) else {
        return;
    };
    let calls = 10;
    // 10 calls at 10/s are up within ~1 s; each holds 9 s before its BYE.
    let caller = t
        .caller("uac_basic.xml", calls)
        .rate(10)
        .hold_ms(9000)
        .timeout(Duration::from_secs(60));
    let callee = t.callee("uas_basic.xml", calls);
    let callee_proc = callee.spawn(t.path());
    let caller_proc = caller.spawn(t.path());
    let started = Instant::now();
    // Calls are persisted within 2 s of their ACK: kill well after that and
    // well before the first BYE (~9 s).
    std::thread::sleep(Duration::from_millis(4000).saturating_sub(started.elapsed()));
    t.sbc.restart();
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "restart took until {:?}, after the first BYEs",
        started.elapsed()
    );
    let a = caller_proc.wait();
    let b = callee_proc.wait_at_most(CALLEE_GRACE);
    t.expect(&a, &b, calls as u64);
}
