use super::super::testutil::{header, invite, msg, policy, refused, ringing};
use super::super::PolicySet;
use super::*;

fn norm(m: &mut SipMessage) -> Result<(), Reject> {
    PolicySet::default().normalize_incoming("access", m)
}

fn names(m: &SipMessage) -> Vec<&str> {
    m.headers().map(|h| h.written_name).collect()
}

const SLOPPY: &str = "INVITE sip:b@example.test SIP/2.0\n\
    v: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK9\n\
    f: <sip:a@example.test>;tag=1\n\
    t: <sip:b@example.test>\n\
    i: n9\n\
    CSEQ: 1 INVITE\n\
    m: <sip:a@192.0.2.10>\n\
    k: timer\n\
    X-custom: kept\n\
    c: application/sdp\n\n\
    v=0\n";

#[test]
fn compact_forms_expanded_and_names_canonical() {
    let mut m = msg(SLOPPY);
    norm(&mut m).unwrap();
    assert_eq!(
        &names(&m)[..9],
        [
            "Via",
            "From",
            "To",
            "Call-ID",
            "CSeq",
            "Contact",
            "Supported",
            "X-custom",
            "Content-Type"
        ]
    );
    m.validate().unwrap();
}

#[test]
fn max_forwards_inserted_into_requests_only() {
    let mut m = msg(SLOPPY);
    norm(&mut m).unwrap();
    assert_eq!(header(&m, "Max-Forwards").as_deref(), Some("70"));
    let mut m = invite();
    norm(&mut m).unwrap();
    assert_eq!(m.header_lines(HeaderName::MaxForwards).count(), 1);
    let mut r = ringing();
    norm(&mut r).unwrap();
    assert_eq!(header(&r, "Max-Forwards"), None);
}

#[test]
fn content_length_recomputed() {
    let mut m = msg(SLOPPY);
    norm(&mut m).unwrap();
    assert_eq!(header(&m, "Content-Length").as_deref(), Some("5"));
    let text = SLOPPY.replace(
        "c: application/sdp\n",
        "c: application/sdp\nl: 5\nContent-Length: 5\n",
    );
    let mut m = msg(&text);
    norm(&mut m).unwrap();
    let lengths: Vec<&str> = m.header_lines(HeaderName::ContentLength).collect();
    assert_eq!(lengths, ["5"]);
}

#[test]
fn identical_duplicates_collapse() {
    let text = SLOPPY.replace("i: n9\n", "i: n9\nCall-ID: n9\n");
    let mut m = msg(&text);
    assert!(m.validate().is_err());
    norm(&mut m).unwrap();
    assert_eq!(
        m.header_lines(HeaderName::CallId).collect::<Vec<_>>(),
        ["n9"]
    );
    m.validate().unwrap();
}

#[test]
fn differing_duplicates_rejected_400() {
    for (from, to, name) in [
        ("i: n9\n", "i: n9\nCall-ID: other\n", "Call-ID"),
        (
            "CSEQ: 1 INVITE\n",
            "CSEQ: 1 INVITE\nCSeq: 2 INVITE\n",
            "CSeq",
        ),
        (
            "f: <sip:a@example.test>;tag=1\n",
            "f: <sip:a@example.test>;tag=1\nFrom: <sip:z@example.test>;tag=2\n",
            "From",
        ),
        (
            "t: <sip:b@example.test>\n",
            "t: <sip:b@example.test>\nTo: <sip:y@example.test>\n",
            "To",
        ),
    ] {
        let mut m = msg(&SLOPPY.replace(from, to));
        let before = m.to_bytes();
        let r = norm(&mut m).unwrap_err();
        assert_eq!(r.code, 400);
        assert_eq!(r.reason, format!("Conflicting {name} headers"));
        assert_eq!(m.to_bytes(), before, "refused message left as received");
    }
}

#[test]
fn unsupported_require_answered_420() {
    let text = SLOPPY.replace(
        "k: timer\n",
        "Require: timer, 100rel, replaces, sec-agree\n",
    );
    let mut m = msg(&text);
    let r = norm(&mut m).unwrap_err();
    assert_eq!(r.code, 420);
    assert_eq!(r.reason, "Bad Extension");
    assert_eq!(
        r.extra_headers,
        vec![("Unsupported".to_string(), "replaces, sec-agree".to_string())]
    );
    let mut ok = msg(&SLOPPY.replace("k: timer\n", "Require: TIMER, 100rel\n"));
    assert!(norm(&mut ok).is_ok());
    let ack = text
        .replace("INVITE sip", "ACK sip")
        .replace("1 INVITE", "1 ACK");
    assert!(norm(&mut msg(&ack)).is_ok());
}

fn register(contacts: &str, expires: &str) -> SipMessage {
    msg(&format!(
        "REGISTER sip:example.test SIP/2.0\n\
         Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK5\n\
         From: <sip:a@example.test>;tag=1\n\
         To: <sip:a@example.test>\n\
         Call-ID: r1\n\
         CSeq: 1 REGISTER\n\
         {contacts}\
         Expires: {expires}\n\n"
    ))
}

#[test]
fn expires_reconciled_contact_wins() {
    let mut m = register("Contact: <sip:a@192.0.2.10>;expires=60\n", "3600");
    norm(&mut m).unwrap();
    assert_eq!(header(&m, "Expires").as_deref(), Some("60"));
    let mut m = register(
        "Contact: <sip:a@192.0.2.10>;expires=60, <sip:a@192.0.2.11>;expires=120\n",
        "3600",
    );
    norm(&mut m).unwrap();
    assert_eq!(header(&m, "Expires"), None);
    // A Contact without the parameter takes the header: nothing to reconcile.
    let mut m = register(
        "Contact: <sip:a@192.0.2.10>;expires=60\nContact: <sip:a@192.0.2.11>\n",
        "3600",
    );
    norm(&mut m).unwrap();
    assert_eq!(header(&m, "Expires").as_deref(), Some("3600"));
}

#[test]
fn hold_detection() {
    let zero = b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    assert!(is_hold(zero));
    let sendonly = b"v=0\nc=IN IP4 192.0.2.10\nt=0 0\nm=audio 4000 RTP/AVP 0\na=sendonly\n";
    assert!(is_hold(sendonly));
    let session_inactive = b"v=0\nc=IN IP4 192.0.2.10\na=inactive\nt=0 0\nm=audio 4000 RTP/AVP 0\n";
    assert!(is_hold(session_inactive));
    let media_overrides =
        b"v=0\nc=IN IP4 0.0.0.0\nt=0 0\nm=audio 4000 RTP/AVP 0\nc=IN IP4 192.0.2.10\n";
    assert!(!is_hold(media_overrides));
    let one_of_two = b"v=0\nc=IN IP4 192.0.2.10\nt=0 0\nm=audio 4000 RTP/AVP 0\na=sendonly\nm=video 4002 RTP/AVP 96\n";
    assert!(!is_hold(one_of_two));
    let disabled_ignored = b"v=0\nc=IN IP4 192.0.2.10\nt=0 0\nm=audio 4000 RTP/AVP 0\na=inactive\nm=video 0 RTP/AVP 96\n";
    assert!(is_hold(disabled_ignored));
    assert!(!is_hold(
        b"v=0\nc=IN IP4 192.0.2.10\nt=0 0\nm=audio 4000 RTP/AVP 0\n"
    ));
    assert!(!is_hold(b""));
    let v6 = b"v=0\nc=IN IP6 ::\nt=0 0\nm=audio 4000 RTP/AVP 0\n";
    assert!(is_hold(v6));
    let off = Normalize {
        hold_zero_address: false,
        ..Normalize::default()
    };
    assert!(!off.is_hold(zero));
    assert!(off.is_hold(sendonly));
}

#[test]
fn each_fix_switches_off_per_interface() {
    let p = policy(
        "[normalize]\ninterfaces = [\"core\"]\nexpand_compact = false\nmax_forwards = false\n\
         content_length = false\nrequire = false\nduplicate_headers = false\nexpires = false\n\
         hold_zero_address = false\n",
    );
    let text = SLOPPY.replace("k: timer\n", "Require: sec-agree\n");
    let mut m = msg(&text);
    let before = m.to_bytes();
    p.normalize_incoming("core", &mut m).unwrap();
    assert_eq!(m.to_bytes(), before);
    let dup = SLOPPY.replace("i: n9\n", "i: n9\nCall-ID: other\n");
    assert!(p.normalize_incoming("core", &mut msg(&dup)).is_ok());
    let mut m = register("Contact: <sip:a@192.0.2.10>;expires=60\n", "3600");
    p.normalize_incoming("core", &mut m).unwrap();
    assert_eq!(header(&m, "Expires").as_deref(), Some("3600"));
    assert!(!p.normalize("core").hold_zero_address);
    // access keeps every fix.
    assert_eq!(*p.normalize("access"), Normalize::default());
    assert!(p.normalize_incoming("access", &mut msg(&text)).is_err());
}

#[test]
fn later_files_override_earlier_ones() {
    let p = PolicySet::from_sources(
        &[
            (
                "10.toml",
                "[normalize]\nmax_forwards = false\nrequire = false\n",
            ),
            (
                "20.toml",
                "[normalize]\ninterfaces = [\"access\"]\nmax_forwards = true\n",
            ),
        ],
        &super::super::testutil::ifaces(),
    )
    .unwrap();
    assert!(p.normalize("access").max_forwards);
    assert!(!p.normalize("access").require);
    assert!(!p.normalize("core").max_forwards);
}

#[test]
fn normalize_load_errors() {
    let e = refused("[normalize]\ninterfaces = [\"acces\"]\n");
    assert!(
        e.starts_with("t.toml:2: [normalize]: interface = \"acces\" names no [[interface]]"),
        "{e}"
    );
    let e = refused("[normalize]\nexpand_compact = \"no\"\n");
    assert!(
        e.starts_with("t.toml:2: `expand_compact` in [normalize]"),
        "{e}"
    );
    let e = refused("[normalize]\nfold_lines = false\n");
    assert!(
        e.starts_with("t.toml:2: unknown key `fold_lines` in [normalize]"),
        "{e}"
    );
}
