//! The persisted form of an established call: enough of both legs to route BYE and
//! re-INVITE after a restart.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use super::leg::Leg;
use crate::media::StreamPorts;
use crate::sdp::OriginState;

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
    /// SDP and relay state, so media keeps flowing (same ports, same o=) after a
    /// restart. Absent in records of calls without SDP and of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<CallMedia>,
}

/// A call's media state: each leg's own o= identity and, with the built-in
/// relay, every anchored stream.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CallMedia {
    /// o= state of the A leg (index 0) and the B leg (index 1).
    pub origin: [OriginState; 2],
    /// Relay streams by media-section index.
    #[serde(default)]
    pub streams: BTreeMap<usize, StreamRecord>,
}

impl Default for CallMedia {
    fn default() -> Self {
        CallMedia {
            origin: [OriginState::random(), OriginState::random()],
            streams: BTreeMap::new(),
        }
    }
}

/// One relayed stream: the ports sipveil advertised on each side and where each
/// side said it receives.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StreamRecord {
    /// sipveil's media address toward the A side.
    pub a_ip: IpAddr,
    /// sipveil's media address toward the B side.
    pub b_ip: IpAddr,
    /// The ports advertised to each side.
    pub ports: StreamPorts,
    /// The far ends signaled by A (index 0) and B (index 1).
    #[serde(default)]
    pub remote: [Remote; 2],
}

/// Where one side's SDP said it receives a stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remote {
    /// RTP address (None: hold or a host name; latch only).
    pub rtp: Option<SocketAddr>,
    /// RTCP address (`a=rtcp`, else RTP port + 1).
    pub rtcp: Option<SocketAddr>,
    /// RTCP shares the RTP port.
    pub mux: bool,
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
