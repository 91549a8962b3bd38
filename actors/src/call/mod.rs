//! The call actor: one per call. Runs the call's state machine over its legs.
//!
//! A call has two sides, caller and callee, each with at most one current leg. While
//! one side is being dialled (rung by the plan of a feature server), the other side's
//! leg is the call's *anchor*: the incoming INVITE of an ordinary call, the user's
//! device that answered a click-to-dial, or the party that stays after a transfer.
//!
//! ```text
//!                  ┌───────────── blind transfer: one side is dialled again ──┐
//!                  ▼                                                          │
//! Routing ──admitted──▶ Ringing ──a dialled leg answers──▶ Answered ──BYE either side──▶ Ended
//!    │                    │ all dialled legs fail / timeout / anchor leaves               ▲
//!    └──rejected──────────┴───────────────────────────────────────────────────────────────┘
//! ```
//! Click-to-dial starts in Ringing with no anchor: the user's device is dialled first
//! (caller side), and once it answers it anchors the call and the destination is routed
//! as if the device had dialled it.
//!
//! It never sees SIP: it receives [`LegEvent`]s and issues [`LegCommand`]s. When it
//! ends it writes the call detail record and publishes `Ended`. Commands from the API
//! (per-call override, third-party call control) are messages; see [`control`].

pub mod api;
mod conference;
mod control;
mod sdp;

pub use api::{
    CallHandle, CallMessage, Control, ControlAction, ControlError, HandOver, HandedLeg, Override,
    OverrideAction, OverrideError,
};
pub use sdp::sdp_is_hold;

use crate::events::{CallEvent, CallEventKind, Event};
use crate::feature::{Caller, Plan, RingStep, Target};
use crate::ids::{CallId, DeviceId, LegId, TenantId, UserId};
use crate::model::Binding;
use crate::model::{CallDirection, CallOutcome, CallRecord, LegRecord, Party};
use crate::platform::Platform;
use crate::ports::{
    Body, Dial, DialTarget, LegCommand, LegEvent, LegEventKind, PartyInfo, RedirectTarget,
};
use crate::tenant::{Admission, AdmitCall, CallOrigin, TenantCallEnded};
use crate::user::{CallPhase, CallPhaseChanged, GetBindings, OfferCall};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// Everything a call actor needs to start: created by the SIP layer for each
/// authenticated initial INVITE, or for a call tsps places itself (click-to-dial).
pub struct CallSetup {
    pub call: CallId,
    pub tenant: TenantId,
    pub start: CallStart,
    pub origin: CallOrigin,
    /// The caller as the callee should see it.
    pub caller: PartyInfo,
    /// The dialled extension, number or DID.
    pub dialled: String,
    /// Where leg commands go (the SIP shard that owns the call's legs).
    pub sip: Recipient<LegCommand>,
}

/// How a call begins.
#[derive(Clone, Debug)]
pub enum CallStart {
    /// An incoming INVITE (already answered 100 Trying by the SIP layer).
    Incoming {
        leg: LegId,
        /// Description of the caller leg for the CDR (device or trunk address).
        target: String,
        offer: Option<Body>,
    },
    /// Click-to-dial (RFC 3725 flow I): tsps first calls the user's device without an
    /// offer; the origin says whom the call is for.
    ClickToDial {
        device: DeviceId,
        reach: DeviceReach,
    },
}

/// How tsps reaches one of a user's devices.
#[derive(Clone, Debug)]
pub enum DeviceReach {
    /// A SIP device, at its registered contacts.
    Contacts(Vec<Binding>),
    /// An external phone (a mobile): this E.164 number, through the tenant's trunk.
    Number(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Routing,
    Ringing,
    Answered,
    Ended,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LegState {
    /// An outgoing INVITE without a response yet, or an incoming one not answered.
    Dialing,
    Early,
    Answered,
    Done,
}

/// How the anchor leg is connected to the leg that answers on the other side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AnchorKind {
    /// An incoming INVITE not answered yet: progress is relayed, the answer is its 200.
    Incoming,
    /// A leg that answered our INVITE without offer with its own offer, and waits for
    /// the answer in our ACK (click-to-dial).
    AwaitingAck,
    /// An established dialog: a new party is connected to it with a re-INVITE.
    Established,
}

#[derive(Clone, Copy, Debug)]
struct Anchor {
    leg: LegId,
    side: Party,
    kind: AnchorKind,
}

/// One leg of the call: the incoming one, or one dialled by tsps.
struct Leg {
    state: LegState,
    record: LegRecord,
    /// tsps is the UAS of the leg's initial INVITE.
    incoming: bool,
    ringing_published: bool,
    /// The user whose device the leg reaches (None for outside numbers).
    user: Option<UserId>,
    /// The ringing step the leg belongs to.
    step: u32,
    /// The last session description this leg's far end sent (offer or answer).
    sdp: Option<Body>,
    /// A 2xx from this leg waits for our ACK.
    needs_ack: bool,
    /// Where this leg's commands go when not to the call's own SIP shard: a leg that
    /// joined from another call stays on that call's shard.
    sip: Option<Recipient<LegCommand>>,
    /// The user's device (or external phone) the leg rings, when known.
    device: Option<DeviceId>,
    /// Remote answer: once the device rings, tell it to answer (NOTIFY `Event: talk`).
    talk: bool,
}

/// One leg to start on the dialled side.
struct Ring {
    target: DialTarget,
    user: Option<UserId>,
    device: Option<DeviceId>,
}

impl Ring {
    /// The device a contact belongs to is known from its binding.
    fn to(target: DialTarget, user: Option<UserId>) -> Self {
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
enum OwnReInvite {
    /// Hold or resume on behalf of `by`'s side: the other party gets the user's SDP
    /// with a new direction.
    Media {
        leg: LegId,
        by: Party,
        held: bool,
        reply: tokio::sync::oneshot::Sender<Result<(), ControlError>>,
    },
    /// The remaining party of a transfer gets the new party's offer; the answer goes to
    /// the new party in our ACK (RFC 3725 §5, flow I applied to a re-INVITE).
    Connect { anchor: LegId, new: LegId },
    /// Consultative transfer: the party that joined from another call gets a re-INVITE
    /// without an offer; its offer then goes to `then` as in `Connect` (RFC 3725 §5).
    Fetch { leg: LegId, then: LegId },
}

impl OwnReInvite {
    fn leg(&self) -> LegId {
        match self {
            OwnReInvite::Media { leg, .. } | OwnReInvite::Fetch { leg, .. } => *leg,
            OwnReInvite::Connect { anchor, .. } => *anchor,
        }
    }
}

/// How many users a call may be forwarded through before it is refused as a loop.
const MAX_FORWARDS: usize = 5;
/// How many 3xx redirects a call follows.
const MAX_REDIRECTS: u8 = 3;

pub struct CallActor {
    setup: CallSetup,
    platform: Arc<Platform>,
    phase: Phase,
    direction: CallDirection,
    caller_user: Option<UserId>,
    callee_user: Option<UserId>,
    callee_shown: String,
    /// Every leg of the call in the order it began (the call record keeps them all).
    legs: Vec<Leg>,
    /// The incoming leg, when the call began with an INVITE.
    caller_leg: Option<LegId>,
    anchor: Option<Anchor>,
    /// The dialled leg connected to the anchor.
    answered: Option<LegId>,
    /// Whom dialled legs show as the caller: the caller, or after a transfer the party
    /// that stays.
    shown_caller: PartyInfo,
    /// The party on the caller side now (the caller, or who joined in its place).
    caller_party: PartyInfo,
    /// A consultative transfer waits for the other call to hand over its leg; events
    /// of legs not known yet (the handed-over one) wait here meanwhile.
    joining: Option<CallId>,
    stashed: Vec<LegEvent>,
    failures: Vec<u16>,
    /// The leg whose re-INVITE is being relayed to the other side.
    reoffer_from: Option<LegId>,
    own_reinvite: Option<OwnReInvite>,
    /// The side that put the other on hold, if any.
    held_by: Option<Party>,
    /// Added to the SDP origin version of every offer tsps writes itself (RFC 3264 §8).
    sdp_bump: u64,
    started_published: bool,
    /// The (caller, callee) numbers the published events last showed: a party change is
    /// published only when it changes them.
    parties_shown: (String, String),
    started_at: DateTime<Utc>,
    answered_at: Option<DateTime<Utc>>,
    ring_timer: Option<SpawnHandle>,
    /// The plan being executed: steps still to ring and where to go on busy / no answer.
    steps: VecDeque<RingStep>,
    step: u32,
    /// Dials of the current step still waiting for a target's contacts.
    pending_dials: usize,
    on_busy: Option<Target>,
    on_no_answer: Option<Target>,
    /// The user whose devices `Target::Devices` means, and their contacts.
    target_user: Option<UserId>,
    target_bindings: Vec<Binding>,
    /// Users the call was offered to since the last transfer (forwarding loop guard).
    visited: Vec<UserId>,
    /// Every user the call was offered to (their status is cleared at the end).
    offered: Vec<UserId>,
    callee_party: Option<PartyInfo>,
    attendant: Option<Target>,
    /// The reasons of every decision taken for this call (for the call record).
    decision: Vec<String>,
    redirects: u8,
    /// The call is a conference: its members and the bridge that mixes them.
    conference: Option<conference::Conference>,
}

impl CallActor {
    pub fn new(setup: CallSetup, platform: Arc<Platform>) -> Self {
        let now = platform.services.clock.now();
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
                        started_at: now,
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
                    sip: None,
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
            joining: None,
            stashed: Vec::new(),
            setup,
            platform,
            phase: Phase::Routing,
            direction,
            caller_user,
            callee_user: None,
            legs,
            caller_leg,
            anchor,
            answered: None,
            failures: Vec::new(),
            reoffer_from: None,
            own_reinvite: None,
            held_by: None,
            sdp_bump: 0,
            started_published: false,
            parties_shown: (String::new(), String::new()),
            started_at: now,
            answered_at: None,
            ring_timer: None,
            steps: VecDeque::new(),
            step: 0,
            pending_dials: 0,
            on_busy: None,
            on_no_answer: None,
            target_user: None,
            target_bindings: Vec::new(),
            visited: Vec::new(),
            offered: Vec::new(),
            callee_party: None,
            attendant: None,
            decision: Vec::new(),
            redirects: 0,
            conference: None,
        }
    }

    fn publish(&self, kind: CallEventKind) {
        self.platform.services.bus.publish(Event::Call(CallEvent {
            call: self.setup.call,
            tenant: self.setup.tenant,
            at: self.platform.services.clock.now(),
            kind,
        }));
    }

    /// A leg's command goes to the SIP shard that owns the leg.
    fn send(&self, cmd: LegCommand) {
        match self.leg(cmd.leg()).and_then(|l| l.sip.as_ref()) {
            Some(sip) => sip.do_send(cmd),
            None => self.setup.sip.do_send(cmd),
        }
    }

    fn set_user_phase(&self, user: Option<UserId>, phase: Option<CallPhase>) {
        if let Some(addr) = user.and_then(|u| self.platform.registry.user(u)) {
            addr.do_send(CallPhaseChanged {
                call: self.setup.call,
                phase,
            });
        }
    }

    fn publish_started(&mut self) {
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
    fn party_changed(&mut self, side: Party, number: String, user: Option<UserId>) {
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

    fn leg(&self, leg: LegId) -> Option<&Leg> {
        self.legs.iter().find(|l| l.record.id == leg)
    }

    fn leg_mut(&mut self, leg: LegId) -> Option<&mut Leg> {
        self.legs.iter_mut().find(|l| l.record.id == leg)
    }

    fn side_of(&self, leg: LegId) -> Party {
        self.leg(leg)
            .map(|l| l.record.role)
            .unwrap_or(Party::System)
    }

    /// The side being dialled: opposite the anchor; the caller's own device first in a
    /// click-to-dial.
    fn dialled_side(&self) -> Party {
        match self.anchor {
            Some(a) if a.side == Party::Caller => Party::Callee,
            Some(_) => Party::Caller,
            None => Party::Caller,
        }
    }

    /// The offer dialled legs get: the caller's offer; none after a transfer, where the
    /// new party makes the offer (it goes to the remaining party in a re-INVITE).
    fn dial_offer(&self) -> Option<Body> {
        let a = self.anchor?;
        match a.kind {
            AnchorKind::Incoming | AnchorKind::AwaitingAck => self.leg(a.leg)?.sdp.clone(),
            AnchorKind::Established => None,
        }
    }

    /// ACKs a 2xx of `leg` (the answer rides on the ACK in a delayed offer).
    fn ack(&mut self, leg: LegId, body: Option<Body>) {
        if let Some(l) = self.leg_mut(leg) {
            l.needs_ack = false;
            if body.is_some() {
                l.sdp = body.clone();
            }
        }
        self.send(LegCommand::Ack { leg, body });
    }

    /// Ends an established leg: its pending 2xx is ACKed first (RFC 3261 §15).
    fn hang_up(&mut self, leg: LegId) {
        if self.leg(leg).is_some_and(|l| l.needs_ack) {
            self.ack(leg, None);
        }
        if let Some(l) = self.leg_mut(leg) {
            l.state = LegState::Done;
        }
        self.send(LegCommand::Hangup { leg });
    }

    fn on_admission(&mut self, admission: Admission, ctx: &mut Context<Self>) {
        match admission {
            Admission::Reject {
                code,
                outcome,
                reason,
            } => {
                self.decision.push(reason.to_string());
                self.publish_started();
                self.reject_all(code, outcome, ctx);
            }
            Admission::ToUser {
                user,
                direction,
                extension,
                display_name,
            } => {
                self.direction = direction;
                self.callee_user = Some(user);
                self.callee_party = Some(PartyInfo {
                    user: extension,
                    display_name: Some(display_name),
                    domain: self.setup.caller.domain.clone(),
                });
                self.publish_started();
                self.phase = Phase::Ringing;
                self.set_user_phase(self.caller_user, Some(CallPhase::Active));
                self.offer_to(user, ctx);
            }
            Admission::External { user, uri } => {
                self.callee_user = Some(user);
                self.publish_started();
                self.phase = Phase::Ringing;
                self.set_user_phase(self.caller_user, Some(CallPhase::Active));
                let reason = format!("tenant: the user's feature server is {uri}");
                self.decision.push(reason.clone());
                self.publish(CallEventKind::Decided {
                    user,
                    contact: None,
                    reasons: vec![reason],
                    attendant: false,
                });
                let callee = self.callee_party_or_dialled();
                let seconds = self.platform.services.config.ring_timeout;
                self.step += 1;
                self.arm_step_timer(seconds, ctx);
                self.dial(vec![Ring::to(DialTarget::Uri(uri), None)], &callee, ctx);
            }
            Admission::Outside { number, .. } => {
                self.direction = CallDirection::Outbound;
                self.callee_shown = number.clone();
                self.callee_party = Some(PartyInfo {
                    user: number.clone(),
                    display_name: None,
                    domain: self.setup.caller.domain.clone(),
                });
                self.publish_started();
                self.phase = Phase::Ringing;
                self.set_user_phase(self.caller_user, Some(CallPhase::Active));
                self.forward_to(Target::Number(number), ctx);
            }
        }
    }

    /// Asks the tenant where the dialled string goes (the mailbox waits for the answer).
    fn admit(&mut self, ctx: &mut Context<Self>) {
        let Some(tenant) = self.platform.registry.tenant(self.setup.tenant) else {
            self.publish_started();
            self.reject_all(404, CallOutcome::Unavailable, ctx);
            return;
        };
        tenant
            .send(AdmitCall {
                call: self.setup.call,
                origin: self.setup.origin.clone(),
            })
            .into_actor(self)
            .map(|res, act, ctx| match res {
                Ok(admission) => act.on_admission(admission, ctx),
                Err(_) => {
                    act.publish_started();
                    act.reject_all(503, CallOutcome::Failed, ctx);
                }
            })
            .wait(ctx);
    }

    /// Click-to-dial, first half: ring the user's device, showing the destination as
    /// the caller so that the phone displays whom it is calling. An external phone is
    /// rung through the tenant's trunk, and shown the destination's number.
    fn start_click_to_dial(
        &mut self,
        device: DeviceId,
        reach: DeviceReach,
        ctx: &mut Context<Self>,
    ) {
        let dir = self.platform.services.directory.current();
        let mut shown = self.setup.dialled.clone();
        match crate::routing::route_dialled(&dir, self.setup.tenant, &self.setup.dialled) {
            crate::routing::Route::User(u) => self.callee_user = Some(u),
            crate::routing::Route::Outside { number, .. } => {
                self.direction = CallDirection::Outbound;
                shown = number;
            }
            _ => self.direction = CallDirection::Outbound,
        }
        let destination = PartyInfo {
            user: shown,
            display_name: self
                .callee_user
                .and_then(|u| dir.user(u))
                .map(|u| u.display_name.clone()),
            domain: self.setup.caller.domain.clone(),
        };
        self.publish_started();
        self.phase = Phase::Ringing;
        self.set_user_phase(self.caller_user, Some(CallPhase::Active));
        let user = self.caller_user;
        let targets: Vec<Ring> = match reach {
            DeviceReach::Contacts(bindings) => bindings
                .into_iter()
                .map(|b| Ring::to(DialTarget::Contact(b), user))
                .collect(),
            DeviceReach::Number(number) => self
                .trunk_target(number)
                .map(|target| Ring {
                    target,
                    user,
                    device: Some(device),
                })
                .into_iter()
                .collect(),
        };
        if targets.is_empty() {
            self.reject_all(480, CallOutcome::Unavailable, ctx);
            return;
        }
        self.step += 1;
        let seconds = self.platform.services.config.ring_timeout;
        self.arm_step_timer(seconds, ctx);
        let me = self.setup.caller.clone();
        self.dial_with(targets, &destination, &me, ctx);
    }

    /// An outside number through the tenant's trunk (the first by name); None when the
    /// tenant has none.
    fn trunk_target(&self, number: String) -> Option<DialTarget> {
        let dir = self.platform.services.directory.current();
        let trunk = dir
            .trunks_of_tenant(self.setup.tenant)
            .min_by(|a, b| a.name.cmp(&b.name))?;
        Some(DialTarget::Trunk {
            trunk_id: trunk.id,
            number,
        })
    }

    /// Ends the current ringing step after `after`: its legs are cancelled and the plan
    /// moves on (next step, forward on no answer, or the end of the call).
    fn arm_step_timer(&mut self, after: Duration, ctx: &mut Context<Self>) {
        if let Some(t) = self.ring_timer.take() {
            ctx.cancel_future(t);
        }
        let step_no = self.step;
        self.ring_timer = Some(ctx.run_later(after, move |act, ctx| {
            act.ring_timer = None;
            if act.phase == Phase::Ringing && act.step == step_no {
                act.cancel_out_legs(None);
                act.next_step(ctx);
            }
        }));
    }

    /// A redirect into this tenant's own domain is routed like a dialled string (an
    /// extension or a number); anything else is dialled as a URI.
    fn follow_redirect(&mut self, t: RedirectTarget, ctx: &mut Context<Self>) {
        if let Some(t) = self.ring_timer.take() {
            ctx.cancel_future(t);
        }
        self.steps.clear();
        let dir = self.platform.services.directory.current();
        let own_domain = dir
            .tenant(self.setup.tenant)
            .is_some_and(|tn| tn.domain.eq_ignore_ascii_case(&t.host));
        if let (true, Some(user)) = (own_domain, t.user.as_deref()) {
            match crate::routing::route_dialled(&dir, self.setup.tenant, user) {
                crate::routing::Route::User(u) => {
                    self.offer_to(u, ctx);
                    return;
                }
                crate::routing::Route::Outside { number, .. } => {
                    self.forward_to(Target::Number(number), ctx);
                    return;
                }
                _ => {
                    self.reject_all(404, CallOutcome::Unavailable, ctx);
                    return;
                }
            }
        }
        let callee = self.callee_party_or_dialled();
        self.step += 1;
        let seconds = self.platform.services.config.ring_timeout;
        self.arm_step_timer(seconds, ctx);
        self.dial(vec![Ring::to(DialTarget::Uri(t.uri), None)], &callee, ctx);
    }

    fn callee_party_or_dialled(&self) -> PartyInfo {
        self.callee_party.clone().unwrap_or_else(|| PartyInfo {
            user: self.setup.dialled.clone(),
            display_name: None,
            domain: self.setup.caller.domain.clone(),
        })
    }

    /// The call reaches `user`'s feature server, which decides what happens.
    fn offer_to(&mut self, user: UserId, ctx: &mut Context<Self>) {
        if self.visited.contains(&user) || self.visited.len() >= MAX_FORWARDS {
            warn!(call = %self.setup.call, %user, "forwarding loop");
            self.reject_all(482, CallOutcome::Failed, ctx);
            return;
        }
        self.visited.push(user);
        self.offered.push(user);
        if let Some(ext) = self
            .platform
            .services
            .directory
            .current()
            .user(user)
            .map(|u| u.extension.clone())
        {
            self.party_changed(self.dialled_side(), ext, Some(user));
        }
        let Some(addr) = self.platform.registry.user(user) else {
            self.reject_all(480, CallOutcome::Unavailable, ctx);
            return;
        };
        let shown = &self.shown_caller.user;
        let caller = Caller {
            number: Some(shown.clone()).filter(|n| n != "anonymous"),
            anonymous: shown == "anonymous",
        };
        let msg = OfferCall {
            call: self.setup.call,
            caller,
            local_time: self.local_time(),
        };
        addr.send(msg)
            .into_actor(self)
            .map(move |res, act, ctx| {
                if act.phase != Phase::Ringing {
                    return; // the caller left while the user decided
                }
                match res {
                    Ok(offer) => {
                        let ext = act
                            .platform
                            .services
                            .directory
                            .current()
                            .user(user)
                            .map(|u| u.extension.clone())
                            .unwrap_or_default();
                        act.decision
                            .extend(offer.decision.reasons.iter().map(|r| format!("{ext}: {r}")));
                        act.publish(CallEventKind::Decided {
                            user,
                            contact: offer.contact.as_ref().map(|c| c.name.clone()),
                            reasons: offer.decision.reasons.clone(),
                            attendant: offer.attendant.is_some(),
                        });
                        act.target_user = Some(user);
                        act.target_bindings = offer.bindings;
                        act.attendant = offer.attendant;
                        act.execute(offer.decision.plan, ctx);
                    }
                    Err(_) => act.reject_all(500, CallOutcome::Failed, ctx),
                }
            })
            .wait(ctx);
    }

    /// Now in the tenant's time zone (UTC if the zone is unknown).
    fn local_time(&self) -> chrono::NaiveDateTime {
        let now = self.platform.services.clock.now();
        let dir = self.platform.services.directory.current();
        match dir
            .tenant(self.setup.tenant)
            .and_then(|t| t.time_zone.parse::<chrono_tz::Tz>().ok())
        {
            Some(tz) => now.with_timezone(&tz).naive_local(),
            None => now.naive_utc(),
        }
    }

    fn execute(&mut self, plan: Plan, ctx: &mut Context<Self>) {
        match plan {
            Plan::Reject { code } => {
                let outcome = match code {
                    486 => CallOutcome::Busy,
                    480 | 404 => CallOutcome::Unavailable,
                    _ => CallOutcome::Rejected,
                };
                self.reject_all(code, outcome, ctx);
            }
            Plan::RejectWithMessage { code, text } => {
                let (note, msg) = crate::presence::message::on_reject(
                    &self.platform.services.directory.current(),
                    self.setup.tenant,
                    self.setup.call,
                    self.target_user,
                    self.caller_user,
                    &self.shown_caller.user,
                    text,
                    self.platform.services.clock.now(),
                );
                if let Some(msg) = msg {
                    crate::presence::message::send(&self.platform.services.bus, msg);
                }
                self.decision.push(note);
                self.execute(Plan::Reject { code }, ctx);
            }
            Plan::Forward { target } => self.forward_to(target, ctx),
            Plan::Ring {
                steps,
                on_busy,
                on_no_answer,
            } => {
                self.steps = steps.into();
                self.on_busy = on_busy;
                self.on_no_answer = on_no_answer;
                self.next_step(ctx);
            }
        }
    }

    /// Sends the call on: another user's feature server, an outside number, or the
    /// current user's devices.
    fn forward_to(&mut self, target: Target, ctx: &mut Context<Self>) {
        self.on_busy = None;
        self.on_no_answer = None;
        match target {
            Target::Extension(x) => {
                let dir = self.platform.services.directory.current();
                match dir.user_by_extension(self.setup.tenant, &x) {
                    Some(u) => {
                        let id = u.id;
                        self.offer_to(id, ctx);
                    }
                    None => self.reject_all(404, CallOutcome::Unavailable, ctx),
                }
            }
            Target::Attendant => self.reject_all(480, CallOutcome::Unavailable, ctx),
            Target::Number(n) if self.redirects_upstream() => self.redirect_upstream(n, ctx),
            t @ (Target::Number(_) | Target::Devices) => {
                if let Target::Number(n) = &t {
                    self.party_changed(self.dialled_side(), n.clone(), None);
                }
                self.steps = VecDeque::from([RingStep {
                    targets: vec![t],
                    seconds: self.platform.services.config.ring_timeout.as_secs() as u32,
                }]);
                self.next_step(ctx);
            }
        }
    }

    /// Rings the next step of the plan; when none is left, forwards on no answer or
    /// ends the call.
    fn next_step(&mut self, ctx: &mut Context<Self>) {
        if let Some(t) = self.ring_timer.take() {
            ctx.cancel_future(t);
        }
        let Some(step) = self.steps.pop_front() else {
            if let Some(t) = self.on_no_answer.take() {
                self.forward_to(t, ctx);
                return;
            }
            let (code, outcome) =
                if self.failures.is_empty() || self.failures.iter().all(|c| *c == 487) {
                    (408, CallOutcome::NoAnswer)
                } else {
                    final_status(&self.failures)
                };
            self.reject_all(code, outcome, ctx);
            return;
        };
        self.step += 1;
        let callee = self.callee_party_or_dialled();
        let dir = self.platform.services.directory.current();
        let mut dials: Vec<Ring> = Vec::new();
        for t in &step.targets {
            match t {
                Target::Devices => dials.extend(
                    self.target_bindings
                        .iter()
                        .cloned()
                        .map(|b| Ring::to(DialTarget::Contact(b), self.target_user)),
                ),
                Target::Number(n) => match self.trunk_target(n.clone()) {
                    Some(target) => dials.push(Ring::to(target, None)),
                    None => self.failures.push(403),
                },
                Target::Extension(x) => match dir
                    .user_by_extension(self.setup.tenant, x)
                    .and_then(|u| self.platform.registry.user(u.id).map(|a| (u.id, a)))
                {
                    Some((uid, addr)) => {
                        self.pending_dials += 1;
                        let step_no = self.step;
                        let callee = callee.clone();
                        addr.send(GetBindings)
                            .into_actor(self)
                            .map(move |res, act, ctx| {
                                act.pending_dials = act.pending_dials.saturating_sub(1);
                                if act.phase != Phase::Ringing || act.step != step_no {
                                    return;
                                }
                                let targets: Vec<_> = res
                                    .unwrap_or_default()
                                    .into_iter()
                                    .map(|b| Ring::to(DialTarget::Contact(b), Some(uid)))
                                    .collect();
                                if targets.is_empty() {
                                    act.failures.push(480);
                                }
                                act.dial(targets, &callee, ctx);
                                act.check_step_done(ctx);
                            })
                            .spawn(ctx);
                    }
                    None => self.failures.push(404),
                },
                Target::Attendant => self.failures.push(480),
            }
        }
        let seconds = step
            .seconds
            .min(self.platform.services.config.ring_timeout.as_secs() as u32)
            .max(1);
        self.arm_step_timer(Duration::from_secs(seconds as u64), ctx);
        self.dial(dials, &callee, ctx);
        self.check_step_done(ctx);
    }

    fn dial(&mut self, targets: Vec<Ring>, callee: &PartyInfo, ctx: &mut Context<Self>) {
        let caller = self.shown_caller.clone();
        self.dial_with(targets, &caller, callee, ctx);
    }

    /// Starts one leg per target on the dialled side, showing `caller` in From and
    /// `callee` in To.
    fn dial_with(
        &mut self,
        targets: Vec<Ring>,
        caller: &PartyInfo,
        callee: &PartyInfo,
        ctx: &mut Context<Self>,
    ) {
        let now = self.platform.services.clock.now();
        let me = ctx.address().recipient();
        let side = self.dialled_side();
        let body = self.dial_offer();
        for Ring {
            target,
            user,
            device,
        } in targets
        {
            let leg = LegId::new();
            let description = target.describe();
            self.legs.push(Leg {
                state: LegState::Dialing,
                record: LegRecord {
                    id: leg,
                    role: side,
                    target: description.clone(),
                    started_at: now,
                    answered_at: None,
                    ended_at: None,
                    status_code: None,
                    user_id: user,
                },
                incoming: false,
                ringing_published: false,
                user,
                step: self.step,
                sdp: None,
                needs_ack: false,
                sip: None,
                device,
                talk: false,
            });
            self.publish(CallEventKind::LegDialing {
                leg,
                target: description,
                side,
                user,
                device,
            });
            self.send(LegCommand::Dial(Box::new(Dial {
                call: self.setup.call,
                leg,
                tenant: self.setup.tenant,
                target,
                caller: caller.clone(),
                callee: callee.clone(),
                body: body.clone(),
                events: me.clone(),
            })));
        }
    }

    /// When every leg of the current step has failed: busy everywhere goes to the busy
    /// target, anything else moves on to the next step.
    fn check_step_done(&mut self, ctx: &mut Context<Self>) {
        if self.phase != Phase::Ringing || self.pending_dials > 0 {
            return;
        }
        let step = self.step;
        let legs: Vec<&Leg> = self
            .legs
            .iter()
            .filter(|l| !l.incoming && l.step == step)
            .collect();
        if legs.iter().any(|l| l.state != LegState::Done) {
            return;
        }
        let codes: Vec<u16> = legs.iter().filter_map(|l| l.record.status_code).collect();
        let all_busy = !codes.is_empty() && codes.iter().all(|c| *c == 486 || *c == 600);
        if all_busy {
            if let Some(t) = self.on_busy.take() {
                if let Some(timer) = self.ring_timer.take() {
                    ctx.cancel_future(timer);
                }
                self.steps.clear();
                self.forward_to(t, ctx);
                return;
            }
        }
        if all_busy && self.steps.is_empty() && self.on_no_answer.is_none() {
            self.reject_all(486, CallOutcome::Busy, ctx);
            return;
        }
        self.next_step(ctx);
    }

    /// Cancels every dialled leg still ringing, except `keep`.
    fn cancel_out_legs(&mut self, keep: Option<LegId>) {
        let now = self.platform.services.clock.now();
        let mut cancels = Vec::new();
        for leg in &mut self.legs {
            if Some(leg.record.id) == keep || leg.incoming {
                continue;
            }
            if matches!(leg.state, LegState::Dialing | LegState::Early) {
                leg.state = LegState::Done;
                leg.record.ended_at = Some(now);
                leg.record.status_code = Some(487);
                cancels.push(leg.record.id);
            }
        }
        for leg in cancels {
            self.send(LegCommand::Cancel { leg });
            self.publish(CallEventKind::LegEnded {
                leg,
                code: Some(487),
            });
        }
    }

    /// Nobody (more) to ring: the anchor gets `code` and the call ends. A call that was
    /// answered before (the target of a transfer failed) stays answered in the record.
    fn reject_all(&mut self, code: u16, outcome: CallOutcome, ctx: &mut Context<Self>) {
        self.release_anchor(code);
        let (outcome, by) = if self.answered_at.is_some() {
            (CallOutcome::Answered, Some(Party::System))
        } else {
            let by = (outcome == CallOutcome::NoAnswer).then_some(Party::System);
            (outcome, by)
        };
        self.finish(outcome, by, ctx);
    }

    /// Ends the anchor leg before it was connected: a final status on an incoming
    /// INVITE, a BYE on a dialog.
    fn release_anchor(&mut self, code: u16) {
        let Some(a) = self.anchor else { return };
        match a.kind {
            AnchorKind::Incoming => {
                self.send(LegCommand::Reject { leg: a.leg, code });
                if let Some(l) = self.leg_mut(a.leg) {
                    l.state = LegState::Done;
                    l.record.status_code = Some(code);
                }
            }
            // RFC 3725 flow I: the device's offer gets no answer; ACK, then BYE.
            AnchorKind::AwaitingAck | AnchorKind::Established => self.hang_up(a.leg),
        }
    }

    /// Marks a live dialled leg as ended with this final status; false if it was
    /// unknown or already over (a late or repeated event).
    fn end_out_leg(&mut self, leg: LegId, code: u16) -> bool {
        let now = self.platform.services.clock.now();
        match self.leg_mut(leg) {
            Some(l) if l.state != LegState::Done => {
                l.state = LegState::Done;
                l.record.ended_at = Some(now);
                l.record.status_code = Some(code);
                self.publish(CallEventKind::LegEnded {
                    leg,
                    code: Some(code),
                });
                true
            }
            _ => false,
        }
    }

    fn on_anchor(&mut self, a: Anchor, kind: LegEventKind, ctx: &mut Context<Self>) {
        match kind {
            LegEventKind::Cancelled => {
                if let Some(l) = self.leg_mut(a.leg) {
                    l.record.status_code = Some(487);
                    l.state = LegState::Done;
                }
                self.cancel_out_legs(None);
                self.finish(CallOutcome::Cancelled, Some(a.side), ctx);
            }
            LegEventKind::Hangup | LegEventKind::Failed { .. } => {
                if let Some(l) = self.leg_mut(a.leg) {
                    l.state = LegState::Done;
                }
                if let Some(b) = self.answered {
                    self.hang_up(b);
                    self.finish(CallOutcome::Answered, Some(a.side), ctx);
                } else {
                    self.cancel_out_legs(None);
                    let outcome = if self.answered_at.is_some() {
                        CallOutcome::Answered
                    } else {
                        CallOutcome::Cancelled
                    };
                    self.finish(outcome, Some(a.side), ctx);
                }
            }
            kind @ (LegEventKind::Acked { .. }
            | LegEventKind::ReOffer { .. }
            | LegEventKind::ReAnswer { .. }) => self.in_dialog(a.leg, kind, ctx),
            LegEventKind::Progress { .. }
            | LegEventKind::Answered { .. }
            | LegEventKind::Redirected { .. } => {}
        }
    }

    fn on_dialled(&mut self, leg: LegId, kind: LegEventKind, ctx: &mut Context<Self>) {
        match kind {
            LegEventKind::Progress { code, body } => {
                if self.phase != Phase::Ringing {
                    return;
                }
                let Some(l) = self.leg_mut(leg) else { return };
                if l.state == LegState::Dialing {
                    l.state = LegState::Early;
                }
                let first = !l.ringing_published;
                l.ringing_published = true;
                let talk = std::mem::take(&mut l.talk);
                if first {
                    self.publish(CallEventKind::Ringing { leg });
                }
                if talk {
                    self.send(LegCommand::RemoteAnswer { leg });
                }
                // Only an unanswered INVITE can hear it ring; a dialog cannot.
                if let Some(a) = self.anchor.filter(|a| a.kind == AnchorKind::Incoming) {
                    self.send(LegCommand::Progress {
                        leg: a.leg,
                        code,
                        body,
                    });
                }
            }
            LegEventKind::Answered { body } => {
                let ringing = self.phase == Phase::Ringing;
                let Some(l) = self.leg_mut(leg) else { return };
                if l.incoming {
                    return;
                }
                if !ringing || l.state == LegState::Done {
                    // Lost the race (another leg answered or the caller left): end it.
                    l.state = LegState::Done;
                    self.send(LegCommand::Ack { leg, body: None });
                    self.send(LegCommand::Hangup { leg });
                    self.publish(CallEventKind::LegEnded { leg, code: None });
                    return;
                }
                l.needs_ack = true;
                if body.is_some() {
                    l.sdp = body.clone();
                }
                self.connect(leg, body, ctx);
            }
            LegEventKind::Failed { code } => {
                if !self.end_out_leg(leg, code) {
                    return;
                }
                if self.answered == Some(leg) {
                    // The dialog died after answer (e.g. no ACK): treat as hangup.
                    self.answered_leg_gone(leg, ctx);
                    return;
                }
                self.failures.push(code);
                self.check_step_done(ctx);
            }
            LegEventKind::Redirected { code, targets } => {
                if !self.end_out_leg(leg, code) {
                    return;
                }
                self.redirects += 1;
                match targets.into_iter().next() {
                    Some(t) if self.redirects <= MAX_REDIRECTS && self.phase == Phase::Ringing => {
                        self.decision.push(format!("redirected to {}", t.uri));
                        self.follow_redirect(t, ctx);
                    }
                    _ => {
                        self.failures.push(480);
                        self.check_step_done(ctx);
                    }
                }
            }
            LegEventKind::Hangup => {
                if self.answered == Some(leg) {
                    if let Some(l) = self.leg_mut(leg) {
                        l.state = LegState::Done;
                    }
                    self.answered_leg_gone(leg, ctx);
                }
            }
            kind @ (LegEventKind::Acked { .. }
            | LegEventKind::ReOffer { .. }
            | LegEventKind::ReAnswer { .. }) => self.in_dialog(leg, kind, ctx),
            LegEventKind::Cancelled => {}
        }
    }

    /// The connected dialled leg hung up: the anchor is hung up and the call ends.
    fn answered_leg_gone(&mut self, leg: LegId, ctx: &mut Context<Self>) {
        let by = self.side_of(leg);
        if let Some(a) = self.anchor {
            self.hang_up(a.leg);
        }
        self.finish(CallOutcome::Answered, Some(by), ctx);
    }

    /// A dialled leg answered (first wins): connect it to the anchor, in the way the
    /// anchor's state allows.
    fn connect(&mut self, leg: LegId, body: Option<Body>, ctx: &mut Context<Self>) {
        let now = self.platform.services.clock.now();
        let Some(l) = self.leg_mut(leg) else { return };
        l.state = LegState::Answered;
        l.record.answered_at = Some(now);
        l.record.status_code = Some(200);
        let answering_user = l.user;
        if let Some(t) = self.ring_timer.take() {
            ctx.cancel_future(t);
        }
        self.cancel_out_legs(Some(leg));
        let Some(a) = self.anchor else {
            // Click-to-dial: the user's device answered with its offer. It anchors the
            // call and waits for the answer in our ACK while the destination is routed
            // as if the device had dialled it (RFC 3725 flow I).
            self.anchor = Some(Anchor {
                leg,
                side: Party::Caller,
                kind: AnchorKind::AwaitingAck,
            });
            self.publish(CallEventKind::Answered { leg });
            self.phase = Phase::Routing;
            self.admit(ctx);
            return;
        };
        self.answered = Some(leg);
        self.answered_at.get_or_insert(now);
        self.phase = Phase::Answered;
        match a.kind {
            AnchorKind::Incoming => {
                if let Some(al) = self.leg_mut(a.leg) {
                    al.state = LegState::Answered;
                    al.record.answered_at = Some(now);
                    al.record.status_code = Some(200);
                }
                self.send(LegCommand::Answer { leg: a.leg, body });
            }
            AnchorKind::AwaitingAck => {
                self.ack(a.leg, body);
                self.ack(leg, None);
            }
            AnchorKind::Established => match body {
                Some(offer) => {
                    self.own_reinvite = Some(OwnReInvite::Connect {
                        anchor: a.leg,
                        new: leg,
                    });
                    self.send(LegCommand::ReOffer {
                        leg: a.leg,
                        body: Some(offer),
                    });
                }
                None => {
                    warn!(call = %self.setup.call, %leg, "the new party answered without an offer");
                    self.hang_up(leg);
                    self.hang_up(a.leg);
                    self.finish(CallOutcome::Answered, Some(Party::System), ctx);
                    return;
                }
            },
        }
        if let Some(anchor) = self.anchor.as_mut() {
            anchor.kind = AnchorKind::Established;
        }
        self.publish(CallEventKind::Answered { leg });
        self.set_user_phase(answering_user, Some(CallPhase::Active));
    }

    /// The other leg of a connected call.
    fn peer_of(&self, leg: LegId) -> Option<LegId> {
        let b = self.answered?;
        let a = self.anchor?.leg;
        if leg == a {
            Some(b)
        } else if leg == b {
            Some(a)
        } else {
            None
        }
    }

    /// In-dialog traffic of a connected call. The two legs mirror each other: an ACK, a
    /// re-INVITE (hold, resume, new offer) and its answer cross to the other side. One
    /// re-INVITE at a time, ours included; another one meanwhile, or one before answer,
    /// gets 491 (RFC 3261 §14.2). Answers to tsps's own re-INVITEs stay here.
    fn in_dialog(&mut self, from: LegId, kind: LegEventKind, ctx: &mut Context<Self>) {
        let to = self.peer_of(from);
        match kind {
            LegEventKind::Acked { body } => {
                if let (Some(l), Some(_)) = (self.leg_mut(from), &body) {
                    l.sdp = body.clone();
                }
                if let Some(to) = to {
                    self.ack(to, body);
                }
            }
            LegEventKind::ReOffer { body } => match to {
                Some(to)
                    if self.reoffer_from.is_none()
                        && self.own_reinvite.is_none()
                        && self.joining.is_none() =>
                {
                    let by = self.side_of(from);
                    let held = body.as_deref().map(sdp_is_hold).unwrap_or(false);
                    self.held_by = held.then_some(by);
                    self.publish(CallEventKind::MediaChanged { by, held });
                    if let (Some(l), Some(_)) = (self.leg_mut(from), &body) {
                        l.sdp = body.clone();
                    }
                    self.reoffer_from = Some(from);
                    self.send(LegCommand::ReOffer { leg: to, body });
                }
                _ => self.send(LegCommand::ReAnswer {
                    leg: from,
                    code: 491,
                    body: None,
                }),
            },
            LegEventKind::ReAnswer { code, body } => {
                let ok = (200..300).contains(&code);
                if let Some(l) = self.leg_mut(from) {
                    l.needs_ack = ok;
                    if ok && body.is_some() {
                        l.sdp = body.clone();
                    }
                }
                if self.own_reinvite.as_ref().map(OwnReInvite::leg) == Some(from) {
                    self.own_reinvite_answered(code, body, ctx);
                } else if let Some(back) = self.reoffer_from.take() {
                    self.send(LegCommand::ReAnswer {
                        leg: back,
                        code,
                        body,
                    });
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, outcome: CallOutcome, hangup_by: Option<Party>, ctx: &mut Context<Self>) {
        if self.phase == Phase::Ended {
            return;
        }
        self.phase = Phase::Ended;
        // A pending hold or resume learns that the call is over (its sender drops).
        self.own_reinvite = None;
        // Closes the bridge and its ports.
        self.conference = None;
        if let Some(t) = self.ring_timer.take() {
            ctx.cancel_future(t);
        }
        let now = self.platform.services.clock.now();
        for l in &mut self.legs {
            if l.record.ended_at.is_none() {
                l.record.ended_at = Some(now);
            }
        }
        let legs = self.legs.iter().map(|l| l.record.clone()).collect();
        let record = CallRecord {
            id: self.setup.call,
            tenant_id: self.setup.tenant,
            direction: self.direction,
            caller: self.setup.caller.user.clone(),
            callee: self.callee_shown.clone(),
            caller_user_id: self.caller_user,
            callee_user_id: self.callee_user,
            started_at: self.started_at,
            answered_at: self.answered_at,
            ended_at: now,
            outcome,
            hangup_by,
            decision: std::mem::take(&mut self.decision),
            legs,
        };
        self.platform.services.persistence.call_ended(record);
        self.platform.registry.call_ended(self.setup.call);
        self.publish(CallEventKind::Ended { outcome, hangup_by });
        if let Some(t) = self.platform.registry.tenant(self.setup.tenant) {
            t.do_send(TenantCallEnded {
                call: self.setup.call,
            });
        }
        let mut users: Vec<UserId> = self.caller_user.into_iter().collect();
        users.extend(self.offered.iter().copied());
        users.extend(self.legs.iter().filter_map(|l| l.user));
        users.sort();
        users.dedup();
        for user in users {
            self.set_user_phase(Some(user), None);
        }
        // A consultative transfer waiting for the other call's leg stops once that
        // answer is in (see `control::adopt`): the leg must not be left without owner.
        if self.joining.is_none() {
            ctx.stop();
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }
}

/// Personal mode: the upstream tenant is the tier above this tsps's user.
impl CallActor {
    /// A call the upstream delivered, not answered yet: a number is for the upstream to
    /// route (issue 3: the tenant honours its user's server's redirects), rather than
    /// for this tsps to call back up through its trunk.
    fn redirects_upstream(&self) -> bool {
        matches!(self.setup.origin, CallOrigin::Trunk { .. })
            && self.platform.services.config.upstream_tenant == Some(self.setup.tenant)
            && self
                .anchor
                .is_some_and(|a| a.kind == AnchorKind::Incoming && self.answered.is_none())
    }

    /// Answers the upstream's INVITE with 302 to `number` in the tenant's domain, which
    /// in personal mode is the upstream's own.
    fn redirect_upstream(&mut self, number: String, ctx: &mut Context<Self>) {
        let Some(a) = self.anchor else { return };
        let dir = self.platform.services.directory.current();
        let domain = dir
            .tenant(self.setup.tenant)
            .map(|t| t.domain.clone())
            .unwrap_or_default();
        let contact = format!("sip:{number}@{domain}");
        self.decision
            .push(format!("redirected upstream to {contact}"));
        self.send(LegCommand::Redirect {
            leg: a.leg,
            contact,
        });
        if let Some(l) = self.leg_mut(a.leg) {
            l.state = LegState::Done;
            l.record.status_code = Some(302);
        }
        self.finish(CallOutcome::Rejected, None, ctx);
    }
}

/// The status the caller gets when every callee leg failed (RFC 3261 §16.7 in spirit:
/// a busy device wins, then a decline, then unreachable).
pub fn final_status(codes: &[u16]) -> (u16, CallOutcome) {
    if codes.contains(&486) || codes.contains(&600) {
        return (486, CallOutcome::Busy);
    }
    if codes.contains(&603) {
        return (603, CallOutcome::Rejected);
    }
    if !codes.is_empty() && codes.iter().all(|c| *c == 408) {
        return (408, CallOutcome::NoAnswer);
    }
    if codes.iter().any(|c| [480, 404, 410].contains(c)) {
        return (480, CallOutcome::Unavailable);
    }
    match codes.iter().find(|c| **c != 487) {
        Some(c) if (400..700).contains(c) => (*c, CallOutcome::Failed),
        _ => (480, CallOutcome::Unavailable),
    }
}

impl Actor for CallActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(64);
        self.platform.registry.call_started(
            self.setup.tenant,
            CallHandle::new(&ctx.address()),
            crate::platform::LiveCallInfo {
                call: self.setup.call,
                caller: self.setup.caller.user.clone(),
                dialled: self.setup.dialled.clone(),
                started_at: self.started_at,
            },
        );
        if let CallStart::ClickToDial { device, reach } = &mut self.setup.start {
            let device = *device;
            let reach = std::mem::replace(reach, DeviceReach::Contacts(Vec::new()));
            self.start_click_to_dial(device, reach, ctx);
            return;
        }
        self.admit(ctx);
    }

    fn stopping(&mut self, ctx: &mut Self::Context) -> Running {
        // A call actor never ends silently: whatever stops it, the legs are ended and
        // the record is written.
        if self.phase != Phase::Ended {
            if self.conference.is_some() {
                self.conference_hang_up_all();
                self.finish(CallOutcome::Answered, Some(Party::System), ctx);
            } else if let Some(b) = self.answered {
                self.hang_up(b);
                if let Some(a) = self.anchor {
                    self.hang_up(a.leg);
                }
                self.finish(CallOutcome::Answered, Some(Party::System), ctx);
            } else {
                self.cancel_out_legs(None);
                self.reject_all(500, CallOutcome::Failed, ctx);
            }
        }
        Running::Stop
    }
}

impl Handler<Override> for CallActor {
    type Result = Result<(), OverrideError>;

    fn handle(&mut self, msg: Override, ctx: &mut Self::Context) -> Self::Result {
        self.apply_override(msg.0, ctx)
    }
}

impl CallActor {
    fn apply_override(
        &mut self,
        action: OverrideAction,
        ctx: &mut Context<Self>,
    ) -> Result<(), OverrideError> {
        // A click-to-dial still ringing the user's own device is not a call to decide.
        if self.phase != Phase::Ringing || self.anchor.is_none() {
            return Err(OverrideError::NotRinging);
        }
        self.publish(CallEventKind::Overridden {
            action: format!("{action:?}"),
        });
        match action {
            OverrideAction::Reject => {
                self.cancel_out_legs(None);
                self.reject_all(603, CallOutcome::Rejected, ctx);
            }
            OverrideAction::Forward(target) => {
                self.cancel_out_legs(None);
                self.steps.clear();
                self.forward_to(target, ctx);
            }
            OverrideAction::Attendant => {
                let Some(target) = self.attendant.clone() else {
                    return Err(OverrideError::NoAttendant);
                };
                self.cancel_out_legs(None);
                self.steps.clear();
                self.forward_to(target, ctx);
            }
            OverrideAction::AnswerOn(device) => {
                let dir = self.platform.services.directory.current();
                let binding = self
                    .target_bindings
                    .iter()
                    .find(|b| b.device_id == device)
                    .cloned();
                let (ring, talk) = match binding {
                    Some(b) => {
                        let talk = dir.device(device).is_some_and(|d| d.remote_answer);
                        (Ring::to(DialTarget::Contact(b), self.target_user), talk)
                    }
                    None => {
                        // An external phone of the user: rung through the trunk.
                        let phone = dir
                            .external_phone(device)
                            .filter(|p| Some(p.user_id) == self.target_user)
                            .ok_or(OverrideError::UnknownDevice)?;
                        let target = self
                            .trunk_target(phone.number.clone())
                            .ok_or(OverrideError::UnknownDevice)?;
                        let ring = Ring {
                            target,
                            user: self.target_user,
                            device: Some(device),
                        };
                        (ring, false)
                    }
                };
                let wanted = ring.target.describe();
                let keep: Vec<LegId> = self
                    .legs
                    .iter()
                    .filter(|l| {
                        !l.incoming
                            && matches!(l.state, LegState::Dialing | LegState::Early)
                            && l.record.target == wanted
                    })
                    .map(|l| l.record.id)
                    .collect();
                let now = self.platform.services.clock.now();
                let mut cancels = Vec::new();
                for l in &mut self.legs {
                    if !l.incoming
                        && !keep.contains(&l.record.id)
                        && matches!(l.state, LegState::Dialing | LegState::Early)
                    {
                        l.state = LegState::Done;
                        l.record.status_code = Some(487);
                        l.record.ended_at = Some(now);
                        cancels.push(l.record.id);
                    }
                }
                for leg in cancels {
                    self.send(LegCommand::Cancel { leg });
                    self.publish(CallEventKind::LegEnded {
                        leg,
                        code: Some(487),
                    });
                }
                self.steps.clear();
                self.on_busy = None;
                self.on_no_answer = None;
                // The chosen device rings as a step of its own, for the ring timeout:
                // the plan's step timer (a no-answer forward after N s) no longer
                // applies, and a device rung only now must not ring forever.
                if let Some(t) = self.ring_timer.take() {
                    ctx.cancel_future(t);
                }
                self.step += 1;
                let step_no = self.step;
                // Remote answer: a device that rings already is told now, one still to
                // ring once it does (the NOTIFY needs the dialog its 180 opened).
                let mut tell = Vec::new();
                for l in self.legs.iter_mut().filter(|l| keep.contains(&l.record.id)) {
                    l.step = step_no;
                    if talk && l.state == LegState::Early {
                        tell.push(l.record.id);
                    } else {
                        l.talk = talk;
                    }
                }
                for leg in tell {
                    self.send(LegCommand::RemoteAnswer { leg });
                }
                let seconds = self.platform.services.config.ring_timeout;
                self.arm_step_timer(seconds, ctx);
                if keep.is_empty() {
                    let callee = self.callee_party_or_dialled();
                    self.dial(vec![ring], &callee, ctx);
                    if let Some(l) = self.legs.last_mut() {
                        l.talk = talk;
                    }
                }
            }
        }
        Ok(())
    }
}

impl Handler<LegEvent> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: LegEvent, ctx: &mut Self::Context) {
        if self.phase == Phase::Ended {
            return;
        }
        if self.joining.is_some() && self.leg(msg.leg).is_none() {
            // The leg being handed over by the other call may speak before its hand-over
            // reaches us: its events wait for it.
            self.stashed.push(msg);
            return;
        }
        if self.conference.is_some() {
            return self.on_member(msg.leg, msg.kind, ctx);
        }
        match self.anchor {
            Some(a) if a.leg == msg.leg => self.on_anchor(a, msg.kind, ctx),
            _ => self.on_dialled(msg.leg, msg.kind, ctx),
        }
    }
}

#[cfg(test)]
mod tests;
