//! Per-leg o= identity. sipveil is the SDP originator on each leg it faces, so each
//! leg gets its own sess-id, and its sess-version moves only when the body sent on
//! that leg changes (RFC 3264 §8): a peer that sees a new version for an unchanged
//! body may re-negotiate, and one that sees the same version for a changed body
//! ignores the change. The received o= never reaches the other leg.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::error::SdpError;
use super::parse::Sdp;
use super::rewrite::{OriginIds, RewritePlan};

/// o= state of one leg, persisted with the dialog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginState {
    /// sess-id sipveil uses on this leg.
    pub sess_id: u64,
    /// sess-version of the last body sent on this leg.
    pub version: u64,
    /// SHA-256 of the last body sent (a digest, so the state stays small);
    /// `None` before the first.
    last_sent: Option<[u8; 32]>,
}

impl OriginState {
    /// A leg whose first body carries `sess_id` and `version`.
    pub fn new(sess_id: u64, version: u64) -> OriginState {
        OriginState {
            sess_id,
            version,
            last_sent: None,
        }
    }

    /// A leg with a random sess-id below 2^62 (peers that read it as a signed
    /// 64-bit number stay happy) and version 1.
    pub fn random() -> OriginState {
        OriginState::new(fastrand::u64(1..1 << 62), 1)
    }

    /// True once a body has been sent on this leg.
    pub fn has_sent(&self) -> bool {
        self.last_sent.is_some()
    }
}

impl Sdp {
    /// Rewrites the body for sending on a leg: like [`Sdp::rewrite`], with the leg's
    /// own sess-id in o=, and its version bumped when (and only when) the result
    /// differs from the last body sent on the leg. Records the body as sent.
    pub fn rewrite_for_leg(
        &self,
        plan: &RewritePlan,
        leg: &mut OriginState,
    ) -> Result<Vec<u8>, SdpError> {
        let ids = OriginIds::Leg {
            sess_id: leg.sess_id,
            version: leg.version,
        };
        let (mut body, span) = self.render(plan, ids)?;
        let digest: [u8; 32] = Sha256::digest(&body).into();
        match leg.last_sent {
            None => {}
            Some(last) if last == digest => return Ok(body),
            Some(_) => {
                leg.version = leg.version.wrapping_add(1);
                if let Some(span) = span {
                    body.splice(span, leg.version.to_string().into_bytes());
                }
            }
        }
        leg.last_sent = Some(Sha256::digest(&body).into());
        Ok(body)
    }
}
