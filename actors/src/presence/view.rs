//! What a watcher sees of a user: a pure function of the user's lines (from the
//! [`LineBook`](crate::lines::LineBook) projection, not a second one), the presence the
//! user set and whether a device of theirs is registered.
//!
//! The SIP side renders it as an RFC 4235 dialog-info or an RFC 3863 PIDF body; this
//! module knows neither format.

use crate::feature::Presence;
use crate::ids::{CallId, UserId};
use crate::lines::{Line, LineDirection, LineState, Peer};

/// RFC 4235 §3.7.1 dialog states as a watcher sees them. `proceeding` is not reported:
/// the B2BUA relays 100 Trying hop by hop and a phone shows nothing different for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialogState {
    /// The user placed the call; nothing rings yet.
    Trying,
    /// Ringing: at the user (incoming) or at the far end (outgoing).
    Early,
    Confirmed,
    /// Reported once, in the notification after the call ended.
    Terminated,
}

/// The user's hook state, derived from their lines; an instant message goes out when
/// it changes (for watchers who asked for one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hook {
    /// On hook, nothing ringing.
    Idle,
    Ringing,
    /// Off hook, placing a call.
    Dialing,
    OnCall,
    /// Every call of the user is on hold (put there by the user).
    Held,
}

/// One call of the watched user, as a dialog element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialogView {
    pub call: CallId,
    pub state: DialogState,
    /// The watched user placed the call (RFC 4235 `direction="initiator"`).
    pub initiator: bool,
    /// The other party (number and, when known, the contact name).
    pub remote: Peer,
    /// The user put the other party on hold.
    pub held: bool,
}

/// RPID activities (RFC 4480 §3.2) tsps reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activity {
    OnThePhone,
    Busy,
    Away,
    Meeting,
}

/// What the presence package (PIDF) shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresenceView {
    /// PIDF `basic`: open when a device is registered and the user is not on do not
    /// disturb.
    pub open: bool,
    pub activity: Option<Activity>,
    /// A short human note (`On the phone`, `Away`, ...).
    pub note: &'static str,
}

/// The state of one watched user sent to the SIP side. `seq` grows with each change
/// of the user, so that the newer of two states that cross is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchedState {
    pub user: UserId,
    pub seq: u64,
    pub hook: Hook,
    pub dialogs: Vec<DialogView>,
    pub presence: PresenceView,
}

/// The facts a watched user's state is made of.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub presence: Presence,
    pub registered: bool,
}

/// The dialog view of one line. `far_end_ringing`: an outgoing call whose callee side
/// has rung (the line itself stays `Dialing` until the answer).
pub fn dialog_of(line: &Line, far_end_ringing: bool) -> DialogView {
    let state = match line.state {
        LineState::Dialing if far_end_ringing => DialogState::Early,
        LineState::Dialing => DialogState::Trying,
        LineState::Ringing => DialogState::Early,
        LineState::Active | LineState::Held => DialogState::Confirmed,
    };
    DialogView {
        call: line.call_id,
        state,
        initiator: line.direction == LineDirection::Out,
        remote: line.peer.clone(),
        held: line.state == LineState::Held,
    }
}

/// The hook state of a set of dialogs (terminated ones do not count).
pub fn hook_of(dialogs: &[DialogView]) -> Hook {
    let live = || {
        dialogs
            .iter()
            .filter(|d| d.state != DialogState::Terminated)
    };
    if live().any(|d| d.state == DialogState::Confirmed && !d.held) {
        Hook::OnCall
    } else if live().any(|d| d.held) {
        Hook::Held
    } else if live().any(|d| d.initiator) {
        Hook::Dialing
    } else if live().next().is_some() {
        Hook::Ringing
    } else {
        Hook::Idle
    }
}

/// The presence package's view of the facts and the hook state.
pub fn presence_of(facts: &Facts, hook: Hook) -> PresenceView {
    let open = facts.registered && facts.presence != Presence::DoNotDisturb;
    let on_phone = matches!(hook, Hook::OnCall | Hook::Held | Hook::Dialing);
    let (activity, note) = if on_phone {
        (Some(Activity::OnThePhone), "On the phone")
    } else if !facts.registered {
        (None, "Offline")
    } else {
        match facts.presence {
            Presence::Available if hook == Hook::Ringing => (None, "Ringing"),
            Presence::Available => (None, "Available"),
            Presence::Busy => (Some(Activity::Busy), "Busy"),
            Presence::Away => (Some(Activity::Away), "Away"),
            Presence::InMeeting => (Some(Activity::Meeting), "In a meeting"),
            Presence::DoNotDisturb => (Some(Activity::Busy), "Do not disturb"),
        }
    };
    PresenceView {
        open,
        activity,
        note,
    }
}

/// The whole state: live lines (oldest first), then the calls that ended since the
/// last notification, reported once as terminated.
pub fn project(
    user: UserId,
    seq: u64,
    facts: &Facts,
    lines: &[Line],
    far_end_ringing: impl Fn(CallId) -> bool,
    ended: &[DialogView],
) -> WatchedState {
    let mut dialogs: Vec<DialogView> = lines
        .iter()
        .map(|l| dialog_of(l, far_end_ringing(l.call_id)))
        .collect();
    for e in ended {
        if !dialogs.iter().any(|d| d.call == e.call) {
            dialogs.push(DialogView {
                state: DialogState::Terminated,
                held: false,
                ..e.clone()
            });
        }
    }
    let hook = hook_of(&dialogs);
    WatchedState {
        user,
        seq,
        hook,
        presence: presence_of(facts, hook),
        dialogs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn line(call: u128, state: LineState, direction: LineDirection) -> Line {
        Line {
            call_id: CallId::for_test(call),
            state,
            direction,
            peer: Peer {
                number: "1001".into(),
                name: None,
            },
            device_id: None,
            since: Utc::now(),
            answered_at: None,
            remote_held: false,
            allowed: vec![],
            decision: None,
            conference: None,
        }
    }

    const U: UserId = UserId::for_test(1);

    fn facts(presence: Presence) -> Facts {
        Facts {
            presence,
            registered: true,
        }
    }

    #[test]
    fn line_states_map_to_rfc4235_states() {
        let dialing = line(1, LineState::Dialing, LineDirection::Out);
        assert_eq!(dialog_of(&dialing, false).state, DialogState::Trying);
        assert_eq!(dialog_of(&dialing, true).state, DialogState::Early);
        assert!(dialog_of(&dialing, false).initiator);
        let ringing = line(1, LineState::Ringing, LineDirection::In);
        assert_eq!(dialog_of(&ringing, false).state, DialogState::Early);
        assert!(!dialog_of(&ringing, false).initiator);
        let active = line(1, LineState::Active, LineDirection::In);
        assert_eq!(dialog_of(&active, false).state, DialogState::Confirmed);
        let held = dialog_of(&line(1, LineState::Held, LineDirection::In), false);
        assert_eq!((held.state, held.held), (DialogState::Confirmed, true));
    }

    #[test]
    fn hook_follows_the_busiest_line() {
        let f = facts(Presence::Available);
        let st = |lines: &[Line]| project(U, 1, &f, lines, |_| false, &[]);
        assert_eq!(st(&[]).hook, Hook::Idle);
        let ringing = line(1, LineState::Ringing, LineDirection::In);
        let active = line(2, LineState::Active, LineDirection::Out);
        let held = line(3, LineState::Held, LineDirection::In);
        assert_eq!(st(std::slice::from_ref(&ringing)).hook, Hook::Ringing);
        assert_eq!(st(&[ringing.clone(), held.clone()]).hook, Hook::Held);
        assert_eq!(st(&[held, active, ringing]).hook, Hook::OnCall);
        let dialing = line(4, LineState::Dialing, LineDirection::Out);
        assert_eq!(st(&[dialing]).hook, Hook::Dialing);
    }

    #[test]
    fn presence_shows_on_the_phone_then_what_the_user_set() {
        let f = facts(Presence::InMeeting);
        let on_call = presence_of(&f, Hook::OnCall);
        assert_eq!(on_call.activity, Some(Activity::OnThePhone));
        assert!(on_call.open);
        let idle = presence_of(&f, Hook::Idle);
        assert_eq!(
            (idle.activity, idle.note),
            (Some(Activity::Meeting), "In a meeting")
        );
        let avail = presence_of(&facts(Presence::Available), Hook::Idle);
        assert_eq!((avail.open, avail.activity), (true, None));
        let dnd = presence_of(&facts(Presence::DoNotDisturb), Hook::Idle);
        assert_eq!((dnd.open, dnd.activity), (false, Some(Activity::Busy)));
        let away = presence_of(&facts(Presence::Away), Hook::Idle);
        assert_eq!(away.activity, Some(Activity::Away));
        let offline = presence_of(&Facts::default(), Hook::Idle);
        assert_eq!((offline.open, offline.note), (false, "Offline"));
    }

    #[test]
    fn ended_calls_are_reported_once_as_terminated() {
        let f = facts(Presence::Available);
        let before = project(
            U,
            1,
            &f,
            &[line(1, LineState::Active, LineDirection::In)],
            |_| false,
            &[],
        );
        let after = project(U, 2, &f, &[], |_| false, &before.dialogs);
        assert_eq!(after.dialogs.len(), 1);
        assert_eq!(after.dialogs[0].state, DialogState::Terminated);
        assert_eq!(after.hook, Hook::Idle);
        assert_eq!(after.presence.activity, None);
    }
}
