//! Third-party call control: what a user does from the portal with a call they take
//! part in. Hold and resume (tsps itself re-INVITEs the other party), release, blind
//! and consultative transfer, and answer on one device of a ringing call (the per-call
//! override).
//!
//! Consultative transfer joins the other parties of two answered calls of the user.
//! The call the request names keeps running and takes over the remaining leg of the
//! other call, which ends: one call actor then owns both remaining legs, so hold,
//! release, another transfer and the hangups work on the joined call as on any other.
//! The alternative, two actors each keeping its leg and relaying every in-dialog
//! request to the other for the rest of the call, spreads one call over two owners.
//! The adopted leg stays on its own SIP shard (its dialog lives there): the shard is
//! told to send the leg's events to the new owner ([`LegCommand::HandOver`]) and the
//! new owner sends the leg's commands there. The media are joined as in RFC 3725
//! flow I: the adopted party gets a re-INVITE without an offer, its offer goes to the
//! remaining party in a re-INVITE, and that party's answer back in the ACK.
//!
//! A user's role in the call decides what is allowed: their leg is connected, their
//! leg anchors a call that is still ringing elsewhere, their own device is being rung
//! for a click-to-dial, or the call rings to them. A user with no role (another user,
//! or one who transferred the call away) gets [`ControlError::NotFound`].

use super::api::{Control, ControlAction, ControlError, LegHandOff, OverrideAction, OverrideError};
use super::call_core::{AfterHandOver, CallCore, HandOverWait, Phase};
use super::io::{Output, Reply, ReplyId};
use super::leg::{Anchor, AnchorKind, Leg, LegState, OwnReInvite, ReInvite, Sides};
use super::program::ProgramEvent;
use super::sdp;
use crate::events::CallEventKind;
use crate::feature::Target;
use crate::ids::{CallId, LegId, UserId};
use crate::model::{CallOutcome, Party};
use crate::ports::{Body, LegCommand, PartyInfo};
use crate::routing::{route_dialled, Route};
use crate::user::CallPhase;
use tracing::warn;

/// What the user is to the call right now.
#[derive(Clone, Copy, Debug)]
pub(super) enum Role {
    /// The user's leg is connected to the other party.
    Connected(LegId),
    /// The user's leg anchors the call while the other side rings.
    Waiting,
    /// Click-to-dial: the user's own device is being rung.
    Dialing,
    /// The call rings to the user.
    Ringing,
}

impl CallCore {
    pub(super) fn role_of(&self, user: UserId) -> Option<Role> {
        if let Some(role) = self.conference_role(user) {
            return role;
        }
        let mine = |leg: LegId| self.leg(leg).is_some_and(|l| l.user == Some(user));
        if let Some(a) = self.sides.anchor().filter(|a| mine(a.leg)) {
            return Some(if self.phase == Phase::Answered {
                Role::Connected(a.leg)
            } else {
                Role::Waiting
            });
        }
        if let Some(b) = self.sides.answered().filter(|b| mine(*b)) {
            return Some(Role::Connected(b));
        }
        if self.phase != Phase::Ringing {
            return None;
        }
        if self.sides.anchor().is_none() && self.caller_user == Some(user) {
            return Some(Role::Dialing);
        }
        let rung = self.legs.iter().any(|l| {
            !l.incoming
                && matches!(l.state, LegState::Dialing | LegState::Early)
                && l.user == Some(user)
        });
        (rung || self.target_user == Some(user)).then_some(Role::Ringing)
    }

    /// A control command; answered now, or (hold, resume, join, conference) once done.
    pub(super) fn on_control(
        &mut self,
        reply: ReplyId,
        user: UserId,
        action: ControlAction,
        other_live: bool,
    ) {
        let msg = Control { user, action };
        match self.control(msg, reply, other_live) {
            Ok(true) => {}
            Ok(false) => self.reply(reply, Reply::Control(Ok(()))),
            Err(e) => self.reply(reply, Reply::Control(Err(e))),
        }
    }

    /// Ok(true): the answer comes later, to `reply`.
    fn control(
        &mut self,
        msg: Control,
        reply: ReplyId,
        other_live: bool,
    ) -> Result<bool, ControlError> {
        if self.phase == Phase::Ended {
            return Err(ControlError::NotFound);
        }
        let role = self.role_of(msg.user).ok_or(ControlError::NotFound)?;
        if self.hand_over.is_some() {
            return Err(ControlError::WrongState("a transfer is in progress"));
        }
        if self.sides.conference().is_some() {
            return match (msg.action, role) {
                (ControlAction::Release, Role::Connected(leg)) => {
                    self.conference_release(leg);
                    Ok(false)
                }
                (ControlAction::Conference { with }, role) => self
                    .conference(msg.user, role, with, reply, other_live)
                    .map(|()| true),
                _ => Err(ControlError::WrongState(
                    "a conference can only be released or extended",
                )),
            };
        }
        match msg.action {
            ControlAction::Hold => self.change_media(role, true, reply).map(|()| true),
            ControlAction::Resume => self.change_media(role, false, reply).map(|()| true),
            ControlAction::Release => {
                self.release(role);
                Ok(false)
            }
            ControlAction::Transfer { target } => {
                self.transfer(msg.user, role, &target)?;
                Ok(false)
            }
            ControlAction::Join { with } => self
                .join(msg.user, role, with, reply, other_live)
                .map(|()| true),
            ControlAction::Conference { with } => self
                .conference(msg.user, role, with, reply, other_live)
                .map(|()| true),
            action @ (ControlAction::AnswerOn(_)
            | ControlAction::Forward(_)
            | ControlAction::Attendant) => {
                // Only the user the call rings to may redirect it (not a colleague whose
                // phone rings in parallel).
                if !matches!(role, Role::Ringing) || self.target_user != Some(msg.user) {
                    return Err(ControlError::WrongState(
                        "the call is not ringing to the user",
                    ));
                }
                if let ControlAction::AnswerOn(d) = &action {
                    let dir = self.now.directory.clone();
                    let phone = dir.external_phone(*d).filter(|p| p.user_id == msg.user);
                    if phone.is_some() && dir.trunks_of_tenant(self.setup.tenant).next().is_none() {
                        return Err(ControlError::WrongState(
                            "the tenant has no trunk to reach the external phone",
                        ));
                    }
                }
                let action = match action {
                    ControlAction::AnswerOn(d) => OverrideAction::AnswerOn(d),
                    ControlAction::Forward(t) => OverrideAction::Forward(t),
                    _ => OverrideAction::Attendant,
                };
                self.apply_override(action)
                    .map(|()| false)
                    .map_err(|e| match e {
                        OverrideError::UnknownDevice => ControlError::UnknownDevice,
                        OverrideError::NoAttendant => {
                            ControlError::WrongState("the user has no attendant")
                        }
                        OverrideError::NotRinging => {
                            ControlError::WrongState("the call is not ringing")
                        }
                    })
            }
        }
    }

    /// Hold (or resume): the other party gets a re-INVITE with the user's own session
    /// description turned `a=sendonly` (back to `a=sendrecv`); the user's device is not
    /// asked, its media simply goes unanswered while held. The answer is ACKed here.
    fn change_media(&mut self, role: Role, hold: bool, reply: ReplyId) -> Result<(), ControlError> {
        let Role::Connected(mine) = role else {
            return Err(ControlError::WrongState("the call is not answered"));
        };
        let other = self
            .peer_of(mine)
            .ok_or(ControlError::WrongState("the call is not answered"))?;
        if !self.reinvite.is_idle() || self.leg(other).is_some_and(|l| l.needs_ack) {
            return Err(ControlError::WrongState("a re-INVITE is in progress"));
        }
        let by = self.side_of(mine);
        if hold && self.held_by == Some(by) {
            return Err(ControlError::WrongState("the call is already on hold"));
        }
        if !hold && self.held_by != Some(by) {
            return Err(ControlError::WrongState("the call is not on hold"));
        }
        let sdp = self
            .leg(mine)
            .and_then(|l| l.sdp.clone())
            .ok_or(ControlError::WrongState(
                "no session description of the user's side is known",
            ))?;
        self.sdp_bump += 1;
        let direction = if hold { "sendonly" } else { "sendrecv" };
        let body = sdp::with_direction(&sdp, direction, self.sdp_bump);
        self.reinvite = ReInvite::Own(OwnReInvite::Media {
            leg: other,
            by,
            held: hold,
            reply,
        });
        self.send(LegCommand::ReOffer {
            leg: other,
            body: Some(body),
        });
        Ok(())
    }

    /// The answer to a re-INVITE tsps sent itself.
    pub(super) fn own_reinvite_answered(&mut self, code: u16, body: Option<Body>) {
        let ok = (200..300).contains(&code);
        match self.reinvite.take_own() {
            Some(OwnReInvite::Media {
                leg,
                by,
                held,
                reply,
            }) => {
                if ok {
                    self.ack(leg, None);
                    self.held_by = held.then_some(by);
                    self.publish(CallEventKind::MediaChanged { by, held });
                    self.reply(reply, Reply::Control(Ok(())));
                } else {
                    // A non-2xx final response is ACKed by the transaction layer. The
                    // code is for the log, not for the user.
                    tracing::info!(call = %self.setup.call, code, "re-INVITE refused");
                    self.decision
                        .push("the other phone refused a hold or resume".into());
                    self.reply(reply, Reply::Control(Err(ControlError::Refused(code))));
                }
            }
            Some(OwnReInvite::Fetch { leg, then }) => match body.filter(|_| ok) {
                Some(offer) => {
                    self.reinvite = ReInvite::Own(OwnReInvite::Connect {
                        anchor: then,
                        new: leg,
                    });
                    self.send(LegCommand::ReOffer {
                        leg: then,
                        body: Some(offer),
                    });
                }
                None => {
                    warn!(call = %self.setup.call, code, "the joined party gave no offer");
                    self.hang_up(leg);
                    self.hang_up(then);
                    self.finish(CallOutcome::Answered, Some(Party::System));
                }
            },
            Some(OwnReInvite::Connect { anchor, new }) => {
                if ok {
                    self.ack(anchor, None);
                    self.ack(new, body);
                } else {
                    warn!(call = %self.setup.call, code, "the remaining party refused the new party's offer");
                    self.hang_up(new);
                    self.hang_up(anchor);
                    self.finish(CallOutcome::Answered, Some(Party::System));
                }
            }
            None => {}
        }
    }

    fn release(&mut self, role: Role) {
        match role {
            Role::Connected(mine) => {
                let by = self.side_of(mine);
                if let Some(b) = self.sides.answered() {
                    self.hang_up(b);
                }
                if let Some(a) = self.sides.anchor() {
                    self.hang_up(a.leg);
                }
                self.finish(CallOutcome::Answered, Some(by));
            }
            Role::Waiting => {
                let side = self.sides.anchor().map_or(Party::Caller, |a| a.side);
                self.cancel_out_legs(None);
                // 487 to the user's own INVITE: their device sees the call end as if
                // it had cancelled it.
                self.release_anchor(487);
                let outcome = if self.answered_at.is_some() {
                    CallOutcome::Answered
                } else {
                    CallOutcome::Cancelled
                };
                self.finish(outcome, Some(side));
            }
            Role::Dialing => {
                self.cancel_out_legs(None);
                self.finish(CallOutcome::Cancelled, Some(Party::Caller));
            }
            Role::Ringing => {
                // Declined by the user, as the per-call override does it.
                let _ = self.apply_override(OverrideAction::Reject);
            }
        }
    }

    /// Blind transfer. The user's leg is hung up; the other party stays as the anchor
    /// and the target is dialled on the user's side, routed like a forward. The target
    /// gets an INVITE without an offer: its 200 carries an offer that goes to the
    /// remaining party in a re-INVITE, and the remaining party's answer goes back to
    /// the target in our ACK (RFC 3725 §5, flow I). Offering the remaining party's old
    /// SDP to the target instead would answer an offer that party no longer stands by.
    fn transfer(&mut self, user: UserId, role: Role, target: &str) -> Result<(), ControlError> {
        ControlError::check_dialled(target)?;
        let Role::Connected(mine) = role else {
            return Err(ControlError::WrongState(
                "only an answered call can be transferred",
            ));
        };
        let other = self
            .peer_of(mine)
            .ok_or(ControlError::WrongState("the call is not answered"))?;
        if !self.reinvite.is_idle() {
            return Err(ControlError::WrongState("a re-INVITE is in progress"));
        }
        let dir = self.now.directory.clone();
        let domain = self.setup.caller.domain.clone();
        let (to, party) = match route_dialled(&dir, self.setup.tenant, target) {
            Route::User(u) => {
                let u = dir
                    .user(u)
                    .ok_or_else(|| ControlError::bad_target(target))?;
                let party = PartyInfo {
                    user: u.extension.clone(),
                    display_name: Some(u.display_name.clone()),
                    domain,
                };
                (Target::Extension(u.extension.clone()), party)
            }
            Route::Outside { number, .. } => {
                let party = PartyInfo {
                    user: number.clone(),
                    display_name: None,
                    domain,
                };
                (Target::Number(number), party)
            }
            Route::NotFound => return Err(ControlError::bad_target(target)),
            Route::NoTrunk => return Err(ControlError::NoTrunk),
        };
        let by = dir
            .user(user)
            .map(|u| u.extension.clone())
            .unwrap_or_default();
        self.decision.push(format!("{by}: transferred to {target}"));

        // The user's leg leaves the call.
        let now = self.now.at;
        self.hang_up(mine);
        if let Some(l) = self.leg_mut(mine) {
            l.record.ended_at = Some(now);
        }
        self.publish(CallEventKind::LegEnded {
            leg: mine,
            code: None,
        });
        self.set_user_phase(Some(user), None);

        // The remaining party anchors the call while the target rings.
        let side = self.side_of(other);
        self.shown_caller = match side {
            Party::Caller => self.caller_party.clone(),
            _ => {
                // The target takes the caller side.
                let remaining = self.callee_party_or_dialled();
                self.caller_party = party.clone();
                remaining
            }
        };
        self.callee_party = Some(party);
        self.sides = Sides::Anchored(Anchor {
            leg: other,
            side,
            kind: AnchorKind::Established,
        });
        self.held_by = None;
        self.phase = Phase::Ringing;
        self.program.next(ProgramEvent::Overridden);
        self.failures.clear();
        self.visited.clear();
        self.target_user = None;
        self.target_bindings.clear();
        self.attendant = None;
        self.redirects = 0;
        self.forward_to(to);
        Ok(())
    }
}

/// A connected call's legs are free for a transfer: no re-INVITE of either side or of
/// tsps is under way and no 2xx waits for its ACK.
pub(super) fn settled(act: &CallCore, legs: [LegId; 2]) -> Result<(), ControlError> {
    let busy = !act.reinvite.is_idle()
        || act.hand_over.is_some()
        || legs
            .iter()
            .any(|l| act.leg(*l).is_some_and(|l| l.needs_ack));
    if busy {
        Err(ControlError::WrongState("a re-INVITE is in progress"))
    } else {
        Ok(())
    }
}

impl CallCore {
    /// Consultative transfer, on the call that stays: asks the call `with` for its leg
    /// of the user's other party. Answered once that leg has joined this call.
    fn join(
        &mut self,
        user: UserId,
        role: Role,
        with: CallId,
        reply: ReplyId,
        other_live: bool,
    ) -> Result<(), ControlError> {
        let Role::Connected(mine) = role else {
            return Err(ControlError::WrongState("the call is not answered"));
        };
        if with == self.setup.call {
            return Err(ControlError::WrongState(
                "a call cannot be joined with itself",
            ));
        }
        let other = self
            .peer_of(mine)
            .ok_or(ControlError::WrongState("the call is not answered"))?;
        settled(self, [mine, other])?;
        if !other_live {
            return Err(ControlError::NotFound);
        }
        self.ask_hand_over(user, with, reply, AfterHandOver::Join { user, mine });
        Ok(())
    }

    /// Asks the call `with` for `user`'s other party; `then` says what to do with the
    /// leg once it is handed. Events of that leg that arrive meanwhile wait in
    /// `stashed` and are handled again after. `reply` answers the user's request.
    pub(super) fn ask_hand_over(
        &mut self,
        user: UserId,
        with: CallId,
        reply: ReplyId,
        then: AfterHandOver,
    ) {
        self.hand_over = Some(HandOverWait {
            with,
            reply,
            then,
            stashed: Vec::new(),
        });
        // The shell asks without waiting in the mailbox: the other call may be asking
        // us at the same moment, and both must still answer.
        self.out.push(Output::AskHandOver { with, user });
    }

    /// The other call answered our hand-over request.
    pub(super) fn handed_over(&mut self, res: Result<LegHandOff, ControlError>) {
        let Some(HandOverWait {
            with,
            reply,
            then,
            stashed,
        }) = self.hand_over.take()
        else {
            return;
        };
        let res = res.and_then(|h| match then {
            AfterHandOver::Join { user, mine } => self.adopt(user, mine, with, h),
            AfterHandOver::Conference { user, mine, bridge } => {
                self.conference_adopt(user, mine, with, h, bridge)
            }
        });
        // This call ended meanwhile: its `finish` waited for this answer.
        if res.is_err() && self.phase == Phase::Ended {
            self.out.push(Output::Stop);
        }
        for ev in stashed {
            self.out.push(Output::Requeue(ev));
        }
        self.reply(reply, Reply::Control(res));
    }

    /// Consultative transfer, on the call that ends: the user's leg is hung up and the
    /// other party's leg moves to the call `into`.
    pub(super) fn hand_over(
        &mut self,
        user: UserId,
        into: CallId,
    ) -> Result<LegHandOff, ControlError> {
        if self.phase == Phase::Ended {
            return Err(ControlError::NotFound);
        }
        if self.sides.conference().is_some() && self.role_of(user).is_some() {
            return Err(ControlError::WrongState(
                "the other call is a conference: add this call to it instead",
            ));
        }
        let Some(Role::Connected(mine)) = self.role_of(user) else {
            return Err(match self.role_of(user) {
                None => ControlError::NotFound,
                Some(_) => ControlError::WrongState("the other call is not answered"),
            });
        };
        let other = self
            .peer_of(mine)
            .ok_or(ControlError::WrongState("the other call is not answered"))?;
        settled(self, [mine, other])?;
        let side = self.side_of(other);
        let dir = self.now.directory.clone();
        let l = self.leg(other).ok_or(ControlError::NotFound)?;
        let party = match l.user.and_then(|u| dir.user(u)) {
            Some(u) => PartyInfo {
                user: u.extension.clone(),
                display_name: Some(u.display_name.clone()),
                domain: self.setup.caller.domain.clone(),
            },
            None if side == Party::Caller => self.caller_party.clone(),
            None => self.callee_party_or_dialled(),
        };
        let handed = LegHandOff {
            leg: other,
            incoming: l.incoming,
            user: l.user,
            device: l.device,
            sdp: l.sdp.clone(),
            record: l.record.clone(),
            party,
        };
        // The shard sends the leg's events to the joining call from now on; the command
        // goes out before this call ends, so no event of the leg is lost in between.
        self.out.push(Output::HandOverLeg(other));
        let now = self.now.at;
        if let Some(l) = self.leg_mut(other) {
            // Not ours any more: nothing here may end it.
            l.state = LegState::Done;
            l.record.ended_at = Some(now);
        }
        let ext = self.extension_of(user);
        self.decision.push(format!(
            "{ext}: joined {} with call {} (consultative transfer)",
            handed.party.user, into
        ));
        let by = self.side_of(mine);
        self.hang_up(mine);
        self.finish(CallOutcome::Answered, Some(by));
        Ok(handed)
    }

    /// Consultative transfer, on the call that stays, once the other call answered:
    /// the user's leg leaves, the handed-over leg takes its side, and the media of the
    /// two remaining parties are joined (see the module docs).
    fn adopt(
        &mut self,
        user: UserId,
        mine: LegId,
        with: CallId,
        h: LegHandOff,
    ) -> Result<(), ControlError> {
        let remaining = self.peer_of(mine).filter(|_| self.phase == Phase::Answered);
        let Some(remaining) = remaining else {
            // This call ended while the other one handed over (its `finish` waited for
            // this answer): the handed-over party has no one to talk to.
            self.send(LegCommand::Hangup { leg: h.leg });
            return Err(ControlError::NotFound);
        };
        let now = self.now.at;
        let side = self.side_of(mine);

        // The user's leg leaves the call.
        self.hang_up(mine);
        if let Some(l) = self.leg_mut(mine) {
            l.record.ended_at = Some(now);
        }
        self.publish(CallEventKind::LegEnded {
            leg: mine,
            code: None,
        });
        self.set_user_phase(Some(user), None);

        // The other call's party takes the user's side.
        let ext = self.extension_of(user);
        self.decision.push(format!(
            "{ext}: joined with {} of call {with} (consultative transfer)",
            h.party.user
        ));
        let (joined, party) = self.take_over(h, side, with);
        match side {
            Party::Caller => self.caller_party = party,
            _ => self.callee_party = Some(party),
        }
        self.sides = Sides::Connected {
            anchor: Anchor {
                leg: remaining,
                side: self.side_of(remaining),
                kind: AnchorKind::Established,
            },
            answered: joined,
        };
        self.held_by = None;

        // The joined party makes a fresh offer; it goes to the remaining party.
        self.reinvite = ReInvite::Own(OwnReInvite::Fetch {
            leg: joined,
            then: remaining,
        });
        self.send(LegCommand::ReOffer {
            leg: joined,
            body: None,
        });
        Ok(())
    }

    /// The leg another call handed over is this call's now, on `side` (consultative
    /// transfer, conference): its party and the leg's id.
    pub(super) fn take_over(
        &mut self,
        h: LegHandOff,
        side: Party,
        with: CallId,
    ) -> (LegId, PartyInfo) {
        let mut record = h.record;
        record.role = side;
        record.ended_at = None;
        self.legs.push(Leg {
            state: LegState::Answered,
            record,
            incoming: h.incoming,
            ringing_published: true,
            user: h.user,
            step: self.step,
            sdp: h.sdp,
            needs_ack: false,
            device: h.device,
            talk: false,
        });
        self.publish(CallEventKind::LegJoined {
            leg: h.leg,
            side,
            user: h.user,
            device: h.device,
            number: h.party.user.clone(),
            from_call: with,
        });
        self.set_user_phase(h.user, Some(CallPhase::Active));
        (h.leg, h.party)
    }
}
