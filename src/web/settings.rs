//! `/tenants/{tenant_id}/settings`: the tenant's settings: its dialing rules (how
//! numbers written without `+` become E.164; a change applies to numbers written from
//! then on, stored numbers are E.164 already) and a notice for the users' home pages.

use super::error::{ApiError, ErrorBody, FieldIssue};
use super::extract::{ApiJson, ApiPath};
use super::ApiState;
use crate::contacts::TenantSettings;
use axum::extract::State;
use axum::Json;
use tsps_actors::TenantId;

/// Long enough for a paragraph; the home page is not a bulletin board.
const MAX_NOTICE: usize = 1000;

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
    ApiJson(mut settings): ApiJson<TenantSettings>,
) -> Result<Json<TenantSettings>, ApiError> {
    // A blank notice is no notice.
    settings.notice = settings
        .notice
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    let mut details: Vec<FieldIssue> = settings
        .dialing
        .check()
        .err()
        .unwrap_or_default()
        .into_iter()
        .map(|(field, reason)| FieldIssue::new(format!("dialing.{field}"), reason))
        .collect();
    if settings
        .notice
        .as_ref()
        .is_some_and(|n| n.chars().count() > MAX_NOTICE)
    {
        details.push(FieldIssue::new(
            "notice",
            format!("at most {MAX_NOTICE} characters"),
        ));
    }
    if !details.is_empty() {
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
