//! The ports of the SIP layer: what `src/sip` needs from the rest of tsps, as traits.
//! The shards see the actors only through [`Actors`] (implemented once, in
//! `platform.rs`), so the shape of the actor registry can change without touching the
//! SIP core.

use actix::prelude::*;
use tsps_actors::call::CallSetup;
use tsps_actors::ports::LegEvent;
use tsps_actors::presence::PresenceActor;
use tsps_actors::user::UserActor;
use tsps_actors::{TenantId, UserId};

/// The actors the SIP layer talks to: users (registrations, bindings, watched state),
/// each tenant's presence actor, and new calls.
pub trait Actors: Send + Sync {
    /// The live actor of a user (None: not provisioned, or gone).
    fn user(&self, id: UserId) -> Option<Addr<UserActor>>;
    /// The presence actor of a tenant.
    fn presence(&self, tenant: TenantId) -> Addr<PresenceActor>;
    /// Starts a call actor on the current Arbiter (the caller's shard thread, so that
    /// its leg commands come back without crossing threads); returns where its leg
    /// events go.
    fn start_call(&self, setup: CallSetup) -> Recipient<LegEvent>;
}
