//! tsps-actors: the call logic of tsps.
//!
//! Tenant, user and call actors, the routing decision and the in-process event bus.
//! This crate speaks of tenants, users, calls and legs. It knows no SIP bytes, no SQL
//! and no HTTP: the SIP layer (`tsps::sip`) turns dialogs into leg events and leg
//! commands back into SIP, and the store loads and saves the model types.

pub mod ids;
pub mod directory;
pub mod model;

pub use directory::Directory;
pub use ids::*;
