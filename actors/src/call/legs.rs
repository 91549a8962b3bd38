//! The legs' events: progress, answer (the first wins, the other forks are
//! cancelled), failure and hangup, and the in-dialog relay of a connected call (ACK,
//! re-INVITE and its answer cross to the other side, one re-INVITE at a time: another
//! one meanwhile gets 491).

use super::call_core::{CallCore, Phase};
use super::leg::{Anchor, AnchorKind, LegState, OwnReInvite, ReInvite, Sides};
use super::sdp::sdp_is_hold;
use crate::events::CallEventKind;
use crate::ids::LegId;
use crate::model::{CallOutcome, Party};
use crate::ports::{Body, LegCommand, LegEventKind};
use crate::user::CallPhase;
use tracing::warn;

impl CallCore {
    /// Cancels every dialled leg still ringing, except `keep`.
    pub(super) fn cancel_out_legs(&mut self, keep: Option<LegId>) {
        let now = self.now.at;
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

    /// Marks a live dialled leg as ended with this final status; false if it was
    /// unknown or already over (a late or repeated event).
    pub(super) fn end_out_leg(&mut self, leg: LegId, code: u16) -> bool {
        let now = self.now.at;
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

    pub(super) fn on_anchor(&mut self, a: Anchor, kind: LegEventKind) {
        match kind {
            LegEventKind::Cancelled => {
                if let Some(l) = self.leg_mut(a.leg) {
                    l.record.status_code = Some(487);
                    l.state = LegState::Done;
                }
                self.cancel_out_legs(None);
                self.finish(CallOutcome::Cancelled, Some(a.side));
            }
            LegEventKind::Hangup | LegEventKind::Failed { .. } => {
                if let Some(l) = self.leg_mut(a.leg) {
                    l.state = LegState::Done;
                }
                if let Some(b) = self.sides.answered() {
                    self.hang_up(b);
                    self.finish(CallOutcome::Answered, Some(a.side));
                } else {
                    self.cancel_out_legs(None);
                    let outcome = if self.answered_at.is_some() {
                        CallOutcome::Answered
                    } else {
                        CallOutcome::Cancelled
                    };
                    self.finish(outcome, Some(a.side));
                }
            }
            kind @ (LegEventKind::Acked { .. }
            | LegEventKind::ReOffer { .. }
            | LegEventKind::ReAnswer { .. }) => self.in_dialog(a.leg, kind),
            LegEventKind::Progress { .. }
            | LegEventKind::Answered { .. }
            | LegEventKind::Redirected { .. } => {}
        }
    }

    pub(super) fn on_dialled(&mut self, leg: LegId, kind: LegEventKind) {
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
                if let Some(a) = self
                    .sides
                    .anchor()
                    .filter(|a| a.kind == AnchorKind::Incoming)
                {
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
                self.connect(leg, body);
            }
            LegEventKind::Failed { code } => {
                if !self.end_out_leg(leg, code) {
                    return;
                }
                if self.sides.answered() == Some(leg) {
                    // The dialog died after answer (e.g. no ACK): treat as hangup.
                    self.answered_leg_gone(leg);
                    return;
                }
                self.failures.push(code);
                self.check_step_done();
            }
            LegEventKind::Redirected { code, targets } => {
                if !self.end_out_leg(leg, code) {
                    return;
                }
                self.redirected(targets);
            }
            LegEventKind::Hangup => {
                if self.sides.answered() == Some(leg) {
                    if let Some(l) = self.leg_mut(leg) {
                        l.state = LegState::Done;
                    }
                    self.answered_leg_gone(leg);
                }
            }
            kind @ (LegEventKind::Acked { .. }
            | LegEventKind::ReOffer { .. }
            | LegEventKind::ReAnswer { .. }) => self.in_dialog(leg, kind),
            LegEventKind::Cancelled => {}
        }
    }

    /// The connected dialled leg hung up: the anchor is hung up and the call ends.
    pub(super) fn answered_leg_gone(&mut self, leg: LegId) {
        let by = self.side_of(leg);
        if let Some(a) = self.sides.anchor() {
            self.hang_up(a.leg);
        }
        self.finish(CallOutcome::Answered, Some(by));
    }

    /// A dialled leg answered (first wins): connect it to the anchor, in the way the
    /// anchor's state allows.
    pub(super) fn connect(&mut self, leg: LegId, body: Option<Body>) {
        let now = self.now.at;
        let Some(l) = self.leg_mut(leg) else { return };
        l.state = LegState::Answered;
        l.record.answered_at = Some(now);
        l.record.status_code = Some(200);
        let answering_user = l.user;
        self.cancel_ring_timer();
        self.cancel_out_legs(Some(leg));
        let Some(a) = self.sides.anchor() else {
            // Click-to-dial: the user's device answered with its offer. It anchors the
            // call and waits for the answer in our ACK while the destination is routed
            // as if the device had dialled it (RFC 3725 flow I).
            self.sides = Sides::Anchored(Anchor {
                leg,
                side: Party::Caller,
                kind: AnchorKind::AwaitingAck,
            });
            self.publish(CallEventKind::Answered { leg });
            self.phase = Phase::Routing;
            self.admit();
            return;
        };
        self.sides = Sides::Connected {
            anchor: a,
            answered: leg,
        };
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
                    self.reinvite = ReInvite::Own(OwnReInvite::Connect {
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
                    self.finish(CallOutcome::Answered, Some(Party::System));
                    return;
                }
            },
        }
        if let Some(anchor) = self.sides.anchor_mut() {
            anchor.kind = AnchorKind::Established;
        }
        self.publish(CallEventKind::Answered { leg });
        self.set_user_phase(answering_user, Some(CallPhase::Active));
    }

    /// The other leg of a connected call.
    pub(super) fn peer_of(&self, leg: LegId) -> Option<LegId> {
        let b = self.sides.answered()?;
        let a = self.sides.anchor()?.leg;
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
    pub(super) fn in_dialog(&mut self, from: LegId, kind: LegEventKind) {
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
                Some(to) if self.reinvite.is_idle() && self.hand_over.is_none() => {
                    let by = self.side_of(from);
                    let held = body.as_deref().map(sdp_is_hold).unwrap_or(false);
                    self.held_by = held.then_some(by);
                    self.publish(CallEventKind::MediaChanged { by, held });
                    if let (Some(l), Some(_)) = (self.leg_mut(from), &body) {
                        l.sdp = body.clone();
                    }
                    self.reinvite = ReInvite::Relayed { from };
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
                if self.reinvite.own_leg() == Some(from) {
                    self.own_reinvite_answered(code, body);
                } else if let Some(back) = self.reinvite.take_relayed() {
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
}
