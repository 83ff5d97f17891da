//! sipveil: a SIP Session Border Controller built as a back-to-back user agent.
//!
//! The crate is split by concern, following DESIGN.md: `sip` is the message layer
//! everything else stands on; `transaction` is the RFC 3261 §17 sans-IO state
//! machine above it; `config` is the operator contract's config file.

pub mod config;
pub mod sip;
pub mod transaction;
