//! What others may ask of a live call, and the handle they ask it through.
//!
//! The messages to a call (third-party call control, the per-call override, the
//! hand-over of a leg between two calls) and [`CallHandle`], the typed handle the
//! registry keeps of each live call. Plain types: this file imports nothing of the call
//! actor, so the registry (and the web and SIP edges) can name a call without depending
//! on the actor's module.

use crate::feature::Target;
use crate::ids::{CallId, DeviceId, LegId, UserId};
use crate::model::LegRecord;
use crate::ports::{Body, LegCommand, LegEvent, PartyInfo};
use actix::dev::{RecipientRequest, ToEnvelope};
use actix::prelude::*;

/// A command on behalf of `user`, who must take part in the call.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), ControlError>")]
pub struct Control {
    pub user: UserId,
    pub action: ControlAction,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlAction {
    /// Put the other party on hold; answered once the other party accepted.
    Hold,
    Resume,
    /// Hang up: BYE when answered, CANCEL while the user's call rings out, 603 for a
    /// call ringing to the user.
    Release,
    /// Blind transfer: the user leaves and the other party is connected to `target`
    /// (an extension or a number, routed like a forward).
    Transfer {
        target: String,
    },
    /// Keep ringing only this device of the user (the per-call override).
    AnswerOn(DeviceId),
    /// Send the call ringing to the user elsewhere (the per-call override).
    Forward(crate::feature::Target),
    /// Send the call ringing to the user to the user's attendant.
    Attendant,
    /// Consultative transfer: the other party of this call and the other party of the
    /// user's call `with` are connected; the user's two legs leave.
    Join {
        with: CallId,
    },
    /// Conference: the other party of the user's call `with` joins this call, and all
    /// its parties are mixed on tsps's bridge (see [`super::conference`]). On a
    /// conference the host adds another party the same way.
    Conference {
        with: CallId,
    },
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    /// No such live call in the tenant, or the user takes no part in it.
    #[error("no such call of this user")]
    NotFound,
    #[error("{0}")]
    WrongState(&'static str),
    #[error("the device has no registration")]
    UnknownDevice,
    /// Holds the target as dialled, clipped to [`MAX_DIALLED`] characters (see
    /// [`ControlError::bad_target`]): it is echoed to the user.
    #[error("no such extension or number: {0}")]
    BadTarget(String),
    #[error("a number or extension has at most {MAX_DIALLED} characters")]
    TargetTooLong,
    /// An outside number, but the tenant has no trunk to reach it.
    #[error("outside numbers cannot be called: this tenant has no trunk; ask your administrator")]
    NoTrunk,
    /// The SIP status stays in the call's decision log; the user reads what happened.
    #[error("the other phone refused the change")]
    Refused(u16),
    #[error("no conference bridge: {0}")]
    Media(crate::ports::MediaError),
}

/// The longest destination a user may dial or transfer to: an E.164 number has at most
/// 15 digits, and this leaves room for access codes and dial prefixes.
pub const MAX_DIALLED: usize = 32;

impl ControlError {
    /// The target is not an extension or number of the tenant; long input is clipped so
    /// the message stays readable.
    pub fn bad_target(target: &str) -> Self {
        let mut shown: String = target.chars().take(MAX_DIALLED).collect();
        if shown.len() < target.len() {
            shown.push('…');
        }
        ControlError::BadTarget(shown)
    }

    /// What a dialled destination must be before routing: not longer than
    /// [`MAX_DIALLED`].
    pub fn check_dialled(target: &str) -> Result<(), Self> {
        if target.chars().count() > MAX_DIALLED {
            return Err(ControlError::TargetTooLong);
        }
        Ok(())
    }
}

/// Consultative transfer, asked of the other call: hand over the user's other party.
/// On success this call has hung up the user's leg and ended; the returned leg's
/// events already go to `events`.
#[derive(Debug, Message)]
#[rtype(result = "Result<HandedLeg, ControlError>")]
pub struct HandOver {
    pub user: UserId,
    /// The call the leg joins.
    pub into: CallId,
    pub events: actix::Recipient<LegEvent>,
}

/// What the joining call needs to own a leg handed over by another call: the leg, and
/// the SIP shard its dialog lives on (it stays there).
#[derive(Debug)]
pub struct HandedLeg {
    pub(crate) sip: actix::Recipient<LegCommand>,
    pub(crate) leg: LegHandOff,
}

/// A leg handed over, as the call cores see it (no address).
#[derive(Clone, Debug)]
pub struct LegHandOff {
    pub(crate) leg: LegId,
    pub(crate) incoming: bool,
    pub(crate) user: Option<UserId>,
    pub(crate) device: Option<DeviceId>,
    pub(crate) sdp: Option<Body>,
    pub(crate) record: LegRecord,
    /// Who the party on the leg is, as shown to others.
    pub(crate) party: PartyInfo,
}

/// What the called user chose for a ringing call, overriding the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OverrideAction {
    /// Keep ringing only this device (ring it if it was not ringing).
    AnswerOn(crate::ids::DeviceId),
    Forward(Target),
    Reject,
    Attendant,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OverrideError {
    #[error("the call is not ringing")]
    NotRinging,
    #[error("the device has no registration")]
    UnknownDevice,
    #[error("no attendant is configured")]
    NoAttendant,
}

#[derive(Debug, Message)]
#[rtype(result = "Result<(), OverrideError>")]
pub struct Override(pub OverrideAction);

/// The registry's handle of a live call: one recipient per message a call takes.
/// Callers hold this, not the call actor's address.
#[derive(Clone)]
pub struct CallHandle {
    control: Recipient<Control>,
    override_: Recipient<Override>,
    hand_over: Recipient<HandOver>,
}

impl CallHandle {
    pub fn new<A>(addr: &Addr<A>) -> Self
    where
        A: Actor + Handler<Control> + Handler<Override> + Handler<HandOver>,
        A::Context: ToEnvelope<A, Control> + ToEnvelope<A, Override> + ToEnvelope<A, HandOver>,
    {
        Self {
            control: addr.clone().recipient(),
            override_: addr.clone().recipient(),
            hand_over: addr.clone().recipient(),
        }
    }

    /// Sends one of the call's messages; answered by the call.
    pub fn send<M>(&self, msg: M) -> RecipientRequest<M>
    where
        M: CallMessage,
        M::Result: Send,
    {
        M::recipient(self).send(msg)
    }
}

/// A message a live call takes through its [`CallHandle`].
pub trait CallMessage: Message + Send + Sized + 'static
where
    Self::Result: Send,
{
    fn recipient(h: &CallHandle) -> &Recipient<Self>;
}

impl CallMessage for Control {
    fn recipient(h: &CallHandle) -> &Recipient<Self> {
        &h.control
    }
}

impl CallMessage for Override {
    fn recipient(h: &CallHandle) -> &Recipient<Self> {
        &h.override_
    }
}

impl CallMessage for HandOver {
    fn recipient(h: &CallHandle) -> &Recipient<Self> {
        &h.hand_over
    }
}

#[cfg(test)]
mod error_tests {
    use super::*;

    #[test]
    fn a_bad_target_is_echoed_clipped() {
        let long = "9".repeat(300);
        let shown = ControlError::bad_target(&long).to_string();
        assert_eq!(
            shown,
            format!("no such extension or number: {}…", "9".repeat(MAX_DIALLED))
        );
        assert_eq!(
            ControlError::bad_target("4711").to_string(),
            "no such extension or number: 4711"
        );
    }

    #[test]
    fn a_refusal_reads_without_a_sip_code() {
        assert_eq!(
            ControlError::Refused(488).to_string(),
            "the other phone refused the change"
        );
    }
}
