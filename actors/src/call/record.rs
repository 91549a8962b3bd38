//! The end of a call and its log: the record written when a call ends (and what else
//! ending does), and the status a caller gets when every callee leg failed.

use super::api::ControlError;
use super::call_core::{CallCore, Phase};
use super::io::{Output, Reply};
use super::leg::{OwnReInvite, Sides};
use crate::events::CallEventKind;
use crate::ids::UserId;
use crate::model::{CallOutcome, CallRecord, Party};

impl CallCore {
    /// The call ends: pending requests learn it, the record is written, every user
    /// of the call is told, and the actor stops.
    pub(super) fn finish(&mut self, outcome: CallOutcome, hangup_by: Option<Party>) {
        if self.phase == Phase::Ended {
            return;
        }
        self.phase = Phase::Ended;
        // A pending hold or resume learns that the call is over.
        if let Some(OwnReInvite::Media { reply, .. }) = self.reinvite.take_own() {
            self.reply(reply, Reply::Control(Err(ControlError::NotFound)));
        }
        // Closes the bridge and its ports.
        if self.sides.conference().is_some() {
            self.sides = Sides::Open;
        }
        self.cancel_ring_timer();
        let now = self.now.at;
        for l in &mut self.legs {
            if l.record.ended_at.is_none() {
                l.record.ended_at = Some(now);
            }
        }
        let record = self.record(outcome, hangup_by);
        self.out.push(Output::Record(Box::new(record)));
        self.out.push(Output::Ended);
        self.publish(CallEventKind::Ended { outcome, hangup_by });
        self.out.push(Output::TenantCallEnded);
        let mut users: Vec<UserId> = self.caller_user.into_iter().collect();
        users.extend(self.offered.iter().copied());
        users.extend(self.legs.iter().filter_map(|l| l.user));
        users.sort();
        users.dedup();
        for user in users {
            self.set_user_phase(Some(user), None);
        }
        // A consultative transfer waiting for the other call's leg stops once that
        // answer is in (see `handed_over`): the leg must not be left without owner.
        if self.hand_over.is_none() {
            self.out.push(Output::Stop);
        }
    }

    /// The call detail record of an ending call (its legs' end times are set).
    fn record(&mut self, outcome: CallOutcome, hangup_by: Option<Party>) -> CallRecord {
        CallRecord {
            id: self.setup.call,
            tenant_id: self.setup.tenant,
            direction: self.direction,
            caller: self.setup.caller.user.clone(),
            callee: self.callee_shown.clone(),
            caller_user_id: self.caller_user,
            callee_user_id: self.callee_user,
            started_at: self.started_at,
            answered_at: self.answered_at,
            ended_at: self.now.at,
            outcome,
            hangup_by,
            decision: std::mem::take(&mut self.decision),
            legs: self.legs.iter().map(|l| l.record.clone()).collect(),
        }
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
