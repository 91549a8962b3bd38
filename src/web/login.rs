//! Portal login: `POST /auth/login`, `POST /auth/logout`, `GET /auth/me`, on the
//! session store and failed-login limiter of `web::session`.
//!
//! A user logs in with its tenant's domain, a platform operator with
//! `"operator": true` and no domain; either gets the `tsps_session` cookie and the CSRF
//! token to send with every write.

use super::auth::Auth;
use super::error::{internal, ApiError, ErrorBody};
use super::extract::ApiJson;
use super::principal::ClientIp;
use super::session::{login_key, set_cookie, ActiveSession, LoginKey};
use crate::secret::Secret;
use crate::store::{DynStore, SessionAccount, StoreError, UserRole};
use axum::extract::Extension;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tsps_actors::{TenantId, UserId};
use utoipa::ToSchema;

/// A user logs in with its tenant's domain; a platform operator with `"operator": true`
/// and no domain.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginInput {
    /// The tenant's SIP domain; left out for an operator.
    #[serde(default)]
    #[schema(example = "demo.tsps.local")]
    pub domain: Option<String>,
    /// The user's extension (or its portal login), or the operator's login.
    #[schema(example = "1001")]
    pub login: String,
    #[schema(example = "demo1001")]
    pub password: String,
    /// `true`: a platform operator's login (`tsps operator add`).
    #[serde(default)]
    pub operator: bool,
}

/// Whom a login names.
enum LoginTarget<'a> {
    User { domain: &'a str },
    Operator,
}

impl LoginInput {
    /// Exactly one of a domain and `"operator": true`.
    fn target(&self) -> Result<LoginTarget<'_>, ApiError> {
        match (self.operator, self.domain.as_deref()) {
            (false, Some(domain)) => Ok(LoginTarget::User { domain }),
            (true, None) => Ok(LoginTarget::Operator),
            (false, None) => Err(ApiError::invalid(
                "domain",
                "required, unless \"operator\" is true",
            )),
            (true, Some(_)) => Err(ApiError::invalid(
                "domain",
                "an operator logs in without a domain",
            )),
        }
    }
}

/// The logged-in account and the token to send as `X-CSRF-Token` with every write.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    #[schema(value_type = String)]
    #[serde(serialize_with = "Secret::serialize_exposed")]
    pub csrf_token: Secret,
    pub user: SessionUser,
}

/// A user's session, or an operator's (no tenant, user or extension).
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionUser {
    /// Null for an operator.
    #[schema(value_type = Option<Uuid>)]
    pub tenant_id: Option<TenantId>,
    /// Null for an operator.
    #[schema(value_type = Option<Uuid>)]
    pub user_id: Option<UserId>,
    /// Null for an operator.
    #[schema(example = "1001")]
    pub extension: Option<String>,
    /// The user's name, or the operator's login.
    pub display_name: String,
    pub role: PortalRole,
}

/// What the session may do in the portal: a user's role, or the operator's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PortalRole {
    User,
    TenantAdmin,
    /// A platform operator: everything, every tenant.
    Operator,
}

impl From<UserRole> for PortalRole {
    fn from(r: UserRole) -> Self {
        match r {
            UserRole::User => Self::User,
            UserRole::TenantAdmin => Self::TenantAdmin,
        }
    }
}

impl From<&ActiveSession> for SessionView {
    fn from(s: &ActiveSession) -> Self {
        let user = match &s.account {
            SessionAccount::User(a) => SessionUser {
                tenant_id: Some(a.user.tenant_id),
                user_id: Some(a.user.id),
                extension: Some(a.user.extension.clone()),
                display_name: a.user.display_name.clone(),
                role: a.role.into(),
            },
            SessionAccount::Operator(o) => SessionUser {
                tenant_id: None,
                user_id: None,
                extension: None,
                display_name: o.login.clone(),
                role: PortalRole::Operator,
            },
        };
        Self {
            csrf_token: s.csrf_token.clone(),
            user,
        }
    }
}

fn wrong_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "wrong domain, login or password",
    )
}

/// 429 with `Retry-After` in whole seconds (at least 1).
pub(super) fn too_many_attempts(wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let secs = secs.max(1);
    let mut r = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        format!("too many failed attempts: try again in {secs} s"),
    )
    .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    r
}

/// Logs a user or an operator in: sets the `tsps_session` cookie and answers the CSRF
/// token. A wrong password and an unknown domain or login get the same 401 after the
/// same work.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginInput,
    security(()),
    responses((status = 200, body = SessionView,
            description = "logged in; `Set-Cookie: tsps_session=...; HttpOnly; SameSite=Strict`"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "too many failed logins; see Retry-After")))]
pub async fn login(
    Extension(auth): Extension<Arc<Auth>>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    ApiJson(input): ApiJson<LoginInput>,
) -> Response {
    let target = match input.target() {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let (key, candidate) = match find_candidate(auth.store(), &target, &input.login).await {
        Ok(found) => found,
        Err(e) => return internal("login lookup failed", &e).into_response(),
    };
    let blocked = auth.limits().blocked(ip, &key, Instant::now());
    if let Some(wait) = blocked {
        return too_many_attempts(wait);
    }
    let hash = candidate.as_ref().and_then(|(_, hash)| hash.as_deref());
    let ok = match crate::password::verify(&input.password, hash).await {
        Ok(ok) => ok,
        Err(e) => return internal("password check failed", &e).into_response(),
    };
    let account = match candidate {
        Some((account, _)) if ok => account,
        _ => {
            auth.limits().failed(ip, key, Instant::now());
            tracing::info!(?ip, operator = input.operator, "portal login failed");
            return wrong_credentials().into_response();
        }
    };
    auth.limits().succeeded(&key);
    let new = match auth.sessions().create(account).await {
        Ok(n) => n,
        Err(e) => return internal("creating a session failed", &e).into_response(),
    };
    match &new.active.account {
        SessionAccount::User(a) => {
            tracing::info!(tenant = %a.user.tenant_id, user = %a.user.id, "portal login")
        }
        SessionAccount::Operator(o) => tracing::info!(operator = %o.login, "operator login"),
    }
    let cookie = set_cookie(
        Some(&new.cookie_value),
        auth.sessions().lifetime(),
        auth.secure_cookies(),
    );
    let mut r = Json(SessionView::from(&new.active)).into_response();
    r.headers_mut().insert(header::SET_COOKIE, cookie);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The account a login names, with its password hash (none: it cannot log in), and
/// the limiter's key for the attempt.
async fn find_candidate(
    store: &DynStore,
    target: &LoginTarget<'_>,
    login: &str,
) -> Result<(LoginKey, Option<(SessionAccount, Option<String>)>), StoreError> {
    match target {
        LoginTarget::User { domain } => {
            let given = login_key(domain, login);
            // The limiter's key is lower case; the lookup takes the login as typed (a
            // portal login may have capitals).
            let found = match store.find_tenant_by_domain(&given.0).await? {
                Some(tenant) => store.find_login(tenant.id, login.trim()).await?,
                None => None,
            };
            // A known user is counted under its extension, whichever name it was tried
            // by (extension or portal login), so the two do not make two budgets of
            // guesses.
            Ok(match found {
                Some(c) => (
                    login_key(&given.0, &c.account.user.extension),
                    Some((
                        SessionAccount::User(c.account),
                        c.password_hash.map(|h| h.expose().to_string()),
                    )),
                ),
                None => (given, None),
            })
        }
        LoginTarget::Operator => {
            // Operator logins are stored lower case: the key is the lookup.
            let key = login_key("", login);
            let found = store.find_operator(&key.1).await?;
            Ok((
                key,
                found.map(|o| {
                    (
                        SessionAccount::Operator(o.account),
                        Some(o.password_hash.expose().to_string()),
                    )
                }),
            ))
        }
    }
}

/// Ends the session of the cookie and removes the cookie.
#[utoipa::path(post, path = "/auth/logout", tag = "auth",
    responses((status = 204, description = "logged out; the cookie is removed"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn logout(
    Extension(auth): Extension<Arc<Auth>>,
    session: Option<Extension<ActiveSession>>,
) -> Response {
    let Some(Extension(session)) = session else {
        return not_logged_in().into_response();
    };
    if let Err(e) = auth.sessions().end(&session.id_hash).await {
        return internal("ending a session failed", &e).into_response();
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(None, Duration::ZERO, auth.secure_cookies()),
    );
    r
}

/// The session's user and CSRF token (the portal asks after a page load: the cookie
/// itself is out of reach of scripts).
#[utoipa::path(get, path = "/auth/me", tag = "auth",
    responses((status = 200, body = SessionView), (status = 401, body = ErrorBody)))]
pub async fn me(session: Option<Extension<ActiveSession>>) -> Response {
    match session {
        Some(Extension(s)) => {
            let mut r = Json(SessionView::from(&s)).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        None => not_logged_in().into_response(),
    }
}

fn not_logged_in() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "not logged in: this needs a portal session",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn login_input(json: &str) -> Result<LoginInput, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn a_login_names_a_domain_or_the_operator_never_both() {
        let user = login_input(r#"{"domain": "a.test", "login": "1001", "password": "x"}"#);
        assert!(matches!(
            user.unwrap().target(),
            Ok(LoginTarget::User { domain: "a.test" })
        ));
        let op = login_input(r#"{"operator": true, "login": "ops", "password": "x"}"#);
        assert!(matches!(op.unwrap().target(), Ok(LoginTarget::Operator)));
        for (json, want) in [
            (
                r#"{"login": "1001", "password": "x"}"#,
                "domain: required, unless \"operator\" is true",
            ),
            (
                r#"{"operator": false, "login": "1001", "password": "x"}"#,
                "domain: required, unless \"operator\" is true",
            ),
            (
                r#"{"operator": true, "domain": "a.test", "login": "ops", "password": "x"}"#,
                "domain: an operator logs in without a domain",
            ),
        ] {
            let e = login_input(json).unwrap().target().err().unwrap();
            assert_eq!(e.message, want, "{json}");
        }
        assert!(login_input(r#"{"operator": "yes", "login": "o", "password": "x"}"#).is_err());
        assert!(login_input(r#"{"role": "operator", "login": "o", "password": "x"}"#).is_err());
    }

    #[test]
    fn an_operators_session_shows_no_tenant_and_the_operator_role() {
        let at = Utc::now();
        let s = ActiveSession {
            id_hash: "h".into(),
            csrf_token: "c".into(),
            account: SessionAccount::Operator(crate::store::OperatorAccount {
                login: "ops".into(),
                created_at: at,
            }),
            expires_at: at,
        };
        let view = serde_json::to_value(SessionView::from(&s)).unwrap();
        assert_eq!(
            view,
            serde_json::json!({"csrf_token": "c", "user": {"tenant_id": null, "user_id": null,
                "extension": null, "display_name": "ops", "role": "operator"}})
        );
        assert_eq!(login_key("", " OPS "), (String::new(), "ops".to_string()));
    }

    #[test]
    fn retry_after_rounds_up() {
        let r = too_many_attempts(Duration::from_millis(1500));
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        let r = too_many_attempts(Duration::ZERO);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }
}
