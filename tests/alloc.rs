//! The parse path allocates a small, constant number of times, however many headers
//! the message has: one owned copy of the header section, one header table, one
//! body (and, when some lines are folded, one reservation for the unfolded values).
//! Typed reads and `validate` allocate nothing on a valid message.
//!
//! Counting is per thread, so tests running in parallel do not disturb each other.

use sipveil::sip::SipMessage;

#[path = "common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::allocations;

const INVITE: &[u8] = include_bytes!("../fixtures/sip/valid/typical-invite.sip");

/// The benchmark INVITE with `n` extension headers inserted, every tenth one folded
/// over two lines when `fold` is set.
fn invite_with_extra_headers(n: usize, fold: bool) -> Vec<u8> {
    let text = std::str::from_utf8(INVITE).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut out = String::from(head);
    for i in 0..n {
        if fold && i % 10 == 9 {
            out.push_str(&format!("\r\nX-Folded-{i}: first part,\r\n  second part"));
        } else {
            out.push_str(&format!("\r\nX-Extension-{i}: value {i};param=x"));
        }
    }
    out.push_str("\r\n\r\n");
    out.push_str(body);
    out.into_bytes()
}

#[test]
fn parse_allocations_do_not_grow_with_header_count() {
    // Header section copy, header table, body; a message with folded lines also
    // reserves room for the unfolded values once.
    for (fold, expected) in [(false, 3), (true, 4)] {
        let few = invite_with_extra_headers(10, fold);
        let many = invite_with_extra_headers(60, fold);
        let (a_few, m_few) = allocations(|| SipMessage::parse(&few).unwrap());
        let (a_many, m_many) = allocations(|| SipMessage::parse(&many).unwrap());
        assert_eq!(m_few.header_count() + 50, m_many.header_count());
        assert_eq!(
            (a_few, a_many),
            (expected, expected),
            "allocations with 10 and 60 extension headers (folded: {fold})"
        );
        drop((m_few, m_many));
    }
}

#[test]
fn bare_lf_messages_allocate_the_same_way() {
    // A peer that ends lines with LF alone: the header table is sized when the
    // first such line is met, still once per message.
    let lf = |n| {
        let raw = invite_with_extra_headers(n, false);
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        format!("{}\n\n{body}", head.replace("\r\n", "\n")).into_bytes()
    };
    let (few, many) = (lf(10), lf(60));
    let (a_few, m_few) = allocations(|| SipMessage::parse(&few).unwrap());
    let (a_many, m_many) = allocations(|| SipMessage::parse(&many).unwrap());
    assert_eq!(m_few.header_count() + 50, m_many.header_count());
    assert_eq!((a_few, a_many), (3, 3));
    drop((m_few, m_many));
}

#[test]
fn parse_of_the_benchmark_invite_is_three_allocations() {
    let (n, m) = allocations(|| SipMessage::parse(INVITE).unwrap());
    assert_eq!(n, 3, "{n} allocations");
    drop(m);
}

#[test]
fn validate_and_typed_reads_do_not_allocate() {
    let m = SipMessage::parse(INVITE).unwrap();
    let (n, _) = allocations(|| {
        m.validate().unwrap();
        let via = m.top_via().unwrap();
        let from = m.from_header().unwrap();
        let to = m.to_header().unwrap();
        let cseq = m.cseq().unwrap();
        (
            via.branch().map(str::len),
            via.rport(),
            from.tag().map(str::len),
            from.display_name().map(|d| d.len()),
            to.uri.port,
            cseq.seq,
            m.call_id().map(str::len),
            m.contacts().count(),
            m.allow().count(),
            m.session_expires().map(|s| s.map(|s| s.delta).ok()),
        )
    });
    assert_eq!(n, 0, "{n} allocations in validate and typed reads");
}

#[test]
fn serializing_an_untouched_message_is_one_allocation() {
    let m = SipMessage::parse(INVITE).unwrap();
    let (n, out) = allocations(|| m.to_bytes());
    assert_eq!(n, 1);
    assert_eq!(out, INVITE);
}
