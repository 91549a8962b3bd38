//! `/tenants/{tenant_id}/users/{user_id}/watchers`: the subscriber table, who may watch
//! the user (SIP busy lamps and presence, the portal's status lights). Anyone of the
//! tenant by default; the tenant admin may restrict a user to a list of colleagues.
//! The user reads their own rule (`web::auth`); the decision itself is
//! `tsps_actors::presence::may_watch`, fed by the directory snapshot reloaded here.

use super::error::{ApiError, ErrorBody, FieldIssue};
use super::extract::{ApiJson, ApiPath};
use super::{reloaded, ApiState};
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use tsps_actors::presence::WatchRule;
use tsps_actors::{TenantId, UserId};
use utoipa::ToSchema;

/// The longest list of watchers one user may have.
pub const MAX_WATCHERS: usize = 500;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WatchersMode {
    /// Any user of the tenant may watch the user (the default).
    Anyone,
    /// Only the listed users (an empty list: nobody).
    Only,
}

/// Who may watch the user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Watchers {
    pub mode: WatchersMode,
    /// With `only`: the users of the tenant allowed to watch. Empty with `anyone`.
    #[serde(default)]
    #[schema(value_type = Vec<uuid::Uuid>, max_items = 500)]
    pub users: Vec<UserId>,
}

impl From<WatchRule> for Watchers {
    fn from(rule: WatchRule) -> Self {
        match rule {
            WatchRule::Anyone => Watchers {
                mode: WatchersMode::Anyone,
                users: Vec::new(),
            },
            WatchRule::Only(users) => Watchers {
                mode: WatchersMode::Only,
                users,
            },
        }
    }
}

#[utoipa::path(get, path = "/tenants/{tenant_id}/users/{user_id}/watchers", tag = "users",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 200, body = Watchers, description = "anyone when none was set"),
        (status = 404, body = ErrorBody)))]
pub async fn get_watchers(
    State(st): State<ApiState>,
    ApiPath((tenant_id, user_id)): ApiPath<(TenantId, UserId)>,
) -> Result<Json<Watchers>, ApiError> {
    Ok(Json(
        st.store().get_watch_rule(tenant_id, user_id).await?.into(),
    ))
}

/// Sets who may watch the user (the tenant admin's). Applies to new subscriptions and
/// watch lists; subscriptions already running last until they end or are refreshed
/// from scratch (docs/presence.md).
#[utoipa::path(put, path = "/tenants/{tenant_id}/users/{user_id}/watchers", tag = "users",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = Watchers,
    responses((status = 200, body = Watchers), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_watchers`: a user not of \
            this tenant, users given with mode anyone, or more than 500")))]
pub async fn put_watchers(
    State(st): State<ApiState>,
    ApiPath((tenant_id, user_id)): ApiPath<(TenantId, UserId)>,
    ApiJson(body): ApiJson<Watchers>,
) -> Result<Json<Watchers>, ApiError> {
    let dir = st.directory.get();
    if dir.user(user_id).is_none_or(|u| u.tenant_id != tenant_id) {
        return Err(ApiError::not_found(format!("user not found: {user_id}")));
    }
    let issues = check(&body, |u| {
        dir.user(u).is_some_and(|u| u.tenant_id == tenant_id)
    });
    if !issues.is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_watchers",
            "invalid watchers",
            issues,
        ));
    }
    let rule = match body.mode {
        WatchersMode::Anyone => WatchRule::Anyone,
        WatchersMode::Only => WatchRule::Only(body.users),
    };
    st.store().put_watch_rule(tenant_id, user_id, &rule).await?;
    // The SIP side and the push hub decide on the directory snapshot.
    reloaded(&st).await?;
    Ok(Json(
        st.store().get_watch_rule(tenant_id, user_id).await?.into(),
    ))
}

/// Every problem of a body; `member` says whether a user id is of the tenant.
fn check(body: &Watchers, member: impl Fn(UserId) -> bool) -> Vec<FieldIssue> {
    let mut issues = Vec::new();
    match body.mode {
        WatchersMode::Anyone if !body.users.is_empty() => {
            issues.push(FieldIssue::new(
                "users",
                "mode anyone takes no users (use mode only)",
            ));
        }
        WatchersMode::Anyone => {}
        WatchersMode::Only => {
            if body.users.len() > MAX_WATCHERS {
                issues.push(FieldIssue::new(
                    "users",
                    format!("at most {MAX_WATCHERS} users"),
                ));
            }
            for (i, u) in body.users.iter().enumerate() {
                if !member(*u) {
                    issues.push(FieldIssue::new(
                        format!("users[{i}]"),
                        "no such user in this tenant",
                    ));
                }
            }
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_checked_field_by_field() {
        let (a, b, stranger) = (
            UserId::for_test(1),
            UserId::for_test(2),
            UserId::for_test(9),
        );
        let member = |u: UserId| u != stranger;
        let body = |mode, users: Vec<UserId>| Watchers { mode, users };
        assert!(check(&body(WatchersMode::Anyone, vec![]), member).is_empty());
        assert!(check(&body(WatchersMode::Only, vec![]), member).is_empty());
        assert!(check(&body(WatchersMode::Only, vec![a, b]), member).is_empty());
        assert_eq!(
            check(&body(WatchersMode::Only, vec![a, stranger]), member),
            [FieldIssue::new("users[1]", "no such user in this tenant")]
        );
        assert_eq!(
            check(&body(WatchersMode::Anyone, vec![a]), member)[0].field,
            "users"
        );
        assert_eq!(
            check(&body(WatchersMode::Only, vec![a; MAX_WATCHERS + 1]), member)[0].reason,
            "at most 500 users"
        );
        let parsed: Watchers =
            serde_json::from_str(&format!(r#"{{"mode":"only","users":["{a}"]}}"#)).unwrap();
        assert_eq!(parsed, body(WatchersMode::Only, vec![a]));
        assert!(serde_json::from_str::<Watchers>(r#"{"mode":"some"}"#).is_err());
    }
}
