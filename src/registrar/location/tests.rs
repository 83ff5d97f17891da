use super::*;

const T0: u64 = 1_700_000_000;
const AOR: &str = "alice@example.test";

fn udp(addr: &str) -> Peer {
    Peer {
        addr: addr.parse().unwrap(),
        transport: Transport::Udp,
        iface: 0,
        conn: None,
    }
}

fn tcp(addr: &str, conn: u64) -> Peer {
    Peer {
        addr: addr.parse().unwrap(),
        transport: Transport::Tcp,
        iface: 1,
        conn: Some(conn),
    }
}

/// A REGISTER for alice with the given Call-ID, CSeq and extra header lines.
fn reg(call_id: &str, cseq: u32, extra: &[&str]) -> SipMessage {
    let mut s = format!(
        "REGISTER sip:example.test SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.168.1.10:5060;branch=z9hG4bK{cseq}\r\n\
         From: <sip:alice@example.test>;tag=f1\r\n\
         To: <sip:alice@example.test>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Max-Forwards: 70\r\n"
    );
    for h in extra {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str("Content-Length: 0\r\n\r\n");
    SipMessage::parse(s.as_bytes()).unwrap()
}

fn loc() -> Location {
    Location::new(RegistrarLimits::default())
}

fn contacts_of(l: &Location, now: u64) -> Vec<String> {
    l.lookup(AOR, now)
        .iter()
        .map(|b| b.contact.clone())
        .collect()
}

fn persisted(o: &RegisterOutcome) -> AorRecord {
    match o.outputs.as_slice() {
        [Output::Persist { key, value }] => {
            assert_eq!(key, &format!("reg/{AOR}"));
            serde_json::from_slice(value).unwrap()
        }
        other => panic!("expected one Persist, got {other:?}"),
    }
}

#[test]
fn register_binds_and_200_lists_contact_with_expires_and_date() {
    let mut l = loc();
    let req = reg(
        "c1",
        1,
        &["Contact: <sip:alice@192.168.1.10:5060>", "Expires: 600"],
    );
    let o = l.register(AOR, &req, &udp("203.0.113.5:40000"), T0);
    assert_eq!((o.status, o.reason), (200, "OK"));
    assert_eq!(o.bindings.len(), 1);
    let rec = persisted(&o);
    assert_eq!(rec.aor, AOR);
    assert_eq!(rec.bindings[0].expires_at, T0 + 600);

    // The answer, ten seconds later in the same outcome's terms.
    let r = l.response(&req, &o);
    assert_eq!(r.status(), Some(200));
    let c: Vec<_> = r.header_values(HeaderName::Contact).collect();
    assert_eq!(c, vec!["<sip:alice@192.168.1.10:5060>;expires=600"]);
    assert_eq!(
        r.header_named("Date"),
        Some("Tue, 14 Nov 2023 22:13:20 GMT")
    );
    assert!(r.to_header().unwrap().tag().is_some());
    assert_eq!(r.call_id(), Some("c1"));
    assert!(r.header(HeaderName::MinExpires).is_none());

    // Remaining seconds shrink with time.
    let q = reg("c1", 2, &[]);
    let o = l.register(AOR, &q, &udp("203.0.113.5:40000"), T0 + 100);
    let r = l.response(&q, &o);
    let c: Vec<_> = r.header_values(HeaderName::Contact).collect();
    assert_eq!(c, vec!["<sip:alice@192.168.1.10:5060>;expires=500"]);
}

#[test]
fn expires_from_contact_param_then_header_then_default() {
    let mut l = loc();
    let req = reg(
        "c1",
        1,
        &[
            "Contact: <sip:a@10.0.0.1>;expires=120, <sip:a@10.0.0.2>",
            "Expires: 300",
        ],
    );
    let o = l.register(AOR, &req, &udp("203.0.113.5:5060"), T0);
    assert!(o.is_ok());
    let by = |c: &str| {
        o.bindings
            .iter()
            .find(|b| b.contact == c)
            .unwrap()
            .expires_at
    };
    assert_eq!(by("sip:a@10.0.0.1"), T0 + 120);
    assert_eq!(by("sip:a@10.0.0.2"), T0 + 300);

    let mut l = loc();
    let o = l.register(
        AOR,
        &reg("c1", 1, &["Contact: <sip:a@10.0.0.3>"]),
        &udp("203.0.113.5:5060"),
        T0,
    );
    assert_eq!(o.bindings[0].expires_at, T0 + 3600);

    // A default outside the bounds is clamped, never a 423 nobody asked for.
    let mut l = Location::new(RegistrarLimits {
        default_expires: 10,
        ..RegistrarLimits::default()
    });
    let o = l.register(
        AOR,
        &reg("c1", 1, &["Contact: <sip:a@10.0.0.3>"]),
        &udp("203.0.113.5:5060"),
        T0,
    );
    assert_eq!(o.bindings[0].expires_at, T0 + 60);
}

#[test]
fn too_brief_gets_423_with_min_expires_and_changes_nothing() {
    let mut l = loc();
    let src = udp("203.0.113.5:5060");
    let ok = reg("c1", 1, &["Contact: <sip:a@10.0.0.1>", "Expires: 600"]);
    assert!(l.register(AOR, &ok, &src, T0).is_ok());

    // One contact of two too brief: the whole request fails.
    let req = reg(
        "c1",
        2,
        &["Contact: <sip:a@10.0.0.2>, <sip:a@10.0.0.1>;expires=30"],
    );
    let o = l.register(AOR, &req, &src, T0);
    assert_eq!((o.status, o.reason), (423, "Interval Too Brief"));
    assert!(o.outputs.is_empty());
    assert_eq!(o.min_expires, Some(60));
    let r = l.response(&req, &o);
    assert_eq!(r.status(), Some(423));
    assert_eq!(r.header(HeaderName::MinExpires), Some("60"));
    assert!(r.header(HeaderName::Contact).is_none());
    assert!(r.header_named("Date").is_some());
    assert_eq!(contacts_of(&l, T0), vec!["sip:a@10.0.0.1"]);

    // Via the Expires header too.
    let o = l.register(
        AOR,
        &reg("c1", 3, &["Contact: <sip:a@10.0.0.2>", "Expires: 59"]),
        &src,
        T0,
    );
    assert_eq!(o.status, 423);
    // Exactly the minimum is fine.
    let o = l.register(
        AOR,
        &reg("c1", 4, &["Contact: <sip:a@10.0.0.2>", "Expires: 60"]),
        &src,
        T0,
    );
    assert!(o.is_ok());
}

#[test]
fn above_max_is_clamped() {
    let mut l = loc();
    let o = l.register(
        AOR,
        &reg("c1", 1, &["Contact: <sip:a@10.0.0.1>;expires=999999"]),
        &udp("203.0.113.5:5060"),
        T0,
    );
    assert!(o.is_ok());
    assert_eq!(o.bindings[0].expires_at, T0 + 7200);
    assert_eq!(o.bindings[0].remaining(T0), 7200);
}

#[test]
fn contact_star_with_expires_zero_removes_all() {
    let mut l = loc();
    let src = udp("203.0.113.5:5060");
    l.register(
        AOR,
        &reg("c1", 1, &["Contact: <sip:a@10.0.0.1>, <sip:a@10.0.0.2>"]),
        &src,
        T0,
    );
    l.register(
        AOR,
        &reg("other", 7, &["Contact: <sip:a@10.0.0.3>"]),
        &src,
        T0,
    );
    assert_eq!(l.lookup(AOR, T0).len(), 3);
    let req = reg("c1", 2, &["Contact: *", "Expires: 0"]);
    let o = l.register(AOR, &req, &src, T0 + 1);
    assert_eq!(o.status, 200);
    assert!(o.bindings.is_empty());
    assert!(
        matches!(o.outputs.as_slice(), [Output::Forget { key }] if key == "reg/alice@example.test")
    );
    assert!(l.lookup(AOR, T0 + 1).is_empty());
    assert_eq!(l.aor_count(), 0);
    let r = l.response(&req, &o);
    assert_eq!(r.status(), Some(200));
    assert!(r.header(HeaderName::Contact).is_none());
}

#[test]
fn contact_star_needs_expires_zero_and_to_be_alone() {
    let mut l = loc();
    let src = udp("203.0.113.5:5060");
    l.register(AOR, &reg("c1", 1, &["Contact: <sip:a@10.0.0.1>"]), &src, T0);
    for extra in [
        &["Contact: *"][..],
        &["Contact: *", "Expires: 60"][..],
        &["Contact: *, <sip:a@10.0.0.2>", "Expires: 0"][..],
        &["Contact: *", "Contact: <sip:a@10.0.0.2>", "Expires: 0"][..],
    ] {
        let o = l.register(AOR, &reg("c1", 5, extra), &src, T0);
        assert_eq!(o.status, 400, "{extra:?}");
        assert!(o.outputs.is_empty());
        assert_eq!(l.lookup(AOR, T0).len(), 1, "{extra:?}");
    }
}

#[test]
fn contact_star_out_of_order_is_rejected() {
    let mut l = loc();
    let src = udp("203.0.113.5:5060");
    l.register(AOR, &reg("c1", 5, &["Contact: <sip:a@10.0.0.1>"]), &src, T0);
    let o = l.register(AOR, &reg("c1", 5, &["Contact: *", "Expires: 0"]), &src, T0);
    assert_eq!((o.status, o.reason), (500, "Out Of Order REGISTER"));
    assert_eq!(l.lookup(AOR, T0).len(), 1);
    // Another Call-ID may remove it whatever its CSeq.
    let o = l.register(AOR, &reg("c2", 1, &["Contact: *", "Expires: 0"]), &src, T0);
    assert_eq!(o.status, 200);
    assert!(l.lookup(AOR, T0).is_empty());
}

#[test]
fn register_without_contact_is_a_query() {
    let mut l = loc();
    let src = udp("203.0.113.5:5060");
    let o = l.register(AOR, &reg("q", 1, &[]), &src, T0);
    assert_eq!(o.status, 200);
    assert!(o.bindings.is_empty() && o.outputs.is_empty());

    l.register(
        AOR,
        &reg(
            "c1",
            1,
            &["Contact: <sip:a@10.0.0.1>;q=0.5, <sip:a@10.0.0.2>;q=0.9"],
        ),
        &src,
        T0,
    );
    // A query with the same Call-ID and an old CSeq is still only a query.
    let req = reg("c1", 1, &["Expires: 0"]);
    let o = l.register(AOR, &req, &src, T0 + 10);
    assert_eq!(o.status, 200);
    assert!(o.outputs.is_empty());
    let r = l.response(&req, &o);
    let c: Vec<_> = r.header_values(HeaderName::Contact).collect();
    assert_eq!(
        c,
        vec![
            "<sip:a@10.0.0.2>;expires=3590;q=0.9",
            "<sip:a@10.0.0.1>;expires=3590;q=0.5"
        ]
    );
    assert_eq!(l.lookup(AOR, T0 + 10).len(), 2);
}

#[test]
fn refresh_of_same_contact_updates_in_place() {
    let mut l = loc();
    let src = udp("203.0.113.5:5060");
    l.register(
        AOR,
        &reg(
            "c1",
            1,
            &["Contact: <sip:Alice@PHONE.example.net:5062;transport=udp>"],
        ),
        &src,
        T0,
    );
    // Same URI per §19.1.4: host case and transport value case differ, an extra
    // parameter only on one side, URI headers ignored.
    let o = l.register(
        AOR,
        &reg(
            "c1",
            2,
            &[
                "Contact: <sip:Alice@phone.example.net:5062;transport=UDP;ob?X=1>;expires=900",
                "User-Agent: Phone/2.0",
            ],
        ),
        &udp("203.0.113.5:6000"),
        T0 + 50,
    );
    assert!(o.is_ok());
    let b = l.lookup(AOR, T0 + 50);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].expires_at, T0 + 50 + 900);
    assert_eq!(b[0].cseq, 2);
    assert_eq!(b[0].registered_at, T0);
    assert_eq!(b[0].updated_at, T0 + 50);
    assert_eq!(b[0].source.addr.port(), 6000);
    assert_eq!(b[0].user_agent.as_deref(), Some("Phone/2.0"));

    // Different port, user case, transport or scheme: different bindings.
    for c in [
        "<sip:Alice@phone.example.net:5063;transport=udp>",
        "<sip:alice@phone.example.net:5062;transport=udp>",
        "<sip:Alice@phone.example.net:5062;transport=tcp>",
        "<sip:Alice@phone.example.net:5062>",
        "<sips:Alice@phone.example.net:5062;transport=udp>",
    ] {
        assert!(
            !same_contact(
                "sip:Alice@PHONE.example.net:5062;transport=udp",
                c.trim_matches(['<', '>'])
            ),
            "{c}"
        );
    }
    let o = l.register(
        AOR,
        &reg("c1", 3, &["Contact: <sip:Alice@phone.example.net:5063>"]),
        &src,
        T0 + 60,
    );
    assert_eq!(o.bindings.len(), 2);
}

#[test]
fn expires_zero_removes_only_that_binding() {
    let mut l = loc();
    let src = udp("203.0.113.5:5060");
    l.register(
        AOR,
        &reg("c1", 1, &["Contact: <sip:a@10.0.0.1>, <sip:a@10.0.0.2>"]),
        &src,
        T0,
    );
    let o = l.register(
        AOR,
        &reg("c1", 2, &["Contact: <sip:a@10.0.0.1>;expires=0"]),
        &src,
        T0 + 1,
    );
    assert!(o.is_ok());
    assert_eq!(persisted(&o).bindings.len(), 1);
    assert_eq!(contacts_of(&l, T0 + 1), vec!["sip:a@10.0.0.2"]);
    // Via the Expires header, for the last one: the AOR is forgotten.
    let o = l.register(
        AOR,
        &reg("c1", 3, &["Contact: <sip:a@10.0.0.2>", "Expires: 0"]),
        &src,
        T0 + 2,
    );
    assert!(matches!(o.outputs.as_slice(), [Output::Forget { .. }]));
    assert!(l.lookup(AOR, T0 + 2).is_empty());
    // Removing a binding that does not exist is fine.
    let o = l.register(
        AOR,
        &reg("c1", 4, &["Contact: <sip:a@10.0.0.9>;expires=0"]),
        &src,
        T0 + 3,
    );
    assert_eq!(o.status, 200);
}

#[test]
fn out_of_order_cseq_is_rejected_atomically() {
    let mut l = loc();
    let src = udp("203.0.113.5:5060");
    l.register(
        AOR,
        &reg("c1", 10, &["Contact: <sip:a@10.0.0.1>", "Expires: 600"]),
        &src,
        T0,
    );
    for cseq in [9, 10] {
        // A new contact first, then the stale one: neither is applied.
        let req = reg(
            "c1",
            cseq,
            &[
                "Contact: <sip:a@10.0.0.2>, <sip:a@10.0.0.1>",
                "Expires: 900",
            ],
        );
        let o = l.register(AOR, &req, &src, T0 + 5);
        assert_eq!((o.status, o.reason), (500, "Out Of Order REGISTER"));
        assert!(o.outputs.is_empty());
        assert_eq!(l.response(&req, &o).status(), Some(500));
        let b = l.lookup(AOR, T0 + 5);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].expires_at, T0 + 600);
    }
    let o = l.register(
        AOR,
        &reg("c1", 11, &["Contact: <sip:a@10.0.0.1>", "Expires: 900"]),
        &src,
        T0 + 5,
    );
    assert!(o.is_ok());
    assert_eq!(o.bindings[0].expires_at, T0 + 905);
}

#[test]
fn new_call_id_replaces_binding_whatever_its_cseq() {
    let mut l = loc();
    let src = udp("203.0.113.5:5060");
    l.register(
        AOR,
        &reg("before-reboot", 500, &["Contact: <sip:a@10.0.0.1>"]),
        &src,
        T0,
    );
    let o = l.register(
        AOR,
        &reg(
            "after-reboot",
            1,
            &["Contact: <sip:a@10.0.0.1>", "Expires: 120"],
        ),
        &udp("203.0.113.5:7000"),
        T0 + 1,
    );
    assert!(o.is_ok());
    let b = l.lookup(AOR, T0 + 1);
    assert_eq!(b.len(), 1);
    assert_eq!((b[0].call_id.as_str(), b[0].cseq), ("after-reboot", 1));
    assert_eq!(b[0].expires_at, T0 + 121);
    assert_eq!(b[0].send_to().addr.port(), 7000);
}

#[test]
fn lookup_orders_by_q_descending() {
    let mut l = loc();
    let src = udp("203.0.113.5:5060");
    l.register(
        AOR,
        &reg(
            "c1",
            1,
            &["Contact: <sip:a@10.0.0.1>;q=0.1, <sip:a@10.0.0.2>;q=0.7, <sip:a@10.0.0.3>"],
        ),
        &src,
        T0,
    );
    l.register(
        AOR,
        &reg("c2", 1, &["Contact: <sip:a@10.0.0.4>;q=0.7"]),
        &src,
        T0 + 1,
    );
    // No q ranks as 1.0; equal q: most recently refreshed first.
    assert_eq!(
        contacts_of(&l, T0 + 1),
        vec![
            "sip:a@10.0.0.3",
            "sip:a@10.0.0.4",
            "sip:a@10.0.0.2",
            "sip:a@10.0.0.1"
        ]
    );
}

#[test]
fn expired_binding_is_never_returned_even_before_purge() {
    let mut l = loc();
    let src = udp("203.0.113.5:5060");
    l.register(
        AOR,
        &reg(
            "c1",
            1,
            &["Contact: <sip:a@10.0.0.1>;expires=60, <sip:a@10.0.0.2>;expires=120"],
        ),
        &src,
        T0,
    );
    assert_eq!(l.lookup(AOR, T0 + 59).len(), 2);
    assert_eq!(contacts_of(&l, T0 + 60), vec!["sip:a@10.0.0.2"]);
    assert!(l.lookup(AOR, T0 + 120).is_empty());
    assert!(l.nat_targets(T0 + 120).is_empty());
    // Still held in memory: nothing was purged.
    assert_eq!(l.binding_count(), 2);
    // A query after expiry lists nothing; a new REGISTER does not see the
    // expired binding either (an old CSeq is no longer out of order).
    let o = l.register(AOR, &reg("q", 1, &[]), &src, T0 + 120);
    assert!(o.bindings.is_empty());
    let o = l.register(
        AOR,
        &reg("c1", 1, &["Contact: <sip:a@10.0.0.1>"]),
        &src,
        T0 + 120,
    );
    assert_eq!(o.status, 200);
    assert_eq!(o.bindings.len(), 1);
}

#[test]
fn purge_forgets_empty_aors_and_rewrites_partial_ones() {
    let mut l = loc();
    let src = udp("203.0.113.5:5060");
    l.register(
        AOR,
        &reg(
            "c1",
            1,
            &["Contact: <sip:a@10.0.0.1>;expires=60, <sip:a@10.0.0.2>;expires=120"],
        ),
        &src,
        T0,
    );
    l.register(
        "bob@example.test",
        &reg("c9", 1, &["Contact: <sip:b@10.0.0.9>;expires=60"]),
        &src,
        T0,
    );
    assert!(l.purge(T0 + 59).is_empty());
    let mut out = l.purge(T0 + 60);
    out.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(out.len(), 2);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Forget { key } if key == "reg/bob@example.test")));
    let rec = out
        .iter()
        .find_map(|o| match o {
            Output::Persist { key, value } if key == "reg/alice@example.test" => {
                Some(serde_json::from_slice::<AorRecord>(value).unwrap())
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(rec.bindings.len(), 1);
    assert_eq!(l.aor_count(), 1);
    assert_eq!(l.binding_count(), 1);
    assert!(l.purge(T0 + 60).is_empty());
}

#[test]
fn max_bindings_evicts_least_recently_refreshed() {
    let mut l = Location::new(RegistrarLimits {
        max_bindings: 2,
        ..RegistrarLimits::default()
    });
    let src = udp("203.0.113.5:5060");
    l.register(AOR, &reg("a", 1, &["Contact: <sip:a@10.0.0.1>"]), &src, T0);
    l.register(
        AOR,
        &reg("b", 1, &["Contact: <sip:a@10.0.0.2>"]),
        &src,
        T0 + 1,
    );
    // Refresh the first, so the second is now the oldest.
    l.register(
        AOR,
        &reg("a", 2, &["Contact: <sip:a@10.0.0.1>"]),
        &src,
        T0 + 2,
    );
    let o = l.register(
        AOR,
        &reg("c", 1, &["Contact: <sip:a@10.0.0.3>"]),
        &src,
        T0 + 3,
    );
    assert!(o.is_ok());
    let mut got = contacts_of(&l, T0 + 3);
    got.sort();
    assert_eq!(got, vec!["sip:a@10.0.0.1", "sip:a@10.0.0.3"]);
    assert_eq!(persisted(&o).bindings.len(), 2);

    // More new contacts in one request than the bound: 503, nothing changes.
    let o = l.register(
        AOR,
        &reg(
            "d",
            1,
            &["Contact: <sip:a@10.0.0.4>, <sip:a@10.0.0.5>, <sip:a@10.0.0.6>"],
        ),
        &src,
        T0 + 4,
    );
    assert_eq!(o.status, 503);
    assert_eq!(l.lookup(AOR, T0 + 4).len(), 2);
}

#[test]
fn max_bindings_reject_policy_answers_503() {
    let mut l = Location::new(RegistrarLimits {
        max_bindings: 2,
        overflow: OverflowPolicy::Reject,
        ..RegistrarLimits::default()
    });
    let src = udp("203.0.113.5:5060");
    l.register(
        AOR,
        &reg("a", 1, &["Contact: <sip:a@10.0.0.1>, <sip:a@10.0.0.2>"]),
        &src,
        T0,
    );
    let o = l.register(
        AOR,
        &reg("c", 1, &["Contact: <sip:a@10.0.0.3>"]),
        &src,
        T0 + 1,
    );
    assert_eq!((o.status, o.reason), (503, "Too Many Registered Contacts"));
    assert!(o.outputs.is_empty());
    assert_eq!(l.lookup(AOR, T0 + 1).len(), 2);
    // Refreshing at the bound is fine, and replacing one with another too.
    let o = l.register(
        AOR,
        &reg(
            "a",
            2,
            &["Contact: <sip:a@10.0.0.2>;expires=0, <sip:a@10.0.0.3>"],
        ),
        &src,
        T0 + 2,
    );
    assert!(o.is_ok());
    assert_eq!(o.bindings.len(), 2);
}

#[test]
fn max_aors_bounds_new_aors_only() {
    let mut l = Location::new(RegistrarLimits {
        max_aors: 1,
        ..RegistrarLimits::default()
    });
    let src = udp("203.0.113.5:5060");
    assert!(l
        .register(AOR, &reg("a", 1, &["Contact: <sip:a@10.0.0.1>"]), &src, T0)
        .is_ok());
    let o = l.register(
        "bob@example.test",
        &reg("b", 1, &["Contact: <sip:b@10.0.0.2>"]),
        &src,
        T0,
    );
    assert_eq!(o.status, 503);
    assert!(l
        .register(AOR, &reg("a", 2, &["Contact: <sip:a@10.0.0.2>"]), &src, T0)
        .is_ok());
}

fn apply(outs: &[Output], store: &mut HashMap<String, Vec<u8>>) {
    for o in outs {
        match o {
            Output::Persist { key, value } => {
                store.insert(key.clone(), value.clone());
            }
            Output::Forget { key } => {
                store.remove(key);
            }
            Output::Send { .. } => panic!("no sends from the location service"),
        }
    }
}

#[test]
fn restore_round_trip() {
    let mut l = loc();
    let mut store: HashMap<String, Vec<u8>> = HashMap::new();
    let o = l.register(
        AOR,
        &reg(
            "c1",
            4,
            &[
                "Contact: <sip:a@10.0.0.1;transport=tcp>;q=0.8;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1",
                "Expires: 600",
                "User-Agent: Phone/1.0",
            ],
        ),
        &tcp("198.51.100.7:51000", 42),
        T0,
    );
    apply(&o.outputs, &mut store);
    let o = l.register(
        "bob@example.test",
        &reg("c2", 1, &["Contact: <sip:b@10.0.0.2>;expires=60"]),
        &udp("198.51.100.8:5060"),
        T0,
    );
    apply(&o.outputs, &mut store);
    assert_eq!(store.len(), 2);

    // Restart 100 s later: bob has expired meanwhile.
    let mut l2 = loc();
    let s = l2.restore(store.clone(), T0 + 100);
    assert_eq!((s.aors, s.bindings), (1, 1));
    assert!(s.corrupt.is_empty());
    assert!(
        matches!(s.outputs.as_slice(), [Output::Forget { key }] if key == "reg/bob@example.test")
    );
    apply(&s.outputs, &mut store);
    assert_eq!(store.len(), 1);

    let before = l.lookup(AOR, T0 + 100)[0].clone();
    let after = l2.lookup(AOR, T0 + 100)[0].clone();
    // Everything survives but the TCP connection id.
    assert_eq!(before.source.conn, Some(42));
    assert_eq!(after.source.conn, None);
    assert_eq!(
        Binding {
            source: Source {
                conn: None,
                ..before.source.clone()
            },
            ..before
        },
        after
    );
    assert_eq!(after.q, Some(0.8));
    assert_eq!(after.reg_id, Some(1));
    assert_eq!(after.user_agent.as_deref(), Some("Phone/1.0"));
    assert_eq!(after.send_to().transport, Transport::Tcp);
    assert_eq!(after.send_to().iface, 1);
    // The restored binding still enforces ordering.
    let o = l2.register(
        AOR,
        &reg("c1", 4, &["Contact: <sip:a@10.0.0.1;transport=tcp>"]),
        &tcp("198.51.100.7:51001", 43),
        T0 + 100,
    );
    assert_eq!(o.status, 500);

    // A corrupt record is reported and left alone; a record under a key of another
    // spelling is moved to the normalized key.
    let mut l3 = loc();
    let mut upper = store.get("reg/alice@example.test").unwrap().clone();
    let text = String::from_utf8(upper.clone()).unwrap();
    upper = text
        .replace("alice@example.test", "Alice@Example.test")
        .into_bytes();
    let s = l3.restore(
        vec![
            ("reg/junk@example.test".to_string(), b"{not json".to_vec()),
            ("reg/Alice@Example.test".to_string(), upper),
        ],
        T0 + 100,
    );
    assert_eq!(s.corrupt, vec!["reg/junk@example.test".to_string()]);
    assert_eq!(s.bindings, 1);
    assert!(s
        .outputs
        .iter()
        .any(|o| matches!(o, Output::Forget { key } if key == "reg/Alice@Example.test")));
    assert!(s
        .outputs
        .iter()
        .any(|o| matches!(o, Output::Persist { key, .. } if key == "reg/alice@example.test")));
    assert_eq!(l3.lookup("ALICE@example.test", T0 + 100).len(), 1);
}

#[test]
fn requests_go_to_the_source_address_not_the_contact_host() {
    let mut l = loc();
    // Private address in Contact, REGISTER from the NAT's public side.
    l.register(
        AOR,
        &reg("c1", 1, &["Contact: <sip:alice@192.168.1.10:5060>"]),
        &udp("203.0.113.5:40000"),
        T0,
    );
    let b = l.lookup(AOR, T0);
    assert_eq!(b[0].contact, "sip:alice@192.168.1.10:5060");
    assert_eq!(
        b[0].send_to(),
        Peer {
            addr: "203.0.113.5:40000".parse().unwrap(),
            transport: Transport::Udp,
            iface: 0,
            conn: None,
        }
    );
    assert!(b[0].natted);

    // Over TCP the connection it came on is reused.
    l.register(
        "bob@example.test",
        &reg("c2", 1, &["Contact: <sip:bob@10.1.1.1:5060;transport=tcp>"]),
        &tcp("198.51.100.7:51000", 42),
        T0,
    );
    let b = l.lookup("bob@example.test", T0);
    let p = b[0].send_to();
    assert_eq!(p.addr, "198.51.100.7:51000".parse().unwrap());
    assert_eq!(
        (p.transport, p.iface, p.conn),
        (Transport::Tcp, 1, Some(42))
    );
}

#[test]
fn nat_targets_list_natted_live_bindings_with_the_right_keepalive() {
    let mut l = loc();
    // Not behind NAT: Contact names the source address.
    l.register(
        "direct@example.test",
        &reg("c0", 1, &["Contact: <sip:d@198.51.100.1:5060>"]),
        &udp("198.51.100.1:5060"),
        T0,
    );
    // Default port 5060 compared too.
    l.register(
        "direct2@example.test",
        &reg("c0", 1, &["Contact: <sip:d@198.51.100.2>"]),
        &udp("198.51.100.2:5060"),
        T0,
    );
    l.register(
        AOR,
        &reg(
            "c1",
            1,
            &["Contact: <sip:a@192.168.1.10>, <sip:a2@192.168.1.10>"],
        ),
        &udp("203.0.113.5:40000"),
        T0,
    );
    l.register(
        "bob@example.test",
        &reg(
            "c2",
            1,
            &["Contact: <sip:b@10.1.1.1;transport=tcp>;expires=60"],
        ),
        &tcp("198.51.100.7:51000", 42),
        T0,
    );
    let mut t = l.nat_targets(T0);
    t.sort_by_key(|t| t.aor.clone());
    assert_eq!(t.len(), 2, "{t:?}");
    assert_eq!(t[0].aor, AOR);
    assert_eq!(t[0].keepalive, KeepAlive::Options);
    assert_eq!(t[0].peer.addr, "203.0.113.5:40000".parse().unwrap());
    assert!(t[0].contact.starts_with("sip:a"));
    assert_eq!(t[1].aor, "bob@example.test");
    assert_eq!(t[1].keepalive, KeepAlive::Crlf);
    assert_eq!(t[1].peer.conn, Some(42));
    assert_eq!(l.nat_targets(T0 + 60).len(), 1);
}

#[test]
fn instance_and_reg_id_identify_a_flow_across_contact_changes() {
    let mut l = loc();
    let inst = "+sip.instance=\"<urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6>\"";
    l.register(
        AOR,
        &reg(
            "c1",
            1,
            &[&format!(
                "Contact: <sip:a@192.168.1.10:5060>;{inst};reg-id=1"
            )],
        ),
        &udp("203.0.113.5:40000"),
        T0,
    );
    // New address after a network change: same flow, replaced, not added.
    let o = l.register(
        AOR,
        &reg(
            "c1",
            2,
            &[&format!("Contact: <sip:a@10.9.9.9:5060>;{inst};reg-id=1")],
        ),
        &udp("203.0.113.99:41000"),
        T0 + 5,
    );
    assert_eq!(o.bindings.len(), 1);
    assert_eq!(o.bindings[0].contact, "sip:a@10.9.9.9:5060");
    let r = l.response(&reg("c1", 2, &[]), &o);
    let c = r.header(HeaderName::Contact).unwrap();
    assert!(
        c.contains(";reg-id=1") && c.contains("+sip.instance="),
        "{c}"
    );
    // A second flow of the same device is a second binding.
    let o = l.register(
        AOR,
        &reg(
            "c1",
            3,
            &[&format!("Contact: <sip:a@10.9.9.9:5060>;{inst};reg-id=2")],
        ),
        &udp("203.0.113.99:41001"),
        T0 + 6,
    );
    assert_eq!(o.bindings.len(), 2);
}

#[test]
fn malformed_requests_get_400() {
    let mut l = loc();
    let src = udp("203.0.113.5:5060");
    for extra in [
        &["Contact: <sip:a@10.0.0.1"][..],
        &["Contact: <tel:+15551234>"][..],
        &["Contact: <mailto:a@example.test>"][..],
    ] {
        let o = l.register(AOR, &reg("c1", 1, extra), &src, T0);
        assert_eq!(o.status, 400, "{extra:?}");
        assert!(o.outputs.is_empty());
    }
    let mut no_callid = reg("c1", 1, &["Contact: <sip:a@10.0.0.1>"]);
    no_callid.remove(HeaderName::CallId);
    assert_eq!(l.register(AOR, &no_callid, &src, T0).status, 400);
    let mut bad_cseq = reg("c1", 1, &["Contact: <sip:a@10.0.0.1>"]);
    bad_cseq.replace(HeaderName::CSeq, "x REGISTER");
    assert_eq!(l.register(AOR, &bad_cseq, &src, T0).status, 400);
    assert_eq!(l.aor_count(), 0);
}

#[test]
fn aors_are_case_insensitive() {
    let mut l = loc();
    l.register(
        "Alice@Example.TEST",
        &reg("c1", 1, &["Contact: <sip:a@10.0.0.1>"]),
        &udp("203.0.113.5:5060"),
        T0,
    );
    assert_eq!(l.lookup("alice@example.test", T0).len(), 1);
    let to = reg("c1", 1, &[]);
    let to = to.to_header().unwrap();
    assert_eq!(aor_of(&to.uri).as_deref(), Some("alice@example.test"));
    let u = Uri::parse("sip:%41lice@EXAMPLE.test;transport=tcp").unwrap();
    assert_eq!(aor_of(&u).as_deref(), Some("alice@example.test"));
    assert_eq!(aor_of(&Uri::parse("sip:example.test").unwrap()), None);
    assert_eq!(aor_of(&Uri::parse("tel:+1555").unwrap()), None);
    assert_eq!(l.remove_aor("ALICE@example.test").len(), 1);
    assert!(l.lookup("alice@example.test", T0).is_empty());
}

#[test]
fn same_contact_follows_rfc3261_19_1_4() {
    assert!(same_contact("sip:a@Host.Example", "sip:a@host.example"));
    assert!(same_contact("sip:%61lice@h", "sip:alice@h"));
    assert!(same_contact("sip:a@h;foo=1", "sip:a@h"));
    assert!(same_contact("sip:a@h;foo=1", "sip:a@h;bar=2"));
    assert!(!same_contact("sip:a@h;foo=1", "sip:a@h;foo=2"));
    assert!(!same_contact("sip:a@h", "sip:a@h:5060"));
    assert!(!same_contact("sip:a@h", "sip:A@h"));
    assert!(!same_contact("sip:a@h;maddr=1.2.3.4", "sip:a@h"));
    assert!(!same_contact("sip:a@h", "sip:a@h;user=phone"));
    assert!(same_contact("sip:a@[::1]:5060", "sip:a@[0:0::1]:5060"));
}

#[test]
fn http_date_formats_rfc1123() {
    assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    assert_eq!(http_date(1_709_251_199), "Thu, 29 Feb 2024 23:59:59 GMT");
    assert_eq!(http_date(4_102_444_800), "Fri, 01 Jan 2100 00:00:00 GMT");
}

#[test]
fn q_values_print_compactly() {
    assert_eq!(format_q(1.0), "1");
    assert_eq!(format_q(0.5), "0.5");
    assert_eq!(format_q(0.125), "0.125");
    assert_eq!(format_q(0.0), "0");
}

/// Size on disk of 100,000 AORs with one binding each in a sled store, for the
/// closing note; printed, not asserted. Ignored by default because it takes tens
/// of seconds in a debug build: `cargo test store_size -- --ignored --nocapture`.
#[test]
#[ignore = "slow: measures the store size for 100,000 bindings"]
fn store_size_for_100k_bindings() {
    use crate::store::{SledStore, Store};
    const N: u32 = 100_000;
    let dir = std::env::temp_dir().join(format!("sipveil-loc-size-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let started = std::time::Instant::now();
    let mut bytes_written = 0usize;
    {
        let store = SledStore::open(&dir).unwrap();
        let mut l = loc();
        for i in 0..N {
            let aor = format!("user{i:06}@example.test");
            let req = SipMessage::parse(
                format!(
                    "REGISTER sip:example.test SIP/2.0\r\n\
                     Via: SIP/2.0/UDP 192.168.{}.{}:5060;branch=z9hG4bK{i}\r\n\
                     From: <sip:{aor}>;tag=f{i}\r\n\
                     To: <sip:{aor}>\r\n\
                     Call-ID: {:032x}@192.168.1.1\r\n\
                     CSeq: 2 REGISTER\r\n\
                     Contact: <sip:user{i:06}@192.168.{}.{}:5060;transport=udp>;expires=3600\r\n\
                     User-Agent: Yealink SIP-T46S 66.86.0.15\r\n\
                     Content-Length: 0\r\n\r\n",
                    i / 256 % 256,
                    i % 256,
                    u128::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15),
                    i / 256 % 256,
                    i % 256,
                )
                .as_bytes(),
            )
            .unwrap();
            let src = Peer {
                addr: SocketAddr::from((
                    [203, 0, (i >> 8) as u8, i as u8],
                    40_000 + (i % 20_000) as u16,
                )),
                transport: Transport::Udp,
                iface: 0,
                conn: None,
            };
            let o = l.register(&aor, &req, &src, T0);
            assert!(o.is_ok());
            for out in o.outputs {
                if let Output::Persist { key, value } = out {
                    bytes_written += key.len() + value.len();
                    store.put(&key, &value).unwrap();
                }
            }
        }
        store.flush().unwrap();
        assert_eq!(store.scan(KEY_PREFIX).unwrap().len(), N as usize);
    }
    fn du(p: &std::path::Path) -> u64 {
        let Ok(rd) = std::fs::read_dir(p) else {
            return std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        };
        rd.flatten().map(|e| du(&e.path())).sum()
    }
    let size = du(&dir);
    println!(
        "store size: {N} bindings ({N} AORs) -> {size} bytes on disk ({:.1} MiB), \
         {bytes_written} bytes of keys+values ({:.0} B/record), {:.1} s",
        size as f64 / 1_048_576.0,
        bytes_written as f64 / f64::from(N),
        started.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
