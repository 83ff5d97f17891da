//! The B2BUA core: every call is two independent legs, and every message on one leg
//! becomes a new message on the other built from that leg's own state. Sans-IO:
//! the engine takes parsed messages and the time, and returns outputs (bytes to
//! send, records to persist) for the shell to carry out.

pub mod crossing;
mod engine;
pub mod iface;
pub mod leg;
mod record;

pub(crate) use engine::wire_response_peer as response_peer;
pub use engine::{
    AuthEvent, Engine, EngineConfig, NextHop, Output, RegistrarConfig, Route, Target,
};
pub use iface::{IfaceInfo, IfaceMedia};
pub use leg::{Leg, Side};
pub use record::{CallMedia, CallRecord, Remote, StreamRecord};

#[cfg(test)]
mod tests;
