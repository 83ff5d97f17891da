//! SDP (RFC 4566) for a topology-hiding B2BUA: a line-preserving parser, a
//! rewriter that changes only what names the other side (o=, c=, m= ports,
//! a=rtcp, ICE), per-leg o= versioning, codec policy for offers, and the view the
//! media relay needs.
//!
//! Why our own code: sdp-rs drops every m= section after a line it does not expect
//! and re-emits `a=rtpmap:111 opus/48000/2` as `opus/48000 2` (see DESIGN.md). An
//! SBC passes on what it does not understand, so here the body is kept as bytes
//! and every line sipveil does not have to change is copied as received, in order,
//! with its own line ending. Sans-IO: no sockets, no clock, no globals.
//!
//! The flow for an offer received on one leg and sent on the other:
//!
//! 1. [`Sdp::parse`] (400 with [`SdpError::warning`] on error);
//! 2. [`Sdp::apply_codec_policy`] for the egress interface (488 on
//!    [`SdpError::NoAcceptableCodec`]);
//! 3. [`Sdp::media_targets`] tells the relay where the far side listens; the relay
//!    allocates ports;
//! 4. [`Sdp::rewrite_for_leg`] with a [`RewritePlan`] naming sipveil's address and
//!    ports, and the egress leg's [`OriginState`].

mod codec;
mod error;
mod fields;
mod origin;
mod parse;
mod parser;
mod relay;
mod rewrite;
mod types;

#[cfg(test)]
mod tests;

pub use codec::{static_payload, CodecPolicy};
pub use error::{warning, SdpError};
pub use origin::OriginState;
pub use parse::{Limits, Sdp};
pub use relay::MediaTarget;
pub use rewrite::{HoldMode, MediaPlan, RewritePlan};
pub use types::{
    Candidate, Connection, Direction, Fmtp, Ice, Media, MediaKind, Origin, Rtcp, RtpMap,
};
