//! What this node knows of the other nodes, from their messages (sans-IO): which nodes
//! are alive, the live calls each has reported, and each one's hook state of each user.
//! [`Remote::receive`] and [`Remote::sweep`] return [`Effect`]s; the link carries them
//! out (bus, user actors, notifier).
//!
//! A node that falls silent ([`super::SILENT`] without a message, which is also what
//! a Redis outage looks like from here) is forgotten: its calls' lines end here and its
//! hook states no longer count. A `Sync` from a node brings this node back in line with
//! it after a gap: calls it no longer has end, calls whose events were missed are
//! replayed from their start (the line projections start them afresh), hook states are
//! replaced.

use super::wire::{Msg, NodeId, Wire};
use std::collections::{HashMap, HashSet};
use tokio::time::{Duration, Instant};
use tsps_actors::events::{CallEvent, CallEventKind, Event};
use tsps_actors::model::{CallOutcome, Party};
use tsps_actors::user::{BindingChange, UserStatus};
use tsps_actors::{CallId, TenantId, UserId};

#[derive(Debug, PartialEq)]
pub enum Effect {
    /// Publish on this node's bus, for the consumers here (push hub, SIP presence).
    Publish(Event),
    /// The user's hook state on the other nodes is now this (the highest of them).
    Hook {
        user: UserId,
        hook: UserStatus,
    },
    /// Another node took registration changes for this user.
    Bindings {
        user: UserId,
        changes: Vec<BindingChange>,
    },
    /// Another node asked for this node's state.
    SendSync,
    /// A node given up on is back: ask every node for its state.
    SendHello,
    UserChanged {
        tenant: TenantId,
        user: UserId,
    },
    TenantChanged {
        tenant: TenantId,
    },
    DirectoryChanged,
}

#[derive(Debug)]
struct Peer {
    last_seen: Instant,
    /// Live calls it reported: tenant, and how many events were received.
    calls: HashMap<CallId, (TenantId, usize)>,
    /// Its hook state of users that are not idle there.
    hooks: HashMap<UserId, UserStatus>,
}

impl Peer {
    fn new(now: Instant) -> Self {
        Self {
            last_seen: now,
            calls: HashMap::new(),
            hooks: HashMap::new(),
        }
    }
}

pub struct Remote {
    me: NodeId,
    silent_after: Duration,
    peers: HashMap<NodeId, Peer>,
    /// Nodes given up on (silent); one heard from again is asked for its state.
    gone: HashSet<NodeId>,
}

/// Nodes remembered as given up on (node ids change at every start: this is only
/// for one that was cut off for a while).
const GONE_KEPT: usize = 256;

impl Remote {
    pub fn new(me: NodeId, silent_after: Duration) -> Self {
        Self {
            me,
            silent_after,
            peers: HashMap::new(),
            gone: HashSet::new(),
        }
    }

    /// Nodes heard from recently (for tests and logs).
    pub fn peers(&self) -> usize {
        self.peers.len()
    }

    fn hook_of(&self, user: UserId) -> UserStatus {
        self.peers
            .values()
            .filter_map(|p| p.hooks.get(&user))
            .copied()
            .max()
            .unwrap_or(UserStatus::Idle)
    }

    /// Sets `node`'s hooks of `users` with `set`, and reports the users whose highest
    /// hook changed.
    fn set_hooks(
        &mut self,
        node: &NodeId,
        users: Vec<UserId>,
        set: impl Fn(&mut HashMap<UserId, UserStatus>),
    ) -> Vec<Effect> {
        let before: Vec<UserStatus> = users.iter().map(|u| self.hook_of(*u)).collect();
        if let Some(p) = self.peers.get_mut(node) {
            set(&mut p.hooks);
        }
        users
            .into_iter()
            .zip(before)
            .filter_map(|(user, was)| {
                let hook = self.hook_of(user);
                (hook != was).then_some(Effect::Hook { user, hook })
            })
            .collect()
    }

    pub fn receive(&mut self, now: Instant, wire: Wire) -> Vec<Effect> {
        let Wire { node, msg } = wire;
        if node == self.me {
            return Vec::new();
        }
        let mut out = Vec::new();
        if !self.peers.contains_key(&node) {
            if self.gone.remove(&node) && !matches!(msg, Msg::Hello | Msg::Bye) {
                // Cut off for a while but never reconnected (so it sends no hello):
                // its state since then is unknown here.
                out.push(Effect::SendHello);
            }
            if matches!(msg, Msg::Bye) {
                return out;
            }
            self.peers.insert(node.clone(), Peer::new(now));
        }
        let peer = self.peers.get_mut(&node).expect("inserted above");
        peer.last_seen = now;
        match msg {
            Msg::Event {
                event: Event::Call(ce),
            } => {
                if let CallEventKind::Ended { .. } = ce.kind {
                    peer.calls.remove(&ce.call);
                } else {
                    peer.calls.entry(ce.call).or_insert((ce.tenant, 0)).1 += 1;
                }
                out.push(Effect::Publish(Event::Call(ce)));
            }
            Msg::Event {
                event: Event::Status(se),
            } => {
                let (user, hook) = (se.user, se.hook);
                out.extend(self.set_hooks(&node, vec![user], |hooks| {
                    if hook == UserStatus::Idle {
                        hooks.remove(&user);
                    } else {
                        hooks.insert(user, hook);
                    }
                }));
            }
            // Registrations travel as bindings.
            Msg::Event {
                event: Event::Device(_),
            } => {}
            // An instant message: for the streams here (not `local`: no SIP again).
            Msg::Event {
                event: Event::Message(m),
            } => out.push(Effect::Publish(Event::Message(m))),
            Msg::Sync { calls, statuses } => {
                let live: HashSet<CallId> = calls
                    .iter()
                    .filter_map(|log| log.first().map(|e| e.call))
                    .collect();
                let ended: Vec<(CallId, TenantId)> = peer
                    .calls
                    .iter()
                    .filter(|(c, _)| !live.contains(c))
                    .map(|(c, (t, _))| (*c, *t))
                    .collect();
                for (call, tenant) in ended {
                    peer.calls.remove(&call);
                    out.push(Effect::Publish(lost(call, tenant)));
                }
                for log in calls {
                    let Some(first) = log.first() else { continue };
                    let seen = peer.calls.get(&first.call).map(|(_, n)| *n);
                    if seen == Some(log.len()) {
                        continue; // nothing was missed
                    }
                    peer.calls.insert(first.call, (first.tenant, log.len()));
                    out.extend(log.into_iter().map(|e| Effect::Publish(Event::Call(e))));
                }
                let mut users: Vec<UserId> = peer.hooks.keys().copied().collect();
                users.extend(statuses.iter().map(|s| s.user));
                users.sort();
                users.dedup();
                let hooks: HashMap<UserId, UserStatus> = statuses
                    .into_iter()
                    .filter(|s| s.hook != UserStatus::Idle)
                    .map(|s| (s.user, s.hook))
                    .collect();
                out.extend(self.set_hooks(&node, users, move |h| *h = hooks.clone()));
            }
            Msg::Bindings { user, changes, .. } => out.push(Effect::Bindings { user, changes }),
            Msg::Heartbeat => {}
            Msg::Hello => out.push(Effect::SendSync),
            Msg::Bye => out.extend(self.forget(&node)),
            Msg::UserChanged { tenant, user } => out.push(Effect::UserChanged { tenant, user }),
            Msg::TenantChanged { tenant } => out.push(Effect::TenantChanged { tenant }),
            Msg::DirectoryChanged => out.push(Effect::DirectoryChanged),
        }
        out
    }

    /// Gives up on nodes not heard from for too long.
    pub fn sweep(&mut self, now: Instant) -> Vec<Effect> {
        let silent: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(_, p)| now.duration_since(p.last_seen) > self.silent_after)
            .map(|(n, _)| n.clone())
            .collect();
        let mut out = Vec::new();
        for node in silent {
            tracing::warn!(%node, "cluster node fell silent: its calls and hook states are dropped here");
            out.extend(self.forget(&node));
            if self.gone.len() >= GONE_KEPT {
                self.gone.clear();
            }
            self.gone.insert(node);
        }
        out
    }

    /// Ends `node`'s calls here and drops its hook states.
    fn forget(&mut self, node: &NodeId) -> Vec<Effect> {
        let Some(peer) = self.peers.get(node) else {
            return Vec::new();
        };
        let mut out: Vec<Effect> = peer
            .calls
            .iter()
            .map(|(call, (tenant, _))| Effect::Publish(lost(*call, *tenant)))
            .collect();
        let users: Vec<UserId> = peer.hooks.keys().copied().collect();
        out.extend(self.set_hooks(node, users, |h| h.clear()));
        self.peers.remove(node);
        out
    }
}

/// The end of a call whose node can no longer tell (it fell silent, or the call ended
/// while this node was cut off).
fn lost(call: CallId, tenant: TenantId) -> Event {
    Event::Call(CallEvent {
        call,
        tenant,
        at: chrono::Utc::now(),
        kind: CallEventKind::Ended {
            outcome: CallOutcome::Failed,
            hangup_by: Some(Party::System),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsps_actors::events::StatusEvent;
    use tsps_actors::feature::Presence;
    use tsps_actors::LegId;

    const SILENT: Duration = Duration::from_secs(10);

    fn node(n: &str) -> NodeId {
        NodeId(n.into())
    }

    fn wire(from: &str, msg: Msg) -> Wire {
        Wire {
            node: node(from),
            msg,
        }
    }

    fn ce(call: u128, kind: CallEventKind) -> CallEvent {
        CallEvent {
            call: CallId::for_test(call),
            tenant: TenantId::for_test(1),
            at: chrono::Utc::now(),
            kind,
        }
    }

    fn ringing(call: u128) -> CallEvent {
        ce(
            call,
            CallEventKind::Ringing {
                leg: LegId::for_test(1),
            },
        )
    }

    fn event(e: CallEvent) -> Msg {
        Msg::Event {
            event: Event::Call(e),
        }
    }

    fn status(user: u128, hook: UserStatus) -> StatusEvent {
        StatusEvent {
            tenant: TenantId::for_test(1),
            user: UserId::for_test(user),
            presence: Presence::Available,
            hook,
            registered: true,
            dnd: false,
            at: chrono::Utc::now(),
        }
    }

    fn status_msg(user: u128, hook: UserStatus) -> Msg {
        Msg::Event {
            event: Event::Status(status(user, hook)),
        }
    }

    /// The calls that effects end, and the events they publish otherwise.
    fn published(effects: &[Effect]) -> (Vec<CallId>, usize) {
        let mut ended = Vec::new();
        let mut others = 0;
        for e in effects {
            if let Effect::Publish(Event::Call(c)) = e {
                match c.kind {
                    CallEventKind::Ended { .. } => ended.push(c.call),
                    _ => others += 1,
                }
            }
        }
        (ended, others)
    }

    fn hook(user: u128, hook: UserStatus) -> Effect {
        Effect::Hook {
            user: UserId::for_test(user),
            hook,
        }
    }

    #[test]
    fn own_messages_are_ignored_and_call_events_are_published() {
        let t = Instant::now();
        let mut r = Remote::new(node("me"), SILENT);
        assert!(r.receive(t, wire("me", event(ringing(1)))).is_empty());
        assert_eq!(r.peers(), 0);
        let e = ringing(1);
        let fx = r.receive(t, wire("b", event(e.clone())));
        assert_eq!(fx, vec![Effect::Publish(Event::Call(e))]);
        assert_eq!(r.receive(t, wire("b", Msg::Hello)), vec![Effect::SendSync]);
    }

    #[test]
    fn the_highest_hook_over_the_other_nodes_counts() {
        let t = Instant::now();
        let mut r = Remote::new(node("me"), SILENT);
        let fx = r.receive(t, wire("b", status_msg(7, UserStatus::Ringing)));
        assert_eq!(fx, vec![hook(7, UserStatus::Ringing)]);
        let fx = r.receive(t, wire("c", status_msg(7, UserStatus::Busy)));
        assert_eq!(fx, vec![hook(7, UserStatus::Busy)]);
        // b's ringing ends: c's busy still holds, nothing changes.
        assert!(r
            .receive(t, wire("b", status_msg(7, UserStatus::Idle)))
            .is_empty());
        let fx = r.receive(t, wire("c", status_msg(7, UserStatus::Idle)));
        assert_eq!(fx, vec![hook(7, UserStatus::Idle)]);
    }

    #[test]
    fn a_silent_node_is_forgotten_and_asked_again_when_heard() {
        let t = Instant::now();
        let mut r = Remote::new(node("me"), SILENT);
        r.receive(t, wire("b", event(ringing(1))));
        r.receive(t, wire("b", status_msg(7, UserStatus::Ringing)));
        r.receive(t, wire("c", Msg::Heartbeat));
        assert!(r.sweep(t + SILENT).is_empty());
        r.receive(t + SILENT, wire("c", Msg::Heartbeat));
        let fx = r.sweep(t + SILENT + Duration::from_secs(1));
        assert_eq!(published(&fx), (vec![CallId::for_test(1)], 0));
        assert!(fx.contains(&hook(7, UserStatus::Idle)), "{fx:?}");
        assert_eq!(r.peers(), 1);
        // b comes back without having reconnected: its state is asked for.
        let fx = r.receive(t + SILENT * 2, wire("b", Msg::Heartbeat));
        assert_eq!(fx, vec![Effect::SendHello]);
        // A node that says goodbye is forgotten at once.
        r.receive(t, wire("c", event(ringing(2))));
        let fx = r.receive(t + SILENT * 2, wire("c", Msg::Bye));
        assert_eq!(published(&fx), (vec![CallId::for_test(2)], 0));
        assert_eq!(r.peers(), 1);
    }

    #[test]
    fn a_sync_ends_gone_calls_and_replays_calls_with_missed_events() {
        let t = Instant::now();
        let mut r = Remote::new(node("me"), SILENT);
        // Seen: call 1 (one event), call 2 (one event), call 3 (both events).
        r.receive(t, wire("b", event(ringing(1))));
        r.receive(t, wire("b", event(ringing(2))));
        r.receive(t, wire("b", event(ringing(3))));
        let answered = |c| {
            ce(
                c,
                CallEventKind::Answered {
                    leg: LegId::for_test(1),
                },
            )
        };
        r.receive(t, wire("b", event(answered(3))));
        r.receive(t, wire("b", status_msg(7, UserStatus::Busy)));
        // b's state now: call 1 ended (missed), call 2 answered (missed), call 3 as
        // known, call 4 new (missed); user 8 ringing, user 7 idle.
        let fx = r.receive(
            t,
            wire(
                "b",
                Msg::Sync {
                    calls: vec![
                        vec![ringing(2), answered(2)],
                        vec![ringing(3), answered(3)],
                        vec![ringing(4)],
                    ],
                    statuses: vec![status(8, UserStatus::Ringing)],
                },
            ),
        );
        assert_eq!(published(&fx), (vec![CallId::for_test(1)], 3));
        assert!(fx.contains(&hook(7, UserStatus::Idle)), "{fx:?}");
        assert!(fx.contains(&hook(8, UserStatus::Ringing)), "{fx:?}");
        // The same sync again changes nothing.
        let again = r.receive(
            t,
            wire(
                "b",
                Msg::Sync {
                    calls: vec![
                        vec![ringing(2), answered(2)],
                        vec![ringing(3), answered(3)],
                        vec![ringing(4)],
                    ],
                    statuses: vec![status(8, UserStatus::Ringing)],
                },
            ),
        );
        assert!(again.is_empty(), "{again:?}");
    }

    #[test]
    fn bindings_and_store_changes_are_passed_on() {
        let t = Instant::now();
        let mut r = Remote::new(node("me"), SILENT);
        let fx = r.receive(
            t,
            wire(
                "b",
                Msg::Bindings {
                    tenant: TenantId::for_test(1),
                    user: UserId::for_test(2),
                    changes: vec![],
                },
            ),
        );
        assert_eq!(
            fx,
            vec![Effect::Bindings {
                user: UserId::for_test(2),
                changes: vec![]
            }]
        );
        assert_eq!(
            r.receive(t, wire("b", Msg::DirectoryChanged)),
            vec![Effect::DirectoryChanged]
        );
        assert_eq!(
            r.receive(
                t,
                wire(
                    "b",
                    Msg::TenantChanged {
                        tenant: TenantId::for_test(1)
                    }
                )
            ),
            vec![Effect::TenantChanged {
                tenant: TenantId::for_test(1)
            }]
        );
    }
}
