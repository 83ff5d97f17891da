//! The registrar on the real binary (issue 4, "How it is checked"): REGISTER
//! with digest authentication, the location service, and calls delivered to
//! registered users.
//!
//! Each test starts its own sipveil with
//! - `access` on 127.0.N.10:5060 (UDP+TCP, untrusted): REGISTER is served here;
//! - `core` on 127.0.N.20:5060 (UDP, trusted);
//! - `[registrar] domain = "example.test"`, `interface = "access"`, `auth = true`,
//!   `min_expires = 2` (so expiry is testable in seconds);
//! - routes core -> registrar (egress access) and access -> registrar (egress access);
//! - subscribers alice and bob, added with `sipveil subscriber add` before start.
//!
//! Phones are SIPp instances or the Rust test UA (tests/common/ua.rs), which
//! computes digest responses itself from the RFCs. Callers from the core side sit
//! on 127.0.N.1:5061; phones on 127.0.N.3..:5090. Every test has its own N, so the
//! tests run in parallel without sharing a port. A binding is reached at the
//! source address of its REGISTER, so a test that wants a SIPp UAS to answer
//! registers from the UAS's own address first (the Rust UA binds it, registers,
//! lets it go) and then starts the UAS there.

mod common;

use common::ua::{Alg, Challenge, Register, SipMsg, Ua};
use common::*;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

const DOMAIN: &str = "example.test";
const ALICE: (&str, &str) = ("alice", "alice-pw-7f3a");
const BOB: (&str, &str) = ("bob", "bob-pw-91c2");
const MIN_EXPIRES: u32 = 2;

/// The addresses of one test: 127.0.N.x.
#[derive(Clone, Copy)]
struct Net(u8);

impl Net {
    fn addr(self, host: u8, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, self.0, host)), port)
    }
    fn access(self) -> SocketAddr {
        self.addr(10, 5060)
    }
    fn core(self) -> SocketAddr {
        self.addr(20, 5060)
    }
    /// SIPp or Rust caller.
    fn caller(self) -> SocketAddr {
        self.addr(1, 5061)
    }
    /// The n-th phone (0, 1, ...).
    fn phone(self, n: u8) -> SocketAddr {
        self.addr(3 + n, 5090)
    }
}

/// The `[registrar]` section of the test config, with `extra` lines.
fn registrar_toml(extra: &str) -> String {
    format!(
        "[registrar]\n\
         domain = \"{DOMAIN}\"\n\
         interface = \"access\"\n\
         auth = true\n\
         min_expires = {MIN_EXPIRES}\n\
         default_expires = 60\n\
         max_expires = 3600\n\
         {extra}\n"
    )
}

/// A running sipveil with the registrar, for one test.
struct Reg {
    net: Net,
    sbc: Sipveil,
    // dropped last: keeps the traces if the test panicked
    dir: TempDir,
}

impl Reg {
    fn start(test: &str, net: Net) -> Reg {
        Reg::start_with(test, net, "")
    }

    /// With more `[registrar]` keys.
    fn start_with(test: &str, net: Net, registrar_extra: &str) -> Reg {
        let dir = TempDir::new(test);
        let interfaces = [
            Interface::udp_tcp("access", net.access()),
            Interface::udp("core", net.core()).trusted(true),
        ];
        let routes = [
            Route::new("core", "registrar", "access"),
            Route::new("access", "registrar", "access"),
        ];
        let mut sbc = Sipveil::configure(
            &dir.subdir("sipveil"),
            &interfaces,
            &routes,
            &registrar_toml(registrar_extra),
        );
        for (user, pw) in [ALICE, BOB] {
            sbc.add_subscriber(&format!("{user}@{DOMAIN}"), pw);
        }
        sbc.launch();
        Reg { net, sbc, dir }
    }

    /// A Rust UA for `who` on `local`, talking to the access interface.
    fn ua(&self, local: SocketAddr, who: (&str, &str)) -> Ua {
        Ua::bind(local, self.net.access(), who.0, who.1, DOMAIN)
            .unwrap_or_else(|e| panic!("bind test UA on {local}: {e}"))
    }

    /// Registers `who` from `local` (the UA binds it, registers its own
    /// address as Contact for `expires` s, and lets the port go). Returns the 200.
    fn register_from(&self, local: SocketAddr, who: (&str, &str), expires: u32) -> SipMsg {
        let mut ua = self.ua(local, who);
        let contact = ua.own_contact();
        ua.register_ok(&Register::contact(&contact, expires))
    }

    /// A SIPp caller on the core side placing one call to `callee`.
    fn core_caller(&self, scenario: &str, callee: &str) -> Sipp {
        Sipp::uac("caller", scenario, self.net.caller(), self.net.core(), 1)
            .service(callee)
            .hold_ms(300)
            .timeout(Duration::from_secs(30))
    }

    /// A SIPp phone answering one call on `local`.
    fn phone(&self, name: &str, scenario: &str, local: SocketAddr) -> Sipp {
        Sipp::uas(name, scenario, local, 1).timeout(Duration::from_secs(30))
    }

    /// Panics with the SIPp summaries and sipveil's log unless every run
    /// completed its one call.
    fn expect_ok(&self, runs: &[&SippResult]) {
        if runs.iter().all(|r| r.all_calls_ok(1)) {
            return;
        }
        let summaries: Vec<String> = runs.iter().map(|r| r.summary(1)).collect();
        panic!(
            "{}\n\n--- sipveil log tail ---\n{}",
            summaries.join("\n\n"),
            self.sbc.log_tail(4000)
        );
    }

    /// One call from the core side to `callee`, answered by a SIPp
    /// `uas_basic.xml` on `phone`; panics unless both complete it.
    fn call_reaches(&self, callee: &str, phone: SocketAddr, label: &str) -> SippResult {
        let dir = self.dir.subdir(label);
        let uas = self.phone("phone", "uas_basic.xml", phone);
        let uac = self.core_caller("uac_basic.xml", callee);
        let (a, b) = run_pair(&dir, &uac, &uas);
        self.expect_ok(&[&a, &b]);
        b
    }

    /// One SIPp caller alone (answers sipveil gives itself).
    fn caller_alone(&self, sipp: Sipp, label: &str) {
        let r = sipp.run(&self.dir.subdir(label));
        self.expect_ok(&[&r]);
    }
}

/// URIs of the Contact entries of a REGISTER response, with their `expires`.
fn bindings(resp: &SipMsg) -> Vec<(String, Option<u32>)> {
    resp.contacts()
        .iter()
        .map(|c| {
            (
                common::ua::uri_of(c).to_string(),
                common::ua::param(c, "expires").and_then(|e| e.parse().ok()),
            )
        })
        .collect()
}

#[track_caller]
fn assert_status(resp: &SipMsg, code: u16) {
    assert_eq!(
        resp.status(),
        Some(code),
        "expected {code}, got:\n{}",
        resp.raw
    );
}

// --- digest authentication -----------------------------------------------------

/// SIPp registers with `[authentication]` (MD5): 401, then 200 listing the
/// binding; the binding is then visible to a query by the same user.
#[test]
fn sipp_register_md5_401_then_200() {
    let test = "sipp_register_md5_401_then_200";
    if require_sipp(test).is_none() {
        return;
    }
    let t = Reg::start(test, Net(150));
    let reg = Sipp::uac(
        "register",
        "uac_register_auth.xml",
        t.net.caller(),
        t.net.access(),
        1,
    )
    .service(ALICE.0)
    .credentials(ALICE.0, ALICE.1)
    .timeout(Duration::from_secs(20));
    t.caller_alone(reg, "register");

    // The binding SIPp created is there: query it as alice.
    let mut ua = t.ua(t.net.phone(0), ALICE);
    let resp = ua.register_auth(&Register::default(), Alg::Md5);
    assert_status(&resp, 200);
    let got = bindings(&resp);
    let want = format!("sip:alice@{}", t.net.caller());
    assert_eq!(got.len(), 1, "{}", resp.raw);
    assert_eq!(got[0].0, want, "{}", resp.raw);
    assert!(
        got[0].1.is_some_and(|e| e > 250 && e <= 300),
        "{}",
        resp.raw
    );
}

/// A wrong password: 401, then 403, and no binding is created.
#[test]
fn sipp_register_wrong_password_403() {
    let test = "sipp_register_wrong_password_403";
    if require_sipp(test).is_none() {
        return;
    }
    let t = Reg::start(test, Net(151));
    let reg = Sipp::uac(
        "register",
        "uac_register_auth_refused.xml",
        t.net.caller(),
        t.net.access(),
        1,
    )
    .service(ALICE.0)
    .credentials(ALICE.0, "not-the-password")
    .timeout(Duration::from_secs(20));
    t.caller_alone(reg, "register");

    let mut ua = t.ua(t.net.phone(0), ALICE);
    let resp = ua.register_auth(&Register::default(), Alg::Md5);
    assert_status(&resp, 200);
    assert!(bindings(&resp).is_empty(), "{}", resp.raw);
}

/// The 401 offers MD5 first (SIPp reads only the first) and SHA-256, same
/// nonce, qop=auth, realm = the domain; a client answering SHA-256 registers.
#[test]
fn sha256_challenge_answered() {
    let t = Reg::start("sha256_challenge_answered", Net(152));
    let mut ua = t.ua(t.net.phone(0), ALICE);
    let contact = ua.own_contact();
    let r = Register::contact(&contact, 120);
    let first = ua.register(&r);
    assert_status(&first, 401);
    let challenges = Challenge::all(&first, "WWW-Authenticate");
    let algs: Vec<Option<Alg>> = challenges.iter().map(|c| c.alg()).collect();
    assert_eq!(algs, [Some(Alg::Md5), Some(Alg::Sha256)], "{}", first.raw);
    for c in &challenges {
        assert_eq!(c.realm, DOMAIN);
        assert!(c.offers_qop_auth(), "{}", first.raw);
        assert!(!c.stale);
        assert_eq!(c.nonce, challenges[0].nonce);
    }
    let sha = &challenges[1];
    let resp = ua.register(&Register {
        authorization: Some(ua.register_authorization(sha, 1)),
        ..r.clone()
    });
    assert_status(&resp, 200);
    let got = bindings(&resp);
    assert_eq!(got.len(), 1, "{}", resp.raw);
    assert_eq!(got[0].0, format!("sip:alice@{}", ua.local));
    assert!(
        got[0].1.is_some_and(|e| (118..=120).contains(&e)),
        "{}",
        resp.raw
    );

    // The SHA-256 password is checked too: a wrong one is refused.
    let mut wrong = t.ua(t.net.phone(1), (ALICE.0, "wrong"));
    let resp = wrong.register_auth(&Register::contact(&wrong.own_contact(), 120), Alg::Sha256);
    assert_status(&resp, 403);
}

/// `digest_algorithms = ["SHA-256"]`: the 401 carries only the SHA-256
/// challenge, and an MD5 answer on its nonce is refused (turning MD5 off must
/// really turn it off).
#[test]
fn sha256_only_refuses_md5_answers() {
    let t = Reg::start_with(
        "sha256_only_refuses_md5_answers",
        Net(167),
        "digest_algorithms = [\"SHA-256\"]",
    );
    let mut ua = t.ua(t.net.phone(0), ALICE);
    let r = Register::contact(&ua.own_contact(), 120);
    let first = ua.register(&r);
    assert_status(&first, 401);
    let challenges = Challenge::all(&first, "WWW-Authenticate");
    assert_eq!(challenges.len(), 1, "{}", first.raw);
    assert_eq!(challenges[0].alg(), Some(Alg::Sha256), "{}", first.raw);

    let as_md5 = Challenge {
        algorithm: Some("MD5".into()),
        ..challenges[0].clone()
    };
    let resp = ua.register(&Register {
        authorization: Some(ua.register_authorization(&as_md5, 1)),
        ..r.clone()
    });
    assert_status(&resp, 403);
    let resp = ua.register(&Register {
        authorization: Some(ua.register_authorization(&challenges[0], 1)),
        ..r
    });
    assert_status(&resp, 200);
}

/// With `nonce_ttl = 2`, a response computed on a nonce older than that gets a
/// new 401 with `stale=true` when the password is right (403 when it is not),
/// and the fresh nonce then works.
#[test]
fn expired_nonce_gets_stale_challenge() {
    let t = Reg::start_with(
        "expired_nonce_gets_stale_challenge",
        Net(153),
        "nonce_ttl = 2",
    );
    let mut ua = t.ua(t.net.phone(0), ALICE);
    let r = Register::contact(&ua.own_contact(), 120);
    let ch = ua.challenge(&r, Alg::Md5);
    assert!(!ch.stale);
    std::thread::sleep(Duration::from_millis(3200));

    let resp = ua.register(&Register {
        authorization: Some(ua.register_authorization(&ch, 1)),
        ..r.clone()
    });
    assert_status(&resp, 401);
    let fresh = Challenge::all(&resp, "WWW-Authenticate");
    assert_eq!(fresh.len(), 2, "{}", resp.raw);
    assert!(fresh.iter().all(|c| c.stale), "{}", resp.raw);
    assert_ne!(
        fresh[0].nonce, ch.nonce,
        "a stale challenge needs a new nonce"
    );

    // Stale is only for a client that knows the password.
    let mut liar = t.ua(t.net.phone(1), (ALICE.0, "wrong"));
    let resp = liar.register(&Register {
        authorization: Some(liar.register_authorization(&ch, 1)),
        ..Register::contact(&liar.own_contact(), 120)
    });
    assert_status(&resp, 403);

    let md5 = fresh.iter().find(|c| c.alg() == Some(Alg::Md5)).cloned();
    let md5 = md5.expect("an MD5 challenge");
    let resp = ua.register(&Register {
        authorization: Some(ua.register_authorization(&md5, 1)),
        ..r
    });
    assert_status(&resp, 200);
}

/// A request that repeats an accepted nonce-count is refused; the next count
/// on the same nonce is accepted.
#[test]
fn replayed_nonce_count_rejected() {
    let t = Reg::start("replayed_nonce_count_rejected", Net(154));
    let mut ua = t.ua(t.net.phone(0), ALICE);
    let r = Register::contact(&ua.own_contact(), 120);
    let ch = ua.challenge(&r, Alg::Md5);
    let auth = ua.register_authorization(&ch, 1);
    let first = ua.register(&Register {
        authorization: Some(auth.clone()),
        ..r.clone()
    });
    assert_status(&first, 200);

    // The very same Authorization (nc=00000001) in a new REGISTER.
    let replay = ua.register(&Register {
        authorization: Some(auth),
        ..r.clone()
    });
    assert_status(&replay, 403);
    assert!(
        replay.start_line.to_ascii_lowercase().contains("replay"),
        "refused for another reason: {}",
        replay.start_line
    );

    let next = ua.register(&Register {
        authorization: Some(ua.register_authorization(&ch, 2)),
        ..r
    });
    assert_status(&next, 200);
}

/// An authenticated user may register only its own address-of-record.
#[test]
fn register_for_another_users_aor_403() {
    let t = Reg::start("register_for_another_users_aor_403", Net(155));
    let mut ua = t.ua(t.net.phone(0), ALICE);
    let r = Register {
        to_user: Some(BOB.0.to_string()),
        ..Register::contact(&ua.own_contact(), 120)
    };
    let resp = ua.register_auth(&r, Alg::Md5);
    assert_status(&resp, 403);
    let mut bob = t.ua(t.net.phone(1), BOB);
    let q = bob.register_auth(&Register::default(), Alg::Md5);
    assert_status(&q, 200);
    assert!(bindings(&q).is_empty(), "{}", q.raw);
}

// --- bindings ------------------------------------------------------------------

/// Expiry below min_expires: 423 with Min-Expires, whether asked in the
/// Expires header or the Contact parameter; min_expires itself is fine.
#[test]
fn too_short_expiry_423_with_min_expires() {
    let t = Reg::start("too_short_expiry_423_with_min_expires", Net(156));
    let mut ua = t.ua(t.net.phone(0), ALICE);
    let contact = ua.own_contact();
    let resp = ua.register_auth(&Register::contact(&contact, MIN_EXPIRES - 1), Alg::Md5);
    assert_status(&resp, 423);
    assert_eq!(resp.header("Min-Expires"), Some("2"), "{}", resp.raw);

    let in_param = Register {
        contacts: vec![format!("{contact};expires=1")],
        ..Register::default()
    };
    let resp = ua.register_auth(&in_param, Alg::Md5);
    assert_status(&resp, 423);
    assert_eq!(resp.header("Min-Expires"), Some("2"), "{}", resp.raw);

    let resp = ua.register_auth(&Register::contact(&contact, MIN_EXPIRES), Alg::Md5);
    assert_status(&resp, 200);
    assert_eq!(bindings(&resp).len(), 1, "{}", resp.raw);
}

/// A REGISTER without Contact returns the current bindings (from this and
/// other registrations of the AOR) with their remaining expiry, and changes
/// nothing.
#[test]
fn query_returns_current_bindings() {
    let t = Reg::start("query_returns_current_bindings", Net(157));
    let mut phone = t.ua(t.net.phone(0), ALICE);
    let c1 = format!("<sip:alice@{}>", phone.local);
    let c2 = format!("<sip:alice-desk@{}>", phone.local);
    let two = Register {
        contacts: vec![format!("{c1};expires=100"), format!("{c2};expires=200")],
        ..Register::default()
    };
    let resp = phone.register_ok(&two);
    assert_eq!(bindings(&resp).len(), 2, "{}", resp.raw);

    let mut other = t.ua(t.net.phone(1), ALICE);
    for _ in 0..2 {
        let q = other.register_auth(&Register::default(), Alg::Md5);
        assert_status(&q, 200);
        let mut got = bindings(&q);
        got.sort();
        assert_eq!(got.len(), 2, "{}", q.raw);
        assert_eq!(got[0].0, format!("sip:alice-desk@{}", phone.local));
        assert!(
            got[0].1.is_some_and(|e| (195..=200).contains(&e)),
            "{}",
            q.raw
        );
        assert_eq!(got[1].0, format!("sip:alice@{}", phone.local));
        assert!(
            got[1].1.is_some_and(|e| (95..=100).contains(&e)),
            "{}",
            q.raw
        );
    }
}

/// `Contact: *` with `Expires: 0` removes every binding of the AOR, from
/// every registration; calls then get 480.
#[test]
fn contact_star_removes_all_bindings() {
    let t = Reg::start("contact_star_removes_all_bindings", Net(158));
    let mut desk = t.ua(t.net.phone(0), ALICE);
    let c1 = desk.own_contact();
    let c2 = format!("<sip:alice-2@{}>", desk.local);
    desk.register_ok(&Register {
        contacts: vec![c1, c2],
        expires: Some(300),
        ..Register::default()
    });
    let mut mobile = t.ua(t.net.phone(1), ALICE);
    let resp = mobile.register_ok(&Register::contact(&mobile.own_contact(), 300));
    assert_eq!(bindings(&resp).len(), 3, "{}", resp.raw);

    // `*` needs Expires: 0.
    let bad = Register {
        contacts: vec!["*".into()],
        expires: Some(60),
        ..Register::default()
    };
    assert_status(&mobile.register_auth(&bad, Alg::Md5), 400);

    let star = Register {
        contacts: vec!["*".into()],
        expires: Some(0),
        ..Register::default()
    };
    let resp = mobile.register_auth(&star, Alg::Md5);
    assert_status(&resp, 200);
    assert!(bindings(&resp).is_empty(), "{}", resp.raw);
    let q = desk.register_auth(&Register::default(), Alg::Md5);
    assert_status(&q, 200);
    assert!(bindings(&q).is_empty(), "{}", q.raw);

    let mut caller = Ua::bind(t.net.caller(), t.net.core(), "carol", "", DOMAIN).expect("caller");
    let inv = caller.send_invite(ALICE.0);
    let fin = caller.invite_final(&inv, Duration::from_secs(5));
    let fin = fin.expect("a final answer to the INVITE");
    assert_status(&fin, 480);
}

// --- calls to registered users -------------------------------------------------

/// Two bindings of one AOR (two phones registered from their own ports) ring
/// in parallel; the one that answers wins, the other gets CANCEL.
#[test]
fn two_bindings_ring_in_parallel() {
    let test = "two_bindings_ring_in_parallel";
    if require_sipp(test).is_none() {
        return;
    }
    let t = Reg::start(test, Net(159));
    let (desk, mobile) = (t.net.phone(0), t.net.phone(1));
    t.register_from(desk, ALICE, 300);
    let resp = t.register_from(mobile, ALICE, 300);
    assert_eq!(bindings(&resp).len(), 2, "{}", resp.raw);

    let dir = t.dir.subdir("call");
    let answering = t.phone("desk", "uas_basic.xml", desk).spawn(&dir);
    let ringing = t.phone("mobile", "uas_cancel.xml", mobile).spawn(&dir);
    let caller = t.core_caller("uac_basic.xml", ALICE.0).run(&dir);
    let a = answering.wait_at_most(CALLEE_GRACE);
    let b = ringing.wait_at_most(CALLEE_GRACE);
    t.expect_ok(&[&caller, &a, &b]);
    // Both got the INVITE for alice's contact at their own address.
    for (r, addr) in [(&a, desk), (&b, mobile)] {
        let invite = r
            .messages()
            .into_iter()
            .find(|m| m.direction == Direction::Received && m.start_line.starts_with("INVITE "));
        let invite = invite.expect("the phone received an INVITE");
        assert_eq!(
            invite.start_line,
            format!("INVITE sip:alice@{addr} SIP/2.0")
        );
    }
    assert_no_topology_leaks(&caller, &a);
}

/// A subscriber with no binding: 480 Temporarily Unavailable.
#[test]
fn subscriber_without_binding_gets_480() {
    let test = "subscriber_without_binding_gets_480";
    if require_sipp(test).is_none() {
        return;
    }
    let t = Reg::start(test, Net(160));
    t.caller_alone(t.core_caller("uac_unavailable.xml", BOB.0), "call");
}

/// A user of the domain that is no subscriber and has no binding: 404.
#[test]
fn unknown_user_gets_404() {
    let test = "unknown_user_gets_404";
    if require_sipp(test).is_none() {
        return;
    }
    let t = Reg::start(test, Net(161));
    // uac_route_miss.xml is the generic "INVITE answered 404, ACK" caller.
    t.caller_alone(t.core_caller("uac_route_miss.xml", "nobody"), "call");
}

/// Bindings live in the store: after SIGKILL and after SIGTERM (same
/// data_dir) a call still reaches the registered phone.
#[test]
fn bindings_survive_restart() {
    let test = "bindings_survive_restart";
    if require_sipp(test).is_none() {
        return;
    }
    let mut t = Reg::start(test, Net(162));
    let phone = t.net.phone(0);
    t.register_from(phone, ALICE, 600);
    t.call_reaches(ALICE.0, phone, "before");

    t.sbc.restart();
    t.call_reaches(ALICE.0, phone, "after_sigkill");

    t.sbc.restart_graceful();
    t.call_reaches(ALICE.0, phone, "after_sigterm");
}

/// A binding registered for min_expires seconds is reached while it lives and
/// is gone right after: the INVITE gets 480.
#[test]
fn expired_binding_is_gone() {
    let t = Reg::start("expired_binding_is_gone", Net(163));
    let mut phone = t.ua(t.net.phone(0), ALICE);
    let registered = Instant::now();
    let resp = phone.register_ok(&Register::contact(&phone.own_contact(), MIN_EXPIRES));
    assert_eq!(bindings(&resp)[0].1, Some(MIN_EXPIRES), "{}", resp.raw);

    let mut caller = Ua::bind(t.net.caller(), t.net.core(), "carol", "", DOMAIN).expect("caller");
    let inv = caller.send_invite(ALICE.0);
    let (req, from) = phone
        .expect_request("INVITE", Duration::from_secs(5))
        .expect("the live binding is called");
    phone.respond(&req, from, 486, "Busy Here", Some("phone1"));
    let fin = caller.invite_final(&inv, Duration::from_secs(5));
    assert_status(&fin.expect("the caller hears the phone's answer"), 486);
    assert!(phone
        .expect_request("ACK", Duration::from_secs(5))
        .is_some());

    let after = Duration::from_secs(u64::from(MIN_EXPIRES) + 1);
    std::thread::sleep(after.saturating_sub(registered.elapsed()));
    let inv = caller.send_invite(ALICE.0);
    let fin = caller.invite_final(&inv, Duration::from_secs(5));
    assert_status(&fin.expect("a final answer to the INVITE"), 480);
    assert!(
        phone
            .expect_request("INVITE", Duration::from_millis(300))
            .is_none(),
        "an expired binding was called"
    );
}

/// A phone behind NAT writes its private address (10.0.0.99:5060) in Contact;
/// calls are sent to the source address and port its REGISTER came from, with
/// the registered Contact as request-URI.
#[test]
fn private_contact_reached_at_source_port() {
    let test = "private_contact_reached_at_source_port";
    if require_sipp(test).is_none() {
        return;
    }
    let t = Reg::start(test, Net(164));
    let phone = t.net.phone(0);
    let mut ua = t.ua(phone, ALICE);
    let resp = ua.register_ok(&Register::contact("<sip:alice@10.0.0.99:5060>", 300));
    assert_eq!(bindings(&resp)[0].0, "sip:alice@10.0.0.99:5060");
    drop(ua);

    let b = t.call_reaches(ALICE.0, phone, "call");
    let invite = b
        .messages()
        .into_iter()
        .find(|m| m.direction == Direction::Received && m.start_line.starts_with("INVITE "));
    let invite = invite.expect("the phone received an INVITE");
    assert_eq!(invite.start_line, "INVITE sip:alice@10.0.0.99:5060 SIP/2.0");
}

/// An INVITE from the access side whose From claims a subscriber is
/// challenged with 407: the wrong password gets 403 and reaches no one, the
/// right one goes through to the registered callee.
#[test]
fn subscriber_caller_must_authenticate() {
    let test = "subscriber_caller_must_authenticate";
    if require_sipp(test).is_none() {
        return;
    }
    let t = Reg::start(test, Net(165));
    let bob_phone = t.net.phone(0);
    t.register_from(bob_phone, BOB, 300);
    let caller = |scenario: &str, password: &str| {
        Sipp::uac("alice", scenario, t.net.caller(), t.net.access(), 1)
            .service(BOB.0)
            .credentials(ALICE.0, password)
            .hold_ms(300)
            .timeout(Duration::from_secs(30))
    };

    // Bob's phone port, watched by the Rust UA while the refused call runs.
    let mut watch = t.ua(bob_phone, BOB);
    let refused = caller("uac_auth_call_refused.xml", "wrong").run(&t.dir.subdir("refused"));
    t.expect_ok(&[&refused]);
    if let Some((m, _)) = watch.recv(Duration::from_millis(300)) {
        panic!("a refused caller reached the callee:\n{}", m.raw);
    }
    drop(watch);

    let dir = t.dir.subdir("accepted");
    let uas = t.phone("bob", "uas_basic.xml", bob_phone);
    let (a, b) = run_pair(&dir, &caller("uac_auth_call.xml", ALICE.1), &uas);
    t.expect_ok(&[&a, &b]);
    // Both legs use the access interface, so sipveil's own address there is
    // what each side legitimately talks to; and the registrar's domain is
    // sipveil's own, asserted on purpose (P-Asserted-Identity of the
    // authenticated caller, RFC 3325, toward a side that asked no privacy).
    // Anything else of the other side's is a leak.
    let sbc = t.net.access();
    let own = [
        sbc.to_string(),
        sbc.ip().to_string(),
        "example.test".to_string(),
    ];
    for (side, other) in [(&a, &b), (&b, &a)] {
        let mut r = check_leaks(&side.name, &side.messages(), &other.name, &other.messages());
        assert!(
            r.messages_checked > 0,
            "no messages traced for {}",
            side.name
        );
        r.leaks.retain(|l| !own.contains(&l.value));
        r.assert_clean();
    }
}
