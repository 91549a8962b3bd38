//! Digest authentication of a device's request, as one decision: which credentials
//! answer our realm, whose they are, whether the source or the account is blocked for
//! guessing ([`guard`]), whether the digest names this request (its `uri` is the
//! Request-URI; the method is in the hash) and whether its nonce count is new (a replay
//! is challenged again). The shard sends what [`Decision`] says; nothing here does I/O.
//!
//! Order matters for what an outsider learns: a realm nobody hosts is challenged like a
//! hosted one, and an unknown user name, a wrong password and a blocked account all get
//! the same 403.

pub mod guard;
mod stats;

use super::digest::{self, Algorithm, NonceKeeper, Verdict};
use super::headers as h;
use guard::{Account, Guard};
pub use stats::{AuthOutcome, AuthStats};
use std::net::IpAddr;
use std::sync::Arc;
use tracing::warn;
use tsps_actors::model::{Device, DigestAlgorithm};
use tsps_actors::{Directory, TenantId};

/// One request to authenticate.
#[derive(Debug)]
pub struct Attempt<'a> {
    /// `REGISTER`, `INVITE`, ...: what the digest's HA2 covers.
    pub method: &'a str,
    /// The Request-URI as received (normalized by the parser).
    pub request_uri: &'a str,
    /// The values of every `Authorization` (or `Proxy-Authorization`) header.
    pub credentials: Vec<&'a str>,
    pub source: IpAddr,
    /// The realm challenged: the tenant's domain, or the domain asked for when no tenant
    /// hosts it (challenged all the same; no credentials can answer it).
    pub realm: &'a str,
    pub tenant: Option<TenantId>,
    /// The user name the request claims before any credentials (REGISTER: the To
    /// user; others: the From user): whose digest algorithms to offer.
    pub claimed: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Accept(Device),
    /// 401/407 with a fresh nonce, one challenge per algorithm of `offer`; `stale` tells
    /// the user agent its password was right.
    Challenge {
        stale: bool,
        offer: Vec<Algorithm>,
    },
    /// A final refusal: 403 (wrong or blocked), 400 (the digest names another request).
    Refuse(u16),
    /// The source is blocked: send nothing.
    Ignore,
}

pub struct Authenticator {
    nonces: NonceKeeper,
    guard: Arc<Guard>,
    /// Offered in challenges, most preferred first; answers in another are re-challenged.
    algorithms: Vec<Algorithm>,
    stats: Arc<AuthStats>,
    /// See `security.auth.allow_server_digest_uri`.
    allow_server_uri: bool,
}

impl Authenticator {
    pub fn new(nonces: NonceKeeper, guard: Arc<Guard>, algorithms: Vec<Algorithm>) -> Self {
        Self {
            nonces,
            guard,
            algorithms,
            stats: Arc::default(),
            allow_server_uri: false,
        }
    }

    /// Accept a digest `uri` that names a server (no user part) as well as the
    /// Request-URI (load generators such as SIPp sign that way).
    pub fn allow_server_digest_uri(mut self, allow: bool) -> Self {
        self.allow_server_uri = allow;
        self
    }

    pub fn guard(&self) -> &Arc<Guard> {
        &self.guard
    }

    pub fn stats(&self) -> &Arc<AuthStats> {
        &self.stats
    }

    /// Whether requests with credentials from `source` are to be dropped unanswered.
    /// Checked before a transaction is made for them.
    pub fn ignores(&self, source: IpAddr, now_ms: u64) -> bool {
        let blocked = self.guard.source_blocked(source, now_ms).is_some();
        if blocked {
            self.stats.count(AuthOutcome::BlockedSource);
        }
        blocked
    }

    /// Header values for a 401/407: one challenge per algorithm of `offer`, in order.
    pub fn challenges(
        &self,
        realm: &str,
        now_ms: u64,
        stale: bool,
        offer: &[Algorithm],
    ) -> Vec<String> {
        let offered = self.nonces.challenges(realm, now_ms / 1000, stale);
        let mut values = Vec::with_capacity(offer.len());
        for alg in offer {
            let wanted = format!("algorithm={}", alg.name());
            values.extend(offered.iter().filter(|v| v.contains(&wanted)).cloned());
        }
        values
    }

    /// The algorithms a device is challenged with: its own, else the platform's.
    fn allowed(&self, device: &Device) -> Vec<Algorithm> {
        if device.digest_algorithms.is_empty() {
            return self.algorithms.clone();
        }
        device
            .digest_algorithms
            .iter()
            .map(|a| match a {
                DigestAlgorithm::Md5 => Algorithm::Md5,
                DigestAlgorithm::Sha256 => Algorithm::Sha256,
            })
            .collect()
    }

    /// What to offer a request claiming `name` of `tenant` before it proved anything:
    /// the device of that SIP user name, else the devices of that extension when they
    /// all agree, else the platform's list.
    fn offer_for(
        &self,
        dir: &Directory,
        tenant: Option<TenantId>,
        name: Option<&str>,
    ) -> Vec<Algorithm> {
        let (Some(tenant), Some(name)) = (tenant, name) else {
            return self.algorithms.clone();
        };
        if let Some(d) = dir.device_by_username(tenant, name) {
            return self.allowed(d);
        }
        let mut lists = dir
            .user_by_extension(tenant, name)
            .into_iter()
            .flat_map(|u| dir.devices_of_user(u.id))
            .map(|d| self.allowed(d));
        match lists.next() {
            Some(first) if lists.all(|l| l == first) => first,
            _ => self.algorithms.clone(),
        }
    }

    pub fn decide(&self, a: &Attempt<'_>, dir: &Directory, now_ms: u64) -> Decision {
        let creds = a
            .credentials
            .iter()
            .filter_map(|v| digest::parse_credentials(v).ok())
            .find(|c| c.realm.eq_ignore_ascii_case(a.realm));
        let Some(creds) = creds else {
            self.stats.count(AuthOutcome::Challenged);
            return Decision::Challenge {
                stale: false,
                offer: self.offer_for(dir, a.tenant, a.claimed),
            };
        };
        if self.ignores(a.source, now_ms) {
            return Decision::Ignore;
        }
        let device = a
            .tenant
            .and_then(|t| dir.device_by_username(t, &creds.username));
        let (Some(tenant), Some(device)) = (a.tenant, device) else {
            self.stats.count(AuthOutcome::UnknownUser);
            self.failed(a.source, None, now_ms);
            return Decision::Refuse(403);
        };
        let account = Account {
            tenant,
            username: creds.username.clone(),
        };
        if self
            .guard
            .account_blocked(&account, a.source, now_ms)
            .is_some()
        {
            // Still a guess from this source, unchecked.
            self.stats.count(AuthOutcome::BlockedAccount);
            self.failed(a.source, None, now_ms);
            return Decision::Refuse(403);
        }
        let offer = self.allowed(device);
        if !offer.contains(&creds.algorithm) {
            self.stats.count(AuthOutcome::Challenged);
            return Decision::Challenge {
                stale: false,
                offer,
            };
        }
        let server_uri = self.allow_server_uri && names_a_server(&creds.uri);
        if !server_uri && !same_resource(&creds.uri, a.request_uri) {
            // RFC 2617 §3.2.2.5: the digest was made for another request.
            self.stats.count(AuthOutcome::WrongUri);
            return Decision::Refuse(400);
        }
        let ha1 = match creds.algorithm {
            Algorithm::Md5 => &device.ha1_md5,
            Algorithm::Sha256 => &device.ha1_sha256,
        };
        match self.nonces.verify(&creds, a.method, ha1, now_ms / 1000) {
            Verdict::Ok => {
                self.stats.count(AuthOutcome::Ok);
                self.guard.success(a.source, &account, now_ms);
                Decision::Accept(device.clone())
            }
            Verdict::Stale => {
                self.stats.count(AuthOutcome::Stale);
                Decision::Challenge { stale: true, offer }
            }
            Verdict::Replay => {
                self.stats.count(AuthOutcome::Replay);
                Decision::Challenge { stale: true, offer }
            }
            Verdict::BadNonce => {
                self.stats.count(AuthOutcome::Challenged);
                Decision::Challenge {
                    stale: false,
                    offer,
                }
            }
            Verdict::BadResponse => {
                self.stats.count(AuthOutcome::WrongPassword);
                self.failed(a.source, Some(&account), now_ms);
                Decision::Refuse(403)
            }
        }
    }

    fn failed(&self, source: IpAddr, account: Option<&Account>, now_ms: u64) {
        let blocks = self.guard.failure(source, account, now_ms);
        if let Some(until) = blocks.source {
            let secs = until.saturating_sub(now_ms) / 1000;
            warn!(%source, block_secs = secs, "sip source blocked: too many failed authentications");
        }
        if let (Some(until), Some(account)) = (blocks.account, account) {
            let secs = until.saturating_sub(now_ms) / 1000;
            warn!(
                tenant = %account.tenant,
                username = %account.username,
                block_secs = secs,
                "sip account blocked for unknown sources: too many failed authentications"
            );
        }
    }
}

/// A SIP URI without a user part: a server's address rather than a resource on it.
fn names_a_server(digest_uri: &str) -> bool {
    let u = digest_uri.trim();
    let scheme_ok = u
        .split_once(':')
        .is_some_and(|(s, _)| s.eq_ignore_ascii_case("sip") || s.eq_ignore_ascii_case("sips"));
    scheme_ok && h::uri_user(u).is_none_or(str::is_empty)
}

/// Whether the digest's `uri` and the Request-URI name the same resource: scheme, user,
/// host and port (default ports filled in); parameters are not compared, as proxies and
/// user agents add or drop them.
fn same_resource(digest_uri: &str, request_uri: &str) -> bool {
    fn parts(u: &str) -> Option<(String, String, String, u16)> {
        let u = u.trim();
        let (scheme, _) = u.split_once(':')?;
        let scheme = scheme.to_ascii_lowercase();
        let user = h::uri_user(u).unwrap_or("");
        let user = percent_encoding::percent_decode_str(user)
            .decode_utf8()
            .ok()?
            .into_owned();
        let host = h::uri_host(u).to_ascii_lowercase();
        let default = if scheme == "sips" { 5061 } else { 5060 };
        Some((scheme, user, host, h::uri_port(u).unwrap_or(default)))
    }
    match (parts(digest_uri), parts(request_uri)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests;
