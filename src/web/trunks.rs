//! `/tenants/{tenant_id}/trunks`: carrier interconnects. The outbound password is
//! kept (tsps is the digest client toward the carrier) but never returned.
//!
//! A trunk's inbound sources decide which tenant a call from an address belongs to, so
//! they are a platform resource: only the operator assigns them, never overlapping
//! another tenant's or covering where another tenant's phones registered from
//! (docs/security.md). A tenant admin manages the rest of its trunks.

use super::error::{ApiError, ErrorBody, FieldIssue};
use super::extract::{ApiJson, ApiPath};
use super::model_schema::TransportDoc;
use super::principal::Principal;
use super::{reloaded, rule_schemas, ApiState, Fields};
use crate::rules;
use crate::secret::Secret;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use tsps_actors::directory::SourceRange;
use tsps_actors::model::{TransportKind, Trunk};
use tsps_actors::{TenantId, TrunkId};
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct TrunkView {
    #[schema(value_type = Uuid)]
    pub id: TrunkId,
    pub name: String,
    pub peer_host: String,
    pub peer_port: u16,
    #[schema(value_type = TransportDoc)]
    pub transport: TransportKind,
    pub username: Option<String>,
    /// Whether an outbound password is stored (the password itself is never returned).
    pub has_password: bool,
    pub inbound_sources: Vec<String>,
}

impl From<Trunk> for TrunkView {
    fn from(t: Trunk) -> Self {
        Self {
            id: t.id,
            name: t.name,
            peer_host: t.peer_host,
            peer_port: t.peer_port,
            transport: t.transport,
            username: t.username,
            has_password: t.password.is_some(),
            inbound_sources: t.inbound_sources,
        }
    }
}

/// Body of POST and PUT. On PUT an omitted `password` keeps the stored one as long as
/// a `username` is given; omitting `username` removes both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrunkInput {
    /// 1 to 64 letters, digits, `-`, `_` or `.`; unique within the tenant.
    #[schema(example = "carrier", pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub name: String,
    #[schema(schema_with = rule_schemas::host)]
    pub peer_host: String,
    /// 5060 when omitted.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 65535)]
    pub peer_port: Option<u16>,
    /// `udp` when omitted.
    #[serde(default)]
    #[schema(value_type = Option<TransportDoc>)]
    pub transport: Option<TransportKind>,
    /// Outbound digest credentials: `username` and `password` come together (on PUT
    /// the stored password may stand in for an omitted one), neither empty.
    #[serde(default)]
    #[schema(min_length = 1)]
    pub username: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1)]
    pub password: Option<Secret>,
    #[serde(default)]
    #[schema(schema_with = rule_schemas::sources)]
    pub inbound_sources: Option<Vec<String>>,
}

impl TrunkInput {
    fn into_trunk(
        self,
        tenant_id: TenantId,
        id: TrunkId,
        stored_password: Option<Secret>,
        stored_sources: Vec<String>,
    ) -> Result<Trunk, ApiError> {
        // The model keeps the value: the SIP side answers the carrier's challenges with it.
        let given = self.password;
        let password = match &self.username {
            Some(_) => given.or(stored_password),
            None => given,
        };
        let mut f = Fields::default();
        let credentials = f.check(
            "username",
            rules::credentials(
                self.username.as_deref(),
                password.as_ref().map(|p| p.expose()),
            ),
        );
        // Omitted: the stored ones as they are (checked when they were written).
        let inbound_sources = match self.inbound_sources {
            None => Some(stored_sources),
            Some(list) => {
                let checked: Vec<_> = list
                    .iter()
                    .enumerate()
                    .map(|(i, s)| f.check(&format!("inbound_sources[{i}]"), rules::source(s)))
                    .collect();
                checked.into_iter().collect()
            }
        };
        let name = f.check("name", rules::trunk_name(&self.name));
        let peer_host = f.check("peer_host", rules::host(&self.peer_host));
        let peer_port = f.check("peer_port", rules::port(self.peer_port.unwrap_or(5060)));
        let (Some(()), Some(inbound_sources), Some(name), Some(peer_host), Some(peer_port)) =
            (credentials, inbound_sources, name, peer_host, peer_port)
        else {
            return Err(f.error());
        };
        Ok(Trunk {
            id,
            tenant_id,
            name,
            peer_host,
            peer_port,
            transport: self.transport.unwrap_or(TransportKind::Udp),
            username: self.username,
            password,
            inbound_sources,
        })
    }
}

#[utoipa::path(get, path = "/tenants/{tenant_id}/trunks", tag = "trunks",
    params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = [TrunkView]), (status = 404, body = ErrorBody)))]
pub async fn list_trunks(
    State(st): State<ApiState>,
    ApiPath(tenant_id): ApiPath<TenantId>,
) -> Result<Json<Vec<TrunkView>>, ApiError> {
    st.store().get_tenant(tenant_id).await?;
    let trunks = st.store().list_trunks(tenant_id).await?;
    Ok(Json(trunks.into_iter().map(TrunkView::from).collect()))
}

/// Only the operator sets inbound sources: anyone else may send the stored ones back
/// unchanged (or leave them out), nothing more.
fn may_set_sources(
    principal: &Principal,
    input: &TrunkInput,
    stored: &[String],
) -> Result<(), ApiError> {
    let Some(given) = &input.inbound_sources else {
        return Ok(());
    };
    let parsed = |list: &[String]| -> Option<Vec<SourceRange>> {
        list.iter().map(|s| s.parse().ok()).collect()
    };
    let unchanged = parsed(given).is_some_and(|g| Some(g) == parsed(stored));
    if unchanged || matches!(principal, Principal::Operator) {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "inbound_sources are assigned by the platform operator: ask them to change the \
         addresses your carrier sends calls from",
    ))
}

/// Refuses new inbound sources that another tenant's trunks or phones hold (409).
async fn check_sources(
    st: &ApiState,
    tenant_id: TenantId,
    trunk: &Trunk,
    stored: &[String],
) -> Result<(), ApiError> {
    if trunk.inbound_sources == stored {
        return Ok(());
    }
    let conflicts =
        crate::provision::source_conflicts(&**st.store(), tenant_id, &trunk.inbound_sources)
            .await?;
    if conflicts.is_empty() {
        return Ok(());
    }
    let details: Vec<FieldIssue> = conflicts
        .iter()
        .map(|(i, c)| FieldIssue::new(format!("inbound_sources[{i}]"), c.to_string()))
        .collect();
    let message = match details.as_slice() {
        [one] => format!("{}: {}", one.field, one.reason),
        many => format!(
            "inbound sources are taken ({} problems, see details)",
            many.len()
        ),
    };
    let mut e = ApiError::new(StatusCode::CONFLICT, "conflict", message);
    e.details = details;
    Err(e)
}

#[utoipa::path(post, path = "/tenants/{tenant_id}/trunks", tag = "trunks",
    params(("tenant_id" = Uuid, Path)), request_body = TrunkInput,
    responses((status = 201, body = TrunkView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn create_trunk(
    State(st): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiPath(tenant_id): ApiPath<TenantId>,
    ApiJson(input): ApiJson<TrunkInput>,
) -> Result<(StatusCode, Json<TrunkView>), ApiError> {
    may_set_sources(&principal, &input, &[])?;
    let trunk = input.into_trunk(tenant_id, TrunkId::new(), None, Vec::new())?;
    check_sources(&st, tenant_id, &trunk, &[]).await?;
    st.store().create_trunk(tenant_id, &trunk).await?;
    reloaded(&st).await?;
    Ok((StatusCode::CREATED, Json(trunk.into())))
}

#[utoipa::path(get, path = "/tenants/{tenant_id}/trunks/{trunk_id}", tag = "trunks",
    params(("tenant_id" = Uuid, Path), ("trunk_id" = Uuid, Path)),
    responses((status = 200, body = TrunkView), (status = 404, body = ErrorBody)))]
pub async fn get_trunk(
    State(st): State<ApiState>,
    ApiPath((tenant_id, trunk_id)): ApiPath<(TenantId, TrunkId)>,
) -> Result<Json<TrunkView>, ApiError> {
    Ok(Json(
        st.store().get_trunk(tenant_id, trunk_id).await?.into(),
    ))
}

#[utoipa::path(put, path = "/tenants/{tenant_id}/trunks/{trunk_id}", tag = "trunks",
    params(("tenant_id" = Uuid, Path), ("trunk_id" = Uuid, Path)), request_body = TrunkInput,
    responses((status = 200, body = TrunkView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn update_trunk(
    State(st): State<ApiState>,
    Extension(principal): Extension<Principal>,
    ApiPath((tenant_id, trunk_id)): ApiPath<(TenantId, TrunkId)>,
    ApiJson(input): ApiJson<TrunkInput>,
) -> Result<Json<TrunkView>, ApiError> {
    let stored = st.store().get_trunk(tenant_id, trunk_id).await?;
    may_set_sources(&principal, &input, &stored.inbound_sources)?;
    let trunk = input.into_trunk(
        tenant_id,
        trunk_id,
        stored.password,
        stored.inbound_sources.clone(),
    )?;
    check_sources(&st, tenant_id, &trunk, &stored.inbound_sources).await?;
    st.store().update_trunk(tenant_id, &trunk).await?;
    reloaded(&st).await?;
    Ok(Json(trunk.into()))
}

#[utoipa::path(delete, path = "/tenants/{tenant_id}/trunks/{trunk_id}", tag = "trunks",
    params(("tenant_id" = Uuid, Path), ("trunk_id" = Uuid, Path)),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody)))]
pub async fn delete_trunk(
    State(st): State<ApiState>,
    ApiPath((tenant_id, trunk_id)): ApiPath<(TenantId, TrunkId)>,
) -> Result<StatusCode, ApiError> {
    st.store().delete_trunk(tenant_id, trunk_id).await?;
    reloaded(&st).await?;
    Ok(StatusCode::NO_CONTENT)
}
