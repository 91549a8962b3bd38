//! Portal sessions: the session store behind the `tsps_session` cookie, the cookie
//! itself, and the failed-login limiter. The handlers that log in and out are
//! `web::login`; this module knows nothing of `web::auth`, which resolves a request's
//! cookie here.
//!
//! A session belongs to a user of a tenant or to a platform operator (who logs in with
//! `"operator": true` and no domain). A session id is 256 random bits, sent only in an
//! `HttpOnly; SameSite=Strict` cookie; the database keeps its SHA-256 with the user (or
//! operator), the CSRF token and the times, so
//! sessions survive a restart and every node sees them. Each node caches a session it
//! has read for [`CACHE_FOR`]: a logout on another node, or a role change, takes effect
//! here within that time. A session ends after `http.session_idle_secs` without a
//! request or `http.session_lifetime_secs` after login, whichever comes first. An event
//! stream of the session ends with it (`web::revalidate`): ending sessions here tells
//! the open streams.
//!
//! The limiter is in memory, hence per node: see [`FailureLimiter`].

use super::revalidate::CredentialsChanged;
use crate::secret::Secret;
use crate::store::{DynStore, SessionAccount, SessionRecord, SessionSubject, StoreError};
use axum::http::{header, HeaderValue};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tsps_actors::ports::Clock;
use tsps_actors::{TenantId, UserId};

pub const COOKIE: &str = "tsps_session";
/// How long a node trusts a session it read from the database before reading it again.
pub const CACHE_FOR: Duration = Duration::from_secs(5);
/// `last_seen_at` is written at most this often per session (not on every request).
const TOUCH_EVERY: Duration = Duration::from_secs(60);
/// Sessions cached per node; beyond it the cache starts over (it is only a cache).
const MAX_CACHED: usize = 10_000;

/// Failed logins allowed per (domain, login) in [`WINDOW`]; the next attempt is 429.
pub const MAX_FAILURES_PER_LOGIN: usize = 5;
/// Failed logins allowed per client address in [`WINDOW`]: more than per login, since
/// an office behind one NAT address shares it.
pub const MAX_FAILURES_PER_IP: usize = 20;
pub const WINDOW: Duration = Duration::from_secs(300);
/// Keys each limiter tracks; see [`FailureLimiter::fail`].
const MAX_KEYS: usize = 100_000;

// ---------------------------------------------------------------------------------
// The failed-login limiter (sans-IO).

/// Counts failures per key in a sliding window: a key with `max` failures in the last
/// `window` is blocked until the oldest of them leaves the window. Only failures count
/// (a user who types the password right is never slowed down), and a success can
/// reset a key, which a token bucket such as `governor`'s cannot do per key; the
/// whole thing is a map of small queues, with the clock passed in so tests need none.
pub struct FailureLimiter<K> {
    max: usize,
    window: Duration,
    failures: HashMap<K, VecDeque<Instant>>,
}

impl<K: Hash + Eq> FailureLimiter<K> {
    pub fn new(max: usize, window: Duration) -> Self {
        Self {
            max: max.max(1),
            window,
            failures: HashMap::new(),
        }
    }

    /// How long `key` must still wait, if it is blocked at `now`.
    pub fn blocked(&self, key: &K, now: Instant) -> Option<Duration> {
        let q = self.failures.get(key)?;
        let recent: Vec<&Instant> = q.iter().filter(|t| now < **t + self.window).collect();
        if recent.len() < self.max {
            return None;
        }
        // Unblocked when all but max-1 of the recent failures have left the window.
        let oldest_that_matters = recent[recent.len() - self.max];
        Some((*oldest_that_matters + self.window).saturating_duration_since(now))
    }

    pub fn fail(&mut self, key: K, now: Instant) {
        if self.failures.len() >= MAX_KEYS && !self.failures.contains_key(&key) {
            self.forget_old(now);
            if self.failures.len() >= MAX_KEYS {
                // Still full of live keys: start over rather than grow without bound.
                // Someone rotating through 100,000 keys in one window is throttled by
                // the other limiter (per address or per login) meanwhile.
                self.failures.clear();
            }
        }
        let window = self.window;
        let q = self.failures.entry(key).or_default();
        q.retain(|t| now < *t + window);
        q.push_back(now);
        while q.len() > self.max {
            q.pop_front();
        }
    }

    pub fn reset(&mut self, key: &K) {
        self.failures.remove(key);
    }

    /// Drops keys whose failures all left the window.
    pub fn forget_old(&mut self, now: Instant) {
        let window = self.window;
        self.failures
            .retain(|_, q| q.back().is_some_and(|t| now < *t + window));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.failures.len()
    }
}

/// A login as the limiter keys it: the domain and the login, lower case. An operator's
/// is under the empty domain, which no tenant has.
pub type LoginKey = (String, String);

pub fn login_key(domain: &str, login: &str) -> LoginKey {
    (
        domain.trim().trim_end_matches('.').to_ascii_lowercase(),
        login.trim().to_ascii_lowercase(),
    )
}

/// The two limiters of a login attempt: per client address and per (domain, login).
pub struct LoginLimits {
    by_ip: FailureLimiter<IpAddr>,
    by_login: FailureLimiter<LoginKey>,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            by_ip: FailureLimiter::new(MAX_FAILURES_PER_IP, WINDOW),
            by_login: FailureLimiter::new(MAX_FAILURES_PER_LOGIN, WINDOW),
        }
    }
}

impl LoginLimits {
    /// How long the attempt must wait, if either limiter blocks it.
    pub fn blocked(&self, ip: Option<IpAddr>, login: &LoginKey, now: Instant) -> Option<Duration> {
        let by_ip = ip.and_then(|ip| self.by_ip.blocked(&ip, now));
        let by_login = self.by_login.blocked(login, now);
        by_ip.max(by_login)
    }

    pub fn failed(&mut self, ip: Option<IpAddr>, login: LoginKey, now: Instant) {
        if let Some(ip) = ip {
            self.by_ip.fail(ip, now);
        }
        self.by_login.fail(login, now);
    }

    /// A success forgives the login's failures, not the address's: one valid account
    /// must not reset an attacker's count against the others.
    pub fn succeeded(&mut self, login: &LoginKey) {
        self.by_login.reset(login);
    }
}

// ---------------------------------------------------------------------------------
// Sessions.

/// A logged-in session as the request handlers see it (a request extension).
#[derive(Clone, Debug)]
pub struct ActiveSession {
    pub id_hash: String,
    pub csrf_token: Secret,
    pub account: SessionAccount,
    pub expires_at: DateTime<Utc>,
}

struct Cached {
    record: SessionRecord,
    account: SessionAccount,
    /// On the platform's clock, so tests move past the cache window.
    loaded: DateTime<Utc>,
}

/// The session store: the database, and this node's short-lived cache of it.
pub struct Sessions {
    store: DynStore,
    clock: Arc<dyn Clock>,
    idle: Duration,
    lifetime: Duration,
    cache: Mutex<HashMap<String, Cached>>,
    /// `Auth`'s signal to open event streams.
    changes: broadcast::Sender<CredentialsChanged>,
}

/// A new session's secrets: the cookie value (only the client keeps it) and the row.
pub struct NewSession {
    pub cookie_value: String,
    pub active: ActiveSession,
}

impl Sessions {
    pub fn new(
        store: DynStore,
        clock: Arc<dyn Clock>,
        idle: Duration,
        lifetime: Duration,
        changes: broadcast::Sender<CredentialsChanged>,
    ) -> Self {
        Self {
            store,
            clock,
            idle,
            lifetime,
            cache: Mutex::new(HashMap::new()),
            changes,
        }
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    fn idle(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.idle).unwrap_or(chrono::Duration::MAX)
    }

    /// Starts a session for `account`; also sweeps expired sessions from the database
    /// (logins are rare enough, and it needs no background task).
    pub async fn create(&self, account: SessionAccount) -> Result<NewSession, StoreError> {
        let now = self.clock.now();
        if let Err(e) = self
            .store
            .delete_expired_sessions(now, now - self.idle())
            .await
        {
            tracing::warn!(error = %e, "sweeping expired sessions failed");
        }
        let cookie_value = random_token();
        let lifetime = chrono::Duration::from_std(self.lifetime).unwrap_or(chrono::Duration::MAX);
        let record = SessionRecord {
            id_hash: hash_id(&cookie_value),
            subject: account.subject(),
            csrf_token: Secret(random_token()),
            created_at: now,
            last_seen_at: now,
            expires_at: now
                .checked_add_signed(lifetime)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        };
        self.store.create_session(&record).await?;
        let active = ActiveSession {
            id_hash: record.id_hash.clone(),
            csrf_token: record.csrf_token.clone(),
            account: account.clone(),
            expires_at: record.expires_at,
        };
        self.cache_insert(record, account, now);
        Ok(NewSession {
            cookie_value,
            active,
        })
    }

    /// The live session behind a cookie value, if any. An expired one is deleted.
    pub async fn resolve(&self, cookie_value: &str) -> Result<Option<ActiveSession>, StoreError> {
        self.lookup(hash_id(cookie_value), true).await
    }

    /// The live session of `id_hash`, as [`Sessions::resolve`], but not counted as use:
    /// an open event stream asking again does not keep an idle session alive.
    pub async fn check(&self, id_hash: &str) -> Result<Option<ActiveSession>, StoreError> {
        self.lookup(id_hash.to_owned(), false).await
    }

    async fn lookup(
        &self,
        id_hash: String,
        touch: bool,
    ) -> Result<Option<ActiveSession>, StoreError> {
        let now = self.clock.now();
        let cache_for = chrono::Duration::from_std(CACHE_FOR).unwrap_or(chrono::Duration::MAX);
        let cached = {
            let cache = self.cache.lock().expect("session cache lock");
            // A clock moved back does not make an entry trusted for longer.
            cache
                .get(&id_hash)
                .filter(|c| c.loaded <= now && now - c.loaded < cache_for)
                .map(|c| (c.record.clone(), c.account.clone(), c.loaded))
        };
        // A cached session keeps the time it was read: a session in constant use is
        // read again every CACHE_FOR all the same (a logout or removal elsewhere).
        let (mut record, account, loaded) = match cached {
            Some(found) => found,
            None => match self.store.get_session(&id_hash).await? {
                Some((record, account)) => (record, account, now),
                None => {
                    self.forget(&id_hash);
                    return Ok(None);
                }
            },
        };
        if is_expired(&record, now, self.idle()) {
            self.forget(&id_hash);
            self.store.delete_session(&id_hash).await?;
            return Ok(None);
        }
        if touch
            && now - record.last_seen_at
                >= chrono::Duration::from_std(TOUCH_EVERY).unwrap_or(chrono::Duration::MAX)
        {
            self.store.touch_session(&id_hash, now).await?;
            record.last_seen_at = now;
        }
        let active = ActiveSession {
            id_hash: id_hash.clone(),
            csrf_token: record.csrf_token.clone(),
            account: account.clone(),
            expires_at: record.expires_at,
        };
        self.cache_insert(record, account, loaded);
        Ok(Some(active))
    }

    pub async fn end(&self, id_hash: &str) -> Result<(), StoreError> {
        self.forget(id_hash);
        self.store.delete_session(id_hash).await?;
        let _ = self
            .changes
            .send(CredentialsChanged::Session(id_hash.to_owned()));
        Ok(())
    }

    /// Ends every session of the user but `keep` (a password change).
    pub async fn end_user_sessions(
        &self,
        tenant: TenantId,
        user: UserId,
        keep: Option<&str>,
    ) -> Result<(), StoreError> {
        let subject = SessionSubject::User { tenant, user };
        self.cache
            .lock()
            .expect("session cache lock")
            .retain(|id, c| Some(id.as_str()) == keep || c.record.subject != subject);
        self.store.delete_user_sessions(tenant, user, keep).await?;
        let _ = self.changes.send(CredentialsChanged::User(tenant, user));
        Ok(())
    }

    /// Drops the cached sessions of a user whose account changed (removed, its role).
    pub fn forget_user(&self, tenant: TenantId, user: UserId) {
        let subject = SessionSubject::User { tenant, user };
        self.cache
            .lock()
            .expect("session cache lock")
            .retain(|_, c| c.record.subject != subject);
    }

    /// Drops the cached sessions of a tenant's users.
    pub fn forget_tenant(&self, tenant: TenantId) {
        self.cache
            .lock()
            .expect("session cache lock")
            .retain(|_, c| !matches!(c.record.subject, SessionSubject::User { tenant: t, .. } if t == tenant));
    }

    pub fn forget_all(&self) {
        self.cache.lock().expect("session cache lock").clear();
    }

    fn forget(&self, id_hash: &str) {
        self.cache
            .lock()
            .expect("session cache lock")
            .remove(id_hash);
    }

    fn cache_insert(&self, record: SessionRecord, account: SessionAccount, loaded: DateTime<Utc>) {
        let mut cache = self.cache.lock().expect("session cache lock");
        if cache.len() >= MAX_CACHED && !cache.contains_key(&record.id_hash) {
            cache.clear();
        }
        cache.insert(
            record.id_hash.clone(),
            Cached {
                record,
                account,
                loaded,
            },
        );
    }
}

/// Past its absolute end, or idle for longer than `idle`.
fn is_expired(record: &SessionRecord, now: DateTime<Utc>, idle: chrono::Duration) -> bool {
    let idle_end = record
        .last_seen_at
        .checked_add_signed(idle)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    now >= record.expires_at || now >= idle_end
}

/// 256 random bits from the operating system, base64url without padding (43 chars).
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// How a session id is stored: lower-case hex SHA-256.
pub fn hash_id(cookie_value: &str) -> String {
    hex::encode(Sha256::digest(cookie_value.as_bytes()))
}

/// The value of the `tsps_session` cookie among the request's `Cookie` headers.
pub fn cookie_value(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` for a session (`value`), or one that removes it (`None`).
pub fn set_cookie(value: Option<&str>, max_age: Duration, secure: bool) -> HeaderValue {
    let (value, max_age) = match value {
        Some(v) => (v, max_age.as_secs()),
        None => ("", 0),
    };
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("a cookie of base64url characters is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn five_failures_block_until_the_oldest_leaves_the_window() {
        let t0 = Instant::now();
        let mut l = FailureLimiter::new(5, secs(300));
        for i in 0..4 {
            l.fail("k", t0 + secs(i * 10));
            assert_eq!(l.blocked(&"k", t0 + secs(i * 10)), None);
        }
        l.fail("k", t0 + secs(40));
        // Failures at 0, 10, 20, 30, 40: blocked until 0 + 300.
        assert_eq!(l.blocked(&"k", t0 + secs(41)), Some(secs(259)));
        assert_eq!(l.blocked(&"k", t0 + secs(299)), Some(secs(1)));
        assert_eq!(l.blocked(&"k", t0 + secs(300)), None);
        // Another key is not affected.
        assert_eq!(l.blocked(&"other", t0 + secs(41)), None);
        // A failure at 300 makes five again (10..40 and 300): blocked until 310.
        l.fail("k", t0 + secs(300));
        assert_eq!(l.blocked(&"k", t0 + secs(300)), Some(secs(10)));
    }

    #[test]
    fn a_reset_forgives_and_old_keys_are_forgotten() {
        let t0 = Instant::now();
        let mut l = FailureLimiter::new(2, secs(60));
        l.fail(1, t0);
        l.fail(1, t0);
        assert!(l.blocked(&1, t0).is_some());
        l.reset(&1);
        assert_eq!(l.blocked(&1, t0), None);
        l.fail(2, t0);
        l.fail(3, t0 + secs(30));
        l.forget_old(t0 + secs(61));
        assert_eq!(l.len(), 1);
        l.forget_old(t0 + secs(91));
        assert_eq!(l.len(), 0);
    }

    #[test]
    fn login_limits_count_per_login_and_per_address() {
        let t0 = Instant::now();
        let mut limits = LoginLimits::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let alice = login_key("A.Example.", " 1001 ");
        assert_eq!(alice, ("a.example".to_string(), "1001".to_string()));
        for _ in 0..MAX_FAILURES_PER_LOGIN {
            assert_eq!(limits.blocked(Some(ip), &alice, t0), None);
            limits.failed(Some(ip), alice.clone(), t0);
        }
        assert!(limits.blocked(Some(ip), &alice, t0).is_some());
        // Same address, another login: the address has room left.
        let bob = login_key("a.example", "1002");
        assert_eq!(limits.blocked(Some(ip), &bob, t0), None);
        // Success on another login does not reset alice; success on alice does.
        limits.succeeded(&bob);
        assert!(limits.blocked(None, &alice, t0).is_some());
        limits.succeeded(&alice);
        assert_eq!(limits.blocked(Some(ip), &alice, t0), None);
        // The address alone: 20 failures over many logins block it for every login.
        for i in 0..(MAX_FAILURES_PER_IP - MAX_FAILURES_PER_LOGIN) {
            limits.failed(Some(ip), login_key("a.example", &format!("2{i:03}")), t0);
        }
        assert!(limits.blocked(Some(ip), &bob, t0).is_some());
        let other_ip: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(limits.blocked(Some(other_ip), &bob, t0), None);
    }

    #[test]
    fn the_limiter_stays_bounded() {
        let t0 = Instant::now();
        let mut l = FailureLimiter::new(5, secs(60));
        for i in 0..MAX_KEYS + 10 {
            l.fail(i, t0);
        }
        assert!(l.len() <= MAX_KEYS);
        let mut q = FailureLimiter::new(3, secs(60));
        for _ in 0..100 {
            q.fail("k", t0);
        }
        assert_eq!(q.failures[&"k"].len(), 3);
    }

    fn record(last_seen: i64, expires: i64) -> SessionRecord {
        let at = |s| DateTime::<Utc>::from_timestamp(s, 0).unwrap();
        SessionRecord {
            id_hash: "h".into(),
            subject: SessionSubject::User {
                tenant: TenantId::for_test(1),
                user: UserId::for_test(1),
            },
            csrf_token: "c".into(),
            created_at: at(0),
            last_seen_at: at(last_seen),
            expires_at: at(expires),
        }
    }

    #[test]
    fn sessions_end_when_idle_or_at_their_absolute_end() {
        let at = |s| DateTime::<Utc>::from_timestamp(s, 0).unwrap();
        let idle = chrono::Duration::seconds(100);
        assert!(!is_expired(&record(50, 1000), at(149), idle));
        assert!(is_expired(&record(50, 1000), at(150), idle));
        assert!(!is_expired(&record(950, 1000), at(999), idle));
        assert!(is_expired(&record(950, 1000), at(1000), idle));
    }

    #[test]
    fn cookies_are_http_only_and_strict() {
        let c = set_cookie(Some("abc"), secs(60), false);
        assert_eq!(
            c.to_str().unwrap(),
            "tsps_session=abc; Path=/; HttpOnly; SameSite=Strict; Max-Age=60"
        );
        let c = set_cookie(None, secs(60), true);
        assert_eq!(
            c.to_str().unwrap(),
            "tsps_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0; Secure"
        );
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = axum::http::HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; b=2"));
        assert_eq!(cookie_value(&h), None);
        h.append(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; tsps_session=xyz ; c=3"),
        );
        assert_eq!(cookie_value(&h), Some("xyz"));
        let mut empty = axum::http::HeaderMap::new();
        empty.append(header::COOKIE, HeaderValue::from_static("tsps_session="));
        assert_eq!(cookie_value(&empty), None);
    }

    #[test]
    fn tokens_are_256_bit_and_hashed_ids_are_hex() {
        let t = random_token();
        assert_eq!(t.len(), 43);
        assert_ne!(t, random_token());
        let h = hash_id(&t);
        assert_eq!(h.len(), 64);
        assert!(h
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
}
