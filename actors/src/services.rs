//! The services every actor shares: the ports toward the outside (directory source,
//! persistence, clock, feature source, conference media), the event bus and the
//! platform's settings. Plain handles to ports, no actor: what an actor needs from the
//! world, as opposed to whom it may talk to ([`crate::registry`]).

use crate::events::EventBus;
use crate::ids::TenantId;
use crate::ports::{Clock, FeatureSource, Media, Persistence};
use crate::tenant::DirectorySource;
use std::sync::Arc;
use std::time::Duration;

pub struct PlatformConfig {
    /// How long callee legs may ring before the call fails.
    pub ring_timeout: Duration,
    /// Personal mode (`tsps serve` with `[personal]`): the one tenant whose trunk is
    /// the upstream tenant; see [`crate::tenant::TenantActor::with_upstream`]. None
    /// otherwise.
    pub upstream_tenant: Option<TenantId>,
    /// This node's conference bridges (calls that become conferences mix here).
    pub media: Arc<dyn Media>,
}

pub struct Services {
    pub directory: Arc<dyn DirectorySource>,
    pub persistence: Arc<dyn Persistence>,
    pub clock: Arc<dyn Clock>,
    pub features: Arc<dyn FeatureSource>,
    pub bus: EventBus,
    pub config: PlatformConfig,
}
