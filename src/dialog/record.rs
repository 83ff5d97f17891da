//! The persisted form of an established call: enough of both legs to route BYE and
//! re-INVITE after a restart.

use serde::{Deserialize, Serialize};

use super::leg::Leg;

/// One established call as written to the store under `call/<uuid>`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CallRecord {
    /// Call identifier used in logs, keys and CDRs.
    pub uuid: String,
    /// Caller leg.
    pub a: Leg,
    /// Callee leg.
    pub b: Leg,
    /// Unix time the INVITE arrived.
    pub started: u64,
    /// Unix time the call was answered.
    pub answered: u64,
}

/// Call detail record written when a call ends, under `cdr/<end>-<uuid>`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Cdr {
    /// Call identifier.
    pub uuid: String,
    /// Interface the call came in on.
    pub ingress: String,
    /// Interface the call left from.
    pub egress: String,
    /// Caller user part.
    pub caller: String,
    /// Callee user part.
    pub callee: String,
    /// Unix time of the INVITE.
    pub started: u64,
    /// Unix time of the answer (0 when never answered).
    pub answered: u64,
    /// Unix time of the end.
    pub ended: u64,
    /// Final status of the call setup (200 for answered calls).
    pub status: u16,
    /// Why the call ended.
    pub reason: String,
    /// The subscriber the caller authenticated as, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticated: Option<String>,
}
