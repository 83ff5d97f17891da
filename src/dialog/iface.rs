//! What the dialog core knows of each interface: the address it advertises and the
//! ports it listens on. Everything sipveil writes about itself comes from here.

use std::net::SocketAddr;

use crate::transaction::Transport;

/// One interface as the core uses it.
#[derive(Clone, Debug)]
pub struct IfaceInfo {
    /// Config name.
    pub name: String,
    /// Host written into Via, Contact, From/To (IPv6 bracketed).
    pub advertise: String,
    /// UDP listen address.
    pub udp: Option<SocketAddr>,
    /// TCP listen address.
    pub tcp: Option<SocketAddr>,
    /// Whether identity headers from here are believed.
    pub trusted: bool,
    /// Whether asserted identity may be sent toward this side when untrusted.
    pub send_identity: bool,
    /// Which identity header this side speaks.
    pub identity_header: crate::policy::identity::IdentityHeader,
    /// Media settings of this side (address, codecs, rtpengine interface).
    pub media: IfaceMedia,
}

/// Per-interface media settings: where the relay listens toward this side and
/// which codecs offers may carry to and from it.
#[derive(Clone, Debug, Default)]
pub struct IfaceMedia {
    /// `media_address`: the relay's address toward this side, when it is not the
    /// advertised one (e.g. a separate media NIC).
    pub address: Option<std::net::IpAddr>,
    /// `codecs`: allow, deny and preferred order applied to every offer that
    /// arrives from or leaves toward this side.
    pub codecs: crate::sdp::CodecPolicy,
    /// `rtpengine_interface`: the rtpengine `--interface` name facing this side,
    /// sent in the ng `direction` list (`mode = "rtpengine"`).
    pub rtpengine_interface: Option<String>,
}

impl IfaceInfo {
    /// The port sipveil listens on for `t`, falling back to the other transport's.
    pub fn port(&self, t: Transport) -> u16 {
        let primary = match t {
            Transport::Udp => self.udp,
            Transport::Tcp => self.tcp,
        };
        primary
            .or(self.udp)
            .or(self.tcp)
            .map(|a| a.port())
            .unwrap_or(5060)
    }

    /// Whether the interface can send over `t`.
    pub fn has(&self, t: Transport) -> bool {
        match t {
            Transport::Udp => self.udp.is_some(),
            Transport::Tcp => self.tcp.is_some(),
        }
    }

    /// A Via value for a request leaving this interface.
    pub fn via(&self, t: Transport, branch: &str) -> String {
        let tok = match t {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        };
        format!(
            "SIP/2.0/{tok} {}:{};branch={branch};rport",
            self.advertise,
            self.port(t)
        )
    }

    /// Our Contact on this interface.
    pub fn contact(&self, t: Transport) -> String {
        match t {
            Transport::Udp => format!("<sip:{}:{}>", self.advertise, self.port(t)),
            Transport::Tcp => format!("<sip:{}:{};transport=tcp>", self.advertise, self.port(t)),
        }
    }

    /// The address media is anchored at on this side: `media_address`, else the
    /// advertised address when it is an IP, else the listen address.
    pub fn media_ip(&self) -> Option<std::net::IpAddr> {
        if let Some(ip) = self.media.address {
            return Some(ip);
        }
        if let Ok(ip) = self
            .advertise
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
        {
            return Some(ip);
        }
        [self.udp, self.tcp]
            .into_iter()
            .flatten()
            .map(|a| a.ip())
            .find(|ip| !ip.is_unspecified())
    }

    /// Whether a host (as written in a URI) names this interface.
    pub fn is_own_host(&self, host: &str, port: Option<u16>) -> bool {
        let host_matches = host.eq_ignore_ascii_case(&self.advertise)
            || [self.udp, self.tcp]
                .iter()
                .flatten()
                .any(|a| host.trim_matches(['[', ']']) == a.ip().to_string());
        let port_matches =
            port.is_none_or(|p| [self.udp, self.tcp].iter().flatten().any(|a| a.port() == p));
        host_matches && port_matches
    }
}
