//! Boundary policy: who a call says it is (identity) and, from policy files, which
//! headers cross, how they are rewritten, and how sloppy signaling is repaired.

pub mod identity;
