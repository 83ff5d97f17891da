//! Normalization of buggy clients: repairs applied to every message arriving on an
//! interface before anything else reads it, each on by default and switchable off
//! in a policy file's `[normalize]` table (for a peer that breaks when repaired):
//!
//! | key | fix |
//! | --- | --- |
//! | `expand_compact` | compact header names expanded, known names in canonical case |
//! | `max_forwards` | a request without Max-Forwards gets `Max-Forwards: 70` |
//! | `duplicate_headers` | Call-ID, CSeq, Content-Length, From, To repeated: identical copies dropped, differing ones answered 400 |
//! | `content_length` | Content-Length set to the body's length (added when missing) |
//! | `expires` | Expires header and Contact `expires` parameters reconciled, the Contact winning |
//! | `require` | a request requiring an option tag sipveil does not support is answered 420 with Unsupported |
//! | `hold_zero_address` | `c=0.0.0.0` in SDP understood as hold: passed on in RFC 3264 form when media is anchored (`dialog::engine::media`), and by [`Normalize::is_hold`] |

use serde::Deserialize;

use super::load::Ctx;
use super::msgedit::canonical_names;
use crate::config::Seg::Key as K;
use crate::dialog::crossing::SUPPORTED_TAGS;
use crate::sip::{HeaderName, Method, SipMessage};

mod sdp;

pub use sdp::is_hold;

/// `[normalize]` as written: every switch optional, so a file changes only what it
/// names; `interfaces` limits it to some interfaces (default: all).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNormalize {
    #[serde(default)]
    interfaces: Vec<String>,
    expand_compact: Option<bool>,
    max_forwards: Option<bool>,
    duplicate_headers: Option<bool>,
    content_length: Option<bool>,
    expires: Option<bool>,
    require: Option<bool>,
    hold_zero_address: Option<bool>,
}

/// The normalization switches in force on one interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Normalize {
    /// Expand compact header names and write known names in canonical case.
    pub expand_compact: bool,
    /// Insert `Max-Forwards: 70` into requests without one.
    pub max_forwards: bool,
    /// Drop identical repeats of single-value headers; reject differing ones (400).
    pub duplicate_headers: bool,
    /// Set Content-Length to the body's length.
    pub content_length: bool,
    /// Reconcile the Expires header with Contact `expires` parameters.
    pub expires: bool,
    /// Answer 420 to requests requiring option tags sipveil does not support.
    pub require: bool,
    /// Treat `c=0.0.0.0` (RFC 2543 hold) as hold.
    pub hold_zero_address: bool,
}

impl Default for Normalize {
    /// Every fix on: sipveil's job at the edge is to absorb sloppy signaling.
    fn default() -> Self {
        Normalize {
            expand_compact: true,
            max_forwards: true,
            duplicate_headers: true,
            content_length: true,
            expires: true,
            require: true,
            hold_zero_address: true,
        }
    }
}

/// The answer to a request normalization refuses: the engine sends it as a
/// response (status, reason phrase, these extra headers) instead of relaying.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    /// Status code (400, 420).
    pub code: u16,
    /// Reason phrase saying what is wrong.
    pub reason: String,
    /// Headers to add to the response, such as `Unsupported` for a 420.
    pub extra_headers: Vec<(String, String)>,
}

/// Value of an inserted Max-Forwards (RFC 3261 §8.1.1.6).
const MAX_FORWARDS: &str = "70";

/// Headers that may appear once only (RFC 3261 §7.3.1 does not allow a list).
const SINGLE: [HeaderName; 5] = [
    HeaderName::CallId,
    HeaderName::CSeq,
    HeaderName::ContentLength,
    HeaderName::From,
    HeaderName::To,
];

impl Normalize {
    /// Applies the switched-on fixes to a message that just arrived. Checks that
    /// can refuse come first, so a refused message is left as received.
    pub fn apply(&self, msg: &mut SipMessage) -> Result<(), Reject> {
        if self.duplicate_headers {
            dedupe_single(msg)?;
        }
        if self.require {
            check_require(msg)?;
        }
        if self.expand_compact {
            canonical_names(msg);
        }
        if self.max_forwards && msg.is_request() && msg.header(HeaderName::MaxForwards).is_none() {
            msg.push(HeaderName::MaxForwards, MAX_FORWARDS);
        }
        if self.content_length {
            let len = msg.body().len();
            let written: Vec<&str> = msg.header_lines(HeaderName::ContentLength).collect();
            if written.len() != 1
                || written.first().and_then(|v| v.parse::<usize>().ok()) != Some(len)
            {
                msg.replace(HeaderName::ContentLength, &len.to_string());
            }
        }
        // Contact `;expires` means something only in REGISTER (RFC 3261
        // §10.2.1); an INVITE's Expires header is the offer's lifetime.
        let register = msg.method() == Some(&crate::sip::Method::Register)
            || msg
                .cseq()
                .is_ok_and(|c| c.method == crate::sip::Method::Register);
        if self.expires && register {
            reconcile_expires(msg);
        }
        Ok(())
    }

    /// Whether an SDP body puts the call on hold, under this interface's switches.
    pub fn is_hold(&self, sdp: &[u8]) -> bool {
        sdp::hold(sdp, self.hold_zero_address)
    }
}

/// Drops identical repeats of single-value headers; differing repeats are refused.
/// Admission's sanity check uses it too, so that it does not refuse what this
/// fix repairs.
pub(crate) fn dedupe_single(msg: &mut SipMessage) -> Result<(), Reject> {
    for name in SINGLE {
        let mut lines = msg.header_lines(name);
        let Some(first) = lines.next() else { continue };
        let mut repeated = false;
        for other in lines {
            let same = if name == HeaderName::ContentLength {
                first
                    .parse::<u64>()
                    .ok()
                    .is_some_and(|a| other.parse::<u64>().ok() == Some(a))
            } else {
                first == other
            };
            if !same {
                return Err(Reject {
                    code: 400,
                    reason: format!("Conflicting {} headers", name.as_str()),
                    extra_headers: Vec::new(),
                });
            }
            repeated = true;
        }
        if repeated {
            let keep = first.to_string();
            msg.replace(name, &keep);
        }
    }
    Ok(())
}

/// 420 for a request that requires option tags sipveil does not support (RFC 3261
/// §8.2.2.3). ACK and CANCEL are never refused for it.
fn check_require(msg: &SipMessage) -> Result<(), Reject> {
    if matches!(
        msg.method(),
        None | Some(Method::Ack) | Some(Method::Cancel)
    ) {
        return Ok(());
    }
    let unsupported: Vec<&str> = msg
        .require()
        .filter(|t| !SUPPORTED_TAGS.iter().any(|s| s.eq_ignore_ascii_case(t)))
        .collect();
    if unsupported.is_empty() {
        return Ok(());
    }
    Err(Reject {
        code: 420,
        reason: "Bad Extension".into(),
        extra_headers: vec![("Unsupported".into(), unsupported.join(", "))],
    })
}

/// When every Contact carries an `expires` parameter, the Expires header can only
/// disagree: it is set to their common value, or removed when they differ. A
/// Contact without the parameter still takes the header's value (RFC 3261
/// §10.2.1.1), so then nothing changes.
fn reconcile_expires(msg: &mut SipMessage) {
    let Some(header) = msg.header(HeaderName::Expires).map(str::to_string) else {
        return;
    };
    let mut params = Vec::new();
    for c in msg.contacts() {
        match c.ok().and_then(|c| c.expires()) {
            Some(e) => params.push(e),
            None => return,
        }
    }
    let Some(&first) = params.first() else {
        return;
    };
    if params.iter().all(|&e| e == first) {
        let value = first.to_string();
        if header != value {
            msg.replace(HeaderName::Expires, &value);
        }
    } else {
        msg.remove(HeaderName::Expires);
    }
}

/// Per-interface switches, file by file.
pub(crate) struct Builder {
    per_iface: Vec<Normalize>,
}

impl Builder {
    pub(crate) fn new(ifaces: usize) -> Builder {
        Builder {
            per_iface: vec![Normalize::default(); ifaces],
        }
    }

    /// Checks a file's `[normalize]` and applies the switches it sets.
    pub(crate) fn add(&mut self, ctx: &mut Ctx<'_, '_>, raw: &RawNormalize) {
        let mut targets = Vec::new();
        if raw.interfaces.is_empty() {
            targets.extend(0..self.per_iface.len());
        }
        for name in &raw.interfaces {
            targets.extend(ctx.interfaces(&[K("normalize"), K("interfaces")], "[normalize]", name));
        }
        for t in targets {
            let Some(n) = self.per_iface.get_mut(t) else {
                continue;
            };
            let set = |slot: &mut bool, v: Option<bool>| {
                if let Some(v) = v {
                    *slot = v;
                }
            };
            set(&mut n.expand_compact, raw.expand_compact);
            set(&mut n.max_forwards, raw.max_forwards);
            set(&mut n.duplicate_headers, raw.duplicate_headers);
            set(&mut n.content_length, raw.content_length);
            set(&mut n.expires, raw.expires);
            set(&mut n.require, raw.require);
            set(&mut n.hold_zero_address, raw.hold_zero_address);
        }
    }

    pub(crate) fn finish(self) -> Vec<Normalize> {
        self.per_iface
    }
}

#[cfg(test)]
#[path = "normalize_tests.rs"]
mod tests;
