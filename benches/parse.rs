//! Parser benchmark: sipveil's SIP message layer against rsip 0.4 (the baseline of
//! DESIGN.md "Dependencies"), in the same run, on the same bytes: a typical INVITE
//! with an SDP offer (892 bytes) and the 200 OK that answers it (751 bytes).
//!
//! `cargo bench --bench parse`; results and the ratio are kept in benches/RESULTS.md.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sipveil::sip::SipMessage;

const INVITE: &[u8] = include_bytes!("../fixtures/sip/valid/typical-invite.sip");
const OK200: &[u8] = include_bytes!("../fixtures/sip/valid/typical-200.sip");

fn bench_message(c: &mut Criterion, label: &str, raw: &'static [u8]) {
    // Both parsers must accept the message, or the comparison means nothing.
    let ours = SipMessage::parse(raw).expect("sipveil parses the benchmark message");
    ours.validate().expect("benchmark message is valid");
    let theirs = rsip::SipMessage::try_from(raw).expect("rsip parses the benchmark message");
    assert!(!theirs.to_string().is_empty());

    // Each routine returns the parsed message, so both pay for dropping it.
    let mut g = c.benchmark_group(format!("parse/{label}"));
    g.throughput(Throughput::Bytes(raw.len() as u64));
    g.bench_function("sipveil", |b| b.iter(|| SipMessage::parse(black_box(raw))));
    g.bench_function("rsip", |b| {
        b.iter(|| rsip::SipMessage::try_from(black_box(raw)))
    });
    g.finish();

    let mut g = c.benchmark_group(format!("parse+serialize/{label}"));
    g.throughput(Throughput::Bytes(raw.len() as u64));
    g.bench_function("sipveil", |b| {
        b.iter(|| {
            let m = SipMessage::parse(black_box(raw)).map_err(|e| e.reason)?;
            Ok::<_, String>(m.to_bytes().len())
        })
    });
    g.bench_function("rsip", |b| {
        b.iter(|| {
            let m = rsip::SipMessage::try_from(black_box(raw)).map_err(|e| e.to_string())?;
            Ok::<_, String>(m.to_string().len())
        })
    });
    g.finish();

    // What the SBC does with every incoming message: parse, check, read the
    // headers it routes by. (Reading typed headers in rsip is a separate cost
    // not measured here.)
    let mut g = c.benchmark_group(format!("parse+validate+read/{label}"));
    g.throughput(Throughput::Bytes(raw.len() as u64));
    g.bench_function("sipveil", |b| {
        b.iter(|| {
            let m = SipMessage::parse(black_box(raw)).map_err(|e| e.reason)?;
            m.validate().map_err(|e| e.reason)?;
            let via = m.top_via().map_err(|e| e.reason)?;
            let from = m.from_header().map_err(|e| e.reason)?;
            let to = m.to_header().map_err(|e| e.reason)?;
            Ok::<_, String>((
                via.branch().map(str::len),
                from.tag().map(str::len),
                to.tag().map(str::len),
                m.call_id().map(str::len),
                m.contacts().count(),
            ))
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    bench_message(c, "invite", INVITE);
    bench_message(c, "200ok", OK200);
}

criterion_group!(parse, benches);
criterion_main!(parse);
