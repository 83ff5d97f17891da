//! Cost of the transaction layer per call: both legs of a B2BUA call (A-leg INVITE
//! server transaction with 100/180/200 and the 2xx ACK, B-leg INVITE client
//! transaction, BYE on both legs), with a fake clock advancing 2 ms per call so
//! timers fire and the layer holds a realistic population of live transactions
//! (about 16,000 calls' worth in their 32 s wait states). Parsing the incoming
//! messages is excluded; serializing outgoing ones is included, and so is the TU
//! side's `make_response` for the three answers it sends.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use sipveil::sip::SipMessage;
use sipveil::transaction::{Incoming, Peer, TimerConfig, TransactionLayer, Transport};

fn peer(port: u16) -> Peer {
    Peer {
        addr: SocketAddr::from(([192, 0, 2, 1], port)),
        transport: Transport::Udp,
        iface: 0,
        conn: None,
    }
}

fn parse(s: String) -> SipMessage {
    SipMessage::parse(s.replace('\n', "\r\n").as_bytes()).expect("bench message parses")
}

fn req(method: &str, seq: u32, via: &str, call: &str, to_tag: &str) -> SipMessage {
    parse(format!(
        "{method} sip:bob@b.example SIP/2.0\nVia: {via}\nMax-Forwards: 70\n\
From: \"Alice\" <sip:alice@a.example>;tag=ft-{call}\nTo: <sip:bob@b.example>{to_tag}\n\
Call-ID: {call}\nCSeq: {seq} {method}\nContact: <sip:alice@192.0.2.1:5070>\n\
User-Agent: bench\nContent-Length: 0\n\n"
    ))
}

/// Everything one call feeds the layer, parsed up front.
struct Call {
    a_invite: SipMessage,
    a_ack: SipMessage,
    a_bye: SipMessage,
    b_invite: SipMessage,
    b_180: SipMessage,
    b_200: SipMessage,
    b_bye: SipMessage,
    b_bye_200: SipMessage,
}

fn call(n: u64) -> Call {
    let a_call = format!("a{n}@a.example");
    let b_call = format!("b{n}@sbc");
    let a_via = |k: &str| format!("SIP/2.0/UDP 192.0.2.1:5070;branch=z9hG4bK{k}{n};rport");
    let b_via = |k: &str| format!("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK{k}{n}");
    let a_invite = req("INVITE", 1, &a_via("ai"), &a_call, "");
    let a_ack = req("ACK", 1, &a_via("aa"), &a_call, ";tag=sa");
    let a_bye = req("BYE", 2, &a_via("ab"), &a_call, ";tag=sa");
    let b_invite = req("INVITE", 1, &b_via("bi"), &b_call, "");
    let mut b_180 = b_invite.make_response(180, "Ringing");
    b_180.set_to_tag("tb");
    let mut b_200 = b_invite.make_response(200, "OK");
    b_200.set_to_tag("tb");
    let b_bye = req("BYE", 2, &b_via("bb"), &b_call, ";tag=tb");
    let b_bye_200 = b_bye.make_response(200, "OK");
    Call {
        a_invite,
        a_ack,
        a_bye,
        b_invite,
        b_180,
        b_200,
        b_bye,
        b_bye_200,
    }
}

fn run_call(l: &mut TransactionLayer, c: Call, now: Instant) -> usize {
    let (a, b) = (peer(5070), peer(5060));
    let Incoming::NewRequest { id: a_inv, msg } = l.on_message(c.a_invite, a.clone(), now) else {
        panic!("A INVITE")
    };
    let Ok(b_inv) = l.send_request(c.b_invite, b.clone(), now) else {
        panic!("B INVITE")
    };
    l.on_message(c.b_180, b.clone(), now);
    let mut r180 = msg.make_response(180, "Ringing");
    r180.set_to_tag("sa");
    let _ = l.respond(a_inv, &r180, now);
    l.on_message(c.b_200, b.clone(), now);
    let mut r200 = msg.make_response(200, "OK");
    r200.set_to_tag("sa");
    let _ = l.respond(a_inv, &r200, now);
    l.on_message(c.a_ack, a.clone(), now);
    let Incoming::NewRequest {
        id: a_bye,
        msg: bye,
    } = l.on_message(c.a_bye, a.clone(), now)
    else {
        panic!("A BYE")
    };
    let _ = l.send_request(c.b_bye, b.clone(), now);
    l.on_message(c.b_bye_200, b, now);
    let _ = l.respond(a_bye, &bye.make_response(200, "OK"), now);
    l.poll(now);
    black_box(b_inv);
    l.drain_actions().count()
}

fn bench(c: &mut Criterion) {
    let mut l = TransactionLayer::new(TimerConfig::default());
    let t0 = Instant::now();
    let mut n = 0u64;
    // Each call's messages are parsed just before it runs (as in the shell, and so
    // the allocator sees the real pattern); only `run_call` is timed.
    c.bench_function("transaction layer, one B2BUA call (both legs)", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let msgs = call(n);
                let now = t0 + Duration::from_millis(2 * n);
                let start = Instant::now();
                black_box(run_call(&mut l, msgs, now));
                spent += start.elapsed();
            }
            spent
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
