//! Identity at the boundary (RFC 3325, RFC 3323): which asserted identity a call
//! carries from one leg to the other, and how Privacy is honoured toward an
//! untrusted side. Works on the message being built for the other leg; nothing
//! here trusts what an untrusted peer wrote.

use crate::sip::{HeaderName, NameAddr, SipMessage};

/// Which identity header a trusted peer speaks (`[[interface]] identity_header`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IdentityHeader {
    /// P-Asserted-Identity (RFC 3325).
    #[default]
    Pai,
    /// Remote-Party-ID (draft-ietf-sip-privacy-04), for legacy gateways.
    Rpid,
    /// Both.
    Both,
}

/// What decides the identity of one crossing.
#[derive(Clone, Copy, Debug)]
pub struct Crossing<'a> {
    /// The ingress interface is trusted: identity headers from it are believed.
    pub from_trusted: bool,
    /// The egress interface is trusted: identity may be sent in the clear.
    pub to_trusted: bool,
    /// The subscriber the caller authenticated as (user part).
    pub authenticated: Option<&'a str>,
    /// The registrar's domain, to write `sip:user@domain`.
    pub domain: Option<&'a str>,
    /// `[[interface]] send_identity` of the egress interface.
    pub send_identity: bool,
    /// `[[interface]] identity_header` of the egress interface.
    pub identity_header: IdentityHeader,
    /// Media is anchored by sipveil, so `Privacy: session` can be met.
    pub media_anchored: bool,
}

/// A privacy request sipveil cannot meet, marked critical (answered 500).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrivacyUnmet(pub String);

/// The Privacy values of a request, lower-cased.
fn privacy_of(msg: &SipMessage) -> Vec<String> {
    msg.privacy().map(|p| p.to_ascii_lowercase()).collect()
}

/// Whether the From toward an untrusted side must be anonymous: `Privacy: id`,
/// `user` or `header` (RFC 3323 §4.1.1; `id` too, since the From usually carries
/// the same number as the asserted identity).
pub fn anonymize_from(msg: &SipMessage, to_trusted: bool) -> bool {
    !to_trusted
        && privacy_of(msg)
            .iter()
            .any(|p| p == "id" || p == "user" || p == "header")
}

/// The anonymous From of RFC 3323 §4.1.1 (without tag).
pub const ANONYMOUS_FROM: &str = "\"Anonymous\" <sip:anonymous@anonymous.invalid>";

/// Headers RFC 3323 §5.1 has a privacy service remove for `Privacy: header`.
const REVEALING: &[&str] = &[
    "Subject",
    "Call-Info",
    "Organization",
    "User-Agent",
    "Reply-To",
    "In-Reply-To",
    "Warning",
];

/// The identities to assert on the other leg, as name-addr values.
fn asserted(src: &SipMessage, c: &Crossing<'_>) -> Vec<String> {
    if c.from_trusted {
        let mut ids: Vec<String> = src
            .p_asserted_identities()
            .filter_map(Result::ok)
            .map(|n| display_uri(n.display, n.uri.raw))
            .collect();
        if ids.is_empty() {
            // A legacy peer may assert with Remote-Party-ID only.
            ids = src
                .remote_party_ids()
                .filter_map(Result::ok)
                .map(|n| display_uri(n.display, n.uri.raw))
                .collect();
        }
        return ids;
    }
    let (Some(user), Some(domain)) = (c.authenticated, c.domain) else {
        return Vec::new();
    };
    // A preferred identity is honoured only when it is the subscriber's own.
    let owned = src
        .p_preferred_identities()
        .filter_map(Result::ok)
        .find(|n| {
            n.uri.user.is_some_and(|u| u.eq_ignore_ascii_case(user))
                && n.uri.host.to_string().eq_ignore_ascii_case(domain)
        });
    match owned {
        Some(n) => vec![display_uri(n.display, n.uri.raw)],
        None => vec![format!("<sip:{user}@{domain}>")],
    }
}

fn display_uri(display: Option<&str>, uri: &str) -> String {
    match display {
        Some(d) => format!("{d} <{uri}>"),
        None => format!("<{uri}>"),
    }
}

/// Writes the identity headers and Privacy of `src` onto `dst`, the request
/// built for the other leg. `dst` must not carry identity headers yet.
pub fn apply(src: &SipMessage, dst: &mut SipMessage, c: &Crossing<'_>) -> Result<(), PrivacyUnmet> {
    let privacy = privacy_of(src);
    let critical = privacy.iter().any(|p| p == "critical");
    if critical && !c.to_trusted {
        for p in &privacy {
            let met = match p.as_str() {
                "id" | "user" | "header" | "none" | "critical" => true,
                "session" => c.media_anchored,
                _ => false,
            };
            if !met {
                return Err(PrivacyUnmet(format!("privacy level '{p}' not available")));
            }
        }
    }
    let wants_id_hidden = privacy.iter().any(|p| p == "id");
    let ids = asserted(src, c);
    let send = if c.to_trusted {
        true
    } else {
        c.send_identity && !wants_id_hidden
    };
    if send && !ids.is_empty() {
        // A response asserts the connected (called) party, a request the caller.
        let party = if dst.is_request() {
            "calling"
        } else {
            "called"
        };
        let rpid_privacy = if wants_id_hidden { "full" } else { "off" };
        for id in &ids {
            if matches!(
                c.identity_header,
                IdentityHeader::Pai | IdentityHeader::Both
            ) {
                dst.push(HeaderName::PAssertedIdentity, id);
            }
            if matches!(
                c.identity_header,
                IdentityHeader::Rpid | IdentityHeader::Both
            ) {
                dst.push(
                    HeaderName::RemotePartyId,
                    &format!("{id};party={party};screen=yes;privacy={rpid_privacy}"),
                );
            }
        }
    }
    if c.to_trusted {
        // Inside the trust domain the privacy request travels on (RFC 3325 §7);
        // an RPID `privacy=full` from a legacy peer becomes `Privacy: id`.
        let rpid_full = c.from_trusted
            && src.remote_party_ids().filter_map(Result::ok).any(|n| {
                n.params
                    .get("privacy")
                    .flatten()
                    .is_some_and(|v| v.eq_ignore_ascii_case("full"))
            });
        let mut values: Vec<&str> = src.header_lines(HeaderName::Privacy).collect();
        if rpid_full && !wants_id_hidden {
            values.push("id");
        }
        if !values.is_empty() {
            dst.push(HeaderName::Privacy, &values.join(";"));
        }
    } else if privacy.iter().any(|p| p == "header") {
        // Privacy has been applied: nothing revealing, and no Privacy header left.
        for h in REVEALING {
            dst.remove_named(h);
        }
    }
    Ok(())
}

/// Whether a name-addr value names `user@domain` (used by tests and policy).
pub fn names(value: &str, user: &str, domain: &str) -> bool {
    NameAddr::parse(value).is_ok_and(|n| {
        n.uri.user.is_some_and(|u| u.eq_ignore_ascii_case(user))
            && n.uri.host.to_string().eq_ignore_ascii_case(domain)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(extra: &str) -> SipMessage {
        let raw = format!(
            "INVITE sip:bob@example.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
From: \"Alice\" <sip:alice@example.test>;tag=1\r\nTo: <sip:bob@example.test>\r\nCall-ID: c\r\n\
CSeq: 1 INVITE\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        SipMessage::parse(raw.as_bytes()).unwrap()
    }

    fn out() -> SipMessage {
        SipMessage::new_request(crate::sip::Method::Invite, "sip:bob@198.51.100.1")
    }

    const UNTRUSTED_IN: Crossing<'static> = Crossing {
        from_trusted: false,
        to_trusted: true,
        authenticated: None,
        domain: Some("example.test"),
        send_identity: true,
        identity_header: IdentityHeader::Pai,
        media_anchored: false,
    };

    #[test]
    fn forged_identity_from_untrusted_is_dropped() {
        let src = req("P-Asserted-Identity: <sip:ceo@example.test>\r\nRemote-Party-ID: <sip:ceo@example.test>\r\n");
        let mut dst = out();
        apply(&src, &mut dst, &UNTRUSTED_IN).unwrap();
        assert!(dst.header(HeaderName::PAssertedIdentity).is_none());
        assert!(dst.header(HeaderName::RemotePartyId).is_none());
    }

    #[test]
    fn authenticated_caller_is_asserted_and_ppi_checked() {
        let c = Crossing {
            authenticated: Some("alice"),
            ..UNTRUSTED_IN
        };
        let src = req("P-Asserted-Identity: <sip:ceo@example.test>\r\n");
        let mut dst = out();
        apply(&src, &mut dst, &c).unwrap();
        assert_eq!(
            dst.header(HeaderName::PAssertedIdentity),
            Some("<sip:alice@example.test>")
        );
        // A preferred identity of her own is honoured, someone else's is not.
        let src = req("P-Preferred-Identity: \"Al\" <sip:alice@example.test>\r\n");
        let mut dst = out();
        apply(&src, &mut dst, &c).unwrap();
        assert_eq!(
            dst.header(HeaderName::PAssertedIdentity),
            Some("\"Al\" <sip:alice@example.test>")
        );
        assert!(dst.header(HeaderName::PPreferredIdentity).is_none());
        let src = req("P-Preferred-Identity: <sip:boss@example.test>\r\n");
        let mut dst = out();
        apply(&src, &mut dst, &c).unwrap();
        assert_eq!(
            dst.header(HeaderName::PAssertedIdentity),
            Some("<sip:alice@example.test>")
        );
    }

    #[test]
    fn privacy_toward_untrusted() {
        let c = Crossing {
            from_trusted: true,
            to_trusted: false,
            ..UNTRUSTED_IN
        };
        let src = req("P-Asserted-Identity: <sip:+15551234@example.test>\r\nPrivacy: id\r\n");
        let mut dst = out();
        apply(&src, &mut dst, &c).unwrap();
        assert!(dst.header(HeaderName::PAssertedIdentity).is_none());
        assert!(dst.header(HeaderName::Privacy).is_none());
        assert!(anonymize_from(&src, false));
        let src = req("P-Asserted-Identity: <sip:+15551234@example.test>\r\nPrivacy: none\r\n");
        let mut dst = out();
        apply(&src, &mut dst, &c).unwrap();
        assert!(dst.header(HeaderName::PAssertedIdentity).is_some());
        assert!(!anonymize_from(&src, false));
        let src = req("Privacy: header\r\n");
        let mut dst = out();
        dst.push_named("Subject", "from the CFO");
        dst.push(HeaderName::UserAgent, "x");
        apply(&src, &mut dst, &c).unwrap();
        assert!(!dst.has_header_named("Subject"));
        assert!(!dst.has_header_named("User-Agent"));
        let no_send = Crossing {
            send_identity: false,
            ..c
        };
        let src = req("P-Asserted-Identity: <sip:+15551234@example.test>\r\n");
        let mut dst = out();
        apply(&src, &mut dst, &no_send).unwrap();
        assert!(dst.header(HeaderName::PAssertedIdentity).is_none());
    }

    #[test]
    fn critical_privacy_that_cannot_be_met() {
        let c = Crossing {
            from_trusted: true,
            to_trusted: false,
            ..UNTRUSTED_IN
        };
        let src = req("Privacy: session;critical\r\n");
        assert!(apply(&src, &mut out(), &c).is_err());
        let anchored = Crossing {
            media_anchored: true,
            ..c
        };
        assert!(apply(&src, &mut out(), &anchored).is_ok());
        let src = req("Privacy: id;critical\r\n");
        assert!(apply(&src, &mut out(), &c).is_ok());
    }

    #[test]
    fn trusted_to_trusted_passes_and_converts() {
        let c = Crossing {
            from_trusted: true,
            to_trusted: true,
            identity_header: IdentityHeader::Rpid,
            ..UNTRUSTED_IN
        };
        let src = req("P-Asserted-Identity: <sip:+15551234@example.test>\r\nPrivacy: id\r\n");
        let mut dst = out();
        apply(&src, &mut dst, &c).unwrap();
        assert!(dst.header(HeaderName::PAssertedIdentity).is_none());
        let rpid = dst.header(HeaderName::RemotePartyId).unwrap();
        assert!(rpid.contains("privacy=full"), "{rpid}");
        assert_eq!(dst.header(HeaderName::Privacy), Some("id"));
        // RPID with privacy=full from a legacy gateway becomes PAI + Privacy: id.
        let c = Crossing {
            identity_header: IdentityHeader::Pai,
            ..c
        };
        let src =
            req("Remote-Party-ID: <sip:+15551234@example.test>;party=calling;privacy=full\r\n");
        let mut dst = out();
        apply(&src, &mut dst, &c).unwrap();
        assert_eq!(
            dst.header(HeaderName::PAssertedIdentity),
            Some("<sip:+15551234@example.test>")
        );
        assert_eq!(dst.header(HeaderName::Privacy), Some("id"));
        assert!(names(
            "<sip:+15551234@example.test>",
            "+15551234",
            "example.test"
        ));
    }
}
