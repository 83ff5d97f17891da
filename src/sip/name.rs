//! Header names: case-insensitive, compact forms mapped to full names.
//!
//! Known names are an enum so lookups in the hot path compare integers, not strings;
//! every other header is `Other` and is compared by the text it was written with.

macro_rules! header_names {
    ($( $variant:ident => $canon:literal $(, $compact:literal)? ; )*) => {
        /// A header name the SBC reads, or `Other` for any extension header.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum HeaderName {
            $( #[allow(missing_docs)] $variant, )*
            /// Any header not listed; compare by its written text.
            Other,
        }

        impl HeaderName {
            /// The canonical spelling used when sipveil writes this header.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other => "",
                }
            }

            /// Classifies a written name (full or compact, any case) without allocating.
            pub fn classify(name: &str) -> HeaderName {
                let b = name.as_bytes();
                if b.len() == 1 {
                    let c = b.first().map(|c| c.to_ascii_lowercase()).unwrap_or(0);
                    $( $( if c == $compact.as_bytes().first().copied().unwrap_or(0) { return HeaderName::$variant; } )? )*
                    return HeaderName::Other;
                }
                classify_full(name)
            }

            /// Every known name (not `Other`).
            pub const ALL: &'static [HeaderName] = &[ $( HeaderName::$variant, )* ];

            /// The compact form of this header (RFC 3261 §7.3.3 and extensions), if any.
            pub fn compact(self) -> Option<&'static str> {
                match self {
                    $( $( HeaderName::$variant => Some($compact), )? )*
                    _ => None,
                }
            }
        }
    };
}

header_names! {
    Via => "Via", "v";
    From => "From", "f";
    To => "To", "t";
    CallId => "Call-ID", "i";
    CSeq => "CSeq";
    MaxForwards => "Max-Forwards";
    Contact => "Contact", "m";
    Route => "Route";
    RecordRoute => "Record-Route";
    ContentLength => "Content-Length", "l";
    ContentType => "Content-Type", "c";
    ContentEncoding => "Content-Encoding", "e";
    ContentDisposition => "Content-Disposition";
    Expires => "Expires";
    MinExpires => "Min-Expires";
    Authorization => "Authorization";
    ProxyAuthorization => "Proxy-Authorization";
    WwwAuthenticate => "WWW-Authenticate";
    ProxyAuthenticate => "Proxy-Authenticate";
    Privacy => "Privacy";
    PAssertedIdentity => "P-Asserted-Identity";
    PPreferredIdentity => "P-Preferred-Identity";
    RemotePartyId => "Remote-Party-ID";
    Require => "Require";
    ProxyRequire => "Proxy-Require";
    Supported => "Supported", "k";
    Unsupported => "Unsupported";
    Allow => "Allow";
    Accept => "Accept";
    SessionExpires => "Session-Expires", "x";
    MinSe => "Min-SE";
    Subject => "Subject", "s";
    Event => "Event", "o";
    ReferTo => "Refer-To", "r";
    ReferredBy => "Referred-By", "b";
    AcceptContact => "Accept-Contact", "a";
    RejectContact => "Reject-Contact", "j";
    RequestDisposition => "Request-Disposition", "d";
    Identity => "Identity", "y";
    AllowEvents => "Allow-Events", "u";
    UserAgent => "User-Agent";
    Server => "Server";
    Warning => "Warning";
    RetryAfter => "Retry-After";
    Reason => "Reason";
    SubscriptionState => "Subscription-State";
    RSeq => "RSeq";
    RAck => "RAck";
}

/// Classifies a full (non-compact) name: candidates are narrowed by length and
/// first letter, then compared case-insensitively. `ALL` and a unit test keep this
/// in step with the list above.
fn classify_full(name: &str) -> HeaderName {
    let b = name.as_bytes();
    let first = b.first().map_or(0, u8::to_ascii_lowercase);
    let candidates: &[(HeaderName, &str)] = match (b.len(), first) {
        (2, b't') => &[(HeaderName::To, "To")],
        (3, b'v') => &[(HeaderName::Via, "Via")],
        (4, b'c') => &[(HeaderName::CSeq, "CSeq")],
        (4, b'f') => &[(HeaderName::From, "From")],
        (4, b'r') => &[(HeaderName::RSeq, "RSeq"), (HeaderName::RAck, "RAck")],
        (5, b'a') => &[(HeaderName::Allow, "Allow")],
        (5, b'e') => &[(HeaderName::Event, "Event")],
        (5, b'r') => &[(HeaderName::Route, "Route")],
        (6, b'a') => &[(HeaderName::Accept, "Accept")],
        (6, b'm') => &[(HeaderName::MinSe, "Min-SE")],
        (6, b'r') => &[(HeaderName::Reason, "Reason")],
        (6, b's') => &[(HeaderName::Server, "Server")],
        (7, b'c') => &[
            (HeaderName::CallId, "Call-ID"),
            (HeaderName::Contact, "Contact"),
        ],
        (7, b'e') => &[(HeaderName::Expires, "Expires")],
        (7, b'p') => &[(HeaderName::Privacy, "Privacy")],
        (7, b'r') => &[(HeaderName::Require, "Require")],
        (7, b's') => &[(HeaderName::Subject, "Subject")],
        (7, b'w') => &[(HeaderName::Warning, "Warning")],
        (8, b'i') => &[(HeaderName::Identity, "Identity")],
        (8, b'r') => &[(HeaderName::ReferTo, "Refer-To")],
        (9, b's') => &[(HeaderName::Supported, "Supported")],
        (10, b'u') => &[(HeaderName::UserAgent, "User-Agent")],
        (11, b'm') => &[(HeaderName::MinExpires, "Min-Expires")],
        (11, b'r') => &[
            (HeaderName::ReferredBy, "Referred-By"),
            (HeaderName::RetryAfter, "Retry-After"),
        ],
        (11, b'u') => &[(HeaderName::Unsupported, "Unsupported")],
        (12, b'a') => &[(HeaderName::AllowEvents, "Allow-Events")],
        (12, b'c') => &[(HeaderName::ContentType, "Content-Type")],
        (12, b'm') => &[(HeaderName::MaxForwards, "Max-Forwards")],
        (12, b'r') => &[(HeaderName::RecordRoute, "Record-Route")],
        (13, b'a') => &[(HeaderName::Authorization, "Authorization")],
        (13, b'p') => &[(HeaderName::ProxyRequire, "Proxy-Require")],
        (14, b'a') => &[(HeaderName::AcceptContact, "Accept-Contact")],
        (14, b'c') => &[(HeaderName::ContentLength, "Content-Length")],
        (14, b'r') => &[(HeaderName::RejectContact, "Reject-Contact")],
        (15, b'r') => &[(HeaderName::RemotePartyId, "Remote-Party-ID")],
        (15, b's') => &[(HeaderName::SessionExpires, "Session-Expires")],
        (16, b'c') => &[(HeaderName::ContentEncoding, "Content-Encoding")],
        (16, b'w') => &[(HeaderName::WwwAuthenticate, "WWW-Authenticate")],
        (18, b'p') => &[(HeaderName::ProxyAuthenticate, "Proxy-Authenticate")],
        (18, b's') => &[(HeaderName::SubscriptionState, "Subscription-State")],
        (19, b'c') => &[(HeaderName::ContentDisposition, "Content-Disposition")],
        (19, b'p') => &[
            (HeaderName::ProxyAuthorization, "Proxy-Authorization"),
            (HeaderName::PAssertedIdentity, "P-Asserted-Identity"),
        ],
        (19, b'r') => &[(HeaderName::RequestDisposition, "Request-Disposition")],
        (20, b'p') => &[(HeaderName::PPreferredIdentity, "P-Preferred-Identity")],
        _ => return HeaderName::Other,
    };
    candidates
        .iter()
        .find(|(_, canon)| same_name(b, canon.as_bytes()))
        .map_or(HeaderName::Other, |(h, _)| *h)
}

/// Case-insensitive comparison with a canonical name (ASCII letters and `-` only),
/// without a branch per byte. Canonical letters have bit 0x40 set and `-` has not,
/// so `(c & 0x40) >> 1` is 0x20 exactly where the canonical byte is a letter:
/// setting that bit on both sides lower-cases letters (and maps no other byte onto
/// a letter), while a `-` must match exactly. Names of eight bytes or more are
/// compared a word at a time (the last word overlapping the one before).
#[inline]
fn same_name(written: &[u8], canon: &[u8]) -> bool {
    const BIT6: u64 = 0x4040_4040_4040_4040;
    let n = written.len();
    if n != canon.len() {
        return false;
    }
    if n < 8 {
        let mut diff = 0u8;
        for (w, c) in written.iter().zip(canon) {
            let m = (c & 0x40) >> 1;
            diff |= (w | m) ^ (c | m);
        }
        return diff == 0;
    }
    let word = |b: &[u8], at: usize| {
        b.get(at..at + 8)
            .and_then(|s| <[u8; 8]>::try_from(s).ok())
            .map_or(0, u64::from_le_bytes)
    };
    let mut diff = 0u64;
    let mut at = 0;
    loop {
        let at8 = at.min(n - 8);
        let (w, c) = (word(written, at8), word(canon, at8));
        let m = (c & BIT6) >> 1;
        diff |= (w | m) ^ (c | m);
        if at8 == n - 8 {
            break;
        }
        at += 8;
    }
    diff == 0
}

impl HeaderName {
    /// Whether several values of this header may share one line, separated by commas
    /// (RFC 3261 §7.3.1). Authentication headers are excluded: their commas separate
    /// parameters, not values.
    pub fn is_list(self) -> bool {
        matches!(
            self,
            HeaderName::Via
                | HeaderName::Contact
                | HeaderName::Route
                | HeaderName::RecordRoute
                | HeaderName::Require
                | HeaderName::ProxyRequire
                | HeaderName::Supported
                | HeaderName::Unsupported
                | HeaderName::Allow
                | HeaderName::Accept
                | HeaderName::ContentEncoding
                | HeaderName::PAssertedIdentity
                | HeaderName::PPreferredIdentity
                | HeaderName::RemotePartyId
                | HeaderName::AllowEvents
                | HeaderName::Warning
                | HeaderName::Reason
                | HeaderName::AcceptContact
                | HeaderName::RejectContact
                | HeaderName::RequestDisposition
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_case_insensitive() {
        assert_eq!(HeaderName::classify("v"), HeaderName::Via);
        assert_eq!(HeaderName::classify("V"), HeaderName::Via);
        assert_eq!(HeaderName::classify("i"), HeaderName::CallId);
        assert_eq!(HeaderName::classify("call-id"), HeaderName::CallId);
        assert_eq!(
            HeaderName::classify("CONTENT-LENGTH"),
            HeaderName::ContentLength
        );
        assert_eq!(HeaderName::classify("l"), HeaderName::ContentLength);
        assert_eq!(HeaderName::classify("m"), HeaderName::Contact);
        assert_eq!(HeaderName::classify("X-Custom"), HeaderName::Other);
        assert_eq!(HeaderName::classify("z"), HeaderName::Other);
        assert_eq!(HeaderName::Contact.compact(), Some("m"));
        assert_eq!(HeaderName::CallId.as_str(), "Call-ID");
    }

    #[test]
    fn every_name_classifies_back_in_any_case() {
        for h in HeaderName::ALL {
            let canon = h.as_str();
            assert_eq!(HeaderName::classify(canon), *h, "{canon}");
            assert_eq!(HeaderName::classify(&canon.to_uppercase()), *h, "{canon}");
            assert_eq!(HeaderName::classify(&canon.to_lowercase()), *h, "{canon}");
            if let Some(c) = h.compact() {
                assert_eq!(HeaderName::classify(c), *h, "{c}");
                assert_eq!(HeaderName::classify(&c.to_uppercase()), *h, "{c}");
            }
        }
        for other in [
            "",
            "Vía",
            "X-Via",
            "Vias",
            "Fro",
            "Contact-X",
            "P-Asserted-Identit",
        ] {
            assert_eq!(HeaderName::classify(other), HeaderName::Other, "{other}");
        }
    }
}
