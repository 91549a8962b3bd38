//! Issue 5 end to end: instant messages between users (the chat beside a call), the
//! profile's "reject the call and send a message", and the subscriber table (who may
//! watch whom). A real tsps, SIPp phones (their scenarios check each MESSAGE's body
//! and sender), and the WebSocket client a portal session would be.

mod common;

use common::events::{EventsClient, Kind};
use common::{free_port, register, Sipp, Tsps, DEVICE_IP};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// Tenant A: Alice (1001), Bob (1002), Carol (1003); tenant B: Dave, also 1002.
const PROVISIONING: &str = r#"tenants:
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
      - extension: "1003"
        display_name: Carol
        devices:
          - sip_username: "1003"
            password: secret1003
  - domain: b.test
    name: Tenant B
    users:
      - extension: "1002"
        display_name: Dave
        devices:
          - sip_username: "1002"
            password: secretb1002
"#;

struct Setup {
    tsps: Tsps,
    /// (domain, extension) → (tenant id, user id)
    users: BTreeMap<(String, String), (String, String)>,
}

fn start() -> Setup {
    let tsps = Tsps::start(PROVISIONING, &[]);
    let mut users = BTreeMap::new();
    for t in tsps
        .api_ok(Method::GET, "/tenants", None)
        .as_array()
        .unwrap()
    {
        let id = t["id"].as_str().unwrap().to_string();
        let domain = t["domain"].as_str().unwrap().to_string();
        let listed = tsps.api_ok(Method::GET, &format!("/tenants/{id}/users"), None);
        for u in listed.as_array().unwrap() {
            users.insert(
                (domain.clone(), u["extension"].as_str().unwrap().to_string()),
                (id.clone(), u["id"].as_str().unwrap().to_string()),
            );
        }
    }
    Setup { tsps, users }
}

impl Setup {
    fn id(&self, ext: &str) -> &str {
        &self.users[&("a.test".to_string(), ext.to_string())].1
    }

    fn path(&self, ext: &str) -> String {
        let (t, u) = &self.users[&("a.test".to_string(), ext.to_string())];
        format!("/tenants/{t}/users/{u}")
    }

    fn events(&self, ext: &str) -> EventsClient {
        let url = format!(
            "{}/api/v1{}/events/ws",
            self.tsps.http_url(),
            self.path(ext)
        );
        let mut c = EventsClient::connect(Kind::WebSocket, &url, self.tsps.api_token(), None);
        assert_eq!(c.next(WAIT)["type"], "snapshot");
        c
    }

    fn send(&self, from: &str, body: Value) -> (u16, Value) {
        self.tsps.api(
            Method::POST,
            &format!("{}/messages", self.path(from)),
            Some(&body),
        )
    }
}

fn port() -> u16 {
    free_port(IpAddr::V4(DEVICE_IP), false)
}

#[test]
fn a_message_reaches_the_recipients_stream_and_phone_and_stays_in_the_tenant() {
    let s = start();
    let phone = port();
    register(&s.tsps, "a.test", "1002", "secret1002", phone);
    let inbox = s
        .tsps
        .spawn_sipp(Sipp::uas("chat_message_receiver.xml").port(phone));
    let mut bob = s.events("1002");
    let mut alice = s.events("1001");

    let (status, sent) = s.send(
        "1001",
        json!({"to": "1002", "text": "Hello Bob, are you free?"}),
    );
    assert_eq!(status, 202, "{sent}");
    assert_eq!(sent["to"], s.id("1002"), "{sent}");

    let m = bob.until(WAIT, "bob's message", |v| v["type"] == "message");
    let d = &m["data"];
    assert_eq!(d["from"], s.id("1001"), "{m}");
    assert_eq!(d["from_name"], "Alice", "{m}");
    assert_eq!(d["from_extension"], "1001", "{m}");
    assert_eq!(d["text"], "Hello Bob, are you free?", "{m}");
    assert_eq!(d["id"], sent["id"], "{m}");
    assert!(d.get("call_id").is_none(), "{m}");
    // The sender's stream shows it too (another tab of Alice's sees the conversation).
    let echo = alice.until(WAIT, "alice's copy", |v| v["type"] == "message");
    assert_eq!(echo["data"]["to"], s.id("1002"), "{echo}");
    inbox
        .join()
        .assert_success("Bob's phone gets the MESSAGE, plain text from Alice's extension");

    // Tenant B's Dave (also 1002 there) is no recipient for Alice: by id, 404.
    let dave = &s.users[&("b.test".to_string(), "1002".to_string())].1;
    let (status, body) = s.send("1001", json!({"to": dave, "text": "hi"}));
    assert_eq!(status, 404, "{body}");
    let (status, body) = s.send("1001", json!({"to": "1009", "text": "hi"}));
    assert_eq!(status, 404, "{body}");
    // Text rules: 1 to 500 characters; nobody messages themselves.
    let (status, body) = s.send("1001", json!({"to": "1002", "text": ""}));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_message"))
    );
    let (status, _) = s.send("1001", json!({"to": "1002", "text": "x".repeat(501)}));
    assert_eq!(status, 422);
    let (status, _) = s.send("1001", json!({"to": "1001", "text": "me"}));
    assert_eq!(status, 422);
    // Nothing of these reached Bob: his next message is the next one sent.
    let (status, _) = s.send("1003", json!({"to": s.id("1002"), "text": "Carol here"}));
    assert_eq!(status, 202);
    let m = bob.until(WAIT, "carol's message", |v| v["type"] == "message");
    assert_eq!(m["data"]["text"], "Carol here", "{m}");
    s.tsps.assert_alive();
}

#[test]
fn a_profile_that_rejects_with_a_message_tells_the_caller_on_stream_and_phone() {
    let s = start();
    s.tsps.api_ok(
        Method::PUT,
        &format!("{}/profile", s.path("1002")),
        Some(&json!({"default_handling": {
            "method": "reject_with_message",
            "text": "In a meeting until 3, I will call back",
            "code": 480
        }})),
    );
    // Alice's desk phone takes the MESSAGE; she calls from another SIPp (unregistered).
    let desk = port();
    register(&s.tsps, "a.test", "1001", "secret1001", desk);
    let inbox = s
        .tsps
        .spawn_sipp(Sipp::uas("chat_reject_receiver.xml").port(desk));
    let mut alice = s.events("1001");

    s.tsps
        .sipp(
            Sipp::new("uac_call_unavailable.xml")
                .device("a.test", "1001", "secret1001")
                .calling("1002"),
        )
        .assert_success("Alice calls Bob and gets 480");

    let m = alice.until(WAIT, "the rejection message", |v| v["type"] == "message");
    let d = &m["data"];
    assert_eq!(d["from"], s.id("1002"), "{m}");
    assert_eq!(d["from_name"], "Bob", "{m}");
    assert_eq!(d["text"], "In a meeting until 3, I will call back", "{m}");
    assert!(d["call_id"].is_string(), "about the rejected call: {m}");
    inbox
        .join()
        .assert_success("Alice's phone gets Bob's text as a MESSAGE from 1002");

    // The call record says so.
    let tenant = &s.users[&("a.test".to_string(), "1001".to_string())].0;
    let calls = s
        .tsps
        .api_ok(Method::GET, &format!("/tenants/{tenant}/calls"), None);
    let text = calls.to_string();
    assert!(
        text.contains("message sent to 1001")
            && text.contains("turned away as unavailable, with a message"),
        "{calls:#}"
    );

    // An invalid profile is refused field by field.
    let (status, body) = s.tsps.api(
        Method::PUT,
        &format!("{}/profile", s.path("1002")),
        Some(&json!({"default_handling": {"method": "reject_with_message", "text": "", "code": 404}})),
    );
    assert_eq!(status, 422, "{body}");
    let fields = body["error"]["details"].to_string();
    assert!(
        fields.contains("default_handling.text") && fields.contains("default_handling.code"),
        "{body}"
    );
}

#[test]
fn the_subscriber_table_refuses_a_sip_watcher_and_leaves_it_out_of_the_portal_watch() {
    let s = start();
    let watchers = format!("{}/watchers", s.path("1002"));
    assert_eq!(
        s.tsps.api_ok(Method::GET, &watchers, None),
        json!({"mode": "anyone", "users": []})
    );
    // Bob may be watched by Alice only.
    let only_alice = json!({"mode": "only", "users": [s.id("1001")]});
    assert_eq!(
        s.tsps.api_ok(Method::PUT, &watchers, Some(&only_alice)),
        only_alice
    );
    // A watcher of tenant B is no user of this tenant.
    let dave = &s.users[&("b.test".to_string(), "1002".to_string())].1;
    let (status, body) = s.tsps.api(
        Method::PUT,
        &watchers,
        Some(&json!({"mode": "only", "users": [dave]})),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_watchers")),
        "{body}"
    );

    // Carol's phone asks for Bob's dialog state: 403 (refused from the start).
    let carol = Sipp::new("presence_forbidden.xml")
        .device("a.test", "1003", "secret1003")
        .calling("1002")
        .key("target_domain", "a.test");
    let run = s.tsps.sipp(carol);
    run.assert_success("1003 may not watch 1002: 403");
    assert!(
        !run.messages().contains("NOTIFY sip:"),
        "{}",
        run.messages()
    );

    // Carol's portal watch list leaves Bob out; Alice's keeps him.
    let watch = |ext: &str| {
        let body = json!({"users": [s.id("1001"), s.id("1002"), s.id("1003")]});
        let r = s
            .tsps
            .api_ok(Method::PUT, &format!("{}/watch", s.path(ext)), Some(&body));
        let mut ids: Vec<String> = r["watched"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["user_id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let mut want = vec![s.id("1001").to_string()];
    want.sort();
    assert_eq!(watch("1003"), want, "Carol watches Alice only");
    let mut want = vec![s.id("1002").to_string(), s.id("1003").to_string()];
    want.sort();
    assert_eq!(watch("1001"), want, "Alice still watches Bob");

    // Anyone again: Carol may watch Bob.
    s.tsps
        .api_ok(Method::PUT, &watchers, Some(&json!({"mode": "anyone"})));
    assert_eq!(watch("1003").len(), 2);
}

#[test]
fn a_subscription_the_subscriber_table_no_longer_allows_ends_at_its_next_refresh() {
    let s = start();
    let mut carol = s.tsps.spawn_sipp(
        Sipp::new("chat_watcher_revoked.xml")
            .device("a.test", "1003", "secret1003")
            .calling("1002"),
    );
    assert!(
        carol.wait_for_message("NOTIFY sip:", WAIT),
        "no first NOTIFY:\n{}",
        carol.messages_so_far()
    );
    // While Carol watches, the tenant admin lets only Alice watch Bob.
    s.tsps.api_ok(
        Method::PUT,
        &format!("{}/watchers", s.path("1002")),
        Some(&json!({"mode": "only", "users": [s.id("1001")]})),
    );
    carol
        .join()
        .assert_success("the refresh is refused (403), then NOTIFY terminated;reason=rejected");
}
