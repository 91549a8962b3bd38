//! The brute-force guard: failed digest answers are counted per source address and per
//! account (tenant + user name), and a scope that fails too often is blocked for a time
//! that doubles with each repeat offence (docs/security.md).
//!
//! - A blocked **source** gets no answer to any request carrying credentials: guessing
//!   from it stops, right password or not.
//! - A blocked **account** refuses credentials (403, unchecked) from every source except
//!   those it authenticated from recently: the real phone keeps registering while
//!   guesses spread over many addresses are refused.
//!
//! Each count is a leaky bucket: `burst` failures at once, then `per_minute` a minute
//! for ever (a phone with a wrong password retrying every minute is never blocked).
//! Sans-IO: time comes in as milliseconds; one `Mutex` over both tables is shared by the
//! shards (a guess with a new Call-ID lands on another shard), held for a few hash
//! operations.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use tsps_actors::directory::SourceRange;
use tsps_actors::TenantId;

/// Limits of the guard (`[security]` in the config).
#[derive(Clone, Debug)]
pub struct GuardSettings {
    pub source_burst: u32,
    pub source_per_minute: u32,
    pub account_burst: u32,
    pub account_per_minute: u32,
    /// The first block; each repeat within `max_block_ms` of the last one's end doubles it.
    pub block_ms: u64,
    pub max_block_ms: u64,
    /// How long a source that authenticated an account stays exempt from its block.
    pub known_good_ms: u64,
    /// Sources never blocked (a load balancer or session border controller in front).
    pub trusted: Vec<SourceRange>,
    /// At most this many sources and accounts are tracked; past it (after dropping what
    /// has decayed) new sources are not counted, and that is counted.
    pub max_entries: usize,
}

impl Default for GuardSettings {
    fn default() -> Self {
        Self {
            source_burst: 20,
            source_per_minute: 6,
            account_burst: 10,
            account_per_minute: 3,
            block_ms: 60_000,
            max_block_ms: 3_600_000,
            known_good_ms: 24 * 3_600_000,
            trusted: Vec::new(),
            max_entries: 100_000,
        }
    }
}

/// Who is guessed at: an account of a tenant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Account {
    pub tenant: TenantId,
    pub username: String,
}

/// A scope that is blocked, for the operator's list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocked {
    Source {
        source: IpAddr,
        until_ms: u64,
        /// Blocks in a row (1 for the first).
        strikes: u32,
    },
    Account {
        account: Account,
        until_ms: u64,
        strikes: u32,
    },
}

/// What a failure led to, for the caller's log line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NewBlocks {
    pub source: Option<u64>,
    pub account: Option<u64>,
}

/// A leaky bucket of failures and the block it leads to.
#[derive(Clone, Debug, Default)]
struct Offender {
    /// Failures still in the bucket, as of `at_ms`.
    fill: f64,
    at_ms: u64,
    blocked_until_ms: u64,
    strikes: u32,
}

impl Offender {
    /// Adds one failure; returns the end of the block it starts, if it starts one.
    fn fail(&mut self, now_ms: u64, burst: u32, per_minute: u32, s: &GuardSettings) -> Option<u64> {
        self.leak(now_ms, per_minute);
        self.fill += 1.0;
        if self.fill <= f64::from(burst) || self.blocked_until_ms > now_ms {
            return None;
        }
        // A repeat offence soon after the last block doubles the next one.
        let repeat = self.strikes > 0 && now_ms < self.blocked_until_ms + s.max_block_ms;
        self.strikes = if repeat { self.strikes + 1 } else { 1 };
        let length = s
            .block_ms
            .saturating_mul(1u64 << (self.strikes - 1).min(20))
            .min(s.max_block_ms);
        self.blocked_until_ms = now_ms + length;
        self.fill = 0.0;
        Some(self.blocked_until_ms)
    }

    fn leak(&mut self, now_ms: u64, per_minute: u32) {
        let elapsed = now_ms.saturating_sub(self.at_ms) as f64;
        self.fill = (self.fill - elapsed * f64::from(per_minute) / 60_000.0).max(0.0);
        self.at_ms = now_ms.max(self.at_ms);
    }

    fn blocked(&self, now_ms: u64) -> bool {
        self.blocked_until_ms > now_ms
    }

    /// Nothing left worth keeping: empty bucket, no block, strikes forgotten.
    fn idle(&self, now_ms: u64, per_minute: u32, s: &GuardSettings) -> bool {
        let mut probe = self.clone();
        probe.leak(now_ms, per_minute);
        probe.fill < 0.01 && now_ms >= self.blocked_until_ms + s.max_block_ms
    }
}

#[derive(Debug, Default)]
struct AccountEntry {
    offender: Offender,
    /// Sources this account authenticated from, and until when they are exempt.
    good: Vec<(IpAddr, u64)>,
}

/// Sources a successful account keeps exempt; the oldest is forgotten beyond this.
const GOOD_SOURCES: usize = 8;

#[derive(Debug, Default)]
struct Tables {
    sources: HashMap<IpAddr, Offender>,
    accounts: HashMap<Account, AccountEntry>,
    /// Failures not counted because the tables were full.
    untracked: u64,
}

#[derive(Debug)]
pub struct Guard {
    settings: GuardSettings,
    tables: Mutex<Tables>,
}

impl Guard {
    pub fn new(settings: GuardSettings) -> Self {
        Self {
            settings,
            tables: Mutex::new(Tables::default()),
        }
    }

    pub fn settings(&self) -> &GuardSettings {
        &self.settings
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn trusted(&self, source: IpAddr) -> bool {
        self.settings.trusted.iter().any(|r| r.contains(source))
    }

    /// The end of the source's block, if it is blocked.
    pub fn source_blocked(&self, source: IpAddr, now_ms: u64) -> Option<u64> {
        let t = self.tables();
        let o = t.sources.get(&source)?;
        o.blocked(now_ms).then_some(o.blocked_until_ms)
    }

    /// The end of the account's block, if it is blocked for `source` (a source the
    /// account authenticated from recently is not).
    pub fn account_blocked(&self, account: &Account, source: IpAddr, now_ms: u64) -> Option<u64> {
        let t = self.tables();
        let e = t.accounts.get(account)?;
        if !e.offender.blocked(now_ms) || self.trusted(source) {
            return None;
        }
        let known = e
            .good
            .iter()
            .any(|(ip, until)| *ip == source && *until > now_ms);
        (!known).then_some(e.offender.blocked_until_ms)
    }

    /// A wrong answer from `source`, for `account` when the user name was one of the
    /// tenant's (an unknown name counts against the source only).
    pub fn failure(&self, source: IpAddr, account: Option<&Account>, now_ms: u64) -> NewBlocks {
        let s = &self.settings;
        let mut t = self.tables();
        let mut out = NewBlocks::default();
        if !self.trusted(source) {
            if !t.sources.contains_key(&source) && !Self::room(&mut t, s, now_ms) {
                t.untracked += 1;
            } else {
                let o = t.sources.entry(source).or_default();
                out.source = o.fail(now_ms, s.source_burst, s.source_per_minute, s);
            }
        }
        if let Some(account) = account {
            if !t.accounts.contains_key(account) && !Self::room(&mut t, s, now_ms) {
                t.untracked += 1;
            } else {
                let e = t.accounts.entry(account.clone()).or_default();
                out.account = e
                    .offender
                    .fail(now_ms, s.account_burst, s.account_per_minute, s);
            }
        }
        out
    }

    /// A right answer: `source` becomes a known source of `account`.
    pub fn success(&self, source: IpAddr, account: &Account, now_ms: u64) {
        let until = now_ms + self.settings.known_good_ms;
        let mut t = self.tables();
        // Only accounts already under watch keep their good sources: a healthy account
        // costs nothing here.
        if let Some(e) = t.accounts.get_mut(account) {
            e.good.retain(|(ip, u)| *ip != source && *u > now_ms);
            if e.good.len() >= GOOD_SOURCES {
                e.good.remove(0);
            }
            e.good.push((source, until));
            return;
        }
        if Self::room(&mut t, &self.settings, now_ms) {
            t.accounts.insert(
                account.clone(),
                AccountEntry {
                    offender: Offender {
                        at_ms: now_ms,
                        ..Default::default()
                    },
                    good: vec![(source, until)],
                },
            );
        }
    }

    /// Whether one more entry fits, after forgetting what decayed.
    fn room(t: &mut Tables, s: &GuardSettings, now_ms: u64) -> bool {
        if t.sources.len() + t.accounts.len() < s.max_entries {
            return true;
        }
        t.sources
            .retain(|_, o| !o.idle(now_ms, s.source_per_minute, s));
        t.accounts.retain(|_, e| {
            e.good.retain(|(_, u)| *u > now_ms);
            !(e.offender.idle(now_ms, s.account_per_minute, s) && e.good.is_empty())
        });
        t.sources.len() + t.accounts.len() < s.max_entries
    }

    /// Every block in force, sources first.
    pub fn blocks(&self, now_ms: u64) -> Vec<Blocked> {
        let t = self.tables();
        let mut out: Vec<Blocked> = t
            .sources
            .iter()
            .filter(|(_, o)| o.blocked(now_ms))
            .map(|(ip, o)| Blocked::Source {
                source: *ip,
                until_ms: o.blocked_until_ms,
                strikes: o.strikes,
            })
            .collect();
        out.extend(
            t.accounts
                .iter()
                .filter(|(_, e)| e.offender.blocked(now_ms))
                .map(|(a, e)| Blocked::Account {
                    account: a.clone(),
                    until_ms: e.offender.blocked_until_ms,
                    strikes: e.offender.strikes,
                }),
        );
        out
    }

    /// (blocked sources, blocked accounts) now, for the metrics.
    pub fn counts(&self, now_ms: u64) -> (usize, usize) {
        let t = self.tables();
        (
            t.sources.values().filter(|o| o.blocked(now_ms)).count(),
            t.accounts
                .values()
                .filter(|e| e.offender.blocked(now_ms))
                .count(),
        )
    }

    /// Failures that could not be counted because the tables were full.
    pub fn untracked(&self) -> u64 {
        self.tables().untracked
    }

    /// Lifts a source's block and forgets its failures. False if it was not tracked.
    pub fn unblock_source(&self, source: IpAddr) -> bool {
        self.tables().sources.remove(&source).is_some()
    }

    /// Lifts an account's block and forgets its failures (its known sources stay).
    pub fn unblock_account(&self, account: &Account) -> bool {
        match self.tables().accounts.get_mut(account) {
            Some(e) => {
                e.offender = Offender::default();
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_000_000;
    const MINUTE: u64 = 60_000;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn account(name: &str) -> Account {
        Account {
            tenant: TenantId::for_test(1),
            username: name.into(),
        }
    }

    fn guard() -> Guard {
        Guard::new(GuardSettings::default())
    }

    #[test]
    fn a_burst_of_guesses_blocks_the_source_and_the_block_grows() {
        let g = guard();
        let (attacker, a) = (ip("192.0.2.7"), account("1001"));
        for i in 0..20 {
            assert_eq!(g.failure(attacker, None, T0 + i).source, None, "guess {i}");
        }
        let until = g.failure(attacker, Some(&a), T0 + 20).source;
        assert_eq!(until, Some(T0 + 20 + MINUTE));
        assert_eq!(g.source_blocked(attacker, T0 + 21), until);
        assert_eq!(g.source_blocked(ip("192.0.2.8"), T0 + 21), None);
        // Over: the source may try again.
        assert_eq!(g.source_blocked(attacker, T0 + 21 + MINUTE), None);
        // It guesses again at once: the second block lasts twice as long, the third four times.
        let now = T0 + 21 + MINUTE;
        let second = (0..21).find_map(|i| g.failure(attacker, None, now + i).source);
        assert_eq!(second, Some(now + 20 + 2 * MINUTE));
        let now = now + 21 + 2 * MINUTE;
        let third = (0..21).find_map(|i| g.failure(attacker, None, now + i).source);
        assert_eq!(third, Some(now + 20 + 4 * MINUTE));
        assert!(matches!(
            g.blocks(now + 21).as_slice(),
            [Blocked::Source { strikes: 3, .. }]
        ));
    }

    #[test]
    fn blocks_are_capped_and_forgotten_after_a_quiet_hour() {
        let s = GuardSettings::default();
        let mut o = Offender::default();
        let mut now = T0;
        let mut lengths = Vec::new();
        for _ in 0..10 {
            let until = (0..21)
                .find_map(|i| o.fail(now + i, 20, 6, &s))
                .expect("a block");
            lengths.push((until - now - 20) / MINUTE);
            now = until;
        }
        assert_eq!(lengths, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
        // An hour after the last block ended, the next offence starts again at one minute.
        now += s.max_block_ms;
        let until = (0..21).find_map(|i| o.fail(now + i, 20, 6, &s)).unwrap();
        assert_eq!(until, now + 20 + MINUTE);
    }

    #[test]
    fn a_phone_with_a_wrong_password_retrying_every_minute_is_never_blocked() {
        let g = guard();
        let phone = ip("192.0.2.20");
        for i in 0..24 * 60 {
            let b = g.failure(phone, Some(&account("1001")), T0 + i * MINUTE);
            assert_eq!(b, NewBlocks::default(), "minute {i}");
        }
    }

    #[test]
    fn guesses_spread_over_sources_block_the_account_but_not_its_phone() {
        let g = guard();
        let a = account("1001");
        let phone = ip("192.0.2.1");
        g.success(phone, &a, T0);
        // Ten sources, each guessing once: under every source limit, over the account's.
        let mut blocked = None;
        for i in 0..11u8 {
            let b = g.failure(IpAddr::from([198, 51, 100, i]), Some(&a), T0 + u64::from(i));
            assert_eq!(b.source, None);
            blocked = blocked.or(b.account);
        }
        assert_eq!(blocked, Some(T0 + 10 + MINUTE));
        assert!(g
            .account_blocked(&a, ip("198.51.100.200"), T0 + 11)
            .is_some());
        // The phone that registered before keeps registering.
        assert_eq!(g.account_blocked(&a, phone, T0 + 11), None);
        // Another account of the tenant is not affected.
        assert_eq!(
            g.account_blocked(&account("1002"), ip("198.51.100.200"), T0 + 11),
            None
        );
        // The operator lifts it.
        assert!(g.unblock_account(&a));
        assert_eq!(g.account_blocked(&a, ip("198.51.100.200"), T0 + 12), None);
    }

    #[test]
    fn trusted_sources_are_never_blocked() {
        let g = Guard::new(GuardSettings {
            trusted: vec!["10.0.0.0/8".parse().unwrap()],
            ..Default::default()
        });
        for i in 0..100 {
            assert_eq!(g.failure(ip("10.1.2.3"), None, T0 + i).source, None);
        }
        assert_eq!(g.source_blocked(ip("10.1.2.3"), T0 + 100), None);
    }

    #[test]
    fn unblocking_a_source_forgets_it() {
        let g = guard();
        let attacker = ip("192.0.2.7");
        for i in 0..21 {
            g.failure(attacker, None, T0 + i);
        }
        assert!(g.source_blocked(attacker, T0 + 21).is_some());
        assert_eq!(g.counts(T0 + 21), (1, 0));
        assert!(g.unblock_source(attacker));
        assert_eq!(g.source_blocked(attacker, T0 + 22), None);
        assert!(!g.unblock_source(attacker));
        assert_eq!(g.counts(T0 + 22), (0, 0));
    }

    #[test]
    fn the_tables_stay_bounded() {
        let g = Guard::new(GuardSettings {
            max_entries: 100,
            ..Default::default()
        });
        for i in 0..1000u32 {
            g.failure(IpAddr::from(i.to_be_bytes()), None, T0);
        }
        assert!(g.tables().sources.len() <= 100);
        assert_eq!(g.untracked(), 900);
        // Once the early ones have decayed, new sources are counted again.
        let later = T0 + 4 * 3_600_000;
        g.failure(ip("192.0.2.99"), None, later);
        assert!(g.tables().sources.contains_key(&ip("192.0.2.99")));
    }
}
