//! The SIP side's durable state: the provisioned directory, read whole into the
//! snapshot the shards and the API share ([`SharedDirectory`](super::SharedDirectory)),
//! and the registration bindings the user actors persist so that registrations survive
//! a restart.

use super::StoreResult;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tsps_actors::model::Binding;
use tsps_actors::{DeviceId, Directory, TenantId};

/// The directory snapshot and the registration bindings.
#[async_trait]
pub trait Registrations: Send + Sync {
    /// The whole provisioned directory (tenants, users, devices, external phones, DIDs,
    /// trunks, the subscriber table).
    async fn load_directory(&self) -> StoreResult<Directory>;

    /// Inserts or refreshes one registration binding, keyed by (tenant, device, contact).
    async fn save_binding(&self, binding: &Binding) -> StoreResult<()>;
    async fn remove_binding(
        &self,
        tenant: TenantId,
        device: DeviceId,
        contact: &str,
    ) -> StoreResult<()>;
    async fn remove_device_bindings(&self, tenant: TenantId, device: DeviceId) -> StoreResult<()>;
    /// Bindings not yet expired at `now` (loaded at start so registrations survive a restart).
    async fn load_bindings(&self, now: DateTime<Utc>) -> StoreResult<Vec<Binding>>;
    /// Bindings of one tenant not yet expired at `now`, by device and contact.
    async fn list_bindings(
        &self,
        tenant: TenantId,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Binding>>;
}
