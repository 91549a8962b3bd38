//! Who is asking, and may they: the one authorization point of the API.
//!
//! [`authorize`] runs on every matched route. It finds the credentials (the operator's
//! bearer token, an integration's API token, or a portal session cookie of a user or
//! of a platform operator), checks CSRF for cookie requests, asks the path policy
//! ([`decide`], `web::access`) by method and path, and hands the [`Principal`] to the
//! handlers as a request extension.
//!
//! Without `http.api_token` (a local trial) a request without credentials is the
//! operator, as before; a request with a session cookie is that session's user.
//!
//! The [`Credential`] that opened a request goes with it too: an event stream asks
//! [`Auth::still_allows`] again while it is open (`web::revalidate`), prompted by the
//! [`CredentialsChanged`] signals that revoking a token, logging out and removing
//! users send through [`Auth`].

use super::access::{decide, is_read, Access, API};
use super::error::{internal, ApiError};
use super::principal::{ClientIp, Credential, Principal};
use super::revalidate::{CredentialsChanged, CHANGES_BUFFER};
use super::session::{self, LoginLimits, Sessions};
use super::token_secret;
use crate::config::{HttpConfig, Secret};
use crate::store::{ApiTokenId, DynStore, StoreError};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::sync::broadcast;
use tsps_actors::ports::Clock;
use tsps_actors::{TenantId, UserId};

/// The header a cookie-authenticated write must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The `http` settings of sessions and cookies.
#[derive(Clone, Debug)]
pub struct AuthSettings {
    /// Mark the cookie `Secure` (only sent over HTTPS).
    pub secure_cookies: bool,
    pub session_idle: Duration,
    pub session_lifetime: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self::from_config(&HttpConfig::default())
    }
}

impl AuthSettings {
    pub fn from_config(http: &HttpConfig) -> Self {
        Self {
            secure_cookies: http.secure_cookies,
            session_idle: Duration::from_secs(http.session_idle_secs),
            session_lifetime: Duration::from_secs(http.session_lifetime_secs),
        }
    }
}

/// What [`authorize`] and the login handlers share.
pub struct Auth {
    api_token: Option<Secret>,
    store: DynStore,
    /// What sessions and API tokens expire by (the platform's, movable in tests).
    clock: Arc<dyn Clock>,
    sessions: Sessions,
    limits: Mutex<LoginLimits>,
    secure_cookies: bool,
    /// This node's credential changes, to the open event streams.
    changes: broadcast::Sender<CredentialsChanged>,
}

impl Auth {
    pub fn new(
        api_token: Option<Secret>,
        store: DynStore,
        clock: Arc<dyn Clock>,
        settings: &AuthSettings,
    ) -> Self {
        let (changes, _) = broadcast::channel(CHANGES_BUFFER);
        Self {
            api_token,
            sessions: Sessions::new(
                store.clone(),
                clock.clone(),
                settings.session_idle,
                settings.session_lifetime,
                changes.clone(),
            ),
            store,
            clock,
            limits: Mutex::new(LoginLimits::default()),
            secure_cookies: settings.secure_cookies,
            changes,
        }
    }

    pub fn store(&self) -> &DynStore {
        &self.store
    }

    /// The platform's clock: sessions and API tokens expire by it.
    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// Short sections only; never held across an await.
    pub fn limits(&self) -> MutexGuard<'_, LoginLimits> {
        self.limits.lock().expect("login limits lock")
    }

    pub fn secure_cookies(&self) -> bool {
        self.secure_cookies
    }

    /// Whether `credential` still opens the event stream of `user` of `tenant`: it
    /// resolves as [`authorize`] would resolve it now (a token revoked or expired, a
    /// session ended or expired: no), to a principal that may act for the user (a
    /// demoted admin: no). Reads the store the same way, but never extends a session's
    /// idle time: an open stream is no sign of someone at the keyboard.
    pub async fn still_allows(
        &self,
        credential: &Credential,
        tenant: TenantId,
        user: UserId,
    ) -> Result<bool, StoreError> {
        let principal = match credential {
            Credential::Standing => return Ok(true),
            Credential::ApiToken { secret_hash } => {
                token_secret::resolve_hash(&self.store, secret_hash, self.clock.now()).await?
            }
            Credential::Session { id_hash } => self
                .sessions
                .check(id_hash)
                .await?
                .map(|s| Principal::of_account(&s.account)),
        };
        Ok(principal.is_some_and(|p| p.acts_for(tenant, user)))
    }

    /// The credential changes this node makes from now on.
    pub fn changes(&self) -> broadcast::Receiver<CredentialsChanged> {
        self.changes.subscribe()
    }

    /// An API token was revoked.
    pub fn token_revoked(&self, token: ApiTokenId) {
        self.signal(CredentialsChanged::Token(token));
    }

    /// A user was removed or its role changed: its sessions are read again.
    pub fn user_changed(&self, tenant: TenantId, user: UserId) {
        self.sessions.forget_user(tenant, user);
        self.signal(CredentialsChanged::User(tenant, user));
    }

    /// A tenant was removed, with its users, sessions and tokens.
    pub fn tenant_removed(&self, tenant: TenantId) {
        self.sessions.forget_tenant(tenant);
        self.signal(CredentialsChanged::Tenant(tenant));
    }

    /// Accounts may have changed anywhere (a provisioning document).
    pub fn accounts_changed(&self) {
        self.sessions.forget_all();
        self.signal(CredentialsChanged::Any);
    }

    fn signal(&self, change: CredentialsChanged) {
        // No receiver: no stream open; nothing to tell.
        let _ = self.changes.send(change);
    }

    /// The bearer token compared in constant time over digests: no timing hint about
    /// how much of a guess was right.
    fn token_matches(&self, presented: &str) -> bool {
        self.api_token.as_ref().is_some_and(|token| {
            let a = Sha256::digest(presented.as_bytes());
            let b = Sha256::digest(token.expose().as_bytes());
            bool::from(a.ct_eq(&b))
        })
    }
}

/// Methods that change nothing; every other method needs the CSRF header with a cookie.
fn is_safe(method: &Method) -> bool {
    is_read(method) || *method == Method::OPTIONS || *method == Method::TRACE
}

/// A cookie-authenticated request that changes something must echo the session's
/// CSRF token in `X-CSRF-Token` (a cross-site page can send the cookie, never the
/// header). Compared in constant time.
pub fn csrf_ok(method: &Method, headers: &HeaderMap, token: &str) -> bool {
    if is_safe(method) {
        return true;
    }
    headers
        .get(CSRF_HEADER)
        .is_some_and(|v| bool::from(v.as_bytes().ct_eq(token.as_bytes())))
}

fn is_websocket_upgrade(method: &Method, headers: &HeaderMap) -> bool {
    *method == Method::GET
        && headers
            .get_all(header::UPGRADE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
            })
}

/// A cookie-authenticated WebSocket upgrade must come from a page of this origin:
/// browsers send cookies with cross-site WebSocket handshakes, and no CSRF header can
/// be added to one (cross-site WebSocket hijacking). `Origin`'s host and port must be
/// the request's `Host`.
pub fn websocket_origin_ok(method: &Method, headers: &HeaderMap) -> bool {
    if !is_websocket_upgrade(method, headers) {
        return true;
    }
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (origin, host) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host.trim())),
        _ => false,
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
}

/// 401 that also removes a session cookie that no longer opens a session.
fn session_gone(auth: &Auth) -> Response {
    let mut r = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "the session has ended: log in again",
    )
    .into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        session::set_cookie(None, Duration::ZERO, auth.secure_cookies()),
    );
    r
}

fn forbidden(message: &str) -> Response {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message).into_response()
}

/// The middleware on every matched route (see the module docs).
pub async fn authorize(State(auth): State<Arc<Auth>>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if decide(None, req.method(), &path) == Access::Allow {
        // Open: outside the API, the login itself, the OpenAPI document.
        if path.starts_with(API) {
            let ip = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip());
            req.extensions_mut().insert(ClientIp(ip));
            req.extensions_mut().insert(auth);
        }
        return next.run(req).await;
    }
    let mut session = None;
    let mut credential = Credential::Standing;
    let principal = if let Some(presented) = bearer(req.headers()) {
        if auth.token_matches(presented) {
            Some(Principal::Operator)
        } else if token_secret::is_api_token(presented) {
            // Checked even without an operator token: an integration is held to its
            // scope, and a revoked token is refused, whether the API is open or not.
            let secret_hash = token_secret::hash_secret(presented);
            match token_secret::resolve_hash(auth.store(), &secret_hash, auth.clock.now()).await {
                Ok(Some(p)) => {
                    credential = Credential::ApiToken { secret_hash };
                    Some(p)
                }
                Ok(None) => {
                    return ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "unauthorized",
                        "unknown, revoked or expired api token",
                    )
                    .into_response()
                }
                Err(e) => return internal("reading an api token failed", &e).into_response(),
            }
        } else if auth.api_token.is_none() {
            // None configured: the API is open anyway.
            Some(Principal::Operator)
        } else {
            return ApiError::unauthorized().into_response();
        }
    } else if let Some(value) = session::cookie_value(req.headers()) {
        match auth.sessions().resolve(value).await {
            Ok(Some(s)) => {
                let p = Principal::of_account(&s.account);
                credential = Credential::Session {
                    id_hash: s.id_hash.clone(),
                };
                session = Some(s);
                Some(p)
            }
            Ok(None) => return session_gone(&auth),
            Err(e) => return internal("reading a session failed", &e).into_response(),
        }
    } else if auth.api_token.is_none() {
        Some(Principal::Operator)
    } else {
        None
    };
    if let Some(s) = &session {
        if !csrf_ok(req.method(), req.headers(), s.csrf_token.expose()) {
            return forbidden("missing or wrong X-CSRF-Token header");
        }
        if !websocket_origin_ok(req.method(), req.headers()) {
            return forbidden("a websocket with a session cookie must come from this origin");
        }
    }
    match decide(principal.as_ref(), req.method(), &path) {
        Access::Allow => {}
        Access::Unauthorized => return ApiError::unauthorized().into_response(),
        Access::Forbidden => return forbidden("not allowed for this account"),
        Access::NotFound(message) => return ApiError::not_found(message).into_response(),
    }
    if let Some(p) = principal {
        req.extensions_mut().insert(p);
        req.extensions_mut().insert(credential);
    }
    if let Some(s) = session {
        req.extensions_mut().insert(s);
    }
    req.extensions_mut().insert(auth);
    next.run(req).await
}
#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn csrf_is_needed_for_writes_only_and_must_match() {
        let none = headers(&[]);
        let right = headers(&[("x-csrf-token", "tok123")]);
        let wrong = headers(&[("x-csrf-token", "tok124")]);
        let prefix = headers(&[("x-csrf-token", "tok")]);
        for m in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(csrf_ok(&m, &none, "tok123"), "{m}");
        }
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(!csrf_ok(&m, &none, "tok123"), "{m}");
            assert!(!csrf_ok(&m, &wrong, "tok123"), "{m}");
            assert!(!csrf_ok(&m, &prefix, "tok123"), "{m}");
            assert!(csrf_ok(&m, &right, "tok123"), "{m}");
        }
        // Any method not known to be safe needs the token too.
        let odd = Method::from_bytes(b"PROPFIND").unwrap();
        assert!(!csrf_ok(&odd, &none, "tok123"));
    }

    #[test]
    fn websocket_upgrades_must_be_same_origin() {
        let plain = headers(&[("host", "pbx.example:8080")]);
        assert!(websocket_origin_ok(&Method::GET, &plain));
        let same = headers(&[
            ("host", "pbx.example:8080"),
            ("upgrade", "websocket"),
            ("origin", "https://PBX.example:8080"),
        ]);
        assert!(websocket_origin_ok(&Method::GET, &same));
        let cross = headers(&[
            ("host", "pbx.example:8080"),
            ("upgrade", "WebSocket"),
            ("origin", "https://evil.example"),
        ]);
        assert!(!websocket_origin_ok(&Method::GET, &cross));
        let other_port = headers(&[
            ("host", "pbx.example:8080"),
            ("upgrade", "websocket"),
            ("origin", "http://pbx.example:9090"),
        ]);
        assert!(!websocket_origin_ok(&Method::GET, &other_port));
        let no_origin = headers(&[("host", "pbx.example:8080"), ("upgrade", "websocket")]);
        assert!(!websocket_origin_ok(&Method::GET, &no_origin));
        let null_origin = headers(&[
            ("host", "pbx.example:8080"),
            ("upgrade", "websocket"),
            ("origin", "null"),
        ]);
        assert!(!websocket_origin_ok(&Method::GET, &null_origin));
    }

    #[test]
    fn bearer_tokens_are_read_from_the_header() {
        assert_eq!(
            bearer(&headers(&[("authorization", "Bearer abc ")])),
            Some("abc")
        );
        assert_eq!(
            bearer(&headers(&[("authorization", "bearer abc")])),
            Some("abc")
        );
        assert_eq!(bearer(&headers(&[("authorization", "Basic abc")])), None);
        assert_eq!(bearer(&headers(&[])), None);
    }
}
