//! The in-process event bus. Every call state change, device registration change and
//! user status change is published here, and every instant message between users; the
//! portal, presence and CTI subscribe.
//!
//! Across nodes the bus is bridged to Redis (`src/cluster`): what happens on this node
//! also goes to an outbound channel the bridge reads; what another node reports is
//! published here only ([`EventBus::publish_here`]), so it is never sent back. The
//! serde shape of the events is the wire format between nodes.
//!
//! A leaf: the bus and its event types import only ids, model and the plain profile
//! types, never the actors that publish or follow them (user, presence, call).

use crate::ids::{CallId, DeviceId, LegId, TenantId, UserId};
use crate::model::{CallDirection, CallOutcome, Party};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use tokio::sync::broadcast;
use uuid::Uuid;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallEvent {
    pub call: CallId,
    pub tenant: TenantId,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub kind: CallEventKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum CallEventKind {
    Started {
        direction: CallDirection,
        caller: String,
        callee: String,
        caller_user: Option<UserId>,
        callee_user: Option<UserId>,
        /// The caller's leg (the incoming INVITE); None when tsps places the call
        /// itself (click-to-dial), whose legs all appear as `LegDialing`.
        caller_leg: Option<LegId>,
    },
    /// A user's feature server decided how to handle the call, and why.
    Decided {
        user: UserId,
        contact: Option<String>,
        reasons: Vec<String>,
        /// The user has an attendant the call may be sent to.
        attendant: bool,
    },
    /// The user overrode the handling of the ringing call.
    Overridden {
        action: String,
    },
    /// An outgoing leg was created toward a device or trunk.
    LegDialing {
        leg: LegId,
        target: String,
        /// Which side of the call the leg is on (callee for an ordinary call).
        side: Party,
        /// The user whose device the leg rings (None for outside numbers).
        user: Option<UserId>,
        device: Option<DeviceId>,
    },
    /// A leg left the call before the call ended (failed, cancelled, lost the race to
    /// answer, transferred away), with its final status when it had one.
    LegEnded {
        leg: LegId,
        code: Option<u16>,
    },
    /// An answered leg of another call joined this one (consultative transfer): it
    /// takes `side`, whose party is now `number`.
    LegJoined {
        leg: LegId,
        side: Party,
        user: Option<UserId>,
        device: Option<DeviceId>,
        number: String,
        from_call: CallId,
    },
    /// The party on `side` is now `number` (a blind transfer, a forward, a redirect):
    /// who the users on the other side are talking, or about to talk, to.
    PartyChanged {
        side: Party,
        number: String,
        user: Option<UserId>,
    },
    /// A callee leg is ringing (180/183).
    Ringing {
        leg: LegId,
    },
    Answered {
        leg: LegId,
    },
    /// A re-INVITE changed the media (hold, resume).
    MediaChanged {
        by: Party,
        held: bool,
    },
    /// The call became a conference, or its parties changed: every live party is
    /// mixed on tsps's bridge. `host` made it (added the others) and ends it by leaving.
    Conference {
        host: UserId,
        parties: Vec<ConferenceParty>,
    },
    Ended {
        outcome: CallOutcome,
        hangup_by: Option<Party>,
    },
}

/// One party of a conference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConferenceParty {
    pub leg: LegId,
    /// The user whose device the leg reaches (None for outside numbers).
    pub user: Option<UserId>,
    pub device: Option<DeviceId>,
    /// The number (extension or E.164) shown for the party.
    pub number: String,
    pub name: Option<String>,
}

/// A device's registration state changed (registered, refreshed contacts, expired).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceEvent {
    pub tenant: TenantId,
    pub user: UserId,
    pub device: DeviceId,
    /// Live contacts the device has registered now (0 = unregistered).
    pub contacts: usize,
    pub at: DateTime<Utc>,
}

/// A user's status changed: set by the user, or the automatic hook state (idle,
/// ringing, busy on a call).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusEvent {
    pub tenant: TenantId,
    pub user: UserId,
    /// What the user set (available, away, ...).
    pub presence: crate::feature::Presence,
    /// Hook state from the user's calls: idle, ringing, busy.
    pub hook: UserStatus,
    /// A phone of the user is registered (external phones do not count).
    #[serde(default = "yes")]
    pub registered: bool,
    /// Do not disturb is on in the user's profile.
    #[serde(default)]
    pub dnd: bool,
    pub at: DateTime<Utc>,
}

/// Ordered: a user busy on one node and ringing on another is busy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Idle,
    Ringing,
    Busy,
}

/// Identifies one instant message (clients drop a message they already show).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub Uuid);

impl MessageId {
    /// A fresh, time-ordered identifier (UUID v7).
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
    pub const fn for_test(n: u128) -> Self {
        Self(Uuid::from_u128(n))
    }
}

impl Default for MessageId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({})", self.0)
    }
}

/// One instant message from a user to another user of the same tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageEvent {
    pub id: MessageId,
    pub tenant: TenantId,
    pub from: UserId,
    pub from_extension: String,
    pub from_name: String,
    pub to: UserId,
    pub to_extension: String,
    pub text: String,
    /// The call the message is about (the chat of a line, a rejected call).
    pub call: Option<CallId>,
    pub at: DateTime<Utc>,
    /// Sent from this node: its SIP layer sends the MESSAGEs. Another node's message
    /// (bridged by the cluster) only feeds the streams here, so phones get it once.
    #[serde(skip)]
    pub local: bool,
}

/// What a node of an older version did not send: assume reachable.
fn yes() -> bool {
    true
}

/// Everything the bus carries. Serialized (between nodes) with a `type` tag:
/// `{"type":"call","call":…,"event":"ringing",…}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Call(CallEvent),
    Device(DeviceEvent),
    Status(StatusEvent),
    /// An instant message between two users of a tenant (`presence::message`).
    Message(MessageEvent),
}

impl Event {
    pub fn tenant(&self) -> TenantId {
        match self {
            Event::Call(e) => e.tenant,
            Event::Device(e) => e.tenant,
            Event::Status(e) => e.tenant,
            Event::Message(e) => e.tenant,
        }
    }
}

/// Broadcast bus. Slow subscribers lose the oldest events (and are told so by
/// `RecvError::Lagged`) rather than slowing calls down.
///
/// Two channels: the bus proper, which every consumer on this node follows, and the
/// outbound channel toward the other nodes (followed by the cluster bridge only, when
/// there is one). Without a bridge the outbound channel has no receiver and costs
/// nothing.
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<Event>>,
    outbound: broadcast::Sender<Arc<Event>>,
}

impl EventBus {
    /// `capacity` bounds how far a subscriber may fall behind.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity);
        let (outbound, _) = broadcast::channel(capacity);
        Self { tx, outbound }
    }

    /// Something happened on this node: for the consumers here and the other nodes.
    pub fn publish(&self, event: Event) {
        let event = Arc::new(event);
        // No subscribers is normal (nothing is watching): not an error.
        if self.outbound.receiver_count() > 0 {
            let _ = self.outbound.send(event.clone());
        }
        let _ = self.tx.send(event);
    }

    /// For the consumers on this node only: an event another node reported, or a
    /// state this node derived from other nodes' reports (not to be sent back).
    pub fn publish_here(&self, event: Event) {
        let _ = self.tx.send(Arc::new(event));
    }

    /// For the other nodes only: this node's own part of a state whose combined value
    /// the consumers here get by [`EventBus::publish_here`] (a user's hook state).
    pub fn announce(&self, event: Event) {
        if self.outbound.receiver_count() > 0 {
            let _ = self.outbound.send(Arc::new(event));
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }

    /// What this node publishes for the other nodes (the cluster bridge reads it).
    pub fn subscribe_outbound(&self) -> broadcast::Receiver<Arc<Event>> {
        self.outbound.subscribe()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(4096)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feature::Presence;

    fn status(hook: UserStatus) -> Event {
        Event::Status(StatusEvent {
            tenant: TenantId::for_test(1),
            user: UserId::for_test(2),
            presence: Presence::Available,
            hook,
            registered: true,
            dnd: false,
            at: Utc::now(),
        })
    }

    #[test]
    fn outbound_carries_this_nodes_events_only() {
        let bus = EventBus::new(16);
        let mut here = bus.subscribe();
        let mut out = bus.subscribe_outbound();
        bus.publish(status(UserStatus::Ringing));
        bus.publish_here(status(UserStatus::Busy));
        bus.announce(status(UserStatus::Idle));
        let hooks = |rx: &mut broadcast::Receiver<Arc<Event>>| {
            let mut v = Vec::new();
            while let Ok(e) = rx.try_recv() {
                if let Event::Status(s) = &*e {
                    v.push(s.hook);
                }
            }
            v
        };
        assert_eq!(hooks(&mut here), [UserStatus::Ringing, UserStatus::Busy]);
        assert_eq!(hooks(&mut out), [UserStatus::Ringing, UserStatus::Idle]);
    }
}
