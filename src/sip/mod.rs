//! SIP: sans-IO protocol logic on rsipstack's message types.
pub mod digest;
pub mod message;
pub mod headers;
pub mod timer;
pub mod transaction;
pub mod peer;
pub use peer::{Peer, Proto};
pub mod build;
pub mod shard;
