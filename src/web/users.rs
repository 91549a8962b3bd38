//! `/tenants/{tenant_id}/users`: the people of a tenant, their portal role and their
//! portal password.

use super::auth::Auth;
use super::error::{internal, ApiError, ErrorBody, FieldIssue};
use super::extract::{ApiJson, ApiPath};
use super::login::too_many_attempts;
use super::principal::Principal;
use super::session::{login_key, ActiveSession};
use super::{reloaded, rule_schemas, ApiState, Fields};
use crate::password;
use crate::rules;
use crate::secret::Secret;
use crate::store::{UserAccount, UserRole};
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::time::Instant;
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
    /// Portal role. Whether a password is set is not shown (nor, ever, the password).
    pub role: UserRole,
}

impl From<UserAccount> for UserView {
    fn from(a: UserAccount) -> Self {
        let u = a.user;
        Self {
            id: u.id,
            tenant_id: u.tenant_id,
            extension: u.extension,
            display_name: u.display_name,
            portal_login: u.portal_login,
            role: a.role,
        }
    }
}

/// Body of POST and PUT.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    /// Digits (1 to 15), unique within the tenant.
    #[schema(example = "1001", pattern = "^[0-9]{1,15}$")]
    pub extension: String,
    #[schema(schema_with = rule_schemas::name)]
    pub display_name: String,
    /// Another name to log in to the portal with: 1 to 64 letters, digits, `-`, `_`,
    /// `.` or `+`.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9._+-]{1,64}$")]
    pub portal_login: Option<String>,
    /// `user` or `tenant_admin`. On POST `user` when omitted; on PUT an omitted role
    /// keeps the current one.
    #[serde(default)]
    pub role: Option<UserRole>,
}

impl UserInput {
    fn into_user(
        self,
        tenant_id: TenantId,
        id: UserId,
    ) -> Result<(User, Option<UserRole>), ApiError> {
        let mut f = Fields::default();
        let extension = f.check("extension", rules::extension(&self.extension));
        let display_name = f.check("display_name", rules::name(&self.display_name));
        let portal_login = match &self.portal_login {
            Some(l) => f.check("portal_login", rules::portal_login(l)).map(Some),
            None => Some(None),
        };
        let (Some(extension), Some(display_name), Some(portal_login)) =
            (extension, display_name, portal_login)
        else {
            return Err(f.error());
        };
        let user = User {
            id,
            tenant_id,
            extension,
            display_name,
            portal_login,
        };
        Ok((user, self.role))
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
    let users = st.store().list_user_accounts(tenant_id).await?;
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
    let (user, role) = input.into_user(tenant_id, UserId::new())?;
    let role = role.unwrap_or_default();
    st.store().create_user(tenant_id, &user).await?;
    // Created as `user` first: if this second write failed, the user would have less
    // power than asked for, never more.
    if role != UserRole::User {
        st.store().set_user_role(tenant_id, user.id, role).await?;
    }
    reloaded(&st).await?;
    Ok((StatusCode::CREATED, Json(UserAccount { user, role }.into())))
}

#[utoipa::path(get, path = "/tenants/{tenant_id}/users/{user_id}", tag = "users",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody)))]
pub async fn get_user(
    State(st): State<ApiState>,
    ApiPath((tenant_id, user_id)): ApiPath<(TenantId, UserId)>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(
        st.store()
            .get_user_account(tenant_id, user_id)
            .await?
            .into(),
    ))
}

#[utoipa::path(put, path = "/tenants/{tenant_id}/users/{user_id}", tag = "users",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = UserInput,
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update_user(
    State(st): State<ApiState>,
    Extension(auth): Extension<Arc<Auth>>,
    ApiPath((tenant_id, user_id)): ApiPath<(TenantId, UserId)>,
    ApiJson(input): ApiJson<UserInput>,
) -> Result<Json<UserView>, ApiError> {
    let (user, role) = input.into_user(tenant_id, user_id)?;
    st.store().update_user(tenant_id, &user).await?;
    if let Some(role) = role {
        st.store().set_user_role(tenant_id, user_id, role).await?;
        // A demoted admin's event streams of other users end.
        auth.user_changed(tenant_id, user_id);
    }
    reloaded(&st).await?;
    Ok(Json(
        st.store()
            .get_user_account(tenant_id, user_id)
            .await?
            .into(),
    ))
}

#[utoipa::path(delete, path = "/tenants/{tenant_id}/users/{user_id}", tag = "users",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204, description = "deleted with its devices and DIDs"),
        (status = 404, body = ErrorBody)))]
pub async fn delete_user(
    State(st): State<ApiState>,
    Extension(auth): Extension<Arc<Auth>>,
    ApiPath((tenant_id, user_id)): ApiPath<(TenantId, UserId)>,
) -> Result<StatusCode, ApiError> {
    st.store().delete_user(tenant_id, user_id).await?;
    auth.user_changed(tenant_id, user_id);
    reloaded(&st).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Body of `PUT .../password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordInput {
    #[schema(schema_with = rule_schemas::password)]
    pub password: Secret,
    /// The password now in force: required when a user changes its own password (so a
    /// session left open does not let someone else take the account over).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub current_password: Option<Secret>,
}

fn invalid_password(field: &str, reason: impl Into<String>) -> ApiError {
    ApiError::unprocessable(
        "invalid_password",
        "invalid password",
        vec![FieldIssue::new(field, reason)],
    )
}

/// Sets the user's portal password (stored as an argon2id hash). Every other session
/// of the user ends: the user's own current session stays, an administrator's reset
/// logs the user out everywhere.
#[utoipa::path(put, path = "/tenants/{tenant_id}/users/{user_id}/password", tag = "users",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = PasswordInput,
    responses((status = 204, description = "password set"),
        (status = 403, body = ErrorBody, description = "`current_password` is wrong"),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_password`: too short, too long, or `current_password` missing"),
        (status = 429, body = ErrorBody, description = "too many wrong `current_password`s; see Retry-After")))]
pub async fn set_password(
    State(st): State<ApiState>,
    Extension(auth): Extension<Arc<Auth>>,
    Extension(principal): Extension<Principal>,
    session: Option<Extension<ActiveSession>>,
    ApiPath((tenant_id, user_id)): ApiPath<(TenantId, UserId)>,
    ApiJson(input): ApiJson<PasswordInput>,
) -> Result<Response, ApiError> {
    password::check_rule(input.password.expose()).map_err(|r| invalid_password("password", r))?;
    let account = st.store().get_user_account(tenant_id, user_id).await?;
    let own = principal.user() == Some(user_id) && principal.tenant() == Some(tenant_id);
    if own {
        let Some(current) = input.current_password.as_ref().map(Secret::expose) else {
            return Err(invalid_password(
                "current_password",
                "required to change your own password",
            ));
        };
        // Guessing the current password here counts like guessing it at the login.
        let tenant = st.store().get_tenant(tenant_id).await?;
        let key = login_key(&tenant.domain, &account.user.extension);
        let blocked = auth.limits().blocked(None, &key, Instant::now());
        if let Some(wait) = blocked {
            return Ok(too_many_attempts(wait));
        }
        let stored = st.store().get_password_hash(tenant_id, user_id).await?;
        let ok = password::verify(current, stored.as_deref())
            .await
            .map_err(|e| internal("password check failed", &e))?;
        if !ok {
            auth.limits().failed(None, key, Instant::now());
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "wrong_password",
                "current_password is not the password in force",
            ));
        }
        auth.limits().succeeded(&key);
    }
    let hash = password::hash(input.password.expose())
        .await
        .map_err(|e| internal("password hashing failed", &e))?;
    st.store()
        .set_password_hash(tenant_id, user_id, Some(&hash))
        .await?;
    let keep = session
        .as_ref()
        .filter(|_| own)
        .map(|Extension(s)| s.id_hash.as_str());
    auth.sessions()
        .end_user_sessions(tenant_id, user_id, keep)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
