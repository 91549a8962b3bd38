//! Personal mode end to end: two tsps processes on loopback, one below the other.
//!
//! The upstream tsps has the tenant `a.test` with 1001 (a SIPp phone) and 1002, whose
//! one device `1002p` is the personal tsps, and a carrier trunk to a SIPp on 127.0.0.2.
//! The personal tsps runs with `[personal]` (from `TSPS_PERSONAL__*`): it serves 1002
//! at home, where the SIPp phone `1002h` is registered, and registers upstream as
//! `1002p`. Each test checks what the people involved see (every SIPp scenario ran to
//! its end) and the call records on both sides.

mod common;

use common::{free_port, register, tenant_users, Sipp, SippHandle, Tsps, CARRIER_IP, DEVICE_IP};
use reqwest::Method;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tsps_actors::model::{CallDirection, CallOutcome, CallRecord, LegRecord, Party};

const DOMAIN: &str = "a.test";
const CDR_WAIT: Duration = Duration::from_secs(10);
/// Registration and unregistration are seen in the upstream's store within this.
const BINDING_WAIT: Duration = Duration::from_secs(10);
/// The number the personal user forwards to; the upstream's carrier takes it.
const FORWARD_TO: &str = "+41790000099";

fn upstream_yaml(carrier_port: u16) -> String {
    format!(
        r#"tenants:
  - domain: {DOMAIN}
    name: Upstream
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
          - sip_username: "1002p"
            password: secret1002p
    trunks:
      - name: carrier
        peer_host: {CARRIER_IP}
        peer_port: {carrier_port}
        transport: udp
        inbound_sources: ["{CARRIER_IP}"]
"#
    )
}

/// The personal tsps's own document: only the phone at home (the tenant and the user
/// would be created at start; the device is provisioned as usual).
const PERSONAL_YAML: &str = r#"tenants:
  - domain: a.test
    name: Bob at home
    time_zone: Europe/Zurich
    users:
      - extension: "1002"
        display_name: Bob
        devices:
          - sip_username: "1002h"
            password: secret1002h
"#;

/// Both tsps, the personal one registered upstream.
struct Pair {
    upstream: Tsps,
    personal: Tsps,
    carrier_port: u16,
}

impl Pair {
    fn start() -> Pair {
        let carrier_port = free_port(IpAddr::V4(CARRIER_IP), false);
        let upstream = Tsps::start(&upstream_yaml(carrier_port), &[]);
        let registrar = upstream.sip_addr().to_string();
        let personal = Tsps::start(
            PERSONAL_YAML,
            &[
                ("TSPS_PERSONAL__EXTENSION", "1002"),
                ("TSPS_PERSONAL__UPSTREAM__REGISTRAR", &registrar),
                ("TSPS_PERSONAL__UPSTREAM__DOMAIN", DOMAIN),
                ("TSPS_PERSONAL__UPSTREAM__USERNAME", "1002p"),
                ("TSPS_PERSONAL__UPSTREAM__PASSWORD", "secret1002p"),
                ("TSPS_PERSONAL__UPSTREAM__EXPIRES", "300"),
            ],
        );
        let pair = Pair {
            upstream,
            personal,
            carrier_port,
        };
        let contact = pair.contact();
        pair.wait_registrations(|r| r.iter().any(|b| b["contact"] == contact.as_str()))
            .unwrap_or_else(|r| panic!("the personal tsps registers {contact} upstream: {r}"));
        pair
    }

    /// The contact the personal tsps registers: the user's extension at its SIP port.
    fn contact(&self) -> String {
        format!("sip:1002@{}", self.personal.sip_addr())
    }

    /// Polls the upstream's registrations API until `done` holds; Err with the last
    /// answer when [`BINDING_WAIT`] passes first.
    fn wait_registrations(&self, done: impl Fn(&[Value]) -> bool) -> Result<Vec<Value>, Value> {
        let path = format!("/tenants/{}/registrations", tenant_id(&self.upstream));
        let until = Instant::now() + BINDING_WAIT;
        loop {
            let r = self.upstream.api_ok(Method::GET, &path, None);
            let list = r.as_array().cloned().unwrap_or_default();
            if done(&list) {
                return Ok(list);
            }
            if Instant::now() >= until {
                return Err(r);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The phone at home, registered to the personal tsps, playing `scenario`.
    fn home_phone(&self, scenario: &str) -> (u16, SippHandle) {
        let port = free_port(IpAddr::V4(DEVICE_IP), false);
        register(&self.personal, DOMAIN, "1002h", "secret1002h", port);
        (
            port,
            self.personal.spawn_sipp(Sipp::uas(scenario).port(port)),
        )
    }

    /// The upstream's carrier, answering the next call (a forwarded one).
    fn carrier(&self) -> SippHandle {
        self.upstream
            .spawn_sipp(Sipp::uas("uas_answer.xml").local(CARRIER_IP, self.carrier_port))
    }

    /// 1001 at the upstream dials 1002.
    fn alice_calls_bob(&self, scenario: &str) -> Sipp {
        Sipp::new(scenario)
            .device(DOMAIN, "1001", "secret1001")
            .calling("1002")
    }

    /// Sets the personal user's profile (the personal tsps's API, as at the upstream).
    fn personal_profile(&self, profile: Value) {
        let path = format!("{}/profile", user_path(&self.personal, "1002"));
        self.personal.api_ok(Method::PUT, &path, Some(&profile));
    }

    fn personal_status(&self, presence: &str) {
        let path = format!("{}/status", user_path(&self.personal, "1002"));
        let now = self
            .personal
            .api_ok(Method::PUT, &path, Some(&json!({ "presence": presence })));
        assert_eq!(now["presence"], presence, "{now}");
    }

    /// The one call record of each side.
    fn records(&mut self) -> (CallRecord, CallRecord) {
        let up = one_record(&mut self.upstream, "upstream");
        let home = one_record(&mut self.personal, "personal");
        (up, home)
    }
}

fn one_record(tsps: &mut Tsps, side: &str) -> CallRecord {
    let records = tsps.wait_for_call_records(DOMAIN, 1, CDR_WAIT);
    assert_eq!(
        records.len(),
        1,
        "one call on the {side} side: {records:#?}"
    );
    records.into_iter().next().expect("one record")
}

fn tenant_id(tsps: &Tsps) -> String {
    tenant_users(tsps, DOMAIN).0
}

fn user_path(tsps: &Tsps, extension: &str) -> String {
    let (tenant, users) = tenant_users(tsps, DOMAIN);
    let id = users
        .get(extension)
        .unwrap_or_else(|| panic!("user {extension} in {users:?}"));
    format!("/tenants/{tenant}/users/{id}")
}

fn callee_legs(r: &CallRecord) -> Vec<&LegRecord> {
    r.legs.iter().filter(|l| l.role == Party::Callee).collect()
}

fn answered_leg(r: &CallRecord) -> &LegRecord {
    let legs: Vec<_> = callee_legs(r)
        .into_iter()
        .filter(|l| l.answered_at.is_some())
        .collect();
    assert_eq!(legs.len(), 1, "one callee leg answered: {r:#?}");
    legs[0]
}

fn assert_decided(r: &CallRecord, reasons: &[&str]) {
    for reason in reasons {
        assert!(
            r.decision.iter().any(|d| d == reason),
            "the record's decision has {reason:?}: {:#?}",
            r.decision
        );
    }
}

#[test]
fn a_call_for_the_user_upstream_rings_the_phone_at_home() {
    let mut pair = Pair::start();
    let (home_port, phone) = pair.home_phone("uas_answer.xml");

    let caller = pair
        .upstream
        .sipp(pair.alice_calls_bob("uac_call_routed.xml"));
    let phone = phone.join();
    caller.assert_success("1001 calls 1002 upstream: the phone at home answers");
    phone.assert_success("the phone at home rings and answers");
    assert!(
        phone.messages().contains("INVITE sip:1002h@"),
        "the personal tsps rings its own device:\n{}",
        phone.report()
    );

    let contact = pair.contact();
    let (up, home) = pair.records();
    assert_eq!(up.outcome, CallOutcome::Answered, "{up:#?}");
    assert_eq!(
        (up.caller.as_str(), up.callee.as_str()),
        ("1001", "1002"),
        "{up:#?}"
    );
    assert!(
        answered_leg(&up).target.contains(&contact),
        "upstream rang the registered contact {contact}: {up:#?}"
    );
    assert_eq!(home.outcome, CallOutcome::Answered, "{home:#?}");
    assert_eq!(home.direction, CallDirection::Inbound, "{home:#?}");
    assert_eq!(
        (home.caller.as_str(), home.callee.as_str()),
        ("1001", "1002"),
        "{home:#?}"
    );
    assert!(
        answered_leg(&home)
            .target
            .contains(&format!("{DEVICE_IP}:{home_port}")),
        "the phone at home answered: {home:#?}"
    );
    assert_decided(&home, &["1002: ring devices"]);
}

#[test]
fn do_not_disturb_at_home_busies_the_upstream_caller() {
    let mut pair = Pair::start();
    pair.personal_status("do_not_disturb");

    pair.upstream
        .sipp(pair.alice_calls_bob("uac_call_busy.xml"))
        .assert_success("1001 gets 486: 1002 is in do not disturb at home");

    let (up, home) = pair.records();
    assert_eq!(home.outcome, CallOutcome::Busy, "{home:#?}");
    assert_decided(&home, &["1002: do not disturb"]);
    assert!(
        callee_legs(&home).is_empty(),
        "nothing rang at home: {home:#?}"
    );
    assert_eq!(up.outcome, CallOutcome::Busy, "{up:#?}");
    let legs = callee_legs(&up);
    assert_eq!(legs.len(), 1, "{up:#?}");
    assert_eq!(legs[0].status_code, Some(486), "{up:#?}");
}

#[test]
fn the_phone_at_home_calls_out_through_the_upstream() {
    let mut pair = Pair::start();
    let alice_port = free_port(IpAddr::V4(DEVICE_IP), false);
    register(&pair.upstream, DOMAIN, "1001", "secret1001", alice_port);
    let alice = pair
        .upstream
        .spawn_sipp(Sipp::uas("uas_answer.xml").port(alice_port));

    // 1001 is no extension at home: the call goes up the trunk, which authenticates
    // as 1002p, and the upstream rings its 1001.
    let caller = pair.personal.sipp(
        Sipp::new("uac_call_routed.xml")
            .device(DOMAIN, "1002h", "secret1002h")
            .calling("1001"),
    );
    let alice = alice.join();
    caller.assert_success("the phone at home calls 1001 and is answered");
    alice.assert_success("1001 at the upstream rings and answers");

    let (up, home) = pair.records();
    assert_eq!(home.direction, CallDirection::Outbound, "{home:#?}");
    assert_eq!(home.outcome, CallOutcome::Answered, "{home:#?}");
    assert!(
        answered_leg(&home).target == "trunk:1001",
        "the personal tsps's call went up its upstream trunk: {home:#?}"
    );
    assert_eq!(up.direction, CallDirection::Internal, "{up:#?}");
    assert_eq!(up.outcome, CallOutcome::Answered, "{up:#?}");
    assert_eq!(
        (up.caller.as_str(), up.callee.as_str()),
        ("1002", "1001"),
        "upstream sees its user 1002 calling: {up:#?}"
    );
    assert!(
        answered_leg(&up)
            .target
            .contains(&format!("{DEVICE_IP}:{alice_port}")),
        "{up:#?}"
    );
}

#[test]
fn stopping_the_personal_tsps_removes_its_binding_upstream() {
    let mut pair = Pair::start();
    let status = pair
        .personal
        .terminate(Duration::from_secs(15))
        .expect("the personal tsps was running");
    assert!(status.success(), "a clean shutdown: {status}");
    let contact = pair.contact();
    pair.wait_registrations(|r| !r.iter().any(|b| b["contact"] == contact.as_str()))
        .unwrap_or_else(|r| panic!("the binding {contact} is gone upstream: {r}"));
}

/// The personal user forwards every call to a number: the personal tsps does not call
/// back up through its trunk but redirects the upstream's INVITE (302) to the number in
/// the upstream's domain, and the upstream routes it to its carrier.
#[test]
fn forwarding_at_home_redirects_the_call_upstream() {
    let mut pair = Pair::start();
    pair.personal_profile(json!({ "forwarding": { "always": { "number": FORWARD_TO } } }));
    let carrier = pair.carrier();

    let caller = pair
        .upstream
        .sipp(pair.alice_calls_bob("uac_call_routed.xml"));
    let carrier = carrier.join();
    caller.assert_success("1001 calls 1002 and is connected to the forwarding number");
    carrier.assert_success("the upstream's carrier takes the redirected call");
    assert!(
        carrier
            .messages()
            .contains(&format!("INVITE sip:{FORWARD_TO}@")),
        "the carrier is asked for the number:\n{}",
        carrier.report()
    );

    let contact = pair.contact();
    let (up, home) = pair.records();
    let redirect = format!("sip:{FORWARD_TO}@{DOMAIN}");
    assert_decided(
        &home,
        &[
            "1002: forward always",
            &format!("redirected upstream to {redirect}"),
        ],
    );
    assert!(
        callee_legs(&home).is_empty(),
        "nothing dialled at home: {home:#?}"
    );
    assert_eq!(home.legs[0].status_code, Some(302), "{home:#?}");
    assert_eq!(up.outcome, CallOutcome::Answered, "{up:#?}");
    assert_decided(&up, &[&format!("redirected to {redirect}")]);
    let legs = callee_legs(&up);
    assert!(
        legs.iter()
            .any(|l| l.target.contains(&contact) && l.status_code == Some(302)),
        "the personal tsps answered 302: {up:#?}"
    );
    assert_eq!(
        answered_leg(&up).target,
        format!("trunk:{FORWARD_TO}"),
        "{up:#?}"
    );
}

/// The upstream may also hand 1002's calls to the personal tsps by tenant policy
/// (`external`, the personal tsps's URI) instead of the registration: its redirect is
/// honoured and its rejection reaches the caller the same way.
#[test]
fn an_external_policy_upstream_reaches_the_personal_feature_server() {
    let mut pair = Pair::start();
    let uri = format!("sip:1002@{}", pair.personal.sip_addr());
    let policy = format!("{}/policy", user_path(&pair.upstream, "1002"));
    pair.upstream.api_ok(
        Method::PUT,
        &policy,
        Some(&json!({ "mode": "external", "external_uri": uri })),
    );

    // Forward always: redirected, the carrier answers.
    pair.personal_profile(json!({ "forwarding": { "always": { "number": FORWARD_TO } } }));
    let carrier = pair.carrier();
    let caller = pair
        .upstream
        .sipp(pair.alice_calls_bob("uac_call_routed.xml"));
    let carrier = carrier.join();
    caller.assert_success("1001 is connected to 1002's forwarding number");
    carrier.assert_success("the carrier takes the redirected call");
    let up = pair.upstream.wait_for_call_records(DOMAIN, 1, CDR_WAIT);
    assert_decided(
        &up[0],
        &[
            &format!("tenant: the user's feature server is {uri}"),
            &format!("redirected to sip:{FORWARD_TO}@{DOMAIN}"),
        ],
    );
    assert_eq!(up[0].outcome, CallOutcome::Answered, "{up:#?}");

    // Do not disturb at home: the caller gets the personal feature server's 486.
    pair.personal_profile(json!({}));
    pair.personal_status("do_not_disturb");
    pair.upstream
        .sipp(pair.alice_calls_bob("uac_call_busy.xml"))
        .assert_success("1001 gets 486 from 1002's own feature server");
    let up = pair.upstream.wait_for_call_records(DOMAIN, 2, CDR_WAIT);
    assert_eq!(up[0].outcome, CallOutcome::Busy, "{up:#?}");
    let legs = callee_legs(&up[0]);
    assert_eq!(legs.len(), 1, "{up:#?}");
    assert_eq!(
        (legs[0].target.as_str(), legs[0].status_code),
        (uri.as_str(), Some(486)),
        "{up:#?}"
    );
    let home = pair.personal.wait_for_call_records(DOMAIN, 2, CDR_WAIT);
    assert_eq!(home[0].outcome, CallOutcome::Busy, "{home:#?}");
    assert_decided(&home[0], &["1002: do not disturb"]);
}
