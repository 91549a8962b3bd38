//! Extractors that fail with [`ApiError`], so that axum's plain-text rejections
//! (malformed JSON, a path segment that is not a UUID, a bad query) never reach a
//! client: every error of the API has the same JSON shape.

use super::error::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

/// A JSON request body: a JSON object (every body of the API is one; serde alone
/// would also take an array for a struct, `[null, null]` for two optional fields).
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // As `axum::Json` does: the type first, then the body (within the body limit).
        if !json_content_type(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Expected request with `Content-Type: application/json`",
            ));
        }
        let body = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the request body is larger than tsps accepts (2 MB)",
                )
            } else {
                ApiError::new(r.status(), "bad_request", r.body_text())
            }
        })?;
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|b| *b != b'{') {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_json",
                "the request body must be a JSON object",
            ));
        }
        let body = whole_numbers_as_integers(body);
        match axum::Json::<T>::from_bytes(&body) {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            // Syntax and shape errors alike are the client's malformed JSON.
            Err(r @ (JsonRejection::JsonSyntaxError(_) | JsonRejection::JsonDataError(_))) => Err(
                ApiError::new(StatusCode::BAD_REQUEST, "bad_json", r.body_text()),
            ),
            Err(r) => Err(ApiError::new(r.status(), "bad_request", r.body_text())),
        }
    }
}

/// The body with every number that has no fraction written as an integer: JSON (and
/// JSON Schema) know numbers, not integer types, so `5060.0` is the port 5060, but
/// serde would refuse it for a `u16`. A body that does not parse, or holds no such
/// number, is returned as it is.
fn whole_numbers_as_integers(body: Bytes) -> Bytes {
    fn visit(v: &mut serde_json::Value) -> bool {
        use serde_json::{Number, Value};
        match v {
            Value::Number(n) if n.is_f64() => {
                let f = n.as_f64().unwrap_or(f64::NAN);
                // Exactly representable whole numbers only: within 2^53.
                let whole = f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0;
                if whole {
                    *n = if f < 0.0 {
                        Number::from(f as i64)
                    } else {
                        Number::from(f as u64)
                    };
                }
                whole
            }
            Value::Array(items) => {
                let mut changed = false;
                for item in items {
                    changed |= visit(item);
                }
                changed
            }
            Value::Object(map) => {
                let mut changed = false;
                for item in map.values_mut() {
                    changed |= visit(item);
                }
                changed
            }
            _ => false,
        }
    }
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return body;
    };
    if !visit(&mut value) {
        return body;
    }
    serde_json::to_vec(&value).map(Bytes::from).unwrap_or(body)
}

/// `application/json` or `application/...+json`, any parameters.
fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json") || subtype.to_ascii_lowercase().ends_with("+json"))
}

/// Path parameters.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| ApiPath(v))
            .map_err(|r| ApiError::bad_request(r.body_text()))
    }
}

/// Query string parameters.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|r| ApiError::bad_request(r.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_type(value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn whole_numbers_are_integers() {
        let got = whole_numbers_as_integers(Bytes::from_static(
            br#"{"port": 5060.0, "list": [1.0, -2.0, 2.5], "n": {"x": 1e3}, "s": "1.0"}"#,
        ));
        let got: serde_json::Value = serde_json::from_slice(&got).unwrap();
        assert_eq!(
            got,
            serde_json::json!({"port": 5060, "list": [1, -2, 2.5], "n": {"x": 1000}, "s": "1.0"})
        );
        assert!(got["port"].is_u64() && got["list"][1].is_i64());
        // Nothing to change, or not JSON: the very same bytes.
        for same in [&br#"{"port": 5060}"#[..], b"{not json"] {
            let body = Bytes::copy_from_slice(same);
            assert_eq!(whole_numbers_as_integers(body.clone()), body);
        }
    }

    #[test]
    fn json_content_types_are_recognised_as_axum_does() {
        for yes in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/problem+json",
        ] {
            assert!(json_content_type(&with_type(yes)), "{yes}");
        }
        for no in [
            "text/json",
            "application/jsonx",
            "application",
            "text/plain",
            "",
        ] {
            assert!(!json_content_type(&with_type(no)), "{no}");
        }
        assert!(!json_content_type(&HeaderMap::new()));
    }
}
