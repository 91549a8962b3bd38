//! The CTI API end to end (docs/cti.md): a real tsps, SIPp phones, and an integration
//! (a CRM, say) that holds nothing but an API token a tenant admin created for it,
//! scoped to users 1001 and 1002 of tenant A. With that token it follows 1001's and
//! 1002's calls over WebSocket, holds, resumes and releases a call, places a
//! click-to-dial call and sets a status over REST, as a portal session would; it sees
//! nothing of 1003 (out of its scope) nor of tenant B, nothing of the tenant's
//! administration; revoked or expired, the token opens nothing.
//!
//! Tenant `a.test`: 1001 Alice, 1002 Bob, 1003 Carol (one device each), 1009 Ada the
//! tenant admin (portal password only). Tenant `b.test`: 2001 Zoe.

mod common;

use common::events::{EventsClient, Kind};
use common::{free_port, register, Sipp, SippHandle, Tsps, DEVICE_IP};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);
const SIP_WAIT: Duration = Duration::from_secs(8);
const DOMAIN: &str = "a.test";

const PROVISIONING: &str = r#"tenants:
  - domain: a.test
    name: Tenant A
    users:
      - extension: "1001"
        display_name: Alice
        password: alice-secret-1
        devices:
          - sip_username: "1001"
            password: secret1001
      - extension: "1002"
        display_name: Bob
        devices:
          - sip_username: "1002"
            password: secret1002
      - extension: "1003"
        display_name: Carol
        devices:
          - sip_username: "1003"
            password: secret1003
      - extension: "1009"
        display_name: Ada Admin
        role: tenant_admin
        password: admin-secret-9
  - domain: b.test
    name: Tenant B
    users:
      - extension: "2001"
        display_name: Zoe
        devices:
          - sip_username: "2001"
            password: secret2001
"#;

/// An HTTP client of the API (`/api/v1` + path) with one way of authenticating.
struct Client {
    base: String,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    auth: Auth,
}

enum Auth {
    Bearer(String),
    /// A portal session: the cookie and the CSRF token sent with writes.
    Session {
        cookie: String,
        csrf: String,
    },
}

impl Client {
    fn new(tsps: &Tsps, auth: Auth) -> Client {
        Client {
            base: format!("{}/api/v1", tsps.http_url()),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
            auth,
        }
    }

    /// A portal session of `login` in `domain` (panics unless the login works).
    fn login(tsps: &Tsps, domain: &str, login: &str, password: &str) -> Client {
        let mut c = Client::new(tsps, Auth::Bearer(String::new()));
        let url = format!("{}/auth/login", c.base);
        let body = json!({"domain": domain, "login": login, "password": password});
        let (cookie, csrf) = c.rt.block_on(async {
            let resp = c.http.post(&url).json(&body).send().await.expect("login");
            assert_eq!(resp.status(), 200, "login {login}@{domain}");
            let cookie = resp
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok()?.strip_prefix("tsps_session="))
                .map(|v| v.split(';').next().unwrap_or("").to_string())
                .next()
                .expect("a session cookie");
            let body: Value = resp.json().await.expect("JSON");
            (cookie, body["csrf_token"].as_str().unwrap().to_string())
        });
        c.auth = Auth::Session { cookie, csrf };
        c
    }

    /// One request; the status and the JSON body (`Null` when empty).
    fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        req = match &self.auth {
            Auth::Bearer(token) => req.bearer_auth(token),
            Auth::Session { cookie, csrf } => req
                .header("cookie", format!("tsps_session={cookie}"))
                .header("x-csrf-token", csrf),
        };
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.rt.block_on(async {
            let resp = req
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            let body = if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{method} {url}: {status}, not JSON ({e}): {text}"))
            };
            (status, body)
        })
    }

    fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, got) = self.call(method.clone(), path, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {got}"
        );
        got
    }
}

struct Pbx {
    tsps: Tsps,
    /// domain → tenant id
    tenants: BTreeMap<String, String>,
    /// extension → (tenant id, user id)
    users: BTreeMap<String, (String, String)>,
}

impl Pbx {
    fn start() -> Pbx {
        // The test clock: an expiring token is tested by moving time, not waiting.
        let tsps = Tsps::start(PROVISIONING, &[("TSPS_TESTING__CLOCK_API", "true")]);
        let mut tenants = BTreeMap::new();
        let mut users = BTreeMap::new();
        for t in tsps
            .api_ok(Method::GET, "/tenants", None)
            .as_array()
            .unwrap()
        {
            let id = t["id"].as_str().unwrap().to_string();
            tenants.insert(t["domain"].as_str().unwrap().to_string(), id.clone());
            let listed = tsps.api_ok(Method::GET, &format!("/tenants/{id}/users"), None);
            for u in listed.as_array().unwrap() {
                users.insert(
                    u["extension"].as_str().unwrap().to_string(),
                    (id.clone(), u["id"].as_str().unwrap().to_string()),
                );
            }
        }
        Pbx {
            tsps,
            tenants,
            users,
        }
    }

    fn tenant_a(&self) -> String {
        format!("/tenants/{}", self.tenants[DOMAIN])
    }

    fn user(&self, ext: &str) -> String {
        let (t, u) = &self.users[ext];
        format!("/tenants/{t}/users/{u}")
    }

    fn admin(&self) -> Client {
        Client::login(&self.tsps, DOMAIN, "1009", "admin-secret-9")
    }

    /// The tenant admin creates a token (`201`) with `body`; returns the answer.
    fn create_token(&self, admin: &Client, body: Value) -> Value {
        let (status, created) = admin.call(
            Method::POST,
            &format!("{}/api-tokens", self.tenant_a()),
            Some(body),
        );
        assert_eq!(status, 201, "{created}");
        created
    }

    /// A token of the CRM for 1001 and 1002 only, and the integration using it.
    fn crm(&self, admin: &Client) -> (Value, Client) {
        let users = json!([self.users["1001"].1, self.users["1002"].1]);
        let created = self.create_token(admin, json!({"name": "crm", "users": users}));
        let secret = created["token"].as_str().expect("the secret").to_string();
        let client = Client::new(&self.tsps, Auth::Bearer(secret));
        (created, client)
    }

    fn events_url(&self, ext: &str) -> String {
        format!(
            "{}/api/v1{}/events/ws",
            self.tsps.http_url(),
            self.user(ext)
        )
    }

    /// The event stream of `ext` over WebSocket with the integration's token; its
    /// snapshot read.
    fn events(&self, cti: &Client, ext: &str) -> EventsClient {
        let mut events =
            EventsClient::connect(Kind::WebSocket, &self.events_url(ext), token(cti), None);
        let snapshot = events.next(WAIT);
        assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
        events
    }

    /// The device of `ext`, registered from a fresh port, playing `uas`.
    fn device(&self, ext: &str, uas: Sipp) -> SippHandle {
        let port = free_port(IpAddr::V4(DEVICE_IP), false);
        register(&self.tsps, DOMAIN, ext, &format!("secret{ext}"), port);
        self.tsps.spawn_sipp(uas.port(port))
    }
}

fn token(c: &Client) -> &str {
    match &c.auth {
        Auth::Bearer(t) => t,
        Auth::Session { .. } => panic!("not a token client"),
    }
}

fn line(v: &Value, call: &str, state: &str) -> bool {
    v["type"] == "line" && v["data"]["call_id"] == call && v["data"]["state"] == state
}

fn ended(v: &Value, call: &str) -> bool {
    v["type"] == "line_ended" && v["data"]["call_id"] == call
}

fn wait_for(device: &mut SippHandle, needle: &str, what: &str) {
    assert!(
        device.wait_for_message(needle, SIP_WAIT),
        "{what}: no {needle:?} within {SIP_WAIT:?}:\n{}",
        device.messages_so_far()
    );
}

#[test]
fn an_integration_follows_and_controls_calls_with_its_token() {
    let pbx = Pbx::start();
    let admin = pbx.admin();
    let (created, cti) = pbx.crm(&admin);
    assert!(
        token(&cti).starts_with("tsps_") && token(&cti).len() == 48,
        "{created}"
    );
    assert_eq!(created["name"], "crm");
    assert_eq!(created["expires_at"], Value::Null);

    // The CRM follows both of its users; Bob's phone answers and accepts hold.
    let mut bob_phone = pbx.device("1002", Sipp::uas("control_uas_held.xml"));
    let mut bob = pbx.events(&cti, "1002");
    let mut alice = pbx.events(&cti, "1001");
    let alice_phone = pbx.tsps.spawn_sipp(
        Sipp::new("control_uac_call.xml")
            .device(DOMAIN, "1001", "secret1001")
            .calling("1002"),
    );

    // Ring → active, as CSTA's Delivered and Established.
    let ringing = bob.until(WAIT, "Bob's line ringing", |v| {
        v["type"] == "line" && v["data"]["state"] == "ringing"
    });
    let call = ringing["data"]["call_id"]
        .as_str()
        .expect("call_id")
        .to_string();
    assert_eq!(ringing["data"]["direction"], "in", "{ringing}");
    assert_eq!(ringing["data"]["peer"]["number"], "1001", "{ringing}");
    let active = bob.until(WAIT, "Bob's line active", |v| line(v, &call, "active"));
    assert_eq!(
        active["data"]["allowed"],
        json!(["hold", "transfer", "release"]),
        "{active}"
    );
    alice.until(WAIT, "Alice dialing", |v| line(v, &call, "dialing"));
    alice.until(WAIT, "Alice active", |v| line(v, &call, "active"));
    wait_for(&mut bob_phone, "ACK sip:", "1002 answered");

    // Hold and resume for Alice (HoldCall, RetrieveCall): her line is held, Bob's shows
    // that he is held by the other party.
    let control = |what: &str| {
        cti.call(
            Method::POST,
            &format!("{}/calls/{call}/{what}", pbx.user("1001")),
            None,
        )
    };
    assert_eq!(control("hold"), (204, Value::Null));
    let held = alice.until(WAIT, "Alice's line held", |v| line(v, &call, "held"));
    assert_eq!(
        held["data"]["allowed"],
        json!(["resume", "transfer", "release"]),
        "{held}"
    );
    bob.until(WAIT, "Bob held by Alice", |v| {
        line(v, &call, "active") && v["data"]["remote_held"] == true
    });
    let (status, body) = control("hold");
    assert_eq!(status, 409, "a held call cannot be held again: {body}");
    assert_eq!(control("resume"), (204, Value::Null));
    alice.until(WAIT, "Alice's line active again", |v| {
        line(v, &call, "active")
    });
    bob.until(WAIT, "Bob no longer held", |v| {
        line(v, &call, "active") && v["data"]["remote_held"] == false
    });

    // Release (ClearConnection): both lines end.
    assert_eq!(control("release"), (204, Value::Null));
    let gone = bob.until(WAIT, "Bob's line ended", |v| ended(v, &call));
    assert_eq!(gone["data"]["outcome"], "answered", "{gone}");
    alice.until(WAIT, "Alice's line ended", |v| ended(v, &call));
    alice_phone
        .join()
        .assert_success("1001: call placed, BYE from tsps");
    bob_phone
        .join()
        .assert_success("1002: answered, held, resumed, BYE");

    // Click-to-dial for Alice (MakeCall): her device rings first, then Carol's. The
    // token reads Alice's devices to name one; Carol is outside its scope, but any
    // number may be dialled.
    let devices = cti.ok(Method::GET, &format!("{}/devices", pbx.user("1001")), None);
    let device = devices[0]["id"].as_str().expect("a device").to_string();
    let mut alice_phone = pbx.device(
        "1001",
        Sipp::uas("control_uas_delayed_offer.xml").key("answer_after_ms", "300"),
    );
    let mut carol_phone = pbx.device("1003", Sipp::uas("uas_answer.xml"));
    let placed = cti.ok(
        Method::POST,
        &format!("{}/calls", pbx.user("1001")),
        Some(json!({"device_id": device, "destination": "1003"})),
    );
    let call = placed["call_id"].as_str().expect("call_id").to_string();
    let dialing = alice.until(WAIT, "Alice's click-to-dial line", |v| {
        v["type"] == "line" && v["data"]["call_id"] == call
    });
    assert_eq!(dialing["data"]["state"], "dialing", "{dialing}");
    assert_eq!(dialing["data"]["direction"], "out", "{dialing}");
    assert_eq!(dialing["data"]["device_id"], device.as_str(), "{dialing}");
    wait_for(&mut alice_phone, "ACK sip:", "1001's device answered");
    wait_for(&mut carol_phone, "ACK sip:", "1003 answered");
    alice.until(WAIT, "Alice talks to Carol", |v| line(v, &call, "active"));
    let (status, body) = cti.call(
        Method::POST,
        &format!("{}/calls/{call}/release", pbx.user("1001")),
        None,
    );
    assert_eq!(status, 204, "{body}");
    alice.until(WAIT, "the click-to-dial call ended", |v| ended(v, &call));
    alice_phone
        .join()
        .assert_success("1001's device: rung first, answered, BYE");
    carol_phone.join().assert_success("1003: answered, BYE");

    // Bob's status (SetDoNotDisturb): written for him, pushed to his stream.
    let status_path = format!("{}/status", pbx.user("1002"));
    let set = cti.ok(
        Method::PUT,
        &status_path,
        Some(json!({"presence": "do_not_disturb"})),
    );
    assert_eq!(set["presence"], "do_not_disturb", "{set}");
    let pushed = bob.until(WAIT, "Bob's status", |v| {
        v["type"] == "status" && v["data"]["presence"] == "do_not_disturb"
    });
    assert_eq!(pushed["data"]["hook"], "idle", "{pushed}");
    assert_eq!(
        cti.ok(Method::GET, &status_path, None)["presence"],
        "do_not_disturb"
    );
}

#[test]
fn a_token_is_held_to_its_tenant_and_its_users() {
    let pbx = Pbx::start();
    let admin = pbx.admin();
    let (created, cti) = pbx.crm(&admin);
    let a = pbx.tenant_a();
    let carol = pbx.user("1003");
    let zoe = pbx.user("2001");
    let b = format!("/tenants/{}", pbx.tenants["b.test"]);

    // What it may: the directory, its users' records, profiles, status, watch list.
    let directory = cti.ok(Method::GET, &format!("{a}/users"), None);
    assert_eq!(directory.as_array().map(Vec::len), Some(4), "{directory}");
    cti.ok(Method::GET, &a, None);
    cti.ok(Method::GET, &pbx.user("1001"), None);
    cti.ok(Method::GET, &format!("{}/profile", pbx.user("1001")), None);
    cti.ok(
        Method::GET,
        &format!("{}/calls/history", pbx.user("1002")),
        None,
    );
    let watched = cti.ok(
        Method::PUT,
        &format!("{}/watch", pbx.user("1002")),
        Some(json!({"users": [pbx.users["1001"].1]})),
    );
    assert_eq!(watched["watched"][0]["hook"], "idle", "{watched}");
    // A WebSocket with a token needs no same-origin `Origin` (a token is not sent by a
    // browser on its own, unlike a cookie).
    let foreign = EventsClient::try_connect(
        Kind::WebSocket,
        &pbx.events_url("1001"),
        token(&cti),
        None,
        &[("origin", "https://crm.example")],
    );
    assert!(foreign.is_ok(), "{:?}", foreign.err());

    // 1003 is outside its scope: 404, as if Carol did not exist.
    for (method, path, body) in [
        (Method::GET, carol.clone(), None),
        (Method::GET, format!("{carol}/status"), None),
        (Method::GET, format!("{carol}/events/ws"), None),
        (Method::GET, format!("{carol}/events/sse"), None),
        (
            Method::PUT,
            format!("{carol}/status"),
            Some(json!({"presence": "away"})),
        ),
        (
            Method::POST,
            format!("{carol}/calls"),
            Some(json!({"device_id": uuid::Uuid::new_v4(), "destination": "1001"})),
        ),
        (
            Method::POST,
            format!("{carol}/calls/{}/release", uuid::Uuid::new_v4()),
            None,
        ),
        // Tenant B: 404 too.
        (Method::GET, b.clone(), None),
        (Method::GET, format!("{b}/users"), None),
        (Method::GET, format!("{zoe}/events/ws"), None),
        (Method::GET, format!("{b}/api-tokens"), None),
    ] {
        let (status, got) = cti.call(method.clone(), &path, body);
        assert_eq!(status, 404, "{method} {path}: {got}");
        assert_eq!(got["error"]["code"], "not_found", "{got}");
    }
    let refused = EventsClient::try_connect(
        Kind::WebSocket,
        &pbx.events_url("1003"),
        token(&cti),
        None,
        &[],
    );
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("404")),
        "{:?}",
        refused.err()
    );

    // The tenant's administration and the user's private business: 403.
    for (method, path, body) in [
        (Method::GET, format!("{a}/api-tokens"), None),
        (
            Method::POST,
            format!("{a}/api-tokens"),
            Some(json!({"name": "mine"})),
        ),
        (Method::GET, format!("{a}/calls"), None),
        (Method::GET, format!("{a}/calls/live"), None),
        (Method::GET, format!("{a}/registrations"), None),
        (Method::GET, format!("{a}/trunks"), None),
        (
            Method::POST,
            format!("{a}/users"),
            Some(json!({"extension": "1010", "display_name": "Eve"})),
        ),
        (Method::DELETE, pbx.user("1001"), None),
        (
            Method::PUT,
            format!("{}/profile", pbx.user("1001")),
            Some(json!({})),
        ),
        (
            Method::PUT,
            format!("{}/password", pbx.user("1001")),
            Some(json!({"password": "a-new-password"})),
        ),
        (Method::GET, format!("{}/contacts", pbx.user("1001")), None),
        (Method::GET, format!("{}/policy", pbx.user("1001")), None),
        (Method::GET, "/auth/me".to_string(), None),
        // ... and the operator's: 403 as for a session.
        (Method::GET, "/tenants".to_string(), None),
        (
            Method::PUT,
            "/provision".to_string(),
            Some(json!({"tenants": []})),
        ),
        (Method::GET, "/metrics".to_string(), None),
    ] {
        let (status, got) = cti.call(method.clone(), &path, body);
        assert_eq!(status, 403, "{method} {path}: {got}");
    }

    // The admin lists tokens without their secrets; a plain user may not see them.
    let listed = admin.ok(Method::GET, &format!("{a}/api-tokens"), None);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["id"], created["id"]);
    assert_eq!(listed[0]["name"], "crm");
    assert_eq!(
        listed[0]["users"],
        json!([pbx.users["1001"].1, pbx.users["1002"].1])
    );
    assert!(listed[0].get("token").is_none(), "{listed}");
    assert!(!listed.to_string().contains(token(&cti)), "{listed}");
    let alice = Client::login(&pbx.tsps, DOMAIN, "1001", "alice-secret-1");
    let (status, got) = alice.call(Method::GET, &format!("{a}/api-tokens"), None);
    assert_eq!(status, 403, "{got}");

    // The admin's checks on a new token: names unique, users of the tenant, a future end.
    let (status, got) = admin.call(
        Method::POST,
        &format!("{a}/api-tokens"),
        Some(json!({"name": "crm"})),
    );
    assert_eq!(
        (status, got["error"]["code"].as_str()),
        (409, Some("already_exists")),
        "{got}"
    );
    let (status, got) = admin.call(
        Method::POST,
        &format!("{a}/api-tokens"),
        Some(json!({"name": " ", "users": [pbx.users["2001"].1],
                    "expires_at": "2020-01-01T00:00:00Z"})),
    );
    assert_eq!(status, 422, "{got}");
    assert_eq!(got["error"]["code"], "invalid_api_token", "{got}");
    let fields: Vec<&str> = got["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "users[0]", "expires_at"], "{got}");
}

#[test]
fn revoked_and_expired_tokens_are_refused() {
    let pbx = Pbx::start();
    let admin = pbx.admin();
    let (created, cti) = pbx.crm(&admin);
    let status = format!("{}/status", pbx.user("1001"));
    cti.ok(Method::GET, &status, None);

    // Revoked: 401 at once, REST and WebSocket alike.
    let id = created["id"].as_str().unwrap();
    let (code, body) = admin.call(
        Method::DELETE,
        &format!("{}/api-tokens/{id}", pbx.tenant_a()),
        None,
    );
    assert_eq!(code, 204, "{body}");
    let (code, body) = cti.call(Method::GET, &status, None);
    assert_eq!(code, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    let refused = EventsClient::try_connect(
        Kind::WebSocket,
        &pbx.events_url("1001"),
        token(&cti),
        None,
        &[],
    );
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("401")),
        "{:?}",
        refused.err()
    );
    let (code, body) = admin.call(
        Method::DELETE,
        &format!("{}/api-tokens/{id}", pbx.tenant_a()),
        None,
    );
    assert_eq!(code, 404, "revoked already: {body}");
    // A made-up token is no better.
    let forged = Client::new(&pbx.tsps, Auth::Bearer(format!("tsps_{}", "A".repeat(43))));
    assert_eq!(forged.call(Method::GET, &status, None).0, 401);

    // Expiring: works until its end, then 401, on the platform's clock (moved, not
    // waited for).
    let end = chrono::Utc::now() + chrono::Duration::seconds(60);
    let created = pbx.create_token(
        &admin,
        json!({"name": "trial", "users": [pbx.users["1001"].1],
               "expires_at": end.to_rfc3339()}),
    );
    assert!(created["expires_at"].is_string(), "{created}");
    let trial = Client::new(
        &pbx.tsps,
        Auth::Bearer(created["token"].as_str().unwrap().to_string()),
    );
    let set_clock = |at: chrono::DateTime<chrono::Utc>| {
        pbx.tsps.api_ok(
            Method::PUT,
            "/testing/clock",
            Some(&json!({ "now": at.to_rfc3339() })),
        );
    };
    set_clock(end - chrono::Duration::seconds(1));
    let (code, body) = trial.call(Method::GET, &status, None);
    assert_eq!(code, 200, "a second before its end: {body}");
    set_clock(end + chrono::Duration::seconds(1));
    let (code, body) = trial.call(Method::GET, &status, None);
    assert_eq!(code, 401, "a second after its end: {body}");
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    set_clock(chrono::Utc::now());
    // Listed still, with its end, until the admin revokes it.
    let listed = admin.ok(Method::GET, &format!("{}/api-tokens", pbx.tenant_a()), None);
    assert_eq!(listed[0]["name"], "trial", "{listed}");
}

/// Within this a revoked token's streams end on the node that revoked it (a local
/// signal, not the 30 s re-check: without it they would stay open).
const ENDS: Duration = Duration::from_secs(5);

#[test]
fn a_revoked_token_ends_the_event_streams_it_opened() {
    let pbx = Pbx::start();
    let admin = pbx.admin();
    let (created, cti) = pbx.crm(&admin);
    let sse_url = pbx.events_url("1001").replace("/events/ws", "/events/sse");
    let mut ws = pbx.events(&cti, "1001");
    let mut sse = EventsClient::connect(Kind::Sse, &sse_url, token(&cti), None);
    assert_eq!(sse.next(WAIT)["type"], "snapshot");
    // Another integration's stream of the same user.
    let console = pbx.create_token(&admin, json!({"name": "console"}));
    let console = console["token"].as_str().unwrap();
    let mut kept = EventsClient::connect(Kind::Sse, &sse_url, console, None);
    assert_eq!(kept.next(WAIT)["type"], "snapshot");

    let id = created["id"].as_str().unwrap();
    let (code, body) = admin.call(
        Method::DELETE,
        &format!("{}/api-tokens/{id}", pbx.tenant_a()),
        None,
    );
    assert_eq!(code, 204, "{body}");
    // The WebSocket is closed with 4401, the SSE response ends.
    assert_eq!(ws.wait_ended(ENDS), "close 4401 credentials revoked");
    assert_eq!(sse.wait_ended(ENDS), "end");
    // Reconnecting is refused, as any request with the token.
    for (kind, url) in [
        (Kind::WebSocket, pbx.events_url("1001")),
        (Kind::Sse, sse_url.clone()),
    ] {
        let refused = EventsClient::try_connect(kind, &url, token(&cti), None, &[]);
        assert!(
            refused.as_ref().is_err_and(|e| e.contains("401")),
            "{url}: {:?}",
            refused.err()
        );
    }
    // The other token's stream is still live: it sees 1001's status change.
    admin.ok(
        Method::PUT,
        &format!("{}/status", pbx.user("1001")),
        Some(json!({"presence": "away"})),
    );
    kept.until(WAIT, "the status change", |v| {
        v["type"] == "status" && v["data"]["presence"] == "away"
    });
}
