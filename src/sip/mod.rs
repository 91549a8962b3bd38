//! SIP: sans-IO protocol logic on rsipstack's message types.
pub mod digest;
pub mod headers;
pub mod message;
pub mod overload;
pub mod peer;
pub mod platform;
pub mod ports;
pub mod presence;
pub mod timer;
pub mod transaction;
pub use peer::{Peer, Proto};
pub mod auth;
pub mod build;
pub mod shard;
