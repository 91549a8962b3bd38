//! Portal sessions of users and operators. The session id itself (the cookie) is
//! never stored, only its SHA-256 (see `web::session`).

use super::{OperatorAccount, StoreResult, UserAccount};
use crate::secret::Secret;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tsps_actors::{TenantId, UserId};

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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// Lower-case hex SHA-256 of the session id (a lookup key: it opens nothing).
    pub id_hash: String,
    pub subject: SessionSubject,
    pub csrf_token: Secret,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// The absolute end, whatever the activity.
    pub expires_at: DateTime<Utc>,
}

/// Portal sessions, keyed by the SHA-256 of the session id. They go with their user (or
/// operator).
#[async_trait]
pub trait Sessions: Send + Sync {
    /// `NotFound` ("user") when the user does not exist in its tenant, ("operator") when
    /// the operator does not exist.
    async fn create_session(&self, session: &SessionRecord) -> StoreResult<()>;
    /// The session with its account as of now (role changes apply at once).
    async fn get_session(
        &self,
        id_hash: &str,
    ) -> StoreResult<Option<(SessionRecord, SessionAccount)>>;
    async fn touch_session(&self, id_hash: &str, at: DateTime<Utc>) -> StoreResult<()>;
    /// Idempotent: ending a session that is gone is not an error.
    async fn delete_session(&self, id_hash: &str) -> StoreResult<()>;
    /// Ends every session of the user except `keep` (after a password change).
    async fn delete_user_sessions(
        &self,
        tenant: TenantId,
        user: UserId,
        keep: Option<&str>,
    ) -> StoreResult<u64>;
    /// Deletes sessions (of users and operators) past their absolute end at `now` or
    /// idle since `idle_since`.
    async fn delete_expired_sessions(
        &self,
        now: DateTime<Utc>,
        idle_since: DateTime<Utc>,
    ) -> StoreResult<u64>;
}
