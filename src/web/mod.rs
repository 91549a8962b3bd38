//! HTTP edge: the provisioning and feature-server REST API under `/api/v1` (JSON,
//! operator bearer token or portal session), with its OpenAPI document at
//! `/api/v1/openapi.json`. Only this module knows HTTP. Who may call what is decided
//! in one place, [`auth`], by method and path, before any handler runs.
//!
//! Every write goes to the store first and then reloads the shared directory, so the
//! SIP side sees the change on its next lookup; writes of feature-server data
//! (profiles, status, contacts, settings, policies) tell the [`ChangeNotifier`](crate::notify::ChangeNotifier)
//! instead, so the live user and tenant actors reload. Tenants are walls: anything of tenant
//! A asked for under tenant B's path is 404. Every error, including a malformed body
//! or path, is JSON (see [`error`]).

pub mod access;
mod activity;
pub mod auth;
mod contacts;
mod control;
mod devices;
mod dids;
pub mod error;
mod events;
mod extract;
pub mod live;
mod login;
mod messages;
pub(crate) mod model_schema;
mod policy;
mod portal;
pub mod principal;
mod profile;
mod profile_schema;
mod quotas;
mod revalidate;
pub(crate) mod rule_schemas;
mod security;
pub mod serve;
mod session;
mod settings;
mod status;
mod tenants;
mod token_secret;
mod tokens;
mod trunks;
mod users;
mod watchers;

use crate::config::Secret;
use crate::notify::ChangeNotifier;
use crate::provision::{self, ApplySummary, ProvisionDoc};
use crate::store::{DynStore, SharedDirectory};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::get;
use axum::{Json, Router};
use error::{ApiError, ErrorBody};
use extract::ApiJson;
use serde::Serialize;
use std::sync::Arc;
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::AuthSettings;
pub use principal::Principal;

#[derive(Clone)]
pub struct ApiState {
    pub directory: SharedDirectory,
    /// Without a token the API is open: meant for a local trial only.
    pub api_token: Option<Secret>,
    /// Told after each successful write of feature-server data, so live actors reload.
    pub notify: Arc<dyn ChangeNotifier>,
    /// The platform's clock (movable in tests): sessions, API tokens, messages.
    pub clock: Arc<dyn tsps_actors::ports::Clock>,
    /// Live calls (override, listing) and the test clock.
    pub live: Arc<dyn live::LiveCalls>,
    /// Users' live event streams (WebSocket, SSE).
    pub push: Arc<crate::push::Hub>,
    /// What `/api/v1/metrics` shows.
    pub metrics: Arc<dyn crate::metrics::MetricsSource>,
    /// The SIP brute-force guard: its blocks, for the operator (`/security/blocks`).
    pub guard: Arc<crate::sip::auth::guard::Guard>,
    /// The platform's default quotas (`[quotas]`); a tenant may have its own.
    pub quotas: crate::store::Quotas,
}

impl ApiState {
    fn store(&self) -> &DynStore {
        self.directory.store()
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "tsps API", description = "Provisioning, call records and the personal feature server of tsps."),
    modifiers(&BearerAuth),
    components(schemas(ErrorBody)),
    tags(
        (name = "auth", description = "portal login, sessions and CSRF (docs/api.md)"),
        (name = "tenants"), (name = "users"), (name = "devices"), (name = "dids"),
        (name = "trunks"), (name = "calls"), (name = "provision"), (name = "health"),
        (name = "features", description = "a user's feature profile and status"),
        (name = "contacts", description = "personal and tenant-shared contacts"),
        (name = "settings", description = "a tenant's dialing rules"),
        (name = "policies", description = "the tenant tier's word on each user's calls"),
        (name = "events", description = "a user's live lines, devices and status (docs/events.md)"),
        (name = "api-tokens", description = "API tokens of integrations (CTI clients, docs/cti.md)")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        // A portal session; writes also need the `X-CSRF-Token` header.
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(session::COOKIE))),
        );
        doc.security = Some(vec![
            SecurityRequirement::new("bearer", Vec::<String>::new()),
            SecurityRequirement::new("session", Vec::<String>::new()),
        ]);
    }
}

/// The error answers any operation under `/api/v1` can give besides its own: the
/// extractors' (a path or query parameter that does not parse, a body that is not JSON
/// of the schema, too large or without its `Content-Type`), a rule's `invalid`, and
/// [`auth`]'s 401, 403 and 404. Added to every operation that does not state the
/// status itself: an operation's own entry says more (which 422 code, why a 404).
/// Applied to the finished document, after the routes have added their operations.
struct CommonErrors;

impl CommonErrors {
    /// (status, component name, description); the body is always an [`ErrorBody`].
    const RESPONSES: [(&'static str, &'static str, &'static str); 6] = [
        (
            "400",
            "BadRequest",
            "`bad_request`: a path or query parameter that does not parse; \
            `bad_json`: a body that is not JSON, or not of the schema; `invalid`: a value \
            that breaks a rule (the message names the field)",
        ),
        (
            "401",
            "Unauthorized",
            "`unauthorized`: no credentials, or ones that open nothing",
        ),
        (
            "403",
            "Forbidden",
            "`forbidden`: not for the caller's role, or a session's write \
            without `X-CSRF-Token`",
        ),
        (
            "404",
            "NotFound",
            "`not_found`: no such object in this tenant (another tenant's \
            is not found either)",
        ),
        (
            "413",
            "PayloadTooLarge",
            "`payload_too_large`: a body larger than 2 MB",
        ),
        (
            "415",
            "UnsupportedMediaType",
            "`unsupported_media_type`: a body without \
            `Content-Type: application/json`",
        ),
    ];
}

impl Modify for CommonErrors {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::ParameterIn;
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let components = doc.components.get_or_insert_with(Default::default);
        for (_, name, description) in Self::RESPONSES {
            let body = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build();
            components.responses.insert(
                name.to_string(),
                RefOr::T(
                    ResponseBuilder::new()
                        .description(description)
                        .content("application/json", body)
                        .build(),
                ),
            );
        }
        for (path, item) in doc.paths.paths.iter_mut() {
            if !path.starts_with("/api/v1/") {
                continue;
            }
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in operations.into_iter().flatten() {
                let params = op.parameters.as_deref().unwrap_or_default();
                let in_path = params
                    .iter()
                    .any(|p| matches!(p.parameter_in, ParameterIn::Path));
                let json_body = op
                    .request_body
                    .as_ref()
                    .is_some_and(|b| b.content.contains_key("application/json"));
                // `security(())`: open to anyone (the login), so never 401 or 403.
                let open = op
                    .security
                    .as_ref()
                    .is_some_and(|s| s.iter().all(|r| *r == SecurityRequirement::default()));
                for (status, name, description) in Self::RESPONSES {
                    let applies = match status {
                        "400" => !params.is_empty() || op.request_body.is_some(),
                        "401" | "403" => !open,
                        "404" => in_path,
                        _ => json_body,
                    };
                    match op.responses.responses.get_mut(status) {
                        // Stated without a word of its own: say what it means.
                        Some(RefOr::T(own)) if own.description.is_empty() => {
                            own.description = description.to_string();
                        }
                        Some(_) => {}
                        None if applies => {
                            op.responses.responses.insert(
                                status.to_string(),
                                RefOr::Ref(Ref::from_response_name(name)),
                            );
                        }
                        None => {}
                    }
                }
            }
        }
    }
}

/// The internally tagged enums whose variants refuse unknown fields
/// (`deny_unknown_fields`): utoipa leaves their variants' objects open, so the
/// document says so here.
struct ClosedVariants;

impl ClosedVariants {
    const SCHEMAS: [&'static str; 1] = ["OverrideBody"];
}

impl Modify for ClosedVariants {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::schema::{AdditionalProperties, Schema};
        use utoipa::openapi::RefOr;
        let Some(components) = doc.components.as_mut() else {
            return;
        };
        for name in Self::SCHEMAS {
            let Some(RefOr::T(Schema::OneOf(one_of))) = components.schemas.get_mut(name) else {
                panic!("{name} is no longer a oneOf schema: see ClosedVariants");
            };
            for variant in &mut one_of.items {
                if let RefOr::T(Schema::Object(o)) = variant {
                    o.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
                }
            }
        }
    }
}

/// The whole HTTP surface with the default session settings (see [`router_with`]).
pub fn router(state: ApiState) -> Router {
    router_with(state, AuthSettings::default())
}

/// The whole HTTP surface: `/healthz`, the portal's pages and `/api/v1/...`, every
/// API route behind [`auth::authorize`].
pub fn router_with(state: ApiState, auth_settings: AuthSettings) -> Router {
    if state.api_token.is_none() {
        tracing::warn!(
            "no http.api_token configured: requests without credentials act as the operator"
        );
    }
    let auth = Arc::new(auth::Auth::new(
        state.api_token.clone(),
        state.store().clone(),
        state.clock.clone(),
        &auth_settings,
    ));
    let v1 = OpenApiRouter::new()
        .routes(routes!(login::login))
        .routes(routes!(login::logout))
        .routes(routes!(login::me))
        .routes(routes!(users::set_password))
        .routes(routes!(activity::user_history))
        .routes(routes!(tenants::list_tenants, tenants::create_tenant))
        .routes(routes!(
            tenants::get_tenant,
            tenants::update_tenant,
            tenants::delete_tenant
        ))
        .routes(routes!(users::list_users, users::create_user))
        .routes(routes!(
            users::get_user,
            users::update_user,
            users::delete_user
        ))
        .routes(routes!(devices::list_devices, devices::create_device))
        .routes(routes!(
            devices::get_device,
            devices::update_device,
            devices::delete_device
        ))
        .routes(routes!(
            devices::list_external_phones,
            devices::create_external_phone
        ))
        .routes(routes!(
            devices::get_external_phone,
            devices::update_external_phone,
            devices::delete_external_phone
        ))
        .routes(routes!(dids::list_dids, dids::create_did))
        .routes(routes!(dids::get_did, dids::update_did, dids::delete_did))
        .routes(routes!(trunks::list_trunks, trunks::create_trunk))
        .routes(routes!(
            trunks::get_trunk,
            trunks::update_trunk,
            trunks::delete_trunk
        ))
        .routes(routes!(activity::list_calls))
        .routes(routes!(activity::list_registrations))
        .routes(routes!(apply_provisioning))
        .routes(routes!(profile::get_profile, profile::put_profile))
        .routes(routes!(status::get_status, status::put_status))
        .routes(routes!(settings::get_settings, settings::put_settings))
        .routes(routes!(policy::get_policy, policy::put_policy))
        .routes(routes!(policy::list_policies))
        .routes(routes!(contacts::list_personal, contacts::create_personal))
        .routes(routes!(
            contacts::get_personal,
            contacts::update_personal,
            contacts::delete_personal
        ))
        .routes(routes!(contacts::import_personal))
        .routes(routes!(contacts::export_personal))
        .routes(routes!(contacts::list_shared, contacts::create_shared))
        .routes(routes!(
            contacts::get_shared,
            contacts::update_shared,
            contacts::delete_shared
        ))
        .routes(routes!(contacts::import_shared))
        .routes(routes!(contacts::export_shared))
        .routes(routes!(live::list_live))
        .routes(routes!(live::override_call))
        // A user's call control (click-to-dial, hold, resume, release, transfer, answer).
        .routes(routes!(control::place_call))
        .routes(routes!(control::hold))
        .routes(routes!(control::resume))
        .routes(routes!(control::release))
        .routes(routes!(control::transfer))
        .routes(routes!(control::conference))
        .routes(routes!(control::answer))
        .routes(routes!(control::forward))
        .routes(routes!(control::attendant))
        .routes(routes!(live::set_clock))
        .routes(routes!(events::events_ws))
        .routes(routes!(events::events_sse))
        .routes(routes!(events::put_watch))
        // Integrations' API tokens (docs/cti.md): the tenant admin's.
        .routes(routes!(tokens::list_api_tokens, tokens::create_api_token))
        .routes(routes!(tokens::revoke_api_token))
        // Issue 5: the subscriber table (the tenant admin's), instant messages.
        .routes(routes!(watchers::get_watchers, watchers::put_watchers))
        .routes(routes!(messages::send_message))
        .routes(routes!(quotas::get_quotas, quotas::put_quotas))
        .routes(routes!(security::list_blocks))
        .routes(routes!(security::unblock_source))
        .routes(routes!(security::unblock_account))
        .routes(routes!(metrics));
    let (api, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", v1)
        .routes(routes!(healthz))
        .split_for_parts();
    let mut doc = doc;
    CommonErrors.modify(&mut doc);
    ClosedVariants.modify(&mut doc);
    let doc = Arc::new(doc);
    let api = api
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        // Every matched route; `access::decide` lets `/healthz`, the login and this
        // document through.
        .route_layer(middleware::from_fn_with_state(auth, auth::authorize));
    // The portal's pages hold no data: served without the token (see `portal`).
    api.merge(portal::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// The node's metrics in the Prometheus text format (operator only).
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, content_type = "text/plain; version=0.0.4", body = String)))]
async fn metrics(State(st): State<ApiState>) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        st.metrics.render(),
    )
}

#[derive(Serialize, ToSchema)]
struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Applies a provisioning document (the YAML/TOML file format, as JSON); see
/// `docs/api.md`. Idempotent: applying the same document again changes nothing.
#[utoipa::path(put, path = "/provision", tag = "provision", request_body = ProvisionDoc,
    responses((status = 200, body = ApplySummary), (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn apply_provisioning(
    State(st): State<ApiState>,
    axum::extract::Extension(auth): axum::extract::Extension<Arc<auth::Auth>>,
    ApiJson(doc): ApiJson<ProvisionDoc>,
) -> Result<Json<ApplySummary>, ApiError> {
    let result = provision::apply(st.store().as_ref(), &doc).await;
    // A failure half-way may still have written something: reload either way. Roles
    // may have changed: open event streams check their credentials.
    auth.accounts_changed();
    reloaded(&st).await?;
    Ok(Json(result?))
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!("no route for {}", req.uri().path()))
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed here", req.method()),
    )
}

/// Lifts a [`crate::rules`] result into an API error naming the field.
fn field<T>(name: &str, r: Result<T, String>) -> Result<T, ApiError> {
    r.map_err(|reason| ApiError::invalid(name, reason))
}

/// Checks every field of a body before answering, so one `400 invalid` names all that
/// are wrong (a form marks them all at once, not one per submit).
#[derive(Default)]
struct Fields(Vec<error::FieldIssue>);

impl Fields {
    /// The value when the rule holds; otherwise the problem is noted and `None`.
    fn check<T>(&mut self, name: &str, r: Result<T, String>) -> Option<T> {
        r.map_err(|reason| self.0.push(error::FieldIssue::new(name, reason)))
            .ok()
    }

    /// Every problem noted (call when a checked value is `None`).
    fn error(self) -> ApiError {
        ApiError::invalid_all(self.0)
    }
}

/// After a write: swap in a fresh directory snapshot for the SIP side. The write is
/// already durable, so a failure here says so rather than pretending nothing happened.
async fn reloaded(st: &ApiState) -> Result<(), ApiError> {
    st.directory.reload().await.map_err(|e| {
        tracing::error!(error = %e, "directory reload after an api write failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reload_failed",
            "the change was saved, but the running directory could not be reloaded",
        )
    })
}
