//! `/tenants/{tenant_id}/quotas`: what a tenant may hold (contacts, devices, SIP
//! subscriptions), the platform's defaults (`[quotas]`) unless the operator set the
//! tenant's own; and the checks the contact and device writes make against them
//! (409 `quota_exceeded`, saying the limit and how many are held).

use super::error::{ApiError, ErrorBody, FieldIssue};
use super::extract::{ApiJson, ApiPath};
use super::principal::Principal;
use super::{reloaded, ApiState};
use crate::contacts::ContactOwner;
use crate::store::{Quotas, TenantQuotas};
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use tsps_actors::TenantId;
use utoipa::ToSchema;

/// One limit and what it is held against.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaView {
    #[schema(format = Int64, minimum = 0, maximum = 4294967295u64)]
    pub limit: u32,
    /// Held now (not counted for subscriptions: they live on each node).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used: Option<u64>,
    /// The tenant's own limit, rather than the platform's default.
    pub own: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuotasView {
    pub contacts: QuotaView,
    pub contacts_per_user: QuotaView,
    pub devices: QuotaView,
    pub subscriptions: QuotaView,
}

/// The limits in force for `tenant`.
pub async fn limits(st: &ApiState, tenant: TenantId) -> Result<Quotas, ApiError> {
    Ok(st.quotas.with(st.store().get_tenant_quotas(tenant).await?))
}

fn exceeded(what: &str, field: &str, limit: u32, held: u64, adding: usize) -> ApiError {
    let message = if adding == 1 {
        format!("{what} may hold {limit} and holds {held}: no more fit")
    } else {
        format!(
            "{what} may hold {limit} and holds {held}: these {adding} do not fit ({} more would)",
            u64::from(limit).saturating_sub(held)
        )
    };
    let mut e = ApiError::new(StatusCode::CONFLICT, "quota_exceeded", message.clone());
    e.details = vec![FieldIssue::new(field, message)];
    e
}

/// Refuses `adding` more contacts of `owner` beyond the tenant's or the user's quota.
pub async fn room_for_contacts(
    st: &ApiState,
    tenant: TenantId,
    owner: ContactOwner,
    adding: usize,
) -> Result<(), ApiError> {
    if adding == 0 {
        return Ok(());
    }
    let q = limits(st, tenant).await?;
    let all = st.store().count_contacts(tenant, None).await?;
    if all + adding as u64 > u64::from(q.contacts) {
        return Err(exceeded(
            "the tenant's contacts (shared and personal)",
            "contacts",
            q.contacts,
            all,
            adding,
        ));
    }
    if let Some(user) = owner.user() {
        let mine = st.store().count_contacts(tenant, Some(user)).await?;
        if mine + adding as u64 > u64::from(q.contacts_per_user) {
            return Err(exceeded(
                "a user's personal contacts",
                "contacts_per_user",
                q.contacts_per_user,
                mine,
                adding,
            ));
        }
    }
    Ok(())
}

/// Refuses one more device beyond the tenant's quota.
pub async fn room_for_device(st: &ApiState, tenant: TenantId) -> Result<(), ApiError> {
    let q = limits(st, tenant).await?;
    let held = st.store().count_devices(tenant).await?;
    if held >= u64::from(q.devices) {
        return Err(exceeded(
            "the tenant's devices",
            "devices",
            q.devices,
            held,
            1,
        ));
    }
    Ok(())
}

#[utoipa::path(get, path = "/tenants/{tenant_id}/quotas", tag = "tenants",
    params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = QuotasView), (status = 404, body = ErrorBody)))]
pub async fn get_quotas(
    State(st): State<ApiState>,
    ApiPath(tenant_id): ApiPath<TenantId>,
) -> Result<Json<QuotasView>, ApiError> {
    let own = st.store().get_tenant_quotas(tenant_id).await?;
    let q = st.quotas.with(own);
    let contacts = st.store().count_contacts(tenant_id, None).await?;
    let devices = st.store().count_devices(tenant_id).await?;
    let view = |limit, used, own: Option<u32>| QuotaView {
        limit,
        used,
        own: own.is_some(),
    };
    Ok(Json(QuotasView {
        contacts: view(q.contacts, Some(contacts), own.contacts),
        contacts_per_user: view(q.contacts_per_user, None, own.contacts_per_user),
        devices: view(q.devices, Some(devices), own.devices),
        subscriptions: view(q.subscriptions, None, own.subscriptions),
    }))
}

#[utoipa::path(put, path = "/tenants/{tenant_id}/quotas", tag = "tenants",
    params(("tenant_id" = Uuid, Path)), request_body = TenantQuotas,
    responses((status = 200, body = QuotasView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn put_quotas(
    State(st): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiPath(tenant_id): ApiPath<TenantId>,
    ApiJson(quotas): ApiJson<TenantQuotas>,
) -> Result<Json<QuotasView>, ApiError> {
    if !matches!(principal, Principal::Operator) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "a tenant's quotas are set by the platform operator",
        ));
    }
    st.store().put_tenant_quotas(tenant_id, &quotas).await?;
    // The SIP side reads the subscription quota from the directory.
    reloaded(&st).await?;
    get_quotas(State(st), ApiPath(tenant_id)).await
}
