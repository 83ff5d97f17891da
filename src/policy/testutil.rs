//! Helpers shared by the policy tests: the example interfaces, sample messages,
//! and policies built from text.

use super::PolicySet;
use crate::sip::SipMessage;

/// The interfaces of DESIGN.md's example config.
pub fn ifaces() -> Vec<String> {
    vec!["access".to_string(), "core".to_string()]
}

/// A policy from one text, for `access` and `core`; panics with the problems.
pub fn policy(text: &str) -> PolicySet {
    match PolicySet::from_sources(&[("t.toml", text)], &ifaces()) {
        Ok(p) => p,
        Err(e) => panic!("policy refused:\n{e}"),
    }
}

/// The error a policy text is refused with; panics if it is accepted.
pub fn refused(text: &str) -> String {
    match PolicySet::from_sources(&[("t.toml", text)], &ifaces()) {
        Ok(_) => panic!("policy accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// The 1-based line of the first line of `text` containing `needle`.
pub fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("`{needle}` not in text"))
}

/// Parses a message written with `\n` line ends.
pub fn msg(text: &str) -> SipMessage {
    let wire = text.replace('\n', "\r\n");
    SipMessage::parse(wire.as_bytes()).unwrap()
}

/// An INVITE from access-side caller 0301234 to 0409876, with a PAI.
pub fn invite() -> SipMessage {
    msg("INVITE sip:0409876@sbc.example.net SIP/2.0\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds\n\
         Max-Forwards: 70\n\
         From: \"Alice\" <sip:0301234@example.test>;tag=1928301774\n\
         To: <sip:0409876@example.test>\n\
         Call-ID: a84b4c76e66710\n\
         CSeq: 314159 INVITE\n\
         Contact: <sip:0301234@192.0.2.10:5060>\n\
         P-Asserted-Identity: <sip:0301234@example.test>, <tel:0301234>\n\
         User-Agent: Phone/1.0\n\
         Subject: hello\n\
         X-Internal-Route: pbx7\n\
         Content-Length: 0\n\n")
}

/// A 180 answering [`invite`].
pub fn ringing() -> SipMessage {
    msg("SIP/2.0 180 Ringing\n\
         Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds\n\
         From: \"Alice\" <sip:0301234@example.test>;tag=1928301774\n\
         To: <sip:0409876@example.test>;tag=a6c85cf\n\
         Call-ID: a84b4c76e66710\n\
         CSeq: 314159 INVITE\n\
         Server: Gateway/2.3\n\
         Content-Length: 0\n\n")
}

/// The value of the first line of header `name`.
pub fn header(m: &SipMessage, name: &str) -> Option<String> {
    m.header_named(name).map(str::to_string)
}
