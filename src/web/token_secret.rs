//! An integration's API token as a secret: its form (`tsps_` and 256 random bits), how
//! the store keeps it (SHA-256) and which [`Principal`] it opens now. What
//! `web::auth` needs of a bearer token and `web::tokens` of a new one; it knows
//! neither.

use super::principal::Principal;
use crate::store::{DynStore, StoreError};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// What every integration token starts with: tells it from the operator's token at a
/// glance (and to secret scanners).
pub const PREFIX: &str = "tsps_";

/// Whether a presented bearer token is meant as an integration's.
pub fn is_api_token(presented: &str) -> bool {
    presented.starts_with(PREFIX)
}

/// How a secret is stored and looked up: lower-case hex SHA-256. The secret has 256
/// random bits, so a fast hash is enough (no password to stretch).
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// `tsps_` and 256 random bits from the operating system, base64url without padding.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The integration a token opens at `now`, by its secret's [`hash_secret`] (what an open
/// event stream keeps); `None` for a token never issued, revoked, or expired.
pub async fn resolve_hash(
    store: &DynStore,
    secret_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<Principal>, StoreError> {
    let Some(token) = store.find_api_token(secret_hash).await? else {
        return Ok(None);
    };
    if token.is_expired(now) {
        return Ok(None);
    }
    Ok(Some(Principal::Integration {
        tenant: token.tenant_id,
        token: token.id,
        users: token.users.map(Into::into),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_and_stored_hashed() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert!(is_api_token(&a), "{a}");
        assert_eq!(a.len(), PREFIX.len() + 43, "{a}");
        assert!(a[PREFIX.len()..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        let h = hash_secret(&a);
        assert_eq!(h.len(), 64);
        assert_eq!(h, hash_secret(&a));
        assert_ne!(h, hash_secret(&b));
        assert!(!is_api_token("the-operators-token"));
    }
}
