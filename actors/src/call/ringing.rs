//! Routing and ringing: admission by the tenant, the offer to a user's feature server,
//! and the execution of the program's actions (ring a step, forward, reject) over
//! dialled legs; redirects, the per-call override and personal mode's upstream
//! redirect.

use super::api::{OverrideAction, OverrideError};
use super::call_core::{CallCore, Phase, MAX_FORWARDS};
use super::io::{Admitted, DialOut, Offered, Output, Timer};
use super::leg::{AnchorKind, Leg, LegState, Ring};
use super::program::{Action, ProgramEvent};
use super::setup::DeviceReach;
use crate::events::CallEventKind;
use crate::feature::{Caller, Plan, RingStep, Target};
use crate::ids::{DeviceId, LegId, UserId};
use crate::model::{Binding, CallDirection, CallOutcome, LegRecord, Party};
use crate::ports::{DialTarget, LegCommand, PartyInfo, RedirectTarget};
use crate::routing::{route_dialled, Route};
use crate::tenant::{Admission, CallOrigin};
use crate::user::{CallPhase, OfferCall};
use std::time::Duration;
use tracing::warn;

impl CallCore {
    /// Asks the tenant where the dialled string goes (the call waits for the answer).
    pub(super) fn admit(&mut self) {
        self.out.push(Output::Admit(self.setup.origin.clone()));
    }

    pub(super) fn on_admitted(&mut self, admitted: Admitted) {
        match admitted {
            Admitted::Admission(a) => self.on_admission(a),
            Admitted::NoTenant => {
                self.publish_started();
                self.reject_all(404, CallOutcome::Unavailable);
            }
            Admitted::Failed => {
                self.publish_started();
                self.reject_all(503, CallOutcome::Failed);
            }
        }
    }

    fn on_admission(&mut self, admission: Admission) {
        match admission {
            Admission::Reject {
                code,
                outcome,
                reason,
            } => {
                self.decision.push(reason.to_string());
                self.publish_started();
                self.reject_all(code, outcome);
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
                self.offer_to(user);
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
                let after = self.config.ring_timeout;
                self.step += 1;
                self.arm_step_timer(after);
                self.dial(vec![Ring::to(DialTarget::Uri(uri), None)], &callee);
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
                self.forward_to(Target::Number(number));
            }
        }
    }

    /// Click-to-dial, first half: ring the user's device, showing the destination as
    /// the caller so that the phone displays whom it is calling. An external phone is
    /// rung through the tenant's trunk, and shown the destination's number.
    pub(super) fn start_click_to_dial(&mut self, device: DeviceId, reach: DeviceReach) {
        let dir = self.now.directory.clone();
        let mut shown = self.setup.dialled.clone();
        match route_dialled(&dir, self.setup.tenant, &self.setup.dialled) {
            Route::User(u) => self.callee_user = Some(u),
            Route::Outside { number, .. } => {
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
            self.reject_all(480, CallOutcome::Unavailable);
            return;
        }
        self.step += 1;
        let after = self.config.ring_timeout;
        self.arm_step_timer(after);
        let me = self.setup.caller.clone();
        self.dial_with(targets, &destination, &me);
    }

    /// An outside number through the tenant's trunk (the first by name); None when the
    /// tenant has none.
    pub(super) fn trunk_target(&self, number: String) -> Option<DialTarget> {
        let trunk = self
            .now
            .directory
            .trunks_of_tenant(self.setup.tenant)
            .min_by(|a, b| a.name.cmp(&b.name))?;
        Some(DialTarget::Trunk {
            trunk_id: trunk.id,
            number,
        })
    }

    /// Ends the current ringing step after `after`: its legs are cancelled and the plan
    /// moves on (next step, forward on no answer, or the end of the call).
    pub(super) fn arm_step_timer(&mut self, after: Duration) {
        self.cancel_ring_timer();
        self.ring_armed = Some(self.step);
        self.set_timer(Timer::Ring, after);
    }

    pub(super) fn ring_timer_fired(&mut self) {
        let Some(step_no) = self.ring_armed.take() else {
            return;
        };
        if self.phase == Phase::Ringing && self.step == step_no {
            self.cancel_out_legs(None);
            self.next_step();
        }
    }

    /// A redirect into this tenant's own domain is routed like a dialled string (an
    /// extension or a number); anything else is dialled as a URI.
    fn follow_redirect(&mut self, t: RedirectTarget) {
        self.cancel_ring_timer();
        self.program.next(ProgramEvent::Redirected);
        let dir = self.now.directory.clone();
        let own_domain = dir
            .tenant(self.setup.tenant)
            .is_some_and(|tn| tn.domain.eq_ignore_ascii_case(&t.host));
        if let (true, Some(user)) = (own_domain, t.user.as_deref()) {
            match route_dialled(&dir, self.setup.tenant, user) {
                Route::User(u) => self.offer_to(u),
                Route::Outside { number, .. } => self.forward_to(Target::Number(number)),
                _ => self.reject_all(404, CallOutcome::Unavailable),
            }
            return;
        }
        let callee = self.callee_party_or_dialled();
        self.step += 1;
        let after = self.config.ring_timeout;
        self.arm_step_timer(after);
        self.dial(vec![Ring::to(DialTarget::Uri(t.uri), None)], &callee);
    }

    /// A dialled leg was redirected (3xx): the first target is followed, a few times.
    pub(super) fn redirected(&mut self, targets: Vec<RedirectTarget>) {
        self.redirects += 1;
        match targets.into_iter().next() {
            Some(t)
                if self.redirects <= super::call_core::MAX_REDIRECTS
                    && self.phase == Phase::Ringing =>
            {
                self.decision.push(format!("redirected to {}", t.uri));
                self.follow_redirect(t);
            }
            _ => {
                self.failures.push(480);
                self.check_step_done();
            }
        }
    }

    /// The call reaches `user`'s feature server, which decides what happens.
    pub(super) fn offer_to(&mut self, user: UserId) {
        if self.visited.contains(&user) || self.visited.len() >= MAX_FORWARDS {
            warn!(call = %self.setup.call, %user, "forwarding loop");
            self.reject_all(482, CallOutcome::Failed);
            return;
        }
        self.visited.push(user);
        self.offered.push(user);
        if let Some(ext) = self.now.directory.user(user).map(|u| u.extension.clone()) {
            self.party_changed(self.dialled_side(), ext, Some(user));
        }
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
        self.out.push(Output::Offer { user, msg });
    }

    pub(super) fn on_offered(&mut self, user: UserId, offer: Offered) {
        let offer = match offer {
            Offered::NoUser => return self.reject_all(480, CallOutcome::Unavailable),
            _ if self.phase != Phase::Ringing => return, // the caller left meanwhile
            Offered::Failed => return self.reject_all(500, CallOutcome::Failed),
            Offered::Offer(offer) => offer,
        };
        let ext = self.extension_of(user);
        self.decision
            .extend(offer.decision.reasons.iter().map(|r| format!("{ext}: {r}")));
        self.publish(CallEventKind::Decided {
            user,
            contact: offer.contact.as_ref().map(|c| c.name.clone()),
            reasons: offer.decision.reasons.clone(),
            attendant: offer.attendant.is_some(),
        });
        self.target_user = Some(user);
        let offer = *offer;
        self.target_bindings = offer.bindings;
        self.attendant = offer.attendant;
        self.execute(offer.decision.plan);
    }

    /// Now in the tenant's time zone (UTC if the zone is unknown).
    fn local_time(&self) -> chrono::NaiveDateTime {
        let now = self.now.at;
        match self
            .now
            .directory
            .tenant(self.setup.tenant)
            .and_then(|t| t.time_zone.parse::<chrono_tz::Tz>().ok())
        {
            Some(tz) => now.with_timezone(&tz).naive_local(),
            None => now.naive_utc(),
        }
    }

    fn execute(&mut self, plan: Plan) {
        let action = self.program.next(ProgramEvent::Decided(plan));
        self.run(action);
    }

    /// Carries out what the program said.
    fn run(&mut self, action: Action) {
        match action {
            Action::Ring(step) => self.ring_step(step),
            Action::NextStep => self.next_step(),
            Action::Forward(t) => self.forward_to(t),
            Action::Reject { code } => {
                let outcome = match code {
                    486 => CallOutcome::Busy,
                    480 | 404 => CallOutcome::Unavailable,
                    _ => CallOutcome::Rejected,
                };
                self.reject_all(code, outcome);
            }
            Action::RejectWithMessage { code, text } => {
                let (note, msg) = crate::presence::message::on_reject(
                    &self.now.directory.clone(),
                    self.setup.tenant,
                    self.setup.call,
                    self.target_user,
                    self.caller_user,
                    &self.shown_caller.user,
                    text,
                    self.now.at,
                );
                if let Some(mut msg) = msg {
                    msg.local = true;
                    self.out
                        .push(Output::Publish(crate::events::Event::Message(msg)));
                }
                self.decision.push(note);
                self.run(Action::Reject { code });
            }
            Action::GiveUp => {
                let (code, outcome) =
                    if self.failures.is_empty() || self.failures.iter().all(|c| *c == 487) {
                        (408, CallOutcome::NoAnswer)
                    } else {
                        super::record::final_status(&self.failures)
                    };
                self.reject_all(code, outcome);
            }
            Action::Wait => {}
        }
    }

    /// Sends the call on: another user's feature server, an outside number, or the
    /// current user's devices.
    pub(super) fn forward_to(&mut self, target: Target) {
        let ring_seconds = self.config.ring_timeout.as_secs() as u32;
        let action = self.program.next(ProgramEvent::Forwarded {
            target: target.clone(),
            ring_seconds,
        });
        match target {
            Target::Extension(x) => {
                match self.now.directory.user_by_extension(self.setup.tenant, &x) {
                    Some(u) => {
                        let id = u.id;
                        self.offer_to(id);
                    }
                    None => self.reject_all(404, CallOutcome::Unavailable),
                }
            }
            Target::Attendant => self.reject_all(480, CallOutcome::Unavailable),
            Target::Number(n) if self.redirects_upstream() => self.redirect_upstream(n),
            t @ (Target::Number(_) | Target::Devices) => {
                if let Target::Number(n) = &t {
                    self.party_changed(self.dialled_side(), n.clone(), None);
                }
                self.run(action);
            }
        }
    }

    /// Rings the next step of the program; when none is left, it forwards on no answer
    /// or the call ends.
    pub(super) fn next_step(&mut self) {
        self.cancel_ring_timer();
        let action = self.program.next(ProgramEvent::NoAnswer);
        self.run(action);
    }

    fn ring_step(&mut self, step: RingStep) {
        self.cancel_ring_timer();
        self.step += 1;
        let callee = self.callee_party_or_dialled();
        let dir = self.now.directory.clone();
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
                Target::Extension(x) => match dir.user_by_extension(self.setup.tenant, x) {
                    Some(u) => {
                        self.pending_dials += 1;
                        self.out.push(Output::GetBindings {
                            user: u.id,
                            step: self.step,
                            callee: callee.clone(),
                        });
                    }
                    None => self.failures.push(404),
                },
                Target::Attendant => self.failures.push(480),
            }
        }
        let seconds = step
            .seconds
            .min(self.config.ring_timeout.as_secs() as u32)
            .max(1);
        self.arm_step_timer(Duration::from_secs(seconds as u64));
        self.dial(dials, &callee);
        self.check_step_done();
    }

    /// The contacts of a user rung as a step's extension target.
    pub(super) fn on_bindings(
        &mut self,
        step: u32,
        user: UserId,
        callee: PartyInfo,
        bindings: Option<Vec<Binding>>,
    ) {
        self.pending_dials = self.pending_dials.saturating_sub(1);
        if self.phase != Phase::Ringing || self.step != step {
            return;
        }
        let Some(bindings) = bindings else {
            // The user has no actor (the directory changed meanwhile).
            self.failures.push(404);
            self.check_step_done();
            return;
        };
        let targets: Vec<_> = bindings
            .into_iter()
            .map(|b| Ring::to(DialTarget::Contact(b), Some(user)))
            .collect();
        if targets.is_empty() {
            self.failures.push(480);
        }
        self.dial(targets, &callee);
        self.check_step_done();
    }

    pub(super) fn dial(&mut self, targets: Vec<Ring>, callee: &PartyInfo) {
        let caller = self.shown_caller.clone();
        self.dial_with(targets, &caller, callee);
    }

    /// Starts one leg per target on the dialled side, showing `caller` in From and
    /// `callee` in To.
    fn dial_with(&mut self, targets: Vec<Ring>, caller: &PartyInfo, callee: &PartyInfo) {
        let now = self.now.at;
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
            self.out.push(Output::Dial(Box::new(DialOut {
                leg,
                target,
                caller: caller.clone(),
                callee: callee.clone(),
                body: body.clone(),
            })));
        }
    }

    /// When every leg of the current step has failed: busy everywhere goes to the busy
    /// target, anything else moves on to the next step.
    pub(super) fn check_step_done(&mut self) {
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
            self.cancel_ring_timer();
            let action = self.program.next(ProgramEvent::Busy);
            self.run(action);
            return;
        }
        self.next_step();
    }

    /// Nobody (more) to ring: the anchor gets `code` and the call ends. A call that was
    /// answered before (the target of a transfer failed) stays answered in the record.
    pub(super) fn reject_all(&mut self, code: u16, outcome: CallOutcome) {
        self.release_anchor(code);
        let (outcome, by) = if self.answered_at.is_some() {
            (CallOutcome::Answered, Some(Party::System))
        } else {
            let by = (outcome == CallOutcome::NoAnswer).then_some(Party::System);
            (outcome, by)
        };
        self.finish(outcome, by);
    }

    /// Ends the anchor leg before it was connected: a final status on an incoming
    /// INVITE, a BYE on a dialog.
    pub(super) fn release_anchor(&mut self, code: u16) {
        let Some(a) = self.sides.anchor() else { return };
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

    /// Personal mode: a call the upstream delivered, not answered yet: a number is for
    /// the upstream to route (issue 3: the tenant honours its user's server's
    /// redirects), rather than for this tsps to call back up through its trunk.
    fn redirects_upstream(&self) -> bool {
        matches!(self.setup.origin, CallOrigin::Trunk { .. })
            && self.config.upstream
            && self
                .sides
                .anchor()
                .is_some_and(|a| a.kind == AnchorKind::Incoming && self.sides.answered().is_none())
    }

    /// Answers the upstream's INVITE with 302 to `number` in the tenant's domain, which
    /// in personal mode is the upstream's own.
    fn redirect_upstream(&mut self, number: String) {
        let Some(a) = self.sides.anchor() else { return };
        let domain = self
            .now
            .directory
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
        self.finish(CallOutcome::Rejected, None);
    }

    /// What the called user chose for the ringing call, overriding the plan.
    pub(super) fn apply_override(&mut self, action: OverrideAction) -> Result<(), OverrideError> {
        // A click-to-dial still ringing the user's own device is not a call to decide.
        if self.phase != Phase::Ringing || self.sides.anchor().is_none() {
            return Err(OverrideError::NotRinging);
        }
        self.publish(CallEventKind::Overridden {
            action: format!("{action:?}"),
        });
        match action {
            OverrideAction::Reject => {
                self.cancel_out_legs(None);
                self.reject_all(603, CallOutcome::Rejected);
            }
            OverrideAction::Forward(target) => {
                self.cancel_out_legs(None);
                self.program.next(ProgramEvent::Redirected);
                self.forward_to(target);
            }
            OverrideAction::Attendant => {
                let Some(target) = self.attendant.clone() else {
                    return Err(OverrideError::NoAttendant);
                };
                self.cancel_out_legs(None);
                self.program.next(ProgramEvent::Redirected);
                self.forward_to(target);
            }
            OverrideAction::AnswerOn(device) => self.answer_on(device)?,
        }
        Ok(())
    }

    /// Keep ringing only this device of the user (ring it if it was not ringing).
    fn answer_on(&mut self, device: DeviceId) -> Result<(), OverrideError> {
        let dir = self.now.directory.clone();
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
        let now = self.now.at;
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
        self.program.next(ProgramEvent::Overridden);
        // The chosen device rings as a step of its own, for the ring timeout: the
        // plan's step timer (a no-answer forward after N s) no longer applies, and a
        // device rung only now must not ring forever.
        self.cancel_ring_timer();
        self.step += 1;
        let step_no = self.step;
        // Remote answer: a device that rings already is told now, one still to ring
        // once it does (the NOTIFY needs the dialog its 180 opened).
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
        let after = self.config.ring_timeout;
        self.arm_step_timer(after);
        if keep.is_empty() {
            let callee = self.callee_party_or_dialled();
            self.dial(vec![ring], &callee);
            if let Some(l) = self.legs.last_mut() {
                l.talk = talk;
            }
        }
        Ok(())
    }
}
