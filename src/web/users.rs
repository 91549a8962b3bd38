//! `/tenants/{tenant_id}/users`: the people of a tenant.

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath};
use super::{field, reloaded, ApiState};
use crate::provision::rules;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use tsps_actors::model::User;
use tsps_actors::{TenantId, UserId};
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    #[schema(value_type = Uuid)]
    pub id: UserId,
    #[schema(value_type = Uuid)]
    pub tenant_id: TenantId,
    #[schema(example = "1001")]
    pub extension: String,
    pub display_name: String,
    pub portal_login: Option<String>,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            tenant_id: u.tenant_id,
            extension: u.extension,
            display_name: u.display_name,
            portal_login: u.portal_login,
        }
    }
}

/// Body of POST and PUT.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    /// Digits, unique within the tenant.
    #[schema(example = "1001")]
    pub extension: String,
    pub display_name: String,
    #[serde(default)]
    pub portal_login: Option<String>,
}

impl UserInput {
    fn into_user(self, tenant_id: TenantId, id: UserId) -> Result<User, ApiError> {
        Ok(User {
            id,
            tenant_id,
            extension: field("extension", rules::extension(&self.extension))?,
            display_name: field("display_name", rules::name(&self.display_name))?,
            portal_login: self
                .portal_login
                .map(|l| field("portal_login", rules::portal_login(&l)))
                .transpose()?,
        })
    }
}

#[utoipa::path(get, path = "/tenants/{tenant_id}/users", tag = "users",
    params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = [UserView]), (status = 404, body = ErrorBody)))]
pub async fn list_users(
    State(st): State<ApiState>,
    ApiPath(tenant_id): ApiPath<TenantId>,
) -> Result<Json<Vec<UserView>>, ApiError> {
    st.store().get_tenant(tenant_id).await?;
    let users = st.store().list_users(tenant_id).await?;
    Ok(Json(users.into_iter().map(UserView::from).collect()))
}

#[utoipa::path(post, path = "/tenants/{tenant_id}/users", tag = "users",
    params(("tenant_id" = Uuid, Path)), request_body = UserInput,
    responses((status = 201, body = UserView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_user(
    State(st): State<ApiState>,
    ApiPath(tenant_id): ApiPath<TenantId>,
    ApiJson(input): ApiJson<UserInput>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let user = input.into_user(tenant_id, UserId::new())?;
    st.store().create_user(tenant_id, &user).await?;
    reloaded(&st).await?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

#[utoipa::path(get, path = "/tenants/{tenant_id}/users/{user_id}", tag = "users",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody)))]
pub async fn get_user(
    State(st): State<ApiState>,
    ApiPath((tenant_id, user_id)): ApiPath<(TenantId, UserId)>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(st.store().get_user(tenant_id, user_id).await?.into()))
}

#[utoipa::path(put, path = "/tenants/{tenant_id}/users/{user_id}", tag = "users",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = UserInput,
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update_user(
    State(st): State<ApiState>,
    ApiPath((tenant_id, user_id)): ApiPath<(TenantId, UserId)>,
    ApiJson(input): ApiJson<UserInput>,
) -> Result<Json<UserView>, ApiError> {
    let user = input.into_user(tenant_id, user_id)?;
    st.store().update_user(tenant_id, &user).await?;
    reloaded(&st).await?;
    Ok(Json(user.into()))
}

#[utoipa::path(delete, path = "/tenants/{tenant_id}/users/{user_id}", tag = "users",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204, description = "deleted with its devices and DIDs"),
        (status = 404, body = ErrorBody)))]
pub async fn delete_user(
    State(st): State<ApiState>,
    ApiPath((tenant_id, user_id)): ApiPath<(TenantId, UserId)>,
) -> Result<StatusCode, ApiError> {
    st.store().delete_user(tenant_id, user_id).await?;
    reloaded(&st).await?;
    Ok(StatusCode::NO_CONTENT)
}
