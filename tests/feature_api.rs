//! The feature-server API over real HTTP: profile, status, contacts (with import and
//! export), tenant settings and user policies. A server bound to 127.0.0.1:0 on a
//! SQLite store in a temp directory, and once on a fresh database of the real
//! PostgreSQL at `TSPS_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).

use futures::FutureExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use tsps::config::Secret;
use tsps::contacts::ContactNumber;
use tsps::notify::ChangeNotifier;
use tsps::store::prelude::*;
use tsps::store::{self, DynStore, SharedDirectory};
use tsps::web::{router, ApiState};
use tsps_actors::feature::Presence;
use tsps_actors::{TenantId, UserId};

const TOKEN: &str = "feature-token-123";
const DEFAULT_PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Records what the API told the live system, to check each write says so.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl ChangeNotifier for Recorder {
    fn user_changed(&self, tenant: TenantId, user: UserId) {
        self.0.lock().unwrap().push(format!("user {tenant} {user}"));
    }
    fn tenant_changed(&self, tenant: TenantId) {
        self.0.lock().unwrap().push(format!("tenant {tenant}"));
    }
}

struct Api {
    base: String,
    http: reqwest::Client,
    store: DynStore,
    notes: Arc<Recorder>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(store: DynStore) -> Api {
    let directory = SharedDirectory::load(store.clone()).await.unwrap();
    let notes = Arc::new(Recorder::default());
    let app = router(ApiState {
        directory,
        api_token: Some(Secret(TOKEN.into())),
        notify: notes.clone(),
        clock: std::sync::Arc::new(tsps_actors::ports::SystemClock),
        live: std::sync::Arc::new(tsps::web::live::NoLiveCalls),
        push: tsps::push::Hub::detached(),
        metrics: std::sync::Arc::new(tsps::metrics::NoMetrics),
        guard: std::sync::Arc::new(tsps::sip::auth::guard::Guard::new(Default::default())),
        quotas: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Api {
        base: format!("http://{addr}"),
        http: reqwest::Client::new(),
        store,
        notes,
        server,
    }
}

/// On SQLite in a temp directory (kept alive by the returned guard).
async fn start() -> (Api, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("features.db").display());
    (serve(store::open(&url, 2).await.unwrap()).await, dir)
}

impl Api {
    async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let resp = req.bearer_auth(TOKEN).send().await.unwrap();
        let status = resp.status();
        let is_json = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("application/json"));
        let text = resp.text().await.unwrap();
        if text.is_empty() {
            return (status, Value::Null);
        }
        assert!(is_json, "{status}: non-JSON body {text:?}");
        (status, serde_json::from_str(&text).unwrap())
    }
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }
    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }
    async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }
    async fn delete(&self, path: &str) -> StatusCode {
        self.call(Method::DELETE, path, None).await.0
    }
    /// Uploads a file body with a content type.
    async fn upload(&self, path: &str, content_type: &str, body: &str) -> (StatusCode, Value) {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body.to_string());
        self.send(req).await
    }
    /// Downloads a file: status, content type and text.
    async fn download(&self, path: &str) -> (StatusCode, String, String) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let ct = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, ct, resp.text().await.unwrap())
    }
    async fn tenant(&self, domain: &str) -> String {
        let (status, t) = self
            .post("/api/v1/tenants", json!({"domain": domain, "name": domain}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{t}");
        t["id"].as_str().unwrap().to_string()
    }
    async fn user(&self, tenant: &str, extension: &str) -> String {
        let (status, u) = self
            .post(
                &format!("/api/v1/tenants/{tenant}/users"),
                json!({"extension": extension, "display_name": format!("User {extension}")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{u}");
        u["id"].as_str().unwrap().to_string()
    }
    async fn swiss(&self, tenant: &str) {
        let (status, body) = self
            .put(
                &format!("/api/v1/tenants/{tenant}/settings"),
                json!({"dialing": {"country_code": "41", "national_prefix": "0",
                    "international_prefix": "00"}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    fn notes(&self) -> Vec<String> {
        std::mem::take(&mut *self.notes.0.lock().unwrap())
    }
    async fn lookup(&self, tenant: &str, user: &str) -> Vec<ContactNumber> {
        self.store
            .contact_lookup_table(tenant.parse().unwrap(), user.parse().unwrap())
            .await
            .unwrap()
    }
}

fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["error"]["code"], code, "{}", got.1);
    assert!(
        got.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        got.1
    );
}

/// The (field, reason) pairs of a 422.
fn details(got: &(StatusCode, Value)) -> Vec<(String, String)> {
    got.1["error"]["details"]
        .as_array()
        .unwrap_or_else(|| panic!("no details: {}", got.1))
        .iter()
        .map(|d| {
            (
                d["field"].as_str().unwrap().to_string(),
                d["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn numbers(contact: &Value) -> Vec<&str> {
    contact["numbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["number"].as_str().unwrap())
        .collect()
}

/// A profile using most features, valid for extension 1001 when 1002 exists.
fn rich_profile() -> Value {
    json!({
        "handling_codes": [
            {"name": "VIP", "handling": {"method": "ring"}},
            {"name": "Family", "handling": {"method": "sequential",
                "steps": [{"target": "devices", "seconds": 15},
                          {"target": {"number": "+41795550101"}, "seconds": 20}],
                "fallback": {"extension": "1002"}}},
            {"name": "Block", "handling": {"method": "reject_declined"}}
        ],
        "default_handling": {"method": "ring"},
        "simultaneous": [{"number": "+41795550101"}],
        "ring_seconds": 25,
        "forwarding": {
            "busy": {"extension": "1002"},
            "no_answer": {"target": "attendant", "seconds": 20},
            "unreachable": {"number": "+41445550199"},
            "always": null,
            "selective": [{"when": {"callers": [], "schedule": "!business",
                "statuses": [], "codes": ["VIP"]},
                           "target": {"number": "+41795550101"}}]
        },
        "dnd": {"enabled": false, "exceptions": ["VIP"]},
        "call_waiting": false,
        "schedules": [
            {"name": "business", "weekly": [{"days": ["mon", "tue", "wed", "thu", "fri"],
                "start": "08:00", "end": "17:00"}], "dates": [], "except": ["holidays"]},
            {"name": "holidays", "weekly": [], "dates": [{"from": "2026-12-24", "to": "2026-12-26"}],
                "except": []}
        ],
        "caller_rules": {"reject_anonymous": true, "blocked": ["+4190*"]},
        "attendant": {"extension": "1002"}
    })
}

// ---------------------------------------------------------------- profile and status

#[tokio::test]
async fn profile_round_trip() {
    let (api, _dir) = start().await;
    let t = api.tenant("a.test").await;
    let u = api.user(&t, "1001").await;
    api.user(&t, "1002").await;
    let path = format!("/api/v1/tenants/{t}/users/{u}/profile");

    // Nothing stored: the defaults.
    let (status, default) = api.get(&path).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(default["ring_seconds"], 30);
    assert_eq!(default["call_waiting"], true);
    assert_eq!(default["default_handling"], json!({"method": "ring"}));
    api.notes();

    let (status, saved) = api.put(&path, rich_profile()).await;
    assert_eq!(status, StatusCode::OK, "{saved}");
    assert_eq!(api.notes(), [format!("user {t} {u}")]);
    let (_, got) = api.get(&path).await;
    assert_eq!(got, saved);
    assert_eq!(got, rich_profile());

    // Omitted fields take their defaults; unknown fields are refused.
    let (status, partial) = api.put(&path, json!({"ring_seconds": 40})).await;
    assert_eq!(status, StatusCode::OK, "{partial}");
    assert_eq!(partial["ring_seconds"], 40);
    assert_eq!(partial["handling_codes"], json!([]));
    let got = api
        .put(&path, json!({"forwarding": {"sometimes": null}}))
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "bad_json");
    assert_eq!(api.get(&path).await.1["ring_seconds"], 40);
}

#[tokio::test]
async fn an_invalid_profile_is_422_listing_every_problem() {
    let (api, _dir) = start().await;
    let t = api.tenant("a.test").await;
    let u = api.user(&t, "1001").await;
    api.user(&t, "1002").await;
    let path = format!("/api/v1/tenants/{t}/users/{u}/profile");
    api.put(&path, json!({"ring_seconds": 35})).await;
    api.notes();

    let bad = json!({
        "handling_codes": [{"name": "VIP", "handling": {"method": "forward",
            "target": {"extension": "4711"}}}],
        "forwarding": {"busy": {"extension": "1001"}, "always": {"extension": "1002"}},
        "dnd": {"enabled": true, "exceptions": ["Family"]},
        "schedules": [{"name": "business", "weekly": [
            {"days": ["mon"], "start": "08:00", "end": "12:00"},
            {"days": ["mon"], "start": "11:00", "end": "17:00"}]}]
    });
    let got = api.put(&path, bad).await;
    assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, "invalid_profile");
    let mut d = details(&got);
    d.sort();
    assert_eq!(
        d,
        [
            (
                "dnd.exceptions[0]".to_string(),
                "unknown handling code".to_string()
            ),
            (
                "forwarding.busy".into(),
                "forwards to the user's own extension (a loop)".into()
            ),
            (
                "handling_codes[0].handling.target".into(),
                "extension 4711 names no user of the tenant".into()
            ),
            (
                "schedules[0].weekly".into(),
                "ranges overlap on the same day".into()
            ),
        ]
    );
    assert!(
        got.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("4 problems"),
        "{}",
        got.1
    );
    // Nothing was stored and nobody was told.
    assert_eq!(api.get(&path).await.1["ring_seconds"], 35);
    assert_eq!(api.notes(), Vec::<String>::new());

    // One problem: the message names it.
    let got = api
        .put(&path, json!({"simultaneous": [{"extension": "1001"}]}))
        .await;
    assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, "invalid_profile");
    assert_eq!(
        got.1["error"]["message"],
        "invalid profile: simultaneous[0]: forwards to the user's own extension (a loop)"
    );
}

#[tokio::test]
async fn a_handling_code_in_use_by_contacts_cannot_be_removed() {
    let (api, _dir) = start().await;
    let t = api.tenant("a.test").await;
    let u = api.user(&t, "1001").await;
    let path = format!("/api/v1/tenants/{t}/users/{u}/profile");
    let vip = json!({"handling_codes": [{"name": "VIP", "handling": {"method": "ring"}}]});
    assert_eq!(api.put(&path, vip.clone()).await.0, StatusCode::OK);
    let (status, c) = api
        .post(
            &format!("/api/v1/tenants/{t}/users/{u}/contacts"),
            json!({"name": "Boss", "handling_code": "VIP", "numbers": [{"number": "+41445550100"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");

    let got = api.put(&path, json!({})).await;
    assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, "invalid_profile");
    assert_eq!(
        details(&got),
        [(
            "handling_codes".to_string(),
            "\"VIP\" is still the handling code of 1 personal contact(s); change those contacts first"
                .to_string()
        )]
    );
    assert_eq!(
        api.get(&path).await.1["handling_codes"],
        vip["handling_codes"]
    );
    // Untagged, the code can go.
    let id = c["id"].as_str().unwrap();
    let (status, _) = api
        .put(
            &format!("/api/v1/tenants/{t}/users/{u}/contacts/{id}"),
            json!({"name": "Boss", "numbers": [{"number": "+41445550100"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(api.put(&path, json!({})).await.0, StatusCode::OK);
}

#[tokio::test]
async fn status_round_trip() {
    let (api, _dir) = start().await;
    let t = api.tenant("a.test").await;
    let u = api.user(&t, "1001").await;
    let path = format!("/api/v1/tenants/{t}/users/{u}/status");
    assert_eq!(
        api.get(&path).await,
        (StatusCode::OK, json!({"presence": "available"}))
    );
    for p in ["away", "in_meeting", "do_not_disturb", "busy", "available"] {
        api.notes();
        assert_eq!(
            api.put(&path, json!({"presence": p})).await,
            (StatusCode::OK, json!({"presence": p}))
        );
        assert_eq!(api.get(&path).await.1, json!({"presence": p}));
        assert_eq!(api.notes(), [format!("user {t} {u}")]);
    }
    // The status is kept apart from the profile: a profile PUT leaves it.
    api.put(&path, json!({"presence": "away"})).await;
    api.put(
        &format!("/api/v1/tenants/{t}/users/{u}/profile"),
        json!({"ring_seconds": 20}),
    )
    .await;
    assert_eq!(api.get(&path).await.1, json!({"presence": "away"}));
    let got = api.put(&path, json!({"presence": "sleeping"})).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "bad_json");
    let got = api
        .put(&path, json!({"presence": "away", "until": "5"}))
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "bad_json");
    let nobody = UserId::new();
    let got = api
        .put(
            &format!("/api/v1/tenants/{t}/users/{nobody}/status"),
            json!({"presence": "away"}),
        )
        .await;
    assert_error(&got, StatusCode::NOT_FOUND, "not_found");
}

// ---------------------------------------------------------------- contacts

#[tokio::test]
async fn contacts_crud_with_normalization() {
    let (api, _dir) = start().await;
    let t = api.tenant("a.test").await;
    let u = api.user(&t, "1001").await;
    api.swiss(&t).await;
    api.put(
        &format!("/api/v1/tenants/{t}/users/{u}/profile"),
        json!({"handling_codes": [{"name": "VIP", "handling": {"method": "ring"}}]}),
    )
    .await;
    let personal = format!("/api/v1/tenants/{t}/users/{u}/contacts");
    let shared = format!("/api/v1/tenants/{t}/contacts");
    api.notes();

    let (status, anna) = api
        .post(
            &personal,
            json!({"name": " Anna Muster ", "company": "Muster AG", "email": "anna@muster.test",
                "handling_code": "VIP",
                "numbers": [{"number": "044 555 01 00", "label": "work"},
                            {"number": "+41 (0)79 555 01 01", "label": "cell"},
                            {"number": "0041 44 555 01 00"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{anna}");
    assert_eq!(anna["name"], "Anna Muster");
    assert_eq!(anna["shared"], false);
    assert_eq!(anna["owner_user_id"], u.as_str());
    // Normalized to E.164, the same number twice kept once.
    assert_eq!(numbers(&anna), ["+41445550100", "+41795550101"]);
    assert_eq!(anna["numbers"][0]["label"], "work");
    assert_eq!(api.notes(), [format!("user {t} {u}")]);
    let id = anna["id"].as_str().unwrap();
    assert_eq!(
        api.get(&format!("{personal}/{id}")).await,
        (StatusCode::OK, anna.clone())
    );

    // A shared contact may name any code; it is the tenant's.
    let (status, desk) = api
        .post(
            &shared,
            json!({"name": "Front desk", "handling_code": "Sales",
                "numbers": [{"number": "044 555 00 00"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{desk}");
    assert_eq!(desk["shared"], true);
    assert_eq!(desk["owner_user_id"], Value::Null);
    assert_eq!(api.notes(), [format!("tenant {t}")]);
    let desk_id = desk["id"].as_str().unwrap();
    // Each list has its own contacts, and one is not found under the other.
    assert_eq!(api.get(&personal).await.1, json!([anna]));
    assert_eq!(api.get(&shared).await.1, json!([desk]));
    assert_error(
        &api.get(&format!("{shared}/{id}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &api.get(&format!("{personal}/{desk_id}")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // The call path sees both, personal first.
    let lookup: Vec<(String, bool)> = api
        .lookup(&t, &u)
        .await
        .into_iter()
        .map(|n| (n.number_e164, n.shared))
        .collect();
    assert_eq!(
        lookup,
        [
            ("+41445550100".to_string(), false),
            ("+41795550101".into(), false),
            ("+41445550000".into(), true)
        ]
    );

    // PUT replaces the whole contact.
    let (status, changed) = api
        .put(
            &format!("{personal}/{id}"),
            json!({"name": "Anna", "numbers": [{"number": "079 555 01 02"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(numbers(&changed), ["+41795550102"]);
    assert_eq!(changed["company"], Value::Null);
    assert_eq!(changed["handling_code"], Value::Null);
    assert_eq!(api.get(&format!("{personal}/{id}")).await.1, changed);

    // Bad input: 422 naming each bad number and the unknown code; nothing changes.
    let got = api
        .put(
            &format!("{personal}/{id}"),
            json!({"name": "Anna", "handling_code": "Sales",
                "numbers": [{"number": "+41 44 555 01 00"}, {"number": "call me maybe"},
                            {"number": "5550100"}]}),
        )
        .await;
    assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, "invalid_contact");
    assert_eq!(
        details(&got),
        [
            (
                "numbers[1]".to_string(),
                "\"call me maybe\" contains letters".to_string()
            ),
            (
                "numbers[2]".into(),
                "\"5550100\" is not a valid number in the numbering plan of +41 (CH)".into()
            ),
            (
                "handling_code".into(),
                "\"Sales\" is not one of the user's handling codes".into()
            ),
        ]
    );
    assert_eq!(api.get(&format!("{personal}/{id}")).await.1, changed);
    let got = api
        .post(&personal, json!({"name": "", "numbers": []}))
        .await;
    assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, "invalid_contact");
    assert_eq!(
        got.1["error"]["message"],
        "invalid contact: name: must not be empty"
    );
    let got = api
        .post(&personal, json!({"name": "X", "phone": "1"}))
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "bad_json");

    // Delete.
    api.notes();
    assert_eq!(
        api.delete(&format!("{personal}/{id}")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(api.notes(), [format!("user {t} {u}")]);
    assert_eq!(
        api.delete(&format!("{personal}/{id}")).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.delete(&format!("{shared}/{desk_id}")).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(api.notes(), [format!("tenant {t}")]);
    assert_eq!(api.get(&personal).await.1, json!([]));
    assert_eq!(api.lookup(&t, &u).await, []);
}

#[tokio::test]
async fn without_a_country_code_numbers_must_be_international() {
    let (api, _dir) = start().await;
    let t = api.tenant("a.test").await;
    let shared = format!("/api/v1/tenants/{t}/contacts");
    let got = api
        .post(
            &shared,
            json!({"name": "X", "numbers": [{"number": "044 555 01 00"}]}),
        )
        .await;
    assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, "invalid_contact");
    assert_eq!(
        details(&got)[0].1,
        "\"044 555 01 00\" is a national number, but the tenant has no country code in its dialing rules"
    );
    let (status, c) = api
        .post(
            &shared,
            json!({"name": "X", "numbers": [{"number": "0041 44 555 01 00"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    assert_eq!(numbers(&c), ["+41445550100"]);
}

#[tokio::test]
async fn profile_numbers_and_caller_patterns_are_stored_in_e164() {
    let (api, _dir) = start().await;
    let t = api.tenant("a.test").await;
    api.swiss(&t).await;
    let u = api.user(&t, "1001").await;
    api.user(&t, "1002").await;
    let path = format!("/api/v1/tenants/{t}/users/{u}/profile");
    let (status, p) = api
        .put(
            &path,
            json!({
                "forwarding": {
                    "busy": {"number": "044 555 01 00"},
                    "selective": [{"when": {"callers": ["079*", "1002"]},
                        "target": {"number": "0033 1 23 45 67 89"}}]
                },
                "caller_rules": {"blocked": ["+41 (0)44 555 02 00"]}
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(p["forwarding"]["busy"], json!({"number": "+41445550100"}));
    let sel = &p["forwarding"]["selective"][0];
    assert_eq!(sel["when"]["callers"], json!(["+4179*", "1002"]));
    assert_eq!(sel["target"], json!({"number": "+33123456789"}));
    assert_eq!(p["caller_rules"]["blocked"], json!(["+41445550200"]));
    let (_, stored) = api.get(&path).await;
    assert_eq!(stored, p, "stored as returned");

    let got = api
        .put(
            &path,
            json!({"forwarding": {"always": {"number": "call me"}}}),
        )
        .await;
    assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, "invalid_profile");
    assert_eq!(details(&got)[0].0, "forwarding.always");
}

const VCARDS: &str = "BEGIN:VCARD\r
VERSION:3.0\r
N:Muster;Anna;;;\r
FN:Anna Muster\r
ORG:Muster\\, Söhne & Co\r
EMAIL;TYPE=INTERNET:anna@muster.test\r
TEL;TYPE=WORK,VOICE:044 555 01 00\r
item1.TEL;TYPE=CELL:+41 79 555 01 01\r
X-TSPS-HANDLING-CODE:VIP\r
END:VCARD\r
BEGIN:VCARD\r
VERSION:4.0\r
FN:Bob Baumann\r
TEL;VALUE=uri;TYPE=home:tel:+41-44-555-02-00\r
END:VCARD\r
BEGIN:VCARD\r
VERSION:3.0\r
FN:Carl Unknown-Code\r
TEL:044 555 03 00\r
X-TSPS-HANDLING-CODE:Golf\r
END:VCARD\r
BEGIN:VCARD\r
VERSION:3.0\r
FN:Dora Letters\r
TEL:0800 FLOWERS\r
END:VCARD\r
BEGIN:VCARD\r
VERSION:3.0\r
FN:Eve Unfinished\r
";

#[tokio::test]
async fn vcard_import_then_export_round_trip() {
    let (api, _dir) = start().await;
    let t = api.tenant("a.test").await;
    let u = api.user(&t, "1001").await;
    api.swiss(&t).await;
    api.put(
        &format!("/api/v1/tenants/{t}/users/{u}/profile"),
        json!({"handling_codes": [{"name": "VIP", "handling": {"method": "ring"}}]}),
    )
    .await;
    let base = format!("/api/v1/tenants/{t}/users/{u}/contacts");
    api.notes();

    let (status, summary) = api
        .upload(
            &format!("{base}/import"),
            "text/vcard; charset=utf-8",
            VCARDS,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["created"], 2, "{summary}");
    assert_eq!(summary["unchanged"], 0);
    assert_eq!(summary["skipped"], 3);
    assert_eq!(
        summary["errors"],
        json!([
            {"line": 16, "message": "handling_code: \"Golf\" is not one of the user's handling codes"},
            {"line": 22, "message": "numbers[0]: \"0800 FLOWERS\" contains letters"},
            {"line": 27, "message": "vCard has no END:VCARD"},
        ])
    );
    assert_eq!(api.notes(), [format!("user {t} {u}")]);
    let (_, list) = api.get(&base).await;
    let anna = &list[0];
    assert_eq!(anna["name"], "Anna Muster");
    assert_eq!(anna["company"], "Muster, Söhne & Co");
    assert_eq!(anna["email"], "anna@muster.test");
    assert_eq!(anna["handling_code"], "VIP");
    assert_eq!(numbers(anna), ["+41445550100", "+41795550101"]);
    assert_eq!(anna["numbers"][0]["label"], "work");
    assert_eq!(anna["numbers"][1]["label"], "cell");
    assert_eq!(numbers(&list[1]), ["+41445550200"]);

    // Export in both versions, and import the export into another user: the same.
    for (query, marker) in [("", "VERSION:3.0"), ("&version=4.0", "VERSION:4.0")] {
        let (status, ct, text) = api
            .download(&format!("{base}/export?format=vcard{query}"))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ct, "text/vcard; charset=utf-8");
        assert!(text.contains(marker), "{text}");
        assert!(text.contains("X-TSPS-HANDLING-CODE:VIP\r\n"), "{text}");

        let other = api
            .user(&t, &format!("20{}", marker.len() + query.len()))
            .await;
        api.put(
            &format!("/api/v1/tenants/{t}/users/{other}/profile"),
            json!({"handling_codes": [{"name": "VIP", "handling": {"method": "ring"}}]}),
        )
        .await;
        let other_base = format!("/api/v1/tenants/{t}/users/{other}/contacts");
        let (status, summary) = api
            .upload(&format!("{other_base}/import"), "text/vcard", &text)
            .await;
        assert_eq!(status, StatusCode::OK, "{summary}");
        assert_eq!(
            summary,
            json!({"created": 2, "unchanged": 0, "skipped": 0, "errors": []})
        );
        let strip = |v: Value| -> Vec<Value> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    let mut c = c.clone();
                    let o = c.as_object_mut().unwrap();
                    o.remove("id");
                    o.remove("owner_user_id");
                    c
                })
                .collect()
        };
        assert_eq!(strip(api.get(&other_base).await.1), strip(list.clone()));
    }

    // Importing the same file again creates nothing new.
    let (_, again) = api
        .upload(&format!("{base}/import"), "text/x-vcard", VCARDS)
        .await;
    assert_eq!(again["created"], 0, "{again}");
    assert_eq!(again["unchanged"], 2, "{again}");
    assert_eq!(api.get(&base).await.1.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn csv_import_then_export_round_trip() {
    let (api, _dir) = start().await;
    let t = api.tenant("a.test").await;
    api.swiss(&t).await;
    let base = format!("/api/v1/tenants/{t}/contacts");
    let csv = "name,company,email,phones,handling_code\n\
        \"Muster, Anna\",Muster AG,anna@muster.test,\"work:044 555 01 00;cell:+41 79 555 01 01\",VIP\n\
        Bob,,,0041 44 555 02 00,\n\
        Carl,,not-an-email,044 555 03 00,\n\
        Dora\n\
        =cmd|' /C calc'!A0,,,044 555 04 00,\n";
    let (status, summary) = api.upload(&format!("{base}/import"), "text/csv", csv).await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["created"], 3, "{summary}");
    assert_eq!(
        summary["errors"],
        json!([
            {"line": 4, "message": "email: must look like name@domain"},
            {"line": 5, "message": "has 1 fields, the header has 5"},
        ])
    );
    let (_, list) = api.get(&base).await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.get("name").unwrap().as_str().unwrap())
        .collect();
    assert_eq!(names, ["=cmd|' /C calc'!A0", "Bob", "Muster, Anna"]);
    assert_eq!(numbers(&list[2]), ["+41445550100", "+41795550101"]);
    assert_eq!(list[2]["handling_code"], "VIP");

    let (status, ct, text) = api.download(&format!("{base}/export?format=csv")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct, "text/csv; charset=utf-8");
    assert_eq!(
        text,
        "name,company,email,phones,handling_code\n\
         '=cmd|' /C calc'!A0,,,+41445550400,\n\
         Bob,,,+41445550200,\n\
         \"Muster, Anna\",Muster AG,anna@muster.test,work:+41445550100;cell:+41795550101,VIP\n"
    );
    // Into another tenant (whose rules do not matter: the export is E.164).
    let t2 = api.tenant("b.test").await;
    let (_, summary) = api
        .upload(
            &format!("/api/v1/tenants/{t2}/contacts/import"),
            "text/csv",
            &text,
        )
        .await;
    assert_eq!(summary["created"], 3, "{summary}");
    let (_, _, text2) = api
        .download(&format!("/api/v1/tenants/{t2}/contacts/export?format=csv"))
        .await;
    assert_eq!(text2, text);
}

#[tokio::test]
async fn import_and_export_refuse_what_they_cannot_read() {
    let (api, _dir) = start().await;
    let t = api.tenant("a.test").await;
    let base = format!("/api/v1/tenants/{t}/contacts");
    let got = api
        .upload(&format!("{base}/import"), "application/json", "{}")
        .await;
    assert_error(
        &got,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let got = api
        .upload(
            &format!("{base}/import"),
            "text/csv; charset=latin1",
            "name\nA\n",
        )
        .await;
    assert_error(
        &got,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let got = api
        .upload(
            &format!("{base}/import"),
            "text/csv",
            "nom,téléphone\nA,1\n",
        )
        .await;
    assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, "invalid_file");
    assert!(
        details(&got)[0].1.starts_with("line 1: unknown columns"),
        "{}",
        got.1
    );
    // A "vCard" without a single card is another file (or none): refused whole,
    // rather than 200 with everything skipped.
    for not_vcard in ["name,phones\nAnna,+41445550100\n", ""] {
        let got = api
            .upload(&format!("{base}/import"), "text/vcard", not_vcard)
            .await;
        assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, "invalid_file");
        assert_eq!(
            got.1["error"]["message"],
            "the file cannot be imported: body: line 1: the file holds no vCard (BEGIN:VCARD)"
        );
    }
    let resp = api
        .http
        .post(format!("{}{base}/import", api.base))
        .bearer_auth(TOKEN)
        .header("content-type", "text/vcard")
        .body(vec![0xff, 0xfe, 0x00])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let got = api.get(&format!("{base}/export?format=pdf")).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(api.get(&base).await.1, json!([]));
    // Too big for one request: a JSON 413, nothing stored.
    let huge = format!("name\n{}", "A\n".repeat(1_100_000));
    let got = api
        .upload(&format!("{base}/import"), "text/csv", &huge)
        .await;
    assert_error(&got, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert_eq!(api.get(&base).await.1, json!([]));
}

// ---------------------------------------------------------------- settings and policy

#[tokio::test]
async fn settings_and_policy_round_trip() {
    let (api, _dir) = start().await;
    let t = api.tenant("a.test").await;
    let u = api.user(&t, "1001").await;
    let u2 = api.user(&t, "1002").await;

    let settings = format!("/api/v1/tenants/{t}/settings");
    assert_eq!(
        api.get(&settings).await,
        (
            StatusCode::OK,
            json!({"dialing": {"country_code": "", "national_prefix": "0",
                "international_prefix": "00"}})
        )
    );
    api.notes();
    let us = json!({"dialing": {"country_code": "1", "national_prefix": "",
        "international_prefix": "011"}});
    assert_eq!(
        api.put(&settings, us.clone()).await,
        (StatusCode::OK, us.clone())
    );
    assert_eq!(api.get(&settings).await.1, us);
    assert_eq!(api.notes(), [format!("tenant {t}")]);
    let got = api
        .put(
            &settings,
            json!({"dialing": {"country_code": "+41", "national_prefix": "0",
                "international_prefix": "0"}}),
        )
        .await;
    assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, "invalid_settings");
    let fields: Vec<String> = details(&got).into_iter().map(|d| d.0).collect();
    assert_eq!(
        fields,
        ["dialing.country_code", "dialing.international_prefix"]
    );
    assert_eq!(api.get(&settings).await.1, us);

    let policy = format!("/api/v1/tenants/{t}/users/{u}/policy");
    assert_eq!(
        api.get(&policy).await,
        (
            StatusCode::OK,
            json!({"mode": "accept", "external_uri": null})
        )
    );
    let external = json!({"mode": "external", "external_uri": "sip:1001@127.0.0.1:5080"});
    assert_eq!(
        api.put(&policy, external.clone()).await,
        (StatusCode::OK, external.clone())
    );
    assert_eq!(api.get(&policy).await.1, external);
    assert_eq!(api.notes(), [format!("user {t} {u}")]);
    let reject = json!({"mode": "reject"});
    api.put(&format!("/api/v1/tenants/{t}/users/{u2}/policy"), reject)
        .await;
    api.notes();
    assert_eq!(
        api.get(&format!("/api/v1/tenants/{t}/policies")).await.1,
        json!([
            {"user_id": u, "mode": "external", "external_uri": "sip:1001@127.0.0.1:5080"},
            {"user_id": u2, "mode": "reject", "external_uri": null},
        ])
    );
    for (bad, reason) in [
        (
            json!({"mode": "external"}),
            "mode external needs the URI of the user's feature server",
        ),
        (
            json!({"mode": "external", "external_uri": "http://x.test/"}),
            "\"http://x.test/\" is not a sip: or sips: URI",
        ),
        (
            json!({"mode": "reject", "external_uri": "sip:a@127.0.0.1"}),
            "only mode external takes a URI, not reject",
        ),
    ] {
        let got = api.put(&policy, bad).await;
        assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, "invalid_policy");
        assert_eq!(
            details(&got),
            [("external_uri".to_string(), reason.to_string())]
        );
    }
    let got = api.put(&policy, json!({"mode": "maybe"})).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "bad_json");
    assert_eq!(api.get(&policy).await.1, external);
    assert_eq!(api.notes(), Vec::<String>::new());
}

// ---------------------------------------------------------------- tenant walls

#[tokio::test]
async fn tenant_b_paths_cannot_reach_tenant_a() {
    let (api, _dir) = start().await;
    let a = api.tenant("a.test").await;
    let b = api.tenant("b.test").await;
    let ua = api.user(&a, "1001").await;
    let ub = api.user(&b, "1001").await;
    api.swiss(&a).await;
    let a_profile = format!("/api/v1/tenants/{a}/users/{ua}/profile");
    api.put(&a_profile, json!({"ring_seconds": 45})).await;
    api.put(
        &format!("/api/v1/tenants/{a}/users/{ua}/status"),
        json!({"presence": "away"}),
    )
    .await;
    let (_, personal) = api
        .post(
            &format!("/api/v1/tenants/{a}/users/{ua}/contacts"),
            json!({"name": "Secret", "numbers": [{"number": "044 555 01 00"}]}),
        )
        .await;
    let (_, shared) = api
        .post(
            &format!("/api/v1/tenants/{a}/contacts"),
            json!({"name": "A desk", "numbers": [{"number": "044 555 00 00"}]}),
        )
        .await;
    let pid = personal["id"].as_str().unwrap();
    let sid = shared["id"].as_str().unwrap();
    api.notes();

    // A's user under B's path: 404 for every feature endpoint, reads and writes.
    let under_b = format!("/api/v1/tenants/{b}/users/{ua}");
    for path in [
        format!("{under_b}/profile"),
        format!("{under_b}/status"),
        format!("{under_b}/policy"),
        format!("{under_b}/contacts"),
        format!("{under_b}/contacts/{pid}"),
        format!("{under_b}/contacts/export?format=csv"),
        format!("/api/v1/tenants/{b}/users/{ub}/contacts/{pid}"),
        format!("/api/v1/tenants/{b}/contacts/{sid}"),
    ] {
        assert_error(&api.get(&path).await, StatusCode::NOT_FOUND, "not_found");
    }
    for (path, body) in [
        (format!("{under_b}/profile"), json!({"ring_seconds": 10})),
        (format!("{under_b}/status"), json!({"presence": "busy"})),
        (format!("{under_b}/policy"), json!({"mode": "reject"})),
        (
            format!("{under_b}/contacts/{pid}"),
            json!({"name": "Mine now"}),
        ),
        (
            format!("/api/v1/tenants/{b}/contacts/{sid}"),
            json!({"name": "Mine now"}),
        ),
    ] {
        assert_error(
            &api.put(&path, body).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    assert_error(
        &api.post(&format!("{under_b}/contacts"), json!({"name": "Planted"}))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    let got = api
        .upload(
            &format!("{under_b}/contacts/import"),
            "text/csv",
            "name\nPlanted\n",
        )
        .await;
    assert_error(&got, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        api.delete(&format!("{under_b}/contacts/{pid}")).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.delete(&format!("/api/v1/tenants/{b}/contacts/{sid}"))
            .await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(api.notes(), Vec::<String>::new());

    // B's own lists are empty; A's data is as it was.
    assert_eq!(
        api.get(&format!("/api/v1/tenants/{b}/contacts")).await.1,
        json!([])
    );
    assert_eq!(
        api.get(&format!("/api/v1/tenants/{b}/users/{ub}/contacts"))
            .await
            .1,
        json!([])
    );
    let (_, ct, export) = api
        .download(&format!("/api/v1/tenants/{b}/contacts/export?format=vcard"))
        .await;
    assert!(ct.starts_with("text/vcard"));
    assert_eq!(export, "");
    assert_eq!(api.lookup(&b, &ub).await, []);
    assert_eq!(api.get(&a_profile).await.1["ring_seconds"], 45);
    assert_eq!(
        api.get(&format!("/api/v1/tenants/{a}/users/{ua}/status"))
            .await
            .1,
        json!({"presence": "away"})
    );
    assert_eq!(
        api.get(&format!("/api/v1/tenants/{a}/users/{ua}/contacts/{pid}"))
            .await
            .1,
        personal
    );
    assert_eq!(
        api.get(&format!("/api/v1/tenants/{a}/contacts/{sid}"))
            .await
            .1,
        shared
    );
    assert_eq!(
        api.get(&format!("/api/v1/tenants/{a}/users/{ua}/policy"))
            .await
            .1["mode"],
        "accept"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_the_feature_api() {
    let (api, _dir) = start().await;
    let (status, doc) = api.get("/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for (p, methods) in [
        (
            "/api/v1/tenants/{tenant_id}/users/{user_id}/profile",
            &["get", "put"][..],
        ),
        (
            "/api/v1/tenants/{tenant_id}/users/{user_id}/status",
            &["get", "put"],
        ),
        (
            "/api/v1/tenants/{tenant_id}/users/{user_id}/policy",
            &["get", "put"],
        ),
        ("/api/v1/tenants/{tenant_id}/policies", &["get"]),
        ("/api/v1/tenants/{tenant_id}/settings", &["get", "put"]),
        (
            "/api/v1/tenants/{tenant_id}/users/{user_id}/contacts",
            &["get", "post"],
        ),
        (
            "/api/v1/tenants/{tenant_id}/users/{user_id}/contacts/{contact_id}",
            &["get", "put", "delete"],
        ),
        (
            "/api/v1/tenants/{tenant_id}/users/{user_id}/contacts/import",
            &["post"],
        ),
        (
            "/api/v1/tenants/{tenant_id}/users/{user_id}/contacts/export",
            &["get"],
        ),
        ("/api/v1/tenants/{tenant_id}/contacts", &["get", "post"]),
        (
            "/api/v1/tenants/{tenant_id}/contacts/{contact_id}",
            &["get", "put", "delete"],
        ),
        ("/api/v1/tenants/{tenant_id}/contacts/import", &["post"]),
        ("/api/v1/tenants/{tenant_id}/contacts/export", &["get"]),
    ] {
        for m in methods {
            assert!(paths[p][m].is_object(), "missing {m} {p}");
        }
    }
    let import = &paths["/api/v1/tenants/{tenant_id}/contacts/import"]["post"];
    assert!(
        import["requestBody"]["content"]["text/vcard"].is_object(),
        "{import}"
    );
    assert!(
        import["requestBody"]["content"]["text/csv"].is_object(),
        "{import}"
    );
    let s = &doc["components"]["schemas"];
    for field in [
        "handling_codes",
        "forwarding",
        "dnd",
        "schedules",
        "caller_rules",
        "attendant",
    ] {
        assert!(
            s["Profile"]["properties"][field].is_object(),
            "Profile.{field}: {s}"
        );
    }
    for name in [
        "Handling",
        "Target",
        "Forwarding",
        "Schedule",
        "Presence",
        "ContactDraft",
        "ContactView",
        "ImportSummary",
        "TenantSettings",
        "DialingRules",
        "UserPolicy",
        "FieldIssue",
    ] {
        assert!(s[name].is_object(), "missing schema {name}");
    }
    assert!(
        s["ErrorDetail"]["properties"]["details"].is_object(),
        "{}",
        s["ErrorDetail"]
    );
}

// ---------------------------------------------------------------- PostgreSQL

/// `postgres://user@host:port/db?x` with the database name replaced.
fn with_database(url: &str, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("url has a scheme");
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let query = rest
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{scheme}://{authority}/{db}{query}")
}

#[tokio::test]
async fn the_feature_api_on_postgres() {
    use sqlx::Connection;
    let admin_url =
        std::env::var("TSPS_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_ADMIN_URL.to_string());
    let db = format!("tsps_feature_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("connect to PostgreSQL (set TSPS_TEST_PG_URL)");
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let pg = Arc::new(
        store::PgStore::open(&with_database(&admin_url, &db), 4)
            .await
            .expect("open postgres store"),
    );
    let result = AssertUnwindSafe(async {
        let api = serve(pg.clone()).await;
        let t = api.tenant("a.test").await;
        let u = api.user(&t, "1001").await;
        api.user(&t, "1002").await;
        api.swiss(&t).await;
        let profile = format!("/api/v1/tenants/{t}/users/{u}/profile");
        assert_eq!(api.put(&profile, rich_profile()).await, (StatusCode::OK, rich_profile()));
        assert_eq!(api.get(&profile).await.1, rich_profile());
        let got = api
            .put(&profile, json!({"forwarding": {"busy": {"extension": "1001"}}}))
            .await;
        assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, "invalid_profile");
        api.put(
            &format!("/api/v1/tenants/{t}/users/{u}/status"),
            json!({"presence": "in_meeting"}),
        )
        .await;
        let base = format!("/api/v1/tenants/{t}/users/{u}/contacts");
        let (_, summary) = api.upload(&format!("{base}/import"), "text/vcard", VCARDS).await;
        assert_eq!(summary["created"], 2, "{summary}");
        assert_eq!(summary["skipped"], 3, "{summary}");
        let (_, _, csv) = api.download(&format!("{base}/export?format=csv")).await;
        assert_eq!(
            csv,
            "name,company,email,phones,handling_code\n\
             Anna Muster,\"Muster, Söhne & Co\",anna@muster.test,work:+41445550100;cell:+41795550101,VIP\n\
             Bob Baumann,,,home:+41445550200,\n"
        );
        let (status, c) = api
            .put(
                &format!("/api/v1/tenants/{t}/settings"),
                json!({"dialing": {"country_code": "49", "national_prefix": "0",
                    "international_prefix": "00"}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{c}");
        let lookup = api.lookup(&t, &u).await;
        assert_eq!(lookup.len(), 3);
        assert_eq!(lookup[0].handling_code.as_deref(), Some("VIP"));
        // As the call path reads it.
        let (features, presence) = pg
            .get_profile(t.parse().unwrap(), u.parse().unwrap())
            .await
            .unwrap();
        assert_eq!(serde_json::to_value(features).unwrap(), rich_profile());
        assert_eq!(presence, Presence::InMeeting);
        let b = api.tenant("b.test").await;
        assert_error(
            &api.get(&format!("/api/v1/tenants/{b}/users/{u}/profile")).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    })
    .catch_unwind()
    .await;
    pg.close().await;
    sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

// ---------------------------------------------------------------- quotas

/// Issue 10: 60,000 imported contacts raised memory by 140 MB. A tenant's contacts,
/// a user's, and a tenant's devices are capped; the operator sets a tenant's own caps.
#[tokio::test]
async fn quotas_cap_contacts_and_devices_with_errors_that_say_the_limit() {
    let (api, _dir) = start().await;
    let t = api.tenant("q.test").await;
    let u = api.user(&t, "1001").await;
    let quotas = format!("/api/v1/tenants/{t}/quotas");
    let (status, q) = api.get(&quotas).await;
    assert_eq!(status, StatusCode::OK, "{q}");
    assert_eq!(
        q["contacts"],
        json!({"limit": 50_000, "used": 0, "own": false})
    );
    assert_eq!(q["contacts_per_user"]["limit"], 5_000);
    assert_eq!(q["devices"]["limit"], 1_000);
    let (status, q) = api
        .put(
            &quotas,
            json!({"contacts": 5, "contacts_per_user": 3, "devices": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{q}");
    assert_eq!(q["contacts"]["own"], true);
    assert_eq!(q["subscriptions"], json!({"limit": 10_000, "own": false}));

    let personal = format!("/api/v1/tenants/{t}/users/{u}/contacts");
    for i in 0..3 {
        let (status, c) = api
            .post(&personal, json!({"name": format!("Friend {i}")}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{c}");
    }
    let (status, err) = api.post(&personal, json!({"name": "One too many"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert_eq!(err["error"]["code"], "quota_exceeded");
    assert_eq!(
        err["error"]["message"],
        "a user's personal contacts may hold 3 and holds 3: no more fit"
    );
    assert_eq!(err["error"]["details"][0]["field"], "contacts_per_user");

    // A file that does not fit is refused whole: nothing of it is kept.
    let cards: String = (0..3)
        .map(|i| format!("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Desk {i}\r\nEND:VCARD\r\n"))
        .collect();
    let shared = format!("/api/v1/tenants/{t}/contacts");
    let (status, err) = api
        .upload(
            &format!("{shared}/import"),
            "text/vcard; charset=utf-8",
            &cards,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert_eq!(
        err["error"]["message"],
        "the tenant's contacts (shared and personal) may hold 5 and holds 3: these 3 do not fit (2 more would)"
    );
    assert_eq!(api.get(&shared).await.1, json!([]));
    assert_eq!(api.get(&quotas).await.1["contacts"]["used"], 3);

    let devices = format!("/api/v1/tenants/{t}/users/{u}/devices");
    let (status, d) = api
        .post(
            &devices,
            json!({"sip_username": "1001", "password": "secret1001"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{d}");
    let (status, err) = api
        .post(
            &devices,
            json!({"sip_username": "1001b", "password": "secret1001"}),
        )
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("quota_exceeded"))
    );
    // Back to the defaults: null is "the platform's".
    let (_, q) = api.put(&quotas, json!({"devices": null})).await;
    assert_eq!(
        q["devices"],
        json!({"limit": 1_000, "used": 1, "own": false})
    );
    let (status, _) = api
        .post(
            &devices,
            json!({"sip_username": "1001b", "password": "secret1001"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}
