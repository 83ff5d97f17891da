//! sipveil: a SIP Session Border Controller built as a back-to-back user agent.
//!
//! The crate is split by concern, following DESIGN.md: `sip` is the message layer
//! everything else stands on; `config` is the operator contract's config file.

pub mod config;
pub mod sip;
