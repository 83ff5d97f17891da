//! Symmetric latching: where the relay sends a side's media, and which sources it
//! accepts media from. Pure state, no sockets, so every rule is a unit test.
//!
//! The rules (per side, and separately for RTP and RTCP):
//!
//! 1. Before any packet arrived from a side, media toward it goes to the address
//!    and port its SDP signaled (RTCP: the `a=rtcp` address, else RTP port + 1;
//!    with rtcp-mux, the RTP address).
//! 2. The first packet that arrives latches its source: from then on media toward
//!    that side goes to where its packets actually come from (the NAT's mapping),
//!    not to what the SDP said.
//! 3. Packets from the latched source are accepted and refresh the latch.
//! 4. A packet from another source is accepted, and re-latches, only if
//!    - it comes from exactly the signaled address and port (the endpoint the
//!      SDP named always wins back its own stream), or
//!    - the latched source has been silent for at least `relatch_after`
//!      (default 2 s: a phone that changed network or NAT binding).
//!
//!    Otherwise it is dropped and counted: a third party that learned the port
//!    cannot hijack or inject into a stream that is flowing.
//! 5. `set_remote` with a new signaled address (re-INVITE/UPDATE moving the
//!    media) forgets both latches of that side, so media follows the new SDP at
//!    once (rule 1) until the far end's packets latch again; a new RTCP address
//!    alone (new `a=rtcp`, rtcp-mux switched on or off) forgets the RTCP latch.
//!    A latch that already sits on the new address is kept (the far end often
//!    starts sending before its SDP has reached us).
//!    The same address again, or no address (`c=0.0.0.0` hold, port 0), keeps
//!    the latches: a hold must not lose a NAT mapping that was learned. A side
//!    with neither a latch nor a signaled address gets nothing (hold before any
//!    packet): those packets are counted as unroutable.

use std::net::SocketAddr;

/// One latched source with the time its last accepted packet arrived.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latch {
    /// Where packets come from (and where the other side's media goes).
    pub addr: Option<SocketAddr>,
    /// Milliseconds (relay clock) of the last accepted packet.
    pub last_ms: u64,
}

impl Latch {
    /// Applies rules 2–4 to a packet from `src`; true if it is to be forwarded.
    pub fn admit(
        &mut self,
        src: SocketAddr,
        signaled: Option<SocketAddr>,
        now_ms: u64,
        relatch_ms: u64,
    ) -> bool {
        let ok = match self.addr {
            None => true,
            Some(a) if a == src => true,
            Some(_) => signaled == Some(src) || now_ms.saturating_sub(self.last_ms) >= relatch_ms,
        };
        if ok {
            self.addr = Some(src);
            self.last_ms = now_ms;
        }
        ok
    }
}

/// What the relay knows about one side's far end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Remote {
    /// RTP address from the SDP (`None` before any SDP, on hold, or port 0).
    pub signaled_rtp: Option<SocketAddr>,
    /// Explicit RTCP address (`a=rtcp`), when the SDP gave one.
    pub signaled_rtcp: Option<SocketAddr>,
    /// rtcp-mux negotiated: RTCP shares the RTP port.
    pub mux: bool,
    /// Latched RTP source.
    pub rtp: Latch,
    /// Latched RTCP source.
    pub rtcp: Latch,
}

/// An address the relay can send to: not unspecified (hold) and not port 0.
fn usable(a: Option<SocketAddr>) -> Option<SocketAddr> {
    a.filter(|a| !a.ip().is_unspecified() && a.port() != 0)
}

impl Remote {
    /// Rule 5: takes what a new offer or answer says about this side.
    pub fn set_signaled(&mut self, rtp: Option<SocketAddr>, rtcp: Option<SocketAddr>, mux: bool) {
        let rtp = usable(rtp);
        let old_rtcp = self.expected_rtcp();
        let moved = rtp.is_some() && rtp != self.signaled_rtp;
        self.signaled_rtp = rtp;
        self.signaled_rtcp = usable(rtcp);
        self.mux = mux;
        let new_rtcp = self.expected_rtcp();
        let rtcp_moved = new_rtcp.is_some() && new_rtcp != old_rtcp;
        // A latch already on the new address (its packets came before the SDP
        // did) is kept.
        if moved && self.rtp.addr != rtp {
            self.rtp = Latch::default();
        }
        if (moved || rtcp_moved) && self.rtcp.addr != new_rtcp {
            self.rtcp = Latch::default();
        }
    }

    /// Where the SDP says RTCP goes.
    pub fn expected_rtcp(&self) -> Option<SocketAddr> {
        if self.mux {
            return self.signaled_rtp;
        }
        self.signaled_rtcp.or_else(|| {
            let a = self.signaled_rtp?;
            Some(SocketAddr::new(a.ip(), a.port().checked_add(1)?))
        })
    }

    /// Rules 2–4 for a packet from this side's far end.
    pub fn admit(&mut self, rtcp: bool, src: SocketAddr, now_ms: u64, relatch_ms: u64) -> bool {
        if rtcp {
            let expected = self.expected_rtcp();
            self.rtcp.admit(src, expected, now_ms, relatch_ms)
        } else {
            self.rtp.admit(src, self.signaled_rtp, now_ms, relatch_ms)
        }
    }

    /// Where RTP toward this side goes (rules 1 and 2).
    pub fn rtp_dest(&self) -> Option<SocketAddr> {
        self.rtp.addr.or(self.signaled_rtp)
    }

    /// Where RTCP toward this side goes; with rtcp-mux, a latched RTP source will
    /// do before any RTCP arrived.
    pub fn rtcp_dest(&self) -> Option<SocketAddr> {
        if self.mux {
            return self.rtcp.addr.or(self.rtp.addr).or(self.signaled_rtp);
        }
        self.rtcp.addr.or_else(|| self.expected_rtcp())
    }
}

/// RFC 5761 §4: with rtcp-mux, RTCP is told from RTP by the second byte (RTCP
/// packet types 192–223 fall where RTP would carry marker + payload type 64–95).
pub fn looks_like_rtcp(pkt: &[u8]) -> bool {
    matches!(pkt.get(1), Some(192..=223))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn first_packet_latches_and_others_are_dropped() {
        let mut l = Latch::default();
        assert!(l.admit(a("10.0.0.1:4000"), None, 0, 2000));
        assert_eq!(l.addr, Some(a("10.0.0.1:4000")));
        assert!(!l.admit(a("10.0.0.9:4000"), None, 100, 2000));
        assert!(!l.admit(a("10.0.0.1:4002"), None, 1999, 2000));
        assert!(l.admit(a("10.0.0.1:4000"), None, 1500, 2000));
        // 1999 ms after the last good packet: still refused.
        assert!(!l.admit(a("10.0.0.9:4000"), None, 3499, 2000));
        assert_eq!(l.addr, Some(a("10.0.0.1:4000")));
    }

    #[test]
    fn relatch_after_silence() {
        let mut l = Latch::default();
        assert!(l.admit(a("10.0.0.1:4000"), None, 0, 2000));
        assert!(l.admit(a("10.0.0.9:5000"), None, 2000, 2000));
        assert_eq!(l.addr, Some(a("10.0.0.9:5000")));
        // The old source is now the stranger.
        assert!(!l.admit(a("10.0.0.1:4000"), None, 2100, 2000));
    }

    #[test]
    fn signaled_address_always_wins() {
        let sig = Some(a("192.0.2.5:6000"));
        let mut l = Latch::default();
        assert!(l.admit(a("10.0.0.66:1"), sig, 0, 2000));
        assert!(l.admit(a("192.0.2.5:6000"), sig, 10, 2000));
        assert_eq!(l.addr, sig);
        assert!(!l.admit(a("10.0.0.66:1"), sig, 20, 2000));
    }

    #[test]
    fn destinations_before_and_after_latching() {
        let mut r = Remote::default();
        assert_eq!(r.rtp_dest(), None);
        r.set_signaled(Some(a("192.0.2.5:6000")), None, false);
        assert_eq!(r.rtp_dest(), Some(a("192.0.2.5:6000")));
        assert_eq!(r.rtcp_dest(), Some(a("192.0.2.5:6001")));
        r.set_signaled(Some(a("192.0.2.5:6000")), Some(a("192.0.2.6:7000")), false);
        assert_eq!(r.rtcp_dest(), Some(a("192.0.2.6:7000")));
        assert!(r.admit(false, a("203.0.113.1:30000"), 0, 2000));
        assert_eq!(r.rtp_dest(), Some(a("203.0.113.1:30000")));
        assert_eq!(r.rtcp_dest(), Some(a("192.0.2.6:7000")));
        assert!(r.admit(true, a("203.0.113.1:30001"), 0, 2000));
        assert_eq!(r.rtcp_dest(), Some(a("203.0.113.1:30001")));
    }

    #[test]
    fn rtcp_mux_destinations() {
        let mut r = Remote::default();
        r.set_signaled(Some(a("192.0.2.5:6000")), None, true);
        assert_eq!(r.rtcp_dest(), Some(a("192.0.2.5:6000")));
        assert!(r.admit(false, a("203.0.113.1:30000"), 0, 2000));
        assert_eq!(r.rtcp_dest(), Some(a("203.0.113.1:30000")));
        // RTCP from the signaled address re-latches like RTP would.
        assert!(r.admit(true, a("203.0.113.1:30000"), 0, 2000));
        assert!(r.admit(true, a("192.0.2.5:6000"), 1, 2000));
    }

    #[test]
    fn new_address_forgets_latches_hold_keeps_them() {
        let mut r = Remote::default();
        r.set_signaled(Some(a("192.0.2.5:6000")), None, false);
        assert!(r.admit(false, a("203.0.113.1:30000"), 0, 2000));
        // Same SDP again (session refresh): latch kept.
        r.set_signaled(Some(a("192.0.2.5:6000")), None, false);
        assert_eq!(r.rtp_dest(), Some(a("203.0.113.1:30000")));
        // Hold: no address; latch kept, nothing signaled.
        r.set_signaled(Some(a("0.0.0.0:6000")), None, false);
        assert_eq!(r.signaled_rtp, None);
        assert_eq!(r.rtp_dest(), Some(a("203.0.113.1:30000")));
        r.set_signaled(None, None, false);
        assert_eq!(r.rtp_dest(), Some(a("203.0.113.1:30000")));
        // re-INVITE moving the port: media follows the SDP at once.
        r.set_signaled(Some(a("192.0.2.5:6010")), None, false);
        assert_eq!(r.rtp_dest(), Some(a("192.0.2.5:6010")));
        assert_eq!(r.rtp.addr, None);
        // Port 0 (stream rejected) signals nothing.
        r.set_signaled(Some(a("192.0.2.5:0")), None, false);
        assert_eq!(r.signaled_rtp, None);
    }

    #[test]
    fn new_rtcp_address_forgets_the_rtcp_latch() {
        let mut r = Remote::default();
        r.set_signaled(Some(a("192.0.2.5:6000")), None, true);
        assert!(r.admit(true, a("203.0.113.1:30000"), 0, 2000));
        assert!(r.admit(false, a("203.0.113.1:30000"), 0, 2000));
        // mux dropped, explicit a=rtcp: RTCP follows the SDP, RTP keeps its latch.
        r.set_signaled(Some(a("192.0.2.5:6000")), Some(a("192.0.2.5:7000")), false);
        assert_eq!(r.rtcp_dest(), Some(a("192.0.2.5:7000")));
        assert_eq!(r.rtp_dest(), Some(a("203.0.113.1:30000")));
    }

    #[test]
    fn packets_before_the_sdp_keep_their_latch() {
        let mut r = Remote::default();
        assert!(r.admit(false, a("192.0.2.5:6000"), 0, 2000));
        r.set_signaled(Some(a("192.0.2.5:6000")), None, false);
        assert_eq!(r.rtp.addr, Some(a("192.0.2.5:6000")));
    }

    #[test]
    fn rtcp_demux() {
        assert!(looks_like_rtcp(&[0x80, 200, 0, 6]));
        assert!(looks_like_rtcp(&[0x81, 201]));
        assert!(!looks_like_rtcp(&[0x80, 0, 0, 1]));
        assert!(!looks_like_rtcp(&[0x80, 0x80 | 8]));
        assert!(!looks_like_rtcp(&[0x80]));
        assert!(!looks_like_rtcp(&[]));
    }
}
