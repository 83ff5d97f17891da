//! Stream framer: the input is cut into chunks of fuzzer-chosen sizes and pushed
//! into a `StreamFramer`. The messages it yields (and the kind of error that ends
//! the stream, if any) must not depend on how the bytes were chunked, and every
//! framed message must re-parse as a datagram to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sipveil::sip::{ErrorKind, Frame, Limits, SipMessage, StreamFramer};

/// What a stream yielded: the framed messages in wire form, and how it ended.
#[derive(Debug, PartialEq)]
struct Outcome {
    messages: Vec<Vec<u8>>,
    error: Option<ErrorKind>,
}

fn run(data: &[u8], chunks: &[usize], limits: Limits) -> Outcome {
    let mut f = StreamFramer::new(limits);
    let mut out = Outcome {
        messages: Vec::new(),
        error: None,
    };
    let mut rest = data;
    let mut i = 0usize;
    while !rest.is_empty() {
        let n = chunks
            .get(i % chunks.len().max(1))
            .copied()
            .unwrap_or(rest.len())
            .clamp(1, rest.len());
        i += 1;
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        f.push(piece);
        loop {
            match f.next_frame() {
                Ok(Some(Frame::Message(m))) => {
                    let bytes = m.to_bytes();
                    // A framed message carries a body of exactly Content-Length bytes.
                    let declared = m.content_length().ok().flatten();
                    assert_eq!(declared, Some(m.body().len()));
                    let relaxed = Limits {
                        max_message_size: limits.max_message_size * 2 + 1024,
                        ..limits
                    };
                    let again = SipMessage::parse_datagram(&bytes, &relaxed)
                        .unwrap_or_else(|e| panic!("framed message does not re-parse: {e}"));
                    assert_eq!(again.to_bytes(), bytes);
                    out.messages.push(bytes);
                }
                Ok(Some(Frame::Ping | Frame::Pong)) => {}
                Ok(None) => break,
                Err(e) => {
                    assert!(!e.reason.is_empty());
                    out.error = Some(e.kind);
                    return out;
                }
            }
        }
        assert!(f.buffered() <= data.len());
    }
    out
}

fuzz_target!(|data: &[u8]| {
    // Byte 0 picks the limits, bytes 1..9 the chunk sizes; the rest is the stream.
    if data.len() < 9 {
        return;
    }
    let limits = if data[0] & 1 == 0 {
        Limits::default()
    } else {
        Limits {
            max_message_size: 1024,
            max_headers: 12,
            max_header_line: 200,
            max_via: 4,
        }
    };
    let chunks: Vec<usize> = data[1..9].iter().map(|b| usize::from(*b % 64) + 1).collect();
    let stream = &data[9..];
    let whole = run(stream, &[stream.len()], limits);
    let chunked = run(stream, &chunks, limits);
    assert_eq!(whole, chunked, "framing depends on chunking");
});
