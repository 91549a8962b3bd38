//! An HTTP client that acts as a browser as far as the API can tell: it keeps the
//! session cookie it is given and sends the CSRF token with writes when asked to.

use super::Tsps;
use reqwest::header::{HeaderMap, SET_COOKIE};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// A browser, as far as the API can tell: keeps the session cookie it is given and
/// sends the CSRF token with writes when asked to.
pub struct Browser {
    base: String,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
}

pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub headers: HeaderMap,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl Browser {
    pub fn new(tsps: &Tsps) -> Browser {
        Browser {
            base: format!("{}/api/v1", tsps.http_url()),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
            cookie: None,
            csrf: None,
        }
    }

    /// One request; `csrf` adds the session's token as `X-CSRF-Token`.
    pub fn send(&mut self, method: Method, path: &str, body: Option<Value>, csrf: bool) -> Answer {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(c) = &self.cookie {
            req = req.header("cookie", format!("tsps_session={c}"));
        }
        if csrf {
            req = req.header("x-csrf-token", self.csrf.clone().unwrap_or_default());
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let (status, headers, text) = self.rt.block_on(async {
            let resp = req
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            (status, headers, resp.text().await.unwrap_or_default())
        });
        // Like a browser: a Set-Cookie replaces (or, empty, removes) the cookie.
        for v in headers.get_all(SET_COOKIE) {
            let v = v.to_str().unwrap();
            if let Some(rest) = v.strip_prefix("tsps_session=") {
                let value = rest.split(';').next().unwrap_or("");
                self.cookie = (!value.is_empty()).then(|| value.to_string());
            }
        }
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{method} {url}: {status}, not JSON ({e}): {text}"))
        };
        Answer {
            status,
            body,
            headers,
        }
    }

    pub fn get(&mut self, path: &str) -> Answer {
        self.send(Method::GET, path, None, false)
    }

    /// A write with the CSRF token, as the portal sends it.
    pub fn write(&mut self, method: Method, path: &str, body: Value) -> Answer {
        self.send(method, path, Some(body), true)
    }

    pub fn login(&mut self, domain: &str, login: &str, password: &str) -> Answer {
        let a = self.send(
            Method::POST,
            "/auth/login",
            Some(json!({"domain": domain, "login": login, "password": password})),
            false,
        );
        if a.status == 200 {
            self.csrf = a.body["csrf_token"].as_str().map(str::to_string);
        }
        a
    }

    /// A platform operator's login: no domain.
    pub fn operator_login(&mut self, login: &str, password: &str) -> Answer {
        let a = self.send(
            Method::POST,
            "/auth/login",
            Some(json!({"operator": true, "login": login, "password": password})),
            false,
        );
        if a.status == 200 {
            self.csrf = a.body["csrf_token"].as_str().map(str::to_string);
        }
        a
    }

    /// Logs in and panics unless it worked; returns the user's (tenant, user) ids.
    pub fn logged_in(&mut self, domain: &str, login: &str, password: &str) -> (String, String) {
        let a = self.login(domain, login, password);
        assert_eq!(a.status, 200, "login {login}@{domain}: {}", a.body);
        let u = &a.body["user"];
        (
            u["tenant_id"].as_str().unwrap().to_string(),
            u["user_id"].as_str().unwrap().to_string(),
        )
    }
}
