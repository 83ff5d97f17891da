//! The engine's side of `mode = "rtpengine"`: which ng command a crossing body
//! becomes, under which tags, and what happens when rtpengine does not answer.
//!
//! Why this shape: one rtpengine call per sipveil call, filed under the call's
//! uuid (never a Call-ID a peer chose), with the fixed tags `a` and `b` for the
//! two legs, so offers and answers from either side (re-INVITEs from the callee
//! included) land on the right monologue, whatever the legs' own tags are. The
//! client blocks the signaling thread for one round trip, so after a timeout
//! rtpengine is treated as down for `DOWN_FOR` and new offers fail at once with
//! 503 instead of stalling every message behind it.

use std::time::{Duration, Instant};

use super::media::SdpRole;
use crate::dialog::leg::Side;
use crate::media::rtpengine::{NgClient, NgError, Session};
use crate::sdp::SdpError;

/// How long rtpengine is left alone after it failed to answer.
const DOWN_FOR: Duration = Duration::from_secs(5);

/// What sipveil asks rtpengine to replace in every body: its own address in o=
/// and the session c=, so no address of the far side survives.
const REPLACE: &[&str] = &["origin", "session-connection"];

/// An rtpengine and whether it is answering.
pub(crate) struct NgAnchor {
    client: NgClient,
    down_until: Option<Instant>,
    /// The ng `ICE` option: `remove` unless `[media] pass_ice`.
    ice: Option<&'static str>,
}

fn tag(s: Side) -> &'static str {
    match s {
        Side::A => "a",
        Side::B => "b",
    }
}

impl NgAnchor {
    pub(crate) fn new(client: NgClient, pass_ice: bool) -> NgAnchor {
        NgAnchor {
            client,
            down_until: None,
            ice: (!pass_ice).then_some("remove"),
        }
    }

    fn is_down(&mut self) -> bool {
        match self.down_until {
            Some(t) if Instant::now() < t => true,
            Some(_) => {
                self.down_until = None;
                false
            }
            None => false,
        }
    }

    /// Sends `body` as an offer from `offerer` (or as the answer to its offer) and
    /// returns the body rtpengine wrote for the other side.
    pub(crate) fn exchange(
        &mut self,
        call: &str,
        offerer: Side,
        role: SdpRole,
        confirmed: bool,
        direction: &[String],
        body: &[u8],
    ) -> Result<Vec<u8>, SdpError> {
        if self.is_down() {
            return Err(SdpError::Unavailable("rtpengine not answering".into()));
        }
        let direction: Vec<&str> = direction.iter().map(String::as_str).collect();
        let answerer = offerer.other();
        let session = Session {
            call_id: call,
            from_tag: tag(offerer),
            // A first offer has no answerer yet; a re-offer names it.
            to_tag: (role == SdpRole::Answer || confirmed).then_some(tag(answerer)),
            sdp: body,
            replace: REPLACE,
            ice: self.ice,
            direction: &direction,
            flags: &[],
            rtcp_mux: &[],
        };
        let result = match role {
            SdpRole::Offer => self.client.offer(&session),
            SdpRole::Answer => self.client.answer(&session),
        };
        result.map_err(|e| {
            tracing::warn!(call, command = ?role, "rtpengine: {e}");
            self.note_failure(&e);
            SdpError::Unavailable(format!("rtpengine: {e}"))
        })
    }

    /// Ends the call at rtpengine; failures are logged (rtpengine also times out
    /// idle calls itself).
    pub(crate) fn delete(&mut self, call: &str) {
        if self.is_down() {
            tracing::warn!(call, "rtpengine down: call not deleted there");
            return;
        }
        if let Err(e) = self.client.delete(call, tag(Side::A), None) {
            tracing::warn!(call, "rtpengine delete: {e}");
            self.note_failure(&e);
        }
    }

    fn note_failure(&mut self, e: &NgError) {
        if matches!(e, NgError::Timeout { .. } | NgError::Io(_)) {
            self.down_until = Some(Instant::now() + DOWN_FOR);
        }
    }
}
