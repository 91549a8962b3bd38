//! HTTP digest authentication for SIP (RFC 3261 §22, RFC 8760 for SHA-256).

use md5::{Digest as _, Md5};
use sha2::Sha256;

/// HA1 = MD5(username:realm:password), lowercase hex. Stored instead of the password.
pub fn ha1_md5(username: &str, realm: &str, password: &str) -> String {
    hex::encode(Md5::digest(format!("{username}:{realm}:{password}").as_bytes()))
}

/// HA1 = SHA-256(username:realm:password), lowercase hex (RFC 8760).
pub fn ha1_sha256(username: &str, realm: &str, password: &str) -> String {
    hex::encode(Sha256::digest(format!("{username}:{realm}:{password}").as_bytes()))
}
