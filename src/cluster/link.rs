//! The link to Redis: one task that connects (with backoff), subscribes to the
//! cluster's channels, sends what [`Local`] queued and carries out what [`Remote`]
//! makes of the other nodes' messages.
//!
//! One connection epoch is one subscriber connection plus one command connection.
//! It ends when either fails, or when the node stops hearing its own heartbeats (a
//! half-open connection). Between epochs the node serves alone: nothing is queued,
//! silent nodes are still swept, and the next epoch starts with the node's state
//! published again (hello, sync, its bindings) and the bindings of every user read
//! back from Redis.

use super::local::Local;
use super::remote::{Effect, Remote};
use super::wire::{Msg, Names, NodeId, StoredBinding, Wire};
use super::{ClusterStats, HEARTBEAT, SILENT};
use crate::notify::ChangeNotifier;
use crate::store::SharedDirectory;
use futures::StreamExt;
use redis::aio::{MultiplexedConnection, PubSubStream};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use tsps_actors::events::EventBus;
use tsps_actors::platform::Platform;
use tsps_actors::user::{BindingChange, RemoteBindings, RemoteHook};
use tsps_actors::Directory;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How often a provisioning change made here is looked for (to announce it).
const DIRECTORY_POLL: Duration = Duration::from_millis(200);
/// Users whose bindings are read in one round trip.
const LOAD_BATCH: usize = 256;

/// What the bridge acts on, on this node.
pub struct Deps {
    pub platform: Arc<Platform>,
    pub directory: SharedDirectory,
    pub bus: EventBus,
    /// This node's own notifier (not the cluster's: a change from elsewhere is not
    /// announced again).
    pub notifier: Arc<dyn ChangeNotifier>,
    /// Called after each connection: events from other nodes may have been missed
    /// (the push hub resyncs its sessions).
    pub on_gap: Box<dyn Fn() + Send + Sync>,
}

pub(super) struct Setup {
    pub client: redis::Client,
    pub names: Names,
    pub node: NodeId,
    pub bindings_ttl: u64,
    pub local: Arc<Local>,
    pub stats: Arc<ClusterStats>,
    pub deps: Deps,
}

#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the subscription closed")]
    Closed,
    #[error("this node's own heartbeats stopped coming back")]
    NoEcho,
}

pub struct Link {
    s: Setup,
    remote: Remote,
    /// The directory snapshot last seen, to notice provisioning changes made here.
    directory_seen: Arc<Directory>,
}

impl Link {
    pub(super) fn new(s: Setup) -> Self {
        let remote = Remote::new(s.node.clone(), SILENT);
        let directory_seen = s.deps.directory.get();
        Self {
            s,
            remote,
            directory_seen,
        }
    }

    pub async fn run(mut self, cancel: CancellationToken) {
        let mut backoff = BACKOFF_MIN;
        let mut failures: u32 = 0;
        let mut epochs: u64 = 0;
        let mut sweep = tokio::time::interval(HEARTBEAT);
        loop {
            let connected = tokio::select! {
                _ = cancel.cancelled() => return,
                c = tokio::time::timeout(CONNECT_TIMEOUT * 2, self.connect()) => c,
            };
            match connected {
                Ok(Ok((stream, conn))) => {
                    epochs += 1;
                    let began = Instant::now();
                    let end = self.session(stream, conn, epochs > 1, &cancel).await;
                    self.s.stats.up.store(0, Relaxed);
                    self.s.local.disconnected();
                    // A connection that failed at once (Redis refuses commands) backs
                    // off like a failed connect, and is not logged every time.
                    if began.elapsed() > SILENT {
                        backoff = BACKOFF_MIN;
                        failures = 0;
                    }
                    failures += 1;
                    match end {
                        Ok(()) => return,
                        Err(e) if failures == 1 || failures % 60 == 0 => warn!(
                            error = %e,
                            "redis connection lost: serving this node's calls alone until it is back"
                        ),
                        Err(_) => {}
                    }
                }
                Ok(Err(e)) => {
                    failures += 1;
                    if failures == 1 || failures % 60 == 0 {
                        warn!(error = %e, attempt = failures, "cannot connect to redis; retrying");
                    }
                }
                Err(_) => {
                    failures += 1;
                    if failures == 1 || failures % 60 == 0 {
                        warn!(
                            attempt = failures,
                            "connecting to redis timed out; retrying"
                        );
                    }
                }
            }
            let until = Instant::now() + backoff;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep_until(until) => break,
                    _ = sweep.tick() => {
                        let fx = self.remote.sweep(Instant::now());
                        self.apply(fx).await;
                    }
                }
            }
            // Some jitter, so that the nodes of a cluster do not all come back at once.
            let jitter = Duration::from_millis(rand::random::<u64>() % 100);
            backoff = (backoff * 2).min(BACKOFF_MAX) + jitter;
        }
    }

    async fn connect(&self) -> Result<(PubSubStream, MultiplexedConnection), LinkError> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let conn = self
            .s
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let mut pubsub = self.s.client.get_async_pubsub().await?;
        let n = &self.s.names;
        pubsub
            .subscribe(&[n.events(), n.bindings(), n.nodes()])
            .await?;
        Ok((pubsub.into_on_message(), conn))
    }

    /// One connection epoch; Ok when the node stops.
    async fn session(
        &mut self,
        mut stream: PubSubStream,
        mut conn: MultiplexedConnection,
        again: bool,
        cancel: &CancellationToken,
    ) -> Result<(), LinkError> {
        // Hello, this node's state and its bindings first; then everybody's bindings.
        self.s.local.connected(chrono::Utc::now());
        self.flush(&mut conn).await?;
        let loaded = self.load_bindings(&mut conn).await?;
        if again {
            // Provisioning changed elsewhere while this node was cut off is read now.
            if let Err(e) = self.s.deps.directory.reload().await {
                warn!(error = %e, "cannot reload the directory after a redis outage");
            }
            self.directory_seen = self.s.deps.directory.get();
        }
        self.s.stats.up.store(1, Relaxed);
        info!(node = %self.s.node, bindings = loaded, "connected to redis");
        (self.s.deps.on_gap)();

        let mut heard_self = Instant::now();
        let mut beat = tokio::time::interval(HEARTBEAT);
        let mut dir_poll = tokio::time::interval(DIRECTORY_POLL);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => {
                    let bye = self.publish(&mut conn, Msg::Bye);
                    let _ = tokio::time::timeout(Duration::from_millis(500), bye).await;
                    return Ok(());
                }
                m = stream.next() => {
                    let Some(m) = m else { return Err(LinkError::Closed) };
                    let wire = match Wire::decode(m.get_payload_bytes()) {
                        Ok(w) => w,
                        Err(e) => {
                            warn!(error = %e, channel = m.get_channel_name(), "undecodable cluster message");
                            continue;
                        }
                    };
                    if wire.node == self.s.node {
                        heard_self = Instant::now();
                        continue;
                    }
                    let fx = self.remote.receive(Instant::now(), wire);
                    self.apply(fx).await;
                }
                _ = self.s.local.ready.notified() => {}
                _ = beat.tick() => {
                    if heard_self.elapsed() > SILENT {
                        return Err(LinkError::NoEcho);
                    }
                    self.publish(&mut conn, Msg::Heartbeat).await?;
                    let fx = self.remote.sweep(Instant::now());
                    self.apply(fx).await;
                }
                _ = dir_poll.tick() => self.watch_directory(),
            }
            // Whatever woke the loop, what is queued goes out now.
            self.flush(&mut conn).await?;
        }
    }

    fn channel_of(&self, msg: &Msg) -> String {
        match msg {
            Msg::Event { .. } | Msg::Sync { .. } => self.s.names.events(),
            Msg::Bindings { .. } => self.s.names.bindings(),
            _ => self.s.names.nodes(),
        }
    }

    fn wire(&self, msg: Msg) -> String {
        Wire {
            node: self.s.node.clone(),
            msg,
        }
        .encode()
    }

    async fn publish(&self, conn: &mut MultiplexedConnection, msg: Msg) -> Result<(), LinkError> {
        let channel = self.channel_of(&msg);
        let mut pipe = redis::pipe();
        pipe.publish(channel, self.wire(msg)).ignore();
        pipe.query_async::<()>(conn).await?;
        Ok(())
    }

    /// Sends everything queued, in order, in one round trip. A binding change is
    /// written to its user's hash before it is announced.
    async fn flush(&self, conn: &mut MultiplexedConnection) -> Result<(), LinkError> {
        let msgs = self.s.local.take();
        if msgs.is_empty() {
            return Ok(());
        }
        let n = msgs.len() as u64;
        let mut pipe = redis::pipe();
        for msg in msgs {
            if let Msg::Bindings {
                tenant,
                user,
                changes,
            } = &msg
            {
                let key = self.s.names.bindings_key(*tenant, *user);
                for c in changes {
                    match c {
                        BindingChange::Saved(b) => {
                            let stored = StoredBinding {
                                node: self.s.node.clone(),
                                binding: b.clone(),
                            };
                            let value = serde_json::to_string(&stored).expect("serializable");
                            pipe.hset(&key, Names::binding_field(b), value).ignore();
                        }
                        BindingChange::Removed(b) => {
                            pipe.hdel(&key, Names::binding_field(b)).ignore();
                        }
                    }
                }
                pipe.expire(&key, self.s.bindings_ttl as i64).ignore();
            }
            let channel = self.channel_of(&msg);
            pipe.publish(channel, self.wire(msg)).ignore();
        }
        match tokio::time::timeout(RESPONSE_TIMEOUT, pipe.query_async::<()>(conn)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.s.stats.dropped.fetch_add(n, Relaxed);
                Err(e.into())
            }
            Err(_) => {
                self.s.stats.dropped.fetch_add(n, Relaxed);
                Err(LinkError::Timeout(RESPONSE_TIMEOUT))
            }
        }
    }

    /// Reads every user's bindings hash and merges what other nodes took into the
    /// user actors; drops expired entries, and this node's entries it no longer
    /// holds (removed while Redis was down). Returns how many bindings were merged.
    async fn load_bindings(&self, conn: &mut MultiplexedConnection) -> Result<usize, LinkError> {
        let dir = self.s.deps.directory.get();
        let users: Vec<_> = dir.users().map(|u| (u.tenant_id, u.id)).collect();
        let now = chrono::Utc::now();
        let mut merged = 0;
        for chunk in users.chunks(LOAD_BATCH) {
            let mut read = redis::pipe();
            for (t, u) in chunk {
                read.hgetall(self.s.names.bindings_key(*t, *u));
            }
            let maps: Vec<std::collections::HashMap<String, String>> =
                read.query_async(conn).await?;
            let mut stale = redis::pipe();
            let mut any_stale = false;
            for ((tenant, user), map) in chunk.iter().zip(maps) {
                let key = self.s.names.bindings_key(*tenant, *user);
                let mut changes = Vec::new();
                for (field, value) in map {
                    let keep = match serde_json::from_str::<StoredBinding>(&value) {
                        Ok(s) if s.binding.expires_at <= now => false,
                        Ok(s) if s.node == self.s.node => self.s.local.owns(&s.binding),
                        Ok(s) if s.binding.user_id == *user && s.binding.tenant_id == *tenant => {
                            changes.push(BindingChange::Saved(s.binding));
                            true
                        }
                        Ok(_) => false,
                        Err(e) => {
                            warn!(error = %e, %user, "undecodable binding in redis: dropped");
                            false
                        }
                    };
                    if !keep {
                        stale.hdel(&key, field).ignore();
                        any_stale = true;
                    }
                }
                if !changes.is_empty() {
                    merged += changes.len();
                    if let Some(actor) = self.s.deps.platform.registry.user(*user) {
                        actor.do_send(RemoteBindings { changes });
                    }
                }
            }
            if any_stale {
                stale.query_async::<()>(conn).await?;
            }
        }
        Ok(merged)
    }

    /// Announces a provisioning change made here (the directory snapshot was swapped).
    fn watch_directory(&mut self) {
        let now = self.s.deps.directory.get();
        if !Arc::ptr_eq(&now, &self.directory_seen) {
            self.directory_seen = now;
            self.s.local.change(Msg::DirectoryChanged);
        }
    }

    async fn apply(&mut self, effects: Vec<Effect>) {
        let deps = &self.s.deps;
        for fx in effects {
            match fx {
                Effect::Publish(ev) => deps.bus.publish_here(ev),
                Effect::Hook { user, hook } => {
                    if let Some(actor) = deps.platform.registry.user(user) {
                        actor.do_send(RemoteHook { hook });
                    }
                }
                Effect::Bindings { user, changes } => {
                    // Tenants are walls: only bindings of this user, in its tenant.
                    let tenant = deps.directory.get().user(user).map(|u| u.tenant_id);
                    let changes: Vec<BindingChange> = changes
                        .into_iter()
                        .filter(|c| {
                            let (BindingChange::Saved(b) | BindingChange::Removed(b)) = c;
                            b.user_id == user && Some(b.tenant_id) == tenant
                        })
                        .collect();
                    for c in &changes {
                        let (BindingChange::Saved(b) | BindingChange::Removed(b)) = c;
                        self.s.local.disown(b);
                    }
                    if let (false, Some(actor)) =
                        (changes.is_empty(), deps.platform.registry.user(user))
                    {
                        actor.do_send(RemoteBindings { changes });
                    }
                }
                Effect::SendSync => self.s.local.sync(),
                Effect::SendHello => self.s.local.change(Msg::Hello),
                Effect::UserChanged { tenant, user } => deps.notifier.user_changed(tenant, user),
                Effect::TenantChanged { tenant } => deps.notifier.tenant_changed(tenant),
                Effect::DirectoryChanged => {
                    if let Err(e) = deps.directory.reload().await {
                        warn!(error = %e, "cannot reload the directory after a change on another node");
                    }
                    // Not a change made here: not announced again.
                    self.directory_seen = deps.directory.get();
                }
            }
        }
    }
}
