//! Portal login, sessions and authorization end to end, against a real `tsps serve`:
//! the cookie and its attributes, wrong passwords and the limiter, what a session of a
//! user and of a tenant admin may see (404 for what is not theirs), CSRF on writes,
//! logout, sessions surviving a restart (SQLite and PostgreSQL), password changes, the
//! user's own call history, and platform operators (`tsps operator add|remove`, their
//! login and what their session may do).

mod common;

use chrono::{TimeZone, Utc};
use common::browser::{Answer, Browser};
use common::events::{Credentials, EventsClient, Kind};
use common::{PgDatabase, Tsps};
use reqwest::header::SET_COOKIE;
use reqwest::Method;
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use tsps_actors::model::{CallDirection, CallOutcome, CallRecord, Party};
use tsps_actors::{CallId, TenantId, UserId};

fn provisioning() -> &'static str {
    r#"tenants:
  - domain: a.test
    name: Tenant A
    users:
      - extension: "1001"
        display_name: Alice
        password: alice-secret-1
      - extension: "1002"
        display_name: Bob
        portal_login: Bob.B
        password: bob-secret-2
      - extension: "1009"
        display_name: Ada Admin
        role: tenant_admin
        password: admin-secret-9
      - extension: "1003"
        display_name: Carol (no portal login)
  - domain: b.test
    name: Tenant B
    users:
      - extension: "1001"
        display_name: Zed
        role: tenant_admin
        password: zed-secret-1
"#
}

/// Ids by the operator's API: the tenant of `domain` and its user `extension`.
fn ids(tsps: &Tsps, domain: &str, extension: &str) -> (String, String) {
    let tenants = tsps.api_ok(Method::GET, "/tenants", None);
    let tenant = tenants
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["domain"] == domain)
        .unwrap_or_else(|| panic!("no tenant {domain}: {tenants}"))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let users = tsps.api_ok(Method::GET, &format!("/tenants/{tenant}/users"), None);
    let user = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["extension"] == extension)
        .unwrap_or_else(|| panic!("no user {extension}: {users}"))["id"]
        .as_str()
        .unwrap()
        .to_string();
    (tenant, user)
}

#[test]
fn login_sets_a_strict_http_only_cookie_and_wrong_passwords_are_limited() {
    let tsps = Tsps::start(provisioning(), &[]);
    let mut alice = Browser::new(&tsps);

    let ok = alice.login("a.test", "1001", "alice-secret-1");
    assert_eq!(ok.status, 200, "{}", ok.body);
    let cookie = ok.headers[SET_COOKIE].to_str().unwrap().to_string();
    assert!(cookie.starts_with("tsps_session="), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    // http.secure_cookies is off by default (the demo runs on plain http).
    assert!(!cookie.contains("Secure"), "{cookie}");
    let session_id = alice.cookie.clone().unwrap();
    assert_eq!(session_id.len(), 43, "256 bits, base64url");
    let user = &ok.body["user"];
    assert_eq!(user["extension"], "1001");
    assert_eq!(user["display_name"], "Alice");
    assert_eq!(user["role"], "user");
    let csrf = ok.body["csrf_token"].as_str().unwrap().to_string();
    assert_eq!(csrf.len(), 43);
    // `me` answers the same user and token (the portal asks after a page load).
    let me = alice.get("/auth/me");
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body, ok.body);
    // The portal login name works too (as written); the domain in any case.
    let mut bob = Browser::new(&tsps);
    bob.logged_in("A.TEST", "Bob.B", "bob-secret-2");

    // Wrong password, unknown login, unknown domain, a user without a password: one
    // and the same 401.
    let mut stranger = Browser::new(&tsps);
    let wrong = stranger.login("a.test", "1002", "not-bobs-password");
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert_eq!(wrong.code(), "unauthorized");
    assert!(stranger.cookie.is_none());
    for (domain, login, password) in [
        ("a.test", "1999", "whatever-1"),
        ("nowhere.test", "1001", "alice-secret-1"),
        ("a.test", "1003", "anything-9"),
    ] {
        let a = stranger.login(domain, login, password);
        assert_eq!((a.status, &a.body), (401, &wrong.body), "{login}@{domain}");
    }
    // Without a cookie, `me` is 401 too.
    assert_eq!(stranger.get("/auth/me").status, 401);

    // Bob's login: four more wrong passwords (five in all) are 401, the sixth attempt
    // is 429 with Retry-After, even with the right password.
    for _ in 0..4 {
        assert_eq!(stranger.login("a.test", "1002", "guess-guess").status, 401);
    }
    let limited = stranger.login("a.test", "1002", "guess-guess");
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert_eq!(limited.code(), "too_many_requests");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        stranger.login("a.test", " Bob.B ", "bob-secret-2").status,
        429
    );
    // Other logins are not held up; Bob's open session still works.
    alice.logged_in("a.test", "1001", "alice-secret-1");
    assert_eq!(bob.get("/auth/me").status, 200);
}

#[test]
fn a_user_sees_itself_and_gets_404_for_what_is_not_its_own() {
    let tsps = Tsps::start(provisioning(), &[]);
    let (a, bob_id) = ids(&tsps, "a.test", "1002");
    let (b, zed_id) = ids(&tsps, "b.test", "1001");
    let mut alice = Browser::new(&tsps);
    let (tenant, me) = alice.logged_in("a.test", "1001", "alice-secret-1");
    assert_eq!(tenant, a);

    // Its own things.
    let profile = alice.get(&format!("/tenants/{a}/users/{me}/profile"));
    assert_eq!(profile.status, 200, "{}", profile.body);
    let own = alice.get(&format!("/tenants/{a}/users/{me}"));
    assert_eq!(own.status, 200, "{}", own.body);
    assert_eq!(own.body["role"], "user");
    // The tenant's directory, name, shared contacts and settings: readable, and no
    // secret in them.
    let directory = alice.get(&format!("/tenants/{a}/users"));
    assert_eq!(directory.status, 200, "{}", directory.body);
    assert_eq!(directory.body.as_array().unwrap().len(), 4);
    let text = directory.body.to_string();
    assert!(
        !text.contains("argon2") && !text.contains("password"),
        "{text}"
    );
    for path in ["", "/contacts", "/settings"] {
        let r = alice.get(&format!("/tenants/{a}{path}"));
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }

    // Another user of the same tenant: as if it did not exist.
    for path in ["", "/profile", "/status", "/contacts", "/calls/history"] {
        let r = alice.get(&format!("/tenants/{a}/users/{bob_id}{path}"));
        assert_eq!(
            (r.status, r.code()),
            (404, "not_found"),
            "{path}: {}",
            r.body
        );
    }
    // Another tenant: 404 whatever the path, even with an id of its own user.
    for path in [
        format!("/tenants/{b}"),
        format!("/tenants/{b}/users"),
        format!("/tenants/{b}/users/{zed_id}/profile"),
        format!("/tenants/{b}/users/{me}/profile"),
        format!("/tenants/{b}/calls"),
    ] {
        let r = alice.get(&path);
        assert_eq!(
            (r.status, r.code()),
            (404, "not_found"),
            "{path}: {}",
            r.body
        );
    }
    // The same 404 as for a tenant that does not exist.
    let missing = TenantId::new();
    let r = alice.get(&format!("/tenants/{b}"));
    assert_eq!(r.body["error"]["message"], format!("tenant not found: {b}"));
    let r = tsps.api(Method::GET, &format!("/tenants/{missing}"), None);
    assert_eq!(
        r.1["error"]["message"],
        format!("tenant not found: {missing}")
    );
    // Its own tenant, but the admin's business or the platform's: 403.
    for (method, path) in [
        (Method::GET, format!("/tenants/{a}/calls")),
        (Method::GET, format!("/tenants/{a}/registrations")),
        (Method::GET, "/tenants".to_string()),
        (Method::PUT, format!("/tenants/{a}/users/{me}")),
        (Method::POST, format!("/tenants/{a}/users")),
        (Method::PUT, format!("/tenants/{a}/users/{me}/policy")),
        (Method::PUT, "/provision".to_string()),
    ] {
        let r = alice.send(method.clone(), &path, Some(json!({})), true);
        assert_eq!(
            (r.status, r.code()),
            (403, "forbidden"),
            "{method} {path}: {}",
            r.body
        );
    }

    // A write with the cookie but without the CSRF token is refused; with it, done.
    let status = format!("/tenants/{a}/users/{me}/status");
    let no_csrf = alice.send(
        Method::PUT,
        &status,
        Some(json!({"presence": "away"})),
        false,
    );
    assert_eq!(
        (no_csrf.status, no_csrf.code()),
        (403, "forbidden"),
        "{}",
        no_csrf.body
    );
    let mut wrong = Browser::new(&tsps);
    wrong.cookie = alice.cookie.clone();
    wrong.csrf = Some("not-the-token".into());
    assert_eq!(
        wrong
            .write(Method::PUT, &status, json!({"presence": "away"}))
            .status,
        403
    );
    let done = alice.write(Method::PUT, &status, json!({"presence": "away"}));
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(alice.get(&status).body["presence"], "away");

    // A WebSocket with the cookie must come from this origin (no CSRF header exists
    // for a handshake, and browsers send cookies with cross-site ones).
    let cookie = alice.cookie.clone().unwrap();
    let events = format!("/api/v1/tenants/{a}/users/{me}/events/ws");
    let host = tsps.http_url().trim_start_matches("http://").to_string();
    let same = websocket_handshake(&host, &events, &cookie, &format!("http://{host}"));
    assert!(same.starts_with("HTTP/1.1 101"), "{same}");
    let cross = websocket_handshake(&host, &events, &cookie, "https://evil.example");
    assert!(cross.starts_with("HTTP/1.1 403"), "{cross}");
    let bobs = format!("/api/v1/tenants/{a}/users/{bob_id}/events/ws");
    let other = websocket_handshake(&host, &bobs, &cookie, &format!("http://{host}"));
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");

    // The operator's token needs no CSRF header and sees everything.
    let (code, _) = tsps.api(Method::GET, &format!("/tenants/{a}/calls"), None);
    assert_eq!(code, 200);

    // Logout needs the CSRF token too, then the cookie is gone and the session ended.
    let stolen = alice.cookie.clone();
    assert_eq!(
        alice.send(Method::POST, "/auth/logout", None, false).status,
        403
    );
    let out = alice.send(Method::POST, "/auth/logout", None, true);
    assert_eq!(out.status, 204, "{}", out.body);
    assert!(out.headers[SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert!(alice.cookie.is_none());
    assert_eq!(alice.get("/auth/me").status, 401);
    let mut replay = Browser::new(&tsps);
    replay.cookie = stolen;
    let r = replay.get(&format!("/tenants/{a}/users/{me}/profile"));
    assert_eq!((r.status, r.code()), (401, "unauthorized"), "{}", r.body);
}

/// Within this a session's streams end on the node that ended it (a local signal, not
/// the 30 s re-check: without it they would stay open).
const ENDS: Duration = Duration::from_secs(5);
const WAIT: Duration = Duration::from_secs(10);

/// A portal page's event stream (`ws` or `sse`) of `user` with the session `cookie`,
/// its snapshot read; the refusal as an error.
fn session_events(
    tsps: &Tsps,
    kind: Kind,
    (tenant, user): (&str, &str),
    cookie: &str,
) -> Result<EventsClient, String> {
    let path = match kind {
        Kind::WebSocket => "ws",
        Kind::Sse => "sse",
    };
    let url = format!(
        "{}/api/v1/tenants/{tenant}/users/{user}/events/{path}",
        tsps.http_url()
    );
    // A browser's WebSocket comes with its page's origin.
    let origin = tsps.http_url();
    let mut events = EventsClient::try_connect_as(
        kind,
        &url,
        Credentials::Cookie(cookie),
        None,
        &[("origin", origin.as_str())],
    )?;
    let snapshot = events.next(WAIT);
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    Ok(events)
}

#[test]
fn a_sessions_event_streams_end_with_the_session() {
    let tsps = Tsps::start(provisioning(), &[]);
    let mut alice = Browser::new(&tsps);
    let (a, me) = alice.logged_in("a.test", "1001", "alice-secret-1");
    let cookie = alice.cookie.clone().unwrap();
    let mine = (a.as_str(), me.as_str());
    let mut ws = session_events(&tsps, Kind::WebSocket, mine, &cookie).unwrap();
    let mut sse = session_events(&tsps, Kind::Sse, mine, &cookie).unwrap();
    // Alice on another device: another session, which stays.
    let mut phone = Browser::new(&tsps);
    phone.logged_in("a.test", "1001", "alice-secret-1");
    let phone_cookie = phone.cookie.clone().unwrap();
    let mut kept = session_events(&tsps, Kind::Sse, mine, &phone_cookie).unwrap();

    // Logout: the WebSocket is closed with 4401, the SSE response ends.
    let out = alice.send(Method::POST, "/auth/logout", None, true);
    assert_eq!(out.status, 204, "{}", out.body);
    assert_eq!(ws.wait_ended(ENDS), "close 4401 credentials revoked");
    assert_eq!(sse.wait_ended(ENDS), "end");
    for kind in [Kind::WebSocket, Kind::Sse] {
        let again = session_events(&tsps, kind, mine, &cookie);
        assert!(
            again.as_ref().is_err_and(|e| e.contains("401")),
            "{:?}",
            again.err()
        );
    }
    let status = format!("/tenants/{a}/users/{me}/status");
    let set = phone.write(Method::PUT, &status, json!({"presence": "away"}));
    assert_eq!(set.status, 200, "{}", set.body);
    kept.until(WAIT, "the status change", |v| {
        v["type"] == "status" && v["data"]["presence"] == "away"
    });

    // An administrator resets Bob's password: Bob's sessions end, and their streams.
    let mut bob = Browser::new(&tsps);
    let (_, bob_id) = bob.logged_in("a.test", "Bob.B", "bob-secret-2");
    let bobs = (a.as_str(), bob_id.as_str());
    let mut bob_events =
        session_events(&tsps, Kind::WebSocket, bobs, &bob.cookie.clone().unwrap()).unwrap();
    let mut ada = Browser::new(&tsps);
    let (_, ada_id) = ada.logged_in("a.test", "1009", "admin-secret-9");
    let ada_cookie = ada.cookie.clone().unwrap();
    let reset = ada.write(
        Method::PUT,
        &format!("/tenants/{a}/users/{bob_id}/password"),
        json!({"password": "bob-new-secret"}),
    );
    assert_eq!(reset.status, 204, "{}", reset.body);
    assert_eq!(
        bob_events.wait_ended(ENDS),
        "close 4401 credentials revoked"
    );

    // The admin follows Alice's events; demoted to a plain user, it may no longer.
    let mut watched = session_events(&tsps, Kind::Sse, mine, &ada_cookie).unwrap();
    let mut own = session_events(&tsps, Kind::Sse, (&a, &ada_id), &ada_cookie).unwrap();
    tsps.api_ok(
        Method::PUT,
        &format!("/tenants/{a}/users/{ada_id}"),
        Some(&json!({"extension": "1009", "display_name": "Ada Admin", "role": "user"})),
    );
    assert_eq!(watched.wait_ended(ENDS), "end");
    let again = session_events(&tsps, Kind::Sse, mine, &ada_cookie);
    assert!(
        again.as_ref().is_err_and(|e| e.contains("404")),
        "{:?}",
        again.err()
    );
    // Its own stream stays: the session still opens it.
    let set = ada.write(
        Method::PUT,
        &format!("/tenants/{a}/users/{ada_id}/status"),
        json!({"presence": "away"}),
    );
    assert_eq!(set.status, 200, "{}", set.body);
    own.until(WAIT, "the status change", |v| {
        v["type"] == "status" && v["data"]["presence"] == "away"
    });
}

/// Opens a WebSocket handshake with the session cookie and `origin`; returns the
/// status line of the answer.
fn websocket_handshake(host: &str, path: &str, cookie: &str, origin: &str) -> String {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(host).expect("connect to tsps http");
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Origin: {origin}\r\nCookie: tsps_session={cookie}\r\n\r\n"
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !got.windows(2).any(|w| w == b"\r\n") {
        match tcp.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got);
    text.lines().next().unwrap_or("").to_string()
}

#[test]
fn a_tenant_admin_manages_its_own_tenant_only() {
    let tsps = Tsps::start(provisioning(), &[]);
    let (b, _) = ids(&tsps, "b.test", "1001");
    let mut admin = Browser::new(&tsps);
    let (a, _) = admin.logged_in("a.test", "1009", "admin-secret-9");
    let me = admin.get("/auth/me");
    assert_eq!(me.body["user"]["role"], "tenant_admin");

    assert_eq!(admin.get(&format!("/tenants/{a}/users")).status, 200);
    assert_eq!(admin.get(&format!("/tenants/{a}/calls")).status, 200);
    let created = admin.write(
        Method::POST,
        &format!("/tenants/{a}/users"),
        json!({"extension": "1010", "display_name": "Dora", "role": "tenant_admin"}),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["role"], "tenant_admin");
    let dora = created.body["id"].as_str().unwrap().to_string();
    // A PUT without a role keeps it; with one, changes it.
    let path = format!("/tenants/{a}/users/{dora}");
    let kept = admin.write(
        Method::PUT,
        &path,
        json!({"extension": "1010", "display_name": "Dora D."}),
    );
    assert_eq!(
        (kept.status, &kept.body["role"]),
        (200, &json!("tenant_admin")),
        "{}",
        kept.body
    );
    let demoted = admin.write(
        Method::PUT,
        &path,
        json!({"extension": "1010", "display_name": "Dora D.", "role": "user"}),
    );
    assert_eq!(demoted.body["role"], "user", "{}", demoted.body);

    // The admin sets Dora's password: no current password needed. Too short is 422.
    let short = admin.write(
        Method::PUT,
        &format!("{path}/password"),
        json!({"password": "short"}),
    );
    assert_eq!(
        (short.status, short.code()),
        (422, "invalid_password"),
        "{}",
        short.body
    );
    assert_eq!(short.body["error"]["details"][0]["field"], "password");
    let set = admin.write(
        Method::PUT,
        &format!("{path}/password"),
        json!({"password": "dora-secret-10"}),
    );
    assert_eq!(set.status, 204, "{}", set.body);
    let mut dora_browser = Browser::new(&tsps);
    let (_, dora_id) = dora_browser.logged_in("a.test", "1010", "dora-secret-10");
    assert_eq!(dora_id, dora);
    // Dora is a user now: no directory writes.
    let r = dora_browser.write(
        Method::POST,
        &format!("/tenants/{a}/users"),
        json!({"extension": "1011", "display_name": "Eve"}),
    );
    assert_eq!(r.status, 403, "{}", r.body);

    // Nothing of tenant B, and nothing of the platform.
    let r = admin.get(&format!("/tenants/{b}/users"));
    assert_eq!(r.status, 404, "{}", r.body);
    let r = admin.write(
        Method::POST,
        &format!("/tenants/{b}/users"),
        json!({"extension": "1011", "display_name": "Eve"}),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(admin.get("/tenants").status, 403);
    assert_eq!(
        admin
            .write(
                Method::POST,
                "/tenants",
                json!({"domain": "c.test", "name": "C"})
            )
            .status,
        403
    );
    let users_b = tsps.api_ok(Method::GET, &format!("/tenants/{b}/users"), None);
    assert_eq!(users_b.as_array().unwrap().len(), 1);
}

#[test]
fn a_user_changes_its_own_password_with_the_current_one() {
    let tsps = Tsps::start(provisioning(), &[]);
    let mut laptop = Browser::new(&tsps);
    let (a, me) = laptop.logged_in("a.test", "1001", "alice-secret-1");
    let mut phone = Browser::new(&tsps);
    phone.logged_in("a.test", "1001", "alice-secret-1");
    let path = format!("/tenants/{a}/users/{me}/password");

    let missing = laptop.write(Method::PUT, &path, json!({"password": "alice-secret-2"}));
    assert_eq!((missing.status, missing.code()), (422, "invalid_password"));
    assert_eq!(
        missing.body["error"]["details"][0]["field"],
        "current_password"
    );
    let wrong = laptop.write(
        Method::PUT,
        &path,
        json!({"password": "alice-secret-2", "current_password": "nope-nope"}),
    );
    assert_eq!(
        (wrong.status, wrong.code()),
        (403, "wrong_password"),
        "{}",
        wrong.body
    );
    let done = laptop.write(
        Method::PUT,
        &path,
        json!({"password": "alice-secret-2", "current_password": "alice-secret-1"}),
    );
    assert_eq!(done.status, 204, "{}", done.body);
    // This session goes on; the other one has ended; the new password logs in.
    assert_eq!(laptop.get("/auth/me").status, 200);
    assert_eq!(phone.get("/auth/me").status, 401);
    assert_eq!(
        Browser::new(&tsps)
            .login("a.test", "1001", "alice-secret-1")
            .status,
        401
    );
    Browser::new(&tsps).logged_in("a.test", "1001", "alice-secret-2");
}

/// A finished call between two users of tenant `a`, or with an outside number.
fn record(
    n: u128,
    tenant: TenantId,
    caller: (&str, Option<UserId>),
    callee: (&str, Option<UserId>),
    started: i64,
    outcome: CallOutcome,
) -> CallRecord {
    let at = |s: i64| Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap();
    CallRecord {
        id: CallId::for_test(n),
        tenant_id: tenant,
        direction: if caller.1.is_some() {
            CallDirection::Internal
        } else {
            CallDirection::Inbound
        },
        caller: caller.0.into(),
        callee: callee.0.into(),
        caller_user_id: caller.1,
        callee_user_id: callee.1,
        started_at: at(started),
        answered_at: (outcome == CallOutcome::Answered).then(|| at(started + 1)),
        ended_at: at(started + 20),
        outcome,
        hangup_by: Some(Party::Caller),
        decision: vec![format!("call {n}: ring all devices")],
        legs: Vec::new(),
    }
}

#[test]
fn the_history_shows_only_the_users_own_calls() {
    let tsps = Tsps::start(provisioning(), &[]);
    let (a, alice) = ids(&tsps, "a.test", "1001");
    let (_, bob) = ids(&tsps, "a.test", "1002");
    let (t, alice_id, bob_id): (TenantId, UserId, UserId) = (
        a.parse().unwrap(),
        alice.parse().unwrap(),
        bob.parse().unwrap(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = tsps::store::open(tsps.db_url(), 1).await.unwrap();
        let records = [
            record(
                1,
                t,
                ("1001", Some(alice_id)),
                ("1002", Some(bob_id)),
                0,
                CallOutcome::Answered,
            ),
            record(
                2,
                t,
                ("1002", Some(bob_id)),
                ("1001", Some(alice_id)),
                100,
                CallOutcome::NoAnswer,
            ),
            record(
                3,
                t,
                ("1002", Some(bob_id)),
                ("+41445550199", None),
                200,
                CallOutcome::Answered,
            ),
            record(
                4,
                t,
                ("+41445551234", None),
                ("1001", Some(alice_id)),
                300,
                CallOutcome::Busy,
            ),
        ];
        store.insert_call_records(&records).await.unwrap();
    });
    let mut browser = Browser::new(&tsps);
    browser.logged_in("a.test", "1001", "alice-secret-1");
    let history = format!("/tenants/{a}/users/{alice}/calls/history");
    let numbers = |r: &Answer| -> Vec<u128> {
        assert_eq!(r.status, 200, "{}", r.body);
        r.body
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                c["id"]
                    .as_str()
                    .unwrap()
                    .parse::<uuid::Uuid>()
                    .unwrap()
                    .as_u128()
            })
            .collect()
    };
    let all = browser.get(&history);
    assert_eq!(numbers(&all), [4, 2, 1], "newest first, not Bob's call 3");
    assert_eq!(all.body[0]["decision"], json!(["call 4: ring all devices"]));
    assert_eq!(
        numbers(&browser.get(&format!("{history}?direction=incoming"))),
        [4, 2]
    );
    assert_eq!(
        numbers(&browser.get(&format!("{history}?direction=outgoing"))),
        [1]
    );
    assert_eq!(
        numbers(&browser.get(&format!("{history}?outcome=busy"))),
        [4]
    );
    assert_eq!(numbers(&browser.get(&format!("{history}?q=5551234"))), [4]);
    assert_eq!(numbers(&browser.get(&format!("{history}?limit=2"))), [4, 2]);
    let before = all.body[1]["started_at"]
        .as_str()
        .unwrap()
        .replace('+', "%2B");
    assert_eq!(
        numbers(&browser.get(&format!("{history}?limit=2&before={before}"))),
        [1]
    );
    let bad = browser.get(&format!("{history}?direction=sideways"));
    assert_eq!(bad.status, 400, "{}", bad.body);
    // Bob's history is Bob's: 404 for Alice; the tenant-wide list is the admin's.
    assert_eq!(
        browser
            .get(&format!("/tenants/{a}/users/{bob}/calls/history"))
            .status,
        404
    );
    assert_eq!(browser.get(&format!("/tenants/{a}/calls")).status, 403);
}

// ---------------------------------------------------------------- platform operators

const OPERATOR_PASSWORD: &str = "operator-secret-1";

/// `tsps operator <args>` on the test's config and database, `stdin` as its input and
/// `password` (if any) in `TSPS_OPERATOR_PASSWORD`.
fn operator_cli(tsps: &Tsps, args: &[&str], stdin: &str, password: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tsps"));
    cmd.arg("--config").arg(tsps.dir().join("tsps.toml"));
    cmd.arg("operator").args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("TSPS_") {
            cmd.env_remove(k);
        }
    }
    if let Some(p) = password {
        cmd.env("TSPS_OPERATOR_PASSWORD", p);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tsps operator");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().expect("wait for tsps operator")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// tsps with the usual tenants and the operator `ops`, its password given on stdin.
fn with_operator() -> Tsps {
    // The test clock: a session's cache window is passed by moving time.
    let tsps = Tsps::start(provisioning(), &[("TSPS_TESTING__CLOCK_API", "true")]);
    let out = operator_cli(
        &tsps,
        &["add", "ops"],
        &format!("{OPERATOR_PASSWORD}\n"),
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "operator ops added\n");
    tsps
}

#[test]
fn operator_accounts_are_added_listed_and_removed_from_the_command_line() {
    let tsps = with_operator();
    // A script gives the password in the environment; the login is stored lower case.
    let out = operator_cli(&tsps, &["add", "Night.Shift"], "", Some("night-shift-pw"));
    assert!(out.status.success(), "{}", text(&out));
    // Too short, a login taken, no password at all: refused, nothing written.
    for (args, stdin, password, says) in [
        (
            ["add", "short"],
            "eleven-char\n",
            None,
            "at least 12 characters",
        ),
        (
            ["add", "OPS"],
            "",
            Some("another-secret-1"),
            "already exists",
        ),
        (["add", "quiet"], "", None, "TSPS_OPERATOR_PASSWORD"),
        (["remove", "nobody"], "", None, "not found"),
    ] {
        let out = operator_cli(&tsps, &args, stdin, password);
        assert!(!out.status.success(), "{args:?} worked: {}", text(&out));
        assert!(text(&out).contains(says), "{args:?}: {}", text(&out));
    }
    let out = operator_cli(&tsps, &["list"], "", None);
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    let logins: Vec<&str> = listed
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(logins, ["night.shift", "ops"], "{listed}");
    // The new operator logs in (any case); once removed, its open session ends.
    let mut night = Browser::new(&tsps);
    let ok = night.operator_login("NIGHT.SHIFT", "night-shift-pw");
    assert_eq!(ok.status, 200, "{}", ok.body);
    let out = operator_cli(&tsps, &["remove", "night.shift"], "", None);
    assert!(out.status.success(), "{}", text(&out));
    // A node trusts a session it read for up to 5 s (docs/api.md); past that (the
    // platform's clock moved on) the session is read again, and is gone.
    let later = chrono::Utc::now() + chrono::Duration::seconds(6);
    tsps.api_ok(
        Method::PUT,
        "/testing/clock",
        Some(&serde_json::json!({ "now": later.to_rfc3339() })),
    );
    assert_eq!(
        night.get("/tenants").status,
        401,
        "the removed operator's session lives on"
    );
    assert_eq!(
        night.operator_login("night.shift", "night-shift-pw").status,
        401
    );
}

#[test]
fn an_operator_logs_in_to_the_portal_and_manages_tenants() {
    let tsps = with_operator();
    let mut op = Browser::new(&tsps);
    let ok = op.operator_login("ops", OPERATOR_PASSWORD);
    assert_eq!(ok.status, 200, "{}", ok.body);
    // The same cookie as a user's.
    let cookie = ok.headers[SET_COOKIE].to_str().unwrap().to_string();
    for attribute in ["tsps_session=", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert_eq!(
        ok.body["user"],
        json!({"tenant_id": null, "user_id": null, "extension": null,
            "display_name": "ops", "role": "operator"})
    );
    let me = op.get("/auth/me");
    assert_eq!((me.status, &me.body), (200, &ok.body));

    // Every tenant, and a new one: with the CSRF token only.
    let tenants = op.get("/tenants");
    assert_eq!(tenants.status, 200, "{}", tenants.body);
    let domains: Vec<&str> = tenants
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["domain"].as_str().unwrap())
        .collect();
    assert_eq!(domains, ["a.test", "b.test"]);
    let c_test = json!({"domain": "c.test", "name": "Tenant C", "time_zone": "Europe/Zurich"});
    let no_csrf = op.send(Method::POST, "/tenants", Some(c_test.clone()), false);
    assert_eq!(no_csrf.status, 403, "{}", no_csrf.body);
    assert!(no_csrf.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("X-CSRF-Token"));
    let created = op.write(Method::POST, "/tenants", c_test);
    assert_eq!(created.status, 201, "{}", created.body);
    let c = created.body["id"].as_str().unwrap().to_string();
    // Managing it is the tenant admin's work, done by the operator.
    let user = op.write(
        Method::POST,
        &format!("/tenants/{c}/users"),
        json!({"extension": "3001", "display_name": "Cleo"}),
    );
    assert_eq!(user.status, 201, "{}", user.body);
    let (a, alice) = ids(&tsps, "a.test", "1001");
    assert_eq!(
        op.get(&format!("/tenants/{a}/users/{alice}/profile"))
            .status,
        200
    );
    // Deleting needs the token too.
    let path = format!("/tenants/{c}");
    assert_eq!(op.send(Method::DELETE, &path, None, false).status, 403);
    assert_eq!(op.send(Method::DELETE, &path, None, true).status, 204);
    assert_eq!(op.get(&path).status, 404);

    // A tenant admin's session still cannot do any of this.
    let mut zed = Browser::new(&tsps);
    zed.logged_in("b.test", "1001", "zed-secret-1");
    assert_eq!(zed.get("/tenants").status, 403);

    // Logging out ends the operator's session like a user's.
    assert_eq!(
        op.send(Method::POST, "/auth/logout", None, false).status,
        403
    );
    assert_eq!(
        op.send(Method::POST, "/auth/logout", None, true).status,
        204
    );
    assert!(op.cookie.is_none());
    assert_eq!(op.get("/tenants").status, 401);
}

#[test]
fn an_operators_wrong_password_is_401_and_limited_like_a_users() {
    let tsps = with_operator();
    let mut stranger = Browser::new(&tsps);
    // A wrong password and an unknown operator: the users' 401.
    let wrong = stranger.operator_login("ops", "not-the-password");
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let users_wrong = stranger.login("a.test", "1001", "not-the-password");
    assert_eq!(wrong.body, users_wrong.body);
    let unknown = stranger.operator_login("nobody", OPERATOR_PASSWORD);
    assert_eq!((unknown.status, &unknown.body), (401, &wrong.body));
    // An operator is no user of a tenant, and a user is no operator.
    assert_eq!(
        stranger.login("a.test", "ops", OPERATOR_PASSWORD).status,
        401
    );
    assert_eq!(
        stranger.operator_login("1001", "alice-secret-1").status,
        401
    );
    // One form or the other, not both, not neither.
    for body in [
        json!({"operator": true, "domain": "a.test", "login": "ops", "password": OPERATOR_PASSWORD}),
        json!({"login": "ops", "password": OPERATOR_PASSWORD}),
    ] {
        let a = stranger.send(Method::POST, "/auth/login", Some(body), false);
        assert_eq!((a.status, a.code()), (400, "invalid"), "{}", a.body);
    }
    assert!(stranger.cookie.is_none());

    // Five failures (one above, four more, in any case of the login) and the next
    // attempt is 429 with Retry-After, even with the right password.
    for login in ["ops", "OPS", "Ops", "ops"] {
        assert_eq!(stranger.operator_login(login, "guess-guess-1").status, 401);
    }
    let limited = stranger.operator_login("ops", OPERATOR_PASSWORD);
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert!(limited.headers.contains_key("retry-after"));
    assert!(stranger.cookie.is_none());
    // Users are not held up by it.
    let mut alice = Browser::new(&tsps);
    alice.logged_in("a.test", "1001", "alice-secret-1");
}

/// Sessions live in the database: they survive a restart of tsps. On PostgreSQL too,
/// with the walls of the tenant.
fn sessions_survive_a_restart(mut tsps: Tsps) {
    let (b, _) = ids(&tsps, "b.test", "1001");
    let mut alice = Browser::new(&tsps);
    let (a, me) = alice.logged_in("a.test", "1001", "alice-secret-1");
    let before = alice.get("/auth/me");
    tsps.restart();
    // The port may change with the restart: the cookie is what matters.
    let mut again = Browser::new(&tsps);
    again.cookie = alice.cookie.clone();
    again.csrf = alice.csrf.clone();
    let after = again.get("/auth/me");
    assert_eq!(after.status, 200, "{}", after.body);
    assert_eq!(after.body, before.body);
    assert_eq!(
        again
            .get(&format!("/tenants/{a}/users/{me}/profile"))
            .status,
        200
    );
    assert_eq!(again.get(&format!("/tenants/{b}/users")).status, 404);
    let w = again.write(
        Method::PUT,
        &format!("/tenants/{a}/users/{me}/status"),
        json!({"presence": "busy"}),
    );
    assert_eq!(w.status, 200, "{}", w.body);
    assert_eq!(
        again.send(Method::POST, "/auth/logout", None, true).status,
        204
    );
    let mut stale = Browser::new(&tsps);
    stale.cookie = alice.cookie.clone();
    assert_eq!(stale.get("/auth/me").status, 401);
}

#[test]
fn sessions_survive_a_restart_on_sqlite() {
    sessions_survive_a_restart(Tsps::start(provisioning(), &[]));
}

#[test]
fn sessions_survive_a_restart_on_postgres() {
    let db = PgDatabase::create();
    let tsps = Tsps::start_with_database(provisioning(), &[], &db.url());
    sessions_survive_a_restart(tsps);
}

/// Without `http.api_token` (a local trial) a request without credentials is the
/// operator, as before; a request with a session cookie is that session's user.
#[tokio::test]
async fn without_a_token_a_session_is_still_only_its_user() {
    use tsps::web::{router_with, ApiState, AuthSettings};
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let store = tsps::store::open(&url, 2).await.unwrap();
    let doc = tsps::provision::parse(provisioning(), tsps::provision::DocFormat::Yaml).unwrap();
    tsps::provision::apply(&*store, &doc).await.unwrap();
    let directory = tsps::store::SharedDirectory::load(store).await.unwrap();
    let app = router_with(
        ApiState {
            directory,
            api_token: None,
            notify: std::sync::Arc::new(tsps::notify::NoopNotifier),
            clock: std::sync::Arc::new(tsps_actors::ports::SystemClock),
            live: std::sync::Arc::new(tsps::web::live::NoLiveCalls),
            push: tsps::push::Hub::detached(),
            metrics: std::sync::Arc::new(tsps::metrics::NoMetrics),
            guard: std::sync::Arc::new(tsps::sip::auth::guard::Guard::new(Default::default())),
            quotas: Default::default(),
        },
        AuthSettings::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/api/v1", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::new();

    let open = http.get(format!("{base}/tenants")).send().await.unwrap();
    assert_eq!(open.status(), 200);
    let login = http
        .post(format!("{base}/auth/login"))
        .json(&json!({"domain": "a.test", "login": "1001", "password": "alice-secret-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = login.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let me: Value = login.json().await.unwrap();
    let (a, u) = (&me["user"]["tenant_id"], &me["user"]["user_id"]);
    let as_alice = |path: String| {
        http.get(format!("{base}{path}"))
            .header("cookie", cookie.clone())
            .send()
    };
    assert_eq!(as_alice("/tenants".into()).await.unwrap().status(), 403);
    let a = a.as_str().unwrap();
    let u = u.as_str().unwrap();
    assert_eq!(
        as_alice(format!("/tenants/{a}/users/{u}/profile"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        as_alice(format!("/tenants/{a}/calls"))
            .await
            .unwrap()
            .status(),
        403
    );
    // A cookie that opens no session is 401 (and removed), not the operator.
    let stale = http
        .get(format!("{base}/tenants"))
        .header("cookie", "tsps_session=AAAA")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 401);
    assert!(stale.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    server.abort();
}
