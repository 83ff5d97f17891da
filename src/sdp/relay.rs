//! What the media relay needs from a received body: where the far side wants each
//! stream sent. Reading it here keeps SDP knowledge out of the relay.

use std::net::IpAddr;

use super::parse::Sdp;
use super::types::{Direction, MediaKind};

/// Where to send one stream of the far side (one per media section, in order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaTarget {
    /// The media section index (the index a [`super::RewritePlan`] uses).
    pub index: usize,
    /// The media type.
    pub kind: MediaKind,
    /// The connection address as written (an IP or a host name).
    pub host: String,
    /// The address to send RTP to; `None` when there is nowhere to send: a hold by
    /// `c=0.0.0.0`, or a host name the caller would have to resolve.
    pub address: Option<IpAddr>,
    /// The RTP port; 0 for a rejected stream (then nothing is to be relayed).
    pub port: u16,
    /// The RTCP port: `a=rtcp`, else port+1 (`None` if that overflows or the stream
    /// is rejected). With `rtcp_mux` RTCP may arrive on the RTP port instead.
    pub rtcp_port: Option<u16>,
    /// The RTCP address when `a=rtcp` names one, else `address`.
    pub rtcp_address: Option<IpAddr>,
    /// `a=rtcp-mux` was offered or answered.
    pub rtcp_mux: bool,
    /// The far side's direction, with a `c=0.0.0.0` hold folded in (a zero address
    /// takes receiving away): the relay sends toward the far side only if
    /// `direction.receives()`.
    pub direction: Direction,
}

impl Sdp {
    /// The far side's stream endpoints, one per media section.
    pub fn media_targets(&self) -> Vec<MediaTarget> {
        self.media
            .iter()
            .enumerate()
            .map(|(index, m)| {
                let conn = self.connection_for(index);
                let held = conn.is_some_and(|c| c.is_hold());
                let address = conn.and_then(|c| c.ip).filter(|ip| !ip.is_unspecified());
                let written = self.direction_for(index);
                let rtcp_port = match (&m.rtcp, m.port) {
                    (_, 0) => None,
                    (Some(r), _) => Some(r.port),
                    (None, p) => p.checked_add(1),
                };
                let rtcp_address = match m.rtcp.as_ref().and_then(|r| r.connection.as_ref()) {
                    Some(c) => c.ip.filter(|ip| !ip.is_unspecified()),
                    None => address,
                };
                MediaTarget {
                    index,
                    kind: m.kind.clone(),
                    host: conn.map(|c| c.address.clone()).unwrap_or_default(),
                    address,
                    port: m.port,
                    rtcp_port,
                    rtcp_address,
                    rtcp_mux: m.rtcp_mux,
                    direction: if held {
                        written.without_recv()
                    } else {
                        written
                    },
                }
            })
            .collect()
    }
}
