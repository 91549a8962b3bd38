//! A user's live events end to end: a real tsps, real SIPp phones, and a WebSocket or
//! SSE client reading what a browser session would get: a snapshot first, then each
//! line change of a call (ringing, active, ended) with the actions allowed on it, the
//! device's registration and the user's hook state; a reconnect that resumes without
//! loss; and tenants as walls.

mod common;

use common::events::{EventsClient, Kind};
use common::{free_port, register, Sipp, Tsps, DEVICE_IP};
use reqwest::Method;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

fn provisioning() -> String {
    r#"tenants:
  - domain: a.test
    name: Tenant A
    users:
      - extension: "1001"
        display_name: Alice
        devices:
          - sip_username: "1001"
            password: secret1001
      - extension: "1002"
        display_name: Bob
        devices:
          - sip_username: "1002"
            password: secret1002
  - domain: b.test
    name: Tenant B
    users:
      - extension: "2001"
        display_name: Zoe
        devices:
          - sip_username: "2001"
            password: secret2001
"#
    .to_string()
}

struct Setup {
    tsps: Tsps,
    /// domain → tenant id
    tenants: BTreeMap<String, String>,
    /// extension → (tenant id, user id)
    users: BTreeMap<String, (String, String)>,
}

fn start() -> Setup {
    let tsps = Tsps::start(&provisioning(), &[]);
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
    Setup {
        tsps,
        tenants,
        users,
    }
}

impl Setup {
    fn events_url(&self, ext: &str, kind: &str) -> String {
        let (t, u) = &self.users[ext];
        format!(
            "{}/api/v1/tenants/{t}/users/{u}/events/{kind}",
            self.tsps.http_url()
        )
    }

    fn open(&self, kind: Kind, ext: &str, since: Option<&str>) -> EventsClient {
        let path = match kind {
            Kind::WebSocket => "ws",
            Kind::Sse => "sse",
        };
        EventsClient::connect(
            kind,
            &self.events_url(ext, path),
            self.tsps.api_token(),
            since,
        )
    }

    /// 1002 registered and answering; returns its SIPp UAS.
    fn bob_answers(&self) -> common::SippHandle {
        let port = free_port(IpAddr::V4(DEVICE_IP), false);
        register(&self.tsps, "a.test", "1002", "secret1002", port);
        self.tsps.spawn_sipp(Sipp::uas("uas_answer.xml").port(port))
    }

    fn alice_calls_bob(&self) {
        self.tsps
            .sipp(
                Sipp::new("uac_call.xml")
                    .device("a.test", "1001", "secret1001")
                    .calling("1002"),
            )
            .assert_success("1001 calls 1002, talks, hangs up");
    }
}

fn is_line(v: &Value, state: &str) -> bool {
    v["type"] == "line" && v["data"]["state"] == state
}

fn seqs_increase(seen: &[Value]) {
    let seqs: Vec<u64> = seen
        .iter()
        .filter(|v| v["type"] != "snapshot")
        .map(|v| v["seq"].as_u64().expect("seq"))
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive sequence numbers: {seqs:?}"
    );
}

#[test]
fn websocket_follows_a_call_from_ring_to_hangup() {
    let s = start();
    let uas = s.bob_answers();
    let mut bob = s.open(Kind::WebSocket, "1002", None);
    let mut alice = s.open(Kind::WebSocket, "1001", None);

    let snap = bob.next(WAIT);
    assert_eq!(snap["type"], "snapshot", "{snap}");
    assert_eq!(snap["v"], 1);
    assert_eq!(snap["data"]["lines"], Value::Array(vec![]));
    let devices = snap["data"]["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 1, "{snap}");
    assert_eq!(devices[0]["name"], "1002");
    assert_eq!(devices[0]["registered"], true, "{snap}");
    assert_eq!(snap["data"]["status"]["hook"], "idle");
    assert_eq!(alice.next(WAIT)["type"], "snapshot");

    s.alice_calls_bob();
    uas.join().assert_success("1002 answered and got the BYE");

    let ringing = bob.until(WAIT, "bob's line ringing", |v| is_line(v, "ringing"));
    let line = &ringing["data"];
    assert_eq!(line["direction"], "in", "{ringing}");
    assert_eq!(line["peer"]["number"], "1001", "{ringing}");
    assert_eq!(
        line["allowed"],
        serde_json::json!(["answer", "reject", "forward"]),
        "{ringing}"
    );
    assert_eq!(line["decision"]["reasons"][0], "ring devices", "{ringing}");
    let call_id = line["call_id"].clone();
    let active = bob.until(WAIT, "bob's line active", |v| is_line(v, "active"));
    assert_eq!(active["data"]["call_id"], call_id);
    assert_eq!(
        active["data"]["allowed"],
        serde_json::json!(["hold", "transfer", "release"])
    );
    assert!(active["data"]["device_id"].is_string(), "{active}");
    let ended = bob.until(WAIT, "bob's line ended", |v| v["type"] == "line_ended");
    assert_eq!(ended["data"]["call_id"], call_id);
    assert_eq!(ended["data"]["outcome"], "answered");
    bob.until(WAIT, "bob idle again", |v| {
        v["type"] == "status" && v["data"]["hook"] == "idle"
    });
    let seen = bob.close();
    assert!(
        seen.iter()
            .any(|v| v["type"] == "status" && v["data"]["hook"] == "busy"),
        "bob was busy during the call: {seen:#?}"
    );
    seqs_increase(&seen);

    // The caller's side of the same call.
    let dialing = alice.until(WAIT, "alice dialing", |v| is_line(v, "dialing"));
    assert_eq!(dialing["data"]["direction"], "out");
    assert_eq!(dialing["data"]["peer"]["number"], "1002");
    assert_eq!(dialing["data"]["allowed"], serde_json::json!(["release"]));
    alice.until(WAIT, "alice active", |v| is_line(v, "active"));
    alice.until(WAIT, "alice's line ended", |v| v["type"] == "line_ended");
    seqs_increase(&alice.close());
}

#[test]
fn reconnect_resumes_without_loss() {
    let s = start();
    let uas = s.bob_answers();
    let mut bob = s.open(Kind::WebSocket, "1002", None);
    let snap = bob.next(WAIT);
    assert_eq!(snap["type"], "snapshot");
    let resume = snap["resume"].as_str().unwrap().to_string();
    let last_seq = snap["seq"].as_u64().unwrap();
    drop(bob); // the browser tab goes away

    s.alice_calls_bob(); // a whole call while nobody watches
    uas.join().assert_success("1002 answered");

    let mut bob = s.open(Kind::WebSocket, "1002", Some(&resume));
    let first = bob.next(WAIT);
    assert_ne!(
        first["type"], "snapshot",
        "missed events, not a snapshot: {first}"
    );
    assert_eq!(first["seq"].as_u64(), Some(last_seq + 1), "{first}");
    bob.until(WAIT, "the ringing line", |v| is_line(v, "ringing"));
    bob.until(WAIT, "the active line", |v| is_line(v, "active"));
    bob.until(WAIT, "the end of the call", |v| v["type"] == "line_ended");
    let seen = bob.close();
    seqs_increase(&seen);

    // A token from before a restart (another epoch) gets a snapshot instead.
    let mut bob = s.open(Kind::WebSocket, "1002", Some("1:1"));
    let again = bob.next(WAIT);
    assert_eq!(again["type"], "snapshot", "{again}");
    assert_eq!(again["data"]["lines"], Value::Array(vec![]));
}

#[test]
fn sse_carries_the_same_events_with_resume_ids() {
    let s = start();
    let mut bob = s.open(Kind::Sse, "1002", None);
    let snap = bob.next(WAIT);
    assert_eq!(snap["type"], "snapshot");
    assert_eq!(snap["data"]["devices"][0]["registered"], false, "{snap}");
    assert_eq!(snap["sse_id"], snap["resume"]);

    let port = free_port(IpAddr::V4(DEVICE_IP), false);
    register(&s.tsps, "a.test", "1002", "secret1002", port);
    let dev = bob.until(WAIT, "the device registered", |v| v["type"] == "device");
    assert_eq!(dev["data"]["registered"], true, "{dev}");
    assert_eq!(dev["data"]["contacts"], 1, "{dev}");
    assert_eq!(dev["data"]["name"], "1002");
    assert_eq!(dev["sse_id"], dev["resume"]);
    // The user is reachable now: a status change of its own.
    let st = bob.until(WAIT, "registered in the status", |v| v["type"] == "status");
    assert_eq!(st["data"]["registered"], true, "{st}");

    // Status set by the user reaches the stream too.
    let (t, u) = &s.users["1002"];
    s.tsps.api_ok(
        Method::PUT,
        &format!("/tenants/{t}/users/{u}/status"),
        Some(&serde_json::json!({"presence": "away"})),
    );
    let st = bob.until(WAIT, "the status change", |v| v["type"] == "status");
    assert_eq!(st["data"]["presence"], "away", "{st}");
}

#[test]
fn another_tenants_user_has_no_stream_here() {
    let s = start();
    let a = &s.tenants["a.test"];
    let (b, zoe) = &s.users["2001"];
    for kind in ["sse", "ws"] {
        let (status, body) = s.tsps.api(
            Method::GET,
            &format!("/tenants/{a}/users/{zoe}/events/{kind}"),
            None,
        );
        assert_eq!(status, 404, "{kind}: {body}");
        assert!(body["error"].is_object(), "a JSON error: {body}");
    }
    let (status, body) = s.tsps.api(
        Method::GET,
        &format!("/tenants/{b}/users/{zoe}/events/sse?since=garbage"),
        None,
    );
    assert_eq!(status, 400, "{body}");
    // Last-Event-ID says the same as since: one that is not text is as bad, and an
    // empty one is none, which leaves a bad since to be refused.
    let sse = format!("/tenants/{b}/users/{zoe}/events/sse");
    let not_text = reqwest::header::HeaderValue::from_bytes(&[0xc2, 0x84]).unwrap();
    assert_eq!(sse_status(&s, &sse, not_text), 400);
    let empty = reqwest::header::HeaderValue::from_static("");
    assert_eq!(sse_status(&s, &format!("{sse}?since=garbage"), empty), 400);
}

/// The status of an event stream request with `Last-Event-ID: last` (its body is
/// left unread: a stream that opened does not end).
fn sse_status(s: &Setup, path: &str, last: reqwest::header::HeaderValue) -> u16 {
    let url = format!("{}/api/v1{path}", s.tsps.http_url());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = reqwest::Client::new()
            .get(&url)
            .bearer_auth(s.tsps.api_token())
            .header("last-event-id", last)
            .send()
            .await
            .unwrap();
        resp.status().as_u16()
    })
}

fn metrics(s: &Setup) -> String {
    let url = format!("{}/api/v1/metrics", s.tsps.http_url());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = reqwest::Client::new()
            .get(&url)
            .bearer_auth(s.tsps.api_token())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    })
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[test]
fn metrics_count_sessions_and_messages() {
    let s = start();
    let mut bob = s.open(Kind::WebSocket, "1002", None);
    bob.next(WAIT);
    let port = free_port(IpAddr::V4(DEVICE_IP), false);
    register(&s.tsps, "a.test", "1002", "secret1002", port);
    bob.until(WAIT, "the device registered", |v| v["type"] == "device");
    let text = metrics(&s);
    assert_eq!(metric(&text, "tsps_push_sessions"), 1.0, "{text}");
    assert_eq!(metric(&text, "tsps_push_streams"), 1.0, "{text}");
    assert!(
        metric(&text, "tsps_push_total{what=\"messages\"}") >= 1.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "tsps_push_total{what=\"resyncs_lagged\"}"),
        0.0
    );
    assert!(metric(&text, "tsps_users") >= 3.0, "{text}");
    assert!(
        !text.contains("a.test"),
        "no tenant in metric labels: {text}"
    );
    drop(bob);
    // The session is gone once its socket is closed (polled: the server notices async).
    let deadline = std::time::Instant::now() + WAIT;
    while metric(&metrics(&s), "tsps_push_sessions") != 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the session never closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_watcher_sees_colleagues_status_and_an_attendant_their_incoming_calls() {
    let s = start();
    let (t, bob) = s.users["1002"].clone();
    let (_, alice) = s.users["1001"].clone();
    let (_, zoe) = s.users["2001"].clone();
    // Bob is Alice's attendant.
    s.tsps.api_ok(
        Method::PUT,
        &format!("/tenants/{t}/users/{alice}/profile"),
        Some(&serde_json::json!({"attendant": {"extension": "1002"}})),
    );
    let watch = format!("/tenants/{t}/users/{bob}/watch");
    let (status, body) = s.tsps.api(
        Method::PUT,
        &watch,
        Some(&serde_json::json!({"users": [alice, zoe]})),
    );
    assert_eq!(
        status, 422,
        "another tenant's user cannot be watched: {body}"
    );
    assert_eq!(body["error"]["details"][0]["field"], "users[1]", "{body}");

    let mut events = s.open(Kind::WebSocket, "1002", None);
    events.next(WAIT);
    // Alice's actor reloads her profile after the PUT: until it has, Bob is not yet
    // her attendant (polled with a deadline).
    let deadline = std::time::Instant::now() + WAIT;
    let got = loop {
        let got = s.tsps.api_ok(
            Method::PUT,
            &watch,
            Some(&serde_json::json!({"users": [alice]})),
        );
        if got["watched"][0]["attendant"] == true || std::time::Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(got["watched"][0]["attendant"], true, "{got}");
    assert_eq!(got["watched"][0]["hook"], "idle", "{got}");
    events.until(WAIT, "the watched list", |v| v["type"] == "watched");

    // Bob's own phone calls Alice: as her attendant he sees her side of it too.
    let port = free_port(IpAddr::V4(DEVICE_IP), false);
    register(&s.tsps, "a.test", "1001", "secret1001", port);
    let uas = s.tsps.spawn_sipp(Sipp::uas("uas_answer.xml").port(port));
    s.tsps
        .sipp(
            Sipp::new("uac_call.xml")
                .device("a.test", "1002", "secret1002")
                .calling("1001"),
        )
        .assert_success("1002 calls 1001");
    uas.join().assert_success("1001 answers");
    let ringing = events.until(WAIT, "Alice's incoming line", |v| {
        v["type"] == "watched_line" && v["data"]["line"]["state"] == "ringing"
    });
    assert_eq!(ringing["data"]["user_id"], alice.as_str(), "{ringing}");
    assert_eq!(
        ringing["data"]["line"]["peer"]["number"], "1002",
        "{ringing}"
    );
    events.until(WAIT, "Alice on the phone", |v| {
        v["type"] == "presence"
            && v["data"]["user_id"] == alice.as_str()
            && v["data"]["hook"] == "busy"
    });
    events.until(WAIT, "Alice's line gone", |v| {
        v["type"] == "watched_line_ended"
    });
    events.until(WAIT, "Alice idle again", |v| {
        v["type"] == "presence" && v["data"]["hook"] == "idle"
    });
    seqs_increase(&events.close());
}
