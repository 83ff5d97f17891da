//! The registrar (RFC 3261 §10): REGISTER handling and the location service that
//! routing to registered users reads.

pub mod location;
