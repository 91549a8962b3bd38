//! `/tenants/{tenant_id}/users/{user_id}/status`: the presence a user sets (available,
//! busy, away, in a meeting, do not disturb). Profile rules may depend on it.

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath};
use super::profile_schema::PresenceDoc;
use super::ApiState;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use tsps_actors::feature::Presence;
use tsps_actors::{TenantId, UserId};
use utoipa::ToSchema;

/// Body of GET and PUT.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    #[schema(value_type = PresenceDoc, example = "away")]
    pub presence: Presence,
}

#[utoipa::path(get, path = "/tenants/{tenant_id}/users/{user_id}/status", tag = "features",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 200, body = StatusBody), (status = 404, body = ErrorBody)))]
pub async fn get_status(
    State(st): State<ApiState>,
    ApiPath((tenant_id, user_id)): ApiPath<(TenantId, UserId)>,
) -> Result<Json<StatusBody>, ApiError> {
    let (_, presence) = st.store().get_profile(tenant_id, user_id).await?;
    Ok(Json(StatusBody { presence }))
}

#[utoipa::path(put, path = "/tenants/{tenant_id}/users/{user_id}/status", tag = "features",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = StatusBody,
    responses((status = 200, body = StatusBody),
        (status = 400, body = ErrorBody, description = "not one of the statuses"),
        (status = 404, body = ErrorBody)))]
pub async fn put_status(
    State(st): State<ApiState>,
    ApiPath((tenant_id, user_id)): ApiPath<(TenantId, UserId)>,
    ApiJson(body): ApiJson<StatusBody>,
) -> Result<Json<StatusBody>, ApiError> {
    st.store()
        .set_presence(tenant_id, user_id, body.presence)
        .await?;
    st.notify.user_changed(tenant_id, user_id);
    Ok(Json(body))
}
