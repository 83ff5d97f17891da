use super::super::testutil::{header, invite, line_of, msg, policy, refused, ringing};
use super::super::Direction;

/// E.164 in from access (German national and international prefixes), national out.
const PLAN: &str = r#"
[[number]]
name = "international"
interface = "access"
direction = "in"
match = '^00([1-9]\d+)$'
replace = "+$1"

[[number]]
name = "national"
interface = "access"
direction = "in"
match = '^0([1-9]\d+)$'
replace = "+49$1"

[[number]]
name = "national-out"
interface = "access"
direction = "out"
match = '^\+49(\d+)$'
replace = "0$1"
"#;

#[test]
fn national_to_e164_inbound_on_every_target() {
    let p = policy(PLAN);
    let mut m = invite();
    assert_eq!(p.rewrite_numbers("access", Direction::In, &mut m), 4);
    assert_eq!(m.request_uri(), Some("sip:+49409876@sbc.example.net"));
    assert_eq!(
        header(&m, "From").as_deref(),
        Some("\"Alice\" <sip:+49301234@example.test>;tag=1928301774")
    );
    assert_eq!(
        header(&m, "To").as_deref(),
        Some("<sip:+49409876@example.test>")
    );
    assert_eq!(
        header(&m, "P-Asserted-Identity").as_deref(),
        Some("<sip:+49301234@example.test>, <tel:+49301234>")
    );
    m.validate().unwrap();
}

#[test]
fn e164_to_national_outbound() {
    let p = policy(PLAN);
    let mut m = invite();
    p.rewrite_numbers("access", Direction::In, &mut m);
    assert_eq!(p.rewrite_numbers("access", Direction::Out, &mut m), 4);
    assert_eq!(m.request_uri(), Some("sip:0409876@sbc.example.net"));
    assert_eq!(
        header(&m, "To").as_deref(),
        Some("<sip:0409876@example.test>")
    );
    assert_eq!(
        header(&m, "P-Asserted-Identity").as_deref(),
        Some("<sip:0301234@example.test>, <tel:0301234>")
    );
}

#[test]
fn first_match_wins_per_uri() {
    let p = policy(PLAN);
    let mut m = msg("INVITE sip:0044201234@gw SIP/2.0\n\
                     Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK3\n\
                     From: <sip:0301234@gw>;tag=1\n\
                     To: <sip:0044201234@gw>\n\
                     Call-ID: n1\n\
                     CSeq: 1 INVITE\n\n");
    p.rewrite_numbers("access", Direction::In, &mut m);
    // "0044..." matches both rules; the first (international) wins.
    assert_eq!(m.request_uri(), Some("sip:+44201234@gw"));
    assert_eq!(
        header(&m, "From").as_deref(),
        Some("<sip:+49301234@gw>;tag=1")
    );
}

#[test]
fn targets_limit_what_is_rewritten() {
    let p = policy(
        "[[number]]\ninterface = \"access\"\ndirection = \"in\"\nmatch = '^0(\\d+)$'\nreplace = \"+49$1\"\ntargets = [\"ruri\", \"pai\"]\n",
    );
    let mut m = invite();
    assert_eq!(p.rewrite_numbers("access", Direction::In, &mut m), 2);
    assert_eq!(m.request_uri(), Some("sip:+49409876@sbc.example.net"));
    assert_eq!(
        header(&m, "To").as_deref(),
        Some("<sip:0409876@example.test>")
    );
    assert!(header(&m, "From").unwrap().contains("sip:0301234@"));
}

#[test]
fn responses_other_interfaces_and_no_match_untouched() {
    let p = policy(PLAN);
    let mut r = ringing();
    let before = r.to_bytes();
    assert_eq!(p.rewrite_numbers("access", Direction::In, &mut r), 0);
    assert_eq!(r.to_bytes(), before);
    let mut m = invite();
    let before = m.to_bytes();
    assert_eq!(p.rewrite_numbers("core", Direction::In, &mut m), 0);
    assert_eq!(p.rewrite_numbers("access", Direction::Out, &mut m), 0);
    assert_eq!(m.to_bytes(), before);
}

#[test]
fn result_that_is_no_uri_is_not_written() {
    let p = policy(
        "[[number]]\ninterface = \"access\"\ndirection = \"in\"\nmatch = '^0'\nreplace = \"<\"\n",
    );
    let mut m = invite();
    let before = m.to_bytes();
    assert_eq!(p.rewrite_numbers("access", Direction::In, &mut m), 0);
    assert_eq!(m.to_bytes(), before);
}

#[test]
fn load_errors_name_line() {
    let text = "[[number]]\ninterface = \"access\"\ndirection = \"in\"\nmatch = '^0(\\d+'\nreplace = \"x\"\n\
                [[number]]\ninterface = \"access\"\ndirection = \"in\"\nmatch = '^0(\\d+)$'\nreplace = \"+49$1x\"\n\
                [[number]]\ninterface = \"access\"\ndirection = \"in\"\nmatch = 'x'\nreplace = \"y\"\ntargets = []\n";
    let e = refused(text);
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 3, "{e}");
    assert!(
        lines[0].starts_with(&format!(
            "t.toml:{}: [[number]] #1: match: invalid pattern",
            line_of(text, "(\\d+'")
        )),
        "{e}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "t.toml:{}: [[number]] #2: replace:",
            line_of(text, "$1x")
        )),
        "{e}"
    );
    assert!(lines[2].contains("targets is empty"), "{e}");
    let e = refused("[[number]]\ninterface = \"access\"\ndirection = \"in\"\nmatch = 'x'\nreplace = \"y\"\ntargets = [\"contact\"]\n");
    assert!(e.starts_with("t.toml:6: "), "{e}");
}
