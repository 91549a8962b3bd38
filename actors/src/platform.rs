//! The platform: the [`Services`] (ports, bus, settings) and the [`Registry`] of live
//! actors, built once at start and shared by every actor that needs either. The two
//! halves stay apart: services are what an actor uses, the registry whom it may talk
//! to, and each is reached by its own field (`platform.services.clock`,
//! `platform.registry.user(id)`).

use crate::directory::Directory;
use crate::events::EventBus;
use crate::model::Binding;
use crate::ports::{Clock, FeatureSource, Persistence};
use crate::tenant::DirectorySource;
use actix::prelude::*;
use std::sync::Arc;

pub use crate::registry::{LiveCallInfo, Registry};
pub use crate::services::{PlatformConfig, Services};

pub struct Platform {
    pub services: Services,
    pub registry: Registry,
}

impl Platform {
    pub fn new(
        arbiters: Vec<ArbiterHandle>,
        directory: Arc<dyn DirectorySource>,
        persistence: Arc<dyn Persistence>,
        clock: Arc<dyn Clock>,
        features: Arc<dyn FeatureSource>,
        bus: EventBus,
        config: PlatformConfig,
    ) -> Arc<Self> {
        Arc::new(Self {
            services: Services {
                directory,
                persistence,
                clock,
                features,
                bus,
                config,
            },
            registry: Registry::new(arbiters),
        })
    }

    /// Brings the actors in line with `dir` (see [`Registry::sync`]).
    pub fn sync(&self, dir: &Directory, restored: Vec<Binding>) {
        self.registry.sync(&self.services, dir, restored);
    }
}
