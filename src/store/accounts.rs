//! Portal accounts: a user's role and password hash, and the platform operators. An
//! operator is no user of any tenant: it is the platform's, like the API token (see
//! `web::auth`). The sessions of both are [`Sessions`](super::Sessions)'.

use super::StoreResult;
use crate::secret::Secret;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tsps_actors::model::User;
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
/// password is checked ([`LoginCandidate`], [`Accounts::get_password_hash`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserAccount {
    pub user: User,
    pub role: UserRole,
}

/// The user a login names, with its password hash (none: it cannot log in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginCandidate {
    pub account: UserAccount,
    pub password_hash: Option<Secret>,
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorCandidate {
    pub account: OperatorAccount,
    pub password_hash: Secret,
}

/// Portal accounts of users and operators.
#[async_trait]
pub trait Accounts: Send + Sync {
    // Users' accounts: a role per user (`user` unless set) and an optional argon2id
    // password hash, which only these methods read or write.
    async fn get_user_account(&self, tenant: TenantId, id: UserId) -> StoreResult<UserAccount>;
    /// By extension.
    async fn list_user_accounts(&self, tenant: TenantId) -> StoreResult<Vec<UserAccount>>;
    /// The user whose extension is `login`, else the one whose portal login is `login`.
    async fn find_login(
        &self,
        tenant: TenantId,
        login: &str,
    ) -> StoreResult<Option<LoginCandidate>>;
    async fn set_user_role(&self, tenant: TenantId, id: UserId, role: UserRole) -> StoreResult<()>;
    async fn get_password_hash(&self, tenant: TenantId, id: UserId) -> StoreResult<Option<String>>;
    /// `None` removes the password (the user can no longer log in).
    async fn set_password_hash(
        &self,
        tenant: TenantId,
        id: UserId,
        hash: Option<&str>,
    ) -> StoreResult<()>;

    // Platform operators: portal accounts outside every tenant. The caller passes the
    // login lower case.
    /// `AlreadyExists` ("operator") for a login taken.
    async fn create_operator(
        &self,
        operator: &OperatorAccount,
        password_hash: &str,
    ) -> StoreResult<()>;
    async fn find_operator(&self, login: &str) -> StoreResult<Option<OperatorCandidate>>;
    /// By login.
    async fn list_operators(&self) -> StoreResult<Vec<OperatorAccount>>;
    /// Deletes the operator with its sessions; `NotFound` ("operator") for none.
    async fn delete_operator(&self, login: &str) -> StoreResult<()>;
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
}
