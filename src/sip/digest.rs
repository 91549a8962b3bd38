//! HTTP digest authentication for SIP (RFC 3261 §22, RFC 2617 with `qop=auth`, RFC 8760
//! for SHA-256).
//!
//! Server side: [`NonceKeeper`] issues nonces that carry their own proof (an HMAC over a
//! timestamp, a nonce id and the realm) and checks [`Credentials`] against the stored
//! HA1; the password never reaches this module. Replays are refused by a bounded window
//! of nonce counts ([`NonceCounts`]): per nonce, the highest `nc` accepted (RFC 7616
//! §3.3, §5.3); a nonce answered without `qop` (no `nc`) is good once.
//! Client side (tsps toward a carrier trunk): [`answer_challenge`].
//!
//! Sans-IO: no sockets and no clock; the current time comes in as Unix seconds. The
//! nonce secret is drawn at start, so a nonce is valid only on the node (and process)
//! that issued it, which is also where its counts live: nothing is shared between nodes.
//! The caller still checks that `Credentials::uri` names the request it authenticates and
//! that `username` is the user it looked up.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use md5::{Digest as _, Md5};
use sha2::Sha256;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of HMAC output kept in a nonce: 128 bits is ample against forgery and keeps
/// the nonce short (38 characters with the timestamp and the id).
const NONCE_MAC_LEN: usize = 16;
const NONCE_LEN: usize = 8 + 4 + NONCE_MAC_LEN;
/// Slots of the nonce-count window (8 bytes each, touched only when used: 8 MiB at
/// most). A nonce keeps its count until 2^20 newer nonces have been issued: at 5,000
/// challenges a second, 210 s, against a default TTL of 300 s; past that its user agent
/// gets a `stale=true` challenge and answers it without asking anyone.
pub const NONCE_SLOTS: usize = 1 << 20;

/// HA1 = MD5(username:realm:password), lowercase hex. Stored instead of the password.
pub fn ha1_md5(username: &str, realm: &str, password: &str) -> String {
    hex::encode(Md5::digest(
        format!("{username}:{realm}:{password}").as_bytes(),
    ))
}

/// HA1 = SHA-256(username:realm:password), lowercase hex (RFC 8760).
pub fn ha1_sha256(username: &str, realm: &str, password: &str) -> String {
    hex::encode(Sha256::digest(
        format!("{username}:{realm}:{password}").as_bytes(),
    ))
}

/// Digest hash algorithm. The `-sess` variants are not supported: SIP deployments do not
/// use them and they need per-session state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    /// The token used in the `algorithm` parameter.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// HA1 for this algorithm: what the store keeps per user and algorithm.
    pub fn ha1(self, username: &str, realm: &str, password: &str) -> String {
        match self {
            Algorithm::Md5 => ha1_md5(username, realm, password),
            Algorithm::Sha256 => ha1_sha256(username, realm, password),
        }
    }

    /// Parses an `algorithm` parameter value. "SHA256" is accepted beside the RFC 8760
    /// spelling because some user agents send it.
    pub fn from_param(value: &str) -> Result<Self, DigestError> {
        if value.eq_ignore_ascii_case("MD5") {
            Ok(Algorithm::Md5)
        } else if value.eq_ignore_ascii_case("SHA-256") || value.eq_ignore_ascii_case("SHA256") {
            Ok(Algorithm::Sha256)
        } else {
            Err(DigestError::UnsupportedAlgorithm(clip(value)))
        }
    }

    fn hex(self, data: &str) -> String {
        match self {
            Algorithm::Md5 => hex::encode(Md5::digest(data.as_bytes())),
            Algorithm::Sha256 => hex::encode(Sha256::digest(data.as_bytes())),
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Errors from parsing digest headers or answering a challenge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("not a digest header (scheme {0:?})")]
    NotDigest(String),
    #[error("malformed digest header: {0}")]
    Syntax(&'static str),
    #[error("missing digest parameter {0}")]
    MissingParam(&'static str),
    #[error("duplicate digest parameter {0}")]
    DuplicateParam(&'static str),
    #[error("invalid digest parameter {0}")]
    InvalidParam(&'static str),
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    #[error("unsupported qop {0:?}")]
    UnsupportedQop(String),
}

/// Outcome of [`NonceKeeper::verify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The response matches and the nonce is ours and fresh.
    Ok,
    /// The response matches but the nonce expired: challenge again with `stale=true`, so
    /// the user agent retries without asking for the password.
    Stale,
    /// The nonce was not issued by us for this realm (forged, tampered, other realm).
    BadNonce,
    /// The response does not match: wrong password, or wrong method/uri/qop.
    BadResponse,
    /// The response matches but its nonce count was already used (a replay, or a
    /// request overtaken by a later one), or the nonce's slot went to a newer nonce:
    /// challenge again with `stale=true`. A user agent answers that by itself; a replayed
    /// header cannot.
    Replay,
}

/// Parsed `Authorization` / `Proxy-Authorization` digest credentials. Values are
/// unquoted and unescaped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Algorithm,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
}

/// Parsed `WWW-Authenticate` / `Proxy-Authenticate` digest challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub algorithm: Algorithm,
    /// The qop options offered, empty when the challenge has no `qop` (RFC 2069 style).
    pub qop: Vec<String>,
    pub opaque: Option<String>,
    pub stale: bool,
}

/// Issues and checks nonces:
/// `nonce = base64url(timestamp_secs || id || HMAC-SHA256(secret, timestamp || id || realm)[..16])`,
/// where `id` numbers the nonces this keeper issued and picks the nonce's slot in the
/// count window.
pub struct NonceKeeper {
    secret: [u8; 32],
    ttl_secs: u64,
    counts: NonceCounts,
}

impl std::fmt::Debug for NonceKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceKeeper")
            .field("secret", &"[redacted]")
            .field("ttl_secs", &self.ttl_secs)
            .finish()
    }
}

/// The replay window: a ring of slots, one per recently issued nonce, each holding the
/// nonce's id (high 32 bits) and the highest nonce count accepted with it (low 32
/// bits; 0 before the first). Lock-free, shared by every shard of the node: a replay
/// with another Call-ID lands on another shard. Memory is fixed: a flood of challenges
/// only makes older nonces stale sooner.
pub struct NonceCounts {
    slots: Box<[AtomicU64]>,
    next: AtomicU32,
}

impl NonceCounts {
    pub fn new(slots: usize) -> Self {
        let slots = slots.next_power_of_two().max(1);
        Self {
            slots: (0..slots).map(|_| AtomicU64::new(0)).collect(),
            next: AtomicU32::new(0),
        }
    }

    fn slot(&self, id: u32) -> &AtomicU64 {
        &self.slots[id as usize & (self.slots.len() - 1)]
    }

    /// A new nonce id; its slot starts with no count accepted.
    fn issue(&self) -> u32 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.slot(id).store(u64::from(id) << 32, Ordering::Relaxed);
        id
    }

    /// Accepts `nc` for nonce `id` when it is above every count accepted before and the
    /// slot still belongs to the nonce.
    fn accept(&self, id: u32, nc: u32) -> bool {
        let slot = self.slot(id);
        let mut current = slot.load(Ordering::Acquire);
        loop {
            if (current >> 32) as u32 != id || nc <= current as u32 {
                return false;
            }
            let next = (u64::from(id) << 32) | u64::from(nc);
            match slot.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(seen) => current = seen,
            }
        }
    }
}

impl NonceKeeper {
    pub fn new(secret: [u8; 32], ttl_secs: u64) -> Self {
        Self::with_slots(secret, ttl_secs, NONCE_SLOTS)
    }

    /// A keeper whose count window has `slots` slots (rounded up to a power of two).
    pub fn with_slots(secret: [u8; 32], ttl_secs: u64, slots: usize) -> Self {
        Self {
            secret,
            ttl_secs,
            counts: NonceCounts::new(slots),
        }
    }

    /// A fresh nonce for `realm` at `now_secs`.
    pub fn nonce(&self, realm: &str, now_secs: u64) -> String {
        let ts = now_secs.to_be_bytes();
        let id = self.counts.issue().to_be_bytes();
        let mut out = Vec::with_capacity(NONCE_LEN);
        out.extend_from_slice(&ts);
        out.extend_from_slice(&id);
        out.extend_from_slice(&self.mac(&ts, &id, realm).finalize().into_bytes()[..NONCE_MAC_LEN]);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Header VALUES (not names) to send in WWW-Authenticate (401) / Proxy-Authenticate
    /// (407): one challenge per algorithm, SHA-256 first then MD5 (RFC 8760 §2.4: clients
    /// take the first they support), each with realm, nonce, algorithm, qop="auth", and
    /// stale=true when `stale`. No opaque: the nonce already carries all the state.
    pub fn challenges(&self, realm: &str, now_secs: u64, stale: bool) -> Vec<String> {
        let nonce = self.nonce(realm, now_secs);
        [Algorithm::Sha256, Algorithm::Md5]
            .into_iter()
            .map(|algorithm| {
                let mut value = format!(
                    "Digest realm={}, nonce=\"{nonce}\", algorithm={algorithm}, qop=\"auth\"",
                    quote(realm)
                );
                if stale {
                    value.push_str(", stale=true");
                }
                value
            })
            .collect()
    }

    /// Checks parsed credentials against the stored HA1 for their algorithm (the caller
    /// picks the HA1 matching `creds.algorithm`). The nonce is checked against
    /// `creds.realm`, so credentials for another realm are `BadNonce`. `Stale` is only
    /// returned for a correct response (RFC 2617 §3.2.1), so a stale answer never tells
    /// an attacker to retry. A correct, fresh response is accepted once per nonce count:
    /// `Ok` records its `nc`, and the same or a lower count afterwards is `Replay`.
    pub fn verify(&self, creds: &Credentials, method: &str, ha1: &str, now_secs: u64) -> Verdict {
        let Some((issued, id)) = self.nonce_origin(&creds.nonce, &creds.realm) else {
            return Verdict::BadNonce;
        };
        let qop = match (&creds.qop, &creds.nc, &creds.cnonce) {
            (None, _, _) => None,
            (Some(qop), Some(nc), Some(cnonce)) if qop.eq_ignore_ascii_case("auth") => {
                Some((nc.as_str(), cnonce.as_str()))
            }
            // auth-int, unknown qop, or qop without nc/cnonce: nothing we can match.
            _ => return Verdict::BadResponse,
        };
        let expected = response(
            creds.algorithm,
            &ha1.to_ascii_lowercase(),
            &creds.nonce,
            method,
            &creds.uri,
            qop,
        );
        let given = creds.response.to_ascii_lowercase();
        if !bool::from(expected.as_bytes().ct_eq(given.as_bytes())) {
            return Verdict::BadResponse;
        }
        // A nonce from the future means our clock stepped back; it is still ours.
        if now_secs.saturating_sub(issued) > self.ttl_secs {
            return Verdict::Stale;
        }
        // Without qop there is no count: the nonce is good for one request.
        let nc = match qop {
            Some((nc, _)) => match u32::from_str_radix(nc, 16) {
                Ok(nc) => nc,
                Err(_) => return Verdict::BadResponse,
            },
            None => 1,
        };
        if !self.counts.accept(id, nc) {
            return Verdict::Replay;
        }
        Verdict::Ok
    }

    fn mac(&self, ts: &[u8; 8], id: &[u8; 4], realm: &str) -> HmacSha256 {
        // new_from_slice cannot fail: HMAC accepts keys of any length.
        let mut mac =
            <HmacSha256 as Mac>::new_from_slice(&self.secret).expect("hmac accepts any key length");
        mac.update(ts);
        mac.update(id);
        mac.update(realm.as_bytes());
        mac
    }

    /// The issue time and id of a nonce we made for `realm`, or None if it is not ours.
    fn nonce_origin(&self, nonce: &str, realm: &str) -> Option<(u64, u32)> {
        // Bound the work before decoding: a real nonce is exactly 38 characters.
        if nonce.len() > 64 {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(nonce).ok()?;
        if raw.len() != NONCE_LEN {
            return None;
        }
        let ts: [u8; 8] = raw[..8].try_into().ok()?;
        let id: [u8; 4] = raw[8..12].try_into().ok()?;
        self.mac(&ts, &id, realm)
            .verify_truncated_left(&raw[12..])
            .ok()?;
        Some((u64::from_be_bytes(ts), u32::from_be_bytes(id)))
    }
}

/// request-digest of RFC 2617 §3.2.2.1; `qop` carries (nc, cnonce) for qop=auth.
fn response(
    algorithm: Algorithm,
    ha1: &str,
    nonce: &str,
    method: &str,
    uri: &str,
    qop: Option<(&str, &str)>,
) -> String {
    let ha2 = algorithm.hex(&format!("{method}:{uri}"));
    match qop {
        Some((nc, cnonce)) => algorithm.hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")),
        None => algorithm.hex(&format!("{ha1}:{nonce}:{ha2}")),
    }
}

/// Parses an Authorization / Proxy-Authorization header value (`Digest username="..", ...`).
/// A missing `algorithm` means MD5 (RFC 2617); `qop` requires `nc` (8 hex digits) and
/// `cnonce`.
pub fn parse_credentials(value: &str) -> Result<Credentials, DigestError> {
    let params = AuthParams::parse(value)?;
    let algorithm = match params.get("algorithm") {
        Some(a) => Algorithm::from_param(a)?,
        None => Algorithm::Md5,
    };
    let qop = params.get("qop").map(str::to_owned);
    let nc = params.get("nc").map(str::to_owned);
    let cnonce = params.get("cnonce").map(str::to_owned);
    if qop.is_some() {
        let nc = nc.as_deref().ok_or(DigestError::MissingParam("nc"))?;
        if nc.len() != 8 || !nc.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(DigestError::InvalidParam("nc"));
        }
        if cnonce.is_none() {
            return Err(DigestError::MissingParam("cnonce"));
        }
    }
    Ok(Credentials {
        username: params.require("username")?.to_owned(),
        realm: params.require("realm")?.to_owned(),
        nonce: params.require("nonce")?.to_owned(),
        uri: params.require("uri")?.to_owned(),
        response: params.require("response")?.to_owned(),
        algorithm,
        qop,
        nc,
        cnonce,
        opaque: params.get("opaque").map(str::to_owned),
    })
}

/// Parses a WWW-Authenticate / Proxy-Authenticate header value holding one digest
/// challenge. A missing `algorithm` means MD5.
pub fn parse_challenge(value: &str) -> Result<Challenge, DigestError> {
    let params = AuthParams::parse(value)?;
    let algorithm = match params.get("algorithm") {
        Some(a) => Algorithm::from_param(a)?,
        None => Algorithm::Md5,
    };
    let qop = params
        .get("qop")
        .map(|q| {
            q.split(',')
                .map(str::trim)
                .filter(|q| !q.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(Challenge {
        realm: params.require("realm")?.to_owned(),
        nonce: params.require("nonce")?.to_owned(),
        algorithm,
        qop,
        opaque: params.get("opaque").map(str::to_owned),
        stale: params
            .get("stale")
            .is_some_and(|s| s.eq_ignore_ascii_case("true")),
    })
}

/// Client side (tsps authenticating toward a carrier trunk): given a WWW-/Proxy-Authenticate
/// header value, return the Authorization header value. Supports MD5 and SHA-256, qop=auth
/// or none. `nc` is the count of requests sent with this nonce, starting at 1.
pub fn answer_challenge(
    challenge: &str,
    method: &str,
    uri: &str,
    username: &str,
    password: &str,
    cnonce: &str,
    nc: u32,
) -> Result<String, DigestError> {
    let ch = parse_challenge(challenge)?;
    let use_qop = if ch.qop.is_empty() {
        false
    } else if ch.qop.iter().any(|q| q.eq_ignore_ascii_case("auth")) {
        true
    } else {
        return Err(DigestError::UnsupportedQop(clip(&ch.qop.join(","))));
    };
    let ha1 = ch.algorithm.ha1(username, &ch.realm, password);
    let nc = format!("{nc:08x}");
    let digest = response(
        ch.algorithm,
        &ha1,
        &ch.nonce,
        method,
        uri,
        use_qop.then_some((nc.as_str(), cnonce)),
    );
    let mut value = format!(
        "Digest username={}, realm={}, nonce={}, uri={}, response=\"{digest}\", algorithm={}",
        quote(username),
        quote(&ch.realm),
        quote(&ch.nonce),
        quote(uri),
        ch.algorithm,
    );
    if use_qop {
        value.push_str(&format!(", qop=auth, nc={nc}, cnonce={}", quote(cnonce)));
    }
    if let Some(opaque) = &ch.opaque {
        value.push_str(&format!(", opaque={}", quote(opaque)));
    }
    Ok(value)
}

/// RFC 3261 quoted-string. Control characters are dropped rather than escaped: a CR or
/// LF inside a header value would split the header.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Attacker-controlled text going into an error: keep it short.
fn clip(value: &str) -> String {
    value.chars().take(32).collect()
}

/// Parameter names whose repetition makes a header ambiguous, so it is refused.
const SINGLE_PARAMS: [&str; 12] = [
    "username",
    "realm",
    "nonce",
    "uri",
    "response",
    "algorithm",
    "qop",
    "nc",
    "cnonce",
    "opaque",
    "stale",
    "domain",
];

/// `Digest` followed by comma-separated `name=value` pairs; names lowercased, values
/// unquoted.
struct AuthParams(Vec<(String, String)>);

impl AuthParams {
    fn parse(value: &str) -> Result<Self, DigestError> {
        let value = value.trim_start();
        let scheme_end = value
            .find(|c: char| c.is_ascii_whitespace())
            .unwrap_or(value.len());
        let scheme = &value[..scheme_end];
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(DigestError::NotDigest(clip(scheme)));
        }
        let rest = &value[scheme_end..];
        let bytes = rest.as_bytes();
        let mut params = Vec::new();
        let mut i = 0;
        // Each round consumes at least one byte or returns, so the loop is bounded by
        // the input length.
        loop {
            i = skip_ws(bytes, i);
            if i == bytes.len() {
                break;
            }
            let start = i;
            while i < bytes.len() && is_token(bytes[i]) {
                i += 1;
            }
            if i == start {
                return Err(DigestError::Syntax("expected a parameter name"));
            }
            let name = rest[start..i].to_ascii_lowercase();
            i = skip_ws(bytes, i);
            if bytes.get(i) != Some(&b'=') {
                return Err(DigestError::Syntax("expected '=' after a parameter name"));
            }
            i = skip_ws(bytes, i + 1);
            let value = if bytes.get(i) == Some(&b'"') {
                let (value, used) = unquote(&rest[i + 1..])?;
                i += 1 + used;
                value
            } else {
                let start = i;
                // Lenient token: anything up to a delimiter, so unquoted URIs still parse.
                while i < bytes.len() && !matches!(bytes[i], b',' | b'"') && !is_ws(bytes[i]) {
                    i += 1;
                }
                if i == start {
                    return Err(DigestError::Syntax("expected a parameter value"));
                }
                rest[start..i].to_owned()
            };
            params.push((name, value));
            i = skip_ws(bytes, i);
            match bytes.get(i) {
                None => break,
                Some(b',') => i += 1,
                Some(_) => return Err(DigestError::Syntax("expected ',' between parameters")),
            }
        }
        for name in SINGLE_PARAMS {
            if params.iter().filter(|(n, _)| n == name).count() > 1 {
                return Err(DigestError::DuplicateParam(name));
            }
        }
        Ok(Self(params))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn require(&self, name: &'static str) -> Result<&str, DigestError> {
        self.get(name).ok_or(DigestError::MissingParam(name))
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && is_ws(bytes[i]) {
        i += 1;
    }
    i
}

/// RFC 3261 token characters.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Reads a quoted-string body (after the opening quote): the unescaped value and the
/// number of bytes used, closing quote included.
fn unquote(s: &str) -> Result<(String, usize), DigestError> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((idx, c)) = chars.next() {
        match c {
            '"' => return Ok((out, idx + 1)),
            '\\' => match chars.next() {
                Some((_, escaped)) => out.push(escaped),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(DigestError::Syntax("unterminated quoted string"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: [u8; 32] = [7; 32];
    const NOW: u64 = 1_700_000_000;

    fn keeper() -> NonceKeeper {
        NonceKeeper::new(SECRET, 300)
    }

    #[test]
    fn rfc2617_example_md5_with_qop() {
        // RFC 2617 §3.5.
        let creds = parse_credentials(
            r#"Digest username="Mufasa", realm="testrealm@host.com",
               nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html",
               qop=auth, nc=00000001, cnonce="0a4f113b",
               response="6629fae49393a05397450978507c4ef1",
               opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        )
        .unwrap();
        assert_eq!(creds.algorithm, Algorithm::Md5);
        assert_eq!(
            creds.opaque.as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );
        let ha1 = ha1_md5("Mufasa", "testrealm@host.com", "Circle Of Life");
        let got = response(
            creds.algorithm,
            &ha1,
            &creds.nonce,
            "GET",
            &creds.uri,
            Some(("00000001", "0a4f113b")),
        );
        assert_eq!(got, "6629fae49393a05397450978507c4ef1");
        assert_eq!(got, creds.response);
    }

    #[test]
    fn md5_without_qop() {
        // Expected value from python hashlib (RFC 2069 form of the RFC 2617 example).
        let ha1 = ha1_md5("Mufasa", "testrealm@host.com", "Circle Of Life");
        let got = response(
            Algorithm::Md5,
            &ha1,
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "GET",
            "/dir/index.html",
            None,
        );
        assert_eq!(got, "670fd8c2df070c60b045671b8b24ff02");
    }

    #[test]
    fn sha256_vectors() {
        // Computed independently with python hashlib; the first one equals RFC 7616 §3.9.1.
        let ha1 = ha1_sha256("Mufasa", "http-auth@example.org", "Circle of Life");
        assert_eq!(
            ha1,
            "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232"
        );
        let got = response(
            Algorithm::Sha256,
            &ha1,
            "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            "GET",
            "/dir/index.html",
            Some(("00000001", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")),
        );
        assert_eq!(
            got,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        let ha1 = ha1_sha256("alice", "tsps.test", "s3cret");
        assert_eq!(
            ha1,
            "bece7f95902834e7b36401dd86ae5ed60b431232bcdc3200e6d80c451013a121"
        );
        let got = response(
            Algorithm::Sha256,
            &ha1,
            "abc123",
            "REGISTER",
            "sip:tsps.test",
            None,
        );
        assert_eq!(
            got,
            "574614531f62382657930b6dec8261ca7e83c92d8188e3db8237504b61e40901"
        );
    }

    fn challenge_for(k: &NonceKeeper, alg: Algorithm, stale: bool) -> String {
        let all = k.challenges("tsps.test", NOW, stale);
        let wanted = format!("algorithm={}", alg.name());
        all.into_iter().find(|c| c.contains(&wanted)).unwrap()
    }

    fn answer(k: &NonceKeeper, alg: Algorithm, password: &str) -> Credentials {
        let ch = challenge_for(k, alg, false);
        let value = answer_challenge(
            &ch,
            "REGISTER",
            "sip:tsps.test",
            "alice",
            password,
            "c-nonce/1",
            1,
        )
        .unwrap();
        parse_credentials(&value).unwrap()
    }

    #[test]
    fn challenges_offer_sha256_first_then_md5() {
        let all = keeper().challenges("tsps.test", NOW, false);
        assert_eq!(all.len(), 2);
        assert!(all[0].starts_with("Digest realm=\"tsps.test\", nonce=\""));
        assert!(all[0].contains("algorithm=SHA-256"));
        assert!(all[1].contains("algorithm=MD5"));
        for c in &all {
            assert!(c.contains("qop=\"auth\""));
            assert!(!c.contains("stale"));
            let parsed = parse_challenge(c).unwrap();
            assert_eq!(parsed.realm, "tsps.test");
            assert_eq!(parsed.qop, vec!["auth".to_owned()]);
            assert!(!parsed.stale);
        }
        let stale = keeper().challenges("tsps.test", NOW, true);
        assert!(stale.iter().all(|c| c.ends_with(", stale=true")));
        assert!(parse_challenge(&stale[0]).unwrap().stale);
    }

    #[test]
    fn round_trip_both_algorithms() {
        let k = keeper();
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let creds = answer(&k, alg, "s3cret");
            assert_eq!(creds.algorithm, alg);
            assert_eq!(creds.qop.as_deref(), Some("auth"));
            assert_eq!(creds.nc.as_deref(), Some("00000001"));
            assert_eq!(creds.cnonce.as_deref(), Some("c-nonce/1"));
            let ha1 = alg.ha1("alice", "tsps.test", "s3cret");
            // A different method changes HA2.
            assert_eq!(k.verify(&creds, "INVITE", &ha1, NOW), Verdict::BadResponse);
            // The HA1 of the other algorithm does not fit.
            let other = match alg {
                Algorithm::Md5 => Algorithm::Sha256,
                Algorithm::Sha256 => Algorithm::Md5,
            };
            let wrong_ha1 = other.ha1("alice", "tsps.test", "s3cret");
            assert_eq!(
                k.verify(&creds, "REGISTER", &wrong_ha1, NOW),
                Verdict::BadResponse
            );
            // Refused answers do not use up the count: the right one still passes, once.
            assert_eq!(k.verify(&creds, "REGISTER", &ha1, NOW + 300), Verdict::Ok);
            assert_eq!(k.verify(&creds, "REGISTER", &ha1, NOW), Verdict::Replay);
        }
    }

    /// The answer to `challenge` with nonce count `nc`.
    fn answer_nc(challenge: &str, nc: u32) -> Credentials {
        let value = answer_challenge(
            challenge,
            "REGISTER",
            "sip:tsps.test",
            "alice",
            "s3cret",
            "c-nonce/1",
            nc,
        )
        .unwrap();
        parse_credentials(&value).unwrap()
    }

    #[test]
    fn each_nonce_count_is_accepted_once_and_in_order() {
        let k = keeper();
        let ha1 = ha1_md5("alice", "tsps.test", "s3cret");
        let ch = challenge_for(&k, Algorithm::Md5, false);
        let first = answer_nc(&ch, 1);
        assert_eq!(k.verify(&first, "REGISTER", &ha1, NOW), Verdict::Ok);
        // The captured header sent again (another socket, another Call-ID: the digest
        // does not cover them) is a replay.
        assert_eq!(k.verify(&first, "REGISTER", &ha1, NOW + 1), Verdict::Replay);
        // The user agent's next request with the same nonce counts on.
        assert_eq!(
            k.verify(&answer_nc(&ch, 2), "REGISTER", &ha1, NOW + 2),
            Verdict::Ok
        );
        // Counts may skip (requests lost on the way) but never go back.
        assert_eq!(
            k.verify(&answer_nc(&ch, 7), "REGISTER", &ha1, NOW + 3),
            Verdict::Ok
        );
        assert_eq!(
            k.verify(&answer_nc(&ch, 5), "REGISTER", &ha1, NOW + 4),
            Verdict::Replay
        );
        // A wrong password with a fresh count is still a wrong password.
        let mut guessed = answer_nc(&ch, 8);
        guessed.response = "0".repeat(32);
        assert_eq!(
            k.verify(&guessed, "REGISTER", &ha1, NOW + 5),
            Verdict::BadResponse
        );
        assert_eq!(
            k.verify(&answer_nc(&ch, 8), "REGISTER", &ha1, NOW + 5),
            Verdict::Ok
        );
    }

    #[test]
    fn a_nonce_whose_slot_went_to_a_newer_one_is_stale() {
        let k = NonceKeeper::with_slots(SECRET, 300, 4);
        let ha1 = ha1_md5("alice", "tsps.test", "s3cret");
        let old = challenge_for(&k, Algorithm::Md5, false);
        // Four more nonces: the ring of four slots has come round to the first one's.
        for _ in 0..4 {
            k.nonce("tsps.test", NOW);
        }
        assert_eq!(
            k.verify(&answer_nc(&old, 1), "REGISTER", &ha1, NOW),
            Verdict::Replay
        );
        let fresh = challenge_for(&k, Algorithm::Md5, false);
        assert_eq!(
            k.verify(&answer_nc(&fresh, 1), "REGISTER", &ha1, NOW),
            Verdict::Ok
        );
    }

    #[test]
    fn concurrent_replays_let_one_through() {
        let k = std::sync::Arc::new(keeper());
        let ha1 = ha1_md5("alice", "tsps.test", "s3cret");
        let creds = answer_nc(&challenge_for(&k, Algorithm::Md5, false), 1);
        let oks: usize = (0..4)
            .map(|_| {
                let (k, creds, ha1) = (k.clone(), creds.clone(), ha1.clone());
                std::thread::spawn(move || {
                    (0..100)
                        .filter(|_| k.verify(&creds, "REGISTER", &ha1, NOW) == Verdict::Ok)
                        .count()
                })
            })
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(oks, 1);
    }

    #[test]
    fn qop_absent_round_trip() {
        let k = keeper();
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let nonce = k.nonce("tsps.test", NOW);
            let ch = format!(
                "Digest realm=\"tsps.test\", nonce=\"{nonce}\", algorithm={}",
                alg.name()
            );
            let value = answer_challenge(&ch, "INVITE", "sip:bob@tsps.test", "alice", "pw", "x", 1)
                .unwrap();
            assert!(!value.contains("qop"), "{value}");
            assert!(!value.contains("cnonce"), "{value}");
            let creds = parse_credentials(&value).unwrap();
            assert_eq!(creds.qop, None);
            let ha1 = alg.ha1("alice", "tsps.test", "pw");
            assert_eq!(k.verify(&creds, "INVITE", &ha1, NOW + 1), Verdict::Ok);
            // Without a nonce count the nonce is good once.
            assert_eq!(k.verify(&creds, "INVITE", &ha1, NOW + 2), Verdict::Replay);
        }
    }

    #[test]
    fn stale_after_ttl_only_with_a_correct_response() {
        let k = keeper();
        let creds = answer(&k, Algorithm::Sha256, "s3cret");
        let ha1 = ha1_sha256("alice", "tsps.test", "s3cret");
        assert_eq!(
            k.verify(&creds, "REGISTER", &ha1, NOW + 301),
            Verdict::Stale
        );
        let bad = ha1_sha256("alice", "tsps.test", "nope");
        assert_eq!(
            k.verify(&creds, "REGISTER", &bad, NOW + 301),
            Verdict::BadResponse
        );
        // A clock that stepped back still accepts our own nonce.
        assert_eq!(k.verify(&creds, "REGISTER", &ha1, NOW - 10), Verdict::Ok);
    }

    #[test]
    fn tampered_nonce_is_bad_nonce() {
        let k = keeper();
        let creds = answer(&k, Algorithm::Md5, "s3cret");
        let ha1 = ha1_md5("alice", "tsps.test", "s3cret");
        // Move the timestamp forward by one second: the MAC no longer fits.
        let mut raw = URL_SAFE_NO_PAD.decode(&creds.nonce).unwrap();
        raw[7] ^= 1;
        let tampered = Credentials {
            nonce: URL_SAFE_NO_PAD.encode(&raw),
            ..creds.clone()
        };
        assert_eq!(
            k.verify(&tampered, "REGISTER", &ha1, NOW),
            Verdict::BadNonce
        );
        for nonce in [
            "",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            "!!!!",
            &"A".repeat(500),
        ] {
            let c = Credentials {
                nonce: nonce.to_owned(),
                ..creds.clone()
            };
            assert_eq!(
                k.verify(&c, "REGISTER", &ha1, NOW),
                Verdict::BadNonce,
                "{nonce}"
            );
        }
        // Another secret did not issue it.
        let other = NonceKeeper::new([8; 32], 300);
        assert_eq!(
            other.verify(&creds, "REGISTER", &ha1, NOW),
            Verdict::BadNonce
        );
    }

    #[test]
    fn wrong_password_is_bad_response() {
        let k = keeper();
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let creds = answer(&k, alg, "guess");
            let ha1 = alg.ha1("alice", "tsps.test", "s3cret");
            assert_eq!(
                k.verify(&creds, "REGISTER", &ha1, NOW),
                Verdict::BadResponse
            );
        }
    }

    #[test]
    fn realm_mismatch_is_rejected() {
        let k = keeper();
        let creds = answer(&k, Algorithm::Md5, "s3cret");
        // The client claims another realm: the nonce was not issued for it.
        let moved = Credentials {
            realm: "other.test".into(),
            ..creds.clone()
        };
        let ha1 = ha1_md5("alice", "other.test", "s3cret");
        assert_eq!(k.verify(&moved, "REGISTER", &ha1, NOW), Verdict::BadNonce);
        // Right nonce realm, but the HA1 of another realm: the response does not fit.
        let ha1 = ha1_md5("alice", "other.test", "s3cret");
        assert_eq!(
            k.verify(&creds, "REGISTER", &ha1, NOW),
            Verdict::BadResponse
        );
    }

    #[test]
    fn response_compare_ignores_hex_case_and_rejects_unknown_qop() {
        let k = keeper();
        let creds = answer(&k, Algorithm::Md5, "s3cret");
        let ha1 = ha1_md5("alice", "tsps.test", "s3cret");
        let upper = Credentials {
            response: creds.response.to_ascii_uppercase(),
            ..creds.clone()
        };
        assert_eq!(
            k.verify(&upper, "REGISTER", &ha1.to_ascii_uppercase(), NOW),
            Verdict::Ok
        );
        let auth_int = Credentials {
            qop: Some("auth-int".into()),
            ..creds.clone()
        };
        assert_eq!(
            k.verify(&auth_int, "REGISTER", &ha1, NOW),
            Verdict::BadResponse
        );
        let no_cnonce = Credentials {
            cnonce: None,
            ..creds.clone()
        };
        assert_eq!(
            k.verify(&no_cnonce, "REGISTER", &ha1, NOW),
            Verdict::BadResponse
        );
        let short = Credentials {
            response: creds.response[..10].to_owned(),
            ..creds
        };
        assert_eq!(
            k.verify(&short, "REGISTER", &ha1, NOW),
            Verdict::BadResponse
        );
    }

    #[test]
    fn parse_credentials_errors() {
        let ok = r#"Digest username="a", realm="r", nonce="n", uri="sip:r", response="00""#;
        assert!(parse_credentials(ok).is_ok());
        let cases: [(&str, DigestError); 10] = [
            ("", DigestError::NotDigest(String::new())),
            (
                r#"Basic dXNlcjpwYXNz"#,
                DigestError::NotDigest("Basic".into()),
            ),
            (
                r#"Digest realm="r", nonce="n", uri="u", response="0""#,
                DigestError::MissingParam("username"),
            ),
            (
                r#"Digest username="a, realm="r""#,
                DigestError::Syntax("expected ',' between parameters"),
            ),
            (
                r#"Digest username="a"#,
                DigestError::Syntax("unterminated quoted string"),
            ),
            (
                r#"Digest username"#,
                DigestError::Syntax("expected '=' after a parameter name"),
            ),
            (
                &format!("{ok}, username=\"b\""),
                DigestError::DuplicateParam("username"),
            ),
            (
                &format!("{ok}, algorithm=MD5-sess"),
                DigestError::UnsupportedAlgorithm("MD5-sess".into()),
            ),
            (
                &format!("{ok}, qop=auth, cnonce=\"c\""),
                DigestError::MissingParam("nc"),
            ),
            (
                &format!("{ok}, qop=auth, nc=1, cnonce=\"c\""),
                DigestError::InvalidParam("nc"),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_credentials(input), Err(expected), "{input}");
        }
    }

    #[test]
    fn quoting_survives_a_round_trip() {
        let k = keeper();
        let ch = challenge_for(&k, Algorithm::Sha256, false);
        let user = r#"al"ice\x"#;
        let value =
            answer_challenge(&ch, "REGISTER", "sip:tsps.test", user, "pw", "c\r\n", 7).unwrap();
        assert!(!value.contains('\r') && !value.contains('\n'));
        let creds = parse_credentials(&value).unwrap();
        assert_eq!(creds.username, user);
        assert_eq!(creds.nc.as_deref(), Some("00000007"));
        // The control characters were dropped on the wire, so the server hashes "c".
        assert_eq!(creds.cnonce.as_deref(), Some("c"));
        let ha1 = ha1_sha256(user, "tsps.test", "pw");
        // The client hashed "c\r\n" while the wire says "c": the mismatch is detected.
        assert_eq!(
            k.verify(&creds, "REGISTER", &ha1, NOW),
            Verdict::BadResponse
        );
    }

    #[test]
    fn answer_challenge_rejects_what_it_cannot_do() {
        let base = r#"Digest realm="r", nonce="n""#;
        assert_eq!(
            answer_challenge(
                &format!("{base}, qop=\"auth-int\""),
                "A",
                "u",
                "a",
                "p",
                "c",
                1
            ),
            Err(DigestError::UnsupportedQop("auth-int".into()))
        );
        assert_eq!(
            answer_challenge(
                &format!("{base}, algorithm=SHA-512-256"),
                "A",
                "u",
                "a",
                "p",
                "c",
                1
            ),
            Err(DigestError::UnsupportedAlgorithm("SHA-512-256".into()))
        );
        assert_eq!(
            answer_challenge(r#"Digest realm="r""#, "A", "u", "a", "p", "c", 1),
            Err(DigestError::MissingParam("nonce"))
        );
        // qop list with auth among others picks auth and echoes the opaque.
        let v = answer_challenge(
            &format!("{base}, qop=\"auth-int, auth\", opaque=\"xyz\""),
            "A",
            "u",
            "a",
            "p",
            "c",
            1,
        )
        .unwrap();
        assert!(v.contains("qop=auth, nc=00000001, cnonce=\"c\""), "{v}");
        assert!(v.ends_with("opaque=\"xyz\""), "{v}");
    }

    #[test]
    fn debug_redacts_the_secret() {
        let shown = format!("{:?}", keeper());
        assert!(shown.contains("[redacted]"));
        assert!(!shown.contains("7, 7"));
    }

    proptest! {
        #[test]
        fn parse_credentials_never_panics(s in any::<String>()) {
            let _ = parse_credentials(&s);
            let _ = parse_challenge(&s);
        }

        #[test]
        fn parse_credentials_never_panics_on_digest_like_input(
            s in r#"Digest [a-z=", \\\t]{0,80}"#
        ) {
            let _ = parse_credentials(&s);
            let _ = parse_challenge(&s);
        }

        #[test]
        fn verify_never_panics(nonce in any::<String>(), response in any::<String>(),
                               nc in proptest::option::of(any::<String>())) {
            let creds = Credentials {
                username: "a".into(), realm: "r".into(), nonce, uri: "u".into(), response,
                algorithm: Algorithm::Md5, qop: Some("auth".into()), nc,
                cnonce: Some("c".into()), opaque: None,
            };
            let v = keeper().verify(&creds, "REGISTER", "00", NOW);
            prop_assert_ne!(v, Verdict::Ok);
        }

        #[test]
        fn answer_then_verify_is_ok(user in "[ -~]{1,20}", password in "[ -~]{0,20}",
                                    cnonce in "[!-~]{1,20}", nc in 1u32..) {
            let k = keeper();
            for alg in [Algorithm::Md5, Algorithm::Sha256] {
                let ch = challenge_for(&k, alg, false);
                let value = answer_challenge(&ch, "INVITE", "sip:b@tsps.test", &user,
                                             &password, &cnonce, nc).unwrap();
                let creds = parse_credentials(&value).unwrap();
                prop_assert_eq!(&creds.username, &user);
                let ha1 = alg.ha1(&user, "tsps.test", &password);
                prop_assert_eq!(k.verify(&creds, "INVITE", &ha1, NOW), Verdict::Ok);
            }
        }
    }
}
