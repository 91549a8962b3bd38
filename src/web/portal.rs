//! The web portal: a single-page app in vanilla JavaScript (ES modules), HTML and CSS,
//! compiled into the binary, so a deployment needs no front-end build or asset files.
//!
//! Served outside `/api/v1` and outside the bearer-token check: the pages hold no data;
//! everything they show comes from the API with the user's session. `/` redirects to
//! `/portal/`, which is the app (its login screen when not logged in); its files are
//! under `/portal/assets/`. Every response carries a strict Content-Security-Policy
//! (same-origin only, no inline script or style, no eval) and the other security
//! headers; files carry a strong ETag so a browser revalidates cheaply.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// `connect-src 'self'` covers the event WebSocket on the same host and port (CSP 3).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    /// Quoted strong validator: a prefix of the content's SHA-256.
    etag: String,
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        (
            $name,
            $type,
            include_bytes!(concat!("portal/", $name)).as_slice(),
        )
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the app; `index.html` is served at `/portal/`, the rest under assets.
const FILES: &[(&str, &str, &[u8])] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("events.js", JS),
    asset!("calls.js", JS),
    asset!("chat.js", JS),
    asset!("login.js", JS),
    asset!("home.js", JS),
    asset!("incoming.js", JS),
    asset!("history.js", JS),
    asset!("contacts.js", JS),
    asset!("settings.js", JS),
    asset!("admin.js", JS),
];

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|&(name, content_type, body)| Asset {
            name,
            content_type,
            body,
            etag: format!("\"{}\"", &hex::encode(Sha256::digest(body))[..20]),
        })
        .collect()
});

fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// The portal's routes, to be merged into the application router (any state).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/portal/") }))
        .route("/portal", get(|| async { Redirect::to("/portal/") }))
        .route("/portal/", get(index))
        .route("/portal/assets/{name}", get(asset))
        .layer(middleware::map_response(security_headers))
}

async fn index(headers: HeaderMap) -> Response {
    serve(
        find("index.html").expect("index.html is embedded"),
        &headers,
    )
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match find(&name).filter(|a| a.name != "index.html") {
        Some(a) => serve(a, &headers),
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    // File names carry no hash (modules import each other by name), so the browser
    // keeps a copy but asks each time; an unchanged file costs a 304 with no body.
    let cache = (header::CACHE_CONTROL, "no-cache");
    let etag = (header::ETAG, asset.etag.as_str());
    if if_none_match(request, &asset.etag) {
        return (StatusCode::NOT_MODIFIED, [cache, etag]).into_response();
    }
    (
        [(header::CONTENT_TYPE, asset.content_type), cache, etag],
        asset.body,
    )
        .into_response()
}

/// RFC 9110 §13.1.2: a list of entity tags or `*`; weak comparison.
fn if_none_match(request: &HeaderMap, etag: &str) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    let set = [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_an_asset_imports_is_embedded() {
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(a.body).expect("utf-8");
            for line in text.lines() {
                let Some(rest) = line.split(" from './").nth(1) else {
                    continue;
                };
                let target = rest.split('\'').next().unwrap_or_default();
                assert!(
                    find(target).is_some(),
                    "{} imports {target}, which is not in FILES",
                    a.name
                );
            }
        }
    }

    #[test]
    fn every_file_of_the_portal_folder_is_served() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web/portal");
        for entry in std::fs::read_dir(dir).expect("portal folder") {
            let name = entry.expect("entry").file_name();
            let name = name.to_string_lossy();
            assert!(find(&name).is_some(), "{name} is not in FILES");
        }
    }

    #[test]
    fn etag_comparison_accepts_lists_weak_tags_and_star() {
        let mut h = HeaderMap::new();
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"x\", W/\"abc\""),
        );
        assert!(if_none_match(&h, "\"abc\""));
        assert!(!if_none_match(&h, "\"abd\""));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(if_none_match(&h, "\"abd\""));
        assert!(!if_none_match(&HeaderMap::new(), "\"abc\""));
    }

    #[test]
    fn no_inline_script_or_style_in_the_page() {
        let html = std::str::from_utf8(find("index.html").expect("index").body).expect("utf-8");
        assert!(!html.contains("<script>"), "inline script");
        assert!(!html.contains("<style"), "inline style");
        assert!(!html.contains(" style="), "inline style attribute");
        // No inline event handler attributes (` onclick=`): the CSP would block them.
        for (i, _) in html.match_indices(" on") {
            let name: String = html[i + 3..]
                .chars()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            let after = html[i + 3 + name.len()..].chars().next();
            assert!(
                name.is_empty() || after != Some('='),
                "inline handler on{name}"
            );
        }
    }
}
