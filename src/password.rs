//! Portal passwords: argon2id (the `argon2` crate's defaults, RFC 9106 / OWASP:
//! m = 19 MiB, t = 2, p = 1) stored as PHC strings. Hashing takes tens of milliseconds
//! of CPU, so it runs on the blocking pool, at most [`PARALLEL`] at a time: a burst of
//! logins queues instead of starving the SIP shards.
//!
//! The portal (logins, password changes) and provisioning (a user's `password:` in the
//! document) use it.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::SaltString;
use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

/// Concurrent hash computations (each holds ~19 MiB while it runs).
const PARALLEL: usize = 2;
static HASHING: Semaphore = Semaphore::const_new(PARALLEL);

/// A hash of a random password nobody knows, with the default parameters: checked
/// when the login names no user (or one without a password), so that a wrong login
/// costs the same time as a wrong password and the answer's timing reveals nothing.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$\
    c2FsdHNhbHRzYWx0c2FsdA$0hS2bJ3T6d2xjAmnBuvTDyCcQbEPOH5JEk8QYcCPgQg";

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(argon2::password_hash::Error),
    #[error("password hashing task failed")]
    Task,
}

/// The rule for portal passwords, said in lower case: 8 to 128 characters, no
/// control characters.
pub fn check_rule(password: &str) -> Result<(), String> {
    crate::rules::portal_password(password).map(|_| ())
}

/// A fresh argon2id PHC string for `password` (random salt).
pub async fn hash(password: &str) -> Result<String, PasswordError> {
    let password = password.to_owned();
    blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(PasswordError::Hash)
    })
    .await?
}

/// Whether `password` matches `phc`. With no hash (no such user, or no password set)
/// the dummy hash is checked and the answer is false: the same work either way. A
/// stored hash that does not parse is a mismatch (and logged).
pub async fn verify(password: &str, phc: Option<&str>) -> Result<bool, PasswordError> {
    let password = password.to_owned();
    let phc = phc.map(str::to_owned);
    blocking(move || {
        let (hash, real) = match &phc {
            Some(h) => (h.as_str(), true),
            None => (DUMMY_HASH, false),
        };
        let parsed = match PasswordHash::new(hash) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "a stored password hash does not parse");
                return false;
            }
        };
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        ok && real
    })
    .await
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, PasswordError> {
    // The semaphore is never closed, so acquiring cannot fail.
    let _permit = HASHING.acquire().await.map_err(|_| PasswordError::Task)?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| PasswordError::Task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let h = hash("correct horse").await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse", Some(&h)).await.unwrap());
        assert!(!verify("wrong horse", Some(&h)).await.unwrap());
        // Salted: the same password hashes differently each time.
        assert_ne!(h, hash("correct horse").await.unwrap());
    }

    #[tokio::test]
    async fn no_hash_and_a_broken_hash_never_match() {
        assert!(!verify("anything", None).await.unwrap());
        assert!(!verify("anything", Some("not a phc string")).await.unwrap());
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_costs() {
        let dummy = PasswordHash::new(DUMMY_HASH).unwrap();
        let real_params = argon2::Params::default();
        let params = argon2::Params::try_from(&dummy).unwrap();
        assert_eq!(dummy.algorithm, argon2::Algorithm::Argon2id.ident());
        assert_eq!(params.m_cost(), real_params.m_cost());
        assert_eq!(params.t_cost(), real_params.t_cost());
        assert_eq!(params.p_cost(), real_params.p_cost());
    }

    #[test]
    fn the_rule_wants_eight_characters() {
        assert!(check_rule("1234567").is_err());
        assert!(check_rule("12345678").is_ok());
        assert!(check_rule(&"x".repeat(129)).is_err());
        assert!(check_rule("abc\u{7}defgh").is_err());
    }
}
