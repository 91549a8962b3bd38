//! Live calls: list a tenant's calls in progress and override a ringing call (answer
//! on one device, forward, reject, send to the attendant); the [`LiveCalls`] port also
//! carries a user's call control (see `control.rs`). Also the test clock, which exists
//! only when `testing.clock_api` is enabled.

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath};
use super::profile_schema::TargetDoc;
use super::ApiState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tsps_actors::call::{ControlAction, ControlError, OverrideAction};
use tsps_actors::feature::Target;
use tsps_actors::ports::BoxFuture;
use tsps_actors::{CallId, DeviceId, TenantId, UserId};
use utoipa::ToSchema;

/// What the API may do with live calls (the running platform; a stand-in in tests).
pub trait LiveCalls: Send + Sync + 'static {
    fn list(&self, tenant: TenantId) -> Vec<LiveCall>;
    fn override_call(
        &self,
        tenant: TenantId,
        call: CallId,
        action: OverrideAction,
    ) -> BoxFuture<Result<(), LiveCallError>>;
    /// Moves the platform's wall clock; false when the test clock is not enabled.
    fn set_clock(&self, now: DateTime<Utc>) -> bool;
    /// Click-to-dial: `user` of `tenant` calls `destination` from `device`.
    fn place_call(
        &self,
        _tenant: TenantId,
        _user: UserId,
        _device: DeviceId,
        _destination: String,
    ) -> BoxFuture<Result<CallId, ControlError>> {
        Box::pin(async { Err(ControlError::NotFound) })
    }
    /// Sends an instant message between two users (composed and checked by the
    /// caller): on the bus, for the streams and the recipient's phones. False when no
    /// platform runs to deliver it.
    fn send_message(&self, _msg: tsps_actors::presence::message::MessageEvent) -> bool {
        false
    }
    /// A call-control command of `user` on one of their live calls.
    fn control(
        &self,
        _tenant: TenantId,
        _user: UserId,
        _call: CallId,
        _action: ControlAction,
    ) -> BoxFuture<Result<(), ControlError>> {
        Box::pin(async { Err(ControlError::NotFound) })
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LiveCallError {
    #[error("no such live call")]
    NotFound,
    #[error("the call is no longer ringing")]
    NotRinging,
    #[error("that device has no registration for this call")]
    UnknownDevice,
    #[error("the user has no attendant")]
    NoAttendant,
}

impl From<LiveCallError> for ApiError {
    fn from(e: LiveCallError) -> Self {
        match e {
            LiveCallError::NotFound => ApiError::not_found(e.to_string()),
            LiveCallError::NotRinging => {
                ApiError::new(StatusCode::CONFLICT, "not_ringing", e.to_string())
            }
            LiveCallError::UnknownDevice | LiveCallError::NoAttendant => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_override",
                e.to_string(),
            ),
        }
    }
}

/// A stand-in with no calls and no clock.
pub struct NoLiveCalls;

impl LiveCalls for NoLiveCalls {
    fn list(&self, _: TenantId) -> Vec<LiveCall> {
        Vec::new()
    }
    fn override_call(
        &self,
        _: TenantId,
        _: CallId,
        _: OverrideAction,
    ) -> BoxFuture<Result<(), LiveCallError>> {
        Box::pin(async { Err(LiveCallError::NotFound) })
    }
    fn set_clock(&self, _: DateTime<Utc>) -> bool {
        false
    }
}

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct LiveCall {
    #[schema(value_type = uuid::Uuid)]
    pub id: CallId,
    pub caller: String,
    pub dialled: String,
    pub started_at: DateTime<Utc>,
}

/// What to do with a ringing call.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum OverrideBody {
    /// Ring only this device (it is rung if it was not ringing).
    AnswerOn {
        #[schema(value_type = uuid::Uuid)]
        device_id: DeviceId,
    },
    Forward {
        #[schema(value_type = TargetDoc)]
        target: Target,
    },
    Reject,
    Attendant,
}

#[utoipa::path(get, path = "/tenants/{tenant_id}/calls/live", tag = "calls",
    params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = [LiveCall])))]
pub async fn list_live(
    State(st): State<ApiState>,
    ApiPath(tenant_id): ApiPath<TenantId>,
) -> Json<Vec<LiveCall>> {
    Json(st.live.list(tenant_id))
}

#[utoipa::path(post, path = "/tenants/{tenant_id}/calls/{call_id}/override", tag = "calls",
    params(("tenant_id" = Uuid, Path), ("call_id" = Uuid, Path)), request_body = OverrideBody,
    responses((status = 204, description = "applied"),
        (status = 404, body = ErrorBody, description = "no such live call in this tenant"),
        (status = 409, body = ErrorBody, description = "the call is no longer ringing"),
        (status = 422, body = ErrorBody, description = "unknown device or no attendant")))]
pub async fn override_call(
    State(st): State<ApiState>,
    ApiPath((tenant_id, call_id)): ApiPath<(TenantId, CallId)>,
    ApiJson(body): ApiJson<OverrideBody>,
) -> Result<StatusCode, ApiError> {
    let action = match body {
        OverrideBody::AnswerOn { device_id } => OverrideAction::AnswerOn(device_id),
        OverrideBody::Forward { target } => OverrideAction::Forward(target),
        OverrideBody::Reject => OverrideAction::Reject,
        OverrideBody::Attendant => OverrideAction::Attendant,
    };
    st.live.override_call(tenant_id, call_id, action).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClockBody {
    pub now: DateTime<Utc>,
}

/// Sets the platform's wall clock (schedules, registration expiry). Only when
/// `testing.clock_api = true`: for end-to-end tests of time-of-day rules.
#[utoipa::path(put, path = "/testing/clock", tag = "testing", request_body = ClockBody,
    responses((status = 204, description = "set"),
        (status = 404, body = ErrorBody, description = "the test clock is not enabled")))]
pub async fn set_clock(
    State(st): State<ApiState>,
    ApiJson(body): ApiJson<ClockBody>,
) -> Result<StatusCode, ApiError> {
    if st.live.set_clock(body.now) {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(
            "the test clock is not enabled (testing.clock_api)",
        ))
    }
}
