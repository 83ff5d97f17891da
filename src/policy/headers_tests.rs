use super::super::testutil::{header, invite, line_of, msg, policy, refused, ringing};
use super::super::PolicySet;
use crate::dialog::crossing::{copy_across, PRODUCT};
use crate::sip::{HeaderName, Method, SipMessage};

/// A request carrying one header of every kind the filter decides on.
fn rich() -> SipMessage {
    msg("INVITE sip:b@example.test SIP/2.0\n\
         Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1\n\
         From: <sip:a@example.test>;tag=1\n\
         To: <sip:b@example.test>\n\
         Call-ID: c1\n\
         CSeq: 1 INVITE\n\
         Contact: <sip:a@192.0.2.10>\n\
         Allow: INVITE, ACK, BYE\n\
         Supported: 100rel, timer, path\n\
         Require: timer, foo\n\
         Proxy-Require: 100rel, bar\n\
         Subject: hi\n\
         Date: Sat, 13 Nov 2010 23:29:00 GMT\n\
         x-account: 42\n\
         X-Secret: s\n\
         User-Agent: Phone/1.0\n\
         Server: odd\n\
         Session-Expires: 1800\n\
         Content-Type: application/sdp\n\
         Content-Length: 4\n\nv=0\n")
}

fn sorted_lines(m: &SipMessage) -> Vec<String> {
    let mut v: Vec<String> = m
        .headers()
        .map(|h| format!("{}: {}", h.written_name, h.value))
        .collect();
    v.sort();
    v
}

fn across(p: &PolicySet, from: &str, to: &str, src: &SipMessage) -> SipMessage {
    let mut dst = if src.is_request() {
        SipMessage::new_request(Method::Invite, "sip:b@core.example")
    } else {
        SipMessage::new_response(180, "Ringing")
    };
    p.crossing(from, to).copy_across(src, &mut dst);
    dst
}

#[test]
fn builtin_filter_is_the_engines_list() {
    let p = PolicySet::default();
    for src in [rich(), ringing()] {
        let got = across(&p, "access", "core", &src);
        let mut want = if src.is_request() {
            let mut m = SipMessage::new_request(Method::Invite, "sip:b@core.example");
            m.push(HeaderName::UserAgent, PRODUCT);
            m
        } else {
            let mut m = SipMessage::new_response(180, "Ringing");
            m.push(HeaderName::Server, PRODUCT);
            m
        };
        copy_across(&src, &mut want);
        assert_eq!(sorted_lines(&got), sorted_lines(&want));
        assert_eq!(got.body(), want.body());
    }
    let got = across(&p, "access", "core", &rich());
    assert_eq!(header(&got, "Supported").as_deref(), Some("100rel, timer"));
    assert_eq!(header(&got, "Require").as_deref(), Some("timer"));
    assert_eq!(header(&got, "Proxy-Require"), None);
    assert_eq!(header(&got, "X-Secret"), None);
    assert_eq!(header(&got, "Via"), None);
    assert_eq!(header(&got, "User-Agent").as_deref(), Some(PRODUCT));
}

#[test]
fn policy_without_headers_entries_keeps_the_builtin_filter() {
    let p = policy("[[number]]\ninterface = \"access\"\ndirection = \"in\"\nmatch = \"^0\"\nreplace = \"+49\"\n");
    assert_eq!(
        p.crossing("access", "core"),
        PolicySet::default().crossing("x", "y")
    );
}

#[test]
fn pass_widens_per_interface_and_direction() {
    let p = policy(
        "[[headers]]\ninterface = \"access\"\ndirection = \"in\"\npass = [\"X-Account\"]\n\
         [[headers]]\ninterface = \"core\"\ndirection = \"out\"\npass = [\"X-Secret\"]\n",
    );
    let f = p.crossing("access", "core");
    assert!(f.passes("x-account") && f.passes("X-Secret"));
    let got = across(&p, "access", "core", &rich());
    assert_eq!(header(&got, "X-Account").as_deref(), Some("42"));
    assert_eq!(header(&got, "X-Secret").as_deref(), Some("s"));
    // The other way round neither entry applies.
    let back = p.crossing("core", "access");
    assert!(!back.passes("X-Account") && !back.passes("X-Secret"));
    // Nor between two access legs for the out entry of core.
    assert!(!p.crossing("access", "access").passes("X-Secret"));
    assert!(p.crossing("access", "access").passes("X-Account"));
}

#[test]
fn block_narrows_and_wins_over_pass() {
    let p = policy(
        "[[headers]]\ninterface = \"access\"\ndirection = \"in\"\npass = [\"X-Account\"]\n\
         [[headers]]\ninterface = \"core\"\ndirection = \"out\"\nblock = [\"x-account\", \"Subject\", \"Supported\"]\n",
    );
    let got = across(&p, "access", "core", &rich());
    assert_eq!(header(&got, "X-Account"), None);
    assert_eq!(header(&got, "Subject"), None);
    assert_eq!(header(&got, "Supported"), None);
    assert_eq!(header(&got, "Require").as_deref(), Some("timer"));
    assert_eq!(header(&got, "Allow").as_deref(), Some("INVITE, ACK, BYE"));
}

#[test]
fn user_agent_and_server_product_pass_or_block() {
    let p = policy(
        "[[headers]]\ninterface = \"core\"\ndirection = \"in\"\npass = [\"User-Agent\", \"Server\"]\n\
         [[headers]]\ninterface = \"access\"\ndirection = \"out\"\nblock = [\"Server\"]\n",
    );
    // core -> core: both passed, nothing blocked.
    let got = across(&p, "core", "core", &invite());
    assert_eq!(header(&got, "User-Agent").as_deref(), Some("Phone/1.0"));
    let got = across(&p, "core", "core", &ringing());
    assert_eq!(header(&got, "Server").as_deref(), Some("Gateway/2.3"));
    // core -> access: Server blocked outright, User-Agent still the caller's.
    let got = across(&p, "core", "access", &ringing());
    assert_eq!(header(&got, "Server"), None);
    let got = across(&p, "core", "access", &invite());
    assert_eq!(header(&got, "User-Agent").as_deref(), Some("Phone/1.0"));
    // access -> core: not passed, sipveil's own token.
    let got = across(&p, "access", "core", &invite());
    assert_eq!(header(&got, "User-Agent").as_deref(), Some(PRODUCT));
}

#[test]
fn passed_proxy_require_is_tag_filtered() {
    let p =
        policy("[[headers]]\ninterface = \"*\"\ndirection = \"in\"\npass = [\"Proxy-Require\"]\n");
    let got = across(&p, "core", "access", &rich());
    assert_eq!(header(&got, "Proxy-Require").as_deref(), Some("100rel"));
}

#[test]
fn unknown_interface_pair_gets_the_builtin_filter() {
    let p = policy("[[headers]]\ninterface = \"*\"\ndirection = \"in\"\nblock = [\"Subject\"]\n");
    assert!(!p.crossing("access", "core").passes("Subject"));
    assert!(p.crossing("elsewhere", "core").passes("Subject"));
}

#[test]
fn structural_and_identity_headers_cannot_be_listed() {
    let text = "[[headers]]\ninterface = \"access\"\ndirection = \"in\"\npass = [\"Via\"]\n\
                [[headers]]\ninterface = \"core\"\ndirection = \"out\"\nblock = [\"P-Asserted-Identity\"]\n\
                [[headers]]\ninterface = \"core\"\ndirection = \"out\"\npass = [\"bad name\"]\n\
                [[headers]]\ninterface = \"core\"\ndirection = \"out\"\n";
    let e = refused(text);
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(lines.len(), 4, "{e}");
    assert!(
        lines[0].starts_with("t.toml:4: [[headers]] #1: pass: `Via` cannot be listed"),
        "{e}"
    );
    assert!(lines[1].contains("identity policy"), "{e}");
    assert!(lines[2].contains("`bad name` is not a header name"), "{e}");
    assert!(
        lines[3].starts_with(&format!("t.toml:{}:", line_of(text, "[[headers]]") + 12)),
        "{e}"
    );
    assert!(lines[3].contains("names no header"), "{e}");
}
