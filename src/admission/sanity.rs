//! Sanity checks (Kamailio's sanity module; RFC 3261 §8.2 and §16.3): a request
//! that cannot be processed is answered with the status that names its fault —
//! 505 for another SIP version, 400 for a missing or malformed required header,
//! a CSeq method that differs from the request's, a Content-Length that does not
//! match the body or a bad Max-Forwards, 416 for a request-URI scheme we do not
//! serve, 413 for an oversize message (found by the parser) — with a reason
//! phrase naming the fault. What cannot be answered (a response, an ACK, a
//! request whose Via cannot be read) is dropped.
//!
//! This is the one place these checks live; the parser finds the faults, this
//! layer decides the answer.

use std::borrow::Cow;
use std::sync::Arc;

use super::metrics::AdmissionMetrics;
use super::throttle::LogGate;
use super::{Admit, Check, SanityConfig, Verdict};
use crate::sip::{HeaderName, Method, ParseError, Scheme, SipMessage, Uri};

/// `"<standard phrase> (<fault>)"`, the fault stripped of control characters and
/// cut to a length that fits a status line.
pub fn reason(standard: &str, fault: &str) -> Cow<'static, str> {
    let fault: String = fault
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect();
    Cow::Owned(format!("{standard} ({fault})"))
}

/// Whether an answer to `msg` can be addressed: a request other than ACK with
/// a readable top Via (RFC 3261 §18.2.2 sends responses by the top Via).
pub fn answerable(msg: &SipMessage) -> bool {
    msg.is_request() && msg.method() != Some(&Method::Ack) && msg.top_via().is_ok()
}

/// The verdict for a parsed message, with no side effects.
pub fn judge(msg: &SipMessage, cfg: &SanityConfig) -> Verdict {
    let fault = fault_of(msg, cfg);
    match fault {
        None => Verdict::Pass,
        Some(_) if !answerable(msg) => Verdict::Drop {
            why: "malformed and unanswerable",
        },
        Some((code, reason)) => Verdict::Reply {
            code,
            reason,
            retry_after: None,
        },
    }
}

/// The status and reason that answer what is wrong with `msg`, if anything.
fn fault_of(msg: &SipMessage, cfg: &SanityConfig) -> Option<(u16, Cow<'static, str>)> {
    if !msg.is_sip2() {
        return Some((505, reason("Version Not Supported", msg.version())));
    }
    if let Err(e) = msg.validate() {
        if !repaired_by_normalization(msg) {
            return Some((400, reason("Bad Request", &e.reason)));
        }
    }
    if !msg.is_request() {
        return None;
    }
    let scheme_ok = msg
        .request_uri()
        .and_then(|u| Uri::parse(u).ok())
        .is_some_and(|u| !matches!(u.scheme, Scheme::Other(_)));
    if !scheme_ok {
        let scheme = msg
            .request_uri()
            .and_then(|u| u.split(':').next())
            .unwrap_or("");
        return Some((416, reason("Unsupported URI Scheme", scheme)));
    }
    if let Ok(Some(n)) = msg.declared_content_length() {
        if n != msg.body().len() {
            return Some((
                400,
                Cow::Borrowed("Bad Request (Content-Length does not match the body)"),
            ));
        }
    }
    if cfg.require_max_forwards && msg.header(HeaderName::MaxForwards).is_none() {
        return Some((
            400,
            Cow::Borrowed("Bad Request (missing Max-Forwards header)"),
        ));
    }
    None
}

/// Whether a message that failed `validate` only for identical repeats of
/// single-value headers (Call-ID, CSeq, From, To, Content-Length): normalization
/// (`duplicate_headers`) merges those, and the engine validates again after it,
/// so refusing here would make that fix unreachable. Rare, so the copy is fine.
fn repaired_by_normalization(msg: &SipMessage) -> bool {
    let mut copy = msg.clone();
    crate::policy::normalize::dedupe_single(&mut copy).is_ok() && copy.validate().is_ok()
}

/// The verdict for bytes the parser refused: the parser's status (400, or 413
/// for oversize) with its reason, when the partial message can be answered.
pub fn judge_malformed(err: &ParseError) -> Verdict {
    match err.partial.as_deref() {
        Some(partial) if answerable(partial) => {
            let standard = if err.status() == 413 {
                "Request Entity Too Large"
            } else {
                "Bad Request"
            };
            Verdict::Reply {
                code: err.status(),
                reason: reason(standard, &err.reason),
                retry_after: None,
            }
        }
        _ => Verdict::Drop {
            why: "unparseable and unanswerable",
        },
    }
}

/// The sanity layer.
pub struct Sanity {
    cfg: SanityConfig,
    metrics: Arc<AdmissionMetrics>,
    log: LogGate,
}

impl Sanity {
    /// A layer with these settings.
    pub fn new(cfg: SanityConfig, metrics: Arc<AdmissionMetrics>, log_per_sec: u32) -> Sanity {
        Sanity {
            cfg,
            metrics,
            log: LogGate::new(log_per_sec),
        }
    }

    /// Counts and logs a verdict that is not `Pass`.
    pub(crate) fn record(
        &mut self,
        v: &Verdict,
        source: std::net::SocketAddr,
        now: std::time::Instant,
    ) {
        let (counter, what) = match v {
            Verdict::Pass => return,
            Verdict::Reply { reason, .. } => (&self.metrics.sanity_replied, reason.as_ref()),
            Verdict::Drop { why } => (&self.metrics.sanity_dropped, *why),
        };
        AdmissionMetrics::bump(counter);
        if let Some(held) = self.log.allow(now) {
            tracing::debug!(%source, suppressed = held, "admission: malformed message: {what}");
        }
    }
}

impl Check for Sanity {
    fn check(&mut self, req: &Admit<'_>) -> Verdict {
        let v = judge(req.msg, &self.cfg);
        self.record(&v, req.source, req.now);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::tests::{admit, request, response, src};

    fn parse(text: &str) -> SipMessage {
        SipMessage::parse(text.as_bytes()).unwrap()
    }

    fn check(m: &SipMessage) -> Verdict {
        Sanity::new(SanityConfig::default(), Arc::default(), 10).check(&admit(
            m,
            src(1),
            std::time::Instant::now(),
        ))
    }

    fn code(v: &Verdict) -> (u16, String) {
        match v {
            Verdict::Reply { code, reason, .. } => (*code, reason.to_string()),
            other => panic!("not a reply: {other:?}"),
        }
    }

    const HEAD: &str = "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-s\r\n\
                        From: <sip:a@example.test>;tag=1\r\nTo: <sip:b@example.test>\r\n";

    #[test]
    fn good_requests_and_responses_pass() {
        assert!(check(&request("INVITE", false, "")).is_pass());
        assert!(check(&response()).is_pass());
    }

    #[test]
    fn wrong_version_is_505() {
        let m = parse(&format!(
            "OPTIONS sip:b@example.test SIP/7.0\r\n{HEAD}Call-ID: v\r\nCSeq: 1 OPTIONS\r\n\r\n"
        ));
        let (c, r) = code(&check(&m));
        assert_eq!(c, 505);
        assert_eq!(r, "Version Not Supported (SIP/7.0)");
    }

    #[test]
    fn bad_scheme_is_416() {
        let m = parse(&format!(
            "OPTIONS http://example.test/ SIP/2.0\r\n{HEAD}Call-ID: s\r\nCSeq: 1 OPTIONS\r\n\r\n"
        ));
        assert_eq!(
            code(&check(&m)),
            (416, "Unsupported URI Scheme (http)".into())
        );
    }

    #[test]
    fn missing_header_and_cseq_mismatch_are_400_naming_the_fault() {
        let m = parse(&format!(
            "OPTIONS sip:b@example.test SIP/2.0\r\n{HEAD}CSeq: 1 OPTIONS\r\n\r\n"
        ));
        let (c, r) = code(&check(&m));
        assert_eq!(c, 400);
        assert!(r.contains("Call-ID"), "{r}");
        let m = parse(&format!(
            "OPTIONS sip:b@example.test SIP/2.0\r\n{HEAD}Call-ID: x\r\nCSeq: 1 INVITE\r\n\r\n"
        ));
        let (c, r) = code(&check(&m));
        assert_eq!(c, 400);
        assert!(r.contains("CSeq method"), "{r}");
        let m = parse(&format!(
            "OPTIONS sip:b@example.test SIP/2.0\r\n{HEAD}Call-ID: x\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 300\r\n\r\n"
        ));
        assert!(code(&check(&m)).1.contains("Max-Forwards"));
    }

    /// Identical repeats pass (normalization merges them); differing ones are
    /// 400 naming the header.
    #[test]
    fn identical_repeats_are_left_to_normalization() {
        let m = parse(&format!(
            "OPTIONS sip:b@example.test SIP/2.0\r\n{HEAD}Call-ID: x\r\nCall-ID: x\r\n\
             CSeq: 1 OPTIONS\r\nCSeq: 1 OPTIONS\r\n\r\n"
        ));
        assert!(check(&m).is_pass());
        let m = parse(&format!(
            "OPTIONS sip:b@example.test SIP/2.0\r\n{HEAD}Call-ID: x\r\nCall-ID: y\r\n\
             CSeq: 1 OPTIONS\r\n\r\n"
        ));
        let (c, r) = code(&check(&m));
        assert_eq!(c, 400);
        assert!(r.contains("Call-ID"), "{r}");
    }

    #[test]
    fn max_forwards_can_be_required() {
        let m = parse(&format!(
            "OPTIONS sip:b@example.test SIP/2.0\r\n{HEAD}Call-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n"
        ));
        assert!(check(&m).is_pass());
        let cfg = SanityConfig {
            require_max_forwards: true,
        };
        let v = judge(&m, &cfg);
        assert_eq!(code(&v).0, 400);
    }

    #[test]
    fn unanswerable_faults_are_dropped() {
        // ACK is never answered; a request without a usable Via cannot be.
        let m = parse(&format!(
            "ACK sip:b@example.test SIP/2.0\r\n{HEAD}CSeq: 1 ACK\r\n\r\n"
        ));
        assert!(matches!(check(&m), Verdict::Drop { .. }));
        let m = parse(
            "OPTIONS sip:b@example.test SIP/2.0\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\n\
             Call-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n",
        );
        assert!(matches!(check(&m), Verdict::Drop { .. }));
        let r = parse(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-r\r\nTo: <sip:b@x>\r\n\
             Call-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n",
        );
        assert!(matches!(check(&r), Verdict::Drop { .. }));
    }

    #[test]
    fn parser_errors_keep_their_status() {
        let e = match SipMessage::parse(
            format!("OPTIONS sip:b@x SIP/2.0\r\n{HEAD}Call-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 99\r\n\r\nabc")
                .as_bytes(),
        ) {
            Err(e) => e,
            Ok(_) => panic!("parsed"),
        };
        assert_eq!(code(&judge_malformed(&e)).0, 400);
        let e = match SipMessage::parse(b"garbage") {
            Err(e) => e,
            Ok(_) => panic!("parsed"),
        };
        assert!(matches!(judge_malformed(&e), Verdict::Drop { .. }));
    }

    #[test]
    fn reasons_are_cleaned_of_control_characters() {
        assert_eq!(reason("Bad Request", "a\r\nb"), "Bad Request (ab)");
    }
}
