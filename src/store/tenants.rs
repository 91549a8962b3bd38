//! Tenants (a SIP domain each), their settings (dialing rules, the portal notice),
//! their own quotas and the counts the quotas are checked against.

use super::{StoreResult, TenantQuotas};
use crate::contacts::TenantSettings;
use async_trait::async_trait;
use tsps_actors::model::Tenant;
use tsps_actors::{TenantId, UserId};

/// Tenants. The domain is stored as given: callers pass it lower case.
#[async_trait]
pub trait Tenants: Send + Sync {
    async fn create_tenant(&self, tenant: &Tenant) -> StoreResult<()>;
    async fn get_tenant(&self, id: TenantId) -> StoreResult<Tenant>;
    async fn find_tenant_by_domain(&self, domain: &str) -> StoreResult<Option<Tenant>>;
    /// By domain.
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;
    /// Changes name, time zone and domain. A domain change is refused with `Conflict`
    /// while the tenant has devices: their digest HA1s are computed over the domain.
    async fn update_tenant(&self, tenant: &Tenant) -> StoreResult<()>;
    /// Deletes the tenant with everything in it (users, devices, DIDs, trunks,
    /// bindings, call records).
    async fn delete_tenant(&self, id: TenantId) -> StoreResult<()>;

    /// The defaults when none were stored; `NotFound` ("tenant") for no such tenant.
    async fn get_tenant_settings(&self, tenant: TenantId) -> StoreResult<TenantSettings>;
    async fn put_tenant_settings(
        &self,
        tenant: TenantId,
        settings: &TenantSettings,
    ) -> StoreResult<()>;

    /// The tenant's own quotas (none set: all `None`); `NotFound` for no such tenant.
    async fn get_tenant_quotas(&self, tenant: TenantId) -> StoreResult<TenantQuotas>;
    async fn put_tenant_quotas(&self, tenant: TenantId, quotas: &TenantQuotas) -> StoreResult<()>;
    /// Contacts of the tenant: of `owner` when given (a user's personal ones), else all
    /// (shared and personal).
    async fn count_contacts(&self, tenant: TenantId, owner: Option<UserId>) -> StoreResult<u64>;
    /// SIP devices of the tenant.
    async fn count_devices(&self, tenant: TenantId) -> StoreResult<u64>;
}
