//! Who is asking, and may they: the one authorization point of the API.
//!
//! [`authorize`] runs on every matched route. It finds the credentials (the operator's
//! bearer token, an integration's API token, or a portal session cookie of a user or
//! of a platform operator), checks CSRF for cookie requests, asks
//! [`decide`] by method and path, and hands the [`Principal`] to the handlers as a
//! request extension. Handlers stay unaware of authorization, and a new route is
//! covered by the path rules the moment it is added:
//!
//! - outside `/api/v1` (`/healthz`, the portal's pages), `POST /api/v1/auth/login` and
//!   the OpenAPI document (`/api/v1/openapi.json`): open;
//! - the operator (bearer token, or an operator's portal session): everything;
//! - `/api/v1/auth/...`: any session;
//! - `/api/v1/tenants/{t}/users/{u}` and below: the user `u` itself, or a tenant admin
//!   of `t`. The user itself may only read its own user record, its devices, the
//!   tenant's policy for it and who may watch it; everything else below (profile,
//!   status, contacts, password, calls, events, messages, ...) it may also write;
//! - `/api/v1/tenants/{t}/...` otherwise: a tenant admin of `t`; any user of `t` may
//!   read the tenant, its user directory, its shared contacts and its settings;
//! - an integration (API token of `t`, see `web::tokens`): for each user `u` in its
//!   scope (every user of `t`, or those the token lists) the user's call control,
//!   status, event stream and watch list, and reads of its record, devices, external
//!   phones, profile and call history; reads of `t` and its user directory; nothing
//!   else (no administration, no `/auth/...`);
//! - anything else (`/tenants`, `/provision`, `/testing/clock`, `/metrics`): the
//!   operator only.
//!
//! A session or integration asking for another tenant, or a user (an integration) for
//! a user not its own (not in its scope), gets 404 (the same answer as for an id that
//! does not exist), never 403; asking for something of its own tenant that its role
//! does not allow gets 403.
//!
//! Without `http.api_token` (a local trial) a request without credentials is the
//! operator, as before; a request with a session cookie is that session's user.
//!
//! The [`Credential`] that opened a request goes with it too: an event stream asks
//! [`Auth::still_allows`] again while it is open (`web::revalidate`), prompted by the
//! [`CredentialsChanged`] signals that revoking a token, logging out and removing
//! users send through [`Auth`].

use super::error::ApiError;
use super::revalidate::{CredentialsChanged, CHANGES_BUFFER};
use super::session::{self, ActiveSession, LoginLimits, Sessions};
use super::tokens;
use crate::config::{HttpConfig, Secret};
use crate::store::ApiTokenId;
use crate::store::{DynStore, SessionAccount, StoreError, UserRole};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::sync::broadcast;
use tsps_actors::ports::Clock;
use tsps_actors::{TenantId, UserId};

/// The prefix every authorized route lives under.
const API: &str = "/api/v1";
const LOGIN: &str = "/api/v1/auth/login";
/// The OpenAPI document: public, like any API's description.
const OPENAPI: &str = "/api/v1/openapi.json";
/// The header a cookie-authenticated write must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Who a request acts as. Handlers that need it (event push, call commands) read it
/// with `Extension<Principal>`; it is present on every route under `/api/v1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The platform operator: the API token (or no token configured), or the portal
    /// session of an operator account (`tsps operator add`).
    Operator,
    /// A portal session of a tenant admin (`user` is the admin's own user).
    TenantAdmin { tenant: TenantId, user: UserId },
    /// A portal session of a user.
    User { tenant: TenantId, user: UserId },
    /// An integration (CTI client) with an API token of `tenant`: acts for the users
    /// in `users`, or for every user of the tenant (`None`). It is no user itself.
    Integration {
        tenant: TenantId,
        token: ApiTokenId,
        users: Option<Arc<[UserId]>>,
    },
}

impl Principal {
    /// The tenant of a session or integration; none for the operator.
    pub fn tenant(&self) -> Option<TenantId> {
        match self {
            Self::Operator => None,
            Self::TenantAdmin { tenant, .. }
            | Self::User { tenant, .. }
            | Self::Integration { tenant, .. } => Some(*tenant),
        }
    }

    /// The user of a session; none for the operator and for an integration.
    pub fn user(&self) -> Option<UserId> {
        match self {
            Self::Operator | Self::Integration { .. } => None,
            Self::TenantAdmin { user, .. } | Self::User { user, .. } => Some(*user),
        }
    }

    /// May act on everything of `tenant`: the operator or a tenant admin of it.
    pub fn administers(&self, tenant: TenantId) -> bool {
        match self {
            Self::Operator => true,
            Self::TenantAdmin { tenant: t, .. } => *t == tenant,
            Self::User { .. } | Self::Integration { .. } => false,
        }
    }

    /// May act for `user` of `tenant`: an administrator of the tenant, the user, or an
    /// integration of the tenant with the user in its scope.
    pub fn acts_for(&self, tenant: TenantId, user: UserId) -> bool {
        match self {
            Self::Integration {
                tenant: t, users, ..
            } => *t == tenant && in_scope(users.as_deref(), user),
            _ => {
                self.administers(tenant)
                    || (self.tenant() == Some(tenant) && self.user() == Some(user))
            }
        }
    }

    fn of_session(s: &ActiveSession) -> Self {
        match &s.account {
            SessionAccount::Operator(_) => Self::Operator,
            SessionAccount::User(a) => {
                let (tenant, user) = (a.user.tenant_id, a.user.id);
                match a.role {
                    UserRole::TenantAdmin => Self::TenantAdmin { tenant, user },
                    UserRole::User => Self::User { tenant, user },
                }
            }
        }
    }
}

/// What opened a request (a request extension beside the [`Principal`]), kept so that
/// an event stream can ask later whether it still does. Only hashes: no secret stays
/// in memory longer than the request that presented it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// The operator's configured token, or no credentials where none are configured:
    /// valid as long as the configuration.
    Standing,
    /// An integration's API token: the SHA-256 of its secret, as the store keeps it.
    ApiToken { secret_hash: String },
    /// A portal session: the SHA-256 of its id, as the store keeps it.
    Session { id_hash: String },
}

/// The client's address as the socket saw it (none when the server was started
/// without connect info, as in some tests).
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub Option<IpAddr>);

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
                tokens::resolve_hash(&self.store, secret_hash, self.clock.now()).await?
            }
            Credential::Session { id_hash } => self
                .sessions
                .check(id_hash)
                .await?
                .map(|s| Principal::of_session(&s)),
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

/// The verdict of [`decide`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    Allow,
    /// No credentials where some are needed.
    Unauthorized,
    /// The principal's own tenant, but not for its role.
    Forbidden,
    /// Not the principal's to see: answered like a missing object, with this message.
    NotFound(String),
}

fn is_read(method: &Method) -> bool {
    *method == Method::GET || *method == Method::HEAD
}

/// Methods that change nothing; every other method needs the CSRF header with a cookie.
fn is_safe(method: &Method) -> bool {
    is_read(method) || *method == Method::OPTIONS || *method == Method::TRACE
}

fn read_only(method: &Method) -> Access {
    if is_read(method) {
        Access::Allow
    } else {
        Access::Forbidden
    }
}

/// An integration's scope: the listed users, or all (`None`).
fn in_scope(users: Option<&[UserId]>, user: UserId) -> bool {
    users.is_none_or(|list| list.contains(&user))
}

/// Whose request [`decide`] judges inside its tenant.
#[derive(Clone, Copy)]
enum Role<'a> {
    Admin,
    User(UserId),
    Integration(Option<&'a [UserId]>),
}

/// The authorization policy: `principal` (none: no credentials) × method × path.
pub fn decide(principal: Option<&Principal>, method: &Method, path: &str) -> Access {
    let Some(rest) = path.strip_prefix(API) else {
        return Access::Allow;
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        // `/api/v1x...`: not the API (and not routed).
        return Access::Allow;
    }
    if path == LOGIN || path == OPENAPI {
        return Access::Allow;
    }
    let Some(principal) = principal else {
        return Access::Unauthorized;
    };
    let (tenant, role) = match principal {
        Principal::Operator => return Access::Allow,
        Principal::TenantAdmin { tenant, .. } => (*tenant, Role::Admin),
        Principal::User { tenant, user } => (*tenant, Role::User(*user)),
        Principal::Integration { tenant, users, .. } => {
            (*tenant, Role::Integration(users.as_deref()))
        }
    };
    // Decoded as the router's path extractors decode them, so `%30...` is no way
    // around a comparison.
    let segments: Vec<Cow<'_, str>> = rest
        .trim_start_matches('/')
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy())
        .collect();
    let segments: Vec<&str> = segments.iter().map(|s| s.as_ref()).collect();
    match (segments.as_slice(), &role) {
        // Sessions only: an integration has no session to log out of or look at.
        (["auth", ..], Role::Integration(_)) => Access::Forbidden,
        (["auth", ..], _) => Access::Allow,
        (["tenants", t, below @ ..], _) => {
            if t.parse::<TenantId>().ok() != Some(tenant) {
                return Access::NotFound(format!("tenant not found: {t}"));
            }
            match role {
                Role::Admin => Access::Allow,
                Role::User(me) => user_in_own_tenant(me, method, below),
                Role::Integration(users) => integration_in_own_tenant(users, method, below),
            }
        }
        _ => Access::Forbidden,
    }
}

/// An integration, under `/tenants/{its tenant}`: what a CTI client needs to follow
/// and control its users' calls, and nothing of administration.
fn integration_in_own_tenant(users: Option<&[UserId]>, method: &Method, below: &[&str]) -> Access {
    match below {
        // The tenant (name) and its user directory.
        [] | ["users"] => read_only(method),
        ["users", u, own @ ..] => {
            if !u.parse::<UserId>().is_ok_and(|u| in_scope(users, u)) {
                return Access::NotFound(format!("user not found: {u}"));
            }
            match own {
                // What the user's calls look like and how they are routed: read only.
                []
                | ["devices", ..]
                | ["external-phones", ..]
                | ["profile"]
                | ["calls", "history"] => read_only(method),
                // The CTI services: call control, status, events, watching colleagues.
                ["calls", ..] | ["status"] | ["events", ..] | ["watch"] => Access::Allow,
                // Password, contacts, policy: the user's or the admin's.
                _ => Access::Forbidden,
            }
        }
        _ => Access::Forbidden,
    }
}

/// A plain user, under `/tenants/{its tenant}`.
fn user_in_own_tenant(me: UserId, method: &Method, below: &[&str]) -> Access {
    match below {
        // The tenant (name), its user directory, shared contacts and dialing rules.
        [] | ["users"] | ["settings"] | ["contacts", ..] => read_only(method),
        ["users", u, own @ ..] => {
            if u.parse::<UserId>().ok() != Some(me) {
                return Access::NotFound(format!("user not found: {u}"));
            }
            match own {
                // Its record (role, extension) and devices are the admin's to change;
                // so are the tenant tier's policy for it and who may watch it.
                [] | ["devices", ..] | ["policy", ..] | ["watchers"] => read_only(method),
                _ => Access::Allow,
            }
        }
        _ => Access::Forbidden,
    }
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
        } else if tokens::is_api_token(presented) {
            // Checked even without an operator token: an integration is held to its
            // scope, and a revoked token is refused, whether the API is open or not.
            let secret_hash = tokens::hash_secret(presented);
            match tokens::resolve_hash(auth.store(), &secret_hash, auth.clock.now()).await {
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
                Err(e) => {
                    return session::internal("reading an api token failed", &e).into_response()
                }
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
                let p = Principal::of_session(&s);
                credential = Credential::Session {
                    id_hash: s.id_hash.clone(),
                };
                session = Some(s);
                Some(p)
            }
            Ok(None) => return session_gone(&auth),
            Err(e) => return session::internal("reading a session failed", &e).into_response(),
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

    const T: TenantId = TenantId::for_test(1);
    const OTHER_T: TenantId = TenantId::for_test(2);
    const ME: UserId = UserId::for_test(10);
    const PEER: UserId = UserId::for_test(11);

    fn check(principal: Option<&Principal>, method: Method, path: &str, want: &str) {
        let got = match decide(principal, &method, path) {
            Access::Allow => "allow".to_string(),
            Access::Unauthorized => "401".to_string(),
            Access::Forbidden => "403".to_string(),
            Access::NotFound(m) => format!("404 {m}"),
        };
        assert!(
            got == want || (want == "404" && got.starts_with("404")),
            "{principal:?} {method} {path}: got {got}, want {want}"
        );
    }

    #[test]
    fn the_policy_table() {
        let (op, admin, user) = (
            Principal::Operator,
            Principal::TenantAdmin {
                tenant: T,
                user: PEER,
            },
            Principal::User {
                tenant: T,
                user: ME,
            },
        );
        let (op, admin, user) = (Some(&op), Some(&admin), Some(&user));
        let t = format!("/api/v1/tenants/{T}");
        let other = format!("/api/v1/tenants/{OTHER_T}");
        let me = format!("{t}/users/{ME}");
        let peer = format!("{t}/users/{PEER}");
        use Method as M;
        #[rustfmt::skip]
        let table: Vec<(Option<&Principal>, Method, String, &str)> = vec![
            // Open to anyone.
            (None, M::GET, "/healthz".into(), "allow"),
            (None, M::GET, "/portal/index.html".into(), "allow"),
            (None, M::POST, "/api/v1/auth/login".into(), "allow"),
            (None, M::GET, "/api/v1/openapi.json".into(), "allow"),
            (user, M::GET, "/api/v1/openapi.json".into(), "allow"),
            // ... but only that path: not one below or beside it.
            (None, M::GET, "/api/v1/openapi.json/x".into(), "401"),
            (None, M::GET, "/api/v1/openapi.jso".into(), "401"),
            // Everything else of the API needs credentials.
            (None, M::GET, "/api/v1/tenants".into(), "401"),
            (None, M::GET, "/api/v1/auth/me".into(), "401"),
            (None, M::GET, me.clone(), "401"),
            // The operator may do anything: with the API token or a portal session (the
            // same principal). What the portal's Platform page does:
            (op, M::GET, "/api/v1/auth/me".into(), "allow"),
            (op, M::POST, "/api/v1/auth/logout".into(), "allow"),
            (op, M::POST, "/api/v1/tenants".into(), "allow"),
            (op, M::GET, format!("{other}/users"), "allow"),
            (op, M::POST, format!("{other}/users"), "allow"),
            (op, M::PUT, format!("{other}/settings"), "allow"),
            (op, M::GET, format!("{other}/trunks"), "allow"),
            // ... and the rest of the platform.
            (op, M::GET, "/api/v1/tenants".into(), "allow"),
            (op, M::PUT, "/api/v1/provision".into(), "allow"),
            (op, M::PUT, "/api/v1/testing/clock".into(), "allow"),
            (op, M::DELETE, other.clone(), "allow"),
            (op, M::PUT, format!("{me}/policy"), "allow"),
            // A user: itself, read and write where it is its own business.
            (user, M::GET, "/api/v1/auth/me".into(), "allow"),
            (user, M::POST, "/api/v1/auth/logout".into(), "allow"),
            (user, M::GET, me.clone(), "allow"),
            (user, M::PUT, me.clone(), "403"),
            (user, M::DELETE, me.clone(), "403"),
            (user, M::GET, format!("{me}/profile"), "allow"),
            (user, M::PUT, format!("{me}/profile"), "allow"),
            (user, M::PUT, format!("{me}/status"), "allow"),
            (user, M::POST, format!("{me}/contacts"), "allow"),
            (user, M::DELETE, format!("{me}/contacts/x"), "allow"),
            (user, M::PUT, format!("{me}/password"), "allow"),
            (user, M::GET, format!("{me}/calls/history"), "allow"),
            (user, M::GET, format!("{me}/events/ws"), "allow"),
            (user, M::POST, format!("{me}/calls"), "allow"),
            (user, M::POST, format!("{me}/calls/c1/hold"), "allow"),
            (user, M::GET, format!("{me}/devices"), "allow"),
            (user, M::POST, format!("{me}/devices"), "403"),
            (user, M::PUT, format!("{me}/devices/d"), "403"),
            (user, M::GET, format!("{me}/policy"), "allow"),
            (user, M::PUT, format!("{me}/policy"), "403"),
            (user, M::GET, format!("{me}/watchers"), "allow"),
            (user, M::PUT, format!("{me}/watchers"), "403"),
            (user, M::POST, format!("{me}/messages"), "allow"),
            // ... its tenant's read-only allowlist ...
            (user, M::GET, t.clone(), "allow"),
            (user, M::PUT, t.clone(), "403"),
            (user, M::DELETE, t.clone(), "403"),
            (user, M::GET, format!("{t}/users"), "allow"),
            (user, M::POST, format!("{t}/users"), "403"),
            (user, M::GET, format!("{t}/contacts"), "allow"),
            (user, M::GET, format!("{t}/contacts/c1"), "allow"),
            (user, M::GET, format!("{t}/contacts/export"), "allow"),
            (user, M::POST, format!("{t}/contacts"), "403"),
            (user, M::POST, format!("{t}/contacts/import"), "403"),
            (user, M::GET, format!("{t}/settings"), "allow"),
            (user, M::PUT, format!("{t}/settings"), "403"),
            (user, M::GET, format!("{t}/calls"), "403"),
            (user, M::GET, format!("{t}/calls/live"), "403"),
            (user, M::GET, format!("{t}/registrations"), "403"),
            (user, M::GET, format!("{t}/dids"), "403"),
            (user, M::GET, format!("{t}/trunks"), "403"),
            (user, M::GET, format!("{t}/policies"), "403"),
            // ... not another user's, not another tenant's: 404, as if absent ...
            (user, M::GET, peer.clone(), "404"),
            (user, M::GET, format!("{peer}/profile"), "404"),
            (user, M::POST, format!("{peer}/calls/c1/release"), "404"),
            (user, M::PUT, format!("{peer}/password"), "404"),
            (user, M::GET, format!("{t}/users/not-a-uuid/profile"), "404"),
            (user, M::GET, other.clone(), "404"),
            (user, M::GET, format!("{other}/users"), "404"),
            (user, M::GET, format!("{other}/users/{ME}/profile"), "404"),
            (user, M::GET, "/api/v1/tenants/nonsense".into(), "404"),
            // ... and nothing of the platform.
            (user, M::GET, "/api/v1/tenants".into(), "403"),
            (user, M::POST, "/api/v1/tenants".into(), "403"),
            (user, M::PUT, "/api/v1/provision".into(), "403"),
            (user, M::PUT, "/api/v1/testing/clock".into(), "403"),
            (user, M::GET, "/api/v1/metrics".into(), "403"),
            (admin, M::GET, "/api/v1/metrics".into(), "403"),
            (user, M::GET, "/api/v1".into(), "403"),
            // A tenant admin: all of its tenant, nothing of another's or the platform's.
            (admin, M::GET, format!("{t}/users"), "allow"),
            (admin, M::POST, format!("{t}/users"), "allow"),
            (admin, M::PUT, me.clone(), "allow"),
            (admin, M::DELETE, me.clone(), "allow"),
            (admin, M::PUT, format!("{me}/policy"), "allow"),
            (admin, M::PUT, format!("{me}/watchers"), "allow"),
            (admin, M::PUT, format!("{me}/password"), "allow"),
            (admin, M::GET, format!("{t}/calls"), "allow"),
            (admin, M::PUT, format!("{t}/settings"), "allow"),
            (admin, M::POST, format!("{t}/trunks"), "allow"),
            (admin, M::GET, other.clone(), "404"),
            (admin, M::POST, format!("{other}/users"), "404"),
            (admin, M::GET, "/api/v1/tenants".into(), "403"),
            (admin, M::PUT, "/api/v1/provision".into(), "403"),
        ];
        for (p, m, path, want) in table {
            check(p, m, &path, want);
        }
    }

    const OTHER: UserId = UserId::for_test(12);

    fn integration(users: Option<&[UserId]>) -> Principal {
        Principal::Integration {
            tenant: T,
            token: ApiTokenId::for_test(1),
            users: users.map(Into::into),
        }
    }

    #[test]
    fn the_integration_policy_table() {
        // Scoped to ME and PEER; OTHER is a user of the tenant outside the scope.
        let (cti, all) = (integration(Some(&[ME, PEER])), integration(None));
        let (cti, all) = (Some(&cti), Some(&all));
        let t = format!("/api/v1/tenants/{T}");
        let other_t = format!("/api/v1/tenants/{OTHER_T}");
        let me = format!("{t}/users/{ME}");
        let peer = format!("{t}/users/{PEER}");
        let out = format!("{t}/users/{OTHER}");
        use Method as M;
        #[rustfmt::skip]
        let table: Vec<(Option<&Principal>, Method, String, &str)> = vec![
            // The CTI services for a user in scope: call control, status, events, watch.
            (cti, M::POST, format!("{me}/calls"), "allow"),
            (cti, M::POST, format!("{me}/calls/c1/hold"), "allow"),
            (cti, M::POST, format!("{me}/calls/c1/resume"), "allow"),
            (cti, M::POST, format!("{me}/calls/c1/transfer"), "allow"),
            (cti, M::POST, format!("{me}/calls/c1/release"), "allow"),
            (cti, M::POST, format!("{peer}/calls/c1/answer"), "allow"),
            (cti, M::GET, format!("{me}/status"), "allow"),
            (cti, M::PUT, format!("{me}/status"), "allow"),
            (cti, M::GET, format!("{me}/events/ws"), "allow"),
            (cti, M::GET, format!("{peer}/events/sse"), "allow"),
            (cti, M::PUT, format!("{me}/watch"), "allow"),
            // ... reads of what the user's calls need ...
            (cti, M::GET, me.clone(), "allow"),
            (cti, M::GET, format!("{me}/devices"), "allow"),
            (cti, M::GET, format!("{me}/devices/d"), "allow"),
            (cti, M::GET, format!("{me}/external-phones"), "allow"),
            (cti, M::GET, format!("{me}/profile"), "allow"),
            (cti, M::GET, format!("{me}/calls/history"), "allow"),
            // ... and of the tenant's directory.
            (cti, M::GET, t.clone(), "allow"),
            (cti, M::GET, format!("{t}/users"), "allow"),
            // Not the user's own business or the admin's.
            (cti, M::PUT, me.clone(), "403"),
            (cti, M::DELETE, me.clone(), "403"),
            (cti, M::PUT, format!("{me}/profile"), "403"),
            (cti, M::PUT, format!("{me}/password"), "403"),
            (cti, M::GET, format!("{me}/contacts"), "403"),
            (cti, M::POST, format!("{me}/contacts"), "403"),
            (cti, M::GET, format!("{me}/policy"), "403"),
            (cti, M::PUT, format!("{me}/watchers"), "403"),
            (cti, M::POST, format!("{me}/messages"), "403"),
            (cti, M::POST, format!("{me}/devices"), "403"),
            (cti, M::PUT, format!("{me}/external-phones/p"), "403"),
            (cti, M::PUT, t.clone(), "403"),
            (cti, M::POST, format!("{t}/users"), "403"),
            (cti, M::GET, format!("{t}/api-tokens"), "403"),
            (cti, M::POST, format!("{t}/api-tokens"), "403"),
            (cti, M::GET, format!("{t}/calls"), "403"),
            (cti, M::GET, format!("{t}/calls/live"), "403"),
            (cti, M::GET, format!("{t}/contacts"), "403"),
            (cti, M::GET, format!("{t}/settings"), "403"),
            (cti, M::GET, format!("{t}/trunks"), "403"),
            (cti, M::GET, "/api/v1/auth/me".into(), "403"),
            (cti, M::POST, "/api/v1/auth/logout".into(), "403"),
            // A user out of scope, another tenant: 404, as if absent.
            (cti, M::GET, out.clone(), "404"),
            (cti, M::GET, format!("{out}/events/ws"), "404"),
            (cti, M::POST, format!("{out}/calls/c1/release"), "404"),
            (cti, M::PUT, format!("{out}/status"), "404"),
            (cti, M::GET, format!("{t}/users/not-a-uuid/status"), "404"),
            (cti, M::GET, other_t.clone(), "404"),
            (cti, M::GET, format!("{other_t}/users"), "404"),
            (cti, M::GET, format!("{other_t}/users/{ME}/events/ws"), "404"),
            (cti, M::GET, format!("{other_t}/api-tokens"), "404"),
            // Never the operator's paths.
            (cti, M::GET, "/api/v1/tenants".into(), "403"),
            (cti, M::PUT, "/api/v1/provision".into(), "403"),
            (cti, M::PUT, "/api/v1/testing/clock".into(), "403"),
            (cti, M::GET, "/api/v1/metrics".into(), "403"),
            (cti, M::GET, "/api/v1/openapi.json".into(), "allow"),
            // A token for every user of the tenant: any of them, still nothing more.
            (all, M::POST, format!("{out}/calls"), "allow"),
            (all, M::GET, format!("{out}/events/ws"), "allow"),
            (all, M::GET, format!("{t}/users/not-a-uuid/status"), "404"),
            (all, M::PUT, format!("{out}/password"), "403"),
            (all, M::GET, format!("{other_t}/users/{OTHER}/status"), "404"),
            (all, M::POST, format!("{t}/api-tokens"), "403"),
        ];
        for (p, m, path, want) in table {
            check(p, m, &path, want);
        }
        // Encoded paths are judged decoded for integrations too.
        let encoded = OTHER.to_string().replacen('0', "%30", 1);
        check(
            cti,
            Method::GET,
            &format!("{t}/users/{encoded}/status"),
            "404",
        );
        check(cti, Method::PUT, &format!("{me}/%70assword"), "403");
    }

    #[test]
    fn encoded_paths_are_judged_decoded() {
        let user = Principal::User {
            tenant: T,
            user: ME,
        };
        let user = Some(&user);
        let me = format!("/api/v1/tenants/{T}/users/{ME}");
        // `%70olicy` is `policy`: still read-only.
        check(user, Method::PUT, &format!("{me}/%70olicy"), "403");
        // An encoded id is the same id.
        let encoded = T.to_string().replacen('0', "%30", 1);
        check(
            user,
            Method::GET,
            &format!("/api/v1/tenants/{encoded}"),
            "allow",
        );
        // Odd shapes of another user's path stay 404.
        check(
            user,
            Method::GET,
            &format!("/api/v1/tenants/{T}/users//profile"),
            "404",
        );
        check(
            user,
            Method::GET,
            &format!("/api/v1/tenants/{T}/users/%ff"),
            "404",
        );
    }

    #[test]
    fn the_404_message_matches_a_missing_object() {
        let user = Principal::User {
            tenant: T,
            user: ME,
        };
        assert_eq!(
            decide(
                Some(&user),
                &Method::GET,
                &format!("/api/v1/tenants/{OTHER_T}")
            ),
            Access::NotFound(format!("tenant not found: {OTHER_T}"))
        );
        assert_eq!(
            decide(
                Some(&user),
                &Method::GET,
                &format!("/api/v1/tenants/{T}/users/{PEER}")
            ),
            Access::NotFound(format!("user not found: {PEER}"))
        );
    }

    #[test]
    fn principals_say_what_they_may_act_for() {
        let admin = Principal::TenantAdmin {
            tenant: T,
            user: PEER,
        };
        let user = Principal::User {
            tenant: T,
            user: ME,
        };
        assert!(Principal::Operator.acts_for(OTHER_T, ME));
        assert!(admin.acts_for(T, ME) && !admin.acts_for(OTHER_T, ME));
        assert!(user.acts_for(T, ME) && !user.acts_for(T, PEER));
        assert!(!user.acts_for(OTHER_T, ME));
        assert_eq!(user.tenant(), Some(T));
        assert_eq!(Principal::Operator.user(), None);
        let cti = integration(Some(&[ME]));
        assert!(cti.acts_for(T, ME) && !cti.acts_for(T, PEER) && !cti.acts_for(OTHER_T, ME));
        assert!(!cti.administers(T));
        assert_eq!((cti.tenant(), cti.user()), (Some(T), None));
        let all = integration(None);
        assert!(all.acts_for(T, PEER) && !all.acts_for(OTHER_T, PEER));
    }

    #[test]
    fn an_operators_session_is_the_operator_and_a_users_is_its_role() {
        use crate::store::{OperatorAccount, UserAccount};
        let session = |account| ActiveSession {
            id_hash: "h".into(),
            csrf_token: "c".into(),
            account,
            expires_at: chrono::Utc::now(),
        };
        let operator = session(SessionAccount::Operator(OperatorAccount {
            login: "ops".into(),
            created_at: chrono::Utc::now(),
        }));
        assert_eq!(Principal::of_session(&operator), Principal::Operator);
        let user = |role| {
            session(SessionAccount::User(UserAccount {
                user: tsps_actors::model::User {
                    id: ME,
                    tenant_id: T,
                    extension: "1001".into(),
                    display_name: "Alice".into(),
                    portal_login: None,
                },
                role,
            }))
        };
        assert_eq!(
            Principal::of_session(&user(UserRole::TenantAdmin)),
            Principal::TenantAdmin {
                tenant: T,
                user: ME
            }
        );
        assert_eq!(
            Principal::of_session(&user(UserRole::User)),
            Principal::User {
                tenant: T,
                user: ME
            }
        );
    }

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
