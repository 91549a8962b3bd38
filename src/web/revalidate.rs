//! An open event stream ends when its credential does.
//!
//! A request is authorized once, by `web::auth`; an event stream lives on for hours
//! after. So each stream keeps the [`Credential`] that opened it and asks again whether
//! it still opens the stream (see `Auth::still_allows`): at once when this node learns
//! that credentials changed (a [`CredentialsChanged`] on `Auth`'s broadcast: a token
//! revoked, a logout, a user's sessions ended, a user or tenant removed or its role
//! changed), and every [`REVALIDATE_EVERY`] for what this node cannot learn (a change
//! made on another node sharing the store, a token or session reaching its end). Only a
//! definite "no" ends the stream; a store that cannot answer leaves it open.
//!
//! The waiting ([`until_revoked`]) is generic over the check, so it is tested on paused
//! time without a store.

use super::principal::{Credential, Principal};
use crate::store::ApiTokenId;
use rand::Rng;
use std::future::Future;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::{Instant, MissedTickBehavior};
use tsps_actors::{TenantId, UserId};

/// How often an open stream re-checks its credential without being told to: bounds how
/// long a token revoked on another node, or a session past its end, keeps a stream.
/// Each check is one indexed store read (sessions: often this node's 5 s cache).
pub const REVALIDATE_EVERY: Duration = Duration::from_secs(30);

/// Signals buffered per stream: revocations are rare; a stream that misses some
/// (lagged) checks anyway.
pub const CHANGES_BUFFER: usize = 64;

/// What this node just changed about credentials: streams it may concern check theirs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialsChanged {
    /// An API token was revoked.
    Token(ApiTokenId),
    /// A session ended (logout); the SHA-256 of its id.
    Session(String),
    /// A user's sessions ended, the user was removed, or its role changed.
    User(TenantId, UserId),
    /// A tenant was removed with its users, sessions and tokens.
    Tenant(TenantId),
    /// Anything (a provisioning document may change roles anywhere).
    Any,
}

impl CredentialsChanged {
    /// Whether a stream opened with `credential` as `principal` must check again.
    pub fn concerns(&self, credential: &Credential, principal: &Principal) -> bool {
        match (self, credential) {
            // The operator's configured token holds as long as the configuration.
            (_, Credential::Standing) => false,
            (Self::Any, _) => true,
            (Self::Tenant(t), _) => principal.tenant() == Some(*t),
            (Self::Token(id), Credential::ApiToken { .. }) => {
                matches!(principal, Principal::Integration { token, .. } if token == id)
            }
            (Self::Session(h), Credential::Session { id_hash }) => h == id_hash,
            (Self::User(t, u), Credential::Session { .. }) => {
                principal.tenant() == Some(*t) && principal.user() == Some(*u)
            }
            (Self::Token(_), Credential::Session { .. })
            | (Self::Session(_) | Self::User(..), Credential::ApiToken { .. }) => false,
        }
    }
}

/// Where a stream's first periodic check falls: anywhere in the first period, so that
/// streams opened together (a restart, a reconnect wave) do not check together.
pub fn first_check_after() -> Duration {
    rand::thread_rng().gen_range(Duration::ZERO..REVALIDATE_EVERY)
}

/// Resolves once `check` says `Ok(false)`: the credential no longer opens the stream.
/// `check` runs `first_after` from now and every [`REVALIDATE_EVERY`] after, and at once
/// on each change in `changes` that `concerns` it (or when signals were missed). An
/// error keeps the stream (warned once until a check succeeds again).
pub async fn until_revoked<F, Fut, E>(
    mut changes: broadcast::Receiver<CredentialsChanged>,
    concerns: impl Fn(&CredentialsChanged) -> bool,
    first_after: Duration,
    mut check: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, E>>,
    E: std::fmt::Display,
{
    let mut every = tokio::time::interval_at(Instant::now() + first_after, REVALIDATE_EVERY);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut signals = true;
    let mut warned = false;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            change = changes.recv(), if signals => match change {
                Ok(c) if !concerns(&c) => continue,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                // The sender lives in `Auth`: only at shutdown. The timer goes on.
                Err(RecvError::Closed) => {
                    signals = false;
                    continue;
                }
            },
        }
        match check().await {
            Ok(true) => warned = false,
            Ok(false) => return,
            Err(e) => {
                if !warned {
                    tracing::warn!(error = %e, "re-checking an event stream's credentials failed: the stream stays open");
                    warned = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    const T: TenantId = TenantId::for_test(1);
    const OTHER_T: TenantId = TenantId::for_test(2);
    const ME: UserId = UserId::for_test(10);
    const PEER: UserId = UserId::for_test(11);
    const TOKEN: ApiTokenId = ApiTokenId::for_test(1);
    const OTHER_TOKEN: ApiTokenId = ApiTokenId::for_test(2);

    #[test]
    fn a_change_concerns_the_streams_of_its_credential_only() {
        use CredentialsChanged as C;
        let session = Credential::Session {
            id_hash: "s1".into(),
        };
        let token = Credential::ApiToken {
            secret_hash: "t1".into(),
        };
        let user = Principal::User {
            tenant: T,
            user: ME,
        };
        let admin = Principal::TenantAdmin {
            tenant: T,
            user: PEER,
        };
        let cti = Principal::Integration {
            tenant: T,
            token: TOKEN,
            users: None,
        };
        let op = Principal::Operator;
        #[rustfmt::skip]
        let table: Vec<(C, &Credential, &Principal, bool)> = vec![
            (C::Token(TOKEN), &token, &cti, true),
            (C::Token(OTHER_TOKEN), &token, &cti, false),
            (C::Token(TOKEN), &session, &user, false),
            (C::Session("s1".into()), &session, &user, true),
            (C::Session("s2".into()), &session, &user, false),
            (C::Session("s1".into()), &token, &cti, false),
            (C::User(T, ME), &session, &user, true),
            (C::User(T, PEER), &session, &user, false),
            (C::User(OTHER_T, ME), &session, &user, false),
            (C::User(T, PEER), &session, &admin, true),
            // An integration acts for users, it is none: a user's change is not its own.
            (C::User(T, ME), &token, &cti, false),
            (C::User(T, ME), &session, &op, false),
            (C::Tenant(T), &session, &user, true),
            (C::Tenant(T), &token, &cti, true),
            (C::Tenant(OTHER_T), &token, &cti, false),
            (C::Tenant(T), &session, &op, false),
            (C::Any, &session, &op, true),
            (C::Any, &token, &cti, true),
            // The configured operator token: nothing revokes it but the configuration.
            (C::Any, &Credential::Standing, &op, false),
            (C::Tenant(T), &Credential::Standing, &op, false),
        ];
        for (change, credential, principal, want) in table {
            assert_eq!(
                change.concerns(credential, principal),
                want,
                "{change:?} {credential:?} {principal:?}"
            );
        }
    }

    #[test]
    fn the_first_check_falls_within_the_first_period() {
        for _ in 0..100 {
            assert!(first_check_after() < REVALIDATE_EVERY);
        }
    }

    /// A check that answers from a script and counts its calls.
    #[derive(Clone, Default)]
    struct Script {
        answers: Arc<Mutex<Vec<Result<bool, &'static str>>>>,
        calls: Arc<Mutex<u32>>,
    }

    impl Script {
        fn answer(&self, a: Result<bool, &'static str>) {
            self.answers.lock().unwrap().push(a);
        }

        fn calls(&self) -> u32 {
            *self.calls.lock().unwrap()
        }

        fn check(&self) -> impl FnMut() -> futures::future::Ready<Result<bool, &'static str>> {
            let s = self.clone();
            move || {
                *s.calls.lock().unwrap() += 1;
                let mut answers = s.answers.lock().unwrap();
                let a = if answers.is_empty() {
                    Ok(true)
                } else {
                    answers.remove(0)
                };
                futures::future::ready(a)
            }
        }
    }

    fn only_token(c: &CredentialsChanged) -> bool {
        *c == CredentialsChanged::Token(TOKEN)
    }

    /// Lets the watcher run until it waits again.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn checks_periodically_from_a_random_offset_until_revoked() {
        let (tx, rx) = broadcast::channel(CHANGES_BUFFER);
        let script = Script::default();
        let offset = Duration::from_secs(7);
        let watch = tokio::spawn(until_revoked(rx, only_token, offset, script.check()));
        settle().await;
        assert_eq!(script.calls(), 0, "no check before the offset");
        tokio::time::advance(offset).await;
        settle().await;
        assert_eq!(script.calls(), 1);
        tokio::time::advance(REVALIDATE_EVERY - Duration::from_secs(1)).await;
        settle().await;
        assert_eq!(script.calls(), 1);
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
        assert_eq!(script.calls(), 2);
        // Revoked elsewhere: the next periodic check ends it.
        script.answer(Ok(false));
        tokio::time::advance(REVALIDATE_EVERY).await;
        settle().await;
        assert_eq!(script.calls(), 3);
        assert!(watch.is_finished());
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_signal_that_concerns_it_checks_at_once_others_do_not() {
        let (tx, rx) = broadcast::channel(CHANGES_BUFFER);
        let script = Script::default();
        let watch = tokio::spawn(until_revoked(
            rx,
            only_token,
            REVALIDATE_EVERY,
            script.check(),
        ));
        settle().await;
        tx.send(CredentialsChanged::Token(OTHER_TOKEN)).unwrap();
        tx.send(CredentialsChanged::Session("s".into())).unwrap();
        settle().await;
        assert_eq!(script.calls(), 0);
        // Its own token, re-checked and found in force: the stream stays.
        tx.send(CredentialsChanged::Token(TOKEN)).unwrap();
        settle().await;
        assert_eq!(script.calls(), 1);
        assert!(!watch.is_finished());
        script.answer(Ok(false));
        tx.send(CredentialsChanged::Token(TOKEN)).unwrap();
        settle().await;
        assert_eq!(script.calls(), 2);
        assert!(watch.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_check_keeps_the_stream_and_missed_signals_check() {
        let (tx, rx) = broadcast::channel(2);
        let script = Script::default();
        let watch = tokio::spawn(until_revoked(
            rx,
            only_token,
            REVALIDATE_EVERY,
            script.check(),
        ));
        settle().await;
        script.answer(Err("store unreachable"));
        script.answer(Err("store unreachable"));
        tx.send(CredentialsChanged::Token(TOKEN)).unwrap();
        settle().await;
        tokio::time::advance(REVALIDATE_EVERY).await;
        settle().await;
        assert_eq!(script.calls(), 2);
        assert!(!watch.is_finished(), "an error is no revocation");
        // More signals than the buffer holds, none its own: it missed some, so it checks.
        for _ in 0..5 {
            tx.send(CredentialsChanged::Session("x".into())).unwrap();
        }
        script.answer(Ok(false));
        settle().await;
        assert_eq!(script.calls(), 3);
        assert!(watch.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn without_signals_the_timer_goes_on() {
        let (tx, rx) = broadcast::channel(CHANGES_BUFFER);
        let script = Script::default();
        let watch = tokio::spawn(until_revoked(
            rx,
            only_token,
            REVALIDATE_EVERY,
            script.check(),
        ));
        drop(tx);
        settle().await;
        assert_eq!(script.calls(), 0);
        script.answer(Ok(false));
        tokio::time::advance(REVALIDATE_EVERY).await;
        settle().await;
        assert!(watch.is_finished());
    }
}
