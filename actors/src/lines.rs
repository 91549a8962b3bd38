//! Lines: what each user's phone is doing, as the portal and CTI clients show it.
//!
//! A pure projection of the bus's call events into one [`Line`] per user and call
//! (dialing, ringing, active, held) with the actions allowed on it right now. Sans-IO:
//! the push hub feeds it events and forwards the [`LineUpdate`]s it returns; the same
//! projection runs on every node from the same events.

use crate::events::{CallEvent, CallEventKind, ConferenceParty};
use crate::ids::{CallId, DeviceId, LegId, TenantId, UserId};
use crate::model::{CallOutcome, Party};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LineState {
    /// The user placed the call; the other side has not answered yet.
    Dialing,
    /// The call is offered to the user.
    Ringing,
    Active,
    /// The user put the other party on hold.
    Held,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LineDirection {
    In,
    Out,
}

/// What the user may do with a line now (the portal shows exactly these buttons).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Answer,
    Reject,
    Forward,
    Attendant,
    Hold,
    Resume,
    Transfer,
    /// Merge with the user's other connected line (or add it to this conference).
    Conference,
    Release,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Peer {
    pub number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Why the user's feature server routed the call as it did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LineDecision {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    pub reasons: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Line {
    pub call_id: CallId,
    pub state: LineState,
    pub direction: LineDirection,
    pub peer: Peer,
    /// The user's device on the call (the one ringing or talking), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<DeviceId>,
    /// When the line entered its current state.
    pub since: DateTime<Utc>,
    /// When the call was first connected for this user (active or held): the call's
    /// duration counts from here, through holds and resumes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<DateTime<Utc>>,
    /// The other party put the user on hold.
    pub remote_held: bool,
    pub allowed: Vec<Action>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<LineDecision>,
    /// The line is a conference on tsps's bridge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conference: Option<LineConference>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LineConference {
    /// The user made the conference: adds parties, and ends it by leaving.
    pub host: bool,
    /// The other parties, in the order they joined.
    pub parties: Vec<Peer>,
}

/// When a line was first connected: kept from before, else now if it is connected now.
fn answered_at(prev: Option<&Line>, state: LineState, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    prev.and_then(|p| p.answered_at)
        .or_else(|| matches!(state, LineState::Active | LineState::Held).then_some(now))
}

impl Line {
    /// A connected line the user could merge into a conference from another line.
    fn mergeable(&self) -> bool {
        matches!(self.state, LineState::Active | LineState::Held)
            && self.conference.as_ref().is_none_or(|c| c.host)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LineUpdate {
    /// A line appeared or changed (replace by `call_id`).
    Line {
        tenant: TenantId,
        user: UserId,
        line: Line,
    },
    /// The user no longer has this call (it ended, was answered elsewhere or moved on).
    Ended {
        tenant: TenantId,
        user: UserId,
        call: CallId,
        outcome: Option<CallOutcome>,
    },
}

impl LineUpdate {
    pub fn user(&self) -> UserId {
        match self {
            LineUpdate::Line { user, .. } | LineUpdate::Ended { user, .. } => *user,
        }
    }
}

#[derive(Debug)]
struct LegView {
    side: Party,
    user: Option<UserId>,
    device: Option<DeviceId>,
    answered: bool,
    ended: bool,
    /// The user placed the call on this leg: the caller's own INVITE, or the device a
    /// click-to-dial rings first. (A transfer target on the caller's side is called.)
    outgoing: bool,
}

#[derive(Debug)]
struct CallView {
    id: CallId,
    tenant: TenantId,
    caller: String,
    callee: String,
    caller_user: Option<UserId>,
    legs: HashMap<LegId, LegView>,
    held_by: Option<Party>,
    /// Users who talked on this call and left it (hung up their side, transferred).
    left: HashSet<UserId>,
    /// The user whose feature server decided last (the callee side's owner).
    owner: Option<UserId>,
    decision: Option<(LineDecision, bool)>,
    /// The call is a conference: its host and its live parties.
    conference: Option<(UserId, Vec<ConferenceParty>)>,
    /// What each user was last told, to send only changes.
    shown: HashMap<UserId, Line>,
}

/// The live calls' lines, by call and by user.
#[derive(Default)]
pub struct LineBook {
    calls: HashMap<CallId, CallView>,
    by_user: HashMap<UserId, HashSet<CallId>>,
}

impl LineBook {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one call event; returns what changed for whom.
    pub fn apply(&mut self, ev: &CallEvent) -> Vec<LineUpdate> {
        let mut out = self.apply_to_call(ev);
        // Whether a line may be merged into a conference depends on the user's other
        // lines: theirs are looked at again when one of a user's lines changed.
        let mut users: Vec<UserId> = out.iter().map(LineUpdate::user).collect();
        users.dedup();
        for user in users {
            let others: Vec<CallId> = self
                .by_user
                .get(&user)
                .into_iter()
                .flatten()
                .copied()
                .filter(|c| *c != ev.call)
                .collect();
            for c in others {
                if let Some(update) = self.refresh(c, user, ev.at) {
                    out.push(update);
                }
            }
        }
        out
    }

    /// Whether `user` has a connected line other than on `except`.
    fn has_other_line(&self, user: UserId, except: CallId) -> bool {
        self.by_user.get(&user).is_some_and(|calls| {
            calls.iter().filter(|c| **c != except).any(|c| {
                self.calls
                    .get(c)
                    .and_then(|v| v.shown.get(&user))
                    .is_some_and(Line::mergeable)
            })
        })
    }

    /// `user`'s line on `call` computed again (another line of theirs changed).
    fn refresh(&mut self, call: CallId, user: UserId, now: DateTime<Utc>) -> Option<LineUpdate> {
        let other = self.has_other_line(user, call);
        let view = self.calls.get_mut(&call)?;
        let prev = view.shown.get(&user)?;
        let line = view.line_for(user, now, Some(prev), other)?;
        if Some(&line) == view.shown.get(&user) {
            return None;
        }
        view.shown.insert(user, line.clone());
        Some(LineUpdate::Line {
            tenant: view.tenant,
            user,
            line,
        })
    }

    fn apply_to_call(&mut self, ev: &CallEvent) -> Vec<LineUpdate> {
        if let CallEventKind::Started {
            caller,
            callee,
            caller_user,
            caller_leg,
            ..
        } = &ev.kind
        {
            // The caller's incoming INVITE is a leg of the caller's side from the start.
            let legs = caller_leg
                .iter()
                .map(|leg| {
                    let view = LegView {
                        side: Party::Caller,
                        user: *caller_user,
                        device: None,
                        answered: false,
                        ended: false,
                        outgoing: true,
                    };
                    (*leg, view)
                })
                .collect();
            self.calls.insert(
                ev.call,
                CallView {
                    id: ev.call,
                    tenant: ev.tenant,
                    caller: caller.clone(),
                    callee: callee.clone(),
                    caller_user: *caller_user,
                    legs,
                    held_by: None,
                    left: HashSet::new(),
                    owner: None,
                    decision: None,
                    conference: None,
                    shown: HashMap::new(),
                },
            );
        }
        let Some(call) = self.calls.get_mut(&ev.call) else {
            // Events of a call that started before we listened: nothing to show.
            return Vec::new();
        };
        if call.tenant != ev.tenant {
            return Vec::new();
        }
        match &ev.kind {
            CallEventKind::Started { .. } | CallEventKind::Overridden { .. } => {}
            CallEventKind::Decided {
                user,
                contact,
                reasons,
                attendant,
            } => {
                call.owner = Some(*user);
                call.decision = Some((
                    LineDecision {
                        contact: contact.clone(),
                        reasons: reasons.clone(),
                    },
                    *attendant,
                ));
            }
            CallEventKind::LegDialing {
                leg,
                side,
                user,
                device,
                ..
            } => {
                // A caller-side leg toward the caller's own device is a click-to-dial
                // (no incoming leg); any other caller-side leg is a transfer target.
                let outgoing = *side == Party::Caller
                    && user.is_some()
                    && *user == call.caller_user
                    && !call.legs.values().any(|l| l.outgoing);
                call.legs.insert(
                    *leg,
                    LegView {
                        side: *side,
                        user: *user,
                        device: *device,
                        answered: false,
                        ended: false,
                        outgoing,
                    },
                );
            }
            CallEventKind::LegJoined {
                leg,
                side,
                user,
                device,
                number,
                ..
            } => {
                // Consultative transfer: the other call's party takes the side of the
                // user who left; the other side now talks to it, not on hold.
                call.legs.insert(
                    *leg,
                    LegView {
                        side: *side,
                        user: *user,
                        device: *device,
                        answered: true,
                        ended: false,
                        outgoing: false,
                    },
                );
                match side {
                    Party::Caller => call.caller = number.clone(),
                    _ => call.callee = number.clone(),
                }
                call.held_by = None;
                // The contact that named the old party names someone else now.
                if let Some((d, _)) = call.decision.as_mut() {
                    d.contact = None;
                }
            }
            CallEventKind::PartyChanged { side, number, .. } => {
                match side {
                    Party::Caller => call.caller = number.clone(),
                    _ => call.callee = number.clone(),
                }
                if *side == Party::Caller {
                    // The contact that named the old caller names someone else now.
                    if let Some((d, _)) = call.decision.as_mut() {
                        d.contact = None;
                    }
                }
            }
            CallEventKind::Ringing { .. } => {}
            CallEventKind::Conference { host, parties } => {
                for p in parties {
                    let leg = call.legs.entry(p.leg).or_insert(LegView {
                        side: Party::Callee,
                        user: p.user,
                        device: p.device,
                        answered: true,
                        ended: false,
                        outgoing: false,
                    });
                    leg.answered = true;
                }
                call.held_by = None;
                call.conference = Some((*host, parties.clone()));
            }
            CallEventKind::Answered { leg } => {
                if let Some(l) = call.legs.get_mut(leg) {
                    l.answered = true;
                    if l.side == Party::Callee {
                        // tsps answers the caller's INVITE when the callee answers.
                        for l in call.legs.values_mut() {
                            if l.side == Party::Caller && l.outgoing && !l.ended {
                                l.answered = true;
                            }
                        }
                    }
                }
            }
            CallEventKind::MediaChanged { by, held } => {
                call.held_by = held.then_some(*by);
            }
            CallEventKind::LegEnded { leg, .. } => {
                if let Some(l) = call.legs.get_mut(leg) {
                    l.ended = true;
                    if l.answered {
                        // A party left (transfer): whoever held it, hold is over.
                        call.held_by = None;
                        call.left.extend(l.user);
                    }
                }
            }
            CallEventKind::Ended { outcome, .. } => {
                let call = self.calls.remove(&ev.call).expect("present");
                let mut out = Vec::new();
                for user in call.shown.keys() {
                    if let Some(set) = self.by_user.get_mut(user) {
                        set.remove(&ev.call);
                        if set.is_empty() {
                            self.by_user.remove(user);
                        }
                    }
                    out.push(LineUpdate::Ended {
                        tenant: call.tenant,
                        user: *user,
                        call: ev.call,
                        outcome: Some(*outcome),
                    });
                }
                out.sort_by_key(|u| u.user());
                return out;
            }
        }
        let mut out = Vec::new();
        let mut users: Vec<UserId> = call.involved().into_iter().collect();
        users.extend(call.shown.keys().copied());
        users.sort();
        users.dedup();
        let others: Vec<bool> = users
            .iter()
            .map(|u| self.has_other_line(*u, ev.call))
            .collect();
        let call = self.calls.get_mut(&ev.call).expect("present");
        for (user, other) in users.into_iter().zip(others) {
            let prev = call.shown.get(&user);
            match call.line_for(user, ev.at, prev, other) {
                Some(line) => {
                    if prev != Some(&line) {
                        call.shown.insert(user, line.clone());
                        self.by_user.entry(user).or_default().insert(ev.call);
                        out.push(LineUpdate::Line {
                            tenant: call.tenant,
                            user,
                            line,
                        });
                    }
                }
                None => {
                    if call.shown.remove(&user).is_some() {
                        if let Some(set) = self.by_user.get_mut(&user) {
                            set.remove(&ev.call);
                            if set.is_empty() {
                                self.by_user.remove(&user);
                            }
                        }
                        out.push(LineUpdate::Ended {
                            tenant: call.tenant,
                            user,
                            call: ev.call,
                            outcome: None,
                        });
                    }
                }
            }
        }
        out
    }

    /// The user's lines now, oldest call first (for a snapshot).
    pub fn lines_of(&self, user: UserId) -> Vec<Line> {
        let mut lines: Vec<Line> = self
            .by_user
            .get(&user)
            .into_iter()
            .flatten()
            .filter_map(|c| self.calls.get(c)?.shown.get(&user).cloned())
            .collect();
        lines.sort_by_key(|l| l.since);
        lines
    }

    /// Calls being tracked (for metrics and leak checks).
    pub fn calls(&self) -> usize {
        self.calls.len()
    }
}

impl CallView {
    /// Users who may have a line in this call now.
    fn involved(&self) -> HashSet<UserId> {
        let mut users = HashSet::new();
        users.extend(self.owner);
        users.extend(
            self.legs
                .values()
                .filter(|l| !l.ended)
                .filter_map(|l| l.user),
        );
        users
    }

    fn live(&self) -> impl Iterator<Item = &LegView> {
        self.legs.values().filter(|l| !l.ended)
    }

    /// The answered live leg of `side`, if that side is talking.
    fn answered_on(&self, side: Party) -> Option<&LegView> {
        self.live().find(|l| l.side == side && l.answered)
    }

    /// The user's line on this call now; `other_line`: the user has another connected
    /// line (this one may be merged with it into a conference).
    fn line_for(
        &self,
        user: UserId,
        now: DateTime<Utc>,
        prev: Option<&Line>,
        other_line: bool,
    ) -> Option<Line> {
        if let Some((host, parties)) = &self.conference {
            return self.conference_line(user, now, prev, other_line, *host, parties);
        }
        let owner = self.owner == Some(user) && !self.left.contains(&user);
        // The user's leg: an answered one first (the phone that took the call).
        let mine = self
            .live()
            .filter(|l| l.user == Some(user))
            .max_by_key(|l| (l.answered, l.outgoing));
        let leg = match mine {
            Some(l) => Some(l),
            // The owner's call may ring only numbers on their behalf (a mobile).
            None if owner => None,
            None => return None,
        };
        let side = leg.map(|l| l.side).unwrap_or(Party::Callee);
        let other = match side {
            Party::Caller => Party::Callee,
            _ => Party::Caller,
        };
        let outgoing = leg.is_some_and(|l| l.outgoing);
        let answered = match leg {
            Some(l) => l.answered,
            // Owner without a leg: answered on their behalf by a number they ring.
            None => match self.answered_on(side) {
                Some(a) if a.user.is_none() => true,
                Some(_) => return None, // answered by someone else's phone
                None => false,
            },
        };
        let connected = answered && self.answered_on(other).is_some();
        let (state, allowed, remote_held) = if connected {
            let mut line = match self.held_by {
                Some(by) if by == side => (
                    LineState::Held,
                    vec![Action::Resume, Action::Transfer, Action::Release],
                    false,
                ),
                by => (
                    LineState::Active,
                    vec![Action::Hold, Action::Transfer, Action::Release],
                    by.is_some(),
                ),
            };
            if other_line {
                line.1.insert(2, Action::Conference);
            }
            line
        } else if outgoing {
            (LineState::Dialing, vec![Action::Release], false)
        } else if answered {
            // Talking, and the other side is being replaced (a transfer in progress).
            (LineState::Active, vec![Action::Release], false)
        } else if owner {
            let mut a = vec![Action::Answer, Action::Reject, Action::Forward];
            if self.decision.as_ref().is_some_and(|(_, att)| *att) {
                a.push(Action::Attendant);
            }
            (LineState::Ringing, a, false)
        } else {
            // A colleague's phone rung in parallel: it may be picked up, not redirected.
            (LineState::Ringing, Vec::new(), false)
        };
        let decision = self
            .decision
            .as_ref()
            .filter(|_| owner && !outgoing)
            .map(|(d, _)| d.clone());
        let peer = Peer {
            number: match side {
                Party::Caller => self.callee.clone(),
                _ => self.caller.clone(),
            },
            name: decision.as_ref().and_then(|d| d.contact.clone()),
        };
        let since = match prev {
            Some(p) if p.state == state => p.since,
            _ => now,
        };
        let answered_at = answered_at(prev, state, now);
        Some(Line {
            call_id: self.id,
            state,
            direction: if outgoing {
                LineDirection::Out
            } else {
                LineDirection::In
            },
            peer,
            device_id: leg.and_then(|l| l.device),
            since,
            answered_at,
            remote_held,
            allowed,
            decision,
            conference: None,
        })
    }

    /// A party's line on a conference: active, with the other parties.
    fn conference_line(
        &self,
        user: UserId,
        now: DateTime<Utc>,
        prev: Option<&Line>,
        other_line: bool,
        host: UserId,
        parties: &[ConferenceParty],
    ) -> Option<Line> {
        let live = |p: &&ConferenceParty| self.legs.get(&p.leg).is_some_and(|l| !l.ended);
        let me = parties.iter().filter(live).find(|p| p.user == Some(user))?;
        let others: Vec<Peer> = parties
            .iter()
            .filter(live)
            .filter(|p| p.leg != me.leg)
            .map(|p| Peer {
                number: p.number.clone(),
                name: p.name.clone(),
            })
            .collect();
        let host = host == user;
        let mut allowed = vec![Action::Release];
        if host && other_line {
            allowed.insert(0, Action::Conference);
        }
        let join =
            |f: &dyn Fn(&Peer) -> String| others.iter().map(f).collect::<Vec<_>>().join(", ");
        let peer = Peer {
            number: join(&|p| p.number.clone()),
            name: Some(join(&|p| {
                p.name.clone().unwrap_or_else(|| p.number.clone())
            })),
        };
        let state = LineState::Active;
        let since = match prev {
            Some(p) if p.state == state && p.conference.is_some() => p.since,
            _ => now,
        };
        let answered_at = answered_at(prev, state, now);
        let outgoing = self.legs.get(&me.leg).is_some_and(|l| l.outgoing);
        Some(Line {
            call_id: self.id,
            state,
            direction: if outgoing {
                LineDirection::Out
            } else {
                LineDirection::In
            },
            peer,
            device_id: me.device,
            since,
            answered_at,
            remote_held: false,
            allowed,
            decision: None,
            conference: Some(LineConference {
                host,
                parties: others,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CallDirection;
    use chrono::TimeZone;

    const T: TenantId = TenantId::for_test(1);
    const A: UserId = UserId::for_test(1);
    const B: UserId = UserId::for_test(2);
    const C: UserId = UserId::for_test(3);
    const CALL: CallId = CallId::for_test(7);

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    fn ev(s: i64, kind: CallEventKind) -> CallEvent {
        CallEvent {
            call: CALL,
            tenant: T,
            at: at(s),
            kind,
        }
    }

    fn started(caller_leg: Option<LegId>) -> CallEventKind {
        CallEventKind::Started {
            direction: CallDirection::Internal,
            caller: "1001".into(),
            callee: "1002".into(),
            caller_user: Some(A),
            callee_user: Some(B),
            caller_leg,
        }
    }

    fn decided(user: UserId, attendant: bool) -> CallEventKind {
        CallEventKind::Decided {
            user,
            contact: Some("Alice Example".into()),
            reasons: vec!["contact code VIP".into()],
            attendant,
        }
    }

    fn dialing(leg: LegId, side: Party, user: Option<UserId>, dev: u128) -> CallEventKind {
        CallEventKind::LegDialing {
            leg,
            target: "sip:x@127.0.0.1".into(),
            side,
            user,
            device: Some(DeviceId::for_test(dev)),
        }
    }

    /// (user, state or None for ended, allowed) of each update, in order.
    fn summary(updates: &[LineUpdate]) -> Vec<(UserId, Option<LineState>, Vec<Action>)> {
        updates
            .iter()
            .map(|u| match u {
                LineUpdate::Line { user, line, .. } => {
                    (*user, Some(line.state), line.allowed.clone())
                }
                LineUpdate::Ended { user, .. } => (*user, None, vec![]),
            })
            .collect()
    }

    use Action::*;
    use LineState::*;

    #[test]
    fn internal_call_from_dialing_to_hold_to_end() {
        let mut book = LineBook::new();
        let (a_leg, b_leg) = (LegId::for_test(1), LegId::for_test(2));
        let u = book.apply(&ev(0, started(Some(a_leg))));
        assert_eq!(summary(&u), [(A, Some(Dialing), vec![Release])]);
        let u = book.apply(&ev(1, decided(B, false)));
        assert_eq!(
            summary(&u),
            [(B, Some(Ringing), vec![Answer, Reject, Forward])]
        );
        let LineUpdate::Line { line, .. } = &u[0] else {
            panic!()
        };
        assert_eq!(line.direction, LineDirection::In);
        assert_eq!(line.peer.name.as_deref(), Some("Alice Example"));
        assert_eq!(
            line.decision.as_ref().unwrap().reasons,
            ["contact code VIP"]
        );
        // The device leg adds which device rings; nothing else changes for A.
        let u = book.apply(&ev(1, dialing(b_leg, Party::Callee, Some(B), 9)));
        assert_eq!(
            summary(&u),
            [(B, Some(Ringing), vec![Answer, Reject, Forward])]
        );
        assert!(book
            .apply(&ev(2, CallEventKind::Ringing { leg: b_leg }))
            .is_empty());
        let u = book.apply(&ev(3, CallEventKind::Answered { leg: b_leg }));
        assert_eq!(
            summary(&u),
            [
                (A, Some(Active), vec![Hold, Transfer, Release]),
                (B, Some(Active), vec![Hold, Transfer, Release])
            ]
        );
        let held = CallEventKind::MediaChanged {
            by: Party::Caller,
            held: true,
        };
        let u = book.apply(&ev(4, held));
        assert_eq!(
            summary(&u),
            [
                (A, Some(Held), vec![Resume, Transfer, Release]),
                (B, Some(Active), vec![Hold, Transfer, Release])
            ]
        );
        let LineUpdate::Line { line, .. } = &u[1] else {
            panic!()
        };
        assert!(line.remote_held);
        assert_eq!(line.since, at(3), "still active since the answer");
        assert_eq!(book.lines_of(A).len(), 1);
        // A resumes: its line is active again since now, connected since the answer (the
        // call's duration does not start over).
        let resumed = CallEventKind::MediaChanged {
            by: Party::Caller,
            held: false,
        };
        let u = book.apply(&ev(4, resumed));
        let LineUpdate::Line { line, .. } = &u[0] else {
            panic!()
        };
        assert_eq!((line.state, line.since), (Active, at(4)));
        assert_eq!(line.answered_at, Some(at(3)));
        let u = book.apply(&ev(
            5,
            CallEventKind::Ended {
                outcome: CallOutcome::Answered,
                hangup_by: Some(Party::Callee),
            },
        ));
        assert_eq!(summary(&u), [(A, None, vec![]), (B, None, vec![])]);
        assert!(book.lines_of(A).is_empty() && book.lines_of(B).is_empty());
        assert_eq!(book.calls(), 0);
        assert!(book.by_user.is_empty());
    }

    #[test]
    fn answered_by_a_colleague_ends_the_owners_line() {
        let mut book = LineBook::new();
        let (b_leg, c_leg) = (LegId::for_test(2), LegId::for_test(3));
        book.apply(&ev(0, started(Some(LegId::for_test(1)))));
        book.apply(&ev(0, decided(B, true)));
        book.apply(&ev(0, dialing(b_leg, Party::Callee, Some(B), 1)));
        let u = book.apply(&ev(0, dialing(c_leg, Party::Callee, Some(C), 2)));
        // The colleague sees it ring but may not redirect the owner's call.
        assert_eq!(summary(&u), [(C, Some(Ringing), vec![])]);
        let u = book.apply(&ev(
            1,
            CallEventKind::LegEnded {
                leg: b_leg,
                code: Some(487),
            },
        ));
        // The owner's call still rings (at the colleague); no device of theirs does.
        assert_eq!(
            summary(&u),
            [(B, Some(Ringing), vec![Answer, Reject, Forward, Attendant])]
        );
        let LineUpdate::Line { line, .. } = &u[0] else {
            panic!()
        };
        assert_eq!(line.device_id, None);
        let u = book.apply(&ev(2, CallEventKind::Answered { leg: c_leg }));
        assert_eq!(
            summary(&u),
            [
                (A, Some(Active), vec![Hold, Transfer, Release]),
                (B, None, vec![]),
                (C, Some(Active), vec![Hold, Transfer, Release])
            ]
        );
    }

    #[test]
    fn attendant_offered_only_when_the_user_has_one() {
        let mut book = LineBook::new();
        book.apply(&ev(0, started(Some(LegId::for_test(1)))));
        let u = book.apply(&ev(0, decided(B, true)));
        assert_eq!(
            summary(&u),
            [(B, Some(Ringing), vec![Answer, Reject, Forward, Attendant])]
        );
    }

    #[test]
    fn forward_moves_the_line_to_the_next_user() {
        let mut book = LineBook::new();
        book.apply(&ev(0, started(Some(LegId::for_test(1)))));
        book.apply(&ev(0, decided(B, false)));
        let u = book.apply(&ev(1, decided(C, false)));
        assert_eq!(
            summary(&u),
            [
                (B, None, vec![]),
                (C, Some(Ringing), vec![Answer, Reject, Forward])
            ]
        );
    }

    /// Forwarded (or transferred) on: the caller's line names who rings now.
    #[test]
    fn the_callers_line_names_the_party_the_call_went_on_to() {
        let mut book = LineBook::new();
        book.apply(&ev(0, started(Some(LegId::for_test(1)))));
        let peer = |u: &[LineUpdate], who: UserId| {
            u.iter()
                .find_map(|x| match x {
                    LineUpdate::Line { user, line, .. } if *user == who => {
                        Some(line.peer.number.clone())
                    }
                    _ => None,
                })
                .unwrap()
        };
        book.apply(&ev(0, decided(B, false)));
        let u = book.apply(&ev(
            1,
            CallEventKind::PartyChanged {
                side: Party::Callee,
                number: "1003".into(),
                user: Some(C),
            },
        ));
        assert_eq!(peer(&u, A), "1003");
        // The callee side's view of the caller does not change.
        let u = book.apply(&ev(1, decided(C, false)));
        assert_eq!(peer(&u, C), "1001");
        // The caller side changes too when a transfer puts the target there.
        let u = book.apply(&ev(
            2,
            CallEventKind::PartyChanged {
                side: Party::Caller,
                number: "1004".into(),
                user: None,
            },
        ));
        assert_eq!(peer(&u, C), "1004");
    }

    #[test]
    fn answered_on_the_owners_mobile_is_the_owners_line() {
        let mut book = LineBook::new();
        let mobile = LegId::for_test(5);
        book.apply(&ev(0, started(Some(LegId::for_test(1)))));
        book.apply(&ev(0, decided(B, false)));
        book.apply(&ev(
            0,
            CallEventKind::LegDialing {
                leg: mobile,
                target: "trunk:+41790000000".into(),
                side: Party::Callee,
                user: None,
                device: None,
            },
        ));
        let u = book.apply(&ev(1, CallEventKind::Answered { leg: mobile }));
        assert_eq!(
            summary(&u),
            [
                (A, Some(Active), vec![Hold, Transfer, Release]),
                (B, Some(Active), vec![Hold, Transfer, Release])
            ]
        );
    }

    #[test]
    fn click_to_dial_shows_dialing_until_the_destination_answers() {
        let mut book = LineBook::new();
        let (dev, dest) = (LegId::for_test(1), LegId::for_test(2));
        assert!(book.apply(&ev(0, started(None))).is_empty(), "no leg yet");
        let u = book.apply(&ev(0, dialing(dev, Party::Caller, Some(A), 4)));
        assert_eq!(summary(&u), [(A, Some(Dialing), vec![Release])]);
        let LineUpdate::Line { line, .. } = &u[0] else {
            panic!()
        };
        assert_eq!(line.device_id, Some(DeviceId::for_test(4)));
        assert_eq!(line.direction, LineDirection::Out);
        assert!(book
            .apply(&ev(1, CallEventKind::Answered { leg: dev }))
            .is_empty());
        book.apply(&ev(1, decided(B, false)));
        book.apply(&ev(1, dialing(dest, Party::Callee, Some(B), 5)));
        let u = book.apply(&ev(2, CallEventKind::Answered { leg: dest }));
        assert_eq!(
            summary(&u),
            [
                (A, Some(Active), vec![Hold, Transfer, Release]),
                (B, Some(Active), vec![Hold, Transfer, Release])
            ]
        );
    }

    #[test]
    fn events_of_unknown_calls_or_another_tenant_are_ignored() {
        let mut book = LineBook::new();
        assert!(book.apply(&ev(0, decided(B, false))).is_empty());
        book.apply(&ev(0, started(Some(LegId::for_test(1)))));
        let mut foreign = ev(1, decided(B, false));
        foreign.tenant = TenantId::for_test(2);
        assert!(book.apply(&foreign).is_empty());
        assert!(book.lines_of(B).is_empty());
    }

    #[test]
    fn callee_transfers_the_caller_to_a_third_user() {
        let mut book = LineBook::new();
        let (a_leg, b_leg, c_leg) = (LegId::for_test(1), LegId::for_test(2), LegId::for_test(3));
        book.apply(&ev(0, started(Some(a_leg))));
        book.apply(&ev(0, decided(B, false)));
        book.apply(&ev(0, dialing(b_leg, Party::Callee, Some(B), 2)));
        book.apply(&ev(1, CallEventKind::Answered { leg: b_leg }));
        let u = book.apply(&ev(
            2,
            CallEventKind::LegEnded {
                leg: b_leg,
                code: None,
            },
        ));
        assert_eq!(
            summary(&u),
            [(A, Some(Dialing), vec![Release]), (B, None, vec![])],
            "the caller hears the transfer target ring"
        );
        let u = book.apply(&ev(2, decided(C, false)));
        assert_eq!(
            summary(&u),
            [(C, Some(Ringing), vec![Answer, Reject, Forward])]
        );
        book.apply(&ev(2, dialing(c_leg, Party::Callee, Some(C), 3)));
        let u = book.apply(&ev(3, CallEventKind::Answered { leg: c_leg }));
        assert_eq!(
            summary(&u),
            [
                (A, Some(Active), vec![Hold, Transfer, Release]),
                (C, Some(Active), vec![Hold, Transfer, Release])
            ]
        );
    }

    #[test]
    fn caller_transfers_the_callee_to_a_third_user() {
        let mut book = LineBook::new();
        let (a_leg, b_leg, c_leg) = (LegId::for_test(1), LegId::for_test(2), LegId::for_test(3));
        book.apply(&ev(0, started(Some(a_leg))));
        book.apply(&ev(0, decided(B, false)));
        book.apply(&ev(0, dialing(b_leg, Party::Callee, Some(B), 2)));
        book.apply(&ev(1, CallEventKind::Answered { leg: b_leg }));
        book.apply(&ev(
            1,
            CallEventKind::MediaChanged {
                by: Party::Caller,
                held: true,
            },
        ));
        let u = book.apply(&ev(
            2,
            CallEventKind::LegEnded {
                leg: a_leg,
                code: None,
            },
        ));
        assert_eq!(
            summary(&u),
            [(A, None, vec![]), (B, Some(Active), vec![Release])],
            "the callee waits for the transfer target, no longer held"
        );
        let LineUpdate::Line { line, .. } = &u[1] else {
            panic!()
        };
        assert!(!line.remote_held);
        book.apply(&ev(2, decided(C, false)));
        let u = book.apply(&ev(2, dialing(c_leg, Party::Caller, Some(C), 3)));
        let LineUpdate::Line { line, .. } = &u[0] else {
            panic!("{u:?}")
        };
        assert_eq!(
            (line.state, line.direction, line.peer.number.as_str()),
            (Ringing, LineDirection::In, "1002"),
            "the target is called by the remaining party"
        );
        let u = book.apply(&ev(3, CallEventKind::Answered { leg: c_leg }));
        assert_eq!(
            summary(&u),
            [
                (B, Some(Active), vec![Hold, Transfer, Release]),
                (C, Some(Active), vec![Hold, Transfer, Release])
            ]
        );
    }

    #[test]
    fn consultative_transfer_shows_both_lines_then_joins_the_other_parties() {
        let mut book = LineBook::new();
        let second = CallId::for_test(8);
        let on = |call: CallId, s: i64, kind: CallEventKind| CallEvent {
            call,
            tenant: T,
            at: at(s),
            kind,
        };
        // Call 1: Alice calls Bob, who answers; Alice holds him.
        let (a1, b) = (LegId::for_test(1), LegId::for_test(2));
        book.apply(&ev(0, started(Some(a1))));
        book.apply(&ev(0, decided(B, false)));
        book.apply(&ev(0, dialing(b, Party::Callee, Some(B), 2)));
        book.apply(&ev(1, CallEventKind::Answered { leg: b }));
        book.apply(&ev(
            2,
            CallEventKind::MediaChanged {
                by: Party::Caller,
                held: true,
            },
        ));
        // Call 2: Alice calls Carol, who answers.
        let (a2, c) = (LegId::for_test(3), LegId::for_test(4));
        let started2 = CallEventKind::Started {
            direction: CallDirection::Internal,
            caller: "1001".into(),
            callee: "1003".into(),
            caller_user: Some(A),
            callee_user: Some(C),
            caller_leg: Some(a2),
        };
        book.apply(&on(second, 3, started2));
        book.apply(&on(second, 3, decided(C, false)));
        book.apply(&on(second, 3, dialing(c, Party::Callee, Some(C), 3)));
        book.apply(&on(second, 4, CallEventKind::Answered { leg: c }));
        let lines: Vec<_> = book
            .lines_of(A)
            .iter()
            .map(|l| (l.state, l.allowed.clone()))
            .collect();
        assert_eq!(
            lines,
            [
                (Held, vec![Resume, Transfer, Conference, Release]),
                (Active, vec![Hold, Transfer, Conference, Release])
            ],
            "Alice has both lines, oldest first, and may merge them"
        );

        // Alice joins them: call 1 ends, Bob's leg joins call 2 on Alice's side.
        let u = book.apply(&ev(
            5,
            CallEventKind::Ended {
                outcome: CallOutcome::Answered,
                hangup_by: Some(Party::Caller),
            },
        ));
        assert_eq!(
            summary(&u),
            [
                (A, None, vec![]),
                (B, None, vec![]),
                (A, Some(Active), vec![Hold, Transfer, Release])
            ],
            "with one line left Alice has nothing to merge it with"
        );
        let u = book.apply(&on(
            second,
            5,
            CallEventKind::LegEnded {
                leg: a2,
                code: None,
            },
        ));
        assert_eq!(
            summary(&u),
            [(A, None, vec![]), (C, Some(Active), vec![Release])],
            "Carol waits for the party that joins"
        );
        let u = book.apply(&on(
            second,
            5,
            CallEventKind::LegJoined {
                leg: b,
                side: Party::Caller,
                user: Some(B),
                device: Some(DeviceId::for_test(2)),
                number: "1002".into(),
                from_call: CALL,
            },
        ));
        assert_eq!(
            summary(&u),
            [
                (B, Some(Active), vec![Hold, Transfer, Release]),
                (C, Some(Active), vec![Hold, Transfer, Release])
            ]
        );
        let peer = |u: &LineUpdate| match u {
            LineUpdate::Line { line, .. } => (line.peer.number.clone(), line.device_id),
            LineUpdate::Ended { .. } => panic!("{u:?}"),
        };
        assert_eq!(peer(&u[0]), ("1003".into(), Some(DeviceId::for_test(2))));
        assert_eq!(peer(&u[1]).0, "1002", "Carol talks to Bob now");
        assert!(book.lines_of(A).is_empty());
        assert_eq!(book.calls(), 1);
    }

    #[test]
    fn click_to_dial_from_an_external_phone_shows_it_as_the_device() {
        let mut book = LineBook::new();
        let mobile = LegId::for_test(1);
        book.apply(&ev(0, started(None)));
        let u = book.apply(&ev(
            0,
            CallEventKind::LegDialing {
                leg: mobile,
                target: "trunk:+41790000001".into(),
                side: Party::Caller,
                user: Some(A),
                device: Some(DeviceId::for_test(50)),
            },
        ));
        let LineUpdate::Line { line, .. } = &u[0] else {
            panic!("{u:?}")
        };
        assert_eq!(
            (line.state, line.direction, line.device_id),
            (Dialing, LineDirection::Out, Some(DeviceId::for_test(50)))
        );
    }

    #[test]
    fn a_conference_shows_every_party_the_others_and_the_host_its_role() {
        let mut book = LineBook::new();
        // Alice calls Bob, Bob answers; Bob's leg 2, Alice's leg 1.
        let (a, b, c) = (LegId::for_test(1), LegId::for_test(2), LegId::for_test(3));
        book.apply(&ev(0, started(Some(a))));
        book.apply(&ev(0, decided(B, false)));
        book.apply(&ev(0, dialing(b, Party::Callee, Some(B), 2)));
        book.apply(&ev(1, CallEventKind::Answered { leg: b }));
        // Carol (an outside number) joins from another call: a conference.
        let party = |leg, user, number: &str, name: Option<&str>| ConferenceParty {
            leg,
            user,
            device: None,
            number: number.into(),
            name: name.map(Into::into),
        };
        let conference = |parties| CallEventKind::Conference { host: A, parties };
        let all = vec![
            party(a, Some(A), "1001", Some("Alice")),
            party(b, Some(B), "1002", Some("Bob")),
            party(c, None, "+41445550000", None),
        ];
        let u = book.apply(&ev(2, conference(all)));
        let lines: Vec<_> = u
            .iter()
            .map(|u| match u {
                LineUpdate::Line { user, line, .. } => (*user, line.clone()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(lines.len(), 2, "Alice's and Bob's lines: {lines:?}");
        let (alice, bob) = (&lines[0].1, &lines[1].1);
        assert_eq!((lines[0].0, alice.state), (A, Active));
        assert_eq!(alice.allowed, [Release]);
        let conf = alice.conference.as_ref().expect("a conference");
        assert!(conf.host);
        let names: Vec<_> = conf.parties.iter().map(|p| p.number.as_str()).collect();
        assert_eq!(names, ["1002", "+41445550000"]);
        assert_eq!(alice.peer.name.as_deref(), Some("Bob, +41445550000"));
        let conf = bob.conference.as_ref().expect("a conference");
        assert!(!conf.host);
        assert_eq!(conf.parties[0].name.as_deref(), Some("Alice"));
        assert_eq!(bob.allowed, [Release]);

        // Bob leaves: his line ends; Alice's shows Carol only (the conference event
        // that follows changes nothing more).
        let u = book.apply(&ev(3, CallEventKind::LegEnded { leg: b, code: None }));
        assert_eq!(
            summary(&u),
            [(A, Some(Active), vec![Release]), (B, None, vec![])]
        );
        let LineUpdate::Line { line, .. } = &u[0] else {
            panic!("{u:?}")
        };
        assert_eq!(line.conference.as_ref().unwrap().parties.len(), 1);
        let u = book.apply(&ev(
            3,
            conference(vec![
                party(a, Some(A), "1001", Some("Alice")),
                party(c, None, "+41445550000", None),
            ]),
        ));
        assert!(u.is_empty(), "{u:?}");
        let line = &book.lines_of(A)[0];
        assert_eq!(line.since, at(2), "still the same active conference");
    }
}
