//! The call core's vocabulary: what goes into [`CallCore::handle`] and what comes out.
//! The shell ([`super::actor`]) turns messages, timer firings and the answers of other
//! actors into [`Input`]s, and carries out every [`Output`] in order.
//!
//! [`CallCore::handle`]: super::call_core::CallCore::handle

use super::api::{ControlAction, ControlError, LegHandOff, OverrideAction, OverrideError};
use crate::directory::Directory;
use crate::events::Event;
use crate::ids::{CallId, LegId, UserId};
use crate::model::{Binding, CallRecord};
use crate::ports::{Body, DialTarget, LegCommand, LegEvent, PartyInfo};
use crate::tenant::{Admission, CallOrigin};
use crate::user::{CallPhase, Offer};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// The moment an input is handled: the wall-clock time (the platform's `Clock`) and the
/// provisioned directory as of now.
#[derive(Clone)]
pub struct Now {
    pub at: DateTime<Utc>,
    pub directory: Arc<Directory>,
}

/// Names a request whose answer the shell holds (a control command, an override, a
/// hand-over): the core answers it with [`Output::Reply`], at once or later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReplyId(pub u64);

/// The call's timers. At most one of each at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// The current ringing step's time (or the ring timeout).
    Ring,
    /// A conference member's re-INVITE is tried again after 491 (glare).
    Glare(LegId),
}

/// What the tenant said about the call (or why it could not).
#[derive(Debug)]
pub enum Admitted {
    Admission(Admission),
    /// No tenant actor: the tenant is gone.
    NoTenant,
    /// The tenant actor did not answer.
    Failed,
}

/// What a user's feature server said about the call offered to it.
#[derive(Debug)]
pub enum Offered {
    Offer(Box<Offer>),
    /// No user actor: the user is gone.
    NoUser,
    /// The user actor did not answer.
    Failed,
}

#[derive(Debug)]
pub enum Input {
    /// The actor started: route the call (or ring the device of a click-to-dial).
    Start,
    /// An event of one of the call's legs, from the SIP side.
    Leg(LegEvent),
    Admitted(Admitted),
    Offered {
        user: UserId,
        offer: Offered,
    },
    /// The contacts of `user`, asked for while ringing step `step`; None when the
    /// user has no actor.
    Bindings {
        step: u32,
        user: UserId,
        callee: PartyInfo,
        bindings: Option<Vec<Binding>>,
    },
    Timer(Timer),
    /// Third-party call control. `other_live`: the call a join or conference names is
    /// a live call of the tenant (the shell looked it up).
    Control {
        reply: ReplyId,
        user: UserId,
        action: ControlAction,
        other_live: bool,
    },
    Override {
        reply: ReplyId,
        action: OverrideAction,
    },
    /// Another call asks for `user`'s other party (consultative transfer, conference).
    HandOver {
        reply: ReplyId,
        user: UserId,
        into: CallId,
    },
    /// The answer to our [`Output::AskHandOver`].
    HandedOver(Result<LegHandOff, ControlError>),
    /// The actor is stopping: end whatever is still up.
    Stop,
}

/// One leg to dial: a [`crate::ports::Dial`] without the address its events go to
/// (the shell's).
#[derive(Clone, Debug)]
pub struct DialOut {
    pub leg: LegId,
    pub target: DialTarget,
    pub caller: PartyInfo,
    pub callee: PartyInfo,
    pub body: Option<Body>,
}

#[derive(Debug)]
pub enum Reply {
    Control(Result<(), ControlError>),
    Override(Result<(), OverrideError>),
    HandOver(Result<Box<LegHandOff>, ControlError>),
}

#[derive(Debug)]
pub enum Output {
    /// A command to the SIP side, on the leg's own shard.
    Leg(LegCommand),
    Dial(Box<DialOut>),
    /// The leg is handed to the call that asked for it ([`Input::HandOver`]): its
    /// events go there from now on.
    HandOverLeg(LegId),
    SetTimer(Timer, Duration),
    CancelTimer(Timer),
    Publish(Event),
    /// Ask the tenant where the call goes; answered by [`Input::Admitted`]. The call
    /// waits for the answer (nothing else is handled meanwhile).
    Admit(CallOrigin),
    /// Offer the call to `user`'s feature server; answered by [`Input::Offered`]. The
    /// call waits for the answer.
    Offer {
        user: UserId,
        msg: crate::user::OfferCall,
    },
    /// Ask `user` for its contacts; answered by [`Input::Bindings`].
    GetBindings {
        user: UserId,
        step: u32,
        callee: PartyInfo,
    },
    /// Ask the call `with` for `user`'s other party; answered by [`Input::HandedOver`].
    AskHandOver {
        with: CallId,
        user: UserId,
    },
    /// The user's hook state for this call.
    UserPhase {
        user: UserId,
        phase: Option<CallPhase>,
    },
    Reply(ReplyId, Reply),
    /// Handle this event again after the inputs already waiting (a stashed event of a
    /// leg handed over).
    Requeue(LegEvent),
    /// The call record, to persist.
    Record(Box<CallRecord>),
    /// The call is over: out of the registry of live calls.
    Ended,
    /// Tell the tenant (its count of calls) that the call is over.
    TenantCallEnded,
    /// Stop the actor.
    Stop,
}
