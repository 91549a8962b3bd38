//! The notifier side of one subscription (RFC 6665 §4.2), sans-IO: inputs in, outputs
//! out; the shard sends the NOTIFYs and runs the expiry timer.
//!
//! ```text
//!            Accepted (expires > 0)          Unsubscribe / expiry timer / Revoke
//! Pending ───────────────────────────▶ Active ─────────────────────────────▶ Terminating
//!    │  Refused                          │  NOTIFY 481, other ≥300, timeout      │ last NOTIFY
//!    ▼                                   ▼                                       ▼ answered
//!  Done ◀────────────────────────────── Done ◀───────────────────────────────── Done
//! ```
//! Each NOTIFY carries the full state and the next version (RFC 4235 §4.1). One NOTIFY
//! is in flight at a time: changes meanwhile are folded into the next one (full state
//! makes that lossless), which also keeps a slow watcher from piling up transactions.

use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tsps_actors::presence::{DialogState, Package, WatchedState};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Authorized; waiting for the presence actor's answer (no response sent yet).
    Pending,
    Active,
    /// The final NOTIFY is out; waiting for its answer.
    Terminating,
    Done,
}

/// The `Subscription-State` of a NOTIFY (RFC 6665 §8.2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubState {
    Active {
        expires: u32,
    },
    /// `terminated;reason=timeout`: expired, or ended by the subscriber (Expires: 0).
    Timeout,
    /// `terminated;reason=rejected`: no longer authorized (the tenant's subscriber
    /// table changed; RFC 6665 §4.1.3: the subscriber should not retry).
    Rejected,
}

impl SubState {
    pub fn header(&self) -> String {
        match self {
            SubState::Active { expires } => format!("active;expires={expires}"),
            SubState::Timeout => "terminated;reason=timeout".into(),
            SubState::Rejected => "terminated;reason=rejected".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// The presence actor took the subscription: its current state.
    Accepted {
        state: Arc<WatchedState>,
        expires: Duration,
    },
    /// The presence actor refused it (too many for the device).
    Refused,
    /// The watched user's state changed.
    Update {
        state: Arc<WatchedState>,
        notify: bool,
        im: bool,
    },
    /// A re-SUBSCRIBE in the dialog with this (granted, non-zero) interval.
    Refresh { expires: Duration },
    /// A re-SUBSCRIBE with `Expires: 0`.
    Unsubscribe,
    /// A re-SUBSCRIBE from a watcher the subscriber table no longer allows.
    Revoke,
    /// The expiry timer fired (possibly stale: a refresh moved the expiry).
    Timer,
    /// A final response to one of our NOTIFYs.
    NotifyAnswered { code: u16 },
    /// A NOTIFY got no final response (Timer F).
    NotifyTimedOut,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Send a NOTIFY with this full state and version.
    Notify {
        state: Arc<WatchedState>,
        version: u32,
        sub_state: SubState,
    },
    /// Send the watcher an instant message about this state's hook.
    Im(Arc<WatchedState>),
    /// Fire [`Input::Timer`] at this instant.
    Timer(Instant),
    /// Tell the presence actor the subscription is over.
    Unwatch,
    /// Forget the subscription and its dialog.
    Remove,
}

#[derive(Debug)]
pub struct Subscription {
    pub package: Package,
    pub phase: Phase,
    expires_at: Instant,
    /// The next NOTIFY's version (RFC 4235: starts at 0, +1 per NOTIFY).
    version: u32,
    /// NOTIFYs sent and not yet answered.
    outstanding: u32,
    /// A change waits for the NOTIFY in flight.
    dirty: bool,
    latest: Option<Arc<WatchedState>>,
    /// Changes (and refreshes) that went into a later NOTIFY instead of one of their
    /// own, since the start (for the metrics).
    folded: u64,
}

impl Subscription {
    pub fn new(package: Package) -> Self {
        Self {
            package,
            phase: Phase::Pending,
            expires_at: Instant::now(),
            version: 0,
            outstanding: 0,
            dirty: false,
            latest: None,
            folded: 0,
        }
    }

    /// How many changes were folded into a later NOTIFY so far.
    pub fn folded(&self) -> u64 {
        self.folded
    }

    /// Seconds left until expiry (for `Subscription-State: active;expires=`).
    fn left(&self, now: Instant) -> u32 {
        self.expires_at
            .saturating_duration_since(now)
            .as_secs()
            .try_into()
            .unwrap_or(u32::MAX)
    }

    /// Keeps the newer of the known state and `state` (an update and the actor's answer
    /// may cross).
    fn take_newer(&mut self, state: Arc<WatchedState>) -> bool {
        match &self.latest {
            Some(l) if l.seq >= state.seq => false,
            _ => {
                self.latest = Some(state);
                true
            }
        }
    }

    fn notify(&mut self, sub_state: SubState, out: &mut Vec<Output>) {
        let Some(state) = self.latest.clone() else {
            return;
        };
        if state
            .dialogs
            .iter()
            .any(|d| d.state == DialogState::Terminated)
        {
            // Ended calls are reported once: later NOTIFYs (a refresh) omit them.
            let mut rest = (*state).clone();
            rest.dialogs.retain(|d| d.state != DialogState::Terminated);
            self.latest = Some(Arc::new(rest));
        }
        out.push(Output::Notify {
            state,
            version: self.version,
            sub_state,
        });
        self.version = self.version.wrapping_add(1);
        self.outstanding += 1;
        self.dirty = false;
    }

    fn active_notify(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.outstanding > 0 {
            self.dirty = true;
            self.folded += 1;
        } else {
            let expires = self.left(now);
            self.notify(SubState::Active { expires }, out);
        }
    }

    fn update(
        &mut self,
        now: Instant,
        state: Arc<WatchedState>,
        notify: bool,
        im: bool,
        out: &mut Vec<Output>,
    ) {
        if !self.take_newer(state.clone()) {
            return;
        }
        if im {
            out.push(Output::Im(state));
        }
        if notify {
            self.active_notify(now, out);
        }
    }

    fn terminate(&mut self, out: &mut Vec<Output>) {
        self.end(SubState::Timeout, out);
    }

    fn end(&mut self, how: SubState, out: &mut Vec<Output>) {
        self.phase = Phase::Terminating;
        self.notify(how, out);
        out.push(Output::Unwatch);
    }

    fn done(&mut self, out: &mut Vec<Output>) {
        self.phase = Phase::Done;
        out.push(Output::Remove);
    }

    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Output> {
        let mut out = Vec::new();
        match (self.phase, input) {
            (Phase::Pending, Input::Accepted { state, expires }) => {
                self.take_newer(state);
                self.expires_at = now + expires;
                if expires.is_zero() {
                    // A fetch (RFC 6665 §4.4.3): one NOTIFY with the state, and over.
                    self.terminate(&mut out);
                } else {
                    self.phase = Phase::Active;
                    self.active_notify(now, &mut out);
                    out.push(Output::Timer(self.expires_at));
                }
            }
            (Phase::Pending, Input::Refused) => self.done(&mut out),
            (Phase::Pending, Input::Update { state, .. }) => {
                self.take_newer(state);
            }
            (Phase::Active, Input::Update { state, notify, im }) => {
                self.update(now, state, notify, im, &mut out)
            }
            (Phase::Active, Input::Refresh { expires }) => {
                // RFC 6665 §4.2.1.2: a refresh is answered with a NOTIFY of the state.
                self.expires_at = now + expires;
                self.active_notify(now, &mut out);
                out.push(Output::Timer(self.expires_at));
            }
            (Phase::Active, Input::Unsubscribe) => self.terminate(&mut out),
            (Phase::Active, Input::Revoke) => self.end(SubState::Rejected, &mut out),
            (Phase::Active, Input::Timer) if now >= self.expires_at => self.terminate(&mut out),
            (Phase::Active, Input::NotifyAnswered { code }) if (200..300).contains(&code) => {
                self.outstanding = self.outstanding.saturating_sub(1);
                if self.dirty && self.outstanding == 0 {
                    let expires = self.left(now);
                    self.notify(SubState::Active { expires }, &mut out);
                }
            }
            (Phase::Active, Input::NotifyAnswered { .. } | Input::NotifyTimedOut) => {
                // RFC 6665 §4.2.2: a 481, a failure or a timeout ends the subscription.
                out.push(Output::Unwatch);
                self.done(&mut out);
            }
            (Phase::Terminating, Input::NotifyAnswered { .. } | Input::NotifyTimedOut) => {
                self.outstanding = self.outstanding.saturating_sub(1);
                if self.outstanding == 0 {
                    self.done(&mut out);
                }
            }
            // Anything else is late or out of place: nothing to do.
            _ => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsps_actors::presence::{Hook, PresenceView};
    use tsps_actors::UserId;

    fn st(seq: u64) -> Arc<WatchedState> {
        Arc::new(WatchedState {
            user: UserId::for_test(2),
            seq,
            hook: Hook::Idle,
            dialogs: vec![],
            presence: PresenceView {
                open: true,
                activity: None,
                note: "Available",
            },
        })
    }

    fn notifies(out: &[Output]) -> Vec<(u64, u32, SubState)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Notify {
                    state,
                    version,
                    sub_state,
                } => Some((state.seq, *version, *sub_state)),
                _ => None,
            })
            .collect()
    }

    fn accepted(sub: &mut Subscription, seq: u64, secs: u64) -> Vec<Output> {
        sub.handle(
            Instant::now(),
            Input::Accepted {
                state: st(seq),
                expires: Duration::from_secs(secs),
            },
        )
    }

    #[tokio::test(start_paused = true)]
    async fn initial_notify_then_one_in_flight_with_changes_folded() {
        let mut sub = Subscription::new(Package::Dialog);
        let out = accepted(&mut sub, 1, 60);
        assert_eq!(notifies(&out), [(1, 0, SubState::Active { expires: 60 })]);
        assert_eq!(
            out.last(),
            Some(&Output::Timer(Instant::now() + Duration::from_secs(60)))
        );
        assert_eq!(sub.phase, Phase::Active);
        let up = |seq| Input::Update {
            state: st(seq),
            notify: true,
            im: false,
        };
        // Two changes while the first NOTIFY is unanswered: nothing sent yet.
        assert!(sub.handle(Instant::now(), up(2)).is_empty());
        assert!(sub.handle(Instant::now(), up(3)).is_empty());
        // An older state that crossed is ignored.
        assert!(sub.handle(Instant::now(), up(2)).is_empty());
        assert_eq!(
            sub.folded(),
            2,
            "two changes wait, the stale one is not one"
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        let out = sub.handle(Instant::now(), Input::NotifyAnswered { code: 200 });
        assert_eq!(
            notifies(&out),
            [(3, 1, SubState::Active { expires: 50 })],
            "the latest state, next version, time left"
        );
        sub.handle(Instant::now(), Input::NotifyAnswered { code: 200 });
        let out = sub.handle(Instant::now(), up(4));
        assert_eq!(notifies(&out), [(4, 2, SubState::Active { expires: 50 })]);
        assert_eq!(sub.folded(), 2, "nothing in flight: a NOTIFY of its own");
    }

    #[tokio::test(start_paused = true)]
    async fn an_update_before_the_answer_of_the_actor_is_kept_if_newer() {
        let mut sub = Subscription::new(Package::Presence);
        let out = sub.handle(
            Instant::now(),
            Input::Update {
                state: st(5),
                notify: true,
                im: true,
            },
        );
        assert!(out.is_empty(), "nothing is sent before the 200");
        let out = accepted(&mut sub, 4, 60);
        assert_eq!(notifies(&out), [(5, 0, SubState::Active { expires: 60 })]);
    }

    #[tokio::test(start_paused = true)]
    async fn instant_messages_go_out_even_while_a_notify_is_in_flight() {
        let mut sub = Subscription::new(Package::Dialog);
        accepted(&mut sub, 1, 60);
        let out = sub.handle(
            Instant::now(),
            Input::Update {
                state: st(2),
                notify: true,
                im: true,
            },
        );
        assert_eq!(out, [Output::Im(st(2))]);
    }

    #[tokio::test(start_paused = true)]
    async fn expiry_sends_terminated_timeout_and_refresh_moves_it() {
        let mut sub = Subscription::new(Package::Dialog);
        accepted(&mut sub, 1, 60);
        sub.handle(Instant::now(), Input::NotifyAnswered { code: 200 });
        tokio::time::advance(Duration::from_secs(50)).await;
        let out = sub.handle(
            Instant::now(),
            Input::Refresh {
                expires: Duration::from_secs(60),
            },
        );
        assert_eq!(notifies(&out), [(1, 1, SubState::Active { expires: 60 })]);
        sub.handle(Instant::now(), Input::NotifyAnswered { code: 200 });
        // The first timer fires at 60 s: stale, the refresh moved expiry to 110 s.
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(sub.handle(Instant::now(), Input::Timer).is_empty());
        tokio::time::advance(Duration::from_secs(50)).await;
        let out = sub.handle(Instant::now(), Input::Timer);
        assert_eq!(notifies(&out), [(1, 2, SubState::Timeout)]);
        assert_eq!(out.last(), Some(&Output::Unwatch));
        assert_eq!(sub.phase, Phase::Terminating);
        // Late changes are not sent; the answer to the last NOTIFY ends it.
        assert!(sub
            .handle(
                Instant::now(),
                Input::Update {
                    state: st(9),
                    notify: true,
                    im: true
                }
            )
            .is_empty());
        let out = sub.handle(Instant::now(), Input::NotifyAnswered { code: 200 });
        assert_eq!(out, [Output::Remove]);
        assert_eq!(sub.phase, Phase::Done);
    }

    #[tokio::test(start_paused = true)]
    async fn a_terminated_dialog_is_not_repeated_by_a_refresh() {
        use tsps_actors::lines::Peer;
        use tsps_actors::presence::DialogView;
        let mut sub = Subscription::new(Package::Dialog);
        accepted(&mut sub, 1, 60);
        sub.handle(Instant::now(), Input::NotifyAnswered { code: 200 });
        let mut ended = (*st(2)).clone();
        ended.dialogs.push(DialogView {
            call: tsps_actors::CallId::for_test(1),
            state: DialogState::Terminated,
            initiator: false,
            remote: Peer {
                number: "1001".into(),
                name: None,
            },
            held: false,
        });
        let out = sub.handle(
            Instant::now(),
            Input::Update {
                state: Arc::new(ended),
                notify: true,
                im: false,
            },
        );
        let Output::Notify { state, .. } = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(state.dialogs.len(), 1);
        sub.handle(Instant::now(), Input::NotifyAnswered { code: 200 });
        let out = sub.handle(
            Instant::now(),
            Input::Refresh {
                expires: Duration::from_secs(60),
            },
        );
        let Output::Notify { state, .. } = &out[0] else {
            panic!("{out:?}")
        };
        assert!(state.dialogs.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn unsubscribe_and_fetch_end_with_a_final_notify() {
        let mut sub = Subscription::new(Package::Presence);
        accepted(&mut sub, 1, 60);
        let out = sub.handle(Instant::now(), Input::Unsubscribe);
        assert_eq!(notifies(&out), [(1, 1, SubState::Timeout)]);
        // Both NOTIFYs must be answered before the dialog goes.
        assert!(sub
            .handle(Instant::now(), Input::NotifyAnswered { code: 200 })
            .is_empty());
        assert_eq!(
            sub.handle(Instant::now(), Input::NotifyTimedOut),
            [Output::Remove]
        );

        let mut fetch = Subscription::new(Package::Presence);
        let out = accepted(&mut fetch, 1, 0);
        assert_eq!(notifies(&out), [(1, 0, SubState::Timeout)]);
        assert!(out.contains(&Output::Unwatch));
    }

    #[tokio::test(start_paused = true)]
    async fn a_revoked_subscription_ends_with_reason_rejected() {
        let mut sub = Subscription::new(Package::Dialog);
        accepted(&mut sub, 1, 600);
        sub.handle(Instant::now(), Input::NotifyAnswered { code: 200 });
        let out = sub.handle(Instant::now(), Input::Revoke);
        assert_eq!(notifies(&out), [(1, 1, SubState::Rejected)]);
        assert!(out.contains(&Output::Unwatch));
        assert_eq!(SubState::Rejected.header(), "terminated;reason=rejected");
        assert_eq!(
            sub.handle(Instant::now(), Input::NotifyAnswered { code: 200 }),
            [Output::Remove]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_notify_ends_the_subscription() {
        for input in [
            Input::NotifyAnswered { code: 481 },
            Input::NotifyAnswered { code: 500 },
            Input::NotifyTimedOut,
        ] {
            let mut sub = Subscription::new(Package::Dialog);
            accepted(&mut sub, 1, 60);
            let out = sub.handle(Instant::now(), input.clone());
            assert_eq!(out, [Output::Unwatch, Output::Remove], "{input:?}");
        }
        let mut refused = Subscription::new(Package::Dialog);
        assert_eq!(
            refused.handle(Instant::now(), Input::Refused),
            [Output::Remove]
        );
    }
}
