//! Media anchoring: the built-in RTP/RTCP relay and the rtpengine client.
//!
//! Why sipveil relays media itself: topology hiding is not complete while the SDP
//! names the inside addresses, so by default every stream of every call is
//! anchored on a port pair per side ([`MediaRelay`]). Forwarding runs on its own
//! threads (see `worker`) so that media never waits behind signaling; the core
//! talks to it through a cheap handle whose calls never block on forwarding.
//! Operators who want kernel-speed forwarding point `[media] mode = "rtpengine"`
//! at an rtpengine instance instead ([`rtpengine`]).
//!
//! Latching (where media goes, and whom it is accepted from) is documented in
//! [`latch`].
//!
//! How the core drives the relay:
//! - offer from side A: `allocate(call, i, a_ip, b_ip)` per `m=` line, then
//!   `set_remote(call, i, Side::A, rtp, rtcp, mux)` from that `m=` line's `c=`,
//!   port, `a=rtcp` and `a=rtcp-mux`; the SDP toward B names `b_ip` and `b_rtp`;
//! - answer from side B: `set_remote(.., Side::B, ..)`; the SDP toward A names
//!   `a_ip` and `a_rtp`;
//! - re-INVITE/UPDATE: `allocate` again (an existing stream keeps its ports), and
//!   `set_remote` with the new addresses (hold: `None` or 0.0.0.0);
//! - call end: `release(call)`, whose counters go into the call-end log;
//! - every few seconds: `silent_calls(now, media_timeout)`, for answered calls,
//!   ends those calls with a BYE on both legs.

pub mod config;
pub mod latch;
pub mod ports;
mod relay;
pub mod rtpengine;
mod stats;
mod worker;

#[cfg(test)]
mod tests;

pub use config::{MediaConfig, MediaMode, RawMedia};
pub use relay::{MediaError, MediaRelay, StreamPorts};
pub use stats::{Flow, StreamStats};

/// One side of a relayed stream. Side A is the caller's leg (the A leg of
/// DESIGN.md), side B the callee's; each has its own local media address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The caller's side.
    A = 0,
    /// The callee's side.
    B = 1,
}
