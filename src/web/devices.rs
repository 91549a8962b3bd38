//! `/tenants/{tenant_id}/users/{user_id}/devices`: SIP devices of a user.
//!
//! A device is created or changed with its password; the store keeps only the digest
//! HA1s over the tenant's domain, and no response ever carries a password or an HA1.

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath};
use super::{field, reloaded, ApiState};
use crate::provision::rules;
use crate::sip::digest::{ha1_md5, ha1_sha256};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::fmt;
use tsps_actors::model::Device;
use tsps_actors::{DeviceId, TenantId, UserId};
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceView {
    #[schema(value_type = Uuid)]
    pub id: DeviceId,
    #[schema(value_type = Uuid)]
    pub user_id: UserId,
    #[schema(example = "1001")]
    pub sip_username: String,
}

impl From<Device> for DeviceView {
    fn from(d: Device) -> Self {
        Self {
            id: d.id,
            user_id: d.user_id,
            sip_username: d.sip_username,
        }
    }
}

/// Body of POST and PUT (a PUT sets a new password, and may rename the device).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceInput {
    #[schema(example = "1001")]
    pub sip_username: String,
    /// At least 8 characters; only its HA1s are stored.
    pub password: String,
}

impl fmt::Debug for DeviceInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceInput")
            .field("sip_username", &self.sip_username)
            .field("password", &"[redacted]")
            .finish()
    }
}

impl DeviceInput {
    async fn into_device(
        self,
        st: &ApiState,
        tenant_id: TenantId,
        user_id: UserId,
        id: DeviceId,
    ) -> Result<Device, ApiError> {
        let sip_username = field("sip_username", rules::sip_username(&self.sip_username))?;
        let password = field("password", rules::device_password(&self.password))?;
        // The user must be of this tenant; the realm is the tenant's domain.
        st.store().get_user(tenant_id, user_id).await?;
        let realm = st.store().get_tenant(tenant_id).await?.domain;
        Ok(Device {
            id,
            tenant_id,
            user_id,
            ha1_md5: ha1_md5(&sip_username, &realm, &password),
            ha1_sha256: ha1_sha256(&sip_username, &realm, &password),
            sip_username,
        })
    }
}

/// The device, if it is this user's in this tenant; 404 otherwise.
async fn device_of(
    st: &ApiState,
    tenant_id: TenantId,
    user_id: UserId,
    device_id: DeviceId,
) -> Result<Device, ApiError> {
    let device = st.store().get_device(tenant_id, device_id).await?;
    if device.user_id != user_id {
        return Err(ApiError::not_found(format!(
            "device not found: {device_id}"
        )));
    }
    Ok(device)
}

#[utoipa::path(get, path = "/tenants/{tenant_id}/users/{user_id}/devices", tag = "devices",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 200, body = [DeviceView]), (status = 404, body = ErrorBody)))]
pub async fn list_devices(
    State(st): State<ApiState>,
    ApiPath((tenant_id, user_id)): ApiPath<(TenantId, UserId)>,
) -> Result<Json<Vec<DeviceView>>, ApiError> {
    st.store().get_user(tenant_id, user_id).await?;
    let devices = st.store().list_devices(tenant_id, Some(user_id)).await?;
    Ok(Json(devices.into_iter().map(DeviceView::from).collect()))
}

#[utoipa::path(post, path = "/tenants/{tenant_id}/users/{user_id}/devices", tag = "devices",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = DeviceInput,
    responses((status = 201, body = DeviceView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_device(
    State(st): State<ApiState>,
    ApiPath((tenant_id, user_id)): ApiPath<(TenantId, UserId)>,
    ApiJson(input): ApiJson<DeviceInput>,
) -> Result<(StatusCode, Json<DeviceView>), ApiError> {
    let device = input
        .into_device(&st, tenant_id, user_id, DeviceId::new())
        .await?;
    st.store().create_device(tenant_id, &device).await?;
    reloaded(&st).await?;
    Ok((StatusCode::CREATED, Json(device.into())))
}

#[utoipa::path(get, path = "/tenants/{tenant_id}/users/{user_id}/devices/{device_id}",
    tag = "devices",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path), ("device_id" = Uuid, Path)),
    responses((status = 200, body = DeviceView), (status = 404, body = ErrorBody)))]
pub async fn get_device(
    State(st): State<ApiState>,
    ApiPath((tenant_id, user_id, device_id)): ApiPath<(TenantId, UserId, DeviceId)>,
) -> Result<Json<DeviceView>, ApiError> {
    Ok(Json(
        device_of(&st, tenant_id, user_id, device_id).await?.into(),
    ))
}

#[utoipa::path(put, path = "/tenants/{tenant_id}/users/{user_id}/devices/{device_id}",
    tag = "devices",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path), ("device_id" = Uuid, Path)),
    request_body = DeviceInput,
    responses((status = 200, body = DeviceView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update_device(
    State(st): State<ApiState>,
    ApiPath((tenant_id, user_id, device_id)): ApiPath<(TenantId, UserId, DeviceId)>,
    ApiJson(input): ApiJson<DeviceInput>,
) -> Result<Json<DeviceView>, ApiError> {
    device_of(&st, tenant_id, user_id, device_id).await?;
    let device = input
        .into_device(&st, tenant_id, user_id, device_id)
        .await?;
    st.store().update_device(tenant_id, &device).await?;
    reloaded(&st).await?;
    Ok(Json(device.into()))
}

#[utoipa::path(delete, path = "/tenants/{tenant_id}/users/{user_id}/devices/{device_id}",
    tag = "devices",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path), ("device_id" = Uuid, Path)),
    responses((status = 204, description = "deleted with its registrations"),
        (status = 404, body = ErrorBody)))]
pub async fn delete_device(
    State(st): State<ApiState>,
    ApiPath((tenant_id, user_id, device_id)): ApiPath<(TenantId, UserId, DeviceId)>,
) -> Result<StatusCode, ApiError> {
    device_of(&st, tenant_id, user_id, device_id).await?;
    st.store().delete_device(tenant_id, device_id).await?;
    reloaded(&st).await?;
    Ok(StatusCode::NO_CONTENT)
}
