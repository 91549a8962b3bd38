//! Portal accounts: a user's role and password hash, the platform operators, and the
//! sessions of both. An operator is no user of any tenant: it is the platform's, like
//! the API token (see `web::auth`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tsps_actors::model::{CallOutcome, User};
use tsps_actors::{TenantId, UserId};
use utoipa::ToSchema;

/// What a user may do in the portal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserRole {
    /// Its own profile, status, contacts, calls; reads of the tenant's directory.
    #[default]
    User,
    /// Everything of its tenant.
    TenantAdmin,
}

impl UserRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::TenantAdmin => "tenant_admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::User, Self::TenantAdmin]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// A user with its portal role. The password hash stays out: it is read only where a
/// password is checked ([`LoginCandidate`], `Store::get_password_hash`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserAccount {
    pub user: User,
    pub role: UserRole,
}

/// The user a login names, with its password hash (none: it cannot log in).
#[derive(Clone, PartialEq, Eq)]
pub struct LoginCandidate {
    pub account: UserAccount,
    pub password_hash: Option<String>,
}

impl std::fmt::Debug for LoginCandidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginCandidate")
            .field("account", &self.account)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// A platform operator: logs in to the portal without a tenant and may do everything,
/// as the API token may. Created and removed with `tsps operator add|remove`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorAccount {
    /// Lower case, unique on the platform (see `rules::operator_login`).
    pub login: String,
    pub created_at: DateTime<Utc>,
}

/// The operator a login names, with its password hash.
#[derive(Clone, PartialEq, Eq)]
pub struct OperatorCandidate {
    pub account: OperatorAccount,
    pub password_hash: String,
}

impl std::fmt::Debug for OperatorCandidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorCandidate")
            .field("account", &self.account)
            .field("password_hash", &"[redacted]")
            .finish()
    }
}

/// Whose session it is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum SessionSubject {
    /// A user of a tenant (its role is read with the session).
    User { tenant: TenantId, user: UserId },
    /// A platform operator.
    Operator { login: String },
}

/// The account behind a session, as it is now (a role change applies at once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionAccount {
    User(UserAccount),
    Operator(OperatorAccount),
}

impl SessionAccount {
    pub fn subject(&self) -> SessionSubject {
        match self {
            Self::User(a) => SessionSubject::User {
                tenant: a.user.tenant_id,
                user: a.user.id,
            },
            Self::Operator(o) => SessionSubject::Operator {
                login: o.login.clone(),
            },
        }
    }
}

/// One portal session as stored. The session id itself (the cookie) is never stored,
/// only its SHA-256, so a copy of the table opens no session.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Lower-case hex SHA-256 of the session id.
    pub id_hash: String,
    pub subject: SessionSubject,
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// The absolute end, whatever the activity.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRecord")
            .field("subject", &self.subject)
            .field("created_at", &self.created_at)
            .field("last_seen_at", &self.last_seen_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Which of a user's calls: those it placed or those it received.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CallSide {
    /// The user is the caller.
    Outgoing,
    /// The user is the callee.
    Incoming,
}

/// A page of one user's call history, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallHistoryQuery {
    pub limit: u32,
    /// Only calls that started before this instant (the next page).
    pub before: Option<DateTime<Utc>>,
    /// Only calls whose caller or callee contains this text.
    pub search: Option<String>,
    pub side: Option<CallSide>,
    pub outcome: Option<CallOutcome>,
}

impl CallHistoryQuery {
    pub fn latest(limit: u32) -> Self {
        Self {
            limit,
            before: None,
            search: None,
            side: None,
            outcome: None,
        }
    }
}

/// `text` as a LIKE pattern matching any value that contains it: `\`, `%` and `_`
/// are escaped with `\` (the statements say `ESCAPE '\'`).
pub(crate) fn contains_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip() {
        for r in [UserRole::User, UserRole::TenantAdmin] {
            assert_eq!(UserRole::parse(r.as_str()), Some(r));
        }
        assert_eq!(UserRole::parse("operator"), None);
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("+4144"), "%+4144%");
        assert_eq!(contains_pattern("a%b_c\\"), "%a\\%b\\_c\\\\%");
    }
}
