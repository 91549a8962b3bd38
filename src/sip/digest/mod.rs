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

mod client;
mod nonce;
mod params;
#[cfg(test)]
mod tests;

pub use client::answer_challenge;
use client::quote;
pub use nonce::{NonceCounts, NonceKeeper};
use params::clip;
pub use params::{parse_challenge, parse_credentials};

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
