//! Counters of the authenticator, read by the metrics at scrape time.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// What became of a request's credentials (or of their absence).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    Ok,
    /// No credentials for the realm, a nonce not ours, or an algorithm not offered.
    Challenged,
    /// Right password, expired nonce: challenged again with `stale=true`.
    Stale,
    /// Right password, nonce count already used: a replay (or a reordered request).
    Replay,
    WrongPassword,
    /// A user name (or realm) no device has.
    UnknownUser,
    /// The digest's `uri` names another resource than the Request-URI (400).
    WrongUri,
    /// Dropped unanswered: the source is blocked.
    BlockedSource,
    /// Refused unchecked: the account is blocked for this source.
    BlockedAccount,
}

impl AuthOutcome {
    pub const ALL: [AuthOutcome; 9] = [
        AuthOutcome::Ok,
        AuthOutcome::Challenged,
        AuthOutcome::Stale,
        AuthOutcome::Replay,
        AuthOutcome::WrongPassword,
        AuthOutcome::UnknownUser,
        AuthOutcome::WrongUri,
        AuthOutcome::BlockedSource,
        AuthOutcome::BlockedAccount,
    ];

    pub fn label(self) -> &'static str {
        match self {
            AuthOutcome::Ok => "ok",
            AuthOutcome::Challenged => "challenged",
            AuthOutcome::Stale => "stale",
            AuthOutcome::Replay => "replay",
            AuthOutcome::WrongPassword => "wrong_password",
            AuthOutcome::UnknownUser => "unknown_user",
            AuthOutcome::WrongUri => "wrong_uri",
            AuthOutcome::BlockedSource => "blocked_source",
            AuthOutcome::BlockedAccount => "blocked_account",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Default)]
pub struct AuthStats {
    outcomes: [AtomicU64; AuthOutcome::ALL.len()],
}

impl AuthStats {
    pub fn count(&self, o: AuthOutcome) {
        self.outcomes[o.index()].fetch_add(1, Relaxed);
    }

    pub fn total(&self, o: AuthOutcome) -> u64 {
        self.outcomes[o.index()].load(Relaxed)
    }
}
