//! The one place where `src/sip` meets the actor registry ([`Platform`]): the
//! [`Actors`] port on it. When the registry changes shape, only this file follows.

use super::ports::Actors;
use actix::prelude::*;
use std::sync::Arc;
use tsps_actors::call::{CallActor, CallSetup};
use tsps_actors::platform::Platform;
use tsps_actors::ports::LegEvent;
use tsps_actors::presence::PresenceActor;
use tsps_actors::user::UserActor;
use tsps_actors::{TenantId, UserId};

/// The [`Actors`] port on the platform's registry.
pub struct PlatformActors(Arc<Platform>);

impl PlatformActors {
    pub fn new(platform: Arc<Platform>) -> Self {
        Self(platform)
    }
}

impl Actors for PlatformActors {
    fn user(&self, id: UserId) -> Option<Addr<UserActor>> {
        self.0.registry.user(id)
    }

    fn presence(&self, tenant: TenantId) -> Addr<PresenceActor> {
        self.0.registry.presence(tenant)
    }

    fn start_call(&self, setup: CallSetup) -> Recipient<LegEvent> {
        CallActor::new(setup, self.0.clone()).start().recipient()
    }
}
