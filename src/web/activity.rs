//! Read-only views of what happened and what is live: call detail records
//! (`/calls`) and registrations (`/registrations`) of one tenant, and one user's call
//! history (`/users/{user_id}/calls/history`), which the portal shows to the user.

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiPath, ApiQuery};
use super::model_schema::{CallDirectionDoc, CallOutcomeDoc, PartyDoc};
use super::{rule_schemas, ApiState};
use crate::store::{CallHistoryQuery, CallSide};
use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tsps_actors::model::{Binding, CallDirection, CallOutcome, CallRecord, LegRecord, Party};
use tsps_actors::{CallId, DeviceId, LegId, TenantId, UserId};
use utoipa::{IntoParams, ToSchema};

const DEFAULT_CALLS: u32 = 50;
const MAX_CALLS: u32 = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallsQuery {
    /// How many records, newest first: 1 to 1000, default 50.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// Longest search text of the history.
const MAX_SEARCH: usize = 64;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// How many records, newest first: 1 to 1000, default 50.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Only calls that started before this instant (RFC 3339): pass the `started_at`
    /// of the last call of a page to get the next page.
    pub before: Option<DateTime<Utc>>,
    #[param(schema_with = rule_schemas::history_search)]
    pub q: Option<String>,
    /// `outgoing` (the user called) or `incoming` (the user was called).
    #[param(inline)]
    pub direction: Option<CallSide>,
    /// One outcome.
    #[param(value_type = Option<CallOutcomeDoc>, inline)]
    pub outcome: Option<CallOutcome>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallView {
    #[schema(value_type = Uuid)]
    pub id: CallId,
    #[schema(value_type = CallDirectionDoc)]
    pub direction: CallDirection,
    pub caller: String,
    pub callee: String,
    #[schema(value_type = Option<Uuid>)]
    pub caller_user_id: Option<UserId>,
    #[schema(value_type = Option<Uuid>)]
    pub callee_user_id: Option<UserId>,
    pub started_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: DateTime<Utc>,
    #[schema(value_type = CallOutcomeDoc)]
    pub outcome: CallOutcome,
    #[schema(value_type = Option<PartyDoc>)]
    pub hangup_by: Option<Party>,
    /// Why the call was routed as it was: the feature server's reasons, in order.
    pub decision: Vec<String>,
    pub legs: Vec<LegView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LegView {
    #[schema(value_type = Uuid)]
    pub id: LegId,
    #[schema(value_type = PartyDoc)]
    pub role: Party,
    pub target: String,
    pub started_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub status_code: Option<u16>,
    /// The user whose phone the leg rang (or who called from it).
    #[schema(value_type = Option<Uuid>)]
    pub user_id: Option<UserId>,
}

impl From<LegRecord> for LegView {
    fn from(l: LegRecord) -> Self {
        Self {
            id: l.id,
            role: l.role,
            target: l.target,
            started_at: l.started_at,
            answered_at: l.answered_at,
            ended_at: l.ended_at,
            status_code: l.status_code,
            user_id: l.user_id,
        }
    }
}

impl From<CallRecord> for CallView {
    fn from(c: CallRecord) -> Self {
        Self {
            id: c.id,
            direction: c.direction,
            caller: c.caller,
            callee: c.callee,
            caller_user_id: c.caller_user_id,
            callee_user_id: c.callee_user_id,
            started_at: c.started_at,
            answered_at: c.answered_at,
            ended_at: c.ended_at,
            outcome: c.outcome,
            hangup_by: c.hangup_by,
            decision: c.decision,
            legs: c.legs.into_iter().map(LegView::from).collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegistrationView {
    #[schema(value_type = Uuid)]
    pub user_id: UserId,
    #[schema(value_type = Uuid)]
    pub device_id: DeviceId,
    /// The Contact as registered.
    pub contact: String,
    /// Where requests for it are sent, e.g. `udp:127.0.0.1:5062`.
    pub received: String,
    pub expires_at: DateTime<Utc>,
}

impl From<Binding> for RegistrationView {
    fn from(b: Binding) -> Self {
        Self {
            user_id: b.user_id,
            device_id: b.device_id,
            contact: b.contact,
            received: b.received,
            expires_at: b.expires_at,
        }
    }
}

#[utoipa::path(get, path = "/tenants/{tenant_id}/calls", tag = "calls",
    params(("tenant_id" = Uuid, Path), CallsQuery),
    responses((status = 200, body = [CallView], description = "newest first"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_calls(
    State(st): State<ApiState>,
    ApiPath(tenant_id): ApiPath<TenantId>,
    ApiQuery(query): ApiQuery<CallsQuery>,
) -> Result<Json<Vec<CallView>>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_CALLS);
    if !(1..=MAX_CALLS).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be 1 to {MAX_CALLS}"),
        ));
    }
    st.store().get_tenant(tenant_id).await?;
    let calls = st.store().list_call_records(tenant_id, limit).await?;
    Ok(Json(calls.into_iter().map(CallView::from).collect()))
}

/// One user's calls, as caller or callee, newest first, with the decision reasons.
#[utoipa::path(get, path = "/tenants/{tenant_id}/users/{user_id}/calls/history", tag = "calls",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path), HistoryQuery),
    responses((status = 200, body = [CallView], description = "newest first"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn user_history(
    State(st): State<ApiState>,
    ApiPath((tenant_id, user_id)): ApiPath<(TenantId, UserId)>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<Vec<CallView>>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_CALLS);
    if !(1..=MAX_CALLS).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be 1 to {MAX_CALLS}"),
        ));
    }
    let search = query
        .q
        .map(|q| q.trim().to_string())
        .filter(|q| !q.is_empty());
    if search
        .as_ref()
        .is_some_and(|q| q.chars().count() > MAX_SEARCH)
    {
        return Err(ApiError::invalid(
            "q",
            format!("must be at most {MAX_SEARCH} characters"),
        ));
    }
    st.store().get_user(tenant_id, user_id).await?;
    let calls = st
        .store()
        .list_user_call_records(
            tenant_id,
            user_id,
            &CallHistoryQuery {
                limit,
                before: query.before,
                search,
                side: query.direction,
                outcome: query.outcome,
            },
        )
        .await?;
    Ok(Json(calls.into_iter().map(CallView::from).collect()))
}

#[utoipa::path(get, path = "/tenants/{tenant_id}/registrations", tag = "calls",
    params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = [RegistrationView], description = "unexpired bindings"),
        (status = 404, body = ErrorBody)))]
pub async fn list_registrations(
    State(st): State<ApiState>,
    ApiPath(tenant_id): ApiPath<TenantId>,
) -> Result<Json<Vec<RegistrationView>>, ApiError> {
    st.store().get_tenant(tenant_id).await?;
    let bindings = st.store().list_bindings(tenant_id, st.clock.now()).await?;
    Ok(Json(
        bindings.into_iter().map(RegistrationView::from).collect(),
    ))
}
