//! The REST API over real HTTP: a server bound to 127.0.0.1:0 on a SQLite store in a
//! temp directory, driven with reqwest.

use chrono::{TimeZone, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tsps::config::Secret;
use tsps::sip::digest::{ha1_md5, ha1_sha256};
use tsps::store::{self, SharedDirectory};
use tsps::web::{router, ApiState};
use tsps_actors::model::{Binding, CallDirection, CallOutcome, CallRecord, LegRecord, Party};
use tsps_actors::{CallId, DeviceId, LegId, TenantId, UserId};

const TOKEN: &str = "test-token-123";

struct Api {
    base: String,
    http: reqwest::Client,
    directory: SharedDirectory,
    server: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for Api {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn start() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("api.db").display());
    let store = store::open(&url, 2).await.unwrap();
    let directory = SharedDirectory::load(store).await.unwrap();
    let app = router(ApiState {
        directory: directory.clone(),
        api_token: Some(Secret(TOKEN.into())),
        notify: std::sync::Arc::new(tsps::notify::NoopNotifier),
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
        directory,
        server,
        _dir: dir,
    }
}

impl Api {
    /// An authorised request; returns the status and the JSON body (Null if empty).
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        read(resp).await
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
    /// Creates a tenant and returns its id.
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
}

/// Every response of the API is JSON, errors included.
async fn read(resp: reqwest::Response) -> (StatusCode, Value) {
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

#[tokio::test]
async fn healthz_needs_no_token() {
    let api = start().await;
    let resp = api
        .http
        .get(format!("{}/healthz", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(read(resp).await, (StatusCode::OK, json!({"status": "ok"})));
}

#[tokio::test]
async fn api_requires_the_bearer_token() {
    let api = start().await;
    let url = format!("{}/api/v1/tenants", api.base);
    let resp = api.http.get(&url).send().await.unwrap();
    assert_eq!(
        resp.headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap(),
        "Bearer"
    );
    assert_error(&read(resp).await, StatusCode::UNAUTHORIZED, "unauthorized");
    let resp = api
        .http
        .get(&url)
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_error(&read(resp).await, StatusCode::UNAUTHORIZED, "unauthorized");
    let resp = api
        .http
        .get(&url)
        .header("authorization", format!("Basic {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_error(&read(resp).await, StatusCode::UNAUTHORIZED, "unauthorized");
    // Writes too, and nothing is written.
    let resp = api
        .http
        .post(&url)
        .json(&json!({"domain": "a.test", "name": "A"}))
        .send()
        .await
        .unwrap();
    assert_error(&read(resp).await, StatusCode::UNAUTHORIZED, "unauthorized");
    // The API's description is public.
    let resp = api
        .http
        .get(format!("{}/api/v1/openapi.json", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        api.get("/api/v1/tenants").await,
        (StatusCode::OK, json!([]))
    );
}

#[tokio::test]
async fn crud_round_trip() {
    let api = start().await;

    // Tenant.
    let (status, t) = api
        .post(
            "/api/v1/tenants",
            json!({"domain": "A.Test", "name": "Tenant A", "time_zone": "Europe/Zurich"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    assert_eq!(t["domain"], "a.test");
    let tid = t["id"].as_str().unwrap().to_string();
    let tp = format!("/api/v1/tenants/{tid}");
    assert_eq!(api.get(&tp).await, (StatusCode::OK, t.clone()));
    assert_eq!(api.get("/api/v1/tenants").await.1, json!([t]));
    let (status, t2) = api
        .put(
            &tp,
            json!({"domain": "a.test", "name": "Renamed", "time_zone": "UTC"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{t2}");
    assert_eq!(api.get(&tp).await.1["name"], "Renamed");

    // User.
    let (status, u) = api
        .post(
            &format!("{tp}/users"),
            json!({"extension": "1001", "display_name": "Alice", "portal_login": "alice"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{u}");
    let uid = u["id"].as_str().unwrap().to_string();
    let up = format!("{tp}/users/{uid}");
    assert_eq!(api.get(&up).await, (StatusCode::OK, u.clone()));
    let (status, u2) = api
        .put(
            &up,
            json!({"extension": "1001", "display_name": "Alice L."}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{u2}");
    assert_eq!(u2["portal_login"], Value::Null);
    assert_eq!(
        api.get(&format!("{tp}/users"))
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Device: the response never carries the password or an HA1.
    let (status, d) = api
        .post(
            &format!("{up}/devices"),
            json!({"sip_username": "1001", "password": "secret1001"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{d}");
    let keys: Vec<_> = d.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        [
            "digest_algorithms",
            "id",
            "remote_answer",
            "sip_username",
            "user_id"
        ]
    );
    assert_eq!(d["remote_answer"], false, "{d}");
    assert_eq!(d["digest_algorithms"], json!([]), "the platform's: {d}");
    let did_ = d["id"].as_str().unwrap().to_string();
    let dp = format!("{up}/devices/{did_}");
    assert_eq!(api.get(&dp).await, (StatusCode::OK, d.clone()));
    assert_eq!(api.get(&format!("{up}/devices")).await.1, json!([d]));
    // The SIP side sees it at once, with HA1s over the tenant's domain.
    let tenant_id: TenantId = tid.parse().unwrap();
    let snapshot = api.directory.get();
    let dev = snapshot.device_by_username(tenant_id, "1001").unwrap();
    assert_eq!(dev.ha1_md5, ha1_md5("1001", "a.test", "secret1001"));
    assert_eq!(dev.ha1_sha256, ha1_sha256("1001", "a.test", "secret1001"));
    let (status, _) = api
        .put(
            &dp,
            json!({"sip_username": "1001", "password": "another-pass"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let snapshot = api.directory.get();
    let dev = snapshot.device_by_username(tenant_id, "1001").unwrap();
    assert_eq!(dev.ha1_md5, ha1_md5("1001", "a.test", "another-pass"));
    // Remote answer: set by a PUT, kept by a PUT without it.
    let body = json!({"sip_username": "1001", "password": "another-pass", "remote_answer": true});
    assert_eq!(api.put(&dp, body).await.1["remote_answer"], true);
    let body = json!({"sip_username": "1001", "password": "another-pass"});
    assert_eq!(api.put(&dp, body).await.1["remote_answer"], true);
    let snapshot = api.directory.get();
    assert!(
        snapshot
            .device_by_username(tenant_id, "1001")
            .unwrap()
            .remote_answer
    );
    // Digest algorithms: the same; a wrong name is a 400 naming the field.
    let body =
        json!({"sip_username": "1001", "password": "another-pass", "digest_algorithms": ["md5"]});
    assert_eq!(
        api.put(&dp, body).await.1["digest_algorithms"],
        json!(["MD5"])
    );
    let body = json!({"sip_username": "1001", "password": "another-pass"});
    assert_eq!(
        api.put(&dp, body).await.1["digest_algorithms"],
        json!(["MD5"])
    );
    let body =
        json!({"sip_username": "1001", "password": "another-pass", "digest_algorithms": ["SHA-1"]});
    let (status, e) = api.put(&dp, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("digest_algorithms: "),
        "{e}"
    );
    let snapshot = api.directory.get();
    assert_eq!(
        snapshot
            .device_by_username(tenant_id, "1001")
            .unwrap()
            .digest_algorithms,
        [tsps_actors::model::DigestAlgorithm::Md5]
    );

    // External phones: E.164 by the tenant's dialing rules, in the directory at once.
    let pp = format!("{up}/external-phones");
    let (status, e) = api.post(&pp, json!({"number": "044 555 01 99"})).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "no country code: {e}"
    );
    let (status, p) = api
        .post(
            &pp,
            json!({"number": "+41 79 555 01 99", "label": "Mobile"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    assert_eq!(p["number"], "+41795550199");
    let phone = format!("{pp}/{}", p["id"].as_str().unwrap());
    assert_eq!(api.get(&phone).await, (StatusCode::OK, p.clone()));
    let (status, p2) = api
        .put(
            &phone,
            json!({"number": "0041 79 555 01 98", "label": "Work"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{p2}");
    assert_eq!(
        (p2["number"].as_str(), p2["label"].as_str()),
        (Some("+41795550198"), Some("Work"))
    );
    let phone_id = p["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        api.directory
            .get()
            .external_phone(phone_id)
            .map(|p| p.number.clone()),
        Some("+41795550198".to_string())
    );
    assert_eq!(api.delete(&phone).await, StatusCode::NO_CONTENT);
    assert_eq!(api.get(&phone).await.0, StatusCode::NOT_FOUND);
    assert!(api.directory.get().external_phone(phone_id).is_none());

    // The domain cannot move while a device's HA1 depends on it.
    assert_error(
        &api.put(&tp, json!({"domain": "b.test", "name": "Renamed"}))
            .await,
        StatusCode::CONFLICT,
        "conflict",
    );

    // DID.
    let (status, n) = api
        .post(
            &format!("{tp}/dids"),
            json!({"number": "+41445550100", "user_id": uid}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{n}");
    let np = format!("{tp}/dids/+41445550100");
    assert_eq!(api.get(&np).await, (StatusCode::OK, n.clone()));
    assert_eq!(
        api.directory
            .get()
            .did("+41445550100")
            .unwrap()
            .user_id
            .to_string(),
        uid
    );
    let bob = api.user(&tid, "1002").await;
    let (status, n2) = api.put(&np, json!({"user_id": bob})).await;
    assert_eq!(status, StatusCode::OK, "{n2}");
    assert_eq!(api.get(&format!("{tp}/dids")).await.1, json!([n2]));

    // Trunk: the password is kept but never returned.
    let (status, tr) = api
        .post(
            &format!("{tp}/trunks"),
            json!({"name": "carrier", "peer_host": "127.0.0.2", "peer_port": 5070,
                   "transport": "udp", "username": "tsps", "password": "trunkpw",
                   "inbound_sources": ["127.0.0.2"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{tr}");
    assert_eq!(tr["has_password"], true);
    assert!(!tr.to_string().contains("trunkpw"), "{tr}");
    let trp = format!("{tp}/trunks/{}", tr["id"].as_str().unwrap());
    let (status, tr2) = api
        .put(
            &trp,
            json!({"name": "carrier", "peer_host": "127.0.0.3", "transport": "tcp",
                   "username": "tsps"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tr2}");
    assert_eq!(tr2["has_password"], true);
    assert_eq!(tr2["peer_port"], 5060);
    assert_eq!(api.get(&trp).await, (StatusCode::OK, tr2.clone()));
    let trunk = api
        .directory
        .get()
        .trunks_of_tenant(tenant_id)
        .next()
        .unwrap()
        .clone();
    assert_eq!(trunk.password.as_ref().map(|p| p.expose()), Some("trunkpw"));
    assert_eq!(trunk.peer_host, "127.0.0.3");

    // Calls and registrations come from the store.
    let store = api.directory.store().clone();
    let user_id: UserId = uid.parse().unwrap();
    let device_id: DeviceId = did_.parse().unwrap();
    let t0 = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
    store
        .insert_call_record(&CallRecord {
            id: CallId::for_test(1),
            tenant_id,
            direction: CallDirection::Internal,
            caller: "1001".into(),
            callee: "1002".into(),
            caller_user_id: Some(user_id),
            callee_user_id: None,
            started_at: t0,
            answered_at: None,
            ended_at: t0 + chrono::Duration::seconds(5),
            outcome: CallOutcome::NoAnswer,
            hangup_by: Some(Party::Caller),
            decision: vec![],
            legs: vec![LegRecord {
                id: LegId::for_test(1),
                role: Party::Callee,
                target: "sip:1002@127.0.0.1:5062".into(),
                started_at: t0,
                answered_at: None,
                ended_at: Some(t0 + chrono::Duration::seconds(5)),
                status_code: Some(487),
                user_id: None,
            }],
        })
        .await
        .unwrap();
    let (status, calls) = api.get(&format!("{tp}/calls?limit=10")).await;
    assert_eq!(status, StatusCode::OK, "{calls}");
    assert_eq!(calls[0]["outcome"], "no_answer");
    assert_eq!(calls[0]["legs"][0]["status_code"], 487);
    assert_error(
        &api.get(&format!("{tp}/calls?limit=0")).await,
        StatusCode::BAD_REQUEST,
        "invalid",
    );
    assert_error(
        &api.get(&format!("{tp}/calls?limit=lots")).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    store
        .save_binding(&Binding {
            tenant_id,
            user_id,
            device_id,
            contact: "sip:1001@127.0.0.1:5062".into(),
            received: "udp:127.0.0.1:5062".into(),
            expires_at: Utc::now() + chrono::Duration::seconds(600),
            call_id: "reg-1".into(),
            cseq: 1,
        })
        .await
        .unwrap();
    let (status, regs) = api.get(&format!("{tp}/registrations")).await;
    assert_eq!(status, StatusCode::OK, "{regs}");
    assert_eq!(regs.as_array().unwrap().len(), 1);
    assert_eq!(regs[0]["contact"], "sip:1001@127.0.0.1:5062");
    assert_eq!(regs[0]["device_id"], did_.as_str());

    // Deletes.
    assert_eq!(api.delete(&trp).await, StatusCode::NO_CONTENT);
    assert_error(&api.get(&trp).await, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(api.delete(&np).await, StatusCode::NO_CONTENT);
    assert_eq!(api.delete(&dp).await, StatusCode::NO_CONTENT);
    assert!(api
        .directory
        .get()
        .device_by_username(tenant_id, "1001")
        .is_none());
    assert_eq!(api.get(&format!("{tp}/registrations")).await.1, json!([]));
    assert_eq!(api.delete(&up).await, StatusCode::NO_CONTENT);
    assert_error(&api.get(&up).await, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(api.delete(&tp).await, StatusCode::NO_CONTENT);
    assert_error(&api.get(&tp).await, StatusCode::NOT_FOUND, "not_found");
    assert_error(
        &api.get(&format!("{tp}/users")).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert!(api.directory.get().tenant(tenant_id).is_none());
}

#[tokio::test]
async fn tenants_are_walls() {
    let api = start().await;
    let a = api.tenant("a.test").await;
    let b = api.tenant("b.test").await;
    let ua = api.user(&a, "1001").await;
    let ub = api.user(&b, "1001").await;
    let (status, d) = api
        .post(
            &format!("/api/v1/tenants/{a}/users/{ua}/devices"),
            json!({"sip_username": "1001", "password": "secret1001"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let dev = d["id"].as_str().unwrap();
    let (_, tr) = api
        .post(
            &format!("/api/v1/tenants/{a}/trunks"),
            json!({"name": "carrier", "peer_host": "127.0.0.2"}),
        )
        .await;
    let trunk = tr["id"].as_str().unwrap();
    api.post(
        &format!("/api/v1/tenants/{a}/dids"),
        json!({"number": "+41445550100", "user_id": ua}),
    )
    .await;

    for path in [
        format!("/api/v1/tenants/{b}/users/{ua}"),
        format!("/api/v1/tenants/{b}/users/{ua}/devices"),
        format!("/api/v1/tenants/{b}/users/{ua}/devices/{dev}"),
        // A's device under B's user, and under another user of A.
        format!("/api/v1/tenants/{b}/users/{ub}/devices/{dev}"),
        format!("/api/v1/tenants/{b}/trunks/{trunk}"),
        format!("/api/v1/tenants/{b}/dids/+41445550100"),
    ] {
        assert_error(&api.get(&path).await, StatusCode::NOT_FOUND, "not_found");
        if !path.ends_with("/devices") {
            assert_eq!(api.delete(&path).await, StatusCode::NOT_FOUND, "{path}");
        }
    }
    let ua2 = api.user(&a, "1002").await;
    assert_error(
        &api.get(&format!("/api/v1/tenants/{a}/users/{ua2}/devices/{dev}"))
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // Writes that point into another tenant find nothing there either.
    assert_error(
        &api.put(
            &format!("/api/v1/tenants/{b}/users/{ua}"),
            json!({"extension": "1009", "display_name": "X"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &api.post(
            &format!("/api/v1/tenants/{b}/dids"),
            json!({"number": "+41445550199", "user_id": ua}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &api.post(
            &format!("/api/v1/tenants/{b}/users/{ua}/devices"),
            json!({"sip_username": "1009", "password": "secret1009"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // Everything of A is still there.
    assert_eq!(
        api.get(&format!("/api/v1/tenants/{a}/users/{ua}/devices/{dev}"))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        api.get(&format!("/api/v1/tenants/{a}/dids"))
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn bad_input_is_a_json_error() {
    let api = start().await;
    let t = api.tenant("a.test").await;
    let users = format!("/api/v1/tenants/{t}/users");

    // Malformed JSON.
    let resp = api
        .http
        .post(format!("{}{users}", api.base))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{\"extension\": ")
        .send()
        .await
        .unwrap();
    assert_error(&read(resp).await, StatusCode::BAD_REQUEST, "bad_json");
    // Well-formed, wrong shape: the field is named, not the line and column.
    let wrong = api
        .post(&users, json!({"extension": 1001, "display_name": "A"}))
        .await;
    assert_error(&wrong, StatusCode::BAD_REQUEST, "bad_json");
    assert_eq!(
        wrong.1["error"]["details"][0]["field"], "extension",
        "{wrong:?}"
    );
    assert!(
        !wrong.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line"),
        "{wrong:?}"
    );
    // Every field that breaks a rule, in one answer.
    let wrong = api
        .post(
            &format!("/api/v1/tenants/{t}/trunks"),
            json!({"name": "a b", "peer_host": "not a host!", "peer_port": 0,
                "username": "only-a-name", "inbound_sources": ["10.0.0.0/8"]}),
        )
        .await;
    assert_error(&wrong, StatusCode::BAD_REQUEST, "invalid");
    let mut fields: Vec<&str> = wrong.1["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "inbound_sources[0]",
            "name",
            "peer_host",
            "peer_port",
            "username"
        ],
        "{wrong:?}"
    );
    let wrong = api
        .post(&users, json!({"extension": "x1", "display_name": " "}))
        .await;
    assert_error(&wrong, StatusCode::BAD_REQUEST, "invalid");
    assert_eq!(
        wrong.1["error"]["details"].as_array().unwrap().len(),
        2,
        "{wrong:?}"
    );
    assert_error(
        &api.post(
            &users,
            json!({"extension": "1001", "display_name": "A", "extra": 1}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "bad_json",
    );
    // A body is an object, never the fields in an array (which serde would take).
    assert_error(
        &api.post(&users, json!(["1001", "A"])).await,
        StatusCode::BAD_REQUEST,
        "bad_json",
    );
    assert_error(
        &api.put(&format!("/api/v1/tenants/{t}/quotas"), json!([null, null]))
            .await,
        StatusCode::BAD_REQUEST,
        "bad_json",
    );
    // A number without a fraction is an integer, however written (JSON has numbers).
    let (status, trunk) = api
        .post(
            &format!("/api/v1/tenants/{t}/trunks"),
            json!({"name": "carrier", "peer_host": "127.0.0.2", "peer_port": 5070.0}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{trunk}");
    assert_eq!(trunk["peer_port"], 5070);
    assert_error(
        &api.post(
            &format!("/api/v1/tenants/{t}/trunks"),
            json!({"name": "other", "peer_host": "127.0.0.2", "peer_port": 5070.5}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "bad_json",
    );
    // No content type.
    let resp = api
        .http
        .post(format!("{}{users}", api.base))
        .bearer_auth(TOKEN)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_error(
        &read(resp).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    // A path segment that is not a UUID.
    assert_error(
        &api.get("/api/v1/tenants/not-a-uuid").await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    // Rule violations name the field.
    let got = api
        .post(&users, json!({"extension": "10x1", "display_name": "A"}))
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid");
    assert_eq!(got.1["error"]["message"], "extension: must be digits");
    assert_error(
        &api.post(
            "/api/v1/tenants",
            json!({"domain": "c.test", "name": "C", "time_zone": "Mars/Base"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid",
    );
    assert_error(
        &api.post(
            &format!("/api/v1/tenants/{t}/dids"),
            json!({"number": "0445550100", "user_id": t}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid",
    );
    // Duplicates.
    api.user(&t, "1001").await;
    assert_error(
        &api.post(&users, json!({"extension": "1001", "display_name": "B"}))
            .await,
        StatusCode::CONFLICT,
        "already_exists",
    );
    assert_error(
        &api.post(
            "/api/v1/tenants",
            json!({"domain": "a.test", "name": "again"}),
        )
        .await,
        StatusCode::CONFLICT,
        "already_exists",
    );
    // Unknown route and unsupported method.
    assert_error(
        &api.get("/api/v1/nothing-here").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &api.call(Method::PATCH, "/api/v1/tenants", Some(json!({})))
            .await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

#[tokio::test]
async fn provisioning_document_over_http_is_idempotent() {
    let api = start().await;
    let doc = json!({"tenants": [{
        "domain": "p.test", "name": "P", "time_zone": "Europe/Zurich",
        "users": [{"extension": "1001", "display_name": "Alice",
                   "devices": [{"sip_username": "1001", "password": "secret1001"}]}],
        "dids": [{"number": "+41445550100", "extension": "1001"}],
        "trunks": [{"name": "carrier", "peer_host": "127.0.0.2", "peer_port": 5070,
                    "transport": "udp", "inbound_sources": ["127.0.0.2"]}]
    }]});
    let (status, first) = api.put("/api/v1/provision", doc.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["users"]["created"], 1);
    assert_eq!(first["devices"]["created"], 1);
    assert_eq!(first["trunks"]["created"], 1);
    let (status, second) = api.put("/api/v1/provision", doc.clone()).await;
    assert_eq!(status, StatusCode::OK);
    for kind in ["tenants", "users", "devices", "dids", "trunks"] {
        assert_eq!(second[kind]["created"], 0, "{second}");
        assert_eq!(second[kind]["updated"], 0, "{second}");
    }
    let snapshot = api.directory.get();
    let t = snapshot.tenant_by_domain("p.test").unwrap();
    assert!(snapshot.device_by_username(t.id, "1001").is_some());

    let mut bad = doc.clone();
    bad["tenants"][0]["users"][0]["extension"] = json!("x");
    let got = api.put("/api/v1/provision", bad).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid");
    assert_eq!(
        got.1["error"]["message"],
        "tenants[0].users[0].extension: must be digits"
    );
}

#[tokio::test]
async fn openapi_document_lists_the_paths() {
    let api = start().await;
    let (status, doc) = api.get("/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/healthz",
        "/api/v1/tenants",
        "/api/v1/tenants/{tenant_id}",
        "/api/v1/tenants/{tenant_id}/users",
        "/api/v1/tenants/{tenant_id}/users/{user_id}",
        "/api/v1/tenants/{tenant_id}/users/{user_id}/devices",
        "/api/v1/tenants/{tenant_id}/users/{user_id}/devices/{device_id}",
        "/api/v1/tenants/{tenant_id}/dids",
        "/api/v1/tenants/{tenant_id}/dids/{number}",
        "/api/v1/tenants/{tenant_id}/trunks",
        "/api/v1/tenants/{tenant_id}/trunks/{trunk_id}",
        "/api/v1/tenants/{tenant_id}/calls",
        "/api/v1/tenants/{tenant_id}/registrations",
        "/api/v1/provision",
    ] {
        assert!(paths.contains_key(p), "missing {p}: {:?}", paths.keys());
    }
    assert!(paths["/api/v1/tenants"]["post"].is_object());
    assert!(paths["/api/v1/provision"]["put"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    // Secrets have no place in any response schema.
    let schemas = &doc["components"]["schemas"];
    assert!(
        schemas["ProvisionDoc"]["properties"]["tenants"].is_object(),
        "{schemas}"
    );
    assert!(schemas["ErrorBody"].is_object(), "{schemas}");
    assert!(schemas["DeviceView"]["properties"]
        .get("password")
        .is_none());
    assert!(schemas["DeviceView"]["properties"].get("ha1_md5").is_none());
    assert!(schemas["TrunkView"]["properties"].get("password").is_none());
    // Every reference resolves (the exports' parameters once named undefined schemas).
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let target = r.strip_prefix('#').and_then(|pointer| doc.pointer(pointer));
        assert!(target.is_some(), "{r} names nothing in the document");
    }
    // The errors every operation can give are listed where they can happen.
    for (path, item) in paths.iter().filter(|(p, _)| p.starts_with("/api/v1/")) {
        for (method, op) in item.as_object().unwrap() {
            let answers = op["responses"].as_object().unwrap();
            let has = |s: &str| answers.contains_key(s);
            let json_body = op["requestBody"]["content"]["application/json"].is_object();
            if json_body {
                for s in ["400", "413", "415"] {
                    assert!(has(s), "{method} {path} lacks {s}");
                }
            }
            if path.contains('{') {
                assert!(has("404"), "{method} {path} lacks 404");
            }
            if path != "/api/v1/auth/login" {
                assert!(has("401") && has("403"), "{method} {path} lacks 401/403");
            }
        }
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_refs(i, out)),
        _ => {}
    }
}
