//! The personal feature server: each user's profile and the pure decision that turns
//! a call into a plan. The call actor executes the plan against real legs.

pub mod decision;
pub mod profile;
pub mod schedule;

pub use decision::{decide, CallContext, Caller, ContactMatch, Decision, Plan, RingStep};
pub use profile::{Handling, Presence, Profile, Target};
