//! `/tenants/{tenant_id}/settings`: the tenant's feature-server settings, for now its
//! dialing rules (how numbers written without `+` become E.164). A change applies to
//! numbers written from then on; stored numbers are E.164 already.

use super::error::{ApiError, ErrorBody, FieldIssue};
use super::extract::{ApiJson, ApiPath};
use super::ApiState;
use crate::contacts::TenantSettings;
use axum::extract::State;
use axum::Json;
use tsps_actors::TenantId;

#[utoipa::path(get, path = "/tenants/{tenant_id}/settings", tag = "settings",
    params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = TenantSettings,
            description = "the stored settings, or the defaults (no country code: \
                numbers must be written in international form)"),
        (status = 404, body = ErrorBody)))]
pub async fn get_settings(
    State(st): State<ApiState>,
    ApiPath(tenant_id): ApiPath<TenantId>,
) -> Result<Json<TenantSettings>, ApiError> {
    Ok(Json(st.store().get_tenant_settings(tenant_id).await?))
}

#[utoipa::path(put, path = "/tenants/{tenant_id}/settings", tag = "settings",
    params(("tenant_id" = Uuid, Path)), request_body = TenantSettings,
    responses((status = 200, body = TenantSettings), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_settings`")))]
pub async fn put_settings(
    State(st): State<ApiState>,
    ApiPath(tenant_id): ApiPath<TenantId>,
    ApiJson(settings): ApiJson<TenantSettings>,
) -> Result<Json<TenantSettings>, ApiError> {
    if let Err(problems) = settings.dialing.check() {
        let details = problems
            .into_iter()
            .map(|(field, reason)| FieldIssue::new(format!("dialing.{field}"), reason))
            .collect();
        return Err(ApiError::unprocessable(
            "invalid_settings",
            "invalid settings",
            details,
        ));
    }
    st.store().put_tenant_settings(tenant_id, &settings).await?;
    st.notify.tenant_changed(tenant_id);
    Ok(Json(settings))
}
