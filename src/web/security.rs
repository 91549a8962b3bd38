//! `/security/blocks`: the brute-force guard's blocks on this node (docs/security.md),
//! for the platform operator to see and lift. Blocks are per node: in a cluster, ask
//! each node.

use super::error::{ApiError, ErrorBody};
use super::extract::ApiPath;
use super::{rule_schemas, ApiState};
use crate::sip::auth::guard::{Account, Blocked};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use std::net::IpAddr;
use tsps_actors::TenantId;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct BlockList {
    /// Addresses whose requests with credentials get no answer.
    pub sources: Vec<SourceBlock>,
    /// Accounts refusing credentials from every address they did not authenticate from
    /// recently.
    pub accounts: Vec<AccountBlock>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SourceBlock {
    #[schema(value_type = String, example = "192.0.2.7")]
    pub source: IpAddr,
    pub until: DateTime<Utc>,
    /// Blocks in a row: each lasts twice as long as the one before.
    pub strikes: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountBlock {
    #[schema(value_type = Uuid)]
    pub tenant_id: TenantId,
    /// The SIP user name (a device's authentication name).
    pub username: String,
    pub until: DateTime<Utc>,
    pub strikes: u32,
}

fn now_ms() -> u64 {
    Utc::now().timestamp_millis().max(0) as u64
}

fn time(ms: u64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms as i64)
        .single()
        .unwrap_or_default()
}

#[utoipa::path(get, path = "/security/blocks", tag = "security",
    responses((status = 200, body = BlockList), (status = 403, body = ErrorBody)))]
pub async fn list_blocks(State(st): State<ApiState>) -> Json<BlockList> {
    let mut list = BlockList {
        sources: Vec::new(),
        accounts: Vec::new(),
    };
    for b in st.guard.blocks(now_ms()) {
        match b {
            Blocked::Source {
                source,
                until_ms,
                strikes,
            } => list.sources.push(SourceBlock {
                source,
                until: time(until_ms),
                strikes,
            }),
            Blocked::Account {
                account,
                until_ms,
                strikes,
            } => list.accounts.push(AccountBlock {
                tenant_id: account.tenant,
                username: account.username,
                until: time(until_ms),
                strikes,
            }),
        }
    }
    list.sources.sort_by_key(|b| b.source);
    list.accounts
        .sort_by(|a, b| (a.tenant_id, &a.username).cmp(&(b.tenant_id, &b.username)));
    Json(list)
}

#[utoipa::path(delete, path = "/security/blocks/sources/{source}", tag = "security",
    params(("source" = inline(rule_schemas::IpAddress), Path, example = "192.0.2.7")),
    responses((status = 204, description = "the block is lifted and the failures forgotten"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn unblock_source(
    State(st): State<ApiState>,
    ApiPath(source): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let ip: IpAddr = source
        .parse()
        .map_err(|_| ApiError::invalid("source", format!("{source:?} is not an ip address")))?;
    if st.guard.unblock_source(ip) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "no failed authentications are counted for {ip}"
        )))
    }
}

#[utoipa::path(delete, path = "/security/blocks/accounts/{tenant_id}/{username}", tag = "security",
    params(("tenant_id" = Uuid, Path), ("username" = String, Path)),
    responses((status = 204, description = "the block is lifted and the failures forgotten"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn unblock_account(
    State(st): State<ApiState>,
    ApiPath((tenant_id, username)): ApiPath<(TenantId, String)>,
) -> Result<StatusCode, ApiError> {
    let account = Account {
        tenant: tenant_id,
        username,
    };
    if st.guard.unblock_account(&account) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "no failed authentications are counted for {} of tenant {}",
            account.username, account.tenant
        )))
    }
}
