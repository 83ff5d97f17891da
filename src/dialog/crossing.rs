//! Which headers cross from one leg to the other: an allow-list, so anything
//! unknown (and with it any topology a peer wrote into it) stays on its own leg.

use crate::sip::{HeaderName, SipMessage};

/// Option tags sipveil can relay end to end.
pub const SUPPORTED_TAGS: &[&str] = &["100rel", "timer"];

/// Headers copied verbatim (name canonicalized) from one leg's message to the
/// other's. Via, Route, Record-Route, Contact, Call-ID, From, To, CSeq, Max-Forwards
/// are never copied; they are built from the target leg's own state.
pub(crate) const PASSED: &[HeaderName] = &[
    HeaderName::Allow,
    HeaderName::Accept,
    HeaderName::ContentDisposition,
    HeaderName::ContentEncoding,
    HeaderName::SessionExpires,
    HeaderName::MinSe,
    HeaderName::Event,
    HeaderName::AllowEvents,
    HeaderName::SubscriptionState,
    HeaderName::Subject,
    HeaderName::Reason,
    HeaderName::RetryAfter,
    HeaderName::Expires,
    HeaderName::MinExpires,
    HeaderName::RSeq,
    HeaderName::Unsupported,
];

/// Extension headers passed by name.
pub(crate) const PASSED_NAMED: &[&str] = &[
    "Accept-Encoding",
    "Accept-Language",
    "Content-Language",
    "Date",
    "Priority",
    "Info-Package",
    "Recv-Info",
];

/// Copies the allow-listed headers of `src` into `dst`, and its body with
/// Content-Type; Supported and Require are filtered to tags sipveil relays.
pub fn copy_across(src: &SipMessage, dst: &mut SipMessage) {
    for h in src.headers() {
        if PASSED.contains(&h.name) {
            dst.push(h.name, h.value);
        } else if h.name == HeaderName::Other
            && PASSED_NAMED
                .iter()
                .any(|n| n.eq_ignore_ascii_case(h.written_name))
        {
            dst.push_named(h.written_name, h.value);
        }
    }
    for name in [HeaderName::Supported, HeaderName::Require] {
        let tags: Vec<&str> = src
            .header_values(name)
            .filter(|t| SUPPORTED_TAGS.iter().any(|s| s.eq_ignore_ascii_case(t)))
            .collect();
        if !tags.is_empty() {
            dst.push(name, &tags.join(", "));
        }
    }
    copy_body(src, dst);
}

/// Copies the body and Content-Type (Content-Length is always recomputed).
pub fn copy_body(src: &SipMessage, dst: &mut SipMessage) {
    if !src.body().is_empty() {
        if let Some(ct) = src.content_type() {
            dst.replace(HeaderName::ContentType, ct);
        }
    }
    dst.set_body(src.body().clone());
}

/// Our product token for User-Agent and Server.
pub const PRODUCT: &str = concat!("sipveil/", env!("CARGO_PKG_VERSION"));
