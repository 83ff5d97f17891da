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
                $( if b.len() == $canon.len() && name.eq_ignore_ascii_case($canon) { return HeaderName::$variant; } )*
                HeaderName::Other
            }

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
}
