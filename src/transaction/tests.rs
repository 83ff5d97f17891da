//! Every timer path of the four state machines, driven with a fake clock
//! (`t0 + offsets`): no socket, no sleep.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::sip::{HeaderName, Method, SipMessage};

const VIA_A: &str = "SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKaaa;rport";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn msg(s: &str) -> SipMessage {
    SipMessage::parse(s.replace('\n', "\r\n").as_bytes()).unwrap()
}

fn udp(port: u16) -> Peer {
    Peer {
        addr: ([192, 0, 2, 1], port).into(),
        transport: Transport::Udp,
        iface: 0,
        conn: None,
    }
}

fn tcp(port: u16) -> Peer {
    Peer {
        addr: ([192, 0, 2, 1], port).into(),
        transport: Transport::Tcp,
        iface: 1,
        conn: Some(7),
    }
}

/// A request with CSeq number `seq`; `to_tag` adds a To tag.
fn request(method: &str, seq: u32, via: &str, to_tag: Option<&str>) -> SipMessage {
    let to = match to_tag {
        Some(t) => format!("<sip:bob@b.example>;tag={t}"),
        None => "<sip:bob@b.example>".to_string(),
    };
    msg(&format!(
        "{method} sip:bob@b.example SIP/2.0\nVia: {via}\nMax-Forwards: 70\n\
Route: <sip:p1.example;lr>\nRoute: <sip:p2.example;lr>\n\
From: \"Alice\" <sip:alice@a.example>;tag=ft1\nTo: {to}\nCall-ID: cid-1@a.example\n\
CSeq: {seq} {method}\nContact: <sip:alice@192.0.2.1:5070>\nContent-Length: 0\n\n"
    ))
}

fn invite(via: &str) -> SipMessage {
    request("INVITE", 1, via, None)
}

fn response(req: &SipMessage, code: u16, tag: Option<&str>) -> SipMessage {
    let mut r = req.make_response(code, "Reason");
    if let Some(t) = tag {
        r.set_to_tag(t);
    }
    r
}

fn layer() -> TransactionLayer {
    TransactionLayer::new(TimerConfig::default())
}

/// Fires every timer up to `t0 + until` (ms), returning (ms since t0, action).
fn run(l: &mut TransactionLayer, t0: Instant, until: u64) -> Vec<(u64, Action)> {
    let end = t0 + ms(until);
    let mut out = Vec::new();
    while let Some(d) = l.next_deadline() {
        if d > end {
            break;
        }
        l.poll(d);
        let at = (d - t0).as_millis() as u64;
        out.extend(l.drain_actions().map(|a| (at, a)));
    }
    out
}

fn sends(actions: &[(u64, Action)]) -> Vec<(u64, Bytes)> {
    actions
        .iter()
        .filter_map(|(t, a)| match a {
            Action::Send { data, .. } => Some((*t, data.clone())),
            _ => None,
        })
        .collect()
}

fn send_times(actions: &[(u64, Action)]) -> Vec<u64> {
    sends(actions).into_iter().map(|(t, _)| t).collect()
}

fn others(actions: &[(u64, Action)]) -> Vec<(u64, Action)> {
    actions
        .iter()
        .filter(|(_, a)| !matches!(a, Action::Send { .. }))
        .cloned()
        .collect()
}

fn drain(l: &mut TransactionLayer) -> Vec<Action> {
    l.drain_actions().collect()
}

fn sent(actions: &[Action]) -> Vec<Bytes> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { data, .. } => Some(data.clone()),
            _ => None,
        })
        .collect()
}

fn parse(b: &Bytes) -> SipMessage {
    SipMessage::parse(b).unwrap()
}

fn new_server(l: &mut TransactionLayer, m: SipMessage, from: Peer, now: Instant) -> ServerTxId {
    match l.on_message(m, from, now) {
        Incoming::NewRequest { id, .. } => id,
        other => panic!("expected a new request, got {other:?}"),
    }
}

// ---------------------------------------------------------------- INVITE client

#[test]
fn invite_client_timer_a_doubles_then_b_times_out() {
    let mut l = layer();
    let t0 = Instant::now();
    let id = l.send_request(invite(VIA_A), udp(5060), t0).unwrap();
    let first = sent(&drain(&mut l));
    assert_eq!(first.len(), 1);
    let acts = run(&mut l, t0, 40_000);
    // A: T1, then 2*T1, 4*T1... with no cap; B at 64*T1 ends it.
    assert_eq!(
        send_times(&acts),
        vec![500, 1500, 3500, 7500, 15_500, 31_500]
    );
    for (_, b) in sends(&acts) {
        assert_eq!(b, first[0], "retransmissions are byte-identical");
        assert_eq!(b.as_ptr(), first[0].as_ptr(), "and share one buffer");
    }
    assert_eq!(
        others(&acts),
        vec![
            (32_000, Action::ClientTimeout { id }),
            (32_000, Action::Terminated(TxRef::Client(id)))
        ]
    );
    assert!(l.is_empty());
    assert_eq!(l.next_deadline(), None);
}

#[test]
fn invite_client_over_tcp_never_retransmits() {
    let mut l = layer();
    let t0 = Instant::now();
    let id = l.send_request(invite(VIA_A), tcp(5060), t0).unwrap();
    assert_eq!(sent(&drain(&mut l)).len(), 1);
    let acts = run(&mut l, t0, 40_000);
    assert!(send_times(&acts).is_empty());
    assert_eq!(
        others(&acts),
        vec![
            (32_000, Action::ClientTimeout { id }),
            (32_000, Action::Terminated(TxRef::Client(id)))
        ]
    );
}

#[test]
fn invite_client_provisional_stops_a_and_b() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = invite(VIA_A);
    let id = l.send_request(inv.clone(), udp(5060), t0).unwrap();
    drain(&mut l);
    let acts = run(&mut l, t0, 700);
    assert_eq!(send_times(&acts), vec![500]);
    match l.on_message(response(&inv, 180, Some("tt")), udp(5060), t0 + ms(700)) {
        Incoming::Response {
            id: rid,
            retransmission,
            msg,
        } => {
            assert_eq!(rid, id);
            assert!(!retransmission);
            assert_eq!(msg.status(), Some(180));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(l.client_state(id), Some(ClientState::Proceeding));
    assert_eq!(l.next_deadline(), None, "no A, no B in Proceeding");
    assert!(run(&mut l, t0, 300_000).is_empty());
    assert!(l.client_request(id).is_some());
}

#[test]
fn invite_client_non_2xx_final_is_acked_and_d_absorbs_retransmissions() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = invite(VIA_A);
    let id = l.send_request(inv.clone(), udp(5060), t0).unwrap();
    drain(&mut l);
    l.on_message(response(&inv, 180, Some("tt")), udp(5060), t0 + ms(100));
    let busy = response(&inv, 486, Some("tt"));
    let got = l.on_message(busy.clone(), udp(5060), t0 + ms(200));
    assert!(matches!(got, Incoming::Response { id: r, .. } if r == id));
    let acks = sent(&drain(&mut l));
    assert_eq!(acks.len(), 1);
    let ack = parse(&acks[0]);
    // §17.1.1.3: R-URI, top Via, From, Call-ID, Route of the INVITE; To of the
    // response; CSeq number with ACK.
    assert_eq!(ack.method(), Some(&Method::Ack));
    assert_eq!(ack.request_uri(), Some("sip:bob@b.example"));
    assert_eq!(ack.header(HeaderName::Via), Some(VIA_A));
    assert_eq!(ack.vias().count(), 1);
    assert_eq!(ack.header(HeaderName::From), inv.header(HeaderName::From));
    assert_eq!(ack.to_header().unwrap().tag(), Some("tt"));
    assert_eq!(ack.call_id(), Some("cid-1@a.example"));
    assert_eq!(ack.header(HeaderName::CSeq), Some("1 ACK"));
    let routes: Vec<_> = ack.header_lines(HeaderName::Route).collect();
    assert_eq!(routes, vec!["<sip:p1.example;lr>", "<sip:p2.example;lr>"]);
    assert_eq!(ack.header(HeaderName::MaxForwards), Some("70"));
    assert_eq!(ack.header(HeaderName::Contact), None);
    assert_eq!(l.client_state(id), Some(ClientState::Completed));
    assert!(
        l.client_request(id).is_none(),
        "request released after the final"
    );

    // A retransmitted final gets the same ACK again and is not passed up.
    let again = l.on_message(busy.clone(), udp(5060), t0 + ms(1000));
    assert!(matches!(again, Incoming::Retransmission));
    assert_eq!(sent(&drain(&mut l)), acks);

    // Timer D: 32 s over UDP.
    let acts = run(&mut l, t0, 60_000);
    assert_eq!(
        others(&acts),
        vec![(32_200, Action::Terminated(TxRef::Client(id)))]
    );
    assert!(matches!(
        l.on_message(busy, udp(5060), t0 + ms(60_000)),
        Incoming::Stray(_)
    ));
}

#[test]
fn invite_client_non_2xx_over_tcp_terminates_at_once() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = invite("SIP/2.0/TCP 192.0.2.1:5070;branch=z9hG4bKtcp");
    let id = l.send_request(inv.clone(), tcp(5060), t0).unwrap();
    drain(&mut l);
    l.on_message(response(&inv, 503, Some("x")), tcp(5060), t0 + ms(10));
    let acts = drain(&mut l);
    assert_eq!(sent(&acts).len(), 1, "the ACK");
    assert_eq!(acts.last(), Some(&Action::Terminated(TxRef::Client(id))));
    assert!(l.is_empty());
}

#[test]
fn invite_client_2xx_and_retransmitted_2xx_are_passed_up_until_m() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = invite(VIA_A);
    let id = l.send_request(inv.clone(), udp(5060), t0).unwrap();
    drain(&mut l);
    let ok = response(&inv, 200, Some("t1"));
    let r = |x| match x {
        Incoming::Response {
            id: rid,
            retransmission,
            ..
        } => {
            assert_eq!(rid, id);
            retransmission
        }
        other => panic!("{other:?}"),
    };
    assert!(!r(l.on_message(ok.clone(), udp(5060), t0 + ms(100))));
    assert!(
        sent(&drain(&mut l)).is_empty(),
        "no ACK for a 2xx: the TU sends it"
    );
    assert_eq!(l.client_state(id), Some(ClientState::Accepted));
    assert!(r(l.on_message(ok.clone(), udp(5060), t0 + ms(600))));
    // Another fork's 2xx is new, not a retransmission.
    let fork = response(&inv, 200, Some("t2"));
    assert!(!r(l.on_message(fork, udp(5060), t0 + ms(700))));
    // Provisionals after a 2xx are discarded.
    assert!(matches!(
        l.on_message(response(&inv, 180, Some("t3")), udp(5060), t0 + ms(800)),
        Incoming::Retransmission
    ));
    // Timer M: 64*T1 after the first 2xx.
    let acts = run(&mut l, t0, 60_000);
    assert_eq!(
        others(&acts),
        vec![(32_100, Action::Terminated(TxRef::Client(id)))]
    );
    assert!(matches!(
        l.on_message(ok, udp(5060), t0 + ms(60_000)),
        Incoming::Stray(_)
    ));
}

#[test]
fn responses_match_on_branch_and_cseq_method() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = invite(VIA_A);
    l.send_request(inv.clone(), udp(5060), t0).unwrap();
    let mut wrong_method = response(&inv, 200, Some("t"));
    wrong_method.replace(HeaderName::CSeq, "1 BYE");
    assert!(matches!(
        l.on_message(wrong_method, udp(5060), t0),
        Incoming::Stray(_)
    ));
    let other_branch = response(
        &invite("SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKother"),
        200,
        None,
    );
    assert!(matches!(
        l.on_message(other_branch, udp(5060), t0),
        Incoming::Stray(_)
    ));
    let mut no_via = response(&inv, 200, None);
    no_via.remove(HeaderName::Via);
    assert!(matches!(
        l.on_message(no_via, udp(5060), t0),
        Incoming::Invalid { .. }
    ));
}

// ------------------------------------------------------------ non-INVITE client

#[test]
fn non_invite_client_e_doubles_capped_at_t2_then_f() {
    let mut l = layer();
    let t0 = Instant::now();
    let bye = request("BYE", 2, VIA_A, Some("tt"));
    let id = l.send_request(bye, udp(5060), t0).unwrap();
    let first = sent(&drain(&mut l));
    let acts = run(&mut l, t0, 40_000);
    let times = send_times(&acts);
    assert_eq!(
        times,
        vec![500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500]
    );
    assert!(sends(&acts).iter().all(|(_, b)| *b == first[0]));
    assert_eq!(
        others(&acts),
        vec![
            (32_000, Action::ClientTimeout { id }),
            (32_000, Action::Terminated(TxRef::Client(id)))
        ]
    );
}

#[test]
fn non_invite_client_provisional_makes_e_t2_and_f_still_fires() {
    let mut l = layer();
    let t0 = Instant::now();
    let bye = request("BYE", 2, VIA_A, Some("tt"));
    let id = l.send_request(bye.clone(), udp(5060), t0).unwrap();
    drain(&mut l);
    let early = run(&mut l, t0, 600);
    assert_eq!(send_times(&early), vec![500]);
    let got = l.on_message(response(&bye, 100, None), udp(5060), t0 + ms(600));
    assert!(matches!(got, Incoming::Response { .. }));
    assert_eq!(l.client_state(id), Some(ClientState::Proceeding));
    let acts = run(&mut l, t0, 40_000);
    // The E already armed (1 s interval) fires at 1.5 s; from then on every T2.
    assert_eq!(
        send_times(&acts),
        vec![1500, 5500, 9500, 13_500, 17_500, 21_500, 25_500, 29_500]
    );
    assert_eq!(
        others(&acts),
        vec![
            (32_000, Action::ClientTimeout { id }),
            (32_000, Action::Terminated(TxRef::Client(id)))
        ]
    );
}

#[test]
fn non_invite_client_final_then_k_absorbs_retransmissions() {
    let mut l = layer();
    let t0 = Instant::now();
    let bye = request("BYE", 2, VIA_A, Some("tt"));
    let id = l.send_request(bye.clone(), udp(5060), t0).unwrap();
    drain(&mut l);
    let ok = response(&bye, 200, None);
    assert!(matches!(
        l.on_message(ok.clone(), udp(5060), t0 + ms(100)),
        Incoming::Response { .. }
    ));
    assert_eq!(l.client_state(id), Some(ClientState::Completed));
    assert!(matches!(
        l.on_message(ok.clone(), udp(5060), t0 + ms(200)),
        Incoming::Retransmission
    ));
    assert!(drain(&mut l).is_empty());
    let acts = run(&mut l, t0, 40_000);
    assert!(send_times(&acts).is_empty(), "E stopped by the final");
    assert_eq!(
        others(&acts),
        vec![(5100, Action::Terminated(TxRef::Client(id)))]
    );
}

#[test]
fn non_invite_client_over_tcp() {
    let mut l = layer();
    let t0 = Instant::now();
    let bye = request("BYE", 2, "SIP/2.0/TCP h;branch=z9hG4bKt", Some("tt"));
    let id = l.send_request(bye.clone(), tcp(5060), t0).unwrap();
    drain(&mut l);
    assert_eq!(l.next_deadline(), Some(t0 + ms(32_000)), "only F");
    l.on_message(response(&bye, 200, None), tcp(5060), t0 + ms(100));
    assert_eq!(drain(&mut l), vec![Action::Terminated(TxRef::Client(id))]);

    let opt = request("OPTIONS", 3, "SIP/2.0/TCP h;branch=z9hG4bKu", None);
    let id = l.send_request(opt, tcp(5060), t0).unwrap();
    drain(&mut l);
    let acts = run(&mut l, t0, 40_000);
    assert!(send_times(&acts).is_empty());
    assert_eq!(
        others(&acts),
        vec![
            (32_000, Action::ClientTimeout { id }),
            (32_000, Action::Terminated(TxRef::Client(id)))
        ]
    );
}

#[test]
fn send_request_refuses_what_it_cannot_match() {
    let mut l = layer();
    let t0 = Instant::now();
    let ack = request("ACK", 1, VIA_A, Some("t"));
    assert_eq!(
        l.send_request(ack, udp(1), t0),
        Err(TxError::AckIsNotATransaction)
    );
    let no_branch = invite("SIP/2.0/UDP h");
    assert_eq!(l.send_request(no_branch, udp(1), t0), Err(TxError::BadVia));
    let mut bad_cseq = invite(VIA_A);
    bad_cseq.replace(HeaderName::CSeq, "1 BYE");
    assert_eq!(l.send_request(bad_cseq, udp(1), t0), Err(TxError::BadCSeq));
    let resp = response(&invite(VIA_A), 200, None);
    assert_eq!(l.send_request(resp, udp(1), t0), Err(TxError::NotARequest));
    l.send_request(invite(VIA_A), udp(1), t0).unwrap();
    assert_eq!(
        l.send_request(invite(VIA_A), udp(1), t0),
        Err(TxError::DuplicateBranch)
    );
}

// ------------------------------------------------------------------- CANCEL, client

#[test]
fn cancel_is_held_until_a_provisional_then_sent() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = invite(VIA_A);
    let id = l.send_request(inv.clone(), udp(5060), t0).unwrap();
    drain(&mut l);
    let cid = l.cancel(id, t0 + ms(100)).unwrap();
    assert_eq!(l.cancel(id, t0 + ms(100)), Ok(cid), "idempotent");
    assert_eq!(l.client_state(cid), Some(ClientState::Held));
    assert!(
        sent(&drain(&mut l)).is_empty(),
        "§9.1: not before a provisional"
    );

    l.on_message(response(&inv, 180, Some("tt")), udp(5060), t0 + ms(200));
    let out = sent(&drain(&mut l));
    assert_eq!(out.len(), 1);
    let c = parse(&out[0]);
    assert_eq!(c.method(), Some(&Method::Cancel));
    assert_eq!(c.request_uri(), inv.request_uri());
    assert_eq!(c.header(HeaderName::Via), Some(VIA_A));
    assert_eq!(c.vias().count(), 1);
    assert_eq!(c.header(HeaderName::To), inv.header(HeaderName::To));
    assert_eq!(c.header(HeaderName::From), inv.header(HeaderName::From));
    assert_eq!(c.call_id(), inv.call_id());
    assert_eq!(c.header(HeaderName::CSeq), Some("1 CANCEL"));
    assert_eq!(c.header_lines(HeaderName::Route).count(), 2);
    assert_eq!(l.client_state(cid), Some(ClientState::Trying));

    // The CANCEL retransmits as a non-INVITE transaction; its 200 goes to it.
    let acts = run(&mut l, t0, 800);
    assert_eq!(send_times(&acts), vec![700]);
    let c200 = response(&c, 200, Some("tt"));
    match l.on_message(c200, udp(5060), t0 + ms(800)) {
        Incoming::Response { id: r, .. } => assert_eq!(r, cid),
        other => panic!("{other:?}"),
    }
    // The 487 goes to the INVITE, which ACKs it.
    match l.on_message(response(&inv, 487, Some("tt")), udp(5060), t0 + ms(900)) {
        Incoming::Response { id: r, msg, .. } => {
            assert_eq!(r, id);
            assert_eq!(msg.status(), Some(487));
        }
        other => panic!("{other:?}"),
    }
    let acks = sent(&drain(&mut l));
    assert_eq!(parse(&acks[0]).method(), Some(&Method::Ack));
    let acts = run(&mut l, t0, 60_000);
    let mut ends = others(&acts);
    ends.sort_by_key(|(t, _)| *t);
    assert_eq!(
        ends,
        vec![
            (5800, Action::Terminated(TxRef::Client(cid))),
            (32_900, Action::Terminated(TxRef::Client(id)))
        ]
    );
}

#[test]
fn held_cancel_is_dropped_when_the_final_comes_first() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = invite(VIA_A);
    let id = l.send_request(inv.clone(), udp(5060), t0).unwrap();
    let cid = l.cancel(id, t0).unwrap();
    drain(&mut l);
    l.on_message(response(&inv, 486, Some("x")), udp(5060), t0 + ms(50));
    let acts = drain(&mut l);
    assert_eq!(
        sent(&acts).len(),
        1,
        "only the ACK; the CANCEL is never sent"
    );
    assert!(acts.contains(&Action::Terminated(TxRef::Client(cid))));
    assert_eq!(l.client_state(cid), None);
    assert_eq!(l.cancel(id, t0), Ok(cid));

    // A held CANCEL also goes when timer B ends its INVITE.
    let inv2 = invite("SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKb2");
    let id2 = l.send_request(inv2, udp(5060), t0).unwrap();
    let cid2 = l.cancel(id2, t0).unwrap();
    let acts = run(&mut l, t0, 40_000);
    let ends = others(&acts);
    assert!(ends.contains(&(32_000, Action::ClientTimeout { id: id2 })));
    assert!(ends.contains(&(32_000, Action::Terminated(TxRef::Client(cid2)))));
    assert!(!ends.contains(&(32_000, Action::ClientTimeout { id: cid2 })));
}

#[test]
fn cancelled_invite_without_final_ends_after_64_t1() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = invite(VIA_A);
    let id = l.send_request(inv.clone(), udp(5060), t0).unwrap();
    l.on_message(response(&inv, 180, Some("t")), udp(5060), t0 + ms(100));
    let cid = l.cancel(id, t0 + ms(1000)).unwrap();
    let cancel = l.client_request(cid).unwrap().clone();
    drain(&mut l);
    l.on_message(response(&cancel, 200, Some("t")), udp(5060), t0 + ms(1100));
    let acts = run(&mut l, t0, 60_000);
    assert!(others(&acts).contains(&(33_000, Action::ClientTimeout { id })));
    assert!(others(&acts).contains(&(33_000, Action::Terminated(TxRef::Client(id)))));
}

#[test]
fn cancel_refusals() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = invite(VIA_A);
    let id = l.send_request(inv.clone(), udp(5060), t0).unwrap();
    l.on_message(response(&inv, 200, Some("t")), udp(5060), t0);
    assert_eq!(l.cancel(id, t0), Err(TxError::AlreadyFinal));
    let bye = request("BYE", 2, "SIP/2.0/UDP h;branch=z9hG4bKbye", Some("t"));
    let bid = l.send_request(bye, udp(5060), t0).unwrap();
    assert_eq!(l.cancel(bid, t0), Err(TxError::NotInvite));
    assert_eq!(
        l.cancel(ClientTxId(12345), t0),
        Err(TxError::UnknownTransaction)
    );
}

// ---------------------------------------------------------------- INVITE server

#[test]
fn invite_server_sends_100_at_once_and_answers_retransmissions_with_last_response() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = invite(VIA_A);
    let id = new_server(&mut l, inv.clone(), udp(5070), t0);
    let trying = sent(&drain(&mut l));
    assert_eq!(trying.len(), 1);
    let t = parse(&trying[0]);
    assert_eq!(t.status(), Some(100));
    assert_eq!(t.to_header().unwrap().tag(), None);
    assert_eq!(t.header(HeaderName::Via), Some(VIA_A));
    assert_eq!(l.server_state(id), Some(ServerState::Proceeding));
    assert_eq!(
        l.server_request(id).and_then(|r| r.call_id()),
        inv.call_id(),
        "a copy is kept for building responses"
    );

    assert!(matches!(
        l.on_message(inv.clone(), udp(5070), t0 + ms(500)),
        Incoming::Retransmission
    ));
    assert_eq!(sent(&drain(&mut l)), trying);

    let ringing = response(&inv, 180, Some("s1"));
    l.respond(id, &ringing, t0 + ms(600)).unwrap();
    let r180 = sent(&drain(&mut l));
    l.on_message(inv.clone(), udp(5070), t0 + ms(1500));
    assert_eq!(sent(&drain(&mut l)), r180);

    l.respond(id, &response(&inv, 486, Some("s1")), t0 + ms(2000))
        .unwrap();
    let r486 = sent(&drain(&mut l));
    assert!(l.server_request(id).is_none(), "released with the final");
    l.on_message(inv, udp(5070), t0 + ms(2100));
    assert_eq!(sent(&drain(&mut l)), r486);
}

#[test]
fn invite_server_g_doubles_to_t2_and_h_reports_no_ack() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = invite(VIA_A);
    let id = new_server(&mut l, inv.clone(), udp(5070), t0);
    drain(&mut l);
    l.respond(id, &response(&inv, 603, Some("s")), t0).unwrap();
    let first = sent(&drain(&mut l));
    let acts = run(&mut l, t0, 40_000);
    assert_eq!(
        send_times(&acts),
        vec![500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500]
    );
    assert!(sends(&acts).iter().all(|(_, b)| *b == first[0]));
    assert_eq!(
        others(&acts),
        vec![
            (32_000, Action::ServerNoAck { id }),
            (32_000, Action::Terminated(TxRef::Server(id)))
        ]
    );
    assert_eq!(
        l.respond(id, &response(&inv, 500, None), t0 + ms(40_000)),
        Err(TxError::UnknownTransaction)
    );
}

#[test]
fn invite_server_ack_confirms_then_i_terminates() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = invite(VIA_A);
    let id = new_server(&mut l, inv.clone(), udp(5070), t0);
    drain(&mut l);
    l.respond(id, &response(&inv, 486, Some("s")), t0).unwrap();
    assert_eq!(
        l.respond(id, &response(&inv, 200, Some("s")), t0),
        Err(TxError::FinalAlreadySent)
    );
    drain(&mut l);
    let acts = run(&mut l, t0, 1000);
    assert_eq!(send_times(&acts), vec![500]);
    // The hop-by-hop ACK carries the INVITE's branch.
    let ack = request("ACK", 1, VIA_A, Some("s"));
    assert!(matches!(
        l.on_message(ack.clone(), udp(5070), t0 + ms(1000)),
        Incoming::AckAbsorbed
    ));
    assert_eq!(l.server_state(id), Some(ServerState::Confirmed));
    assert!(matches!(
        l.on_message(ack.clone(), udp(5070), t0 + ms(1100)),
        Incoming::AckAbsorbed
    ));
    assert!(matches!(
        l.on_message(inv, udp(5070), t0 + ms(1200)),
        Incoming::Retransmission
    ));
    assert!(drain(&mut l).is_empty(), "Confirmed resends nothing");
    let acts = run(&mut l, t0, 60_000);
    assert!(send_times(&acts).is_empty(), "G stopped by the ACK");
    assert_eq!(
        others(&acts),
        vec![(6000, Action::Terminated(TxRef::Server(id)))]
    );
}

#[test]
fn invite_server_retransmits_2xx_until_acked() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = invite(VIA_A);
    let id = new_server(&mut l, inv.clone(), udp(5070), t0);
    drain(&mut l);
    l.respond(id, &response(&inv, 200, Some("s")), t0).unwrap();
    let ok = sent(&drain(&mut l));
    assert_eq!(l.server_state(id), Some(ServerState::Accepted));
    let acts = run(&mut l, t0, 12_000);
    assert_eq!(send_times(&acts), vec![500, 1500, 3500, 7500, 11_500]);
    assert!(sends(&acts).iter().all(|(_, b)| *b == ok[0]));
    // A retransmitted INVITE before the ACK gets the 2xx again.
    l.on_message(inv.clone(), udp(5070), t0 + ms(12_000));
    assert_eq!(sent(&drain(&mut l)), ok);

    // The ACK for a 2xx has its own branch; it is matched by Call-ID, CSeq, To tag.
    let ack = request(
        "ACK",
        1,
        "SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKack",
        Some("s"),
    );
    match l.on_message(ack.clone(), udp(5070), t0 + ms(12_100)) {
        Incoming::AckFor2xx { invite, msg } => {
            assert_eq!(invite, Some(id));
            assert_eq!(msg.method(), Some(&Method::Ack));
        }
        other => panic!("{other:?}"),
    }
    l.on_message(inv, udp(5070), t0 + ms(12_200));
    assert!(
        drain(&mut l).is_empty(),
        "after the ACK, INVITE retransmissions are absorbed"
    );
    let acts = run(&mut l, t0, 60_000);
    assert!(send_times(&acts).is_empty());
    assert_eq!(
        others(&acts),
        vec![(32_000, Action::Terminated(TxRef::Server(id)))],
        "timer L, no report"
    );
    // An ACK after L still reaches the TU.
    assert!(matches!(
        l.on_message(ack, udp(5070), t0 + ms(60_000)),
        Incoming::AckFor2xx { invite: None, .. }
    ));
}

#[test]
fn invite_server_2xx_never_acked_reports_at_timer_l() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = invite(VIA_A);
    let id = new_server(&mut l, inv.clone(), udp(5070), t0);
    l.respond(id, &response(&inv, 200, Some("s")), t0).unwrap();
    drain(&mut l);
    let acts = run(&mut l, t0, 60_000);
    assert_eq!(
        send_times(&acts),
        vec![500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500]
    );
    assert_eq!(
        others(&acts),
        vec![
            (32_000, Action::ServerNoAck { id }),
            (32_000, Action::Terminated(TxRef::Server(id)))
        ]
    );
}

#[test]
fn invite_server_ack_with_wrong_tag_does_not_stop_the_2xx() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = invite(VIA_A);
    let id = new_server(&mut l, inv.clone(), udp(5070), t0);
    l.respond(id, &response(&inv, 200, Some("s")), t0).unwrap();
    drain(&mut l);
    let ack = request("ACK", 1, "SIP/2.0/UDP h;branch=z9hG4bKx", Some("other"));
    assert!(matches!(
        l.on_message(ack, udp(5070), t0),
        Incoming::AckFor2xx { invite: None, .. }
    ));
    assert_eq!(send_times(&run(&mut l, t0, 600)), vec![500]);
}

#[test]
fn invite_server_over_tcp() {
    let mut l = layer();
    let t0 = Instant::now();
    let via = "SIP/2.0/TCP 192.0.2.1:5070;branch=z9hG4bKt1";
    let inv = invite(via);
    let id = new_server(&mut l, inv.clone(), tcp(40000), t0);
    let trying = drain(&mut l);
    assert_eq!(sent(&trying).len(), 1, "100 Trying over TCP too");
    assert!(matches!(&trying[0], Action::Send { peer, .. } if *peer == tcp(40000)));
    l.respond(id, &response(&inv, 486, Some("s")), t0).unwrap();
    drain(&mut l);
    // No G; H still guards the ACK.
    assert_eq!(l.next_deadline(), Some(t0 + ms(32_000)));
    l.on_message(request("ACK", 1, via, Some("s")), tcp(40000), t0 + ms(10));
    assert_eq!(
        drain(&mut l),
        vec![Action::Terminated(TxRef::Server(id))],
        "I = 0"
    );

    // H over TCP.
    let inv2 = invite("SIP/2.0/TCP 192.0.2.1:5070;branch=z9hG4bKt2");
    let id2 = new_server(&mut l, inv2.clone(), tcp(40000), t0);
    l.respond(id2, &response(&inv2, 480, Some("s")), t0)
        .unwrap();
    drain(&mut l);
    let acts = run(&mut l, t0, 40_000);
    assert!(send_times(&acts).is_empty());
    assert_eq!(
        others(&acts),
        vec![
            (32_000, Action::ServerNoAck { id: id2 }),
            (32_000, Action::Terminated(TxRef::Server(id2)))
        ]
    );

    // 2xx over TCP: no retransmission, but timer L still reports a missing ACK.
    let inv3 = invite("SIP/2.0/TCP 192.0.2.1:5070;branch=z9hG4bKt3");
    let id3 = new_server(&mut l, inv3.clone(), tcp(40000), t0);
    l.respond(id3, &response(&inv3, 200, Some("s")), t0)
        .unwrap();
    drain(&mut l);
    let acts = run(&mut l, t0, 40_000);
    assert!(send_times(&acts).is_empty());
    assert_eq!(
        others(&acts),
        vec![
            (32_000, Action::ServerNoAck { id: id3 }),
            (32_000, Action::Terminated(TxRef::Server(id3)))
        ]
    );
}

#[test]
fn server_responses_go_where_18_2_2_says() {
    let mut l = layer();
    let t0 = Instant::now();
    // No rport: source address, Via port.
    new_server(
        &mut l,
        invite("SIP/2.0/UDP 192.0.2.1:5080;branch=z9hG4bKn"),
        udp(40000),
        t0,
    );
    match &drain(&mut l)[0] {
        Action::Send { peer, .. } => assert_eq!(peer.addr, ([192, 0, 2, 1], 5080).into()),
        other => panic!("{other:?}"),
    }
    // No port at all: 5060.
    new_server(
        &mut l,
        invite("SIP/2.0/UDP a.example;branch=z9hG4bKm"),
        udp(40000),
        t0,
    );
    match &drain(&mut l)[0] {
        Action::Send { peer, .. } => assert_eq!(peer.addr, ([192, 0, 2, 1], 5060).into()),
        other => panic!("{other:?}"),
    }
    // rport: the source port.
    new_server(&mut l, invite(VIA_A), udp(40000), t0);
    match &drain(&mut l)[0] {
        Action::Send { peer, .. } => assert_eq!(*peer, udp(40000)),
        other => panic!("{other:?}"),
    }
    // force_rport.
    let mut l = TransactionLayer::with_config(LayerConfig {
        force_rport: true,
        ..LayerConfig::default()
    });
    new_server(
        &mut l,
        invite("SIP/2.0/UDP 192.0.2.1:5080;branch=z9hG4bKn"),
        udp(40000),
        t0,
    );
    match &drain(&mut l)[0] {
        Action::Send { peer, .. } => assert_eq!(*peer, udp(40000)),
        other => panic!("{other:?}"),
    }
}

// ------------------------------------------------------------ non-INVITE server

#[test]
fn non_invite_server_answers_retransmissions_and_j_ends_it() {
    let mut l = layer();
    let t0 = Instant::now();
    let bye = request("BYE", 2, VIA_A, Some("s"));
    let id = new_server(&mut l, bye.clone(), udp(5070), t0);
    assert!(drain(&mut l).is_empty(), "no automatic 100 for non-INVITE");
    assert_eq!(l.server_state(id), Some(ServerState::Trying));
    assert!(matches!(
        l.on_message(bye.clone(), udp(5070), t0 + ms(500)),
        Incoming::Retransmission
    ));
    assert!(drain(&mut l).is_empty(), "Trying: nothing to resend");

    l.respond(id, &response(&bye, 100, None), t0 + ms(600))
        .unwrap();
    let prov = sent(&drain(&mut l));
    l.on_message(bye.clone(), udp(5070), t0 + ms(1500));
    assert_eq!(sent(&drain(&mut l)), prov);

    l.respond(id, &response(&bye, 200, None), t0 + ms(2000))
        .unwrap();
    let fin = sent(&drain(&mut l));
    assert_eq!(l.server_state(id), Some(ServerState::Completed));
    l.on_message(bye.clone(), udp(5070), t0 + ms(3500));
    assert_eq!(sent(&drain(&mut l)), fin);
    assert_eq!(
        l.respond(id, &response(&bye, 500, None), t0 + ms(3600)),
        Err(TxError::FinalAlreadySent)
    );
    let acts = run(&mut l, t0, 60_000);
    assert!(
        send_times(&acts).is_empty(),
        "responses are not retransmitted on their own"
    );
    assert_eq!(
        others(&acts),
        vec![(34_000, Action::Terminated(TxRef::Server(id)))]
    );
    // After J the same request is new again.
    let again = new_server(&mut l, bye, udp(5070), t0 + ms(60_000));
    assert_ne!(again, id);
}

#[test]
fn non_invite_server_over_tcp_ends_with_its_final() {
    let mut l = layer();
    let t0 = Instant::now();
    let opt = request("OPTIONS", 5, "SIP/2.0/TCP h;branch=z9hG4bKo", None);
    let id = new_server(&mut l, opt.clone(), tcp(40000), t0);
    l.respond(id, &response(&opt, 200, Some("s")), t0).unwrap();
    let acts = drain(&mut l);
    assert_eq!(sent(&acts).len(), 1);
    assert_eq!(acts.last(), Some(&Action::Terminated(TxRef::Server(id))));
    assert!(l.is_empty());
}

#[test]
fn server_matching_needs_branch_sent_by_and_method() {
    let mut l = layer();
    let t0 = Instant::now();
    let id = new_server(&mut l, request("OPTIONS", 1, VIA_A, None), udp(5070), t0);
    // Same branch, other sent-by: a different transaction.
    let other_host = request(
        "OPTIONS",
        1,
        "SIP/2.0/UDP 192.0.2.9:5070;branch=z9hG4bKaaa",
        None,
    );
    assert_ne!(new_server(&mut l, other_host, udp(5070), t0), id);
    // Same branch and sent-by, other method: a different transaction.
    let other_method = request("INFO", 1, VIA_A, None);
    assert_ne!(new_server(&mut l, other_method, udp(5070), t0), id);
    // Host names compare case-insensitively.
    let named = "SIP/2.0/UDP Host.Example:5070;branch=z9hG4bKnm";
    let nid = new_server(&mut l, request("OPTIONS", 1, named, None), udp(5070), t0);
    let lower = "SIP/2.0/UDP host.example:5070;branch=z9hG4bKnm";
    assert!(matches!(
        l.on_message(request("OPTIONS", 1, lower, None), udp(5070), t0),
        Incoming::Retransmission
    ));
    assert_eq!(l.counts().server_non_invite, 4);
    assert_eq!(l.server_state(nid), Some(ServerState::Trying));
}

// ------------------------------------------------------------- CANCEL, server

#[test]
fn cancel_matches_its_invite_and_gets_its_own_transaction() {
    let mut l = layer();
    let t0 = Instant::now();
    let inv = invite(VIA_A);
    let iid = new_server(&mut l, inv.clone(), udp(5070), t0);
    drain(&mut l);
    let cancel = request("CANCEL", 1, VIA_A, None);
    let cid = match l.on_message(cancel.clone(), udp(5070), t0 + ms(100)) {
        Incoming::Cancel { id, invite, msg } => {
            assert_eq!(invite, Some(iid));
            assert_eq!(msg.method(), Some(&Method::Cancel));
            assert_ne!(id, iid);
            id
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(l.server_state(iid), Some(ServerState::Proceeding));
    l.respond(cid, &response(&cancel, 200, Some("s")), t0 + ms(110))
        .unwrap();
    l.respond(iid, &response(&inv, 487, Some("s")), t0 + ms(110))
        .unwrap();
    assert_eq!(sent(&drain(&mut l)).len(), 2);
    // A retransmitted CANCEL gets its 200 again, not a new transaction.
    assert!(matches!(
        l.on_message(cancel, udp(5070), t0 + ms(200)),
        Incoming::Retransmission
    ));
    assert_eq!(
        parse(&sent(&drain(&mut l))[0]).header(HeaderName::CSeq),
        Some("1 CANCEL")
    );
    assert!(matches!(
        l.on_message(request("ACK", 1, VIA_A, Some("s")), udp(5070), t0 + ms(300)),
        Incoming::AckAbsorbed
    ));
    assert_eq!(l.server_state(iid), Some(ServerState::Confirmed));
}

#[test]
fn cancel_without_matching_invite() {
    let mut l = layer();
    let t0 = Instant::now();
    new_server(&mut l, invite(VIA_A), udp(5070), t0);
    for via in [
        "SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKzzz",
        "SIP/2.0/UDP 192.0.2.7:5070;branch=z9hG4bKaaa",
    ] {
        match l.on_message(request("CANCEL", 1, via, None), udp(5070), t0) {
            Incoming::Cancel { invite, .. } => assert_eq!(invite, None),
            other => panic!("{other:?}"),
        }
    }
}

// ------------------------------------------------------------------- RFC 2543

#[test]
fn rfc2543_requests_match_without_a_magic_cookie() {
    let mut l = layer();
    let t0 = Instant::now();
    let via = "SIP/2.0/UDP 192.0.2.5:5060;branch=old1";
    let inv = invite(via);
    let id = new_server(&mut l, inv.clone(), udp(5060), t0);
    drain(&mut l);
    // An identical retransmission matches.
    assert!(matches!(
        l.on_message(inv.clone(), udp(5060), t0 + ms(500)),
        Incoming::Retransmission
    ));
    assert_eq!(sent(&drain(&mut l)).len(), 1);
    // Without any branch too.
    let bare = invite("SIP/2.0/UDP 192.0.2.5:5060");
    let bid = new_server(&mut l, bare.clone(), udp(5060), t0);
    assert_ne!(bid, id);
    assert!(matches!(
        l.on_message(bare, udp(5060), t0),
        Incoming::Retransmission
    ));
    // Another CSeq is another transaction.
    let next = request("INVITE", 2, via, None);
    assert!(matches!(
        l.on_message(next, udp(5060), t0),
        Incoming::NewRequest { .. }
    ));
    // CANCEL matches the INVITE by R-URI, tags, Call-ID, CSeq number, top Via.
    let cancel = request("CANCEL", 1, via, None);
    assert!(matches!(
        l.on_message(cancel, udp(5060), t0),
        Incoming::Cancel { invite: Some(i), .. } if i == id
    ));
    // The ACK for a non-2xx matches when its To tag is the final's.
    l.respond(id, &response(&inv, 486, Some("s9")), t0).unwrap();
    drain(&mut l);
    assert!(matches!(
        l.on_message(request("ACK", 1, via, Some("wrong")), udp(5060), t0),
        Incoming::AckFor2xx { invite: None, .. }
    ));
    assert!(matches!(
        l.on_message(request("ACK", 1, via, Some("s9")), udp(5060), t0),
        Incoming::AckAbsorbed
    ));
    assert_eq!(l.server_state(id), Some(ServerState::Confirmed));
    // A different top Via is a different transaction.
    let moved = invite("SIP/2.0/UDP 192.0.2.5:5061;branch=old1");
    assert!(matches!(
        l.on_message(moved, udp(5060), t0),
        Incoming::NewRequest { .. }
    ));
}

// ------------------------------------------------------------ invalid, overload

#[test]
fn unmatchable_requests_are_reported_not_answered() {
    let mut l = layer();
    let t0 = Instant::now();
    let mut no_via = invite(VIA_A);
    no_via.remove(HeaderName::Via);
    let mut bad_cseq = invite(VIA_A);
    bad_cseq.replace(HeaderName::CSeq, "x INVITE");
    let mut mismatch = invite(VIA_A);
    mismatch.replace(HeaderName::CSeq, "1 BYE");
    let mut no_call_id = invite(VIA_A);
    no_call_id.remove(HeaderName::CallId);
    let mut bad_via = invite(VIA_A);
    bad_via.replace(HeaderName::Via, "garbage");
    for m in [no_via, bad_cseq, mismatch, no_call_id, bad_via] {
        match l.on_message(m, udp(5070), t0) {
            Incoming::Invalid { reason, .. } => assert!(!reason.is_empty()),
            other => panic!("{other:?}"),
        }
    }
    assert!(drain(&mut l).is_empty());
    assert!(l.is_empty());
}

#[test]
fn overload_is_reported_without_creating_state() {
    let mut l = TransactionLayer::with_config(LayerConfig {
        max_transactions: 2,
        ..LayerConfig::default()
    });
    let t0 = Instant::now();
    let inv = invite(VIA_A);
    let iid = new_server(&mut l, inv.clone(), udp(5070), t0);
    l.send_request(
        request("OPTIONS", 1, "SIP/2.0/UDP h;branch=z9hG4bKc", None),
        udp(5060),
        t0,
    )
    .unwrap();
    drain(&mut l);
    assert!(l.is_full());
    let over = request(
        "OPTIONS",
        1,
        "SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKn",
        None,
    );
    let Incoming::Overloaded(m) = l.on_message(over, udp(5070), t0) else {
        panic!("expected overload")
    };
    assert!(drain(&mut l).is_empty());
    assert_eq!(l.len(), 2);
    // The TU answers 503 statelessly.
    l.respond_stateless(&m, &udp(5070), &m.make_response(503, "Service Unavailable"));
    assert_eq!(parse(&sent(&drain(&mut l))[0]).status(), Some(503));
    // Retransmissions of live transactions and a CANCEL for a live INVITE still pass.
    assert!(matches!(
        l.on_message(inv, udp(5070), t0),
        Incoming::Retransmission
    ));
    assert!(matches!(
        l.on_message(request("CANCEL", 1, VIA_A, None), udp(5070), t0),
        Incoming::Cancel { invite: Some(i), .. } if i == iid
    ));
}

#[test]
fn transport_errors_end_transactions() {
    let mut l = layer();
    let t0 = Instant::now();
    let id = l.send_request(invite(VIA_A), tcp(5060), t0).unwrap();
    let tx = match &drain(&mut l)[0] {
        Action::Send { tx, .. } => tx.unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(tx, TxRef::Client(id));
    l.on_transport_error(tx);
    assert_eq!(
        drain(&mut l),
        vec![
            Action::ClientTransportError { id },
            Action::Terminated(TxRef::Client(id))
        ]
    );
    let sid = new_server(&mut l, invite(VIA_A), tcp(40000), t0);
    drain(&mut l);
    l.on_transport_error(TxRef::Server(sid));
    assert_eq!(drain(&mut l), vec![Action::Terminated(TxRef::Server(sid))]);
    assert!(l.is_empty());
    assert_eq!(l.next_deadline(), None);
}

#[test]
fn stateless_sends_carry_no_transaction() {
    let mut l = layer();
    let ack = request("ACK", 1, VIA_A, Some("t"));
    l.send_stateless(&ack, udp(5060));
    match &drain(&mut l)[0] {
        Action::Send { peer, data, tx } => {
            assert_eq!(*peer, udp(5060));
            assert_eq!(*tx, None);
            assert_eq!(parse(data).method(), Some(&Method::Ack));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn branches_are_unique_and_rfc3261() {
    let mut l = layer();
    let a = l.new_branch();
    let b = l.new_branch();
    assert!(a.starts_with("z9hG4bK") && a.len() == 23);
    assert_ne!(a, b);
}

#[test]
fn tiny_timer_values_are_clamped() {
    let l = TransactionLayer::new(TimerConfig {
        t1: Duration::ZERO,
        ..TimerConfig::default()
    });
    assert_eq!(l.config().timers.t1, ms(1));
}

// ---------------------------------------------------------------------- scale

#[test]
fn thousands_of_transactions_all_end_and_leave_nothing_behind() {
    let mut l = layer();
    let t0 = Instant::now();
    let n = 5000u32;
    for i in 0..n {
        let via = format!("SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKs{i}");
        let inv = request("INVITE", i + 1, &via, None);
        let id = new_server(&mut l, inv.clone(), udp(5070), t0);
        l.respond(id, &response(&inv, 200, Some("s")), t0 + ms(1))
            .unwrap();
        let cvia = format!("SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKc{i}");
        let creq = request("INVITE", i + 1, &cvia, None);
        let cid = l.send_request(creq.clone(), udp(5060), t0).unwrap();
        l.on_message(response(&creq, 200, Some("b")), udp(5060), t0 + ms(2));
        assert_eq!(l.client_state(cid), Some(ClientState::Accepted));
        let ack = request(
            "ACK",
            i + 1,
            &format!("SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bKa{i}"),
            Some("s"),
        );
        assert!(matches!(
            l.on_message(ack, udp(5070), t0 + ms(3)),
            Incoming::AckFor2xx { invite: Some(x), .. } if x == id
        ));
    }
    drain(&mut l);
    assert_eq!(
        l.counts(),
        TxCounts {
            server_invite: n as usize,
            server_non_invite: 0,
            client_invite: n as usize,
            client_non_invite: 0,
        }
    );
    // Orphaned timer entries were compacted away along the way.
    assert!(l.timer_entries() < 4 * n as usize);
    let acts = run(&mut l, t0, 100_000);
    assert!(send_times(&acts).is_empty());
    assert_eq!(others(&acts).len(), 2 * n as usize);
    assert!(l.is_empty());
    assert_eq!(l.timer_entries(), 0);
    assert_eq!(l.server_accepted.len(), 0);
    assert_eq!(l.server_branches.len(), 0);
    assert_eq!(l.client_branches.len(), 0);
}

#[test]
fn requests_crafted_onto_one_index_slot_are_refused() {
    let mut l = layer();
    let t0 = Instant::now();
    // RFC 2543 INVITEs identical but for the To tag share one index key.
    let via = "SIP/2.0/UDP 192.0.2.5:5060";
    for i in 0..8 {
        let tag = format!("x{i}");
        assert!(matches!(
            l.on_message(request("INVITE", 1, via, Some(&tag)), udp(5060), t0),
            Incoming::NewRequest { .. }
        ));
    }
    assert!(matches!(
        l.on_message(request("INVITE", 1, via, Some("x8")), udp(5060), t0),
        Incoming::Overloaded(_)
    ));
    // Other keys are unaffected.
    assert!(matches!(
        l.on_message(request("INVITE", 2, via, None), udp(5060), t0),
        Incoming::NewRequest { .. }
    ));
}
