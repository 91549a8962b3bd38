//! `/tenants/{tenant_id}/api-tokens`: API tokens of integrations (CTI clients such as
//! a CRM or an attendant console; see `docs/cti.md`).
//!
//! A tenant admin (or the operator) creates a token for the tenant, optionally limited
//! to some of its users and to a time. The secret, `tsps_` and 256 random bits in
//! base64url, is shown once in the answer to the POST; the store keeps its SHA-256.
//! A request with `Authorization: Bearer <token>` is then
//! [`Principal::Integration`](super::principal::Principal::Integration), and
//! `web::access` decides what it may do (secrets: `web::token_secret`). Every request reads the token from the
//! store, so a revoked or expired token is refused at once, on every node. An event
//! stream opened with it ends too (`web::revalidate`): at once on the node that revoked
//! it, within `REVALIDATE_EVERY` (30 s) on the others and after its expiry.

use super::auth::Auth;
use super::error::{ApiError, ErrorBody, FieldIssue};
use super::extract::{ApiJson, ApiPath};
use super::token_secret::{hash_secret, new_secret};
use super::{rule_schemas, ApiState};
use crate::secret::Secret;
use crate::store::{ApiToken, ApiTokenId};
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;
use tsps_actors::{TenantId, UserId};
use utoipa::ToSchema;

/// Longest token name, in characters.
const MAX_NAME: usize = 100;
/// Most users one token may list (as many as a user may watch).
const MAX_USERS: usize = 500;

/// Body of the POST.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiTokenInput {
    #[schema(schema_with = rule_schemas::api_token_name)]
    pub name: String,
    /// Only these users of the tenant (1 to 500); omitted or null: every user of the
    /// tenant, also those added later.
    #[serde(default)]
    #[schema(value_type = Option<Vec<uuid::Uuid>>, min_items = 1, max_items = 500)]
    pub users: Option<Vec<UserId>>,
    /// From this instant on the token is refused; omitted: until revoked. Must be in the
    /// future.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// A token as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiTokenView {
    #[schema(value_type = uuid::Uuid)]
    pub id: ApiTokenId,
    #[schema(example = "crm")]
    pub name: String,
    /// The users it may act for; null: every user of the tenant.
    #[schema(value_type = Option<Vec<uuid::Uuid>>)]
    pub users: Option<Vec<UserId>>,
    pub created_at: DateTime<Utc>,
    /// Null: until revoked.
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<ApiToken> for ApiTokenView {
    fn from(t: ApiToken) -> Self {
        Self {
            id: t.id,
            name: t.name,
            users: t.users,
            created_at: t.created_at,
            expires_at: t.expires_at,
        }
    }
}

/// The answer to the POST: the token as listed, and its secret, shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiToken {
    /// Send it as `Authorization: Bearer <token>`. tsps keeps only its hash: it cannot
    /// be shown again.
    #[schema(value_type = String, example = "tsps_Jx1b2R0d0Ugd2l0aCAyNTYgcmFuZG9tIGJpdHMgaGVyZQ")]
    #[serde(serialize_with = "Secret::serialize_exposed")]
    pub token: Secret,
    #[serde(flatten)]
    pub api_token: ApiTokenView,
}

/// A POST body that passed [`check`]: the name trimmed, the users without repeats.
#[derive(Debug, PartialEq)]
struct Checked {
    name: String,
    users: Option<Vec<UserId>>,
    expires_at: Option<DateTime<Utc>>,
}

/// What is wrong with a POST body, every problem at once; the users' list checked
/// against `tenant_users`.
fn check(
    input: ApiTokenInput,
    tenant_users: &HashSet<UserId>,
    now: DateTime<Utc>,
) -> Result<Checked, Vec<FieldIssue>> {
    let mut issues = Vec::new();
    let name = input.name.trim().to_string();
    if name.is_empty() {
        issues.push(FieldIssue::new("name", "must not be empty"));
    } else if name.chars().count() > MAX_NAME {
        issues.push(FieldIssue::new(
            "name",
            format!("at most {MAX_NAME} characters"),
        ));
    } else if name.chars().any(char::is_control) {
        issues.push(FieldIssue::new("name", "no control characters"));
    }
    let users = input.users.map(|users| {
        if users.is_empty() {
            issues.push(FieldIssue::new(
                "users",
                "name at least one user, or leave it out for every user",
            ));
        } else if users.len() > MAX_USERS {
            issues.push(FieldIssue::new(
                "users",
                format!("at most {MAX_USERS} users"),
            ));
        }
        let mut seen = HashSet::new();
        let mut unique = Vec::with_capacity(users.len());
        for (i, u) in users.into_iter().enumerate() {
            if !tenant_users.contains(&u) {
                issues.push(FieldIssue::new(
                    format!("users[{i}]"),
                    "no such user in this tenant",
                ));
            } else if seen.insert(u) {
                unique.push(u);
            }
        }
        unique
    });
    if input.expires_at.is_some_and(|end| end <= now) {
        issues.push(FieldIssue::new("expires_at", "must be in the future"));
    }
    if issues.is_empty() {
        Ok(Checked {
            name,
            users,
            expires_at: input.expires_at,
        })
    } else {
        Err(issues)
    }
}

/// The tenant's API tokens, by name; never their secrets.
#[utoipa::path(get, path = "/tenants/{tenant_id}/api-tokens", tag = "api-tokens",
    params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = [ApiTokenView]), (status = 404, body = ErrorBody)))]
pub async fn list_api_tokens(
    State(st): State<ApiState>,
    ApiPath(tenant_id): ApiPath<TenantId>,
) -> Result<Json<Vec<ApiTokenView>>, ApiError> {
    st.store().get_tenant(tenant_id).await?;
    let tokens = st.store().list_api_tokens(tenant_id).await?;
    Ok(Json(tokens.into_iter().map(ApiTokenView::from).collect()))
}

/// Creates an API token for an integration; the answer carries its secret, once.
#[utoipa::path(post, path = "/tenants/{tenant_id}/api-tokens", tag = "api-tokens",
    params(("tenant_id" = Uuid, Path)), request_body = ApiTokenInput,
    responses((status = 201, body = CreatedApiToken), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`already_exists`: the name is taken"),
        (status = 422, body = ErrorBody,
            description = "`invalid_api_token`: an empty name, a user not of the tenant, an expiry in the past")))]
pub async fn create_api_token(
    State(st): State<ApiState>,
    ApiPath(tenant_id): ApiPath<TenantId>,
    ApiJson(input): ApiJson<ApiTokenInput>,
) -> Result<(StatusCode, Json<CreatedApiToken>), ApiError> {
    st.store().get_tenant(tenant_id).await?;
    let tenant_users: HashSet<UserId> = st
        .store()
        .list_users(tenant_id)
        .await?
        .into_iter()
        .map(|u| u.id)
        .collect();
    // Stored at microseconds (both databases): the answer shows what a list will show.
    let now = st.clock.now().trunc_subsecs(6);
    let Checked {
        name,
        users,
        expires_at,
    } = check(input, &tenant_users, now).map_err(|issues| {
        ApiError::unprocessable("invalid_api_token", "invalid api token", issues)
    })?;
    let secret = new_secret();
    let token = ApiToken {
        id: ApiTokenId::new(),
        tenant_id,
        name,
        secret_hash: Secret(hash_secret(&secret)),
        users,
        created_at: now,
        expires_at,
    };
    st.store().create_api_token(tenant_id, &token).await?;
    tracing::info!(%tenant_id, token = %token.id, name = %token.name, "api token created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiToken {
            token: Secret::new(secret),
            api_token: token.into(),
        }),
    ))
}

/// Revokes a token: from now on it is `401`, and the event streams it opened end.
#[utoipa::path(delete, path = "/tenants/{tenant_id}/api-tokens/{token_id}", tag = "api-tokens",
    params(("tenant_id" = Uuid, Path), ("token_id" = Uuid, Path)),
    responses((status = 204, description = "revoked"), (status = 404, body = ErrorBody)))]
pub async fn revoke_api_token(
    State(st): State<ApiState>,
    Extension(auth): Extension<Arc<Auth>>,
    ApiPath((tenant_id, token_id)): ApiPath<(TenantId, ApiTokenId)>,
) -> Result<StatusCode, ApiError> {
    st.store().delete_api_token(tenant_id, token_id).await?;
    auth.token_revoked(token_id);
    tracing::info!(%tenant_id, token = %token_id, "api token revoked");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: UserId = UserId::for_test(1);
    const B: UserId = UserId::for_test(2);
    const STRANGER: UserId = UserId::for_test(9);

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
            .unwrap()
            .to_utc()
    }

    fn input(name: &str, users: Option<Vec<UserId>>, expires_in: Option<i64>) -> ApiTokenInput {
        ApiTokenInput {
            name: name.into(),
            users,
            expires_at: expires_in.map(|s| now() + chrono::Duration::seconds(s)),
        }
    }

    fn fields(r: Result<impl std::fmt::Debug, Vec<FieldIssue>>) -> Vec<String> {
        r.expect_err("invalid")
            .into_iter()
            .map(|i| i.field)
            .collect()
    }

    #[test]
    fn a_body_is_checked_as_a_whole() {
        let users: HashSet<UserId> = [A, B].into();
        let ok = check(input(" crm ", Some(vec![B, A, B]), Some(60)), &users, now()).unwrap();
        assert_eq!(
            ok,
            Checked {
                name: "crm".into(),
                // Repeats dropped, order kept.
                users: Some(vec![B, A]),
                expires_at: Some(now() + chrono::Duration::seconds(60)),
            }
        );
        let all = check(input("console", None, None), &users, now()).unwrap();
        assert_eq!((all.users, all.expires_at), (None, None));

        assert_eq!(
            fields(check(
                input("  ", Some(vec![A, STRANGER]), Some(0)),
                &users,
                now()
            )),
            ["name", "users[1]", "expires_at"]
        );
        assert_eq!(
            fields(check(input("x", Some(vec![]), None), &users, now())),
            ["users"]
        );
        assert_eq!(
            fields(check(input(&"n".repeat(101), None, None), &users, now())),
            ["name"]
        );
        assert_eq!(
            fields(check(input("a\nb", None, None), &users, now())),
            ["name"]
        );
        assert_eq!(
            fields(check(input("x", None, Some(-5)), &users, now())),
            ["expires_at"]
        );
        let many: Vec<UserId> = (0..501).map(|_| A).collect();
        assert_eq!(
            fields(check(input("x", Some(many), None), &users, now())),
            ["users"]
        );
    }
}
