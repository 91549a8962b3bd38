//! What rings for a user: its SIP devices (with their digest credentials) and its
//! external phones (numbers outside tsps, such as a mobile).

use super::StoreResult;
use async_trait::async_trait;
use tsps_actors::model::{Device, ExternalPhone};
use tsps_actors::{DeviceId, TenantId, UserId};

/// Devices and external phones. The store only sees HA1s, never passwords.
#[async_trait]
pub trait Devices: Send + Sync {
    async fn create_device(&self, tenant: TenantId, device: &Device) -> StoreResult<()>;
    async fn get_device(&self, tenant: TenantId, id: DeviceId) -> StoreResult<Device>;
    async fn find_device_by_username(
        &self,
        tenant: TenantId,
        sip_username: &str,
    ) -> StoreResult<Option<Device>>;
    /// All devices of the tenant, or only those of `user`; by SIP user name.
    async fn list_devices(
        &self,
        tenant: TenantId,
        user: Option<UserId>,
    ) -> StoreResult<Vec<Device>>;
    /// Changes owner, SIP user name, HA1s and the remote answer flag.
    async fn update_device(&self, tenant: TenantId, device: &Device) -> StoreResult<()>;
    async fn delete_device(&self, tenant: TenantId, id: DeviceId) -> StoreResult<()>;

    // External phones of a user (numbers already E.164), unique per user and number. One
    // asked for under another user (or tenant) is `NotFound` ("external phone").
    async fn create_external_phone(
        &self,
        tenant: TenantId,
        phone: &ExternalPhone,
    ) -> StoreResult<()>;
    /// By number.
    async fn list_external_phones(
        &self,
        tenant: TenantId,
        user: UserId,
    ) -> StoreResult<Vec<ExternalPhone>>;
    /// Changes number and label of the phone `phone.id` of `phone.user_id`.
    async fn update_external_phone(
        &self,
        tenant: TenantId,
        phone: &ExternalPhone,
    ) -> StoreResult<()>;
    async fn delete_external_phone(
        &self,
        tenant: TenantId,
        user: UserId,
        id: DeviceId,
    ) -> StoreResult<()>;
}
