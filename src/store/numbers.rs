//! The tenants' DIDs: public numbers, each routed to one user of its tenant.

use super::StoreResult;
use async_trait::async_trait;
use tsps_actors::model::Did;
use tsps_actors::TenantId;

/// DIDs, keyed by E.164 number (unique across tenants).
#[async_trait]
pub trait Numbers: Send + Sync {
    async fn create_did(&self, tenant: TenantId, did: &Did) -> StoreResult<()>;
    async fn get_did(&self, tenant: TenantId, number: &str) -> StoreResult<Did>;
    /// By number.
    async fn list_dids(&self, tenant: TenantId) -> StoreResult<Vec<Did>>;
    /// Routes the number to another user of the same tenant.
    async fn update_did(&self, tenant: TenantId, did: &Did) -> StoreResult<()>;
    async fn delete_did(&self, tenant: TenantId, number: &str) -> StoreResult<()>;
}
