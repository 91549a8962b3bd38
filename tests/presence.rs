//! SIP presence end to end: SIPp watchers subscribe to the `dialog` (RFC 4235) and
//! `presence` (RFC 3856) packages of 1002 while SIPp phones call 1002; each NOTIFY body
//! is checked inside the scenario (regexp actions with check_it), so a wrong body fails
//! the scenario and the test. Also: refresh, unsubscribe, expiry with a short interval,
//! 423 and 489, the tenant wall, and the instant messages a watcher asked for; the
//! `tsps_presence_*` metrics along the way.

mod common;

use common::{free_port, register, sample, Sipp, SippHandle, Tsps, DEVICE_IP};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Tenant A with Alice (1001), Bob (1002) and Carol (1003); tenant B with its own
/// 1003 (Dave), who must learn nothing about tenant A.
const TENANTS: &str = r#"tenants:
  - domain: a.test
    name: Tenant A
    time_zone: Europe/Zurich
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
    time_zone: Europe/Zurich
    users:
      - extension: "1003"
        display_name: Dave
        devices:
          - sip_username: "1003"
            password: secretb1003
"#;

/// How long a watcher may take to get its first NOTIFY.
const FIRST_NOTIFY: Duration = Duration::from_secs(10);

fn port() -> u16 {
    free_port(IpAddr::V4(DEVICE_IP), false)
}

/// Polls the metrics until `name` satisfies `ok` (the shards count as the answers
/// arrive, a moment after the peer's scenario ends); returns the whole text.
fn wait_metric(tsps: &Tsps, name: &str, ok: impl Fn(f64) -> bool, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = tsps.metrics();
        if sample(&text, name).is_some_and(&ok) {
            return text;
        }
        assert!(Instant::now() < deadline, "{what}: {name} in\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

const DIALOG_SUBS: &str = "tsps_presence_subscriptions{package=\"dialog\"}";
const PRESENCE_SUBS: &str = "tsps_presence_subscriptions{package=\"presence\"}";
const NOTIFY_OK: &str = "tsps_presence_notify_total{result=\"ok\"}";

/// Carol's device watching Bob (the digest uri is the Request-URI's user@domain).
fn carol_watching_bob(scenario: &str) -> Sipp {
    Sipp::new(scenario)
        .device("a.test", "1003", "secret1003")
        .calling("1002")
}

/// Registers Bob's phone, which answers the next call (180, 200, waits for the BYE).
fn bob_answers(tsps: &Tsps) -> SippHandle {
    let port = port();
    register(tsps, "a.test", "1002", "secret1002", port);
    tsps.spawn_sipp(Sipp::uas("uas_answer.xml").port(port))
}

/// Alice calls Bob; Bob answers; Alice hangs up after a second.
fn alice_calls_bob(tsps: &Tsps, bob: SippHandle) {
    let alice = tsps.sipp(
        Sipp::new("uac_call.xml")
            .device("a.test", "1001", "secret1001")
            .calling("1002"),
    );
    let bob = bob.join();
    alice.assert_success("Alice calls Bob, hangs up");
    bob.assert_success("Bob answers");
}

/// Starts a watcher and waits until it has its first NOTIFY (the subscription is up).
fn subscribed(tsps: &Tsps, watcher: Sipp) -> SippHandle {
    let mut w = tsps.spawn_sipp(watcher);
    assert!(
        w.wait_for_message("NOTIFY sip:", FIRST_NOTIFY),
        "no first NOTIFY:\n{}",
        w.messages_so_far()
    );
    w
}

#[test]
fn dialog_watcher_sees_the_call_ring_connect_and_end_then_refreshes_and_unsubscribes() {
    let tsps = Tsps::start(TENANTS, &[]);
    // The watcher is a registered device of 1003 (registered from the same port).
    let carol = port();
    register(&tsps, "a.test", "1003", "secret1003", carol);
    let bob = bob_answers(&tsps);
    let watcher = subscribed(
        &tsps,
        carol_watching_bob("presence_dialog_watcher.xml")
            .port(carol)
            .key("uri_params", ";transport=udp"),
    );
    let text = wait_metric(&tsps, DIALOG_SUBS, |v| v == 1.0, "one dialog subscription");
    assert_eq!(sample(&text, PRESENCE_SUBS), Some(0.0), "{text}");
    alice_calls_bob(&tsps, bob);
    let watcher = watcher.join();
    watcher
        .assert_success("dialog watcher: idle, early, confirmed, terminated; refresh; unsubscribe");
    wait_metric(&tsps, DIALOG_SUBS, |v| v == 0.0, "unsubscribed");
    // Initial, early, confirmed, terminated, after the refresh, the final one.
    let text = wait_metric(&tsps, NOTIFY_OK, |v| v >= 6.0, "every NOTIFY answered 200");
    for failed in ["error", "timeout"] {
        let name = format!("tsps_presence_notify_total{{result=\"{failed}\"}}");
        assert_eq!(sample(&text, &name), Some(0.0), "{text}");
    }
    assert!(!text.contains("a.test"), "no tenant in the labels: {text}");
    tsps.assert_alive();
}

#[test]
fn presence_watcher_sees_on_the_phone_while_the_call_is_up() {
    let tsps = Tsps::start(TENANTS, &[]);
    // Bob is registered before the watch: his presence is open from the start.
    let bob = bob_answers(&tsps);
    let watcher = subscribed(&tsps, carol_watching_bob("presence_presence_watcher.xml"));
    alice_calls_bob(&tsps, bob);
    watcher
        .join()
        .assert_success("presence watcher: available, ringing, on the phone, available");
}

#[test]
fn a_subscription_that_is_not_refreshed_expires_with_a_terminated_notify() {
    let tsps = Tsps::start(TENANTS, &[("TSPS_PRESENCE__MIN_EXPIRES", "2")]);
    tsps.sipp(carol_watching_bob("presence_expiry.xml"))
        .assert_success("423 below the minimum, refresh, then terminated;reason=timeout");
    let text = wait_metric(&tsps, NOTIFY_OK, |v| v >= 3.0, "three NOTIFYs answered");
    assert_eq!(sample(&text, DIALOG_SUBS), Some(0.0), "expired: {text}");
    assert_eq!(
        sample(
            &text,
            "tsps_presence_subscribe_rejected_total{code=\"423\"}"
        ),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn an_unknown_event_package_is_refused_with_489() {
    let tsps = Tsps::start(TENANTS, &[]);
    tsps.sipp(carol_watching_bob("presence_bad_event.xml"))
        .assert_success("489 Bad Event with Allow-Events");
    let text = tsps.metrics();
    assert_eq!(
        sample(
            &text,
            "tsps_presence_subscribe_rejected_total{code=\"489\"}"
        ),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn watchers_see_only_their_own_tenant() {
    let tsps = Tsps::start(TENANTS, &[]);
    // Dave (tenant B) authenticates in his own tenant and asks for Bob of tenant A.
    let dave = Sipp::new("presence_forbidden.xml")
        .device("b.test", "1003", "secretb1003")
        .calling("1002")
        .key("target_domain", "a.test");
    let run = tsps.sipp(dave);
    run.assert_success("a watcher of tenant B is refused tenant A's user");
    assert!(
        !run.messages().contains("NOTIFY sip:"),
        "{}",
        run.messages()
    );
    // Tenant B has no 1002: not found, exactly as for any unknown extension.
    let dave_own = Sipp::new("presence_not_found.xml")
        .device("b.test", "1003", "secretb1003")
        .calling("1002");
    tsps.sipp(dave_own)
        .assert_success("tenant B's watcher: 1002 is not a user of tenant B");
    let text = tsps.metrics();
    for code in ["403", "404"] {
        let name = format!("tsps_presence_subscribe_rejected_total{{code=\"{code}\"}}");
        assert_eq!(sample(&text, &name), Some(1.0), "{text}");
    }
}

#[test]
fn a_watcher_who_asked_for_it_gets_instant_messages_on_hook_changes() {
    let tsps = Tsps::start(TENANTS, &[]);
    // Carol's phone is registered on one port and takes the MESSAGEs there; her
    // subscription (with ;im=1) comes from another port.
    let phone = port();
    register(&tsps, "a.test", "1003", "secret1003", phone);
    let inbox = tsps.spawn_sipp(Sipp::uas("presence_im_receiver.xml").port(phone).calls(3));
    let bob = bob_answers(&tsps);
    let watcher = subscribed(
        &tsps,
        carol_watching_bob("presence_dialog_watcher.xml").key("uri_params", ";im=1"),
    );
    alice_calls_bob(&tsps, bob);
    watcher
        .join()
        .assert_success("the watcher's NOTIFYs are as without instant messages");
    let inbox = inbox.join();
    inbox.assert_success("three instant messages, each answered 200");
    wait_metric(
        &tsps,
        "tsps_presence_messages_total{result=\"ok\"}",
        |v| v == 3.0,
        "three MESSAGEs answered 200",
    );
    let actions = inbox.actions();
    let order: Vec<usize> = ["is ringing", "is on the phone", "is available"]
        .iter()
        .map(|t| {
            actions
                .find(&format!("(1002) {t}"))
                .unwrap_or_else(|| panic!("no message '{t}':\n{}", inbox.report()))
        })
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "ringing, on the phone, available in this order:\n{actions}"
    );
    let messages = inbox.messages();
    assert!(
        messages.contains("From: \"Bob\" <sip:1002@a.test>;tag=")
            && messages.contains("Bob (1002) is on the phone"),
        "from Bob's address, with his name:\n{messages}"
    );
}

#[test]
fn a_device_holds_a_bounded_number_of_subscriptions() {
    let tsps = Tsps::start(
        TENANTS,
        &[
            ("TSPS_PRESENCE__MIN_EXPIRES", "2"),
            ("TSPS_PRESENCE__MAX_SUBSCRIPTIONS_PER_DEVICE", "1"),
        ],
    );
    let first = subscribed(&tsps, carol_watching_bob("presence_expiry.xml"));
    // The same device asks for a second subscription (Alice) while the first lives.
    let second = Sipp::new("presence_forbidden.xml")
        .device("a.test", "1003", "secret1003")
        .calling("1001")
        .key("target_domain", "a.test");
    tsps.sipp(second)
        .assert_success("a second subscription of the device is refused with 403");
    assert!(
        tsps.log_text().contains("already holds 1 subscriptions"),
        "refused for the limit, not for another reason"
    );
    first
        .join()
        .assert_success("the first subscription lives on and expires");
}

/// The tenant's quota counts its devices' subscriptions together (issue 10).
#[test]
fn a_tenants_phones_together_hold_at_most_its_subscription_quota() {
    let tsps = Tsps::start(
        TENANTS,
        &[
            ("TSPS_PRESENCE__MIN_EXPIRES", "2"),
            ("TSPS_QUOTAS__SUBSCRIPTIONS_PER_TENANT", "1"),
        ],
    );
    let first = subscribed(&tsps, carol_watching_bob("presence_expiry.xml"));
    // Another device of the tenant (Alice's) asks while Carol's subscription lives.
    let second = Sipp::new("presence_forbidden.xml")
        .device("a.test", "1001", "secret1001")
        .calling("1002")
        .key("target_domain", "a.test");
    tsps.sipp(second)
        .assert_success("a second subscription in the tenant is refused with 403");
    assert!(
        tsps.log_text()
            .contains("the tenant's devices already hold 1 subscriptions (its quota)"),
        "refused for the quota, not for another reason"
    );
    first
        .join()
        .assert_success("the first subscription lives on and expires");
}

#[test]
fn options_advertise_subscribe_and_the_event_packages() {
    let tsps = Tsps::start(TENANTS, &[]);
    let options = "OPTIONS sip:a.test SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-opt-1;rport\r\n\
        From: <sip:1003@a.test>;tag=o1\r\n\
        To: <sip:a.test>\r\n\
        Call-ID: options-presence@127.0.0.1\r\n\
        CSeq: 1 OPTIONS\r\n\
        Max-Forwards: 70\r\n\
        Content-Length: 0\r\n\r\n";
    let resp = tsps
        .udp_final_response(options.as_bytes(), Duration::from_secs(5))
        .expect("an answer to OPTIONS");
    assert_eq!(common::status_code(&resp), Some(200), "{resp}");
    assert_eq!(
        common::header(&resp, "Allow-Events"),
        Some("dialog, presence"),
        "{resp}"
    );
    assert!(
        common::header(&resp, "Allow").is_some_and(|a| a.contains("SUBSCRIBE")),
        "{resp}"
    );
}
