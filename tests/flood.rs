//! Hostile input against the real binary (issue 7, "How it is checked").
//!
//! SIPp caller (127.0.N.1:5061) -> sipveil access (127.0.N.10:5060) -> sipveil
//! core (127.0.N.20:5060, trusted) -> SIPp callee (127.0.N.2:5090); a flooder
//! and a prober send from other loopback addresses (127.0.N.66, 127.0.N.77).
//! Every flood is bounded: a fixed number of packets within a few seconds, to
//! loopback only. N = 46.. (tests/b2bua_sipp.rs uses 31..45).

mod common;

use common::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

#[derive(Clone, Copy)]
struct Net(u8);

impl Net {
    fn addr(self, host: u8, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, self.0, host)), port)
    }
    fn caller(self) -> SocketAddr {
        self.addr(1, 5061)
    }
    fn callee(self) -> SocketAddr {
        self.addr(2, 5090)
    }
    fn access(self) -> SocketAddr {
        self.addr(10, 5060)
    }
    fn core(self) -> SocketAddr {
        self.addr(20, 5060)
    }
    fn flooder(self) -> SocketAddr {
        self.addr(66, 0)
    }
    fn prober(self) -> SocketAddr {
        self.addr(77, 0)
    }
}

fn start(test: &str, net: Net, extra: &str) -> Option<(TempDir, Sipveil)> {
    require_sipp(test)?;
    let dir = TempDir::new(test);
    let (interfaces, routes) = edge_config(net.access(), net.core(), net.callee());
    let sbc = Sipveil::start_with(&dir.subdir("sipveil"), &interfaces, &routes, extra);
    Some((dir, sbc))
}

/// A request from `from` to `to`; `first_line` is the request line.
fn request(first_line: &str, method: &str, from: SocketAddr, n: u32, extra: &str) -> String {
    format!(
        "{first_line}\r\n\
         Via: SIP/2.0/UDP {from};branch=z9hG4bK-fl-{n};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:mallory@example.test>;tag=fl{n}\r\n\
         To: <sip:bob@example.test>\r\n\
         Call-ID: flood-{n}@example.test\r\n\
         CSeq: 1 {method}\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    )
}

/// Peak resident set (VmHWM) of a process, in kB.
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// What the flooder saw.
struct FloodReport {
    sent: u32,
    answers: u32,
    /// Answers received in the last second of the flood.
    late_answers: u32,
}

/// Sends `packets` (INVITE, REGISTER and garbage in turn) from the flooder's
/// address to `target` within about `spread`, reading whatever comes back.
fn flood(from: SocketAddr, target: SocketAddr, packets: u32, spread: Duration) -> FloodReport {
    let sock = UdpSocket::bind(from).expect("bind flooder");
    let local = sock.local_addr().expect("flooder address");
    sock.set_nonblocking(true).expect("nonblocking");
    let started = Instant::now();
    let (mut answers, mut late_answers) = (0, 0);
    let mut buf = [0u8; 65536];
    let batch = 50;
    let pause = spread / (packets / batch).max(1);
    for n in 0..packets {
        let pkt = match n % 3 {
            0 => request(
                &format!("INVITE sip:bob@{target} SIP/2.0"),
                "INVITE",
                local,
                n,
                "",
            ),
            1 => request(
                &format!("REGISTER sip:{} SIP/2.0", target.ip()),
                "REGISTER",
                local,
                n,
                "",
            ),
            _ => format!("\x16\x03\x01 not sip at all {n} \x00\x01\x02"),
        };
        let _ = sock.send_to(pkt.as_bytes(), target);
        if n % batch == batch - 1 {
            std::thread::sleep(pause);
        }
        while let Ok((len, _)) = sock.recv_from(&mut buf) {
            if len > 0 {
                answers += 1;
                if started.elapsed() + Duration::from_secs(1) >= spread {
                    late_answers += 1;
                }
            }
        }
    }
    FloodReport {
        sent: packets,
        answers,
        late_answers,
    }
}

#[test]
fn flood_from_one_source_is_banned_while_calls_from_another_complete() {
    let net = Net(46);
    let Some((dir, mut sbc)) = start("flood_from_one_source", net, "") else {
        return;
    };
    let calls = 160;
    // 8 calls/s: within the default INVITE budget of one source (10/s).
    let caller = Sipp::uac("caller", "uac_basic.xml", net.caller(), net.access(), calls)
        .rate(8)
        .hold_ms(500)
        .timeout(Duration::from_secs(90));
    // The flooder's INVITEs that pass before it is limited reach the callee
    // too: give it room for them and stop it once the caller is done.
    let callee = Sipp::uas("callee", "uas_basic.xml", net.callee(), calls + 200)
        .timeout(Duration::from_secs(90));
    let uas = callee.spawn(dir.path());
    let uac = caller.spawn(dir.path());

    std::thread::sleep(Duration::from_secs(4));
    let flood_started = Instant::now();
    let report = flood(net.flooder(), net.access(), 6000, Duration::from_secs(3));
    let flood_took = flood_started.elapsed();
    let rss = sbc.pid().and_then(peak_rss_kb);

    let a = uac.wait();
    let _ = uas.wait_at_most(Duration::from_secs(2));
    let log = sbc.log_tail(usize::MAX);
    println!(
        "flood: {} packets in {:.1} s, {} answers ({} in the last second); \
         legitimate calls: {} of {calls} successful, {} failed; peak RSS of sipveil: {} kB",
        report.sent,
        flood_took.as_secs_f32(),
        report.answers,
        report.late_answers,
        a.stats.successful,
        a.stats.failed,
        rss.map_or("?".to_string(), |k| k.to_string()),
    );
    assert!(sbc.is_running(), "sipveil died under the flood");
    assert!(
        a.stats.successful * 100 >= u64::from(calls) * 99,
        "fewer than 99% of the legitimate calls completed:\n{}\n--- sipveil log ---\n{}",
        a.summary(calls.into()),
        sbc.log_tail(4000)
    );
    let flooder_ip = net.flooder().ip().to_string();
    assert!(
        log.lines()
            .any(|l| l.contains("flood ban started") && l.contains(&flooder_ip)),
        "no ban of {flooder_ip} in the log:\n{}",
        sbc.log_tail(4000)
    );
    // Before the ban it got a few 503s and 405s; once banned, silence.
    assert!(
        report.answers < 300,
        "flooder got {} answers",
        report.answers
    );
    assert_eq!(report.late_answers, 0, "the flooder was still answered");
    if let Some(kb) = rss {
        assert!(kb < 256 * 1024, "peak RSS {kb} kB under the flood");
    }
}

/// Sends `msg` from `sock` to `target` and returns the status line of the
/// answer, or `None` after `wait` without one.
fn ask(sock: &UdpSocket, target: SocketAddr, msg: &[u8], wait: Duration) -> Option<String> {
    sock.send_to(msg, target).expect("send");
    sock.set_read_timeout(Some(wait)).expect("timeout");
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        match sock.recv_from(&mut buf) {
            Ok((len, _)) => {
                let text = String::from_utf8_lossy(&buf[..len]).to_string();
                if text.starts_with("SIP/2.0 ") {
                    return text.lines().next().map(str::to_string);
                }
            }
            Err(_) => return None,
        }
    }
    None
}

#[test]
fn scanners_get_silence_and_bad_requests_get_413_505_416() {
    let net = Net(47);
    // A small message limit so an oversize message still fits in a datagram.
    let extra = "[limits]\nmax_message_size = 8192\n";
    let Some((_dir, sbc)) = start("scanners_and_bad_requests", net, extra) else {
        return;
    };
    let sock = UdpSocket::bind(net.prober()).expect("bind prober");
    let local = sock.local_addr().expect("prober address");
    let target = net.access();
    let options = |n: u32, extra: &str| {
        request(
            &format!("OPTIONS sip:{target} SIP/2.0"),
            "OPTIONS",
            local,
            n,
            extra,
        )
    };
    let wait = Duration::from_secs(1);

    // The socket works: a plain OPTIONS to sipveil itself is answered.
    let ok = ask(&sock, target, options(1, "").as_bytes(), wait);
    assert_eq!(ok.as_deref(), Some("SIP/2.0 200 OK"));

    for (n, ua) in [
        (2, "friendly-scanner"),
        (3, "sipvicious"),
        (4, "sipcli/v1.8"),
        (5, "VaxSIPUserAgent/3.1"),
    ] {
        let got = ask(
            &sock,
            target,
            options(n, &format!("User-Agent: {ua}\r\n")).as_bytes(),
            wait,
        );
        assert_eq!(got, None, "scanner {ua} was answered");
    }

    let mut big = options(6, "Content-Type: text/plain\r\n")
        .replace("Content-Length: 0", "Content-Length: 9000");
    big.push_str(&"x".repeat(9000));
    let got = ask(&sock, target, big.as_bytes(), wait).unwrap_or_default();
    assert!(got.starts_with("SIP/2.0 413 "), "oversize: {got:?}");

    let v3 = options(7, "").replace(" SIP/2.0\r\n", " SIP/3.0\r\n");
    let got = ask(&sock, target, v3.as_bytes(), wait).unwrap_or_default();
    assert!(got.starts_with("SIP/2.0 505 "), "wrong version: {got:?}");

    let http = options(8, "").replace(&format!("sip:{target}"), "http://example.test/");
    let got = ask(&sock, target, http.as_bytes(), wait).unwrap_or_default();
    assert!(got.starts_with("SIP/2.0 416 "), "bad scheme: {got:?}");

    let no_call_id = options(9, "").replace("Call-ID: flood-9@example.test\r\n", "");
    let got = ask(&sock, target, no_call_id.as_bytes(), wait).unwrap_or_default();
    assert!(
        got.starts_with("SIP/2.0 400 ") && got.contains("Call-ID"),
        "missing Call-ID: {got:?}"
    );
    drop(sbc);
}

#[test]
fn overload_refuses_new_calls_with_retry_after_while_established_calls_end() {
    let net = Net(48);
    let extra = "[admission.overload]\nmax_calls = 3\nretry_after = 4\n";
    let Some((dir, sbc)) = start("overload_refuses_new_calls", net, extra) else {
        return;
    };
    let calls = 12;
    // Each call holds 2 s; at 4 calls/s more than 3 would be up at once.
    let caller = Sipp::uac("caller", "uac_basic.xml", net.caller(), net.access(), calls)
        .rate(4)
        .hold_ms(2000)
        .timeout(Duration::from_secs(40));
    let callee =
        Sipp::uas("callee", "uas_basic.xml", net.callee(), calls).timeout(Duration::from_secs(40));
    let (a, b) = run_pair(dir.path(), &caller, &callee);
    let refused: Vec<TracedMessage> = a
        .messages()
        .into_iter()
        .filter(|m| m.direction == Direction::Received && m.start_line.starts_with("SIP/2.0 503"))
        .collect();
    println!(
        "overload: {} successful, {} failed, {} refused with 503; callee completed {}",
        a.stats.successful,
        a.stats.failed,
        refused.len(),
        b.stats.successful
    );
    assert!(
        !refused.is_empty(),
        "no 503 above the call bound:\n{}",
        a.summary(calls.into())
    );
    assert!(
        refused
            .iter()
            .all(|m| m.header_values("Retry-After").next() == Some("4")),
        "503 without Retry-After: 4"
    );
    // The calls that were admitted were torn down normally (BYE answered).
    assert!(a.stats.successful >= 3, "{}", a.summary(calls.into()));
    assert_eq!(a.stats.successful + a.stats.failed, u64::from(calls));
    drop(sbc);
}

#[test]
fn password_guessing_bans_the_guesser_while_the_subscriber_still_registers() {
    let net = Net(49);
    let extra = "[registrar]\ndomain = \"example.test\"\ninterface = \"access\"\n\n\
                 [admission.auth]\nsource_failures = 5\n";
    let Some((dir, sbc)) = start("password_guessing", net, extra) else {
        return;
    };
    let add = std::process::Command::new(Sipveil::binary())
        .args([
            "subscriber",
            "add",
            "alice@example.test",
            "--password",
            "right-pw",
        ])
        .arg("--config")
        .arg(&sbc.config_path)
        .output()
        .expect("run sipveil subscriber add");
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );

    // 8 guesses: the first 5 get 403, then the guesser hears nothing more.
    let guesses = 8;
    let guesser = Sipp::uac(
        "guesser",
        "uac_register_auth.xml",
        net.addr(66, 5062),
        net.access(),
        guesses,
    )
    .rate(4)
    .arg("-au")
    .arg("alice")
    .arg("-ap")
    .arg("wrong-pw")
    .arg("-recv_timeout")
    .arg("3000")
    .timeout(Duration::from_secs(30));
    let guesser = Sipp {
        service: "alice".into(),
        ..guesser
    };
    let g = guesser.run(dir.path());
    // Calls answered 403 (a retransmitted REGISTER gets the 403 again).
    let forbidden = g
        .messages()
        .iter()
        .filter(|m| m.direction == Direction::Received && m.start_line.starts_with("SIP/2.0 403"))
        .filter_map(|m| m.header_values("Call-ID").next().map(str::to_string))
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    println!(
        "guesser: {} attempts, {} answered 403, {} failed",
        g.stats.created, forbidden, g.stats.failed
    );
    assert_eq!(forbidden, 5, "{}", g.summary(guesses.into()));
    assert_eq!(g.stats.successful, 0);
    let log = sbc.log_tail(usize::MAX);
    let guesser_ip = net.addr(66, 0).ip().to_string();
    assert!(
        log.lines()
            .any(|l| l.contains("auth ban started") && l.contains(&guesser_ip)),
        "no auth ban of {guesser_ip}:\n{}",
        sbc.log_tail(4000)
    );

    // The subscriber, from its own address, registers as usual.
    let user = Sipp::uac(
        "user",
        "uac_register_auth.xml",
        net.addr(5, 5063),
        net.access(),
        1,
    )
    .arg("-au")
    .arg("alice")
    .arg("-ap")
    .arg("right-pw")
    .timeout(Duration::from_secs(20));
    let user = Sipp {
        service: "alice".into(),
        ..user
    };
    let u = user.run(dir.path());
    assert!(
        u.all_calls_ok(1),
        "{}\n{}",
        u.summary(1),
        sbc.log_tail(4000)
    );
}
