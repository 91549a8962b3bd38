//! tsps-actors: the call logic of tsps.
//!
//! Tenant, user and call actors, the routing decision and the in-process event bus.
//! This crate speaks of tenants, users, calls and legs. It knows no SIP bytes, no SQL
//! and no HTTP: the SIP layer (`tsps::sip`) turns dialogs into [`ports::LegEvent`]s and
//! [`ports::LegCommand`]s back into SIP, and the store loads and saves the model types.
//!
//! Architecture invariant: no dependency on sqlx, axum, rsipstack or any I/O crate.

pub mod call;
pub mod directory;
pub mod events;
pub mod feature;
pub mod ids;
pub mod lines;
pub mod model;
pub mod platform;
pub mod ports;
pub mod presence;
pub mod registry;
pub mod routing;
pub mod secret;
pub mod services;
pub mod source;
pub mod tenant;
#[cfg(test)]
pub mod testkit;
pub mod user;
pub mod wire;

pub use directory::Directory;
pub use ids::*;
