//! The legs of a call and how the anchor leg is connected: plain state the core keeps
//! per leg.

use super::io::ReplyId;
use super::members::Conference;
use crate::ids::{DeviceId, LegId, UserId};
use crate::model::{LegRecord, Party};
use crate::ports::{Body, DialTarget};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LegState {
    /// An outgoing INVITE without a response yet, or an incoming one not answered.
    Dialing,
    Early,
    Answered,
    Done,
}

/// How the anchor leg is connected to the leg that answers on the other side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AnchorKind {
    /// An incoming INVITE not answered yet: progress is relayed, the answer is its 200.
    Incoming,
    /// A leg that answered our INVITE without offer with its own offer, and waits for
    /// the answer in our ACK (click-to-dial).
    AwaitingAck,
    /// An established dialog: a new party is connected to it with a re-INVITE.
    Established,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Anchor {
    pub(super) leg: LegId,
    pub(super) side: Party,
    pub(super) kind: AnchorKind,
}

/// One leg of the call: the incoming one, or one dialled by tsps.
pub(super) struct Leg {
    pub(super) state: LegState,
    pub(super) record: LegRecord,
    /// tsps is the UAS of the leg's initial INVITE.
    pub(super) incoming: bool,
    pub(super) ringing_published: bool,
    /// The user whose device the leg reaches (None for outside numbers).
    pub(super) user: Option<UserId>,
    /// The ringing step the leg belongs to.
    pub(super) step: u32,
    /// The last session description this leg's far end sent (offer or answer).
    pub(super) sdp: Option<Body>,
    /// A 2xx from this leg waits for our ACK.
    pub(super) needs_ack: bool,
    /// The user's device (or external phone) the leg rings, when known.
    pub(super) device: Option<DeviceId>,
    /// Remote answer: once the device rings, tell it to answer (NOTIFY `Event: talk`).
    pub(super) talk: bool,
}

/// One leg to start on the dialled side.
pub(super) struct Ring {
    pub(super) target: DialTarget,
    pub(super) user: Option<UserId>,
    pub(super) device: Option<DeviceId>,
}

impl Ring {
    /// The device a contact belongs to is known from its binding.
    pub(super) fn to(target: DialTarget, user: Option<UserId>) -> Self {
        let device = match &target {
            DialTarget::Contact(b) => Some(b.device_id),
            _ => None,
        };
        Ring {
            target,
            user,
            device,
        }
    }
}

/// A re-INVITE that tsps itself sent, waiting for its answer.
pub(super) enum OwnReInvite {
    /// Hold or resume on behalf of `by`'s side: the other party gets the user's SDP
    /// with a new direction. `reply` answers the user once the other party answered.
    Media {
        leg: LegId,
        by: Party,
        held: bool,
        reply: ReplyId,
    },
    /// The remaining party of a transfer gets the new party's offer; the answer goes to
    /// the new party in our ACK (RFC 3725 §5, flow I applied to a re-INVITE).
    Connect { anchor: LegId, new: LegId },
    /// Consultative transfer: the party that joined from another call gets a re-INVITE
    /// without an offer; its offer then goes to `then` as in `Connect` (RFC 3725 §5).
    Fetch { leg: LegId, then: LegId },
}

impl OwnReInvite {
    pub(super) fn leg(&self) -> LegId {
        match self {
            OwnReInvite::Media { leg, .. } | OwnReInvite::Fetch { leg, .. } => *leg,
            OwnReInvite::Connect { anchor, .. } => *anchor,
        }
    }
}

/// How the call's legs are connected: with the [`super::call_core::Phase`], the call's
/// state. Each variant holds what exists in it, so a connected call without an anchor,
/// or a conference with a two-sided connection, cannot be written down.
pub(super) enum Sides {
    /// Click-to-dial before the user's device answered: nothing anchors the call.
    Open,
    /// The anchor leg waits while the other side is dialled.
    Anchored(Anchor),
    /// The anchor and the dialled leg that answered are connected.
    Connected { anchor: Anchor, answered: LegId },
    /// Every live leg is a member of the bridge (the two-sided model is off).
    Conference(Conference),
}

impl Sides {
    pub(super) fn anchor(&self) -> Option<Anchor> {
        match self {
            Sides::Anchored(a) | Sides::Connected { anchor: a, .. } => Some(*a),
            Sides::Open | Sides::Conference(_) => None,
        }
    }

    pub(super) fn anchor_mut(&mut self) -> Option<&mut Anchor> {
        match self {
            Sides::Anchored(a) | Sides::Connected { anchor: a, .. } => Some(a),
            Sides::Open | Sides::Conference(_) => None,
        }
    }

    /// The dialled leg connected to the anchor.
    pub(super) fn answered(&self) -> Option<LegId> {
        match self {
            Sides::Connected { answered, .. } => Some(*answered),
            _ => None,
        }
    }

    pub(super) fn conference(&self) -> Option<&Conference> {
        match self {
            Sides::Conference(c) => Some(c),
            _ => None,
        }
    }

    pub(super) fn conference_mut(&mut self) -> Option<&mut Conference> {
        match self {
            Sides::Conference(c) => Some(c),
            _ => None,
        }
    }
}

/// The re-INVITE under way on a connected call: one at a time, ours included (RFC 3261
/// §14.2: another one meanwhile gets 491).
pub(super) enum ReInvite {
    Idle,
    /// One leg's re-INVITE is relayed to the other; the answer goes back to `from`.
    Relayed {
        from: LegId,
    },
    /// tsps's own re-INVITE waits for its answer.
    Own(OwnReInvite),
}

impl ReInvite {
    pub(super) fn is_idle(&self) -> bool {
        matches!(self, ReInvite::Idle)
    }

    /// The leg our own re-INVITE went to.
    pub(super) fn own_leg(&self) -> Option<LegId> {
        match self {
            ReInvite::Own(o) => Some(o.leg()),
            _ => None,
        }
    }

    /// Our own re-INVITE, now answered (a relayed one stays).
    pub(super) fn take_own(&mut self) -> Option<OwnReInvite> {
        match std::mem::replace(self, ReInvite::Idle) {
            ReInvite::Own(o) => Some(o),
            other => {
                *self = other;
                None
            }
        }
    }

    /// The leg whose relayed re-INVITE was answered (our own one stays).
    pub(super) fn take_relayed(&mut self) -> Option<LegId> {
        match self {
            ReInvite::Relayed { from } => {
                let from = *from;
                *self = ReInvite::Idle;
                Some(from)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_reinvite_at_a_time_and_each_kind_is_taken_by_its_own_answer() {
        let (a, b) = (LegId::for_test(1), LegId::for_test(2));
        let mut r = ReInvite::Relayed { from: a };
        assert!(!r.is_idle());
        assert!(r.take_own().is_none(), "a relayed re-INVITE is not ours");
        assert_eq!(r.take_relayed(), Some(a));
        assert!(r.is_idle());
        r = ReInvite::Own(OwnReInvite::Connect { anchor: b, new: a });
        assert_eq!(r.own_leg(), Some(b));
        assert_eq!(r.take_relayed(), None, "ours is not relayed");
        assert!(matches!(r.take_own(), Some(OwnReInvite::Connect { .. })));
        assert!(r.is_idle());
    }

    #[test]
    fn only_anchored_and_connected_calls_have_an_anchor() {
        let a = Anchor {
            leg: LegId::for_test(1),
            side: Party::Caller,
            kind: AnchorKind::Incoming,
        };
        assert!(Sides::Open.anchor().is_none());
        assert_eq!(Sides::Anchored(a).anchor().map(|a| a.leg), Some(a.leg));
        assert_eq!(Sides::Anchored(a).answered(), None);
        let connected = Sides::Connected {
            anchor: a,
            answered: LegId::for_test(2),
        };
        assert_eq!(connected.answered(), Some(LegId::for_test(2)));
        assert!(connected.conference().is_none());
    }
}
