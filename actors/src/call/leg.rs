//! The legs of a call and how the anchor leg is connected: plain state the core keeps
//! per leg.

use super::io::ReplyId;
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
