//! One leg of a call: the dialog state toward one peer, and building requests on it
//! from that state alone, so nothing of the other leg can leak into them.

use serde::{Deserialize, Serialize};

use super::iface::IfaceInfo;
use crate::sip::{HeaderName, Method, SipMessage};
use crate::transaction::{Peer, Transport};

/// Which leg of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Side {
    /// Toward the caller (sipveil is the UAS).
    A,
    /// Toward the callee (sipveil is the UAC).
    B,
}

impl Side {
    /// The other leg.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// Where requests on a leg are sent, in a form that survives a restart.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerRecord {
    /// Remote address.
    pub addr: std::net::SocketAddr,
    /// `true` for TCP.
    pub tcp: bool,
    /// Local interface index.
    pub iface: usize,
}

impl PeerRecord {
    /// Records a live peer (connection ids do not survive restarts).
    pub fn from_peer(p: &Peer) -> Self {
        PeerRecord {
            addr: p.addr,
            tcp: p.transport == Transport::Tcp,
            iface: p.iface,
        }
    }

    /// The peer to send to; TCP reuses a connection to the same address if one exists.
    pub fn to_peer(&self) -> Peer {
        Peer {
            addr: self.addr,
            transport: if self.tcp {
                Transport::Tcp
            } else {
                Transport::Udp
            },
            iface: self.iface,
            conn: None,
        }
    }
}

/// Dialog state of one leg (RFC 3261 §12), as sipveil sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Leg {
    /// Interface this leg lives on.
    pub iface: usize,
    /// Call-ID of this leg.
    pub call_id: String,
    /// Our tag on this leg.
    pub local_tag: String,
    /// The peer's tag (empty until known).
    pub remote_tag: String,
    /// Our address-of-record on this leg, as a name-addr without tag.
    pub local_uri: String,
    /// The peer's address-of-record on this leg, as a name-addr without tag.
    pub remote_uri: String,
    /// Last CSeq we sent on this leg.
    pub local_cseq: u32,
    /// Last CSeq the peer sent on this leg (0 until it sends one).
    pub remote_cseq: u32,
    /// Where in-dialog requests go (the peer's Contact URI).
    pub remote_target: String,
    /// Route set, in the order to put into Route headers.
    pub route_set: Vec<String>,
    /// Transport address requests are sent to.
    pub peer: PeerRecord,
    /// CSeq of the INVITE that created the dialog on this leg.
    pub invite_cseq: u32,
    /// Requests go to `peer` as learned from the peer's own traffic, whatever its
    /// Contact says (the caller's leg).
    #[serde(default)]
    pub latched: bool,
}

/// A fresh branch with the RFC 3261 magic cookie.
pub fn new_branch() -> String {
    format!("z9hG4bK{:016x}{:08x}", fastrand::u64(..), fastrand::u32(..))
}

/// A fresh tag.
pub fn new_tag() -> String {
    format!("{:016x}", fastrand::u64(..))
}

/// Methods whose requests and 2xx carry a Contact and refresh the remote target.
pub fn is_target_refresh(m: &Method) -> bool {
    matches!(
        m,
        Method::Invite | Method::Update | Method::Subscribe | Method::Notify | Method::Refer
    )
}

fn with_tag(uri: &str, tag: &str) -> String {
    if tag.is_empty() {
        uri.to_string()
    } else {
        format!("{uri};tag={tag}")
    }
}

impl Leg {
    /// Builds an in-dialog request on this leg (RFC 3261 §12.2.1.1) with the next
    /// local CSeq, or with `cseq` when given (ACK and CANCEL reuse the INVITE's).
    pub fn request(
        &mut self,
        method: Method,
        cseq: Option<u32>,
        iface: &IfaceInfo,
        max_forwards: u32,
    ) -> SipMessage {
        let seq = match cseq {
            Some(n) => n,
            None => {
                self.local_cseq = self.local_cseq.wrapping_add(1);
                self.local_cseq
            }
        };
        let mut m = SipMessage::new_request(method.clone(), &self.remote_target);
        let transport = if self.peer.tcp {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        m.push(HeaderName::Via, &iface.via(transport, &new_branch()));
        m.push(HeaderName::MaxForwards, &max_forwards.to_string());
        for r in &self.route_set {
            m.push(HeaderName::Route, r);
        }
        m.push(
            HeaderName::From,
            &with_tag(&self.local_uri, &self.local_tag),
        );
        m.push(
            HeaderName::To,
            &with_tag(&self.remote_uri, &self.remote_tag),
        );
        m.push(HeaderName::CallId, &self.call_id);
        m.push(HeaderName::CSeq, &format!("{seq} {}", method.as_str()));
        if is_target_refresh(&method) {
            m.push(HeaderName::Contact, &iface.contact(transport));
        }
        // Every request carries Content-Length (RFC 3261 §20.14: mandatory over
        // TCP, where the peer frames by it); `set_body` replaces it with the
        // body's length.
        m.push(HeaderName::ContentLength, "0");
        m
    }

    /// The transport toward this leg's peer.
    pub fn transport(&self) -> Transport {
        if self.peer.tcp {
            Transport::Tcp
        } else {
            Transport::Udp
        }
    }
}
