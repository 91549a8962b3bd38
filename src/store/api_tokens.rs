//! API tokens of integrations (CTI clients: CRMs, attendant consoles): each belongs to
//! one tenant and may be limited to some of its users. The secret itself is never
//! stored, only its SHA-256 (see `web::tokens`), so a copy of the table opens nothing.

use super::StoreResult;
use crate::secret::Secret;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use tsps_actors::{TenantId, UserId};
use uuid::Uuid;

/// Identifies one API token inside its tenant.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ApiTokenId(pub Uuid);

impl ApiTokenId {
    /// A fresh, time-ordered identifier (UUID v7).
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
    /// A stable identifier for tests: `for_test(1) != for_test(2)`.
    pub const fn for_test(n: u128) -> Self {
        Self(Uuid::from_u128(n))
    }
}

impl Default for ApiTokenId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ApiTokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for ApiTokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiTokenId({})", self.0)
    }
}

impl FromStr for ApiTokenId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::from_str(s).map(Self)
    }
}

/// One API token as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiToken {
    pub id: ApiTokenId,
    pub tenant_id: TenantId,
    /// Unique within the tenant: what the integration is (`crm`, `reception console`).
    pub name: String,
    /// Lower-case hex SHA-256 of the secret.
    pub secret_hash: Secret,
    /// The users it may act for; `None`: every user of the tenant.
    pub users: Option<Vec<UserId>>,
    pub created_at: DateTime<Utc>,
    /// From then on the token is refused; `None`: until revoked.
    pub expires_at: Option<DateTime<Utc>>,
}

impl ApiToken {
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|end| now >= end)
    }
}

/// API tokens of integrations, keyed by the SHA-256 of the secret. They go with their
/// tenant.
#[async_trait]
pub trait ApiTokens: Send + Sync {
    /// `AlreadyExists` ("api token") for a name taken in the tenant; `token.tenant_id`
    /// must equal `tenant` (else `Invalid`).
    async fn create_api_token(&self, tenant: TenantId, token: &ApiToken) -> StoreResult<()>;
    /// By name.
    async fn list_api_tokens(&self, tenant: TenantId) -> StoreResult<Vec<ApiToken>>;
    /// The token whose secret hashes to `secret_hash`, of any tenant, expired or not.
    async fn find_api_token(&self, secret_hash: &str) -> StoreResult<Option<ApiToken>>;
    /// `NotFound` ("api token") for none of this id in `tenant`.
    async fn delete_api_token(&self, tenant: TenantId, id: ApiTokenId) -> StoreResult<()>;
}
