//! Admission: the pipeline every message from the network passes before the core
//! gives it a server transaction (issue 7, DESIGN.md "Middleware ... a stack of
//! `tower` layers").
//!
//! Each concern is one small layer that can be tested alone:
//!
//! | layer | module | acts on | action |
//! | --- | --- | --- | --- |
//! | interface allow-list | [`acl`] | out-of-dialog requests from sources outside `[[interface]] allow` | silent drop |
//! | scanner defence | [`scanner`] | requests whose User-Agent names a known scanner | silent drop |
//! | flood detection (pike) | [`flood`] | sources above a request density | ban: silent drop |
//! | sanity | [`sanity`] | malformed requests (RFC 3261 §8.2, §16.3) | 400/416/505 naming the fault, or drop |
//! | brute-force defence | [`auth`] | sources and users with failed digest logins | ban / 503 for the user |
//! | per-source rate limits | [`rate`] | out-of-dialog requests over the INVITE/REGISTER/other budget | 503 + Retry-After, then drop |
//! | overload | [`overload`] | new requests while transactions or calls are at their bound | 503 + Retry-After |
//!
//! The order is cheapest-and-most-protective first: the allow-list and the
//! scanner check cost a lookup and drop without state; flood bans are decided
//! before any parsing work is spent on the flood; sanity runs before the layers
//! that read the method.
//!
//! # How the core calls it
//!
//! The core is synchronous and single-threaded, so every layer is a plain
//! [`Check`] (`fn check(&mut self, &Admit) -> Verdict`) and also a
//! [`tower::Service`] whose `poll_ready` is always ready and whose future is a
//! [`std::future::Ready`]. [`Admission`] owns the stack as one concrete nested
//! type built with [`tower::ServiceBuilder`]; [`Admission::check`] walks it by
//! static dispatch: no boxing, no dynamic dispatch, and no allocation on the
//! `Pass` path once a source is known (a new source costs one table insert). The
//! runtime calls it once per received message, before `Engine::on_message`:
//!
//! ```ignore
//! let req = Admit::new(&msg, peer.addr, peer.iface, trusted, now);
//! match admission.check(&req) {
//!     Verdict::Pass => engine.on_message(msg, peer, now),
//!     Verdict::Reply { code, reason, retry_after } => /* stateless response */,
//!     Verdict::Drop { .. } => {}
//! }
//! ```
//!
//! and, outside the per-message path, [`Admission::set_load`] with the core's
//! counts, [`Admission::auth_failed`] / [`Admission::auth_succeeded`] from the
//! registrar, and [`Admission::tick`] about once a second so bans end on time.

pub mod acl;
pub mod auth;
pub mod bans;
pub mod config;
pub mod flood;
pub mod metrics;
pub mod overload;
pub mod rate;
pub mod sanity;
pub mod scanner;
pub mod stack;
pub mod table;

mod pipeline;
mod throttle;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Instant;

use crate::sip::{HeaderName, Method, SipMessage};

pub use config::{
    AdmissionConfig, AuthConfig, FloodConfig, IfacePolicy, OverloadConfig, RateConfig,
    RateOverride, RateQuota, RateQuotas, SanityConfig, ScannerConfig, TcpConfig,
};
pub use metrics::{AdmissionMetrics, MetricsSnapshot};
pub use pipeline::Admission;
pub use stack::{Accept, Check, Guard, GuardLayer};

/// One message asking to be admitted: what it is, where it came from and when.
///
/// Borrowed, so building one per message costs nothing; `in_dialog` is what the
/// core knows or claims about it (see [`Admit::new`]).
#[derive(Clone, Copy, Debug)]
pub struct Admit<'a> {
    /// The parsed message (a request or a response).
    pub msg: &'a SipMessage,
    /// Source address of the packet or connection (not what Via claims).
    pub source: SocketAddr,
    /// Index of the interface it arrived on (`[[interface]]` order).
    pub iface: usize,
    /// Whether that interface is trusted: trusted peers are never rate limited,
    /// flood-banned or auth-banned (they are our own core network).
    pub trusted: bool,
    /// Whether the request belongs to a dialog (a To tag). In-dialog requests and
    /// responses keep working under overload and are not rate limited; a false
    /// claim gets 481 from the core and still counts toward the flood density.
    pub in_dialog: bool,
    /// The core's clock for this message.
    pub now: Instant,
}

impl<'a> Admit<'a> {
    /// Builds a request from a message, deriving `in_dialog` from the To tag
    /// (REGISTER with a To tag is still out-of-dialog, as in the core).
    pub fn new(
        msg: &'a SipMessage,
        source: SocketAddr,
        iface: usize,
        trusted: bool,
        now: Instant,
    ) -> Admit<'a> {
        let in_dialog =
            msg.is_request() && msg.method() != Some(&Method::Register) && has_to_tag(msg);
        Admit {
            msg,
            source,
            iface,
            trusted,
            in_dialog,
            now,
        }
    }

    /// Whether this is a request that would start a new dialog or transaction
    /// outside any dialog (what the allow-list, rate limits and overload govern).
    pub fn out_of_dialog_request(&self) -> bool {
        self.msg.is_request() && !self.in_dialog
    }
}

/// Whether the To header carries a tag, found without parsing the whole header.
fn has_to_tag(msg: &SipMessage) -> bool {
    msg.header(HeaderName::To).is_some_and(|to| {
        // Parameters after the URI; `;tag=` inside <...> would be a URI parameter.
        let params = match to.rfind('>') {
            Some(i) => to.get(i..).unwrap_or(""),
            None => to,
        };
        params.split(';').skip(1).any(|p| {
            p.trim_start()
                .get(..4)
                .is_some_and(|k| k.eq_ignore_ascii_case("tag="))
        })
    })
}

/// What the pipeline decided about one message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Hand the message to the core.
    Pass,
    /// Answer it statelessly with this status (requests other than ACK only)
    /// and hand nothing to the core.
    Reply {
        /// Status code (400, 413, 416, 503, 505).
        code: u16,
        /// Reason phrase naming the fault or the limit.
        reason: Cow<'static, str>,
        /// Seconds for a Retry-After header (503).
        retry_after: Option<u32>,
    },
    /// Drop it without an answer (answering would help an attacker or cannot
    /// be addressed).
    Drop {
        /// Why, for logs and tests.
        why: &'static str,
    },
}

impl Verdict {
    /// A reply with a fixed reason and no Retry-After.
    pub fn reply(code: u16, reason: impl Into<Cow<'static, str>>) -> Verdict {
        Verdict::Reply {
            code,
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// A 503 with Retry-After.
    pub fn unavailable(reason: &'static str, retry_after: u32) -> Verdict {
        Verdict::Reply {
            code: 503,
            reason: Cow::Borrowed(reason),
            retry_after: Some(retry_after.max(1)),
        }
    }

    /// Whether the message goes on to the core.
    pub fn is_pass(&self) -> bool {
        matches!(self, Verdict::Pass)
    }

    /// The response a `Reply` verdict stands for, built from the request
    /// (`make_response`, a fresh To tag, Retry-After); `None` for `Pass`,
    /// `Drop`, responses and ACK, which are never answered.
    pub fn response_to(&self, req: &SipMessage) -> Option<SipMessage> {
        let Verdict::Reply {
            code,
            reason,
            retry_after,
        } = self
        else {
            return None;
        };
        if !req.is_request() || req.method() == Some(&Method::Ack) {
            return None;
        }
        let mut r = req.make_response(*code, reason);
        r.set_to_tag(&crate::dialog::leg::new_tag());
        if let Some(s) = retry_after {
            r.push(HeaderName::RetryAfter, &s.to_string());
        }
        Some(r)
    }
}
