//! The call core: one call's state machine over its legs, sans-IO.
//!
//! [`CallCore::handle`] takes the moment ([`Now`]: time and directory) and one
//! [`Input`] and returns the [`Output`]s to carry out, in order; it owns no actor,
//! socket, task or clock. The actix shell ([`super::actor::CallActor`]) feeds it. The
//! one port it calls itself is [`Media`] (a conference bridge answers at once).
//!
//! ```text
//!                  ┌───────────── blind transfer: one side is dialled again ──┐
//!                  ▼                                                          │
//! Routing ──admitted──▶ Ringing ──a dialled leg answers──▶ Answered ──BYE either side──▶ Ended
//!    │                    │ all dialled legs fail / timeout / anchor leaves               ▲
//!    └──rejected──────────┴───────────────────────────────────────────────────────────────┘
//! ```
//! Click-to-dial starts in Ringing with no anchor: the user's device is dialled first
//! (caller side), and once it answers it anchors the call (back to Routing) and the
//! destination is routed as if the device had dialled it. A conference is Answered
//! with every live leg a member of the bridge (`conference.rs`).
//!
//! The state is explicit: [`Phase`] above, and how the legs are connected
//! (`leg::Sides`: open, anchored, connected, conference), the re-INVITE under way
//! (`leg::ReInvite`: idle, relayed, our own) and a hand-over awaited from another call
//! ([`HandOverWait`]); each holds only what exists in it.
//!
//! The parts, one file each: `leg.rs` the legs, `legs.rs` their events and the
//! re-INVITE/491 relay, `ringing.rs` routing and the execution of the program's
//! actions (`program.rs` is the seam: what the call does next), `control.rs`
//! third-party call control and transfers, `members.rs` and `conference.rs` the
//! bridge's members, `record.rs` the end of the call and its record.

use super::io::{Input, Now, Output, Reply, ReplyId, Timer};
use super::leg::{Anchor, AnchorKind, Leg, LegState, ReInvite, Sides};
use super::program::CallProgram;
use super::setup::{CallStart, DeviceReach};
use crate::events::{CallEvent, CallEventKind, Event};
use crate::feature::Target;
use crate::ids::{CallId, LegId, TenantId, UserId};
use crate::model::{Binding, CallDirection, CallOutcome, LegRecord, Party};
use crate::ports::{Body, LegCommand, LegEvent, Media, PartyInfo};
use crate::tenant::CallOrigin;
use crate::user::CallPhase;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// The call's state. The legs and the anchor say more (see the module diagram).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Asking the tenant where the call goes (or a feature server how).
    Routing,
    /// Dialled legs ring.
    Ringing,
    /// Two legs connected, or a conference.
    Answered,
    Ended,
}

/// How many users a call may be forwarded through before it is refused as a loop.
pub(super) const MAX_FORWARDS: usize = 5;
/// How many 3xx redirects a call follows.
pub(super) const MAX_REDIRECTS: u8 = 3;

/// What the core is told of the platform's settings.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// How long callee legs may ring before the call fails.
    pub ring_timeout: Duration,
    /// The call's tenant is personal mode's upstream tenant.
    pub upstream: bool,
}

/// Who the call is between and how it began: the part of
/// [`super::setup::CallSetup`] the core needs.
pub struct CoreSetup {
    pub call: CallId,
    pub tenant: TenantId,
    pub start: CallStart,
    pub origin: CallOrigin,
    pub caller: PartyInfo,
    pub dialled: String,
}

/// A hand-over asked of another call: where it comes from, what to do with the leg,
/// whom to answer, and the events of the leg that arrived before it.
pub(super) struct HandOverWait {
    pub(super) with: CallId,
    pub(super) reply: ReplyId,
    pub(super) then: AfterHandOver,
    pub(super) stashed: Vec<LegEvent>,
}

/// The continuation of a hand-over asked of another call.
pub(super) enum AfterHandOver {
    /// Consultative transfer: the leg takes the place of `mine`.
    Join { user: UserId, mine: LegId },
    /// Conference: the leg joins (a bridge opened for a two-party call).
    Conference {
        user: UserId,
        mine: LegId,
        bridge: Option<Box<dyn crate::ports::Bridge>>,
    },
}

pub struct CallCore {
    pub(super) setup: CoreSetup,
    pub(super) config: CoreConfig,
    pub(super) media: Arc<dyn Media>,
    pub(super) program: Box<dyn CallProgram>,
    /// The moment the current input is handled at.
    pub(super) now: Now,
    pub(super) out: Vec<Output>,
    pub(super) phase: Phase,
    pub(super) direction: CallDirection,
    pub(super) caller_user: Option<UserId>,
    pub(super) callee_user: Option<UserId>,
    pub(super) callee_shown: String,
    /// Every leg of the call in the order it began (the call record keeps them all).
    pub(super) legs: Vec<Leg>,
    /// The incoming leg, when the call began with an INVITE.
    pub(super) caller_leg: Option<LegId>,
    /// How the legs are connected (anchor, answered leg, conference).
    pub(super) sides: Sides,
    /// Whom dialled legs show as the caller: the caller, or after a transfer the party
    /// that stays.
    pub(super) shown_caller: PartyInfo,
    /// The party on the caller side now (the caller, or who joined in its place).
    pub(super) caller_party: PartyInfo,
    /// A consultative transfer or conference waits for another call to hand over a
    /// leg.
    pub(super) hand_over: Option<HandOverWait>,
    pub(super) failures: Vec<u16>,
    pub(super) reinvite: ReInvite,
    /// The side that put the other on hold, if any.
    pub(super) held_by: Option<Party>,
    /// Added to the SDP origin version of every offer tsps writes itself (RFC 3264 §8).
    pub(super) sdp_bump: u64,
    pub(super) started_published: bool,
    /// The (caller, callee) numbers the published events last showed: a party change is
    /// published only when it changes them.
    pub(super) parties_shown: (String, String),
    pub(super) started_at: DateTime<Utc>,
    pub(super) answered_at: Option<DateTime<Utc>>,
    /// The step the ring timer is armed for.
    pub(super) ring_armed: Option<u32>,
    pub(super) step: u32,
    /// Dials of the current step still waiting for a target's contacts.
    pub(super) pending_dials: usize,
    /// The user whose devices `Target::Devices` means, and their contacts.
    pub(super) target_user: Option<UserId>,
    pub(super) target_bindings: Vec<Binding>,
    /// Users the call was offered to since the last transfer (forwarding loop guard).
    pub(super) visited: Vec<UserId>,
    /// Every user the call was offered to (their status is cleared at the end).
    pub(super) offered: Vec<UserId>,
    pub(super) callee_party: Option<PartyInfo>,
    pub(super) attendant: Option<Target>,
    /// The reasons of every decision taken for this call (for the call record).
    pub(super) decision: Vec<String>,
    pub(super) redirects: u8,
}

impl CallCore {
    pub fn new(
        setup: CoreSetup,
        config: CoreConfig,
        media: Arc<dyn Media>,
        program: Box<dyn CallProgram>,
        now: Now,
    ) -> Self {
        let at = now.at;
        let (direction, caller_user) = match &setup.origin {
            CallOrigin::User { user, .. } => (CallDirection::Internal, Some(*user)),
            CallOrigin::Trunk { .. } => (CallDirection::Inbound, None),
        };
        let mut legs = Vec::new();
        let (caller_leg, anchor) = match &setup.start {
            CallStart::Incoming { leg, target, offer } => {
                legs.push(Leg {
                    state: LegState::Dialing,
                    record: LegRecord {
                        id: *leg,
                        role: Party::Caller,
                        target: target.clone(),
                        started_at: at,
                        answered_at: None,
                        ended_at: None,
                        status_code: None,
                        user_id: caller_user,
                    },
                    incoming: true,
                    ringing_published: false,
                    user: caller_user,
                    step: 0,
                    sdp: offer.clone(),
                    needs_ack: false,
                    device: None,
                    talk: false,
                });
                let anchor = Anchor {
                    leg: *leg,
                    side: Party::Caller,
                    kind: AnchorKind::Incoming,
                };
                (Some(*leg), Some(anchor))
            }
            CallStart::ClickToDial { .. } => (None, None),
        };
        Self {
            callee_shown: setup.dialled.clone(),
            shown_caller: setup.caller.clone(),
            caller_party: setup.caller.clone(),
            hand_over: None,
            setup,
            config,
            media,
            program,
            now,
            out: Vec::new(),
            phase: Phase::Routing,
            direction,
            caller_user,
            callee_user: None,
            legs,
            caller_leg,
            sides: anchor.map_or(Sides::Open, Sides::Anchored),
            failures: Vec::new(),
            reinvite: ReInvite::Idle,
            held_by: None,
            sdp_bump: 0,
            started_published: false,
            parties_shown: (String::new(), String::new()),
            started_at: at,
            answered_at: None,
            ring_armed: None,
            step: 0,
            pending_dials: 0,
            target_user: None,
            target_bindings: Vec::new(),
            visited: Vec::new(),
            offered: Vec::new(),
            callee_party: None,
            attendant: None,
            decision: Vec::new(),
            redirects: 0,
        }
    }

    pub fn call(&self) -> CallId {
        self.setup.call
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn started_at(&self) -> DateTime<Utc> {
        self.started_at
    }

    /// One input, handled at `now`: what to do, in order.
    pub fn handle(&mut self, now: Now, input: Input) -> Vec<Output> {
        self.now = now;
        match input {
            Input::Start => self.start(),
            Input::Leg(ev) => self.on_leg_event(ev),
            Input::Admitted(a) => self.on_admitted(a),
            Input::Offered { user, offer } => self.on_offered(user, offer),
            Input::Bindings {
                step,
                user,
                callee,
                bindings,
            } => self.on_bindings(step, user, callee, bindings),
            Input::Timer(Timer::Ring) => self.ring_timer_fired(),
            Input::Timer(Timer::Glare(leg)) => self.glare_timer_fired(leg),
            Input::Control {
                reply,
                user,
                action,
                other_live,
            } => self.on_control(reply, user, action, other_live),
            Input::Override { reply, action } => {
                let res = self.apply_override(action);
                self.reply(reply, Reply::Override(res));
            }
            Input::HandOver { reply, user, into } => {
                let res = self.hand_over(user, into);
                self.reply(reply, Reply::HandOver(res.map(Box::new)));
            }
            Input::HandedOver(res) => self.handed_over(res),
            Input::Stop => self.stop(),
        }
        std::mem::take(&mut self.out)
    }

    /// The call begins: an incoming INVITE is routed; click-to-dial rings the user's
    /// device first.
    fn start(&mut self) {
        if let CallStart::ClickToDial { device, reach } = &mut self.setup.start {
            let device = *device;
            let reach = std::mem::replace(reach, DeviceReach::Contacts(Vec::new()));
            self.start_click_to_dial(device, reach);
            return;
        }
        self.admit();
    }

    /// An event of a leg (the shell's `Handler<LegEvent>`).
    fn on_leg_event(&mut self, msg: LegEvent) {
        if self.phase == Phase::Ended {
            return;
        }
        let unknown = self.leg(msg.leg).is_none();
        if let Some(wait) = self.hand_over.as_mut().filter(|_| unknown) {
            // The leg being handed over by the other call may speak before its hand-over
            // reaches us: its events wait for it.
            wait.stashed.push(msg);
            return;
        }
        if self.sides.conference().is_some() {
            return self.on_member(msg.leg, msg.kind);
        }
        match self.sides.anchor() {
            Some(a) if a.leg == msg.leg => self.on_anchor(a, msg.kind),
            _ => self.on_dialled(msg.leg, msg.kind),
        }
    }

    /// Whatever stops the actor: a call never ends silently; the legs are ended and
    /// the record is written.
    fn stop(&mut self) {
        if self.phase == Phase::Ended {
            return;
        }
        if self.sides.conference().is_some() {
            self.conference_hang_up_all();
            self.finish(CallOutcome::Answered, Some(Party::System));
        } else if let Some(b) = self.sides.answered() {
            self.hang_up(b);
            if let Some(a) = self.sides.anchor() {
                self.hang_up(a.leg);
            }
            self.finish(CallOutcome::Answered, Some(Party::System));
        } else {
            self.cancel_out_legs(None);
            self.reject_all(500, CallOutcome::Failed);
        }
    }

    pub(super) fn reply(&mut self, id: ReplyId, reply: Reply) {
        self.out.push(Output::Reply(id, reply));
    }

    pub(super) fn publish(&mut self, kind: CallEventKind) {
        self.out.push(Output::Publish(Event::Call(CallEvent {
            call: self.setup.call,
            tenant: self.setup.tenant,
            at: self.now.at,
            kind,
        })));
    }

    /// A leg's command (the shell sends it to the SIP shard that owns the leg).
    pub(super) fn send(&mut self, cmd: LegCommand) {
        self.out.push(Output::Leg(cmd));
    }

    pub(super) fn set_user_phase(&mut self, user: Option<UserId>, phase: Option<CallPhase>) {
        if let Some(user) = user {
            self.out.push(Output::UserPhase { user, phase });
        }
    }

    pub(super) fn set_timer(&mut self, timer: Timer, after: Duration) {
        self.out.push(Output::SetTimer(timer, after));
    }

    /// Cancels the ring timer, if armed.
    pub(super) fn cancel_ring_timer(&mut self) {
        if self.ring_armed.take().is_some() {
            self.out.push(Output::CancelTimer(Timer::Ring));
        }
    }

    pub(super) fn publish_started(&mut self) {
        if std::mem::replace(&mut self.started_published, true) {
            return;
        }
        self.parties_shown = (self.setup.caller.user.clone(), self.callee_shown.clone());
        self.publish(CallEventKind::Started {
            direction: self.direction,
            caller: self.setup.caller.user.clone(),
            callee: self.callee_shown.clone(),
            caller_user: self.caller_user,
            callee_user: self.callee_user,
            caller_leg: self.caller_leg,
        });
    }

    /// The call now goes to `number` on `side` (forward, redirect, blind transfer): the
    /// other side's lines name it from now on.
    pub(super) fn party_changed(&mut self, side: Party, number: String, user: Option<UserId>) {
        if !self.started_published {
            return;
        }
        let shown = match side {
            Party::Caller => &mut self.parties_shown.0,
            _ => &mut self.parties_shown.1,
        };
        if *shown == number {
            return;
        }
        shown.clone_from(&number);
        self.publish(CallEventKind::PartyChanged { side, number, user });
    }

    pub(super) fn leg(&self, leg: LegId) -> Option<&Leg> {
        self.legs.iter().find(|l| l.record.id == leg)
    }

    pub(super) fn leg_mut(&mut self, leg: LegId) -> Option<&mut Leg> {
        self.legs.iter_mut().find(|l| l.record.id == leg)
    }

    pub(super) fn side_of(&self, leg: LegId) -> Party {
        self.leg(leg)
            .map(|l| l.record.role)
            .unwrap_or(Party::System)
    }

    /// The side being dialled: opposite the anchor; the caller's own device first in a
    /// click-to-dial.
    pub(super) fn dialled_side(&self) -> Party {
        match self.sides.anchor() {
            Some(a) if a.side == Party::Caller => Party::Callee,
            Some(_) => Party::Caller,
            None => Party::Caller,
        }
    }

    /// The offer dialled legs get: the caller's offer; none after a transfer, where the
    /// new party makes the offer (it goes to the remaining party in a re-INVITE).
    pub(super) fn dial_offer(&self) -> Option<Body> {
        let a = self.sides.anchor()?;
        match a.kind {
            AnchorKind::Incoming | AnchorKind::AwaitingAck => self.leg(a.leg)?.sdp.clone(),
            AnchorKind::Established => None,
        }
    }

    /// ACKs a 2xx of `leg` (the answer rides on the ACK in a delayed offer).
    pub(super) fn ack(&mut self, leg: LegId, body: Option<Body>) {
        if let Some(l) = self.leg_mut(leg) {
            l.needs_ack = false;
            if body.is_some() {
                l.sdp = body.clone();
            }
        }
        self.send(LegCommand::Ack { leg, body });
    }

    /// Ends an established leg: its pending 2xx is ACKed first (RFC 3261 §15).
    pub(super) fn hang_up(&mut self, leg: LegId) {
        if self.leg(leg).is_some_and(|l| l.needs_ack) {
            self.ack(leg, None);
        }
        if let Some(l) = self.leg_mut(leg) {
            l.state = LegState::Done;
        }
        self.send(LegCommand::Hangup { leg });
    }

    pub(super) fn callee_party_or_dialled(&self) -> PartyInfo {
        self.callee_party.clone().unwrap_or_else(|| PartyInfo {
            user: self.setup.dialled.clone(),
            display_name: None,
            domain: self.setup.caller.domain.clone(),
        })
    }

    /// The user's extension, for the call record's decision notes.
    pub(super) fn extension_of(&self, user: UserId) -> String {
        self.now
            .directory
            .user(user)
            .map(|u| u.extension.clone())
            .unwrap_or_default()
    }
}
