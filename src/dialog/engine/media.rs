//! Media anchoring in the call flow: every SDP that crosses is rewritten to name
//! sipveil's own address and ports on the receiving side (built-in relay), or
//! handed to rtpengine, which does the same. Offers pass the codec policy of both
//! interfaces first. In passthrough mode bodies cross unchanged apart from that
//! policy.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::rtpengine::NgAnchor;
use super::{Call, Engine, State};
use crate::dialog::leg::Side;
use crate::dialog::record::{CallMedia, CallRecord, Remote, StreamRecord};
use crate::media::{MediaRelay, Side as MediaSide};
use crate::sdp::{MediaPlan, RewritePlan, Sdp, SdpError};
use crate::sip::SipMessage;

/// The media anchor and its settings, as the engine uses them.
pub(crate) struct Anchor {
    pub(crate) backend: Backend,
    /// `[media] origin_username` (None keeps the received one).
    pub(crate) origin_username: Option<String>,
    /// `[media] pass_ice`.
    pub(crate) pass_ice: bool,
    pub(crate) timeout: Option<Duration>,
    pub(crate) next_check: Option<Instant>,
}

/// Who forwards the media.
pub(crate) enum Backend {
    /// sipveil's own relay threads.
    Relay(MediaRelay),
    /// An external rtpengine driven over ng.
    Rtpengine(NgAnchor),
}

/// Which part of an RFC 3264 exchange a body is: codec policy applies to offers;
/// rtpengine needs to be told which one it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SdpRole {
    Offer,
    Answer,
}

impl SdpRole {
    /// The role of a body in a response to a request that did (or did not) carry one.
    pub(super) fn of_response(request_had_body: bool) -> SdpRole {
        if request_had_body {
            SdpRole::Answer
        } else {
            SdpRole::Offer
        }
    }
}

fn media_side(s: Side) -> MediaSide {
    match s {
        Side::A => MediaSide::A,
        Side::B => MediaSide::B,
    }
}

fn slot(s: Side) -> usize {
    match s {
        Side::A => 0,
        Side::B => 1,
    }
}

/// Whether a message carries an SDP body.
pub(super) fn has_sdp(msg: &SipMessage) -> bool {
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
        let cfg = relay.config();
        self.media = Some(Anchor {
            origin_username: cfg.origin_username.clone(),
            pass_ice: cfg.pass_ice,
            backend: Backend::Relay(relay),
            timeout,
            next_check: None,
        });
    }

    /// Turns on media anchoring by an external rtpengine (`cfg` gives the SDP
    /// settings: o= username, ICE).
    pub fn enable_rtpengine(
        &mut self,
        client: crate::media::rtpengine::NgClient,
        cfg: &crate::media::MediaConfig,
    ) {
        self.media = Some(Anchor {
            origin_username: cfg.origin_username.clone(),
            pass_ice: cfg.pass_ice,
            backend: Backend::Rtpengine(NgAnchor::new(client, cfg.pass_ice)),
            timeout: None,
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

    /// A plan anchoring at `address` with the `[media]` SDP settings, for a
    /// body that arrived on interface `from_iface`. Its `hold_zero_address`
    /// normalization turns an RFC 2543 hold (`c=0.0.0.0`) into the RFC 3264
    /// form (sipveil's address plus a direction attribute) that every peer
    /// understands; switched off, the zero address is carried through as is.
    fn plan(&self, address: IpAddr, from_iface: usize) -> RewritePlan {
        let mut plan = RewritePlan::new(address);
        if let Some(a) = &self.media {
            plan.origin_username = a.origin_username.clone();
            plan.strip_ice = !a.pass_ice;
        }
        let name = self
            .cfg
            .ifaces
            .get(from_iface)
            .map(|i| i.name.as_str())
            .unwrap_or_default();
        if self.policy.normalize(name).hold_zero_address {
            plan.hold = crate::sdp::HoldMode::AsDirection;
        }
        plan
    }

    /// Rewrites the SDP of `dst` (copied from `src`, which came from leg `from`)
    /// for the other leg. Offers pass the codec policy of both interfaces; then
    /// the anchor (relay or rtpengine) decides addresses and ports. Nothing
    /// changes without a body, or in passthrough with no codec policy.
    pub(super) fn anchor_body(
        &mut self,
        call_no: u64,
        from: Side,
        role: SdpRole,
        src: &SipMessage,
        dst: &mut SipMessage,
    ) -> Result<(), SdpError> {
        if !has_sdp(src) {
            return Ok(());
        }
        let Some(call) = self.calls.get(&call_no) else {
            return Ok(());
        };
        let to = from.other();
        let (from_if, to_if) = (call.leg(from).iface, call.leg(to).iface);
        let policies: Vec<&crate::sdp::CodecPolicy> = if role == SdpRole::Offer {
            [from_if, to_if]
                .iter()
                .filter_map(|&i| self.cfg.ifaces.get(i))
                .map(|i| &i.media.codecs)
                .filter(|p| !p.is_empty())
                .collect()
        } else {
            Vec::new()
        };
        if self.media.is_none() && policies.is_empty() {
            return Ok(());
        }
        let mut sdp = Sdp::parse(src.body())?;
        for p in policies {
            sdp = sdp.apply_codec_policy(p)?;
        }
        let body = match self.media.as_ref().map(|a| &a.backend) {
            None => sdp.as_bytes().to_vec(),
            Some(Backend::Relay(relay)) => {
                let relay = relay.clone();
                self.relay_rewrite(&relay, call_no, from, &sdp)?
            }
            Some(Backend::Rtpengine(_)) => self.rtpengine_rewrite(call_no, from, role, &sdp)?,
        };
        dst.set_body(bytes::Bytes::from(body));
        if self
            .calls
            .get(&call_no)
            .is_some_and(|c| c.state == State::Confirmed)
        {
            // A re-offer moved ports or far ends: keep the stored call current.
            self.persist(call_no);
        }
        Ok(())
    }

    /// The relay path: ports per stream, the sender's far end told to the relay,
    /// and the body rewritten with sipveil's address and this leg's o=.
    fn relay_rewrite(
        &mut self,
        relay: &MediaRelay,
        call_no: u64,
        from: Side,
        sdp: &Sdp,
    ) -> Result<Vec<u8>, SdpError> {
        let Some(call) = self.calls.get(&call_no) else {
            return Err(SdpError::Plan("call gone".into()));
        };
        let to = from.other();
        let (Some(a_ip), Some(b_ip)) = (self.media_ip(call.a.iface), self.media_ip(call.b.iface))
        else {
            return Err(SdpError::Plan("interface has no media address".into()));
        };
        let to_ip = if to == Side::A { a_ip } else { b_ip };
        let uuid = call.uuid.clone();
        let mut plan = self.plan(to_ip, call.leg(from).iface);
        let mut streams = Vec::new();
        for t in sdp.media_targets() {
            if t.port == 0 {
                plan.media.push(MediaPlan::port(0));
                continue;
            }
            let ports = relay.allocate(&uuid, t.index, a_ip, b_ip).map_err(|e| {
                tracing::warn!(call = %uuid, "media ports unavailable: {e}");
                SdpError::Unavailable(format!("media ports unavailable: {e}"))
            })?;
            let remote = Remote {
                rtp: t.address.map(|ip| SocketAddr::new(ip, t.port)),
                rtcp: match (t.rtcp_address.or(t.address), t.rtcp_port) {
                    (Some(ip), Some(p)) => Some(SocketAddr::new(ip, p)),
                    _ => None,
                },
                mux: t.rtcp_mux,
            };
            if let Err(e) = relay.set_remote(
                &uuid,
                t.index,
                media_side(from),
                remote.rtp,
                remote.rtcp,
                remote.mux,
            ) {
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
            streams.push((t.index, ports, remote));
        }
        let Some(call) = self.calls.get_mut(&call_no) else {
            return Err(SdpError::Plan("call gone".into()));
        };
        let state = call.media.get_or_insert_with(CallMedia::default);
        for (index, ports, remote) in streams {
            let rec = state.streams.entry(index).or_insert(StreamRecord {
                a_ip,
                b_ip,
                ports,
                remote: [Remote::default(); 2],
            });
            rec.ports = ports;
            if let Some(r) = rec.remote.get_mut(slot(from)) {
                *r = remote;
            }
        }
        let origin = &mut state.origin[slot(to)];
        sdp.rewrite_for_leg(&plan, origin)
    }

    /// The rtpengine path: `offer` or `answer` over ng, then rtpengine's body is
    /// given this leg's o= (rtpengine keeps the sender's sess-id otherwise).
    fn rtpengine_rewrite(
        &mut self,
        call_no: u64,
        from: Side,
        role: SdpRole,
        sdp: &Sdp,
    ) -> Result<Vec<u8>, SdpError> {
        let Some(call) = self.calls.get(&call_no) else {
            return Err(SdpError::Plan("call gone".into()));
        };
        let to = from.other();
        let name = |s: Side| {
            self.cfg
                .ifaces
                .get(call.leg(s).iface)
                .and_then(|i| i.media.rtpengine_interface.clone())
        };
        let (offerer, answerer) = match role {
            SdpRole::Offer => (from, to),
            SdpRole::Answer => (to, from),
        };
        let direction: Vec<String> = match (name(offerer), name(answerer)) {
            (Some(o), Some(a)) => vec![o, a],
            _ => Vec::new(),
        };
        let uuid = call.uuid.clone();
        let from_iface = call.leg(from).iface;
        let confirmed = call.state == State::Confirmed;
        let Some(Anchor {
            backend: Backend::Rtpengine(ng),
            ..
        }) = self.media.as_mut()
        else {
            return Err(SdpError::Plan("no rtpengine".into()));
        };
        let body = ng.exchange(&uuid, offerer, role, confirmed, &direction, sdp.as_bytes())?;
        let back = Sdp::parse(&body).map_err(|e| {
            tracing::warn!(call = %uuid, "rtpengine returned SDP we cannot read: {e}");
            SdpError::Unavailable(format!("rtpengine SDP unreadable: {e}"))
        })?;
        let targets = back.media_targets();
        let Some(address) = targets
            .iter()
            .find_map(|t| t.address)
            .or_else(|| back.session_connection().and_then(|c| c.ip))
        else {
            // Every stream on hold or rejected: nothing to re-address.
            return Ok(body);
        };
        let mut plan = self.plan(address, from_iface);
        plan.media = targets
            .iter()
            .map(|t| MediaPlan {
                port: t.port,
                rtcp_port: t.rtcp_port,
            })
            .collect();
        let Some(call) = self.calls.get_mut(&call_no) else {
            return Err(SdpError::Plan("call gone".into()));
        };
        let state = call.media.get_or_insert_with(CallMedia::default);
        back.rewrite_for_leg(&plan, &mut state.origin[slot(to)])
    }

    /// Answers a request whose SDP could not be anchored: the status and reason
    /// of the fault, with a Warning naming it.
    pub(super) fn reject_sdp(
        &mut self,
        id: crate::transaction::ServerTxId,
        e: &SdpError,
        now: Instant,
    ) {
        let warning = e.warning("sipveil");
        let mut extra = vec![(crate::sip::HeaderName::Warning, warning.as_str())];
        if e.status() == 503 {
            extra.push((crate::sip::HeaderName::RetryAfter, "5"));
        }
        self.reply_with(id, e.status(), e.reason(), &extra, now);
    }

    /// Stops forwarding for a call and logs what flowed.
    pub(super) fn release_media(&mut self, call: &Call) {
        let Some(anchor) = self.media.as_mut() else {
            return;
        };
        match &mut anchor.backend {
            Backend::Relay(relay) => {
                if let Some(stats) = relay.release(&call.uuid) {
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
            Backend::Rtpengine(ng) => {
                if call.media.is_some() {
                    ng.delete(&call.uuid);
                }
            }
        }
    }

    /// Re-binds the relay ports of calls restored from the store, so their peers
    /// keep sending where they were told. A stream whose ports are taken is
    /// logged; its call stays up for signaling.
    pub(super) fn restore_media(&mut self, records: &[CallRecord]) {
        let Some(Anchor {
            backend: Backend::Relay(relay),
            ..
        }) = self.media.as_ref()
        else {
            return;
        };
        for r in records {
            let Some(m) = &r.media else { continue };
            for (&index, s) in &m.streams {
                if let Err(e) = relay.restore(&r.uuid, index, s.a_ip, s.b_ip, s.ports) {
                    tracing::warn!(call = %r.uuid, stream = index, "media not restored: {e}");
                    continue;
                }
                for (side, remote) in [MediaSide::A, MediaSide::B].into_iter().zip(s.remote) {
                    if let Err(e) =
                        relay.set_remote(&r.uuid, index, side, remote.rtp, remote.rtcp, remote.mux)
                    {
                        tracing::debug!(call = %r.uuid, "relay set_remote: {e}");
                    }
                }
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
        let Backend::Relay(relay) = &anchor.backend else {
            return;
        };
        let silent = relay.silent_calls(now, timeout);
        for uuid in silent {
            let found = self
                .calls
                .iter()
                .find(|(_, c)| c.uuid == uuid && c.state == State::Confirmed)
                .map(|(n, _)| *n);
            if let Some(call_no) = found {
                tracing::info!(call = %uuid, "media timeout: ending call");
                self.hangup_with(call_no, "SIP;cause=408;text=\"media timeout\"", now);
            }
        }
    }
}
