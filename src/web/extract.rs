//! Extractors that fail with [`ApiError`], so that axum's plain-text rejections
//! (malformed JSON, a path segment that is not a UUID, a bad query) never reach a
//! client: every error of the API has the same JSON shape.

use super::error::{ApiError, FieldIssue};
use axum::body::Bytes;
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
        parse_body(&body).map(ApiJson)
    }
}

/// The body as `T`. Syntax and shape errors alike are the client's malformed JSON; a
/// shape error names the field it is about (`forwarding.no_answer.seconds`), in
/// `details` as the API's other field errors do, not the body's line and column.
fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() || path == "." {
            // Nothing to point at but the place in the text.
            let what = if inner.is_syntax() || inner.is_eof() {
                "the request body is not valid JSON"
            } else {
                "the request body does not fit"
            };
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_json",
                format!("{what}: {inner}"),
            );
        }
        let issue = FieldIssue::new(path, readable(&inner));
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("{}: {}", issue.field, issue.reason),
        )
        .with_details(vec![issue])
    })?;
    de.end().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("the request body is not valid JSON: {e}"),
        )
    })?;
    Ok(value)
}

/// serde's message without its place in the text, and Rust's integer types in words.
pub fn readable(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let text = match text.rsplit_once(" at line ") {
        Some((msg, _)) if e.line() > 0 => msg.to_string(),
        _ => text,
    };
    let mut out = text;
    for (ty, words) in [
        ("u8", "a whole number from 0 to 255"),
        ("u16", "a whole number from 0 to 65535"),
        ("u32", "a whole number from 0 to 4294967295"),
        ("u64", "a whole number, 0 or more"),
        ("usize", "a whole number, 0 or more"),
        ("i32", "a whole number"),
        ("i64", "a whole number"),
    ] {
        out = out.replace(&format!("expected {ty}"), &format!("expected {words}"));
    }
    out
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

    fn bad_json(body: &str) -> ApiError {
        match parse_body::<tsps_actors::feature::profile::Profile>(body.as_bytes()) {
            Ok(p) => panic!("{body} parsed: {p:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_type_error_names_its_field_not_a_line_and_column() {
        let e =
            bad_json(r#"{"forwarding": {"no_answer": {"target": "devices", "seconds": "20"}}}"#);
        assert_eq!(e.code, "bad_json");
        assert_eq!(e.details.len(), 1, "{e:?}");
        assert_eq!(e.details[0].field, "forwarding.no_answer.seconds");
        assert_eq!(
            e.details[0].reason,
            r#"invalid type: string "20", expected a whole number from 0 to 4294967295"#
        );
        assert!(!e.message.contains("line"), "{}", e.message);
        let e = bad_json(r#"{"simultaneous": [{"extension": "1002"}, {"phone": "1"}]}"#);
        assert_eq!(e.details[0].field, "simultaneous[1]");
        // Inside a handling (tagged by its method) too.
        let e = bad_json(
            r#"{"handling_codes": [{"name": "VIP", "handling": {"method": "reject_with_message", "text": "x", "code": "486"}}]}"#,
        );
        assert_eq!(e.details[0].field, "handling_codes[0].handling.code");
        let e = bad_json(r#"{"default_handling": {"method": "ring", "text": "x"}}"#);
        assert_eq!(e.details[0].field, "default_handling");
        assert_eq!(e.details[0].reason, "`text` is not a field of method ring");
        let e = bad_json(
            r#"{"default_handling": {"method": "reject_with_message", "text": "x", "code": null}}"#,
        );
        assert_eq!(e.details[0].field, "default_handling.code");
        let e = bad_json(r#"{"default_handling": {"method": "forward"}}"#);
        assert_eq!(e.details[0].reason, "missing field `target`");
        // Not JSON: only the place in the text can be said.
        let e = bad_json(r#"{"ring_seconds": 3"#);
        assert!(
            e.details.is_empty() && e.message.starts_with("the request body is not valid JSON")
        );
        let e = bad_json(r#"{"ring_seconds": 3} x"#);
        assert!(
            e.message.starts_with("the request body is not valid JSON"),
            "{}",
            e.message
        );
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
