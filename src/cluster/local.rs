//! This node's side of the cluster: what it tells the others, and what it must be able
//! to tell them again after a gap.
//!
//! Everything to send waits in one bounded outbox (oldest dropped and counted when it
//! is full; everything dropped while Redis is down). Beside it the node keeps what a
//! reconnect needs, whatever was dropped: the events so far of each live call of this
//! node, its users' hook states that are not idle, and the bindings it took. Senders
//! (the bus collector, the persistence port, the change notifier) never wait: one
//! short lock per message.

use super::wire::Msg;
use super::ClusterStats;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use tsps_actors::events::{CallEvent, CallEventKind, Event, StatusEvent};
use tsps_actors::model::Binding;
use tsps_actors::user::{BindingChange, UserStatus};
use tsps_actors::{CallId, DeviceId, UserId};

/// Messages waiting for Redis: room for a few seconds of a busy node's events.
pub const OUTBOX: usize = 16_384;
/// Events kept per live call for a sync (a call with more is replayed from its start
/// as far as kept: lines may then be wrong until it ends).
const CALL_LOG: usize = 512;

/// A binding's identity within its user.
type BindingKey = (UserId, DeviceId, String);

fn key_of(b: &Binding) -> BindingKey {
    (b.user_id, b.device_id, b.contact.clone())
}

#[derive(Default)]
struct State {
    connected: bool,
    /// Before the first connection nothing counts as dropped (the start-up state is
    /// in the first sync).
    ever_connected: bool,
    outbox: VecDeque<Msg>,
    calls: HashMap<CallId, Vec<CallEvent>>,
    statuses: HashMap<UserId, StatusEvent>,
    owned: HashMap<BindingKey, Binding>,
}

pub struct Local {
    state: Mutex<State>,
    /// Wakes the link when the outbox gets something.
    pub ready: tokio::sync::Notify,
    stats: Arc<ClusterStats>,
}

impl Local {
    pub fn new(stats: Arc<ClusterStats>) -> Self {
        Self {
            state: Mutex::new(State::default()),
            ready: tokio::sync::Notify::new(),
            stats,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, st: &mut State, msg: Msg) {
        if !st.connected {
            if st.ever_connected {
                self.stats.dropped.fetch_add(1, Relaxed);
            }
            return;
        }
        if st.outbox.len() >= OUTBOX {
            st.outbox.pop_front();
            self.stats.dropped.fetch_add(1, Relaxed);
        }
        st.outbox.push_back(msg);
        self.ready.notify_one();
    }

    /// An event this node published for the others (from the outbound bus channel).
    pub fn event(&self, ev: &Event) {
        let mut st = self.lock();
        match ev {
            Event::Call(ce) => {
                if let CallEventKind::Ended { .. } = ce.kind {
                    st.calls.remove(&ce.call);
                } else {
                    let log = st.calls.entry(ce.call).or_default();
                    if log.len() < CALL_LOG {
                        log.push(ce.clone());
                    }
                }
            }
            Event::Status(se) => {
                if se.hook == UserStatus::Idle {
                    st.statuses.remove(&se.user);
                } else {
                    st.statuses.insert(se.user, se.clone());
                }
            }
            // The others learn registrations from the bindings, not from device events.
            Event::Device(_) => return,
            // For the recipient's streams there (their phones got it from this node).
            Event::Message(_) => {}
        }
        self.push(&mut st, Msg::Event { event: ev.clone() });
    }

    pub fn binding_saved(&self, b: &Binding) {
        let mut st = self.lock();
        st.owned.insert(key_of(b), b.clone());
        self.push(&mut st, bindings_msg(b, BindingChange::Saved(b.clone())));
    }

    pub fn binding_removed(&self, b: &Binding) {
        let mut st = self.lock();
        st.owned.remove(&key_of(b));
        self.push(&mut st, bindings_msg(b, BindingChange::Removed(b.clone())));
    }

    /// Another node took this binding (or removed it): it is no longer this node's
    /// to publish again after a gap.
    pub fn disown(&self, b: &Binding) {
        self.lock().owned.remove(&key_of(b));
    }

    /// Whether this node took the binding (and still holds it).
    pub fn owns(&self, b: &Binding) -> bool {
        self.lock().owned.contains_key(&key_of(b))
    }

    /// A store change to announce.
    pub fn change(&self, msg: Msg) {
        let mut st = self.lock();
        self.push(&mut st, msg);
    }

    /// Another node asked for this node's state: queued behind what is already
    /// queued, so that it is ordered with this node's events.
    pub fn sync(&self) {
        let mut st = self.lock();
        let msg = sync_of(&st);
        self.push(&mut st, msg);
    }

    /// Redis is reachable (again): what was queued before is stale (dropped); the
    /// others get a hello (send me your state), this node's state, and the bindings it
    /// took, not yet expired, per user.
    pub fn connected(&self, now: chrono::DateTime<chrono::Utc>) {
        let mut st = self.lock();
        self.stats
            .dropped
            .fetch_add(st.outbox.len() as u64, Relaxed);
        st.outbox.clear();
        st.connected = true;
        st.ever_connected = true;
        st.owned.retain(|_, b| b.expires_at > now);
        let mut per_user: HashMap<UserId, Vec<BindingChange>> = HashMap::new();
        let mut tenants = HashMap::new();
        for b in st.owned.values() {
            tenants.insert(b.user_id, b.tenant_id);
            per_user
                .entry(b.user_id)
                .or_default()
                .push(BindingChange::Saved(b.clone()));
        }
        st.outbox.push_back(Msg::Hello);
        let sync = sync_of(&st);
        st.outbox.push_back(sync);
        for (user, changes) in per_user {
            st.outbox.push_back(Msg::Bindings {
                tenant: tenants[&user],
                user,
                changes,
            });
        }
        self.ready.notify_one();
    }

    /// Redis is gone: nothing is queued until it is back.
    pub fn disconnected(&self) {
        let mut st = self.lock();
        st.connected = false;
        self.stats
            .dropped
            .fetch_add(st.outbox.len() as u64, Relaxed);
        st.outbox.clear();
    }

    /// Everything queued, oldest first.
    pub fn take(&self) -> Vec<Msg> {
        self.lock().outbox.drain(..).collect()
    }

    #[cfg(test)]
    fn live_calls(&self) -> usize {
        self.lock().calls.len()
    }
}

fn bindings_msg(b: &Binding, change: BindingChange) -> Msg {
    Msg::Bindings {
        tenant: b.tenant_id,
        user: b.user_id,
        changes: vec![change],
    }
}

fn sync_of(st: &State) -> Msg {
    Msg::Sync {
        calls: st.calls.values().cloned().collect(),
        statuses: st.statuses.values().cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, Utc};
    use tsps_actors::feature::Presence;
    use tsps_actors::model::CallOutcome;
    use tsps_actors::{LegId, TenantId};

    fn call_event(call: u128, kind: CallEventKind) -> Event {
        Event::Call(CallEvent {
            call: CallId::for_test(call),
            tenant: TenantId::for_test(1),
            at: Utc::now(),
            kind,
        })
    }

    fn status(user: u128, hook: UserStatus) -> Event {
        Event::Status(StatusEvent {
            tenant: TenantId::for_test(1),
            user: UserId::for_test(user),
            presence: Presence::Available,
            hook,
            registered: true,
            dnd: false,
            at: Utc::now(),
        })
    }

    fn binding(contact: &str, expires_in: i64) -> Binding {
        Binding {
            tenant_id: TenantId::for_test(1),
            user_id: UserId::for_test(2),
            device_id: DeviceId::for_test(3),
            contact: contact.into(),
            received: "udp:127.0.0.1:5070".into(),
            expires_at: Utc::now() + Duration::seconds(expires_in),
            call_id: "r".into(),
            cseq: 1,
        }
    }

    fn kinds(msgs: &[Msg]) -> Vec<&'static str> {
        msgs.iter()
            .map(|m| match m {
                Msg::Event { .. } => "event",
                Msg::Sync { .. } => "sync",
                Msg::Bindings { .. } => "bindings",
                Msg::Hello => "hello",
                _ => "other",
            })
            .collect()
    }

    #[test]
    fn nothing_is_queued_while_redis_is_down_but_the_state_is_kept() {
        let stats = Arc::new(ClusterStats::default());
        let local = Local::new(stats.clone());
        let ringing = CallEventKind::Ringing {
            leg: LegId::for_test(1),
        };
        local.event(&call_event(1, ringing.clone()));
        local.event(&status(2, UserStatus::Ringing));
        local.binding_saved(&binding("sip:a", 60));
        local.binding_saved(&binding("sip:old", -1));
        assert!(local.take().is_empty());
        // Not counted before the first connection (the first sync carries it all).
        assert_eq!(stats.dropped.load(Relaxed), 0);
        local.connected(Utc::now());
        local.take();
        local.disconnected();
        local.event(&call_event(1, ringing.clone()));
        assert_eq!(stats.dropped.load(Relaxed), 1);

        local.connected(Utc::now());
        let msgs = local.take();
        assert_eq!(kinds(&msgs), ["hello", "sync", "bindings"]);
        let Msg::Sync { calls, statuses } = &msgs[1] else {
            unreachable!()
        };
        assert_eq!((calls.len(), calls[0].len(), statuses.len()), (1, 2, 1));
        // Only the binding not yet expired is published again.
        let Msg::Bindings { changes, .. } = &msgs[2] else {
            unreachable!()
        };
        let contacts: Vec<&str> = changes
            .iter()
            .map(|c| match c {
                BindingChange::Saved(b) | BindingChange::Removed(b) => b.contact.as_str(),
            })
            .collect();
        assert_eq!(contacts, ["sip:a"]);
    }

    #[test]
    fn call_logs_end_with_the_call_and_idle_users_are_not_synced() {
        let local = Local::new(Arc::new(ClusterStats::default()));
        local.connected(Utc::now());
        local.take();
        let leg = LegId::for_test(1);
        local.event(&call_event(1, CallEventKind::Ringing { leg }));
        local.event(&call_event(1, CallEventKind::Answered { leg }));
        local.event(&call_event(2, CallEventKind::Ringing { leg }));
        local.event(&call_event(
            2,
            CallEventKind::Ended {
                outcome: CallOutcome::Cancelled,
                hangup_by: None,
            },
        ));
        local.event(&status(2, UserStatus::Busy));
        local.event(&status(2, UserStatus::Idle));
        assert_eq!(local.live_calls(), 1);
        assert_eq!(local.take().len(), 6);
        local.sync();
        let msgs = local.take();
        let Msg::Sync { calls, statuses } = &msgs[0] else {
            panic!("{msgs:?}")
        };
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].len(), 2);
        assert!(statuses.is_empty());
    }

    #[test]
    fn the_outbox_drops_the_oldest_and_counts() {
        let stats = Arc::new(ClusterStats::default());
        let local = Local::new(stats.clone());
        local.connected(Utc::now());
        local.take();
        for _ in 0..OUTBOX + 3 {
            local.event(&status(2, UserStatus::Busy));
        }
        assert_eq!(stats.dropped.load(Relaxed), 3);
        assert_eq!(local.take().len(), OUTBOX);
        // A binding another node took is not published again by this one.
        let b = binding("sip:a", 60);
        local.binding_saved(&b);
        assert!(local.owns(&b));
        local.disown(&b);
        assert!(!local.owns(&b));
        local.disconnected();
        local.connected(Utc::now());
        assert_eq!(kinds(&local.take()), ["hello", "sync"]);
    }
}
