//! Several tsps nodes sharing one Redis: the only place that knows Redis.
//!
//! With `redis.url` set, each node bridges its event bus and its registrations to the
//! others (docs/cluster.md):
//! - **events**: call events and each user's hook state on this node go to the
//!   `<prefix>events` channel; other nodes' call events are published on the bus here
//!   (the push hub and SIP presence see them like local ones), their hook states go to
//!   the user actors ([`tsps_actors::user::RemoteHook`]), which show the combined state.
//! - **registrations**: each binding change this node takes is written to the user's
//!   hash (`<prefix>bindings:<tenant>:<user>`) and announced on `<prefix>bindings`;
//!   other nodes merge it into their user actor ([`tsps_actors::user::RemoteBindings`]),
//!   so a call entering any node rings every registered phone. The database stays the
//!   durable copy (the persistence port writes every binding there too).
//! - **nodes**: heartbeats (a silent node's calls and hook states are dropped), hello
//!   and bye, and store changes (feature data, provisioning) so that every node reloads.
//!
//! Redis is not needed to serve calls: while it is down each node serves what it
//! knows, counts what it could not send (`tsps_redis_dropped_total`), shows
//! `tsps_redis_up 0`, and reconnects with backoff; then it publishes its state again
//! and asks the others for theirs ([`local`], [`remote`]).
//!
//! Without `redis.url` none of this runs and the bus stays in process.

pub mod link;
pub mod local;
pub mod remote;
pub mod wire;

use crate::config::RedisConfig;
use crate::notify::ChangeNotifier;
use local::Local;
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tsps_actors::events::{Event, EventBus};
use tsps_actors::model::{Binding, CallRecord};
use tsps_actors::ports::Persistence;
use tsps_actors::{TenantId, UserId};
pub use wire::{Names, NodeId};

/// How often a node says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// A node not heard from for this long is given up on (five heartbeats).
pub const SILENT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("invalid redis.url: {0}")]
    Url(#[source] redis::RedisError),
}

/// Counters of the bridge, exported as Prometheus metrics.
#[derive(Default)]
pub struct ClusterStats {
    /// 1 while the node is connected to Redis.
    pub up: AtomicI64,
    /// Messages not sent to the other nodes (Redis down, or the outbox full).
    pub dropped: AtomicU64,
}

/// The bridge of one node, made before the platform (its persistence port and change
/// notifier are wrapped) and started once everything exists.
pub struct Cluster {
    client: redis::Client,
    names: Names,
    node: NodeId,
    /// Seconds a user's bindings hash lives after its last write (every binding
    /// expires before: the longest registration interval, plus a margin).
    bindings_ttl: u64,
    local: Arc<Local>,
    stats: Arc<ClusterStats>,
    outbound: broadcast::Receiver<Arc<Event>>,
}

impl Cluster {
    /// Reads the settings; connects only when started. `max_expires` is the longest
    /// registration interval granted (`sip.max_expires`).
    pub fn new(
        config: &RedisConfig,
        url: &str,
        max_expires: u32,
        bus: &EventBus,
    ) -> Result<Cluster, ClusterError> {
        let client = redis::Client::open(url).map_err(ClusterError::Url)?;
        let stats = Arc::new(ClusterStats::default());
        Ok(Cluster {
            client,
            names: Names::new(&config.prefix),
            node: config
                .node_id
                .clone()
                .map(NodeId)
                .unwrap_or_else(NodeId::random),
            bindings_ttl: u64::from(max_expires) + 60,
            local: Arc::new(Local::new(stats.clone())),
            stats,
            // Subscribed now, so that nothing published during start-up is missed.
            outbound: bus.subscribe_outbound(),
        })
    }

    pub fn node(&self) -> &NodeId {
        &self.node
    }

    pub fn stats(&self) -> Arc<ClusterStats> {
        self.stats.clone()
    }

    /// The persistence port that also tells the other nodes of binding changes.
    pub fn persistence(&self, inner: Arc<dyn Persistence>) -> Arc<dyn Persistence> {
        Arc::new(ClusterPersistence {
            inner,
            local: self.local.clone(),
        })
    }

    /// The change notifier that also tells the other nodes to reload.
    pub fn notifier(&self, inner: Arc<dyn ChangeNotifier>) -> Arc<dyn ChangeNotifier> {
        Arc::new(ClusterNotifier {
            inner,
            local: self.local.clone(),
        })
    }

    /// Starts the bridge's tasks; they end with `cancel`.
    pub fn start(
        self,
        deps: link::Deps,
        cancel: tokio_util::sync::CancellationToken,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        tracing::info!(node = %self.node, "cluster: this node bridges to Redis");
        let collector = {
            let (mut rx, local, stats) = (self.outbound, self.local.clone(), self.stats.clone());
            let cancel = cancel.clone();
            tokio::spawn(async move {
                loop {
                    let ev = tokio::select! {
                        _ = cancel.cancelled() => return,
                        ev = rx.recv() => ev,
                    };
                    match ev {
                        Ok(ev) => local.event(&ev),
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(missed = n, "cluster bridge fell behind the event bus");
                            stats
                                .dropped
                                .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            })
        };
        let link = link::Link::new(link::Setup {
            client: self.client,
            names: self.names,
            node: self.node,
            bindings_ttl: self.bindings_ttl,
            local: self.local,
            stats: self.stats,
            deps,
        });
        vec![collector, tokio::spawn(link.run(cancel))]
    }
}

/// The actors' persistence port, plus: each binding change goes to the other nodes.
struct ClusterPersistence {
    inner: Arc<dyn Persistence>,
    local: Arc<Local>,
}

impl Persistence for ClusterPersistence {
    fn binding_saved(&self, binding: &Binding) {
        self.inner.binding_saved(binding);
        self.local.binding_saved(binding);
    }
    fn binding_removed(&self, tenant: TenantId, user: UserId, binding: &Binding) {
        self.inner.binding_removed(tenant, user, binding);
        self.local.binding_removed(binding);
    }
    fn call_ended(&self, record: CallRecord) {
        self.inner.call_ended(record);
    }
}

/// The API's change notifier, plus: the other nodes reload too.
struct ClusterNotifier {
    inner: Arc<dyn ChangeNotifier>,
    local: Arc<Local>,
}

impl ChangeNotifier for ClusterNotifier {
    fn user_changed(&self, tenant: TenantId, user: UserId) {
        self.inner.user_changed(tenant, user);
        self.local.change(wire::Msg::UserChanged { tenant, user });
    }
    fn tenant_changed(&self, tenant: TenantId) {
        self.inner.tenant_changed(tenant);
        self.local.change(wire::Msg::TenantChanged { tenant });
    }
}
