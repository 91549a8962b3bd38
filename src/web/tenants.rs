//! `/tenants`: create, read, update and delete tenants.

use super::auth::Auth;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath};
use super::{reloaded, rule_schemas, ApiState, Fields};
use crate::rules;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tsps_actors::model::Tenant;
use tsps_actors::TenantId;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    #[schema(value_type = Uuid)]
    pub id: TenantId,
    /// SIP domain, also the digest realm of the tenant's devices.
    #[schema(example = "a.test")]
    pub domain: String,
    pub name: String,
    #[schema(example = "Europe/Zurich")]
    pub time_zone: String,
}

impl From<Tenant> for TenantView {
    fn from(t: Tenant) -> Self {
        Self {
            id: t.id,
            domain: t.domain,
            name: t.name,
            time_zone: t.time_zone,
        }
    }
}

/// Body of POST and PUT. A PUT may change the domain only while the tenant has no
/// devices (their HA1s are computed over it): otherwise 409 `conflict`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantInput {
    #[schema(schema_with = rule_schemas::domain)]
    pub domain: String,
    #[schema(schema_with = rule_schemas::name)]
    pub name: String,
    #[serde(default)]
    #[schema(schema_with = rule_schemas::time_zone_or_utc)]
    pub time_zone: Option<String>,
}

impl TenantInput {
    fn into_tenant(self, id: TenantId) -> Result<Tenant, ApiError> {
        let mut f = Fields::default();
        let domain = f.check("domain", rules::domain(&self.domain));
        let name = f.check("name", rules::name(&self.name));
        let time_zone = f.check(
            "time_zone",
            rules::time_zone(self.time_zone.as_deref().unwrap_or("UTC")),
        );
        let (Some(domain), Some(name), Some(time_zone)) = (domain, name, time_zone) else {
            return Err(f.error());
        };
        Ok(Tenant {
            id,
            domain,
            name,
            time_zone,
        })
    }
}

#[utoipa::path(get, path = "/tenants", tag = "tenants",
    responses((status = 200, body = [TenantView]), (status = 401, body = ErrorBody)))]
pub async fn list_tenants(State(st): State<ApiState>) -> Result<Json<Vec<TenantView>>, ApiError> {
    let tenants = st.store().list_tenants().await?;
    Ok(Json(tenants.into_iter().map(TenantView::from).collect()))
}

#[utoipa::path(post, path = "/tenants", tag = "tenants", request_body = TenantInput,
    responses((status = 201, body = TenantView), (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn create_tenant(
    State(st): State<ApiState>,
    ApiJson(input): ApiJson<TenantInput>,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
    let tenant = input.into_tenant(TenantId::new())?;
    st.store().create_tenant(&tenant).await?;
    reloaded(&st).await?;
    Ok((StatusCode::CREATED, Json(tenant.into())))
}

#[utoipa::path(get, path = "/tenants/{tenant_id}", tag = "tenants",
    params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = TenantView), (status = 404, body = ErrorBody)))]
pub async fn get_tenant(
    State(st): State<ApiState>,
    ApiPath(tenant_id): ApiPath<TenantId>,
) -> Result<Json<TenantView>, ApiError> {
    Ok(Json(st.store().get_tenant(tenant_id).await?.into()))
}

#[utoipa::path(put, path = "/tenants/{tenant_id}", tag = "tenants",
    params(("tenant_id" = Uuid, Path)), request_body = TenantInput,
    responses((status = 200, body = TenantView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update_tenant(
    State(st): State<ApiState>,
    ApiPath(tenant_id): ApiPath<TenantId>,
    ApiJson(input): ApiJson<TenantInput>,
) -> Result<Json<TenantView>, ApiError> {
    let tenant = input.into_tenant(tenant_id)?;
    st.store().update_tenant(&tenant).await?;
    reloaded(&st).await?;
    Ok(Json(tenant.into()))
}

#[utoipa::path(delete, path = "/tenants/{tenant_id}", tag = "tenants",
    params(("tenant_id" = Uuid, Path)),
    responses((status = 204, description = "deleted with everything in it"),
        (status = 404, body = ErrorBody)))]
pub async fn delete_tenant(
    State(st): State<ApiState>,
    Extension(auth): Extension<Arc<Auth>>,
    ApiPath(tenant_id): ApiPath<TenantId>,
) -> Result<StatusCode, ApiError> {
    st.store().delete_tenant(tenant_id).await?;
    auth.tenant_removed(tenant_id);
    reloaded(&st).await?;
    Ok(StatusCode::NO_CONTENT)
}
