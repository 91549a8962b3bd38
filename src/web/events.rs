//! A user's live events: the same messages over a WebSocket (browsers) or
//! Server-Sent Events (simple integrations). See `docs/events.md`.
//!
//! A stream lasts as long as the credential that opened it: when the token is revoked
//! or the session ends (`web::revalidate`), a WebSocket gets a Close frame with
//! [`CLOSE_REVOKED`] and an SSE response ends.

use super::auth::Auth;
use super::error::{ApiError, ErrorBody, FieldIssue};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::principal::{Credential, Principal};
use super::revalidate;
use super::ApiState;
use crate::push::{Resume, Session, WatchError};
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tsps_actors::{TenantId, UserId};
use utoipa::{IntoParams, ToSchema};

/// A socket that accepts nothing for this long is closed (the client reconnects).
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Pings keep idle connections alive through proxies and reveal dead ones.
const PING_EVERY: Duration = Duration::from_secs(30);
/// What a client may send in one message (it has nothing to say but pings).
const READ_BUFFER: usize = 4096;
/// The WebSocket close code when the stream's credential is revoked or has ended: in
/// the application range (4000-4999, RFC 6455 §7.4.2), 4000 + HTTP 401, since a new
/// connection with the same credential gets 401. The client must log in again (or get
/// a new token) rather than reconnect.
pub const CLOSE_REVOKED: u16 = 4401;
const CLOSE_REVOKED_REASON: &str = "credentials revoked";

/// What authenticated a stream's request (the extensions `web::auth` leaves), to ask
/// again while the stream is open.
pub struct Opener {
    auth: Arc<Auth>,
    credential: Credential,
    principal: Principal,
}

impl<S: Send + Sync> FromRequestParts<S> for Opener {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let ext = &parts.extensions;
        match (
            ext.get::<Arc<Auth>>(),
            ext.get::<Credential>(),
            ext.get::<Principal>(),
        ) {
            (Some(auth), Some(credential), Some(principal)) => Ok(Opener {
                auth: auth.clone(),
                credential: credential.clone(),
                principal: principal.clone(),
            }),
            // Only a route outside `auth::authorize` would get here: refuse rather
            // than stream unchecked.
            _ => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )),
        }
    }
}

impl Opener {
    /// Resolves when the credential no longer opens the stream of `user` of `tenant`.
    /// Listens for changes from now on, not from the stream's first poll.
    fn revoked(self, tenant: TenantId, user: UserId) -> impl Future<Output = ()> + Send {
        let Opener {
            auth,
            credential,
            principal,
        } = self;
        // None for the configured operator token: nothing to re-check.
        let changes = (credential != Credential::Standing).then(|| auth.changes());
        async move {
            let Some(changes) = changes else {
                return std::future::pending().await;
            };
            revalidate::until_revoked(
                changes,
                |c| c.concerns(&credential, &principal),
                revalidate::first_check_after(),
                || auth.still_allows(&credential, tenant, user),
            )
            .await;
            tracing::info!(%tenant, %user, "event stream closed: its credentials were revoked or ended");
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The `resume` token of the last message the client saw (`epoch:seq`, hexadecimal
    /// and decimal): what was missed is replayed, or a snapshot is sent when that is
    /// too old.
    #[param(pattern = r"^(?:\+?[0-9A-Fa-f]{1,16}:\+?[0-9]{1,19})?$")]
    pub since: Option<String>,
}

fn resume(raw: Option<&str>) -> Result<Option<Resume>, ApiError> {
    match raw {
        None | Some("") => Ok(None),
        Some(s) => Resume::parse(s)
            .map(Some)
            .ok_or_else(|| ApiError::invalid("since", "not a resume token (epoch:seq)")),
    }
}

async fn open(
    st: &ApiState,
    tenant: TenantId,
    user: UserId,
    since: Option<Resume>,
) -> Result<Session, ApiError> {
    st.push
        .open(tenant, user, since)
        .await
        .ok_or_else(|| ApiError::not_found("no such user in this tenant"))
}

/// The user's events over a WebSocket: JSON text messages, one event each.
#[utoipa::path(get, path = "/tenants/{tenant_id}/users/{user_id}/events/ws", tag = "events",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path), EventsQuery),
    responses((status = 101, description = "switching to the WebSocket protocol"),
        (status = 400, body = ErrorBody, description = "not a WebSocket request, or a bad `since`"),
        (status = 404, body = ErrorBody)))]
pub async fn events_ws(
    State(st): State<ApiState>,
    opener: Opener,
    ApiPath((tenant, user)): ApiPath<(TenantId, UserId)>,
    ApiQuery(q): ApiQuery<EventsQuery>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // Listen for revocations before anything can reach the client: a logout right
    // after the browser saw the stream open must close it.
    let revoked = opener.revoked(tenant, user);
    let since = resume(q.since.as_deref())?;
    let session = open(&st, tenant, user, since).await?;
    let ws = ws.map_err(|r| ApiError::new(r.status(), "not_websocket", r.body_text()))?;
    Ok(ws
        // The library's defaults (a 128 KiB read buffer per socket) would cost far
        // more than a session needs: clients send nothing but control frames.
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(READ_BUFFER)
        .on_upgrade(move |socket| pump(socket, session, revoked)))
}

async fn pump(mut socket: WebSocket, mut session: Session, revoked: impl Future<Output = ()>) {
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    tokio::pin!(revoked);
    loop {
        tokio::select! {
            _ = &mut revoked => {
                let close = Message::Close(Some(CloseFrame {
                    code: CLOSE_REVOKED,
                    reason: CLOSE_REVOKED_REASON.into(),
                }));
                // Best effort: the socket is dropped right after either way.
                let _ = tokio::time::timeout(SEND_TIMEOUT, socket.send(close)).await;
                break;
            }
            msg = session.next() => {
                let Some(msg) = msg else { break };
                let send = socket.send(Message::Text(msg.json.as_ref().into()));
                match tokio::time::timeout(SEND_TIMEOUT, send).await {
                    Ok(Ok(())) => {}
                    _ => break,
                }
            }
            incoming = socket.recv() => match incoming {
                // Clients send nothing we act on; pings are answered by the library.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                let send = socket.send(Message::Ping(Default::default()));
                if tokio::time::timeout(SEND_TIMEOUT, send).await.map_or(true, |r| r.is_err()) {
                    break;
                }
            }
        }
    }
}

/// The user's events as Server-Sent Events: each event's `id` is its resume token
/// (browsers send it back as `Last-Event-ID` when they reconnect), `data` the JSON.
#[utoipa::path(get, path = "/tenants/{tenant_id}/users/{user_id}/events/sse", tag = "events",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path), EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "resume token, as `since`",
            nullable = false, pattern = r"^(?:\+?[0-9A-Fa-f]{1,16}:\+?[0-9]{1,19})?$")),
    responses((status = 200, content_type = "text/event-stream", description = "the event stream"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn events_sse(
    State(st): State<ApiState>,
    opener: Opener,
    ApiPath((tenant, user)): ApiPath<(TenantId, UserId)>,
    ApiQuery(q): ApiQuery<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // Not text at all is no resume token either (rather than no header); an empty one
    // is none (and leaves `since` to say).
    let last = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::invalid("Last-Event-ID", "not a resume token (epoch:seq)"))
        })
        .transpose()?
        .filter(|s| !s.is_empty());
    // Listening from before the first byte (see events_ws).
    let revoked = opener.revoked(tenant, user);
    let since = resume(last.as_deref().or(q.since.as_deref()))?;
    let session = open(&st, tenant, user, since).await?;
    let stream = futures::stream::unfold(session, |mut s| async move {
        let msg = s.next().await?;
        let ev = SseEvent::default()
            .id(s.resume_token(msg.seq))
            .data(msg.json.as_ref());
        Some((Ok::<_, std::convert::Infallible>(ev), s))
    });
    // Ended with its credential: the client's reconnect then gets 401.
    let stream = stream.take_until(Box::pin(revoked));
    let mut resp = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(PING_EVERY))
        .into_response();
    // Proxies must not buffer the stream.
    resp.headers_mut()
        .insert("x-accel-buffering", "no".parse().expect("static header"));
    *resp.status_mut() = StatusCode::OK;
    Ok(resp)
}

/// Whom the user watches: colleagues' status (and, for those whose attendant the user
/// is, their incoming calls) then reach the user's event stream.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WatchBody {
    /// Users of the same tenant (at most 500); an empty list watches nobody.
    #[schema(value_type = Vec<uuid::Uuid>, max_items = 500)]
    pub users: Vec<UserId>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WatchedList {
    /// Each watched user's status now; `lines` only where the user is their attendant.
    #[schema(value_type = Vec<Object>)]
    pub watched: Vec<crate::push::WatchedView>,
}

/// Sets whom the user watches (replacing the previous list). Changes then arrive on the
/// user's event stream as `presence` (and `watched_line`) messages: see docs/events.md.
#[utoipa::path(put, path = "/tenants/{tenant_id}/users/{user_id}/watch", tag = "events",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = WatchBody,
    responses((status = 200, body = WatchedList),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "a user not of this tenant, or too many")))]
pub async fn put_watch(
    State(st): State<ApiState>,
    ApiPath((tenant, user)): ApiPath<(TenantId, UserId)>,
    ApiJson(body): ApiJson<WatchBody>,
) -> Result<Json<WatchedList>, ApiError> {
    match st.push.watch(tenant, user, body.users).await {
        Ok(watched) => Ok(Json(WatchedList { watched })),
        Err(WatchError::NoSuchWatcher) => Err(ApiError::not_found("no such user in this tenant")),
        Err(WatchError::UnknownUser(i)) => Err(ApiError::unprocessable(
            "invalid_watch",
            "invalid watch list",
            vec![FieldIssue::new(
                format!("users[{i}]"),
                "no such user in this tenant",
            )],
        )),
        Err(WatchError::TooMany) => Err(ApiError::unprocessable(
            "invalid_watch",
            "invalid watch list",
            vec![FieldIssue::new(
                "users",
                format!("at most {} users", crate::push::MAX_WATCHED),
            )],
        )),
    }
}
