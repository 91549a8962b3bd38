//! The one mapping from the errors of the layers below to HTTP: every failure leaves
//! as `{"error": {"code": "not_found", "message": "..."}}` with a matching status.

use crate::provision::ProvisionError;
use crate::store::StoreError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, machine-readable: `not_found`, `already_exists`, `conflict`, `invalid`,
    /// `bad_request`, `unauthorized`, `forbidden`, `method_not_allowed`,
    /// `payload_too_large`, `internal`, and for 422 `invalid_profile`,
    /// `invalid_contact`, `invalid_settings`, `invalid_policy`. (`uri_too_long` and
    /// `headers_too_large` come from `serve`, for requests the router never sees.)
    pub code: &'static str,
    pub message: String,
    /// Every problem found, for validation errors (422); empty otherwise.
    pub details: Vec<FieldIssue>,
}

/// One problem with one field of a request body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldIssue {
    /// Path of the field: `forwarding.busy`, `numbers[1]`.
    #[schema(example = "forwarding.busy")]
    pub field: String,
    #[schema(example = "forwards to the user's own extension (a loop)")]
    pub reason: String,
}

impl FieldIssue {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    #[schema(example = "not_found")]
    pub code: String,
    #[schema(example = "user not found: 0190b5a4-0000-7000-8000-000000000000")]
    pub message: String,
    /// Present on validation errors (400 `invalid` and `bad_json`, 422): every problem,
    /// each naming its field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<FieldIssue>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// 422 listing every problem of a body that parsed but breaks the rules.
    pub fn unprocessable(code: &'static str, what: &str, details: Vec<FieldIssue>) -> Self {
        let message = match details.as_slice() {
            [one] => format!("{what}: {}: {}", one.field, one.reason),
            many => format!("{what}: {} problems, see details", many.len()),
        };
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code,
            message,
            details,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn invalid(field: &str, reason: impl std::fmt::Display) -> Self {
        Self::invalid_all(vec![FieldIssue::new(field, reason.to_string())])
    }

    /// 400 `invalid` naming every field that is wrong, so a form can mark them all at
    /// once. The message reads like [`ApiError::invalid`]'s for a single problem.
    pub fn invalid_all(details: Vec<FieldIssue>) -> Self {
        let message = match details.as_slice() {
            [one] => format!("{}: {}", one.field, one.reason),
            many => format!(
                "{} problems: {}",
                many.len(),
                many.iter()
                    .map(|i| format!("{}: {}", i.field, i.reason))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        };
        Self::new(StatusCode::BAD_REQUEST, "invalid", message).with_details(details)
    }

    pub fn with_details(mut self, details: Vec<FieldIssue>) -> Self {
        self.details = details;
        self
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token",
        )
    }

    /// Details stay in the log: a database message may name hosts or schema.
    fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "api request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
}

/// A 500 for a failure of `what`, logged with its cause (which stays in the log).
pub fn internal(what: &str, e: &dyn std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "{what}");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error",
    )
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let (status, code) = match &e {
            StoreError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            StoreError::AlreadyExists { .. } => (StatusCode::CONFLICT, "already_exists"),
            StoreError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            StoreError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid"),
            StoreError::Db(_) | StoreError::Migrate(_) => return Self::internal(&e),
        };
        Self::new(status, code, e.to_string())
    }
}

impl From<ProvisionError> for ApiError {
    fn from(e: ProvisionError) -> Self {
        match e {
            ProvisionError::Invalid { .. } => {
                Self::new(StatusCode::BAD_REQUEST, "invalid", e.to_string())
            }
            ProvisionError::Parse { .. } => Self::bad_request(e.to_string()),
            ProvisionError::Store { path, source } => {
                let inner = ApiError::from(source);
                if inner.status.is_server_error() {
                    return inner;
                }
                Self::new(
                    inner.status,
                    inner.code,
                    format!("{path}: {}", inner.message),
                )
            }
            // Files are not read through the API; hashing fails only if its task dies.
            ProvisionError::Read { .. }
            | ProvisionError::UnknownFormat(_)
            | ProvisionError::Password { .. } => Self::internal(&e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                error: ErrorDetail {
                    code: self.code.to_string(),
                    message: self.message,
                    details: (!self.details.is_empty()).then_some(self.details),
                },
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
