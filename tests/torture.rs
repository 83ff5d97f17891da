//! Torture suite: the messages under `fixtures/sip/` in the categories of RFC 4475
//! (valid but odd, and invalid) and RFC 5118 (IPv6). The files are raw wire bytes
//! (see fixtures/sip/README.md). Every valid message must parse and validate to the
//! values in `VALID`, re-serialize byte for byte when untouched, and re-parse from its
//! own serialization to the same values. Every invalid one must fail at the stage in
//! `INVALID` with a reason naming the fault.

use std::collections::BTreeSet;
use std::path::Path;

use sipveil::sip::headers::NameAddr;
use sipveil::sip::uri::{Host, Scheme, Uri};
use sipveil::sip::{Frame, HeaderName, Limits, Method, ParseError, SipMessage, StreamFramer};

fn fixture(kind: &str, name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/sip")
        .join(kind)
        .join(format!("{name}.sip"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn listed(kind: &str) -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/sip")
        .join(kind);
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sip"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// How the untouched message re-serializes.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Bytes {
    /// Exactly the received bytes (leading CRLFs before the start line excepted).
    Same,
    /// The received bytes up to the end of the body; what followed was discarded.
    Prefix,
    /// Bare-LF input: written back with CRLF, so only equivalent.
    Equivalent,
}

/// What a valid fixture must parse to.
struct Valid {
    file: &'static str,
    /// Method as written, or the status code.
    start: &'static str,
    /// Request-URI host (as displayed, IPv6 in brackets; "" when the scheme has none)
    /// and port.
    ruri: Option<(&'static str, Option<u16>)>,
    call_id: &'static str,
    /// Top Via: branch, host, port, rport.
    via: (
        Option<&'static str>,
        &'static str,
        Option<u16>,
        Option<Option<u16>>,
    ),
    from_tag: Option<&'static str>,
    to_tag: Option<&'static str>,
    contacts: usize,
    body: usize,
    bytes: Bytes,
    /// Checks particular to the fixture.
    extra: fn(&SipMessage),
}

fn none(_: &SipMessage) {}

/// The values a valid message is compared by, also after a serialize/re-parse trip.
#[derive(Debug, PartialEq)]
struct Summary {
    start: String,
    ruri: Option<(String, Option<u16>)>,
    call_id: Option<String>,
    via: (Option<String>, String, Option<u16>, Option<Option<u16>>),
    vias: usize,
    from_tag: Option<String>,
    to_tag: Option<String>,
    contacts: usize,
    star: bool,
    body: Vec<u8>,
    headers: Vec<(HeaderName, String, String)>,
    version: String,
}

fn summary(m: &SipMessage) -> Summary {
    let via = m.top_via().unwrap();
    Summary {
        start: match m.method() {
            Some(me) => me.as_str().to_string(),
            None => m.status().unwrap().to_string(),
        },
        ruri: m.request_uri().map(|u| {
            let u = Uri::parse(u).unwrap();
            (u.host.to_string(), u.port)
        }),
        call_id: m.call_id().map(String::from),
        via: (
            via.branch().map(String::from),
            via.host.to_string(),
            via.port,
            via.rport(),
        ),
        vias: m.vias().count(),
        from_tag: m.from_header().unwrap().tag().map(String::from),
        to_tag: m.to_header().unwrap().tag().map(String::from),
        contacts: m
            .contacts()
            .inspect(|c| assert!(c.is_ok(), "{c:?}"))
            .count(),
        star: m.contact_is_star(),
        body: m.body().to_vec(),
        headers: m
            .headers()
            .map(|h| (h.name, h.written_name.to_string(), h.value.to_string()))
            .collect(),
        version: m.version().to_string(),
    }
}

fn contact(m: &SipMessage, i: usize) -> NameAddr<'_> {
    m.contacts().nth(i).unwrap().unwrap()
}

fn ruri(m: &SipMessage) -> Uri<'_> {
    Uri::parse(m.request_uri().unwrap()).unwrap()
}

/// The 200-character To tag of `long-values`.
const LONG_TO_TAG: &str = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

const VALID: &[Valid] = &[
    Valid {
        file: "typical-invite",
        start: "INVITE",
        ruri: Some(("sbc.example.net", None)),
        call_id: "4f9d2b77-0c1e-4a8b-9d53-71e6a0b5c3f2@198.51.100.23",
        via: (
            Some("z9hG4bK-5a1c7e2d-19f3"),
            "198.51.100.23",
            Some(5060),
            Some(None),
        ),
        from_tag: Some("8f31c0a2"),
        to_tag: None,
        contacts: 1,
        body: 260,
        bytes: Bytes::Same,
        extra: |m| {
            assert_eq!(m.allow().count(), 10);
            assert_eq!(
                m.supported().collect::<Vec<_>>(),
                ["replaces", "timer", "100rel"]
            );
            let se = m.session_expires().unwrap().unwrap();
            assert_eq!((se.delta, se.refresher), (1800, Some("uac")));
            assert_eq!(
                m.from_header().unwrap().display_name().unwrap(),
                "Mara Lindqvist"
            );
            assert_eq!(ruri(m).params.get("user"), Some(Some("phone")));
            assert_eq!(m.content_type(), Some("application/sdp"));
        },
    },
    Valid {
        file: "typical-200",
        start: "200",
        ruri: None,
        call_id: "4f9d2b77-0c1e-4a8b-9d53-71e6a0b5c3f2@198.51.100.23",
        via: (
            Some("z9hG4bK-5a1c7e2d-19f3"),
            "198.51.100.23",
            Some(5060),
            Some(Some(5060)),
        ),
        from_tag: Some("8f31c0a2"),
        to_tag: Some("sbc-71c2e9"),
        contacts: 1,
        body: 184,
        bytes: Bytes::Same,
        extra: |m| {
            assert_eq!(m.reason(), Some("OK"));
            assert_eq!(m.top_via().unwrap().received(), Some("198.51.100.23"));
            assert_eq!(m.require().collect::<Vec<_>>(), ["timer"]);
        },
    },
    Valid {
        file: "compact-forms",
        start: "MESSAGE",
        ruri: Some(("chat.example.org", None)),
        call_id: "compact-01@192.0.2.40",
        via: (Some("z9hG4bKcompact01"), "192.0.2.40", Some(5060), None),
        from_tag: Some("ab12"),
        to_tag: None,
        contacts: 1,
        body: 24,
        bytes: Bytes::Same,
        extra: |m| {
            assert_eq!(m.content_type(), Some("text/plain"));
            assert_eq!(m.content_length().unwrap(), Some(24));
            assert_eq!(m.supported().collect::<Vec<_>>(), ["path", "gruu"]);
            assert_eq!(m.header(HeaderName::Subject), Some("hi there"));
            assert_eq!(m.header(HeaderName::ContentEncoding), Some("identity"));
            assert_eq!(m.header(HeaderName::Event), Some("presence"));
            assert_eq!(m.header(HeaderName::AllowEvents), Some("message-summary"));
            assert_eq!(m.header_named("Content-Length"), Some("24"));
        },
    },
    Valid {
        file: "whitespace-and-folding",
        start: "INVITE",
        ruri: Some(("example.com", None)),
        call_id: "wsfold.0331@192.0.2.7",
        via: (Some("z9hG4bKfoldedvia"), "192.0.2.7", None, Some(None)),
        from_tag: Some("fold-77"),
        to_tag: None,
        contacts: 1,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| {
            assert_eq!(
                m.to_header().unwrap().display_name().unwrap(),
                "Vic (the tester)"
            );
            assert_eq!(m.from_header().unwrap().display_name().unwrap(), "Pat");
            assert_eq!(m.max_forwards().unwrap(), Some(68));
            let cseq = m.cseq().unwrap();
            assert_eq!((cseq.seq, cseq.method), (12, Method::Invite));
            assert_eq!(m.header(HeaderName::Subject), Some(""));
            assert_eq!(
                m.header_named("x-report-sink"),
                Some("value with   inner   spaces continued on a tab-indented line")
            );
            assert_eq!(m.header_named("X-Nothing-Useful"), Some(";;,,;;,;"));
            assert_eq!(m.top_via().unwrap().transport, "UDP");
        },
    },
    Valid {
        file: "escaped-user-with-nul",
        start: "REGISTER",
        ruri: Some(("registrar.example.com", None)),
        call_id: "esc-null.2093@192.0.2.19",
        via: (Some("z9hG4bKnul0nul"), "192.0.2.19", None, None),
        from_tag: Some("nul-4411"),
        to_tag: None,
        contacts: 2,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| {
            let to = m.to_header().unwrap();
            assert_eq!(to.uri.user, Some("ring-%00-tone"));
            assert_eq!(to.uri.user_decoded().unwrap(), "ring-\0-tone");
            assert_eq!(contact(m, 0).uri.user_decoded().unwrap(), "\0\0");
            assert_eq!(contact(m, 1).uri.user_decoded().unwrap(), "\0xyz\0");
            assert_eq!(m.content_length().unwrap(), Some(0));
        },
    },
    Valid {
        file: "escaped-ruri-user",
        start: "INVITE",
        ruri: Some(("example.net", None)),
        call_id: "escaped.uri.7@host7.example.com",
        via: (Some("z9hG4bKescape1"), "host7.example.com", None, None),
        from_tag: Some("e5c4p3"),
        to_tag: None,
        contacts: 1,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| {
            assert_eq!(ruri(m).user_decoded().unwrap(), "karin@home:old");
            assert_eq!(
                m.from_header().unwrap().uri.user_decoded().unwrap(),
                "+operator"
            );
            assert_eq!(contact(m, 0).uri.user_decoded().unwrap(), "op desk");
        },
    },
    Valid {
        file: "percent-not-an-escape",
        start: "FE%54CH",
        ruri: Some(("store.example.com", None)),
        call_id: "pct-not-esc@192.0.2.60",
        via: (Some("z9hG4bKpctmethod"), "192.0.2.60", None, None),
        from_tag: Some("pct1"),
        to_tag: None,
        contacts: 0,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| {
            assert_eq!(m.method(), Some(&Method::Extension("FE%54CH".into())));
            assert_eq!(
                m.cseq().unwrap().method,
                Method::Extension("FE%54CH".into())
            );
            assert_eq!(
                m.to_header().unwrap().display_name().unwrap(),
                "%Q%7x 100% sure"
            );
        },
    },
    Valid {
        file: "extension-method-odd-tokens",
        start: "!wacky.Method-9_*+`%'~",
        ruri: Some(("lab.example.com", None)),
        call_id: "odd.tokens-(123)<test>:\\\"x\\\"/[y]?{z}@lab.example.com",
        via: (
            Some("z9hG4bK-odd.token%~'`!*+_"),
            "lab.example.com",
            None,
            None,
        ),
        from_tag: Some("~tag.with!odd*chars"),
        to_tag: None,
        contacts: 0,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| {
            let u = ruri(m);
            assert_eq!(u.user, Some("odd-user_(fine!)&ok=1+$,;?/x"));
            assert_eq!(u.password, Some("pw!~*'()&=+$,"));
            assert!(u.params.has("weird-param"));
            assert_eq!(u.params.get("x"), Some(Some("!~*'()")));
            assert_eq!(u.headers, None);
            assert_eq!(
                m.to_header().unwrap().display_name().unwrap(),
                "Ünïcödé Ñame ✓"
            );
            assert_eq!(m.from_header().unwrap().display_name().unwrap(), "odd");
            assert_eq!(m.max_forwards().unwrap(), Some(255));
            assert_eq!(
                m.header_named("EXT-HEADER.!%*_+`'~"),
                Some("value with Ünïcödé and symbols !\"#$%&/()=?")
            );
        },
    },
    Valid {
        file: "via-unusual-spacing",
        start: "OPTIONS",
        ruri: Some(("example.org", None)),
        call_id: "spacing-in-via@192.0.2.81",
        via: (Some("z9hG4bKspaced"), "192.0.2.81", Some(5080), Some(None)),
        from_tag: Some("sp1"),
        to_tag: None,
        contacts: 0,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| {
            let second = m.vias().nth(1).unwrap().unwrap();
            assert_eq!((second.protocol, second.version), ("SIP", "2.0"));
            assert_eq!(second.transport, "TCP");
            assert_eq!(second.host, Host::Name("proxy.example.org"));
        },
    },
    Valid {
        file: "ipv6-via-rport",
        start: "OPTIONS",
        ruri: Some(("[2001:db8:a::7]", Some(5062))),
        call_id: "ipv6-rport@2001:db8:a::1",
        via: (
            Some("z9hG4bKv6rport"),
            "[2001:db8:a::1]",
            Some(5070),
            Some(None),
        ),
        from_tag: Some("v6a"),
        to_tag: None,
        contacts: 1,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| {
            let second = m.vias().nth(1).unwrap().unwrap();
            assert_eq!(second.received(), Some("2001:db8:a::99"));
            assert_eq!(second.rport(), Some(Some(5099)));
            assert_eq!(contact(m, 0).uri.port, Some(5070));
        },
    },
    Valid {
        file: "rfc2543-no-cookie",
        start: "INVITE",
        ruri: Some(("legacy.example.com", None)),
        call_id: "legacy-peer-7781@192.0.2.150",
        via: (Some("0a1b2c3d4e"), "192.0.2.150", Some(5060), None),
        from_tag: Some("2543"),
        to_tag: None,
        contacts: 1,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| {
            assert!(!m.top_via().unwrap().has_rfc3261_branch());
            assert_eq!(m.max_forwards().unwrap(), None);
            assert!(!m.to_header().unwrap().bracketed);
        },
    },
    Valid {
        file: "quoted-display-escapes",
        start: "NOTIFY",
        ruri: Some(("192.0.2.33", Some(5072))),
        call_id: "quoted.names@192.0.2.1",
        via: (Some("z9hG4bKquotes"), "192.0.2.1", None, None),
        from_tag: Some("q1"),
        to_tag: Some("q2"),
        contacts: 1,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| {
            assert_eq!(
                m.from_header().unwrap().display_name().unwrap(),
                "Sam \"Hammer\" O\\Connor, Jr. <boss>; x=y"
            );
            assert_eq!(
                m.to_header().unwrap().display_name().unwrap(),
                "  spaced  \\  "
            );
            assert_eq!(
                contact(m, 0).display_name().unwrap(),
                "Comma, In \"Quotes\""
            );
            assert_eq!(
                m.header(HeaderName::SubscriptionState),
                Some("active;expires=600")
            );
        },
    },
    Valid {
        file: "contact-star",
        start: "REGISTER",
        ruri: Some(("example.com", None)),
        call_id: "unregister-all@192.0.2.44",
        via: (Some("z9hG4bKunreg"), "192.0.2.44", Some(5060), None),
        from_tag: Some("unreg1"),
        to_tag: None,
        contacts: 0,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| {
            assert!(m.contact_is_star());
            assert_eq!(m.expires(), Some(0));
        },
    },
    Valid {
        file: "multiple-values-per-line",
        start: "INVITE",
        ruri: Some(("example.com", None)),
        call_id: "multi-values@192.0.2.3",
        via: (Some("z9hG4bKmv2"), "p2.example.com", None, None),
        from_tag: Some("mv"),
        to_tag: None,
        contacts: 3,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| {
            assert_eq!(m.vias().count(), 3);
            assert_eq!(
                m.vias().nth(1).unwrap().unwrap().received(),
                Some("192.0.2.2")
            );
            assert_eq!(m.routes().count(), 3);
            assert_eq!(m.record_routes().count(), 2);
            assert_eq!(
                m.allow().collect::<Vec<_>>(),
                ["INVITE", "ACK", "BYE", "CANCEL"]
            );
            assert_eq!(m.supported().count(), 3);
            assert_eq!(contact(m, 0).display_name().unwrap(), "One, First");
            assert_eq!(contact(m, 0).q(), Some(0.9));
            assert_eq!(contact(m, 1).expires(), Some(30));
            assert!(!contact(m, 2).bracketed);
            assert_eq!(m.from_header().unwrap().display_name().unwrap(), "Lee, Kim");
        },
    },
    Valid {
        file: "unknown-schemes-in-headers",
        start: "OPTIONS",
        ruri: Some(("example.com", None)),
        call_id: "unknown-schemes@192.0.2.91",
        via: (Some("z9hG4bKschemes"), "192.0.2.91", None, None),
        from_tag: Some("https"),
        to_tag: None,
        contacts: 2,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| {
            assert_eq!(m.to_header().unwrap().uri.scheme, Scheme::Other("urn"));
            assert_eq!(m.from_header().unwrap().uri.scheme, Scheme::Other("https"));
            assert_eq!(contact(m, 0).uri.scheme, Scheme::Other("im"));
            assert_eq!(contact(m, 1).uri.scheme, Scheme::Other("mailto"));
        },
    },
    Valid {
        file: "unknown-scheme-ruri",
        start: "OPTIONS",
        ruri: Some(("", None)),
        call_id: "unknown-scheme-ruri@192.0.2.92",
        via: (Some("z9hG4bKunkscheme"), "192.0.2.92", None, None),
        from_tag: Some("uks"),
        to_tag: None,
        contacts: 0,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| {
            let u = ruri(m);
            assert_eq!(u.scheme, Scheme::Other("zz-proto"));
            assert!(!u.is_sip());
            assert_eq!(u.opaque, "opaque/thing;with=params?and-query");
        },
    },
    Valid {
        file: "tel-ruri",
        start: "INVITE",
        ruri: Some(("", None)),
        call_id: "tel-uri@gw.example.com",
        via: (Some("z9hG4bKtel"), "gw.example.com", None, None),
        from_tag: Some("tel"),
        to_tag: None,
        contacts: 1,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| {
            let u = ruri(m);
            assert_eq!(u.scheme, Scheme::Tel);
            assert_eq!(u.user, Some("+1-201-555-0143"));
            assert_eq!(u.params.get("phone-context"), Some(Some("example.com")));
            assert_eq!(m.from_header().unwrap().uri.user, Some("*31#555(0100)"));
            assert_eq!(m.p_asserted_identities().count(), 1);
            assert_eq!(m.privacy().collect::<Vec<_>>(), ["id"]);
        },
    },
    Valid {
        file: "semicolon-in-user",
        start: "INVITE",
        ruri: Some(("gw.example.net", None)),
        call_id: "semicolons-in-user@192.0.2.70",
        via: (Some("z9hG4bKsemi"), "192.0.2.70", None, None),
        from_tag: Some("semi"),
        to_tag: None,
        contacts: 1,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| {
            let u = ruri(m);
            assert_eq!(u.user, Some("+1-555-0100;npdi;rn=+1-555-0199"));
            assert_eq!(u.params.get("user"), Some(Some("phone")));
            assert!(!u.params.has("npdi"));
            assert_eq!(m.from_header().unwrap().uri.user, Some("caller;ext=22"));
        },
    },
    Valid {
        file: "transports",
        start: "OPTIONS",
        ruri: Some(("example.com", None)),
        call_id: "transports@t1.example.com",
        via: (Some("z9hG4bKsctp"), "t1.example.com", None, None),
        from_tag: Some("tr"),
        to_tag: None,
        contacts: 0,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| {
            let t: Vec<_> = m.vias().map(|v| v.unwrap().transport).collect();
            assert_eq!(t, ["SCTP", "TLS", "WSS", "NEWFANGLED", "TCP"]);
        },
    },
    Valid {
        file: "contact-params",
        start: "REGISTER",
        ruri: Some(("example.com", None)),
        call_id: "contact-params@192.0.2.45",
        via: (Some("z9hG4bKcparam"), "192.0.2.45", None, None),
        from_tag: Some("cp"),
        to_tag: None,
        contacts: 3,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| {
            let c0 = contact(m, 0);
            assert!(!c0.bracketed);
            assert!(c0.params.has("header-level-param"));
            assert_eq!(c0.expires(), Some(90));
            assert_eq!(c0.uri.params.as_str(), "");
            let c1 = contact(m, 1);
            assert!(c1.uri.params.has("uri-level-param"));
            assert_eq!(c1.q(), Some(0.25));
            let c2 = contact(m, 2);
            assert_eq!(c2.uri.headers, Some("Route=%3Csip:edge.example.com%3E"));
            let auth = m.authorization().unwrap().unwrap();
            assert_eq!(auth.scheme, "NewScheme");
            assert_eq!(auth.get("blob").unwrap(), "1234");
            assert_eq!(m.require().collect::<Vec<_>>(), ["no-such-extension"]);
            assert_eq!(
                m.header(HeaderName::ProxyRequire),
                Some("another-unknown-one")
            );
        },
    },
    Valid {
        file: "many-headers",
        start: "INFO",
        ruri: Some(("example.com", None)),
        call_id: "many-headers@hop00.example.com",
        via: (Some("z9hG4bKhop00"), "hop00.example.com", Some(5000), None),
        from_tag: Some("many"),
        to_tag: None,
        contacts: 1,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| {
            assert_eq!(m.header_count(), 127);
            assert_eq!(m.vias().count(), 31);
            assert_eq!(
                m.vias().last().unwrap().unwrap().branch(),
                Some("z9hG4bKhop30")
            );
            assert_eq!(
                m.header_named("x-filler-088"),
                Some("value number 88 of a long list of extension headers")
            );
        },
    },
    Valid {
        file: "long-values",
        start: "OPTIONS",
        ruri: Some(("long.example.com", None)),
        call_id: "", // checked in `extra`
        via: (None, "long.example.com", None, None),
        from_tag: None,
        to_tag: Some(LONG_TO_TAG),
        contacts: 1,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| {
            assert_eq!(m.call_id().unwrap().len(), 1 + 13 * 70 + 12);
            assert_eq!(m.top_via().unwrap().branch().unwrap().len(), 7 + 500);
            assert_eq!(m.from_header().unwrap().tag().unwrap().len(), 1 + 16 * 60);
            assert_eq!(m.to_header().unwrap().tag().unwrap().len(), 200);
            assert_eq!(ruri(m).user.unwrap().len(), 300);
            let name = format!("X-{}", "Very-Long-Header-Name-".repeat(30));
            assert_eq!(m.header_named(&name).unwrap().len(), 4000);
            assert_eq!(contact(m, 0).uri.params.iter().count(), 300);
        },
    },
    Valid {
        file: "big-legal-body",
        start: "MESSAGE",
        ruri: Some(("example.com", None)),
        call_id: "big-body@192.0.2.200",
        via: (Some("z9hG4bKbigbody"), "192.0.2.200", None, None),
        from_tag: Some("big"),
        to_tag: None,
        contacts: 0,
        body: 61000,
        bytes: Bytes::Same,
        extra: |m| {
            assert!(m
                .body()
                .ends_with(b"a=x-line-00999:zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\r\n"));
        },
    },
    Valid {
        file: "multipart-body",
        start: "INVITE",
        ruri: Some(("example.com", None)),
        call_id: "multipart-body@192.0.2.12",
        via: (Some("z9hG4bKmultipart"), "192.0.2.12", None, None),
        from_tag: Some("mp"),
        to_tag: None,
        contacts: 1,
        body: 297,
        bytes: Bytes::Same,
        extra: |m| {
            assert_eq!(
                m.content_type(),
                Some("multipart/mixed;boundary=part-sep-42")
            );
            assert!(m.body().ends_with(b"--part-sep-42--\r\n"));
        },
    },
    Valid {
        file: "utf8-reason",
        start: "200",
        ruri: None,
        call_id: "utf8-reason@192.0.2.198",
        via: (Some("z9hG4bKutf8reason"), "192.0.2.198", None, None),
        from_tag: Some("u1"),
        to_tag: Some("u2"),
        contacts: 0,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| {
            assert_eq!(
                m.reason(),
                Some("Alles gut — 好的 — всё хорошо = 2**3 * 5**2")
            );
        },
    },
    Valid {
        file: "empty-reason",
        start: "100",
        ruri: None,
        call_id: "empty-reason@192.0.2.199",
        via: (Some("z9hG4bKemptyreason"), "192.0.2.199", None, None),
        from_tag: Some("e1"),
        to_tag: None,
        contacts: 0,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| assert_eq!(m.reason(), Some("")),
    },
    Valid {
        file: "lf-line-endings",
        start: "BYE",
        ruri: Some(("192.0.2.77", None)),
        call_id: "bare-lf@192.0.2.78",
        via: (Some("z9hG4bKbarelf"), "192.0.2.78", None, None),
        from_tag: Some("lf1"),
        to_tag: Some("lf2"),
        contacts: 0,
        body: 0,
        bytes: Bytes::Equivalent,
        extra: |m| {
            assert_eq!(m.header(HeaderName::Subject), Some("folded over a bare LF"));
        },
    },
    Valid {
        file: "trailing-datagram-bytes",
        start: "REGISTER",
        ruri: Some(("example.com", None)),
        call_id: "trailing-bytes@192.0.2.88",
        via: (Some("z9hG4bKtrail"), "192.0.2.88", None, None),
        from_tag: Some("tr1"),
        to_tag: None,
        contacts: 1,
        body: 0,
        bytes: Bytes::Prefix,
        extra: |m| assert_eq!(m.cseq().unwrap().seq, 1),
    },
    Valid {
        file: "leading-crlf",
        start: "OPTIONS",
        ruri: Some(("example.com", None)),
        call_id: "leading-crlf@192.0.2.89",
        via: (Some("z9hG4bKleadcrlf"), "192.0.2.89", None, None),
        from_tag: Some("lc"),
        to_tag: None,
        contacts: 0,
        body: 0,
        bytes: Bytes::Same,
        extra: none,
    },
    Valid {
        file: "sip-version-7",
        start: "OPTIONS",
        ruri: Some(("example.com", None)),
        call_id: "version-seven@192.0.2.90",
        via: (Some("z9hG4bKv7"), "192.0.2.90", None, None),
        from_tag: Some("v7"),
        to_tag: None,
        contacts: 0,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| {
            // Parses, so the caller can answer 505 Version Not Supported.
            assert!(!m.is_sip2());
            assert_eq!(m.version(), "SIP/7.0");
            assert_eq!(m.top_via().unwrap().version, "7.0");
        },
    },
    Valid {
        file: "max-forwards-zero",
        start: "OPTIONS",
        ruri: Some(("example.com", None)),
        call_id: "max-forwards-zero@192.0.2.93",
        via: (Some("z9hG4bKmf0"), "192.0.2.93", None, None),
        from_tag: Some("mf0"),
        to_tag: None,
        contacts: 0,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| assert_eq!(m.max_forwards().unwrap(), Some(0)),
    },
    Valid {
        file: "broadcast-via",
        start: "200",
        ruri: None,
        call_id: "broadcast-via@192.0.2.94",
        via: (Some("z9hG4bKbcast"), "255.255.255.255", None, None),
        from_tag: Some("b1"),
        to_tag: Some("b2"),
        contacts: 0,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| {
            assert_eq!(
                m.top_via().unwrap().host,
                Host::V4(std::net::Ipv4Addr::BROADCAST)
            );
        },
    },
    Valid {
        file: "spaces-inside-angles",
        start: "OPTIONS",
        ruri: Some(("example.com", None)),
        call_id: "spaces-in-angles@192.0.2.95",
        via: (Some("z9hG4bKangles"), "192.0.2.95", None, None),
        from_tag: Some("ang"),
        to_tag: None,
        contacts: 0,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| {
            // RFC 4475 allows a liberal reader to ignore spaces inside <>.
            let from = m.from_header().unwrap();
            assert_eq!(from.uri.raw, "sip:tom@example.com");
            assert_eq!(from.display_name().unwrap(), "Watts, Tom");
            assert_eq!(m.to_header().unwrap().uri.raw, "sip:lenient@example.com");
        },
    },
    // RFC 5118: IPv6.
    Valid {
        file: "ipv6-register",
        start: "REGISTER",
        ruri: Some(("[2001:db8::10]", None)),
        call_id: "v6-register-5521@2001:db8::9:1",
        via: (Some("z9hG4bKv6reg-01"), "[2001:db8::9:1]", None, None),
        from_tag: Some("v6reg-3"),
        to_tag: None,
        contacts: 1,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| {
            assert_eq!(
                contact(m, 0).uri.host,
                Host::V6("2001:db8::9:1".parse().unwrap())
            );
        },
    },
    Valid {
        file: "ipv6-port-ambiguous",
        start: "REGISTER",
        ruri: Some(("[2001:db8::10:5070]", None)),
        call_id: "port-ambiguous@2001:db8::9:1",
        via: (Some("z9hG4bKambig"), "[2001:db8::9:1]", None, None),
        from_tag: Some("amb1"),
        to_tag: None,
        contacts: 1,
        body: 0,
        bytes: Bytes::Same,
        extra: none,
    },
    Valid {
        file: "ipv6-port-unambiguous",
        start: "REGISTER",
        ruri: Some(("[2001:db8::10]", Some(5070))),
        call_id: "port-unambiguous@2001:db8::9:1",
        via: (Some("z9hG4bKunambig"), "[2001:db8::9:1]", Some(5080), None),
        from_tag: Some("unamb1"),
        to_tag: None,
        contacts: 1,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| assert_eq!(contact(m, 0).uri.port, Some(5080)),
    },
    Valid {
        file: "ipv6-via-received-bracketed",
        start: "BYE",
        ruri: Some(("[2001:db8::c1]", Some(5060))),
        call_id: "via-received-v6@2001:db8::9:2",
        via: (Some("z9hG4bKrecvbr"), "[2001:db8::9:1]", None, None),
        from_tag: Some("rb1"),
        to_tag: Some("rb2"),
        contacts: 0,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| {
            assert_eq!(m.top_via().unwrap().received(), Some("[2001:db8::9:255]"));
            let second = m.vias().nth(1).unwrap().unwrap();
            assert_eq!(second.received(), Some("2001:db8::9:256"));
            assert_eq!(
                (second.port, second.rport()),
                (Some(6050), Some(Some(6051)))
            );
        },
    },
    Valid {
        file: "ipv6-in-sdp",
        start: "INVITE",
        ruri: Some(("[2001:db8::b0b]", None)),
        call_id: "v6-sdp@2001:db8::a11c",
        via: (
            Some("z9hG4bKv6sdp"),
            "[2001:db8::a11c]",
            Some(5060),
            Some(None),
        ),
        from_tag: Some("v6s"),
        to_tag: None,
        contacts: 1,
        body: 189,
        bytes: Bytes::Same,
        extra: |m| {
            assert!(m
                .body()
                .starts_with(b"v=0\r\no=alice 1 1 IN IP6 2001:db8::a11c\r\n"));
        },
    },
    Valid {
        file: "ipv6-mixed-addresses",
        start: "INVITE",
        ruri: Some(("example.com", None)),
        call_id: "mixed-families@192.0.2.1",
        via: (Some("z9hG4bKmix3"), "[2001:db8::1]", Some(5060), None),
        from_tag: Some("mix"),
        to_tag: None,
        contacts: 2,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| {
            let hosts: Vec<_> = m.vias().map(|v| v.unwrap().host.to_string()).collect();
            assert_eq!(hosts, ["[2001:db8::1]", "192.0.2.1", "[2001:db8::2]"]);
            let r: Vec<_> = m
                .routes()
                .map(|r| r.unwrap().uri.host.to_string())
                .collect();
            assert_eq!(r, ["[2001:db8::20]", "192.0.2.20"]);
            let rr = m.record_routes().next().unwrap().unwrap();
            assert_eq!((rr.uri.port, rr.uri.transport()), (Some(5070), Some("tcp")));
            let c = contact(m, 1);
            assert_eq!(c.uri.host, Host::V6("2001:db8::2".parse().unwrap()));
            assert_eq!(c.uri.port, Some(5070));
        },
    },
    Valid {
        file: "ipv4-mapped-ipv6",
        start: "OPTIONS",
        ruri: Some(("[::ffff:192.0.2.10]", None)),
        call_id: "v4-mapped@192.0.2.11",
        via: (
            Some("z9hG4bKmapped"),
            "[::ffff:192.0.2.11]",
            Some(5060),
            Some(None),
        ),
        from_tag: Some("map"),
        to_tag: None,
        contacts: 1,
        body: 0,
        bytes: Bytes::Same,
        extra: |m| {
            let h = contact(m, 0).uri.host;
            assert_eq!(h, Host::V6("::ffff:192.0.2.11".parse().unwrap()));
            // Mapped addresses stay IPv6 references: the caller decides how to route.
            assert!(h.ip().unwrap().is_ipv6());
        },
    },
    Valid {
        file: "ipv6-embedded-ipv4",
        start: "OPTIONS",
        ruri: Some(("[2001:db8::c000:201]", None)),
        call_id: "embedded-v4@2001:db8::c000:202",
        via: (Some("z9hG4bKemb"), "[2001:db8::1:0:c000:202]", None, None),
        from_tag: Some("emb"),
        to_tag: None,
        contacts: 0,
        body: 0,
        bytes: Bytes::Same,
        extra: none,
    },
];

/// Where an invalid message must be caught.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Stage {
    /// `SipMessage::parse` refuses it.
    Parse,
    /// It parses, but `validate` refuses it.
    Validate,
}

/// (file, stage, substring of the reason, status code of the answer)
const INVALID: &[(&str, Stage, &str, u16)] = &[
    ("header-missing-colon", Stage::Parse, "without colon", 400),
    ("empty-header-name", Stage::Parse, "empty name", 400),
    (
        "header-name-with-space",
        Stage::Parse,
        "header name is not a token",
        400,
    ),
    (
        "continuation-before-headers",
        Stage::Parse,
        "continuation line before any header",
        400,
    ),
    (
        "bad-start-line",
        Stage::Parse,
        "request line without request-URI",
        400,
    ),
    (
        "start-line-no-version",
        Stage::Parse,
        "without SIP version",
        400,
    ),
    (
        "bad-version-format",
        Stage::Parse,
        "malformed SIP version",
        400,
    ),
    (
        "bad-version-response",
        Stage::Parse,
        "malformed SIP version in status line",
        400,
    ),
    (
        "whitespace-in-ruri",
        Stage::Parse,
        "whitespace inside request-URI",
        400,
    ),
    (
        "double-space-request-line",
        Stage::Parse,
        "more than one space",
        400,
    ),
    (
        "trailing-space-request-line",
        Stage::Parse,
        "whitespace at the end of the request line",
        400,
    ),
    (
        "bracketed-ruri",
        Stage::Validate,
        "request-URI: invalid URI scheme",
        400,
    ),
    (
        "ruri-with-headers",
        Stage::Validate,
        "headers ('?') not allowed in a request-URI",
        400,
    ),
    (
        "unterminated-quote",
        Stage::Validate,
        "From: unterminated quoted string",
        400,
    ),
    (
        "angle-unclosed",
        Stage::Validate,
        "To: address without closing '>'",
        400,
    ),
    (
        "angle-unopened",
        Stage::Validate,
        "To: '>' without matching '<'",
        400,
    ),
    (
        "display-name-not-token",
        Stage::Validate,
        "From: malformed display name",
        400,
    ),
    (
        "content-length-larger-than-body",
        Stage::Parse,
        "Content-Length larger than the body",
        400,
    ),
    (
        "content-length-negative",
        Stage::Parse,
        "Content-Length is not a number",
        400,
    ),
    (
        "content-length-not-numeric",
        Stage::Parse,
        "Content-Length is not a number",
        400,
    ),
    (
        "content-length-conflicting",
        Stage::Parse,
        "conflicting Content-Length",
        400,
    ),
    (
        "content-length-huge",
        Stage::Parse,
        "Content-Length out of range",
        400,
    ),
    (
        "cseq-not-numeric",
        Stage::Validate,
        "CSeq number is not a number",
        400,
    ),
    (
        "cseq-overlarge",
        Stage::Validate,
        "CSeq number is not a number below 2^31",
        400,
    ),
    (
        "cseq-no-method",
        Stage::Validate,
        "CSeq without method",
        400,
    ),
    (
        "cseq-method-mismatch",
        Stage::Validate,
        "CSeq method does not match",
        400,
    ),
    (
        "extension-method-cseq-mismatch",
        Stage::Validate,
        "CSeq method does not match",
        400,
    ),
    (
        "max-forwards-overlarge",
        Stage::Validate,
        "Max-Forwards is not a number 0-255",
        400,
    ),
    (
        "status-code-overlarge",
        Stage::Parse,
        "status code is not three digits",
        400,
    ),
    (
        "status-code-out-of-range",
        Stage::Parse,
        "status code out of range",
        400,
    ),
    (
        "multiple-single-value-headers",
        Stage::Validate,
        "multiple Call-ID headers",
        400,
    ),
    (
        "missing-required-headers",
        Stage::Validate,
        "missing From header",
        400,
    ),
    (
        "via-extraneous-separators",
        Stage::Validate,
        "Via without protocol version",
        400,
    ),
    (
        "via-bad-rport",
        Stage::Validate,
        "Via rport is not a port number",
        400,
    ),
    (
        "via-no-sent-by",
        Stage::Validate,
        "Via without sent-by",
        400,
    ),
    (
        "ipv6-unbracketed-ruri",
        Stage::Validate,
        "request-URI: IPv6 address not enclosed in brackets",
        400,
    ),
    (
        "ipv6-unbracketed-via",
        Stage::Validate,
        "Via sent-by IPv6 address not enclosed in brackets",
        400,
    ),
    (
        "ipv6-unbracketed-contact",
        Stage::Validate,
        "Contact: IPv6 address not enclosed in brackets",
        400,
    ),
    (
        "ipv6-bad-reference",
        Stage::Validate,
        "request-URI: invalid IPv6 address",
        400,
    ),
    (
        "ipv6-unclosed-bracket",
        Stage::Validate,
        "Via IPv6 sent-by without closing bracket",
        400,
    ),
    (
        "ipv6-scoped-zone",
        Stage::Validate,
        "request-URI: invalid IPv6 address",
        400,
    ),
    (
        "ipv6-too-many-groups",
        Stage::Validate,
        "request-URI: invalid IPv6 address",
        400,
    ),
    (
        "ipv4-in-brackets",
        Stage::Validate,
        "request-URI: invalid IPv6 address",
        400,
    ),
    ("invalid-utf8", Stage::Parse, "not valid UTF-8", 400),
    (
        "nul-in-header",
        Stage::Parse,
        "NUL byte in header section",
        400,
    ),
    (
        "bare-cr-header-smuggling",
        Stage::Parse,
        "bare CR in header section",
        400,
    ),
    (
        "header-section-unterminated",
        Stage::Parse,
        "not terminated by an empty line",
        400,
    ),
    ("empty-message", Stage::Parse, "empty message", 400),
    (
        "unbracketed-uri-with-query",
        Stage::Validate,
        "Contact: URI with '?' or ',' not enclosed in <>",
        400,
    ),
    (
        "contact-star-mixed",
        Stage::Validate,
        "Contact: * mixed with other contacts",
        400,
    ),
    ("oversize-message", Stage::Parse, "message too large", 413),
    (
        "too-many-headers",
        Stage::Parse,
        "too many header lines",
        400,
    ),
    ("too-many-vias", Stage::Parse, "too many Via values", 400),
    (
        "header-line-too-long",
        Stage::Parse,
        "header line too long",
        413,
    ),
];

fn strip_leading_line_ends(b: &[u8]) -> &[u8] {
    let n = b
        .iter()
        .take_while(|c| **c == b'\r' || **c == b'\n')
        .count();
    &b[n..]
}

fn check_valid(v: &Valid) {
    let raw = fixture("valid", v.file);
    let m = SipMessage::parse(&raw).unwrap_or_else(|e| panic!("{}: {e}", v.file));
    m.validate().unwrap_or_else(|e| panic!("{}: {e}", v.file));
    let s = summary(&m);
    assert_eq!(s.start, v.start, "{}: start line", v.file);
    assert_eq!(
        s.ruri,
        v.ruri.map(|(h, p)| (h.to_string(), p)),
        "{}: request-URI",
        v.file
    );
    if !v.call_id.is_empty() {
        assert_eq!(s.call_id.as_deref(), Some(v.call_id), "{}: Call-ID", v.file);
    }
    let (branch, host, port, rport) = v.via;
    if branch.is_some() {
        assert_eq!(s.via.0.as_deref(), branch, "{}: Via branch", v.file);
    }
    assert_eq!(s.via.1, host, "{}: Via host", v.file);
    assert_eq!(s.via.2, port, "{}: Via port", v.file);
    assert_eq!(s.via.3, rport, "{}: Via rport", v.file);
    if v.from_tag.is_some() {
        assert_eq!(s.from_tag.as_deref(), v.from_tag, "{}: From tag", v.file);
    }
    assert_eq!(s.to_tag.as_deref(), v.to_tag, "{}: To tag", v.file);
    assert_eq!(s.contacts, v.contacts, "{}: Contact count", v.file);
    assert_eq!(s.body.len(), v.body, "{}: body length", v.file);
    (v.extra)(&m);

    // Untouched: written back as received.
    let out = m.to_bytes();
    let wire = strip_leading_line_ends(&raw);
    match v.bytes {
        Bytes::Same => assert!(out == wire, "{}: not byte for byte", v.file),
        Bytes::Prefix => {
            assert!(out.len() < wire.len(), "{}", v.file);
            assert!(wire.starts_with(&out), "{}: not a prefix", v.file);
        }
        Bytes::Equivalent => assert_ne!(out, wire, "{}", v.file),
    }
    // Equivalent: the serialization parses back to the same values.
    let again = SipMessage::parse(&out).unwrap_or_else(|e| panic!("{}: reparse: {e}", v.file));
    again.validate().unwrap();
    assert_eq!(summary(&again), s, "{}: reparse differs", v.file);
    assert_eq!(again.to_bytes(), out, "{}: not a fixed point", v.file);
}

#[test]
fn every_fixture_is_listed() {
    let valid: BTreeSet<String> = VALID.iter().map(|v| v.file.to_string()).collect();
    assert_eq!(listed("valid"), valid);
    let invalid: BTreeSet<String> = INVALID.iter().map(|v| v.0.to_string()).collect();
    assert_eq!(listed("invalid"), invalid);
    assert_eq!(valid.len(), VALID.len(), "duplicate in VALID");
    assert_eq!(invalid.len(), INVALID.len(), "duplicate in INVALID");
}

#[test]
fn valid_messages_parse_to_the_right_values_and_round_trip() {
    for v in VALID {
        check_valid(v);
    }
}

#[test]
fn edited_valid_messages_stay_equivalent() {
    // An edit rewrites only what it touches; the rest stays as received.
    for v in VALID {
        let raw = fixture("valid", v.file);
        let mut m = SipMessage::parse(&raw).unwrap();
        let before = summary(&m);
        m.push_named("X-Sipveil-Test", "1");
        let out = m.to_bytes();
        let again = SipMessage::parse(&out).unwrap();
        let mut after = summary(&again);
        assert_eq!(
            after.headers.pop(),
            Some((HeaderName::Other, "X-Sipveil-Test".into(), "1".into())),
            "{}",
            v.file
        );
        assert_eq!(after, before, "{}", v.file);
    }
}

#[test]
fn valid_messages_frame_on_a_stream() {
    // The same bytes arriving over TCP in small pieces give the same message.
    for v in VALID {
        let raw = fixture("valid", v.file);
        let m = SipMessage::parse(&raw).unwrap();
        if m.content_length().unwrap().is_none() {
            continue;
        }
        for chunk in [1usize, 7, 100, 1 << 20] {
            let mut f = StreamFramer::new(Limits::default());
            let mut got = Vec::new();
            for piece in raw.chunks(chunk) {
                f.push(piece);
                while let Some(fr) = f.next_frame().unwrap() {
                    if let Frame::Message(msg) = fr {
                        got.push(msg);
                    }
                }
            }
            assert!(!got.is_empty(), "{} chunk {chunk}", v.file);
            assert_eq!(got[0].to_bytes(), m.to_bytes(), "{} chunk {chunk}", v.file);
            let expected = if v.bytes == Bytes::Prefix { 2 } else { 1 };
            assert_eq!(got.len(), expected, "{} chunk {chunk}", v.file);
        }
    }
}

fn first_error(raw: &[u8]) -> (Stage, ParseError) {
    match SipMessage::parse(raw) {
        Err(e) => (Stage::Parse, e),
        Ok(m) => match m.validate() {
            Err(e) => (Stage::Validate, e),
            Ok(()) => panic!("accepted"),
        },
    }
}

#[test]
fn invalid_messages_are_refused_with_a_reason() {
    for (file, stage, why, status) in INVALID {
        let raw = fixture("invalid", file);
        let (got_stage, e) = std::panic::catch_unwind(|| first_error(&raw))
            .unwrap_or_else(|_| panic!("{file}: was accepted"));
        assert_eq!(got_stage, *stage, "{file}: {e}");
        assert!(
            e.reason.contains(why),
            "{file}: reason {:?} does not name {why:?}",
            e.reason
        );
        assert_eq!(e.status(), *status, "{file}: {e}");
    }
}

#[test]
fn invalid_messages_keep_enough_to_answer() {
    // Where the start line and headers were read, the error carries them so a 400
    // can be addressed; this is true of every header-level fault.
    for file in [
        "header-missing-colon",
        "empty-header-name",
        "content-length-larger-than-body",
        "content-length-conflicting",
        "too-many-vias",
        "header-line-too-long",
    ] {
        let e = SipMessage::parse(&fixture("invalid", file)).unwrap_err();
        let partial = e.partial.unwrap_or_else(|| panic!("{file}: no partial"));
        assert!(partial.call_id().is_some(), "{file}");
        assert!(partial.top_via().is_ok(), "{file}");
    }
}

#[test]
fn invalid_messages_fail_the_same_way_on_a_stream() {
    // Parse-stage faults of the header section are found by the stream framer too.
    for (file, stage, why, _) in INVALID {
        if *stage != Stage::Parse
            || file.starts_with("content-length-larger")
            || file.starts_with("header-section-unterminated")
            || file.starts_with("empty-message")
        {
            continue;
        }
        let raw = fixture("invalid", file);
        let mut f = StreamFramer::new(Limits::default());
        f.push(&raw);
        let e = loop {
            match f.next_frame() {
                Ok(Some(Frame::Message(_))) => panic!("{file}: framed"),
                Ok(Some(_)) => continue,
                Ok(None) => panic!("{file}: waits for more"),
                Err(e) => break e,
            }
        };
        assert!(e.reason.contains(why), "{file}: {}", e.reason);
    }
}
