//! `/tenants/{tenant_id}/users/{user_id}/devices`: SIP devices of a user, and
//! `/tenants/{tenant_id}/users/{user_id}/external-phones`: the user's phones outside
//! tsps (mobiles), which click-to-dial and answer take wherever a device goes.
//!
//! A device is created or changed with its password; the store keeps only the digest
//! HA1s over the tenant's domain, and no response ever carries a password or an HA1.
//! An external phone's number is stored in E.164, normalised by the tenant's dialing
//! rules as contacts' numbers are.

use super::error::{ApiError, ErrorBody, FieldIssue};
use super::extract::{ApiJson, ApiPath};
use super::{reloaded, rule_schemas, ApiState, Fields};
use crate::contacts::e164;
use crate::rules;
use crate::secret::Secret;
use crate::sip::digest::{ha1_md5, ha1_sha256};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use tsps_actors::model::{Device, ExternalPhone};
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
    /// The phone answers a ringing call when told to (NOTIFY `Event: talk`).
    pub remote_answer: bool,
    /// The digest algorithms the phone is challenged with, preferred first; empty: the
    /// platform's.
    #[schema(example = json!(["MD5"]))]
    pub digest_algorithms: Vec<String>,
}

impl From<Device> for DeviceView {
    fn from(d: Device) -> Self {
        Self {
            id: d.id,
            user_id: d.user_id,
            sip_username: d.sip_username,
            remote_answer: d.remote_answer,
            digest_algorithms: d
                .digest_algorithms
                .iter()
                .map(|a| a.name().to_string())
                .collect(),
        }
    }
}

/// Body of POST and PUT (a PUT sets a new password, and may rename the device).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceInput {
    /// Digest user name: 1 to 64 letters, digits, `-`, `_`, `.` or `+`; unique within
    /// the tenant.
    #[schema(example = "1001", pattern = "^[A-Za-z0-9._+-]{1,64}$")]
    pub sip_username: String,
    /// Only its HA1s are stored.
    #[schema(schema_with = rule_schemas::password)]
    pub password: Secret,
    /// The phone supports remote answer (BroadWorks `talk` event): `answer` on a call
    /// ringing on it makes it answer by itself. Default false; a PUT without it keeps
    /// the current value.
    #[serde(default)]
    pub remote_answer: Option<bool>,
    /// The digest algorithms to challenge the phone with, preferred first: `["MD5"]`
    /// for phones that know only MD5 (and fail when SHA-256 is offered beside it), `[]`
    /// for the platform's list. A PUT without it keeps the current value.
    #[serde(default)]
    #[schema(schema_with = rule_schemas::digest_algorithms)]
    pub digest_algorithms: Option<Vec<String>>,
}

impl DeviceInput {
    async fn into_device(
        self,
        st: &ApiState,
        tenant_id: TenantId,
        user_id: UserId,
        id: DeviceId,
        current: Option<&Device>,
    ) -> Result<Device, ApiError> {
        let mut f = Fields::default();
        let sip_username = f.check("sip_username", rules::sip_username(&self.sip_username));
        let digest_algorithms = match &self.digest_algorithms {
            Some(list) => f.check("digest_algorithms", rules::digest_algorithms(list)),
            None => Some(
                current
                    .map(|d| d.digest_algorithms.clone())
                    .unwrap_or_default(),
            ),
        };
        let password = f.check("password", rules::device_password(self.password.expose()));
        let (Some(sip_username), Some(digest_algorithms), Some(password)) =
            (sip_username, digest_algorithms, password)
        else {
            return Err(f.error());
        };
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
            remote_answer: self
                .remote_answer
                .unwrap_or(current.is_some_and(|d| d.remote_answer)),
            digest_algorithms,
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
        .into_device(&st, tenant_id, user_id, DeviceId::new(), None)
        .await?;
    super::quotas::room_for_device(&st, tenant_id).await?;
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
    let current = device_of(&st, tenant_id, user_id, device_id).await?;
    let device = input
        .into_device(&st, tenant_id, user_id, device_id, Some(&current))
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

// ----- external phones -------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct ExternalPhoneView {
    /// Taken as `device_id` by click-to-dial and answer.
    #[schema(value_type = Uuid)]
    pub id: DeviceId,
    #[schema(value_type = Uuid)]
    pub user_id: UserId,
    /// E.164.
    #[schema(example = "+41791234567")]
    pub number: String,
    #[schema(example = "Mobile")]
    pub label: String,
}

impl From<ExternalPhone> for ExternalPhoneView {
    fn from(p: ExternalPhone) -> Self {
        Self {
            id: p.id,
            user_id: p.user_id,
            number: p.number,
            label: p.label,
        }
    }
}

/// Body of POST and PUT.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExternalPhoneInput {
    /// As the user writes it (`079 123 45 67`); stored in E.164 by the tenant's dialing
    /// rules.
    #[schema(example = "+41 79 123 45 67")]
    pub number: String,
    #[serde(default)]
    #[schema(schema_with = rule_schemas::external_phone_label)]
    pub label: String,
}

/// Longest label kept.
const MAX_LABEL: usize = 64;

impl ExternalPhoneInput {
    async fn into_phone(
        self,
        st: &ApiState,
        tenant_id: TenantId,
        user_id: UserId,
        id: DeviceId,
    ) -> Result<ExternalPhone, ApiError> {
        st.store().get_user(tenant_id, user_id).await?;
        let rules = st.store().get_tenant_settings(tenant_id).await?.dialing;
        let mut issues = Vec::new();
        let number = e164::normalize(&self.number, &rules)
            .map_err(|e| issues.push(FieldIssue::new("number", e.to_string())))
            .unwrap_or_default();
        let label = self.label.trim().to_string();
        if label.chars().count() > MAX_LABEL || label.chars().any(char::is_control) {
            issues.push(FieldIssue::new(
                "label",
                format!("at most {MAX_LABEL} characters, no control characters"),
            ));
        }
        if !issues.is_empty() {
            return Err(ApiError::unprocessable(
                "invalid_external_phone",
                "invalid external phone",
                issues,
            ));
        }
        Ok(ExternalPhone {
            id,
            tenant_id,
            user_id,
            number,
            label,
        })
    }
}

/// The external phone, if it is this user's in this tenant; 404 otherwise.
async fn phone_of(
    st: &ApiState,
    tenant_id: TenantId,
    user_id: UserId,
    id: DeviceId,
) -> Result<ExternalPhone, ApiError> {
    st.store()
        .list_external_phones(tenant_id, user_id)
        .await?
        .into_iter()
        .find(|p| p.id == id)
        .ok_or_else(|| ApiError::not_found(format!("external phone not found: {id}")))
}

#[utoipa::path(get, path = "/tenants/{tenant_id}/users/{user_id}/external-phones",
    tag = "devices",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 200, body = [ExternalPhoneView]), (status = 404, body = ErrorBody)))]
pub async fn list_external_phones(
    State(st): State<ApiState>,
    ApiPath((tenant_id, user_id)): ApiPath<(TenantId, UserId)>,
) -> Result<Json<Vec<ExternalPhoneView>>, ApiError> {
    st.store().get_user(tenant_id, user_id).await?;
    let phones = st.store().list_external_phones(tenant_id, user_id).await?;
    Ok(Json(phones.into_iter().map(Into::into).collect()))
}

#[utoipa::path(post, path = "/tenants/{tenant_id}/users/{user_id}/external-phones",
    tag = "devices",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    request_body = ExternalPhoneInput,
    responses((status = 201, body = ExternalPhoneView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "the user has this number already"),
        (status = 422, body = ErrorBody, description = "not a number, or a bad label")))]
pub async fn create_external_phone(
    State(st): State<ApiState>,
    ApiPath((tenant_id, user_id)): ApiPath<(TenantId, UserId)>,
    ApiJson(input): ApiJson<ExternalPhoneInput>,
) -> Result<(StatusCode, Json<ExternalPhoneView>), ApiError> {
    let phone = input
        .into_phone(&st, tenant_id, user_id, DeviceId::new())
        .await?;
    st.store().create_external_phone(tenant_id, &phone).await?;
    reloaded(&st).await?;
    Ok((StatusCode::CREATED, Json(phone.into())))
}

#[utoipa::path(get, path = "/tenants/{tenant_id}/users/{user_id}/external-phones/{phone_id}",
    tag = "devices",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path), ("phone_id" = Uuid, Path)),
    responses((status = 200, body = ExternalPhoneView), (status = 404, body = ErrorBody)))]
pub async fn get_external_phone(
    State(st): State<ApiState>,
    ApiPath((tenant_id, user_id, id)): ApiPath<(TenantId, UserId, DeviceId)>,
) -> Result<Json<ExternalPhoneView>, ApiError> {
    Ok(Json(phone_of(&st, tenant_id, user_id, id).await?.into()))
}

#[utoipa::path(put, path = "/tenants/{tenant_id}/users/{user_id}/external-phones/{phone_id}",
    tag = "devices",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path), ("phone_id" = Uuid, Path)),
    request_body = ExternalPhoneInput,
    responses((status = 200, body = ExternalPhoneView), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_external_phone(
    State(st): State<ApiState>,
    ApiPath((tenant_id, user_id, id)): ApiPath<(TenantId, UserId, DeviceId)>,
    ApiJson(input): ApiJson<ExternalPhoneInput>,
) -> Result<Json<ExternalPhoneView>, ApiError> {
    phone_of(&st, tenant_id, user_id, id).await?;
    let phone = input.into_phone(&st, tenant_id, user_id, id).await?;
    st.store().update_external_phone(tenant_id, &phone).await?;
    reloaded(&st).await?;
    Ok(Json(phone.into()))
}

#[utoipa::path(delete, path = "/tenants/{tenant_id}/users/{user_id}/external-phones/{phone_id}",
    tag = "devices",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path), ("phone_id" = Uuid, Path)),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody)))]
pub async fn delete_external_phone(
    State(st): State<ApiState>,
    ApiPath((tenant_id, user_id, id)): ApiPath<(TenantId, UserId, DeviceId)>,
) -> Result<StatusCode, ApiError> {
    st.store()
        .delete_external_phone(tenant_id, user_id, id)
        .await?;
    reloaded(&st).await?;
    Ok(StatusCode::NO_CONTENT)
}
