//! `/tenants/{tenant_id}/dids`: direct inward dialling numbers and the user each rings.

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath};
use super::{field, reloaded, ApiState};
use crate::rules;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use tsps_actors::model::Did;
use tsps_actors::{TenantId, UserId};
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct DidView {
    #[schema(example = "+41445550100")]
    pub number: String,
    #[schema(value_type = Uuid)]
    pub user_id: UserId,
}

impl From<Did> for DidView {
    fn from(d: Did) -> Self {
        Self {
            number: d.number,
            user_id: d.user_id,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDid {
    /// E.164 (`+`, then 2 to 15 digits, not starting with 0), unique across all
    /// tenants.
    #[schema(example = "+41445550100", pattern = r"^\+[1-9][0-9]{1,14}$")]
    pub number: String,
    #[schema(value_type = Uuid)]
    pub user_id: UserId,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DidUpdate {
    #[schema(value_type = Uuid)]
    pub user_id: UserId,
}

#[utoipa::path(get, path = "/tenants/{tenant_id}/dids", tag = "dids",
    params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = [DidView]), (status = 404, body = ErrorBody)))]
pub async fn list_dids(
    State(st): State<ApiState>,
    ApiPath(tenant_id): ApiPath<TenantId>,
) -> Result<Json<Vec<DidView>>, ApiError> {
    st.store().get_tenant(tenant_id).await?;
    let dids = st.store().list_dids(tenant_id).await?;
    Ok(Json(dids.into_iter().map(DidView::from).collect()))
}

#[utoipa::path(post, path = "/tenants/{tenant_id}/dids", tag = "dids",
    params(("tenant_id" = Uuid, Path)), request_body = NewDid,
    responses((status = 201, body = DidView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_did(
    State(st): State<ApiState>,
    ApiPath(tenant_id): ApiPath<TenantId>,
    ApiJson(input): ApiJson<NewDid>,
) -> Result<(StatusCode, Json<DidView>), ApiError> {
    let did = Did {
        number: field("number", rules::e164(&input.number))?,
        tenant_id,
        user_id: input.user_id,
    };
    st.store().create_did(tenant_id, &did).await?;
    reloaded(&st).await?;
    Ok((StatusCode::CREATED, Json(did.into())))
}

#[utoipa::path(get, path = "/tenants/{tenant_id}/dids/{number}", tag = "dids",
    params(("tenant_id" = Uuid, Path), ("number" = String, Path, example = "+41445550100")),
    responses((status = 200, body = DidView), (status = 404, body = ErrorBody)))]
pub async fn get_did(
    State(st): State<ApiState>,
    ApiPath((tenant_id, number)): ApiPath<(TenantId, String)>,
) -> Result<Json<DidView>, ApiError> {
    Ok(Json(st.store().get_did(tenant_id, &number).await?.into()))
}

#[utoipa::path(put, path = "/tenants/{tenant_id}/dids/{number}", tag = "dids",
    params(("tenant_id" = Uuid, Path), ("number" = String, Path, example = "+41445550100")),
    request_body = DidUpdate,
    responses((status = 200, body = DidView), (status = 404, body = ErrorBody)))]
pub async fn update_did(
    State(st): State<ApiState>,
    ApiPath((tenant_id, number)): ApiPath<(TenantId, String)>,
    ApiJson(input): ApiJson<DidUpdate>,
) -> Result<Json<DidView>, ApiError> {
    let did = Did {
        number,
        tenant_id,
        user_id: input.user_id,
    };
    st.store().update_did(tenant_id, &did).await?;
    reloaded(&st).await?;
    Ok(Json(did.into()))
}

#[utoipa::path(delete, path = "/tenants/{tenant_id}/dids/{number}", tag = "dids",
    params(("tenant_id" = Uuid, Path), ("number" = String, Path, example = "+41445550100")),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody)))]
pub async fn delete_did(
    State(st): State<ApiState>,
    ApiPath((tenant_id, number)): ApiPath<(TenantId, String)>,
) -> Result<StatusCode, ApiError> {
    st.store().delete_did(tenant_id, &number).await?;
    reloaded(&st).await?;
    Ok(StatusCode::NO_CONTENT)
}
