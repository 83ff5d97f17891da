//! sipveil: a SIP Session Border Controller built as a back-to-back user agent.
//!
//! The crate is split by concern, following DESIGN.md: `sip` is the message layer
//! everything else stands on; `transaction` and `dialog` are the sans-IO core;
//! `transport`, `store` and `runtime` are the shell that owns sockets, disk and time;
//! `media` relays RTP/RTCP on threads of its own, behind a handle the core calls.

pub mod admin;
pub mod admission;
pub mod config;
pub mod dialog;
pub mod media;
pub mod policy;
pub mod registrar;
pub mod runtime;
pub mod sdp;
pub mod sip;
pub mod store;
pub mod transaction;
pub mod transport;
