//! Presence: who watches whom, and what watchers are told when a user's hook state or
//! presence changes (SIP SUBSCRIBE/NOTIFY for the dialog and presence packages, and
//! instant messages, on the SIP side).
//!
//! One [`PresenceActor`] per tenant. It feeds the tenant's call events into a
//! [`LineBook`] (the same pure projection the push hub uses: one projection, run
//! where it is needed), keeps the watchers indexed by watched user, and for each
//! change of a watched user tells exactly that user's watchers through the
//! [`WatcherUpdate`] port. Work per event is proportional to the watchers of the users
//! the event concerns, never to all subscriptions. Per tenant rather than per user:
//! a call's lines span several users of one tenant, so one LineBook per tenant sees
//! each call event once, and the tenant wall holds by construction (an actor only
//! ever receives its own tenant's events and subscriptions).
//!
//! The SIP dialog of a subscription (and its NOTIFY transactions, refresh, expiry)
//! belongs to the shard that received the SUBSCRIBE; this crate never sees SIP.
//! Subscriptions live in memory on one node (see docs/presence.md).

pub mod message;
pub mod rules;
pub mod view;

use crate::events::{CallEventKind, Event};
use crate::ids::{CallId, DeviceId, TenantId, UserId};
use crate::lines::{LineBook, LineUpdate};
use crate::user::{GetUserSnapshot, UserActor};
use actix::prelude::*;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tracing::warn;

pub use rules::{may_watch, may_watch_ids, WatchRule};
pub use view::{Activity, DialogState, DialogView, Facts, Hook, PresenceView, WatchedState};

/// One subscription, numbered on this node by the SIP layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(pub u64);

impl SubscriptionId {
    /// A number not used before on this node.
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sub-{}", self.0)
    }
}

/// The event packages tsps serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Package {
    /// RFC 4235: one element per call (busy-lamp fields).
    Dialog,
    /// RFC 3856: basic open/closed and an activity.
    Presence,
}

/// The port toward the SIP layer: the watched user's state changed. Sent to the shard
/// that holds the subscription's dialog.
#[derive(Clone, Debug, Message)]
#[rtype(result = "()")]
pub struct WatcherUpdate {
    pub sub: SubscriptionId,
    pub state: Arc<WatchedState>,
    /// The subscription's package shows something new: send a NOTIFY.
    pub notify: bool,
    /// The hook state changed and the watcher asked for instant messages.
    pub im: bool,
}

/// A new subscription of `watcher_device` to `watched` (authenticated and authorized
/// by the SIP layer). Answers the current state, for the first NOTIFY.
#[derive(Message)]
#[rtype(result = "Result<Arc<WatchedState>, WatchError>")]
pub struct Watch {
    pub sub: SubscriptionId,
    pub watched: UserId,
    pub watcher_device: DeviceId,
    pub package: Package,
    /// Send an instant message on each hook state change.
    pub im: bool,
    /// Most subscriptions one device may hold in this tenant.
    pub per_device_limit: usize,
    /// Most subscriptions the tenant's devices may hold together (the tenant's quota).
    pub tenant_limit: usize,
    /// The watched user's actor: asked once for the presence and devices when the
    /// user gets their first watcher (later changes come from the bus).
    pub user_actor: Option<Addr<UserActor>>,
    pub updates: Recipient<WatcherUpdate>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    #[error("device {device} already holds {limit} subscriptions")]
    TooManyForDevice { device: DeviceId, limit: usize },
    #[error("the tenant's devices already hold {limit} subscriptions (its quota)")]
    TooManyForTenant { limit: usize },
}

/// The subscription ended (expired, unsubscribed, NOTIFY failed).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Unwatch {
    pub sub: SubscriptionId,
}

/// One event of the bus for this tenant (see [`route_bus`]).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct BusEvent(pub Arc<Event>);

/// Observable state, for tests and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PresenceSnapshot {
    pub watched_users: usize,
    pub subscriptions: usize,
    pub calls: usize,
}

#[derive(Debug, Message)]
#[rtype(result = "PresenceSnapshot")]
pub struct GetPresenceSnapshot;

/// How long the first watch of a user waits for the user actor's presence and devices.
const SNAPSHOT_BUDGET: Duration = Duration::from_secs(1);

struct Watcher {
    device: DeviceId,
    package: Package,
    im: bool,
    updates: Recipient<WatcherUpdate>,
}

struct WatchedUser {
    facts: Facts,
    /// The presence came from the bus: a late snapshot must not overwrite it.
    presence_known: bool,
    /// Live contacts per device (from the snapshot, then the bus).
    devices: HashMap<DeviceId, usize>,
    watchers: HashMap<SubscriptionId, Watcher>,
    /// Calls that ended since the last notification (reported once as terminated).
    ended: Vec<DialogView>,
    /// Calls the user has a line in (to find them on a Ringing event).
    calls: HashSet<CallId>,
    last: Arc<WatchedState>,
}

pub struct PresenceActor {
    tenant: TenantId,
    book: LineBook,
    /// Calls whose callee side has rung: the caller's dialog is early, not trying.
    far_end_ringing: HashSet<CallId>,
    users: HashMap<UserId, WatchedUser>,
    /// Watched users with a line in each call.
    call_users: HashMap<CallId, HashSet<UserId>>,
    subs: HashMap<SubscriptionId, UserId>,
    per_device: HashMap<DeviceId, usize>,
    seq: u64,
}

impl PresenceActor {
    pub fn new(tenant: TenantId) -> Self {
        Self {
            tenant,
            book: LineBook::new(),
            far_end_ringing: HashSet::new(),
            users: HashMap::new(),
            call_users: HashMap::new(),
            subs: HashMap::new(),
            per_device: HashMap::new(),
            seq: 0,
        }
    }

    fn project(&mut self, user: UserId) -> Option<WatchedState> {
        let w = self.users.get(&user)?;
        self.seq += 1;
        let lines = self.book.lines_of(user);
        let ringing = &self.far_end_ringing;
        Some(view::project(
            user,
            self.seq,
            &w.facts,
            &lines,
            |c| ringing.contains(&c),
            &w.ended,
        ))
    }

    /// Recomputes a watched user's state and tells the watchers whose view changed.
    fn refresh(&mut self, user: UserId) {
        let Some(new) = self.project(user) else {
            return;
        };
        let lines: Vec<CallId> = new
            .dialogs
            .iter()
            .filter(|d| d.state != DialogState::Terminated)
            .map(|d| d.call)
            .collect();
        let w = self.users.get_mut(&user).expect("projected above");
        w.ended.clear();
        for call in &lines {
            if w.calls.insert(*call) {
                self.call_users.entry(*call).or_default().insert(user);
            }
        }
        let dialogs_changed = new.dialogs != w.last.dialogs;
        let presence_changed = new.presence != w.last.presence;
        let hook_changed = new.hook != w.last.hook;
        if !(dialogs_changed || presence_changed || hook_changed) {
            return;
        }
        let new = Arc::new(new);
        for (sub, watcher) in &w.watchers {
            let notify = match watcher.package {
                Package::Dialog => dialogs_changed,
                Package::Presence => presence_changed,
            };
            let im = watcher.im && hook_changed;
            if notify || im {
                watcher.updates.do_send(WatcherUpdate {
                    sub: *sub,
                    state: new.clone(),
                    notify,
                    im,
                });
            }
        }
        // Ended calls are reported once: the next comparison is with the calls left.
        w.last = if new
            .dialogs
            .iter()
            .any(|d| d.state == DialogState::Terminated)
        {
            let mut rest = (*new).clone();
            rest.dialogs.retain(|d| d.state != DialogState::Terminated);
            Arc::new(rest)
        } else {
            new
        };
    }

    fn on_event(&mut self, ev: &Event) {
        if ev.tenant() != self.tenant {
            return; // tenants are walls, even for a misrouted event
        }
        match ev {
            Event::Call(ce) => {
                let mut touched: Vec<UserId> = Vec::new();
                if let CallEventKind::Ringing { .. } = ce.kind {
                    if self.far_end_ringing.insert(ce.call) {
                        touched.extend(self.call_users.get(&ce.call).into_iter().flatten());
                    }
                }
                for u in self.book.apply(ce) {
                    let user = u.user();
                    let Some(w) = self.users.get_mut(&user) else {
                        continue;
                    };
                    if let LineUpdate::Ended { call, .. } = &u {
                        if let Some(d) = w.last.dialogs.iter().find(|d| d.call == *call) {
                            w.ended.push(d.clone());
                        }
                        w.calls.remove(call);
                        if let Some(set) = self.call_users.get_mut(call) {
                            set.remove(&user);
                            if set.is_empty() {
                                self.call_users.remove(call);
                            }
                        }
                    }
                    touched.push(user);
                }
                touched.sort();
                touched.dedup();
                for user in touched {
                    self.refresh(user);
                }
                if let CallEventKind::Ended { .. } = ce.kind {
                    self.far_end_ringing.remove(&ce.call);
                    self.call_users.remove(&ce.call);
                }
            }
            Event::Device(de) => {
                let Some(w) = self.users.get_mut(&de.user) else {
                    return;
                };
                if de.contacts == 0 {
                    w.devices.remove(&de.device);
                } else {
                    w.devices.insert(de.device, de.contacts);
                }
                w.facts.registered = !w.devices.is_empty();
                self.refresh(de.user);
            }
            Event::Status(se) => {
                let Some(w) = self.users.get_mut(&se.user) else {
                    return;
                };
                w.facts.presence = se.presence;
                w.presence_known = true;
                self.refresh(se.user);
            }
            // Delivered by the SIP layer and the push hub (see `message`).
            Event::Message(_) => {}
        }
    }

    fn unwatch(&mut self, sub: SubscriptionId) {
        let Some(user) = self.subs.remove(&sub) else {
            return;
        };
        let Some(w) = self.users.get_mut(&user) else {
            return;
        };
        if let Some(watcher) = w.watchers.remove(&sub) {
            if let Some(n) = self.per_device.get_mut(&watcher.device) {
                *n -= 1;
                if *n == 0 {
                    self.per_device.remove(&watcher.device);
                }
            }
        }
        if w.watchers.is_empty() {
            let w = self.users.remove(&user).expect("present");
            for call in w.calls {
                if let Some(set) = self.call_users.get_mut(&call) {
                    set.remove(&user);
                    if set.is_empty() {
                        self.call_users.remove(&call);
                    }
                }
            }
        }
    }
}

impl Actor for PresenceActor {
    type Context = Context<Self>;
}

impl Handler<BusEvent> for PresenceActor {
    type Result = ();
    fn handle(&mut self, msg: BusEvent, _: &mut Self::Context) {
        self.on_event(&msg.0);
    }
}

impl Handler<Watch> for PresenceActor {
    type Result = ResponseActFuture<Self, Result<Arc<WatchedState>, WatchError>>;

    fn handle(&mut self, msg: Watch, _: &mut Self::Context) -> Self::Result {
        let device = msg.watcher_device;
        if self.subs.len() >= msg.tenant_limit {
            let err = WatchError::TooManyForTenant {
                limit: msg.tenant_limit,
            };
            return Box::pin(fut::ready(Err(err)));
        }
        let held = self.per_device.get(&device).copied().unwrap_or(0);
        if held >= msg.per_device_limit {
            let err = WatchError::TooManyForDevice {
                device,
                limit: msg.per_device_limit,
            };
            return Box::pin(fut::ready(Err(err)));
        }
        *self.per_device.entry(device).or_default() += 1;
        let watched = msg.watched;
        self.subs.insert(msg.sub, watched);
        let first = !self.users.contains_key(&watched);
        if first {
            self.seq += 1;
            let lines = self.book.lines_of(watched);
            let ringing = &self.far_end_ringing;
            let state = view::project(
                watched,
                self.seq,
                &Facts::default(),
                &lines,
                |c| ringing.contains(&c),
                &[],
            );
            for l in &lines {
                self.call_users
                    .entry(l.call_id)
                    .or_default()
                    .insert(watched);
            }
            self.users.insert(
                watched,
                WatchedUser {
                    facts: Facts::default(),
                    presence_known: false,
                    devices: HashMap::new(),
                    watchers: HashMap::new(),
                    ended: Vec::new(),
                    calls: lines.iter().map(|l| l.call_id).collect(),
                    last: Arc::new(state),
                },
            );
        }
        let w = self.users.get_mut(&watched).expect("inserted above");
        w.watchers.insert(
            msg.sub,
            Watcher {
                device,
                package: msg.package,
                im: msg.im,
                updates: msg.updates,
            },
        );
        let Some(addr) = msg.user_actor.filter(|_| first) else {
            return Box::pin(fut::ready(Ok(w.last.clone())));
        };
        let ask = async move {
            tokio::time::timeout(SNAPSHOT_BUDGET, addr.send(GetUserSnapshot))
                .await
                .ok()
                .and_then(Result::ok)
        };
        Box::pin(ask.into_actor(self).map(move |snap, act, _| {
            match snap {
                Some(s) => {
                    if let Some(w) = act.users.get_mut(&watched) {
                        if !w.presence_known {
                            w.facts.presence = s.presence;
                        }
                        let mut counts: HashMap<DeviceId, usize> = HashMap::new();
                        for b in &s.bindings {
                            *counts.entry(b.device_id).or_default() += 1;
                        }
                        for (d, n) in counts {
                            w.devices.entry(d).or_insert(n);
                        }
                        w.facts.registered = !w.devices.is_empty();
                    }
                    act.refresh(watched);
                }
                None => warn!(user = %watched, "no presence snapshot from the user actor"),
            }
            match act.users.get(&watched) {
                Some(w) => Ok(w.last.clone()),
                // Unwatched while loading: the SIP side drops it anyway.
                None => Ok(Arc::new(view::project(
                    watched,
                    0,
                    &Facts::default(),
                    &[],
                    |_| false,
                    &[],
                ))),
            }
        }))
    }
}

impl Handler<Unwatch> for PresenceActor {
    type Result = ();
    fn handle(&mut self, msg: Unwatch, _: &mut Self::Context) {
        self.unwatch(msg.sub);
    }
}

impl Handler<GetPresenceSnapshot> for PresenceActor {
    type Result = MessageResult<GetPresenceSnapshot>;
    fn handle(&mut self, _: GetPresenceSnapshot, _: &mut Self::Context) -> Self::Result {
        MessageResult(PresenceSnapshot {
            watched_users: self.users.len(),
            subscriptions: self.subs.len(),
            calls: self.book.calls(),
        })
    }
}

/// Feeds the bus to the tenants' presence actors until the bus closes (run it as a
/// task; cancel it with the platform). A presence actor lost events when this lags:
/// lines of calls in progress may then be wrong until those calls end.
/// `presence` gives the tenant's presence actor (the registry's).
pub async fn route_bus(
    presence: impl Fn(TenantId) -> Addr<PresenceActor>,
    mut rx: broadcast::Receiver<Arc<Event>>,
) {
    loop {
        match rx.recv().await {
            // Instant messages are the SIP layer's and the hub's (`message`).
            Ok(ev) if matches!(*ev, Event::Message(_)) => {}
            Ok(ev) => presence(ev.tenant()).do_send(BusEvent(ev)),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                warn!(missed = n, "presence fell behind the event bus");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests;
