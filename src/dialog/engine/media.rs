//! Media anchoring in the call flow: every SDP that crosses is rewritten to name
//! sipveil's own address and relay ports on the receiving side, and the relay
//! learns where the sending side wants media. Without a relay (passthrough) bodies
//! cross unchanged.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::{Call, Engine};
use crate::dialog::leg::Side;
use crate::media::{MediaRelay, Side as MediaSide};
use crate::sdp::{MediaPlan, OriginState, RewritePlan, Sdp, SdpError};
use crate::sip::SipMessage;

/// The relay and its settings, as the engine uses them.
pub(crate) struct Anchor {
    pub(crate) relay: MediaRelay,
    pub(crate) timeout: Option<Duration>,
    pub(crate) next_check: Option<Instant>,
}

/// Per-call SDP state: each leg's own o= identifiers.
#[derive(Clone, Debug)]
pub(crate) struct CallMedia {
    pub(crate) origin: [OriginState; 2],
}

impl Default for CallMedia {
    fn default() -> Self {
        CallMedia {
            origin: [OriginState::random(), OriginState::random()],
        }
    }
}

fn media_side(s: Side) -> MediaSide {
    match s {
        Side::A => MediaSide::A,
        Side::B => MediaSide::B,
    }
}

/// Whether a message carries an SDP body.
fn has_sdp(msg: &SipMessage) -> bool {
    !msg.body().is_empty()
        && msg.content_type().is_none_or(|ct| {
            ct.trim()
                .to_ascii_lowercase()
                .starts_with("application/sdp")
        })
}

impl Engine {
    /// Turns on media anchoring with a running relay.
    pub fn enable_media(&mut self, relay: MediaRelay, timeout: Option<Duration>) {
        self.media = Some(Anchor {
            relay,
            timeout,
            next_check: None,
        });
    }

    /// Whether sipveil anchors media (Privacy: session can be met).
    pub(super) fn media_anchored(&self) -> bool {
        self.media.is_some()
    }

    fn media_ip(&self, iface: usize) -> Option<IpAddr> {
        self.cfg.ifaces.get(iface).and_then(|i| i.media_ip())
    }

    /// Rewrites the SDP of `dst` (copied from `src`, which came from leg `from`)
    /// for the other leg, allocating relay ports per stream and pointing the relay
    /// at the sender's media. Nothing changes without a relay or a body.
    pub(super) fn anchor_body(
        &mut self,
        call_no: u64,
        from: Side,
        src: &SipMessage,
        dst: &mut SipMessage,
    ) -> Result<(), SdpError> {
        let Some(anchor) = self.media.as_ref() else {
            return Ok(());
        };
        if !has_sdp(src) {
            return Ok(());
        }
        let Some(call) = self.calls.get(&call_no) else {
            return Ok(());
        };
        let to = from.other();
        let (Some(a_ip), Some(b_ip)) = (self.media_ip(call.a.iface), self.media_ip(call.b.iface))
        else {
            return Ok(());
        };
        let to_ip = if to == Side::A { a_ip } else { b_ip };
        let sdp = Sdp::parse(src.body())?;
        let uuid = call.uuid.clone();
        let mut plan = RewritePlan::new(to_ip);
        for t in sdp.media_targets() {
            if t.port == 0 {
                plan.media.push(MediaPlan::port(0));
                continue;
            }
            let ports = match anchor.relay.allocate(&uuid, t.index, a_ip, b_ip) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(call = %uuid, "media ports unavailable: {e}");
                    return Err(SdpError::Plan(format!("media ports unavailable: {e}")));
                }
            };
            let rtp = t.address.map(|ip| SocketAddr::new(ip, t.port));
            let rtcp = match (t.rtcp_address.or(t.address), t.rtcp_port) {
                (Some(ip), Some(p)) => Some(SocketAddr::new(ip, p)),
                _ => None,
            };
            if let Err(e) =
                anchor
                    .relay
                    .set_remote(&uuid, t.index, media_side(from), rtp, rtcp, t.rtcp_mux)
            {
                tracing::debug!(call = %uuid, "relay set_remote: {e}");
            }
            let (port, rtcp_port) = match to {
                Side::A => (ports.a_rtp, ports.a_rtcp),
                Side::B => (ports.b_rtp, ports.b_rtcp),
            };
            plan.media.push(MediaPlan {
                port,
                rtcp_port: Some(rtcp_port),
            });
        }
        let Some(call) = self.calls.get_mut(&call_no) else {
            return Ok(());
        };
        let state = call.media.get_or_insert_with(CallMedia::default);
        let origin = match to {
            Side::A => &mut state.origin[0],
            Side::B => &mut state.origin[1],
        };
        let body = sdp.rewrite_for_leg(&plan, origin)?;
        dst.set_body(bytes::Bytes::from(body));
        Ok(())
    }

    /// Stops forwarding for a call and logs what flowed (datagrams and their
    /// payload bytes, RTP and RTCP together, per direction).
    pub(super) fn release_media(&mut self, call: &Call) {
        let Some(anchor) = self.media.as_ref() else {
            return;
        };
        if let Some(stats) = anchor.relay.release(&call.uuid) {
            for s in stats {
                tracing::info!(
                    call = %call.uuid,
                    stream = s.stream,
                    a_to_b_packets = s.a_to_b.packets,
                    a_to_b_bytes = s.a_to_b.bytes,
                    b_to_a_packets = s.b_to_a.packets,
                    b_to_a_bytes = s.b_to_a.bytes,
                    dropped = s.dropped_source + s.dropped_unroutable,
                    "media released"
                );
            }
        }
    }

    /// Ends answered calls whose media has been silent for `media_timeout`.
    pub(super) fn media_upkeep(&mut self, now: Instant) {
        let Some(anchor) = self.media.as_mut() else {
            return;
        };
        let Some(timeout) = anchor.timeout else {
            return;
        };
        if anchor.next_check.is_some_and(|t| now < t) {
            return;
        }
        anchor.next_check = Some(now + Duration::from_secs(1));
        let silent = anchor.relay.silent_calls(now, timeout);
        for uuid in silent {
            let found = self
                .calls
                .iter()
                .find(|(_, c)| c.uuid == uuid && c.state == super::State::Confirmed)
                .map(|(n, _)| *n);
            if let Some(call_no) = found {
                tracing::info!(call = %uuid, "media timeout: ending call");
                self.hangup_with(call_no, "SIP;cause=408;text=\"media timeout\"", now);
            }
        }
    }
}
