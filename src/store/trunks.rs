//! The tenants' trunks: SIP peers for calls to and from outside numbers.

use super::StoreResult;
use async_trait::async_trait;
use tsps_actors::model::Trunk;
use tsps_actors::{TenantId, TrunkId};

/// Trunks, unique by name within their tenant.
#[async_trait]
pub trait Trunks: Send + Sync {
    async fn create_trunk(&self, tenant: TenantId, trunk: &Trunk) -> StoreResult<()>;
    async fn get_trunk(&self, tenant: TenantId, id: TrunkId) -> StoreResult<Trunk>;
    async fn find_trunk_by_name(&self, tenant: TenantId, name: &str) -> StoreResult<Option<Trunk>>;
    /// By name.
    async fn list_trunks(&self, tenant: TenantId) -> StoreResult<Vec<Trunk>>;
    async fn update_trunk(&self, tenant: TenantId, trunk: &Trunk) -> StoreResult<()>;
    async fn delete_trunk(&self, tenant: TenantId, id: TrunkId) -> StoreResult<()>;
}
