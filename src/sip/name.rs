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
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other => "",
                }
            }

            /// Classifies a written name (full or compact, any case) without allocating.
            pub fn classify(name: &str) -> HeaderName {
                Self::classify_bytes(name.as_bytes())
            }

            /// [`HeaderName::classify`] on bytes.
            pub(crate) fn classify_bytes(b: &[u8]) -> HeaderName {
                if b.len() == 1 {
                    let c = b.first().map(|c| c.to_ascii_lowercase()).unwrap_or(0);
                    $( $( if c == $compact.as_bytes().first().copied().unwrap_or(0) { return HeaderName::$variant; } )? )*
                    return HeaderName::Other;
                }
                classify_full(b)
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

/// Slot of a full name in `BY_SLOT`, from its length and its first and last bytes
/// (lower-cased). The constants were chosen so that no two known names share a
/// slot; `BY_SLOT` fails to compile if an added name collides.
const fn slot(len: usize, first: u8, last: u8) -> usize {
    (len + (first | 0x20) as usize * 37 + (last | 0x20) as usize * 29) & 127
}

/// Every known full name at its slot; `Other` where none.
static BY_SLOT: [HeaderName; 128] = {
    let mut table = [HeaderName::Other; 128];
    let mut i = 0;
    while i < HeaderName::ALL.len() {
        let h = HeaderName::ALL[i];
        let n = h.as_str().as_bytes();
        let s = slot(n.len(), n[0], n[n.len() - 1]);
        if !matches!(table[s], HeaderName::Other) {
            panic!("two header names share a slot: choose new constants in `slot`");
        }
        table[s] = h;
        i += 1;
    }
    table
};

/// Classifies a full (non-compact) name: one table probe, then one comparison.
fn classify_full(b: &[u8]) -> HeaderName {
    let (Some(first), Some(last)) = (b.first(), b.last()) else {
        return HeaderName::Other;
    };
    let h = BY_SLOT
        .get(slot(b.len(), *first, *last))
        .copied()
        .unwrap_or(HeaderName::Other);
    if h != HeaderName::Other && same_name(b, h.as_str().as_bytes()) {
        h
    } else {
        HeaderName::Other
    }
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
