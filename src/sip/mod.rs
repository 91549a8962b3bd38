//! SIP: sans-IO protocol logic on rsipstack's message types.
pub mod digest;
pub mod message;
