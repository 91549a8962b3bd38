//! The in-process event bus. Every call state change is published here; the portal,
//! presence and CTI subscribe. Across nodes the bus is bridged to Redis (later).

use crate::ids::{CallId, LegId, TenantId, UserId};
use crate::model::{CallDirection, CallOutcome, Party};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::broadcast;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CallEvent {
    pub call: CallId,
    pub tenant: TenantId,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub kind: CallEventKind,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum CallEventKind {
    Started {
        direction: CallDirection,
        caller: String,
        callee: String,
        caller_user: Option<UserId>,
        callee_user: Option<UserId>,
    },
    /// A user's feature server decided how to handle the call, and why.
    Decided {
        user: UserId,
        contact: Option<String>,
        reasons: Vec<String>,
    },
    /// The user overrode the handling of the ringing call.
    Overridden {
        action: String,
    },
    /// An outgoing leg was created toward a device or trunk.
    LegDialing {
        leg: LegId,
        target: String,
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
    Ended {
        outcome: CallOutcome,
        hangup_by: Option<Party>,
    },
}

/// Broadcast bus. Slow subscribers lose the oldest events (and are told so by
/// `RecvError::Lagged`) rather than slowing calls down.
#[derive(Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<CallEvent>>,
}

impl EventBus {
    /// `capacity` bounds how far a subscriber may fall behind.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity);
        Self { tx }
    }

    pub fn publish(&self, event: CallEvent) {
        // No subscribers is normal (nothing is watching): not an error.
        let _ = self.tx.send(Arc::new(event));
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<CallEvent>> {
        self.tx.subscribe()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(4096)
    }
}
