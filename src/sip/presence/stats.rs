//! The notifier's counters, shared by every shard and read by the metrics at scrape
//! time (`tsps_presence_*`). Relaxed atomics: each is an independent count, and a
//! scrape may see one a moment before another.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicI64, AtomicU64};
use tsps_actors::presence::Package;

/// How a request of the notifier (NOTIFY, MESSAGE) ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx.
    Ok,
    /// Any other final response.
    Error,
    /// No final response (Timer F; a transport failure also ends this way, as the
    /// transports do not report failed sends to the transactions).
    Timeout,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Ok, Outcome::Error, Outcome::Timeout];

    /// The outcome of a final response.
    pub fn of(code: u16) -> Self {
        if (200..300).contains(&code) {
            Outcome::Ok
        } else {
            Outcome::Error
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

pub const PACKAGES: [Package; 2] = [Package::Dialog, Package::Presence];

pub fn package_label(p: Package) -> &'static str {
    match p {
        Package::Dialog => "dialog",
        Package::Presence => "presence",
    }
}

fn package_index(p: Package) -> usize {
    match p {
        Package::Dialog => 0,
        Package::Presence => 1,
    }
}

/// The codes a SUBSCRIBE is refused with (`subscribe.rs`); few, so a label is fine.
pub const REJECT_CODES: [u16; 8] = [400, 403, 404, 406, 423, 481, 489, 500];

#[derive(Debug, Default)]
pub struct PresenceStats {
    /// Active subscriptions (granted, not ended) by package.
    subscriptions: [AtomicI64; 2],
    notify: [AtomicU64; 3],
    /// Changes that did not get a NOTIFY of their own: one was in flight, so they
    /// went into the next one.
    folded: AtomicU64,
    messages: [AtomicU64; 3],
    rejected: [AtomicU64; REJECT_CODES.len()],
}

impl PresenceStats {
    pub fn subscription_started(&self, p: Package) {
        self.subscriptions[package_index(p)].fetch_add(1, Relaxed);
    }

    pub fn subscription_ended(&self, p: Package) {
        self.subscriptions[package_index(p)].fetch_sub(1, Relaxed);
    }

    pub fn notify_ended(&self, o: Outcome) {
        self.notify[o.index()].fetch_add(1, Relaxed);
    }

    pub fn folded(&self, n: u64) {
        if n > 0 {
            self.folded.fetch_add(n, Relaxed);
        }
    }

    pub fn message_ended(&self, o: Outcome) {
        self.messages[o.index()].fetch_add(1, Relaxed);
    }

    /// A SUBSCRIBE refused with `code` (a code not in [`REJECT_CODES`] is not counted).
    pub fn rejected(&self, code: u16) {
        if let Some(i) = REJECT_CODES.iter().position(|c| *c == code) {
            self.rejected[i].fetch_add(1, Relaxed);
        }
    }

    pub fn subscriptions(&self, p: Package) -> i64 {
        self.subscriptions[package_index(p)].load(Relaxed)
    }

    pub fn notifies(&self, o: Outcome) -> u64 {
        self.notify[o.index()].load(Relaxed)
    }

    pub fn folded_total(&self) -> u64 {
        self.folded.load(Relaxed)
    }

    pub fn messages(&self, o: Outcome) -> u64 {
        self.messages[o.index()].load(Relaxed)
    }

    /// Refusals by code, in the order of [`REJECT_CODES`].
    pub fn rejections(&self) -> impl Iterator<Item = (u16, u64)> + '_ {
        REJECT_CODES
            .iter()
            .zip(&self.rejected)
            .map(|(c, n)| (*c, n.load(Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_responses_and_timeouts_are_told_apart() {
        assert_eq!(Outcome::of(200), Outcome::Ok);
        assert_eq!(Outcome::of(202), Outcome::Ok);
        assert_eq!(Outcome::of(481), Outcome::Error);
        assert_eq!(Outcome::of(302), Outcome::Error);
        let s = PresenceStats::default();
        s.notify_ended(Outcome::Ok);
        s.notify_ended(Outcome::Ok);
        s.notify_ended(Outcome::Timeout);
        s.message_ended(Outcome::Error);
        assert_eq!(
            Outcome::ALL.map(|o| s.notifies(o)),
            [2, 0, 1],
            "ok, error, timeout"
        );
        assert_eq!(Outcome::ALL.map(|o| s.messages(o)), [0, 1, 0]);
    }

    #[test]
    fn subscriptions_are_counted_per_package_and_refusals_per_code() {
        let s = PresenceStats::default();
        s.subscription_started(Package::Dialog);
        s.subscription_started(Package::Dialog);
        s.subscription_started(Package::Presence);
        s.subscription_ended(Package::Dialog);
        assert_eq!(s.subscriptions(Package::Dialog), 1);
        assert_eq!(s.subscriptions(Package::Presence), 1);
        s.rejected(489);
        s.rejected(489);
        s.rejected(404);
        s.rejected(407);
        let r: Vec<_> = s.rejections().filter(|(_, n)| *n > 0).collect();
        assert_eq!(r, [(404, 1), (489, 2)], "407 is a challenge, not counted");
    }
}
