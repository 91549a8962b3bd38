//! Conference: a user merges two of their answered calls into one, mixed by tsps's own
//! media bridge ([`crate::ports::Bridge`]).
//!
//! The call the request names stays and becomes the conference; it adopts the other
//! party of the user's other call exactly as a consultative transfer does
//! ([`super::api::HandOver`]: that call hangs up the user's leg and ends), but keeps the
//! user's own leg. From then on the two-sided model (anchor and answered leg) is off:
//! every live leg is a *member*, re-INVITEd with the bridge's offer for its own port,
//! and hears the others through the bridge. Media no longer flow between phones.
//!
//! The user who merged the calls is the host: adding parties is theirs, and when they
//! leave the conference ends for everyone (the parties were called on the host's
//! behalf; an outside-to-outside call left running on the host's trunk is a toll fraud
//! pattern). Another party leaving leaves the rest talking; when one party is left the
//! call ends.

use super::api::{ControlError, LegHandOff};
use super::call_core::{AfterHandOver, CallCore, Phase};
use super::control::{settled, Role};
use super::io::{ReplyId, Timer};
use super::leg::{LegState, Sides};
use super::members::{Conference, Member, MemberState};
use crate::events::{CallEventKind, ConferenceParty};
use crate::ids::{CallId, LegId, UserId};
use crate::model::{CallOutcome, Party};
use crate::ports::{Body, Bridge, LegCommand, LegEventKind, MediaError, PartyInfo};
use std::time::Duration;
use tracing::warn;

/// How often a member's re-INVITE is tried again after 491 (glare with its own).
const GLARE_RETRIES: u8 = 3;

impl CallCore {
    /// The user's live leg in the conference, host's leg first.
    pub(super) fn conference_role(&self, user: UserId) -> Option<Option<Role>> {
        let c = self.sides.conference()?;
        let mine = |leg: LegId| self.leg(leg).is_some_and(|l| l.user == Some(user));
        let leg = std::iter::once(c.host_leg)
            .chain(c.members())
            .find(|l| c.is_member(*l) && mine(*l));
        Some(leg.map(Role::Connected))
    }

    /// `ControlAction::Conference`: asks the call `with` for the user's other party;
    /// answered once that party has joined and the re-INVITEs to the bridge are out.
    pub(super) fn conference(
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
                "a call cannot be conferenced with itself",
            ));
        }
        if self.sides.conference().is_some_and(|c| c.host != user) {
            return Err(ControlError::WrongState(
                "only the host adds parties to the conference",
            ));
        }
        if !other_live {
            return Err(ControlError::NotFound);
        }
        let bridge = match self.sides.conference() {
            Some(_) => None,
            None => {
                let other = self
                    .peer_of(mine)
                    .ok_or(ControlError::WrongState("the call is not answered"))?;
                settled(self, [mine, other])?;
                // The bridge first: without media there is no point in taking the
                // other call's party.
                let bridge = self
                    .media
                    .open_bridge(self.setup.tenant, self.setup.call)
                    .map_err(ControlError::Media)?;
                Some(bridge)
            }
        };
        self.ask_hand_over(
            user,
            with,
            reply,
            AfterHandOver::Conference { user, mine, bridge },
        );
        Ok(())
    }

    /// The other call handed its party over: it joins the conference (which starts now
    /// when this was a two-party call).
    pub(super) fn conference_adopt(
        &mut self,
        user: UserId,
        mine: LegId,
        with: CallId,
        h: LegHandOff,
        bridge: Option<Box<dyn Bridge>>,
    ) -> Result<(), ControlError> {
        // The user's leg must still be here: the call may have ended, or the user hung
        // up, while the other call handed over.
        let live = self.phase == Phase::Answered
            && match self.sides.conference() {
                Some(c) => c.is_member(mine),
                None => self.peer_of(mine).is_some(),
            };
        if !live {
            self.send(LegCommand::Hangup { leg: h.leg });
            return Err(ControlError::NotFound);
        }
        let ext = self.extension_of(user);
        self.decision.push(format!(
            "{ext}: conference with {} of call {with}",
            h.party.user
        ));
        let (joined, party) = self.take_over(h, Party::Callee, with);

        let mut invite = Vec::new();
        if let Some(bridge) = bridge {
            // A two-party call becomes a conference: both its legs go to the bridge too.
            let other = self.peer_of(mine).expect("checked above");
            let members = [mine, other]
                .into_iter()
                .map(|leg| Member {
                    leg,
                    party: self.party_of(leg),
                    state: MemberState::Offered,
                    glare: 0,
                })
                .collect();
            // The two-sided model is off: the members' events go to `on_member`.
            self.sides = Sides::Conference(Conference {
                bridge,
                host: user,
                host_leg: mine,
                members,
            });
            self.held_by = None;
            invite.extend([mine, other]);
        }
        if let Some(c) = self.sides.conference_mut() {
            c.members.push(Member {
                leg: joined,
                party,
                state: MemberState::Offered,
                glare: 0,
            });
        }
        invite.push(joined);
        for leg in invite {
            self.offer_bridge(leg);
        }
        self.publish_conference();
        Ok(())
    }

    /// Who the party on `leg` is, as shown to the others.
    pub(super) fn party_of(&self, leg: LegId) -> PartyInfo {
        let dir = self.now.directory.clone();
        match self.leg(leg).and_then(|l| l.user).and_then(|u| dir.user(u)) {
            Some(u) => PartyInfo {
                user: u.extension.clone(),
                display_name: Some(u.display_name.clone()),
                domain: self.setup.caller.domain.clone(),
            },
            None if self.side_of(leg) == Party::Caller => self.caller_party.clone(),
            None => self.callee_party_or_dialled(),
        }
    }

    /// Sends `leg` a re-INVITE with the bridge's offer for it.
    fn offer_bridge(&mut self, leg: LegId) {
        let Some(c) = self.sides.conference_mut() else {
            return;
        };
        match c.bridge.offer(leg) {
            Ok(body) => {
                if let Some(m) = c.member(leg) {
                    m.state = MemberState::Offered;
                }
                self.send(LegCommand::ReOffer {
                    leg,
                    body: Some(body),
                });
            }
            Err(e) => {
                warn!(call = %self.setup.call, %leg, error = %e, "no bridge port for a party");
                self.member_leaves(leg, true);
            }
        }
    }

    fn publish_conference(&mut self) {
        let Some(c) = self.sides.conference() else {
            return;
        };
        let parties = c
            .members
            .iter()
            .map(|m| {
                let l = self.leg(m.leg);
                ConferenceParty {
                    leg: m.leg,
                    user: l.and_then(|l| l.user),
                    device: l.and_then(|l| l.device),
                    number: m.party.user.clone(),
                    name: m.party.display_name.clone(),
                }
            })
            .collect();
        let host = c.host;
        self.publish(CallEventKind::Conference { host, parties });
    }

    /// An event of a leg while the call is a conference.
    pub(super) fn on_member(&mut self, leg: LegId, kind: LegEventKind) {
        let Some(state) = self
            .sides
            .conference_mut()
            .and_then(|c| c.member(leg))
            .map(|m| m.state)
        else {
            // Not a member (a leg that lost a race long ago): the old rules.
            return self.on_dialled(leg, kind);
        };
        match kind {
            LegEventKind::ReAnswer { code, body } if state == MemberState::Offered => {
                let ok = (200..300).contains(&code);
                if let (Some(l), true) = (self.leg_mut(leg), ok) {
                    l.needs_ack = true;
                    if body.is_some() {
                        l.sdp = body.clone();
                    }
                }
                if ok {
                    self.ack(leg, None);
                    self.bridge_answer(leg, body);
                } else if code == 491 {
                    self.retry_after_glare(leg);
                } else {
                    warn!(call = %self.setup.call, %leg, code, "a party refused the conference");
                    self.member_leaves(leg, true);
                }
            }
            LegEventKind::ReAnswer { code, .. } => {
                // An answer we did not wait for: a 2xx still needs its ACK.
                if (200..300).contains(&code) {
                    self.ack(leg, None);
                }
            }
            LegEventKind::ReOffer { body } => self.member_reoffer(leg, state, body),
            LegEventKind::Acked { body } => {
                if state == MemberState::AwaitingAck {
                    if let (Some(l), Some(_)) = (self.leg_mut(leg), &body) {
                        l.sdp = body.clone();
                    }
                    self.bridge_answer(leg, body);
                }
            }
            LegEventKind::Hangup | LegEventKind::Failed { .. } => {
                self.member_leaves(leg, false);
            }
            LegEventKind::Progress { .. }
            | LegEventKind::Answered { .. }
            | LegEventKind::Redirected { .. }
            | LegEventKind::Cancelled => {}
        }
    }

    /// The member's answer to the bridge's offer: mixing for it starts.
    fn bridge_answer(&mut self, leg: LegId, body: Option<Body>) {
        let Some(c) = self.sides.conference_mut() else {
            return;
        };
        let res = match &body {
            Some(sdp) => c.bridge.answer(leg, sdp),
            None => Err(MediaError::BadSdp("no answer".into())),
        };
        match res {
            Ok(()) => {
                if let Some(m) = c.member(leg) {
                    m.state = MemberState::Joined;
                }
            }
            Err(e) => {
                warn!(call = %self.setup.call, %leg, error = %e, "a party's answer is unusable");
                self.member_leaves(leg, true);
            }
        }
    }

    /// 491: both sides re-INVITEd at once. Ours goes again after a while (RFC 3261
    /// §14.1: 2.1–4 s for the owner of the Call-ID; a short fixed pause suffices here,
    /// since the member's own re-INVITE is answered meanwhile).
    fn retry_after_glare(&mut self, leg: LegId) {
        let Some(m) = self.sides.conference_mut().and_then(|c| c.member(leg)) else {
            return;
        };
        m.glare += 1;
        if m.glare > GLARE_RETRIES {
            warn!(call = %self.setup.call, %leg, "re-INVITE glare persists: the party leaves");
            self.member_leaves(leg, true);
            return;
        }
        self.set_timer(Timer::Glare(leg), Duration::from_millis(1500));
    }

    /// The pause after 491 is over: our re-INVITE goes again if still wanted.
    pub(super) fn glare_timer_fired(&mut self, leg: LegId) {
        let offered = self
            .sides
            .conference_mut()
            .and_then(|c| c.member(leg))
            .is_some_and(|m| m.state == MemberState::Offered);
        if offered && self.phase == Phase::Answered {
            self.offer_bridge(leg);
        }
    }

    /// A member's own re-INVITE (hold, resume, a refresh): answered by tsps with the
    /// bridge's description; the other members are not asked.
    fn member_reoffer(&mut self, leg: LegId, state: MemberState, body: Option<Body>) {
        let reply = |code: u16, body: Option<Body>| LegCommand::ReAnswer { leg, code, body };
        if state != MemberState::Joined {
            // One re-INVITE at a time per dialog (RFC 3261 §14.2).
            self.send(reply(491, None));
            return;
        }
        let Some(c) = self.sides.conference_mut() else {
            return;
        };
        match body {
            Some(offer) => match c.bridge.reoffer(leg, &offer) {
                Ok(answer) => {
                    if let Some(l) = self.leg_mut(leg) {
                        l.sdp = Some(offer);
                    }
                    self.send(reply(200, Some(answer)));
                }
                Err(e) => {
                    warn!(call = %self.setup.call, %leg, error = %e, "a party's new offer is unusable");
                    self.send(reply(488, None));
                }
            },
            // An offerless re-INVITE: our offer goes in the 200, the answer in its ACK.
            None => match c.bridge.offer(leg) {
                Ok(offer) => {
                    if let Some(m) = c.member(leg) {
                        m.state = MemberState::AwaitingAck;
                    }
                    self.send(reply(200, Some(offer)));
                }
                Err(e) => {
                    warn!(call = %self.setup.call, %leg, error = %e, "no bridge offer");
                    self.send(reply(500, None));
                }
            },
        }
    }

    /// `leg` leaves the conference (it hung up, or with `hang_up` tsps ends it). The
    /// host leaving ends the conference; so does the last but one party leaving.
    pub(super) fn member_leaves(&mut self, leg: LegId, hang_up: bool) {
        let Some(c) = self.sides.conference_mut() else {
            return;
        };
        let Some(pos) = c.members.iter().position(|m| m.leg == leg) else {
            return;
        };
        c.members.remove(pos);
        c.bridge.remove(leg);
        let host_left = c.host_leg == leg;
        let remaining: Vec<LegId> = c.members().collect();
        let now = self.now.at;
        if hang_up {
            self.hang_up(leg);
        }
        let user = self.leg_mut(leg).and_then(|l| {
            l.state = LegState::Done;
            l.record.ended_at = Some(now);
            l.user
        });
        let by = self.side_of(leg);
        if host_left || remaining.len() < 2 {
            for other in remaining {
                self.hang_up(other);
            }
            let by = if hang_up {
                Some(Party::System)
            } else {
                Some(by)
            };
            self.finish(CallOutcome::Answered, by);
            return;
        }
        self.publish(CallEventKind::LegEnded { leg, code: None });
        self.set_user_phase(user, None);
        self.publish_conference();
    }

    /// Release by a party: the host ends the conference for everyone, anyone else
    /// leaves it.
    pub(super) fn conference_release(&mut self, leg: LegId) {
        let Some(c) = self.sides.conference() else {
            return;
        };
        if c.host_leg == leg {
            let by = self.side_of(leg);
            let members: Vec<LegId> = c.members().collect();
            for m in members {
                self.hang_up(m);
            }
            self.finish(CallOutcome::Answered, Some(by));
        } else {
            self.member_leaves(leg, true);
        }
    }

    /// Whatever stops the actor: every member is hung up.
    pub(super) fn conference_hang_up_all(&mut self) {
        let members: Vec<LegId> = self
            .sides
            .conference()
            .map(|c| c.members().collect())
            .unwrap_or_default();
        for m in members {
            self.hang_up(m);
        }
    }
}
