//! `/tenants/{tenant_id}/users/{user_id}/policy`: the tenant tier's word on a user's
//! calls: accept them (the user's feature server decides), reject them, or send them
//! to the user's own external feature server at a SIP URI.

use super::error::{ApiError, ErrorBody, FieldIssue};
use super::extract::{ApiJson, ApiPath};
use super::ApiState;
use crate::store::{PolicyMode, UserPolicy};
use axum::extract::State;
use axum::Json;
use rsipstack::sip::{Scheme, Uri};
use serde::Serialize;
use tsps_actors::{TenantId, UserId};
use utoipa::ToSchema;

const MAX_URI: usize = 512;

/// One user's policy in the tenant's list: the fields of [`UserPolicy`] beside the
/// user's id, spelled out (a flattened `UserPolicy` would be documented as an `allOf`
/// whose part allows no `user_id`).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPolicyView {
    #[schema(value_type = Uuid)]
    pub user_id: UserId,
    pub mode: PolicyMode,
    /// Set exactly when `mode` is `external`.
    #[schema(example = "sip:alice@127.0.0.1:5080")]
    pub external_uri: Option<String>,
}

impl UserPolicyView {
    fn new(user_id: UserId, policy: UserPolicy) -> Self {
        Self {
            user_id,
            mode: policy.mode,
            external_uri: policy.external_uri,
        }
    }
}

#[utoipa::path(get, path = "/tenants/{tenant_id}/users/{user_id}/policy", tag = "policies",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 200, body = UserPolicy, description = "accept when none was set"),
        (status = 404, body = ErrorBody)))]
pub async fn get_policy(
    State(st): State<ApiState>,
    ApiPath((tenant_id, user_id)): ApiPath<(TenantId, UserId)>,
) -> Result<Json<UserPolicy>, ApiError> {
    Ok(Json(st.store().get_user_policy(tenant_id, user_id).await?))
}

#[utoipa::path(put, path = "/tenants/{tenant_id}/users/{user_id}/policy", tag = "policies",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = UserPolicy,
    responses((status = 200, body = UserPolicy), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_policy`: external_uri \
            missing, not a sip: or sips: URI, or given for accept or reject")))]
pub async fn put_policy(
    State(st): State<ApiState>,
    ApiPath((tenant_id, user_id)): ApiPath<(TenantId, UserId)>,
    ApiJson(mut policy): ApiJson<UserPolicy>,
) -> Result<Json<UserPolicy>, ApiError> {
    policy.external_uri = policy.external_uri.map(|u| u.trim().to_string());
    if let Err(reason) = check(&policy) {
        return Err(ApiError::unprocessable(
            "invalid_policy",
            "invalid policy",
            vec![FieldIssue::new("external_uri", reason)],
        ));
    }
    st.store()
        .put_user_policy(tenant_id, user_id, &policy)
        .await?;
    st.notify.user_changed(tenant_id, user_id);
    Ok(Json(policy))
}

#[utoipa::path(get, path = "/tenants/{tenant_id}/policies", tag = "policies",
    params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = [UserPolicyView],
            description = "every user of the tenant, by extension"),
        (status = 404, body = ErrorBody)))]
pub async fn list_policies(
    State(st): State<ApiState>,
    ApiPath(tenant_id): ApiPath<TenantId>,
) -> Result<Json<Vec<UserPolicyView>>, ApiError> {
    st.store().get_tenant(tenant_id).await?;
    let all = st.store().list_user_policies(tenant_id).await?;
    Ok(Json(
        all.into_iter()
            .map(|(user_id, policy)| UserPolicyView::new(user_id, policy))
            .collect(),
    ))
}

fn check(p: &UserPolicy) -> Result<(), String> {
    match (p.mode, p.external_uri.as_deref()) {
        (PolicyMode::External, None | Some("")) => {
            Err("mode external needs the URI of the user's feature server".into())
        }
        (PolicyMode::External, Some(uri)) => sip_uri(uri),
        (_, Some(_)) => Err(format!(
            "only mode external takes a URI, not {}",
            p.mode.as_str()
        )),
        (_, None) => Ok(()),
    }
}

/// A `sip:` or `sips:` URI with a host, as the SIP layer will parse it when it
/// forwards a call there.
fn sip_uri(text: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("{text:?} {why}"));
    if text.len() > MAX_URI {
        return bad("is longer than 512 characters");
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("contains spaces or control characters");
    }
    let lower = text.to_ascii_lowercase();
    if !(lower.starts_with("sip:") || lower.starts_with("sips:")) {
        return bad("is not a sip: or sips: URI");
    }
    let uri = match Uri::try_from(text) {
        Ok(u) => u,
        Err(_) => return bad("is not a valid SIP URI"),
    };
    match uri.scheme {
        Some(Scheme::Sip | Scheme::Sips) => {}
        _ => return bad("is not a sip: or sips: URI"),
    }
    if uri.host_with_port.host.to_string().is_empty() {
        return bad("has no host");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(mode: PolicyMode, uri: Option<&str>) -> UserPolicy {
        UserPolicy {
            mode,
            external_uri: uri.map(str::to_string),
        }
    }

    #[test]
    fn external_needs_a_sip_uri_and_only_external_takes_one() {
        use PolicyMode::*;
        for ok in [
            policy(Accept, None),
            policy(Reject, None),
            policy(External, Some("sip:alice@127.0.0.1:5080")),
            policy(External, Some("sips:alice@home.example.net;transport=tcp")),
            policy(External, Some("sip:[::1]:5080")),
        ] {
            assert_eq!(check(&ok), Ok(()), "{ok:?}");
        }
        for bad in [
            policy(External, None),
            policy(External, Some("")),
            policy(External, Some("http://example.net")),
            policy(External, Some("tel:+41445550100")),
            policy(External, Some("sip:")),
            policy(External, Some("sip:alice@host with space")),
            policy(Accept, Some("sip:alice@127.0.0.1")),
            policy(Reject, Some("sip:alice@127.0.0.1")),
        ] {
            assert!(check(&bad).is_err(), "{bad:?}");
        }
        let long = format!("sip:{}@127.0.0.1", "a".repeat(600));
        assert!(check(&policy(External, Some(&long))).is_err());
    }
}
