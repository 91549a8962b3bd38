//! A call: one actor per call, a sans-IO core inside it.
//!
//! A call has two sides, caller and callee, each with at most one current leg. While
//! one side is being dialled (rung by the plan of a feature server), the other side's
//! leg is the call's *anchor*: the incoming INVITE of an ordinary call, the user's
//! device that answered a click-to-dial, or the party that stays after a transfer.
//! The call never sees SIP: it receives [`LegEvent`](crate::ports::LegEvent)s and
//! issues [`LegCommand`](crate::ports::LegCommand)s. When it ends it writes the call
//! detail record and publishes `Ended`. Commands from the API (per-call override,
//! third-party call control) are messages ([`api`]).
//!
//! The parts:
//! - [`call_core::CallCore`]: the state machine, `handle(now, input) -> outputs`
//!   ([`io`]: inputs and outputs), no actor, task or clock; diagram in its docs.
//!   Built from `leg.rs` (the legs), `legs.rs` (their events and the re-INVITE/491
//!   relay), `ringing.rs` (admission, offers, ringing, redirects, override),
//!   `control.rs` (hold, release, transfers), `members.rs` and `conference.rs` (the
//!   bridge's members) and `record.rs` (the end of the call and its record).
//! - [`program`]: the seam between leg handling and what decides where the call goes.
//!   The core asks a [`program::CallProgram`] what next (decided, forwarded, no
//!   answer, busy) and gets an action (ring, forward, reject, give up); today's
//!   implementation runs the feature server's plan. A compiled call-flow map replaces
//!   it without touching leg handling.
//! - [`actor::CallActor`]: the actix shell. Feeds messages, timer firings and the
//!   tenant's and users' answers to the core, and carries out its outputs.
//! - [`api`]: the messages others send a call and the registry's [`CallHandle`].

pub mod actor;
pub mod api;
pub mod call_core;
mod conference;
mod control;
pub mod io;
mod leg;
mod legs;
mod members;
pub mod program;
mod record;
mod ringing;
mod sdp;
pub mod setup;

pub use actor::CallActor;
pub use api::{
    CallHandle, CallMessage, Control, ControlAction, ControlError, HandOver, HandedLeg, Override,
    OverrideAction, OverrideError,
};
pub use call_core::{CallCore, Phase};
pub use record::final_status;
pub use sdp::sdp_is_hold;
pub use setup::{CallSetup, CallStart, DeviceReach};

#[cfg(test)]
mod core_tests;
#[cfg(test)]
mod tests;
