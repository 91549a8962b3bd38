//! A user's call control: `/tenants/{tenant_id}/users/{user_id}/calls/...`. Click-to-dial,
//! hold, resume, release, blind and consultative transfer and answer on one device (a
//! SIP device or an external phone), always on behalf of
//! the user in the path (the portal calls these for the logged-in user). Tenants are
//! walls and so are calls: another tenant's call, or a call the user takes no part in,
//! is `404`.

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath};
use super::ApiState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use tsps_actors::call::{ControlAction, ControlError};
use tsps_actors::{CallId, DeviceId, TenantId, UserId};
use utoipa::ToSchema;

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let message = e.to_string();
        match e {
            ControlError::NotFound => ApiError::not_found(message),
            ControlError::WrongState(_) => {
                ApiError::new(StatusCode::CONFLICT, "wrong_state", message)
            }
            ControlError::Refused(_) => ApiError::new(StatusCode::CONFLICT, "refused", message),
            ControlError::UnknownDevice => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_device", message)
            }
            ControlError::BadTarget(_) | ControlError::TargetTooLong => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_target", message)
            }
            ControlError::NoTrunk => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "no_trunk", message)
            }
            ControlError::Media(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "media_unavailable",
                message,
            ),
        }
    }
}

/// Click-to-dial: which of the user's devices rings first, and whom it then calls.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceCallBody {
    /// A registered SIP device of the user, or one of the user's external phones (rung
    /// through the tenant's trunk).
    #[schema(value_type = uuid::Uuid)]
    pub device_id: DeviceId,
    /// An extension of the tenant or an outside number, as the user would dial it
    /// (at most 32 characters: `422 invalid_target` beyond).
    #[schema(example = "1002", max_length = 32)]
    pub destination: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlacedCall {
    #[schema(value_type = uuid::Uuid)]
    pub call_id: CallId,
}

/// Transfer: exactly one of `target` (blind) and `replaces_call` (consultative).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    /// Blind transfer: an extension or an outside number, routed like a forward (at
    /// most 32 characters).
    #[schema(example = "1003", max_length = 32)]
    pub target: Option<String>,
    /// Consultative transfer: the user's other answered call. Its other party is
    /// joined with this call's other party; the user's legs of both calls are released.
    #[schema(value_type = Option<uuid::Uuid>)]
    pub replaces_call: Option<CallId>,
}

/// Conference: the user's other answered call whose party joins this one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConferenceBody {
    /// The user's other answered call. Its other party joins this call; the user's own
    /// leg of it is released (that call ends).
    #[schema(value_type = uuid::Uuid)]
    pub with: CallId,
}

/// Answer on one device: keep ringing only it (a device with remote answer is also
/// told to answer by itself).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    /// A registered SIP device of the user, or one of the user's external phones.
    #[schema(value_type = uuid::Uuid)]
    pub device_id: DeviceId,
}

/// Where to send a call ringing to the user.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardBody {
    #[schema(value_type = super::profile_schema::TargetDoc)]
    pub target: tsps_actors::feature::Target,
}

type CallPath = ApiPath<(TenantId, UserId, CallId)>;

async fn run(
    st: &ApiState,
    (tenant, user, call): (TenantId, UserId, CallId),
    action: ControlAction,
) -> Result<StatusCode, ApiError> {
    st.live.control(tenant, user, call, action).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/tenants/{tenant_id}/users/{user_id}/calls", tag = "calls",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = PlaceCallBody,
    responses((status = 201, body = PlacedCall,
            description = "the device is being rung; the destination follows once it answers"),
        (status = 404, body = ErrorBody, description = "no such user in this tenant"),
        (status = 409, body = ErrorBody, description = "the device is not registered"),
        (status = 422, body = ErrorBody,
            description = "not a device of the user (invalid_device), no such extension or \
                number or longer than 32 characters (invalid_target), an outside number but \
                the tenant has no trunk (no_trunk)")))]
pub async fn place_call(
    State(st): State<ApiState>,
    ApiPath((tenant_id, user_id)): ApiPath<(TenantId, UserId)>,
    ApiJson(body): ApiJson<PlaceCallBody>,
) -> Result<(StatusCode, Json<PlacedCall>), ApiError> {
    let destination = body.destination.trim().to_string();
    let call_id = st
        .live
        .place_call(tenant_id, user_id, body.device_id, destination)
        .await?;
    Ok((StatusCode::CREATED, Json(PlacedCall { call_id })))
}

#[utoipa::path(post, path = "/tenants/{tenant_id}/users/{user_id}/calls/{call_id}/hold",
    tag = "calls",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path), ("call_id" = Uuid, Path)),
    responses((status = 204, description = "the other party accepted the hold"),
        (status = 404, body = ErrorBody, description = "no such call of this user"),
        (status = 409, body = ErrorBody,
            description = "not answered, already held, a re-INVITE in progress, or refused")))]
pub async fn hold(
    State(st): State<ApiState>,
    ApiPath(p): CallPath,
) -> Result<StatusCode, ApiError> {
    run(&st, p, ControlAction::Hold).await
}

#[utoipa::path(post, path = "/tenants/{tenant_id}/users/{user_id}/calls/{call_id}/resume",
    tag = "calls",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path), ("call_id" = Uuid, Path)),
    responses((status = 204, description = "the other party accepted the resume"),
        (status = 404, body = ErrorBody, description = "no such call of this user"),
        (status = 409, body = ErrorBody,
            description = "not held by the user, a re-INVITE in progress, or refused")))]
pub async fn resume(
    State(st): State<ApiState>,
    ApiPath(p): CallPath,
) -> Result<StatusCode, ApiError> {
    run(&st, p, ControlAction::Resume).await
}

#[utoipa::path(post, path = "/tenants/{tenant_id}/users/{user_id}/calls/{call_id}/release",
    tag = "calls",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path), ("call_id" = Uuid, Path)),
    responses((status = 204, description = "hung up (BYE), cancelled, or declined (603)"),
        (status = 404, body = ErrorBody, description = "no such call of this user")))]
pub async fn release(
    State(st): State<ApiState>,
    ApiPath(p): CallPath,
) -> Result<StatusCode, ApiError> {
    run(&st, p, ControlAction::Release).await
}

#[utoipa::path(post, path = "/tenants/{tenant_id}/users/{user_id}/calls/{call_id}/transfer",
    tag = "calls",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path), ("call_id" = Uuid, Path)),
    request_body = TransferBody,
    responses((status = 204,
            description = "blind: the user's leg is released and the target is being \
                dialled; consultative: the two other parties are joined and the user's \
                two legs released"),
        (status = 404, body = ErrorBody,
            description = "no such call of this user (either call, when consultative)"),
        (status = 409, body = ErrorBody,
            description = "a call is not answered, or a re-INVITE or transfer is in progress"),
        (status = 422, body = ErrorBody,
            description = "no such extension or number, longer than 32 characters, or not \
                exactly one of target and replaces_call (invalid_target); an outside number \
                but the tenant has no trunk (no_trunk)")))]
pub async fn transfer(
    State(st): State<ApiState>,
    ApiPath(p): CallPath,
    ApiJson(body): ApiJson<TransferBody>,
) -> Result<StatusCode, ApiError> {
    let target = body
        .target
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let action =
        match (target, body.replaces_call) {
            (Some(t), None) => ControlAction::Transfer {
                target: t.to_string(),
            },
            (None, Some(with)) => ControlAction::Join { with },
            _ => return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_target",
                "exactly one of target (an extension or a number) and replaces_call is required",
            )),
        };
    run(&st, p, action).await
}

#[utoipa::path(post, path = "/tenants/{tenant_id}/users/{user_id}/calls/{call_id}/conference",
    tag = "calls",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path), ("call_id" = Uuid, Path)),
    request_body = ConferenceBody,
    responses((status = 204,
            description = "the other call's party joined; every party is being re-INVITEd \
                to tsps's conference bridge (the first time: this call becomes the \
                conference and the user its host)"),
        (status = 404, body = ErrorBody,
            description = "no such call of this user (either call)"),
        (status = 409, body = ErrorBody,
            description = "a call is not answered, a re-INVITE or transfer is in progress, \
                the same call twice, `with` is a conference, or the user is not the host"),
        (status = 503, body = ErrorBody,
            description = "this node has no conference bridge (no free RTP port)")))]
pub async fn conference(
    State(st): State<ApiState>,
    ApiPath(p): CallPath,
    ApiJson(body): ApiJson<ConferenceBody>,
) -> Result<StatusCode, ApiError> {
    run(&st, p, ControlAction::Conference { with: body.with }).await
}

#[utoipa::path(post, path = "/tenants/{tenant_id}/users/{user_id}/calls/{call_id}/answer",
    tag = "calls",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path), ("call_id" = Uuid, Path)),
    request_body = AnswerBody,
    responses((status = 204,
            description = "only this device rings now (told to answer, with remote answer)"),
        (status = 404, body = ErrorBody, description = "no such call of this user"),
        (status = 409, body = ErrorBody, description = "the call is not ringing to the user"),
        (status = 422, body = ErrorBody, description = "the device is not registered")))]
pub async fn answer(
    State(st): State<ApiState>,
    ApiPath(p): CallPath,
    ApiJson(body): ApiJson<AnswerBody>,
) -> Result<StatusCode, ApiError> {
    run(&st, p, ControlAction::AnswerOn(body.device_id)).await
}

#[utoipa::path(post, path = "/tenants/{tenant_id}/users/{user_id}/calls/{call_id}/forward",
    tag = "calls",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path), ("call_id" = Uuid, Path)),
    request_body = ForwardBody,
    responses((status = 204, description = "the call rings at the target instead"),
        (status = 404, body = ErrorBody, description = "no such call of this user"),
        (status = 409, body = ErrorBody, description = "the call is not ringing to the user")))]
pub async fn forward(
    State(st): State<ApiState>,
    ApiPath(p): CallPath,
    ApiJson(body): ApiJson<ForwardBody>,
) -> Result<StatusCode, ApiError> {
    run(&st, p, ControlAction::Forward(body.target)).await
}

#[utoipa::path(post, path = "/tenants/{tenant_id}/users/{user_id}/calls/{call_id}/attendant",
    tag = "calls",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path), ("call_id" = Uuid, Path)),
    responses((status = 204, description = "the call rings at the user's attendant"),
        (status = 404, body = ErrorBody, description = "no such call of this user"),
        (status = 409, body = ErrorBody,
            description = "the call is not ringing to the user, or the user has no attendant")))]
pub async fn attendant(
    State(st): State<ApiState>,
    ApiPath(p): CallPath,
) -> Result<StatusCode, ApiError> {
    run(&st, p, ControlAction::Attendant).await
}
