//! The call actor: one per call. Runs the call's state machine over its legs: the
//! incoming leg (A) and one outgoing leg per device or trunk attempt (B legs).
//!
//! ```text
//! Routing ──admitted──▶ Ringing ──a B leg answers──▶ Answered ──BYE either side──▶ Ended
//!    │                    │ all B legs fail / timeout / caller cancels               ▲
//!    └──rejected──────────┴──────────────────────────────────────────────────────────┘
//! ```
//! It never sees SIP: it receives [`LegEvent`]s and issues [`LegCommand`]s. When it
//! ends it writes the call detail record and publishes `Ended`.

use crate::events::{CallEvent, CallEventKind, Event};
use crate::feature::{Caller, Plan, RingStep, Target};
use crate::ids::{CallId, LegId, TenantId, UserId};
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
/// authenticated initial INVITE.
pub struct CallSetup {
    pub call: CallId,
    pub tenant: TenantId,
    /// The incoming leg (already answered 100 Trying by the SIP layer).
    pub a_leg: LegId,
    pub origin: CallOrigin,
    /// The caller as the callee should see it.
    pub caller: PartyInfo,
    /// Description of the caller leg for the CDR (device or trunk address).
    pub caller_target: String,
    /// The dialled extension, number or DID.
    pub dialled: String,
    pub offer: Option<Body>,
    /// Where leg commands go (the SIP shard that owns the A leg).
    pub sip: Recipient<LegCommand>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Routing,
    Ringing,
    Answered,
    Ended,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OutState {
    Dialing,
    Early,
    Answered,
    Done,
}

struct OutLeg {
    state: OutState,
    record: LegRecord,
    ringing_published: bool,
    /// The user whose device this leg rings (None for outside numbers).
    user: Option<UserId>,
    /// The ringing step the leg belongs to.
    step: u32,
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
    out: Vec<OutLeg>,
    answered: Option<LegId>,
    failures: Vec<u16>,
    /// The leg whose re-INVITE is being relayed to the other side.
    reoffer_from: Option<LegId>,
    a_record: LegRecord,
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
    /// Users the call was offered to, in order (forwarding loop guard).
    visited: Vec<UserId>,
    callee_party: Option<PartyInfo>,
    attendant: Option<Target>,
    /// The reasons of every decision taken for this call (for the call record).
    decision: Vec<String>,
    redirects: u8,
}

impl CallActor {
    pub fn new(setup: CallSetup, platform: Arc<Platform>) -> Self {
        let now = platform.clock.now();
        let (direction, caller_user) = match &setup.origin {
            CallOrigin::User { user, .. } => (CallDirection::Internal, Some(*user)),
            CallOrigin::Trunk { .. } => (CallDirection::Inbound, None),
        };
        let a_record = LegRecord {
            id: setup.a_leg,
            role: Party::Caller,
            target: setup.caller_target.clone(),
            started_at: now,
            answered_at: None,
            ended_at: None,
            status_code: None,
        };
        Self {
            callee_shown: setup.dialled.clone(),
            setup,
            platform,
            phase: Phase::Routing,
            direction,
            caller_user,
            callee_user: None,
            out: Vec::new(),
            answered: None,
            failures: Vec::new(),
            reoffer_from: None,
            a_record,
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
            callee_party: None,
            attendant: None,
            decision: Vec::new(),
            redirects: 0,
        }
    }

    fn publish(&self, kind: CallEventKind) {
        self.platform.bus.publish(Event::Call(CallEvent {
            call: self.setup.call,
            tenant: self.setup.tenant,
            at: self.platform.clock.now(),
            kind,
        }));
    }

    fn send(&self, cmd: LegCommand) {
        self.setup.sip.do_send(cmd);
    }

    fn set_user_phase(&self, user: Option<UserId>, phase: Option<CallPhase>) {
        if let Some(addr) = user.and_then(|u| self.platform.user(u)) {
            addr.do_send(CallPhaseChanged {
                call: self.setup.call,
                phase,
            });
        }
    }

    fn publish_started(&self) {
        self.publish(CallEventKind::Started {
            direction: self.direction,
            caller: self.setup.caller.user.clone(),
            callee: self.callee_shown.clone(),
            caller_user: self.caller_user,
            callee_user: self.callee_user,
            caller_leg: Some(self.setup.a_leg),
        });
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
                self.send(LegCommand::Reject {
                    leg: self.setup.a_leg,
                    code,
                });
                self.a_record.status_code = Some(code);
                self.finish(outcome, None, ctx);
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
                let seconds = self.platform.config.ring_timeout;
                self.step += 1;
                self.arm_step_timer(seconds, ctx);
                self.dial(vec![(DialTarget::Uri(uri), None)], &callee, ctx);
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
        let dir = self.platform.directory.current();
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
        let seconds = self.platform.config.ring_timeout;
        self.arm_step_timer(seconds, ctx);
        self.dial(vec![(DialTarget::Uri(t.uri), None)], &callee, ctx);
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
        let Some(addr) = self.platform.user(user) else {
            self.reject_all(480, CallOutcome::Unavailable, ctx);
            return;
        };
        let caller = Caller {
            number: Some(self.setup.caller.user.clone()).filter(|n| n != "anonymous"),
            anonymous: self.setup.caller.user == "anonymous",
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
        let now = self.platform.clock.now();
        let dir = self.platform.directory.current();
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
                let dir = self.platform.directory.current();
                match dir.user_by_extension(self.setup.tenant, &x) {
                    Some(u) => {
                        let id = u.id;
                        self.offer_to(id, ctx);
                    }
                    None => self.reject_all(404, CallOutcome::Unavailable, ctx),
                }
            }
            Target::Attendant => self.reject_all(480, CallOutcome::Unavailable, ctx),
            t @ (Target::Number(_) | Target::Devices) => {
                self.steps = VecDeque::from([RingStep {
                    targets: vec![t],
                    seconds: self.platform.config.ring_timeout.as_secs() as u32,
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
        let callee = self.callee_party.clone().unwrap_or_else(|| PartyInfo {
            user: self.setup.dialled.clone(),
            display_name: None,
            domain: self.setup.caller.domain.clone(),
        });
        let dir = self.platform.directory.current();
        let mut dials: Vec<(DialTarget, Option<UserId>)> = Vec::new();
        for t in &step.targets {
            match t {
                Target::Devices => dials.extend(
                    self.target_bindings
                        .iter()
                        .cloned()
                        .map(|b| (DialTarget::Contact(b), self.target_user)),
                ),
                Target::Number(n) => {
                    match dir
                        .trunks_of_tenant(self.setup.tenant)
                        .min_by(|a, b| a.name.cmp(&b.name))
                    {
                        Some(trunk) => dials.push((
                            DialTarget::Trunk {
                                trunk_id: trunk.id,
                                number: n.clone(),
                            },
                            None,
                        )),
                        None => self.failures.push(403),
                    }
                }
                Target::Extension(x) => match dir
                    .user_by_extension(self.setup.tenant, x)
                    .and_then(|u| self.platform.user(u.id).map(|a| (u.id, a)))
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
                                    .map(|b| (DialTarget::Contact(b), Some(uid)))
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
            .min(self.platform.config.ring_timeout.as_secs() as u32)
            .max(1);
        self.arm_step_timer(Duration::from_secs(seconds as u64), ctx);
        self.dial(dials, &callee, ctx);
        self.check_step_done(ctx);
    }

    fn dial(
        &mut self,
        targets: Vec<(DialTarget, Option<UserId>)>,
        callee: &PartyInfo,
        ctx: &mut Context<Self>,
    ) {
        let now = self.platform.clock.now();
        let me = ctx.address().recipient();
        for (target, user) in targets {
            let leg = LegId::new();
            let description = target.describe();
            let device = match &target {
                DialTarget::Contact(b) => Some(b.device_id),
                _ => None,
            };
            self.out.push(OutLeg {
                state: OutState::Dialing,
                record: LegRecord {
                    id: leg,
                    role: Party::Callee,
                    target: description.clone(),
                    started_at: now,
                    answered_at: None,
                    ended_at: None,
                    status_code: None,
                },
                ringing_published: false,
                user,
                step: self.step,
            });
            self.publish(CallEventKind::LegDialing {
                leg,
                target: description,
                side: Party::Callee,
                user,
                device,
            });
            self.send(LegCommand::Dial(Box::new(Dial {
                call: self.setup.call,
                leg,
                tenant: self.setup.tenant,
                target,
                caller: self.setup.caller.clone(),
                callee: callee.clone(),
                body: self.setup.offer.clone(),
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
        let legs: Vec<&OutLeg> = self.out.iter().filter(|l| l.step == step).collect();
        if legs.iter().any(|l| l.state != OutState::Done) {
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

    /// Cancels every outgoing leg still alive, except `keep`.
    fn cancel_out_legs(&mut self, keep: Option<LegId>) {
        let now = self.platform.clock.now();
        let mut cancels = Vec::new();
        for leg in &mut self.out {
            if Some(leg.record.id) == keep {
                continue;
            }
            if matches!(leg.state, OutState::Dialing | OutState::Early) {
                leg.state = OutState::Done;
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

    fn reject_all(&mut self, code: u16, outcome: CallOutcome, ctx: &mut Context<Self>) {
        self.send(LegCommand::Reject {
            leg: self.setup.a_leg,
            code,
        });
        self.a_record.status_code = Some(code);
        let by = (outcome == CallOutcome::NoAnswer).then_some(Party::System);
        self.finish(outcome, by, ctx);
    }

    /// Marks a live outgoing leg as ended with this final status; false if it was
    /// unknown or already over (a late or repeated event).
    fn end_out_leg(&mut self, leg: LegId, code: u16) -> bool {
        let now = self.platform.clock.now();
        match self.out_leg(leg) {
            Some(l) if l.state != OutState::Done => {
                l.state = OutState::Done;
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

    fn out_leg(&mut self, leg: LegId) -> Option<&mut OutLeg> {
        self.out.iter_mut().find(|l| l.record.id == leg)
    }

    fn on_a_leg(&mut self, kind: LegEventKind, ctx: &mut Context<Self>) {
        let a = self.setup.a_leg;
        match kind {
            LegEventKind::Cancelled => {
                self.a_record.status_code = Some(487);
                self.cancel_out_legs(None);
                self.finish(CallOutcome::Cancelled, Some(Party::Caller), ctx);
            }
            LegEventKind::Hangup => {
                if let Some(b) = self.answered {
                    self.send(LegCommand::Hangup { leg: b });
                    self.finish(CallOutcome::Answered, Some(Party::Caller), ctx);
                } else {
                    self.cancel_out_legs(None);
                    self.finish(CallOutcome::Cancelled, Some(Party::Caller), ctx);
                }
            }
            kind @ (LegEventKind::Acked { .. }
            | LegEventKind::ReOffer { .. }
            | LegEventKind::ReAnswer { .. }) => self.relay(a, kind),
            LegEventKind::Progress { .. }
            | LegEventKind::Answered { .. }
            | LegEventKind::Failed { .. }
            | LegEventKind::Redirected { .. } => {}
        }
    }

    fn on_b_leg(&mut self, leg: LegId, kind: LegEventKind, ctx: &mut Context<Self>) {
        let now = self.platform.clock.now();
        let a = self.setup.a_leg;
        match kind {
            LegEventKind::Progress { code, body } => {
                if self.phase != Phase::Ringing {
                    return;
                }
                let Some(l) = self.out_leg(leg) else { return };
                if l.state == OutState::Dialing {
                    l.state = OutState::Early;
                }
                let first = !l.ringing_published;
                l.ringing_published = true;
                if first {
                    self.publish(CallEventKind::Ringing { leg });
                }
                self.send(LegCommand::Progress { leg: a, code, body });
            }
            LegEventKind::Answered { body } => {
                let ringing = self.phase == Phase::Ringing;
                let Some(l) = self.out_leg(leg) else { return };
                if !ringing || l.state == OutState::Done {
                    // Lost the race (another leg answered or the caller left): end it.
                    l.state = OutState::Done;
                    self.send(LegCommand::Ack { leg, body: None });
                    self.send(LegCommand::Hangup { leg });
                    self.publish(CallEventKind::LegEnded { leg, code: None });
                    return;
                }
                l.state = OutState::Answered;
                l.record.answered_at = Some(now);
                l.record.status_code = Some(200);
                let answering_user = l.user;
                self.answered = Some(leg);
                self.answered_at = Some(now);
                self.a_record.answered_at = Some(now);
                self.a_record.status_code = Some(200);
                self.phase = Phase::Answered;
                if let Some(t) = self.ring_timer.take() {
                    ctx.cancel_future(t);
                }
                self.cancel_out_legs(Some(leg));
                self.send(LegCommand::Answer { leg: a, body });
                self.publish(CallEventKind::Answered { leg });
                self.set_user_phase(answering_user, Some(CallPhase::Active));
            }
            LegEventKind::Failed { code } => {
                if !self.end_out_leg(leg, code) {
                    return;
                }
                if self.answered == Some(leg) {
                    // The dialog died after answer (e.g. no ACK): treat as hangup.
                    self.send(LegCommand::Hangup { leg: a });
                    self.finish(CallOutcome::Answered, Some(Party::Callee), ctx);
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
                    self.send(LegCommand::Hangup { leg: a });
                    self.finish(CallOutcome::Answered, Some(Party::Callee), ctx);
                }
            }
            kind @ (LegEventKind::Acked { .. }
            | LegEventKind::ReOffer { .. }
            | LegEventKind::ReAnswer { .. }) => self.relay(leg, kind),
            LegEventKind::Cancelled => {}
        }
    }

    /// The other leg of an answered call.
    fn peer_of(&self, leg: LegId) -> Option<LegId> {
        let b = self.answered?;
        let a = self.setup.a_leg;
        if leg == a {
            Some(b)
        } else if leg == b {
            Some(a)
        } else {
            None
        }
    }

    /// Once answered, the two legs mirror each other: an ACK, a re-INVITE (hold,
    /// resume, new offer) and its answer cross to the other side. One re-INVITE at a
    /// time; another one meanwhile, or one before answer, gets 491 (RFC 3261 §14.2).
    fn relay(&mut self, from: LegId, kind: LegEventKind) {
        let to = self.peer_of(from);
        match kind {
            LegEventKind::Acked { body } => {
                if let Some(to) = to {
                    self.send(LegCommand::Ack { leg: to, body });
                }
            }
            LegEventKind::ReOffer { body } => match to {
                Some(to) if self.reoffer_from.is_none() => {
                    let by = if from == self.setup.a_leg {
                        Party::Caller
                    } else {
                        Party::Callee
                    };
                    self.publish_media(by, &body);
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
                if let Some(back) = self.reoffer_from.take() {
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

    fn publish_media(&self, by: Party, body: &Option<Body>) {
        let held = body.as_deref().map(sdp_is_hold).unwrap_or(false);
        self.publish(CallEventKind::MediaChanged { by, held });
    }

    fn finish(&mut self, outcome: CallOutcome, hangup_by: Option<Party>, ctx: &mut Context<Self>) {
        if self.phase == Phase::Ended {
            return;
        }
        self.phase = Phase::Ended;
        if let Some(t) = self.ring_timer.take() {
            ctx.cancel_future(t);
        }
        let now = self.platform.clock.now();
        self.a_record.ended_at = Some(now);
        for l in &mut self.out {
            if l.record.ended_at.is_none() {
                l.record.ended_at = Some(now);
            }
        }
        let mut legs = vec![self.a_record.clone()];
        legs.extend(self.out.iter().map(|l| l.record.clone()));
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
        self.platform.persistence.call_ended(record);
        self.platform.call_ended(self.setup.call);
        self.publish(CallEventKind::Ended { outcome, hangup_by });
        if let Some(t) = self.platform.tenant(self.setup.tenant) {
            t.do_send(TenantCallEnded {
                call: self.setup.call,
            });
        }
        self.set_user_phase(self.caller_user, None);
        for user in self.visited.clone() {
            self.set_user_phase(Some(user), None);
        }
        for user in self.out.iter().filter_map(|l| l.user).collect::<Vec<_>>() {
            self.set_user_phase(Some(user), None);
        }
        ctx.stop();
    }

    pub fn phase(&self) -> Phase {
        self.phase
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

/// True when the SDP puts the media on hold (RFC 3264 §8.4).
pub fn sdp_is_hold(sdp: &[u8]) -> bool {
    let text = String::from_utf8_lossy(sdp);
    text.lines().any(|l| {
        let l = l.trim();
        l == "a=sendonly" || l == "a=inactive" || l.starts_with("c=IN IP4 0.0.0.0")
    })
}

impl Actor for CallActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(64);
        self.platform.call_started(
            self.setup.tenant,
            ctx.address(),
            crate::platform::LiveCallInfo {
                call: self.setup.call,
                caller: self.setup.caller.user.clone(),
                dialled: self.setup.dialled.clone(),
                started_at: self.started_at,
            },
        );
        let Some(tenant) = self.platform.tenant(self.setup.tenant) else {
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

    fn stopping(&mut self, ctx: &mut Self::Context) -> Running {
        // A call actor never ends silently: whatever stops it, the legs are ended and
        // the record is written.
        if self.phase != Phase::Ended {
            if let Some(b) = self.answered {
                self.send(LegCommand::Hangup { leg: b });
                self.send(LegCommand::Hangup {
                    leg: self.setup.a_leg,
                });
                self.finish(CallOutcome::Answered, Some(Party::System), ctx);
            } else {
                self.cancel_out_legs(None);
                self.reject_all(500, CallOutcome::Failed, ctx);
            }
        }
        Running::Stop
    }
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

impl Handler<Override> for CallActor {
    type Result = Result<(), OverrideError>;

    fn handle(&mut self, msg: Override, ctx: &mut Self::Context) -> Self::Result {
        if self.phase != Phase::Ringing {
            return Err(OverrideError::NotRinging);
        }
        self.publish(CallEventKind::Overridden {
            action: format!("{:?}", msg.0),
        });
        match msg.0 {
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
                let Some(binding) = self
                    .target_bindings
                    .iter()
                    .find(|b| b.device_id == device)
                    .cloned()
                else {
                    return Err(OverrideError::UnknownDevice);
                };
                let keep: Vec<LegId> = self
                    .out
                    .iter()
                    .filter(|l| l.state != OutState::Done && l.record.target == binding.contact)
                    .map(|l| l.record.id)
                    .collect();
                for l in &mut self.out {
                    if !keep.contains(&l.record.id)
                        && matches!(l.state, OutState::Dialing | OutState::Early)
                    {
                        l.state = OutState::Done;
                        l.record.status_code = Some(487);
                        l.record.ended_at = Some(self.platform.clock.now());
                        self.setup
                            .sip
                            .do_send(LegCommand::Cancel { leg: l.record.id });
                        self.platform.bus.publish(Event::Call(CallEvent {
                            call: self.setup.call,
                            tenant: self.setup.tenant,
                            at: self.platform.clock.now(),
                            kind: CallEventKind::LegEnded {
                                leg: l.record.id,
                                code: Some(487),
                            },
                        }));
                    }
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
                for l in self.out.iter_mut().filter(|l| keep.contains(&l.record.id)) {
                    l.step = step_no;
                }
                let seconds = self.platform.config.ring_timeout;
                self.arm_step_timer(seconds, ctx);
                if keep.is_empty() {
                    let callee = self.callee_party_or_dialled();
                    let user = self.target_user;
                    self.dial(vec![(DialTarget::Contact(binding), user)], &callee, ctx);
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
        if msg.leg == self.setup.a_leg {
            self.on_a_leg(msg.kind, ctx);
        } else {
            self.on_b_leg(msg.leg, msg.kind, ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::CallEventKind as K;
    use crate::testkit::{self, FakeSip, ALICE, BOB, TENANT};
    use std::time::Duration;
    use tokio::sync::{broadcast, mpsc};

    #[test]
    fn final_status_prefers_busy_then_decline() {
        assert_eq!(final_status(&[408, 486]), (486, CallOutcome::Busy));
        assert_eq!(final_status(&[603, 480]), (603, CallOutcome::Rejected));
        assert_eq!(final_status(&[408, 408]), (408, CallOutcome::NoAnswer));
        assert_eq!(final_status(&[404]), (480, CallOutcome::Unavailable));
        assert_eq!(final_status(&[500]), (500, CallOutcome::Failed));
        assert_eq!(final_status(&[]), (480, CallOutcome::Unavailable));
    }

    #[test]
    fn hold_detection() {
        assert!(sdp_is_hold(b"v=0\r\na=sendonly\r\n"));
        assert!(sdp_is_hold(b"v=0\r\nc=IN IP4 0.0.0.0\r\n"));
        assert!(!sdp_is_hold(b"v=0\r\na=sendrecv\r\n"));
    }

    struct Harness {
        call_id: CallId,
        call: Addr<CallActor>,
        a: LegId,
        sip: mpsc::UnboundedReceiver<LegCommand>,
        events: broadcast::Receiver<Arc<Event>>,
        persistence: Arc<testkit::MemoryPersistence>,
        platform: Arc<Platform>,
    }

    impl Harness {
        fn start(bob_contacts: &[&str], dialled: &str) -> Self {
            let bindings: Vec<_> = bob_contacts.iter().map(|c| (BOB, *c)).collect();
            Self::start_with(testkit::MapFeatures::default(), &bindings, dialled)
        }

        fn start_with(
            features: testkit::MapFeatures,
            bindings: &[(UserId, &str)],
            dialled: &str,
        ) -> Self {
            let (platform, persistence, bus) = testkit::platform_with(features, bindings);
            let (tx, sip) = mpsc::unbounded_channel();
            let fake = FakeSip(tx).start();
            let a = LegId::new();
            let call_id = CallId::new();
            let setup = CallSetup {
                call: call_id,
                tenant: TENANT,
                a_leg: a,
                origin: CallOrigin::User {
                    user: ALICE,
                    dialled: dialled.into(),
                },
                caller: PartyInfo {
                    user: "1001".into(),
                    display_name: Some("Alice".into()),
                    domain: "a.test".into(),
                },
                caller_target: "device:1001".into(),
                dialled: dialled.into(),
                offer: Some(Arc::from(&b"v=0\r\n"[..])),
                sip: fake.recipient(),
            };
            let events = bus.subscribe();
            let call = CallActor::new(setup, platform.clone()).start();
            Self {
                call_id,
                call,
                a,
                sip,
                events,
                persistence,
                platform,
            }
        }

        async fn next(&mut self) -> LegCommand {
            tokio::time::timeout(Duration::from_secs(120), self.sip.recv())
                .await
                .expect("a leg command")
                .expect("channel open")
        }

        fn call_id(&self) -> CallId {
            self.call_id
        }

        fn event(&self, leg: LegId, kind: LegEventKind) {
            self.call.do_send(LegEvent { leg, kind });
        }

        async fn dialled_legs(&mut self, n: usize) -> Vec<LegId> {
            let mut legs = Vec::new();
            for _ in 0..n {
                match self.next().await {
                    LegCommand::Dial(d) if matches!(d.target, DialTarget::Contact(_)) => {
                        assert_eq!(d.callee.user, "1002");
                        legs.push(d.leg);
                    }
                    other => panic!("expected Dial, got {other:?}"),
                }
            }
            legs
        }

        /// Waits until the call actor has stopped, then returns its record and events.
        async fn ended(mut self) -> (CallRecord, Vec<K>) {
            let mut kinds = Vec::new();
            loop {
                let e = tokio::time::timeout(Duration::from_secs(120), self.events.recv())
                    .await
                    .expect("an event")
                    .expect("bus open");
                let Event::Call(e) = e.as_ref() else { continue };
                let done = matches!(e.kind, K::Ended { .. });
                kinds.push(e.kind.clone());
                if done {
                    break;
                }
            }
            let record = self
                .persistence
                .records
                .lock()
                .unwrap()
                .pop()
                .expect("a call record");
            (record, kinds)
        }
    }

    fn names(kinds: &[K]) -> Vec<&'static str> {
        kinds
            .iter()
            .map(|k| match k {
                K::Started { .. } => "started",
                K::Decided { .. } => "decided",
                K::Overridden { .. } => "overridden",
                K::LegDialing { .. } => "dialing",
                K::Ringing { .. } => "ringing",
                K::Answered { .. } => "answered",
                K::MediaChanged { .. } => "media",
                K::LegEnded { .. } => "leg_ended",
                K::Ended { .. } => "ended",
            })
            .collect()
    }

    #[actix::test]
    async fn answered_call_is_relayed_and_recorded() {
        let mut h = Harness::start(&["sip:1002@127.0.0.1:5062"], "1002");
        let b = h.dialled_legs(1).await[0];
        h.event(
            b,
            LegEventKind::Progress {
                code: 180,
                body: None,
            },
        );
        assert!(
            matches!(h.next().await, LegCommand::Progress { leg, code: 180, .. } if leg == h.a)
        );
        h.event(b, LegEventKind::Answered { body: None });
        assert!(matches!(h.next().await, LegCommand::Answer { leg, .. } if leg == h.a));
        h.event(h.a, LegEventKind::Acked { body: None });
        assert!(matches!(h.next().await, LegCommand::Ack { leg, .. } if leg == b));
        // Bob is busy while the call is up.
        let snap = h
            .platform
            .user(BOB)
            .unwrap()
            .send(crate::user::GetUserSnapshot)
            .await
            .unwrap();
        assert_eq!(snap.status, crate::user::UserStatus::Busy);
        h.event(h.a, LegEventKind::Hangup);
        assert!(matches!(h.next().await, LegCommand::Hangup { leg } if leg == b));
        let (record, kinds) = h.ended().await;
        assert_eq!(
            names(&kinds),
            ["started", "decided", "dialing", "ringing", "answered", "ended"]
        );
        assert!(
            matches!(&kinds[0], K::Started { direction: CallDirection::Internal, caller, callee, .. } if caller == "1001" && callee == "1002")
        );
        assert_eq!(record.outcome, CallOutcome::Answered);
        assert_eq!(record.hangup_by, Some(Party::Caller));
        assert_eq!(record.legs.len(), 2);
        assert_eq!(record.legs[1].status_code, Some(200));
        assert!(record.answered_at.is_some());
    }

    #[actix::test]
    async fn first_answer_wins_and_other_forks_are_cancelled() {
        let mut h = Harness::start(
            &["sip:1002@127.0.0.1:5062", "sip:1002@127.0.0.1:5064"],
            "1002",
        );
        let legs = h.dialled_legs(2).await;
        h.event(
            legs[0],
            LegEventKind::Progress {
                code: 180,
                body: None,
            },
        );
        h.event(
            legs[1],
            LegEventKind::Progress {
                code: 180,
                body: None,
            },
        );
        assert!(matches!(h.next().await, LegCommand::Progress { .. }));
        assert!(matches!(h.next().await, LegCommand::Progress { .. }));
        h.event(legs[1], LegEventKind::Answered { body: None });
        assert!(matches!(h.next().await, LegCommand::Cancel { leg } if leg == legs[0]));
        assert!(matches!(h.next().await, LegCommand::Answer { .. }));
        // The losing fork answers anyway (race with the CANCEL): it is ACKed and hung up.
        h.event(legs[0], LegEventKind::Answered { body: None });
        assert!(matches!(h.next().await, LegCommand::Ack { leg, .. } if leg == legs[0]));
        assert!(matches!(h.next().await, LegCommand::Hangup { leg } if leg == legs[0]));
        h.event(legs[1], LegEventKind::Hangup);
        assert!(matches!(h.next().await, LegCommand::Hangup { leg } if leg == h.a));
        let (record, _) = h.ended().await;
        assert_eq!(record.hangup_by, Some(Party::Callee));
        assert_eq!(record.legs[1].status_code, Some(487));
    }

    #[actix::test]
    async fn busy_device_makes_the_call_busy() {
        let mut h = Harness::start(&["sip:1002@127.0.0.1:5062"], "1002");
        let b = h.dialled_legs(1).await[0];
        h.event(b, LegEventKind::Failed { code: 486 });
        assert!(matches!(
            h.next().await,
            LegCommand::Reject { code: 486, .. }
        ));
        let (record, _) = h.ended().await;
        assert_eq!(record.outcome, CallOutcome::Busy);
    }

    #[actix::test]
    async fn nobody_registered_is_480_and_unknown_extension_404() {
        let mut h = Harness::start(&[], "1002");
        assert!(matches!(
            h.next().await,
            LegCommand::Reject { code: 480, .. }
        ));
        assert_eq!(h.ended().await.0.outcome, CallOutcome::Unavailable);
        let mut h = Harness::start(&[], "4711");
        assert!(matches!(
            h.next().await,
            LegCommand::Reject { code: 404, .. }
        ));
        assert_eq!(h.ended().await.0.outcome, CallOutcome::Unavailable);
    }

    #[actix::test]
    async fn caller_cancel_cancels_every_fork() {
        let mut h = Harness::start(&["sip:1002@127.0.0.1:5062"], "1002");
        let b = h.dialled_legs(1).await[0];
        h.event(h.a, LegEventKind::Cancelled);
        assert!(matches!(h.next().await, LegCommand::Cancel { leg } if leg == b));
        let (record, _) = h.ended().await;
        assert_eq!(record.outcome, CallOutcome::Cancelled);
        assert_eq!(record.hangup_by, Some(Party::Caller));
    }

    #[actix::test]
    async fn ring_timeout_ends_with_408() {
        tokio::time::pause();
        let mut h = Harness::start(&["sip:1002@127.0.0.1:5062"], "1002");
        let b = h.dialled_legs(1).await[0];
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(matches!(h.next().await, LegCommand::Cancel { leg } if leg == b));
        assert!(matches!(
            h.next().await,
            LegCommand::Reject { code: 408, .. }
        ));
        let (record, _) = h.ended().await;
        assert_eq!(record.outcome, CallOutcome::NoAnswer);
        assert_eq!(record.hangup_by, Some(Party::System));
    }

    #[actix::test]
    async fn reinvite_is_relayed_both_ways() {
        let mut h = Harness::start(&["sip:1002@127.0.0.1:5062"], "1002");
        let b = h.dialled_legs(1).await[0];
        h.event(b, LegEventKind::Answered { body: None });
        assert!(matches!(h.next().await, LegCommand::Answer { .. }));
        let hold: Body = Arc::from(&b"v=0\r\na=sendonly\r\n"[..]);
        h.event(
            h.a,
            LegEventKind::ReOffer {
                body: Some(hold.clone()),
            },
        );
        assert!(
            matches!(h.next().await, LegCommand::ReOffer { leg, body: Some(x) } if leg == b && x == hold)
        );
        // A second offer while one is pending is refused with 491.
        h.event(b, LegEventKind::ReOffer { body: None });
        assert!(matches!(h.next().await, LegCommand::ReAnswer { leg, code: 491, .. } if leg == b));
        h.event(
            b,
            LegEventKind::ReAnswer {
                code: 200,
                body: None,
            },
        );
        assert!(
            matches!(h.next().await, LegCommand::ReAnswer { leg, code: 200, .. } if leg == h.a)
        );
        h.event(h.a, LegEventKind::Acked { body: None });
        assert!(matches!(h.next().await, LegCommand::Ack { leg, .. } if leg == b));
        h.event(b, LegEventKind::Hangup);
        assert!(matches!(h.next().await, LegCommand::Hangup { .. }));
        let (_, kinds) = h.ended().await;
        assert!(kinds.iter().any(|k| matches!(
            k,
            K::MediaChanged {
                by: Party::Caller,
                held: true
            }
        )));
    }

    fn bob(profile: crate::feature::Profile) -> testkit::MapFeatures {
        let mut m = testkit::MapFeatures::default();
        m.0.insert(
            BOB,
            crate::ports::UserFeatures {
                profile,
                ..Default::default()
            },
        );
        m
    }

    async fn expect_dial_to(h: &mut Harness, contact: &str) -> LegId {
        match h.next().await {
            LegCommand::Dial(d) => match &d.target {
                DialTarget::Contact(b) if b.contact == contact => d.leg,
                other => panic!("expected a dial to {contact}, got {other:?}"),
            },
            other => panic!("expected a dial to {contact}, got {other:?}"),
        }
    }

    const BOB_PHONE: &str = "sip:1002@127.0.0.1:5062";
    const CAROL_PHONE: &str = "sip:1003@127.0.0.1:5063";

    fn sequential() -> crate::feature::Profile {
        use crate::feature::profile::{Handling, SequentialStep};
        crate::feature::Profile {
            default_handling: Handling::Sequential {
                steps: vec![
                    SequentialStep {
                        target: Target::Devices,
                        seconds: 10,
                    },
                    SequentialStep {
                        target: Target::Extension("1003".into()),
                        seconds: 15,
                    },
                ],
                fallback: None,
            },
            ..Default::default()
        }
    }

    #[actix::test]
    async fn sequential_ring_moves_on_after_each_timeout() {
        tokio::time::pause();
        let mut h = Harness::start_with(
            bob(sequential()),
            &[(BOB, BOB_PHONE), (testkit::CAROL, CAROL_PHONE)],
            "1002",
        );
        let first = expect_dial_to(&mut h, BOB_PHONE).await;
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(matches!(h.next().await, LegCommand::Cancel { leg } if leg == first));
        let second = expect_dial_to(&mut h, CAROL_PHONE).await;
        tokio::time::advance(Duration::from_secs(16)).await;
        assert!(matches!(h.next().await, LegCommand::Cancel { leg } if leg == second));
        assert!(matches!(
            h.next().await,
            LegCommand::Reject { code: 408, .. }
        ));
        let (record, kinds) = h.ended().await;
        assert_eq!(record.outcome, CallOutcome::NoAnswer);
        assert_eq!(record.legs.len(), 3);
        assert!(kinds.iter().any(|k| matches!(k, K::Decided { reasons, .. } if reasons.iter().any(|r| r.contains("sequential")))));
    }

    #[actix::test]
    async fn override_during_sequential_ring_forwards_at_once() {
        tokio::time::pause();
        let mut h = Harness::start_with(
            bob(sequential()),
            &[(BOB, BOB_PHONE), (testkit::CAROL, CAROL_PHONE)],
            "1002",
        );
        let first = expect_dial_to(&mut h, BOB_PHONE).await;
        let call = h.platform.call(TENANT, h.call_id()).expect("a live call");
        // Another tenant cannot reach the call.
        assert!(h
            .platform
            .call(crate::ids::TenantId::for_test(99), h.call_id())
            .is_none());
        let res = call
            .send(Override(OverrideAction::Forward(Target::Extension(
                "1003".into(),
            ))))
            .await
            .unwrap();
        assert_eq!(res, Ok(()));
        assert!(matches!(h.next().await, LegCommand::Cancel { leg } if leg == first));
        let carol = expect_dial_to(&mut h, CAROL_PHONE).await;
        h.event(carol, LegEventKind::Answered { body: None });
        assert!(matches!(h.next().await, LegCommand::Answer { .. }));
        // Once answered, overrides are refused.
        let late = call.send(Override(OverrideAction::Reject)).await.unwrap();
        assert_eq!(late, Err(OverrideError::NotRinging));
        h.event(h.a, LegEventKind::Hangup);
        assert!(matches!(h.next().await, LegCommand::Hangup { leg } if leg == carol));
        let (record, kinds) = h.ended().await;
        assert_eq!(record.outcome, CallOutcome::Answered);
        assert!(kinds.iter().any(|k| matches!(k, K::Overridden { .. })));
    }

    #[actix::test]
    async fn busy_device_forwards_on_busy() {
        let mut p = crate::feature::Profile::default();
        p.forwarding.busy = Some(Target::Extension("1003".into()));
        let mut h = Harness::start_with(
            bob(p),
            &[(BOB, BOB_PHONE), (testkit::CAROL, CAROL_PHONE)],
            "1002",
        );
        let first = expect_dial_to(&mut h, BOB_PHONE).await;
        h.event(first, LegEventKind::Failed { code: 486 });
        let carol = expect_dial_to(&mut h, CAROL_PHONE).await;
        h.event(carol, LegEventKind::Failed { code: 486 });
        assert!(matches!(
            h.next().await,
            LegCommand::Reject { code: 486, .. }
        ));
        assert_eq!(h.ended().await.0.outcome, CallOutcome::Busy);
    }

    #[actix::test]
    async fn no_answer_forwards_after_its_seconds() {
        tokio::time::pause();
        let mut p = crate::feature::Profile::default();
        p.forwarding.no_answer = Some(crate::feature::profile::NoAnswerForward {
            target: Target::Extension("1003".into()),
            seconds: 10,
        });
        let mut h = Harness::start_with(
            bob(p),
            &[(BOB, BOB_PHONE), (testkit::CAROL, CAROL_PHONE)],
            "1002",
        );
        let first = expect_dial_to(&mut h, BOB_PHONE).await;
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(matches!(h.next().await, LegCommand::Cancel { leg } if leg == first));
        let carol = expect_dial_to(&mut h, CAROL_PHONE).await;
        h.event(carol, LegEventKind::Answered { body: None });
        assert!(matches!(h.next().await, LegCommand::Answer { .. }));
        h.event(carol, LegEventKind::Hangup);
        assert!(matches!(h.next().await, LegCommand::Hangup { .. }));
        let (record, _) = h.ended().await;
        assert_eq!(record.hangup_by, Some(Party::Callee));
    }

    #[actix::test]
    async fn do_not_disturb_rejects_busy_with_the_reason() {
        let mut p = crate::feature::Profile::default();
        p.dnd.enabled = true;
        let mut h = Harness::start_with(bob(p), &[(BOB, BOB_PHONE)], "1002");
        assert!(matches!(
            h.next().await,
            LegCommand::Reject { code: 486, .. }
        ));
        let (record, kinds) = h.ended().await;
        assert_eq!(record.outcome, CallOutcome::Busy);
        assert!(kinds.iter().any(|k| matches!(k, K::Decided { reasons, .. } if reasons.contains(&"do not disturb".to_string()))));
    }

    #[actix::test]
    async fn forwarding_loop_is_refused() {
        let mut m = testkit::MapFeatures::default();
        let fwd = |x: &str| crate::ports::UserFeatures {
            profile: crate::feature::Profile {
                forwarding: crate::feature::profile::Forwarding {
                    always: Some(Target::Extension(x.into())),
                    ..Default::default()
                },
                ..Default::default()
            },
            ..Default::default()
        };
        m.0.insert(BOB, fwd("1003"));
        m.0.insert(testkit::CAROL, fwd("1002"));
        let mut h = Harness::start_with(
            m,
            &[(BOB, BOB_PHONE), (testkit::CAROL, CAROL_PHONE)],
            "1002",
        );
        assert!(matches!(
            h.next().await,
            LegCommand::Reject { code: 482, .. }
        ));
        assert_eq!(h.ended().await.0.outcome, CallOutcome::Failed);
    }

    #[actix::test]
    async fn redirect_into_the_tenant_is_routed_and_outside_it_is_dialled() {
        let mut h = Harness::start_with(
            testkit::MapFeatures::default(),
            &[(BOB, BOB_PHONE), (testkit::CAROL, CAROL_PHONE)],
            "1002",
        );
        let first = expect_dial_to(&mut h, BOB_PHONE).await;
        let to = |uri: &str, user: &str, host: &str| RedirectTarget {
            uri: uri.into(),
            user: Some(user.into()),
            host: host.into(),
        };
        h.event(
            first,
            LegEventKind::Redirected {
                code: 302,
                targets: vec![to("sip:1003@a.test", "1003", "a.test")],
            },
        );
        let carol = expect_dial_to(&mut h, CAROL_PHONE).await;
        h.event(
            carol,
            LegEventKind::Redirected {
                code: 302,
                targets: vec![to("sip:vm@192.0.2.10:5060", "vm", "192.0.2.10")],
            },
        );
        match h.next().await {
            LegCommand::Dial(d) => {
                assert_eq!(d.target, DialTarget::Uri("sip:vm@192.0.2.10:5060".into()))
            }
            other => panic!("expected a dial to the redirect URI, got {other:?}"),
        }
        h.event(h.a, LegEventKind::Cancelled);
        assert!(matches!(h.next().await, LegCommand::Cancel { .. }));
        let (record, _) = h.ended().await;
        assert!(
            record
                .decision
                .iter()
                .any(|r| r.contains("redirected to sip:1003@a.test")),
            "{:?}",
            record.decision
        );
    }
}
