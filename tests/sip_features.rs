//! The personal feature server end to end: real SIPp phones registered as devices of
//! users, a real carrier SIPp on 127.0.0.2, and the REST API that configures each user
//! (profile, status, contacts), the tenant tier (policy) and a ringing call (override).
//!
//! Each test checks what the people involved would see (every SIPp scenario ran to its
//! end: the caller got the answer or the refusal it expects, a cancelled device got its
//! CANCEL, a device that must stay quiet received nothing) and the call record tsps
//! wrote (outcome and, per callee leg, whom it reached and how it ended).
//!
//! The tenant `a.test` (Europe/Zurich) has 1001 (the caller), 1002 with two devices
//! (`1002` and `1002b`), 1003, the DID +41445550100 for 1002 and a carrier trunk.

mod common;

use common::{
    assert_quiet, free_port, register, tenant_users, Sipp, SippHandle, Tsps, CARRIER_IP, DEVICE_IP,
};
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::{IpAddr, UdpSocket};
use std::time::{Duration, Instant};
use tsps_actors::model::{CallOutcome, CallRecord, LegRecord, Party};

const DOMAIN: &str = "a.test";
const DID: &str = "+41445550100";
/// The carrier presents this number; it is the stored contact in the contact tests.
const CONTACT_NUMBER: &str = "+41790000001";
const CDR_WAIT: Duration = Duration::from_secs(10);

fn provisioning(trunk_port: u16) -> String {
    format!(
        r#"tenants:
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
          - sip_username: "1002b"
            password: secret1002b
      - extension: "1003"
        display_name: Carol
        devices:
          - sip_username: "1003"
            password: secret1003
    dids:
      - number: "{DID}"
        extension: "1002"
    trunks:
      - name: carrier
        peer_host: 127.0.0.2
        peer_port: {trunk_port}
        transport: udp
        username: tsps
        password: trunkpw
        inbound_sources: ["127.0.0.2"]
"#
    )
}

/// One tsps with the tenant above, and the ids the API needs.
struct Pbx {
    tsps: Tsps,
    tenant: String,
    /// Extension → user id.
    users: BTreeMap<String, String>,
}

impl Pbx {
    fn start(extra_env: &[(&str, &str)]) -> Pbx {
        let trunk_port = free_port(IpAddr::V4(CARRIER_IP), false);
        let tsps = Tsps::start(&provisioning(trunk_port), extra_env);
        let (tenant, users) = tenant_users(&tsps, DOMAIN);
        Pbx {
            tsps,
            tenant,
            users,
        }
    }

    fn user_path(&self, extension: &str) -> String {
        let user = self
            .users
            .get(extension)
            .unwrap_or_else(|| panic!("no user {extension}: {:?}", self.users));
        format!("/tenants/{}/users/{user}", self.tenant)
    }

    fn put_profile(&self, extension: &str, profile: Value) {
        let path = format!("{}/profile", self.user_path(extension));
        self.tsps.api_ok(Method::PUT, &path, Some(&profile));
    }

    fn set_status(&self, extension: &str, presence: &str) {
        let path = format!("{}/status", self.user_path(extension));
        let body = json!({ "presence": presence });
        let now = self.tsps.api_ok(Method::PUT, &path, Some(&body));
        assert_eq!(now["presence"], presence, "status of {extension}: {now}");
    }

    fn add_contact(&self, extension: &str, contact: Value) {
        let path = format!("{}/contacts", self.user_path(extension));
        self.tsps.api_ok(Method::POST, &path, Some(&contact));
    }

    fn set_policy(&self, extension: &str, policy: Value) {
        let path = format!("{}/policy", self.user_path(extension));
        self.tsps.api_ok(Method::PUT, &path, Some(&policy));
    }

    fn set_clock(&self, now: &str) {
        self.tsps
            .api_ok(Method::PUT, "/testing/clock", Some(&json!({ "now": now })));
    }

    /// The id of the device with `sip_username` (it belongs to `extension`).
    fn device_id(&self, extension: &str, sip_username: &str) -> String {
        let path = format!("{}/devices", self.user_path(extension));
        let devices = self.tsps.api_ok(Method::GET, &path, None);
        devices
            .as_array()
            .and_then(|all| all.iter().find(|d| d["sip_username"] == sip_username))
            .and_then(|d| d["id"].as_str())
            .unwrap_or_else(|| panic!("device {sip_username} of {extension}: {devices}"))
            .to_string()
    }

    /// Registers the device `sip_username` from a fresh port and returns the port.
    fn register(&self, sip_username: &str) -> u16 {
        let port = free_port(IpAddr::V4(DEVICE_IP), false);
        let password = format!("secret{sip_username}");
        register(&self.tsps, DOMAIN, sip_username, &password, port);
        port
    }

    /// A registered device that plays `scenario` (a UAS) for the next call.
    fn device(&self, sip_username: &str, scenario: &str) -> (u16, SippHandle) {
        self.device_sipp(sip_username, Sipp::uas(scenario))
    }

    /// Like [`Pbx::device`] with a UAS run that has its own keys.
    fn device_sipp(&self, sip_username: &str, uas: Sipp) -> (u16, SippHandle) {
        let port = self.register(sip_username);
        (port, self.tsps.spawn_sipp(uas.port(port)))
    }

    /// A registered device that must receive nothing: the test holds its socket.
    fn quiet_device(&self, sip_username: &str) -> UdpSocket {
        let port = self.register(sip_username);
        UdpSocket::bind((DEVICE_IP, port))
            .unwrap_or_else(|e| panic!("bind the port {port} of {sip_username}: {e}"))
    }

    /// 1001 dials `callee`.
    fn caller(&self, scenario: &str, callee: &str) -> Sipp {
        Sipp::new(scenario)
            .device(DOMAIN, "1001", "secret1001")
            .calling(callee)
    }

    /// The carrier delivers a call for 1002's DID from `caller_number`.
    fn carrier(&self, scenario: &str, caller_number: &str) -> Sipp {
        Sipp::new(scenario)
            .local(CARRIER_IP, free_port(IpAddr::V4(CARRIER_IP), false))
            .key("did", DID)
            .key("caller_number", caller_number)
    }

    /// The one call record of the test.
    fn record(&mut self) -> CallRecord {
        let records = self.tsps.wait_for_call_records(DOMAIN, 1, CDR_WAIT);
        assert_eq!(records.len(), 1, "exactly one call was made: {records:#?}");
        records.into_iter().next().expect("one record")
    }

    /// Polls the live calls until exactly one is there; returns it.
    fn live_call(&self) -> Value {
        let path = format!("/tenants/{}/calls/live", self.tenant);
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let calls = self.tsps.api_ok(Method::GET, &path, None);
            match calls.as_array().map(Vec::as_slice) {
                Some([one]) => return one.clone(),
                _ if Instant::now() >= until => panic!("expected one live call: {calls}"),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    fn override_call(&self, call_id: &str, action: Value) -> (u16, Value) {
        let path = format!("/tenants/{}/calls/{call_id}/override", self.tenant);
        self.tsps.api(Method::POST, &path, Some(&action))
    }
}

fn callee_legs(r: &CallRecord) -> Vec<&LegRecord> {
    r.legs.iter().filter(|l| l.role == Party::Callee).collect()
}

/// The callee leg that rang the device registered from `port`.
fn leg_to(r: &CallRecord, port: u16) -> &LegRecord {
    let at = format!("{DEVICE_IP}:{port}");
    let legs: Vec<_> = callee_legs(r)
        .into_iter()
        .filter(|l| l.target.contains(&at))
        .collect();
    assert_eq!(legs.len(), 1, "one callee leg to {at}: {r:#?}");
    legs[0]
}

fn assert_answered_by(r: &CallRecord, port: u16) {
    assert_eq!(r.outcome, CallOutcome::Answered, "{r:#?}");
    assert_eq!(r.hangup_by, Some(Party::Caller), "{r:#?}");
    let leg = leg_to(r, port);
    assert_eq!(leg.status_code, Some(200), "{r:#?}");
    assert!(leg.answered_at.is_some(), "{r:#?}");
    let answered = callee_legs(r)
        .into_iter()
        .filter(|l| l.answered_at.is_some())
        .count();
    assert_eq!(answered, 1, "exactly one callee leg answered: {r:#?}");
}

/// How long the leg rang before it ended.
fn rang(leg: &LegRecord) -> chrono::Duration {
    leg.ended_at.expect("the leg ended") - leg.started_at
}

/// The feature server wrote these reasons (`extension: reason`) on the call record.
fn assert_decided(r: &CallRecord, reasons: &[&str]) {
    for reason in reasons {
        assert!(
            r.decision.iter().any(|d| d == reason),
            "the record's decision has {reason:?}: {:#?}",
            r.decision
        );
    }
}

fn between(d: chrono::Duration, min_ms: i64, max_ms: i64) -> bool {
    (min_ms..=max_ms).contains(&d.num_milliseconds())
}

// 1. Simultaneous ring.

#[test]
fn simultaneous_ring_first_device_to_answer_wins() {
    let mut pbx = Pbx::start(&[]);
    let (answering, phone) = pbx.device("1002", "uas_answer.xml");
    let (other, desk) = pbx.device("1002b", "uas_no_answer.xml");

    let caller = pbx.tsps.sipp(pbx.caller("uac_call_routed.xml", "1002"));
    let (phone, desk) = (phone.join(), desk.join());
    caller.assert_success("caller: both devices ring, one answers");
    phone.assert_success("device 1002 rings and answers");
    desk.assert_success("device 1002b rings and gets CANCEL once 1002 answered");

    let r = pbx.record();
    assert_answered_by(&r, answering);
    assert_eq!(callee_legs(&r).len(), 2, "both devices rang: {r:#?}");
    let cancelled = leg_to(&r, other);
    assert_eq!(cancelled.status_code, Some(487), "{r:#?}");
    assert!(cancelled.answered_at.is_none(), "{r:#?}");
}

#[test]
fn simultaneous_ring_reaches_another_extension() {
    let mut pbx = Pbx::start(&[]);
    pbx.put_profile("1002", json!({ "simultaneous": [{ "extension": "1003" }] }));
    let (own, desk) = pbx.device("1002", "uas_no_answer.xml");
    let (colleague, carol) = pbx.device("1003", "uas_answer.xml");

    let caller = pbx.tsps.sipp(pbx.caller("uac_call_routed.xml", "1002"));
    let (desk, carol) = (desk.join(), carol.join());
    caller.assert_success("caller: 1002 and 1003 ring together, 1003 answers");
    carol.assert_success("1003 rings with 1002 and answers");
    desk.assert_success("1002's device is cancelled when 1003 answers");

    let r = pbx.record();
    assert_answered_by(&r, colleague);
    assert_eq!(leg_to(&r, own).status_code, Some(487), "{r:#?}");
}

// 2. Sequential ring.

#[test]
fn sequential_ring_moves_on_when_a_step_times_out() {
    let mut pbx = Pbx::start(&[("TSPS_SIP__RING_TIMEOUT_SECS", "30")]);
    pbx.put_profile(
        "1002",
        json!({ "default_handling": { "method": "sequential", "steps": [
            { "target": "devices", "seconds": 5 },
            { "target": { "extension": "1003" }, "seconds": 8 }
        ] } }),
    );
    let (own, desk) = pbx.device("1002", "uas_no_answer.xml");
    let (next, carol) = pbx.device("1003", "uas_answer.xml");

    let caller = pbx.tsps.sipp(pbx.caller("uac_call_routed.xml", "1002"));
    let (desk, carol) = (desk.join(), carol.join());
    caller.assert_success("caller: 1002 rings 5 s, then 1003 answers");
    desk.assert_success("1002's device rings and is cancelled after its step");
    carol.assert_success("1003 rings in the second step and answers");

    let r = pbx.record();
    assert_answered_by(&r, next);
    // A step's extension rings that user's devices directly (not its feature server).
    assert_decided(&r, &["1002: sequential ring, 2 steps"]);
    let first = leg_to(&r, own);
    assert_eq!(first.status_code, Some(487), "{r:#?}");
    assert!(
        between(rang(first), 4_500, 7_000),
        "the first step rang for its 5 s, not {}: {r:#?}",
        rang(first)
    );
    let second = leg_to(&r, next);
    assert!(
        second.started_at >= first.ended_at.expect("ended"),
        "1003 rang after 1002's step ended, not with it: {r:#?}"
    );
}

// 3. Forwarding.

#[test]
fn forward_on_busy_to_another_extension() {
    let mut pbx = Pbx::start(&[]);
    pbx.put_profile(
        "1002",
        json!({ "forwarding": { "busy": { "extension": "1003" } } }),
    );
    let (own, desk) = pbx.device("1002", "uas_busy.xml");
    let (target, carol) = pbx.device("1003", "uas_answer.xml");

    let caller = pbx.tsps.sipp(pbx.caller("uac_call_routed.xml", "1002"));
    let (desk, carol) = (desk.join(), carol.join());
    caller.assert_success("caller: 1002 busy, forwarded, 1003 answers");
    desk.assert_success("1002's device answers 486");
    carol.assert_success("1003 takes the forwarded call");

    let r = pbx.record();
    assert_answered_by(&r, target);
    assert_eq!(leg_to(&r, own).status_code, Some(486), "{r:#?}");
}

#[test]
fn forward_on_no_answer_after_its_seconds() {
    // The ring timeout is far above the 5 s: the forward comes from the profile.
    let mut pbx = Pbx::start(&[("TSPS_SIP__RING_TIMEOUT_SECS", "30")]);
    pbx.put_profile(
        "1002",
        json!({ "forwarding": { "no_answer": { "target": { "extension": "1003" }, "seconds": 5 } } }),
    );
    let (own, desk) = pbx.device("1002", "uas_no_answer.xml");
    let (target, carol) = pbx.device("1003", "uas_answer.xml");

    let caller = pbx.tsps.sipp(pbx.caller("uac_call_routed.xml", "1002"));
    let (desk, carol) = (desk.join(), carol.join());
    caller.assert_success("caller: 1002 does not answer, forwarded, 1003 answers");
    desk.assert_success("1002's device rings and is cancelled after 5 s");
    carol.assert_success("1003 takes the forwarded call");

    let r = pbx.record();
    assert_answered_by(&r, target);
    // The call reached 1003 by the forward: it is in 1003's history, as incoming.
    let carol_history = format!("{}/calls/history?direction=incoming", pbx.user_path("1003"));
    let listed = pbx.tsps.api_ok(Method::GET, &carol_history, None);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == r.id.to_string()),
        "{listed}"
    );
    let first = leg_to(&r, own);
    assert_eq!(first.status_code, Some(487), "{r:#?}");
    assert!(
        between(rang(first), 4_500, 7_000),
        "1002 rang the profile's 5 s, not {}: {r:#?}",
        rang(first)
    );
}

#[test]
fn forward_when_unreachable() {
    let mut pbx = Pbx::start(&[]);
    pbx.put_profile(
        "1002",
        json!({ "forwarding": { "unreachable": { "extension": "1003" } } }),
    );
    // 1002 has registered nowhere.
    let (target, carol) = pbx.device("1003", "uas_answer.xml");

    let caller = pbx.tsps.sipp(pbx.caller("uac_call_routed.xml", "1002"));
    let carol = carol.join();
    caller.assert_success("caller: 1002 unreachable, forwarded, 1003 answers");
    carol.assert_success("1003 takes the forwarded call");

    let r = pbx.record();
    assert_eq!(r.callee, "1002", "the caller dialled 1002: {r:#?}");
    assert_answered_by(&r, target);
    assert_eq!(callee_legs(&r).len(), 1, "only 1003 rang: {r:#?}");
    assert_decided(
        &r,
        &[
            "1002: no registered device",
            "1002: forward when unreachable",
            "1002: forward to extension 1003",
            "1003: ring devices",
        ],
    );
}

// 4. Do not disturb.

#[test]
fn do_not_disturb_status_busies_the_caller() {
    let mut pbx = Pbx::start(&[]);
    let device = pbx.quiet_device("1002");
    pbx.set_status("1002", "do_not_disturb");

    pbx.tsps
        .sipp(pbx.caller("uac_call_busy.xml", "1002"))
        .assert_success("caller gets 486 while 1002 is in do not disturb");
    assert_quiet(
        &pbx.tsps,
        &device,
        DOMAIN,
        "1002",
        "1002's device in do not disturb",
    );

    let r = pbx.record();
    assert_eq!(r.outcome, CallOutcome::Busy, "{r:#?}");
    assert!(callee_legs(&r).is_empty(), "nothing rang: {r:#?}");
    assert_decided(&r, &["1002: do not disturb"]);
}

/// A contact's number is E.164, and an internal caller presents its extension, so the
/// VIP calls in from outside: the carrier presents the contact's number.
#[test]
fn vip_contact_rings_through_do_not_disturb() {
    let mut pbx = Pbx::start(&[]);
    pbx.put_profile(
        "1002",
        json!({
            "handling_codes": [{ "name": "VIP", "handling": { "method": "ring" } }],
            "dnd": { "exceptions": ["VIP"] }
        }),
    );
    pbx.add_contact(
        "1002",
        json!({ "name": "Vera Important", "handling_code": "VIP",
                "numbers": [{ "number": CONTACT_NUMBER, "label": "mobile" }] }),
    );
    pbx.set_status("1002", "do_not_disturb");
    // The device takes one call only: a stranger's call reaching it fails the test.
    let (port, phone) = pbx.device("1002", "uas_answer.xml");

    pbx.tsps
        .sipp(pbx.carrier("carrier_uac_did_busy.xml", "+41790000002"))
        .assert_success("a caller who is no contact gets 486 (do not disturb)");
    pbx.tsps
        .sipp(pbx.carrier("carrier_uac_did.xml", CONTACT_NUMBER))
        .assert_success("the VIP contact's call is answered");
    phone
        .join()
        .assert_success("1002's device rings for the VIP only, and answers");

    let records = pbx.tsps.wait_for_call_records(DOMAIN, 2, CDR_WAIT);
    assert_eq!(records.len(), 2, "{records:#?}");
    let (vip, stranger) = (&records[0], &records[1]);
    assert!(vip.caller.contains("41790000001"), "{records:#?}");
    assert_answered_by(vip, port);
    assert_decided(
        vip,
        &[
            "1002: caller is contact \"Vera Important\" (personal)",
            "1002: handling code VIP",
            "1002: do not disturb: the handling code rings through",
        ],
    );
    assert!(stranger.caller.contains("41790000002"), "{records:#?}");
    assert_eq!(stranger.outcome, CallOutcome::Busy, "{records:#?}");
    assert!(callee_legs(stranger).is_empty(), "{records:#?}");
    assert_decided(stranger, &["1002: do not disturb"]);
}

// 5. Blocked contact.

#[test]
fn blocked_contact_is_declined() {
    let mut pbx = Pbx::start(&[]);
    pbx.put_profile(
        "1002",
        json!({ "handling_codes": [{ "name": "Block", "handling": { "method": "reject_declined" } }] }),
    );
    pbx.add_contact(
        "1002",
        json!({ "name": "Pushy Sales", "handling_code": "Block",
                "numbers": [{ "number": CONTACT_NUMBER }] }),
    );
    let device = pbx.quiet_device("1002");

    pbx.tsps
        .sipp(pbx.carrier("carrier_uac_did_declined.xml", CONTACT_NUMBER))
        .assert_success("the blocked contact gets 603");
    assert_quiet(
        &pbx.tsps,
        &device,
        DOMAIN,
        "1002",
        "1002's device for a blocked caller",
    );

    let r = pbx.record();
    assert_eq!(r.outcome, CallOutcome::Rejected, "{r:#?}");
    assert!(r.caller.contains("41790000001"), "{r:#?}");
    assert!(callee_legs(&r).is_empty(), "nothing rang: {r:#?}");
    assert_decided(
        &r,
        &[
            "1002: caller is contact \"Pushy Sales\" (personal)",
            "1002: handling code Block",
        ],
    );
}

/// A colleague is a contact by extension, so handling codes apply to colleagues too.
#[test]
fn a_colleague_as_a_contact_gets_the_contacts_handling() {
    let mut pbx = Pbx::start(&[]);
    pbx.put_profile(
        "1002",
        json!({ "handling_codes": [{ "name": "Later", "handling": { "method": "reject_busy" } }] }),
    );
    pbx.add_contact(
        "1002",
        json!({ "name": "Alice", "handling_code": "Later", "numbers": [{ "number": "1001" }] }),
    );
    let device = pbx.quiet_device("1002");

    pbx.tsps
        .sipp(pbx.caller("uac_call_busy.xml", "1002"))
        .assert_success("Alice's call gets 486 from 1002's handling code");
    assert_quiet(
        &pbx.tsps,
        &device,
        DOMAIN,
        "1002",
        "1002's device for a colleague sent away",
    );

    let r = pbx.record();
    assert_eq!(r.outcome, CallOutcome::Busy, "{r:#?}");
    assert_decided(
        &r,
        &[
            "1002: caller is contact \"Alice\" (personal)",
            "1002: handling code Later",
        ],
    );
}

// 6. Schedules, on the test clock.

#[test]
fn schedule_switches_forwarding_with_the_clock() {
    let mut pbx = Pbx::start(&[("TSPS_TESTING__CLOCK_API", "true")]);
    pbx.put_profile(
        "1002",
        json!({
            "schedules": [{ "name": "business", "weekly": [{
                "days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "17:00" }] }],
            "forwarding": { "selective": [{
                "when": { "schedule": "!business" }, "target": { "extension": "1003" } }] }
        }),
    );

    // Monday 23 November 2026, 10:00 in Zurich (UTC+1): business hours, 1002 rings.
    // Registrations expire on the same clock, so the phones register after it moved.
    pbx.set_clock("2026-11-23T09:00:00Z");
    let (own, phone) = pbx.device("1002", "uas_answer.xml");
    let carol_quiet = pbx.quiet_device("1003");
    pbx.tsps
        .sipp(pbx.caller("uac_call_routed.xml", "1002"))
        .assert_success("caller at 10:00: answered");
    phone
        .join()
        .assert_success("1002 rings in business hours and answers");
    assert_quiet(
        &pbx.tsps,
        &carol_quiet,
        DOMAIN,
        "1003",
        "1003 during business hours",
    );
    drop(carol_quiet);

    // The same Monday at 20:00: outside business hours, the call goes to 1003.
    pbx.set_clock("2026-11-23T19:00:00Z");
    let own_quiet = pbx.quiet_device("1002");
    let (target, carol) = pbx.device("1003", "uas_answer.xml");
    pbx.tsps
        .sipp(pbx.caller("uac_call_routed.xml", "1002"))
        .assert_success("caller at 20:00: answered");
    carol
        .join()
        .assert_success("1003 takes 1002's calls after hours");
    assert_quiet(
        &pbx.tsps,
        &own_quiet,
        DOMAIN,
        "1002",
        "1002 after business hours",
    );

    let records = pbx.tsps.wait_for_call_records(DOMAIN, 2, CDR_WAIT);
    assert_eq!(records.len(), 2, "{records:#?}");
    let (evening, morning) = (&records[0], &records[1]);
    assert_answered_by(morning, own);
    assert_eq!(callee_legs(morning).len(), 1, "{records:#?}");
    assert_decided(morning, &["1002: ring devices"]);
    assert_answered_by(evening, target);
    assert_eq!(callee_legs(evening).len(), 1, "{records:#?}");
    assert_decided(
        evening,
        &[
            "1002: selective forwarding rule 1",
            "1002: forward to extension 1003",
        ],
    );
    // The records carry the test clock's time: the calls happened "on Monday".
    let at = |r: &CallRecord| r.started_at.format("%Y-%m-%dT%H").to_string();
    assert_eq!(at(morning), "2026-11-23T09", "{records:#?}");
    assert_eq!(at(evening), "2026-11-23T19", "{records:#?}");
}

// 7. The tenant above the user.

#[test]
fn tenant_policy_reject_refuses_calls_for_the_user() {
    let mut pbx = Pbx::start(&[]);
    let device = pbx.quiet_device("1002");
    pbx.set_policy("1002", json!({ "mode": "reject" }));

    pbx.tsps
        .sipp(pbx.caller("uac_call_forbidden.xml", "1002"))
        .assert_success("caller gets 403 for a user the tenant rejects");
    assert_quiet(
        &pbx.tsps,
        &device,
        DOMAIN,
        "1002",
        "1002's device while the tenant rejects",
    );

    let r = pbx.record();
    assert_eq!(r.outcome, CallOutcome::Rejected, "{r:#?}");
    assert!(callee_legs(&r).is_empty(), "nothing rang: {r:#?}");
    assert_eq!(
        r.decision,
        vec!["tenant: calls for this user are refused"],
        "{r:#?}"
    );
}

#[test]
fn tenant_policy_external_hands_calls_to_the_users_own_server() {
    let mut pbx = Pbx::start(&[]);
    let device = pbx.quiet_device("1002");
    let server_port = free_port(IpAddr::V4(DEVICE_IP), false);
    let uri = format!("sip:ext@{DEVICE_IP}:{server_port}");
    pbx.set_policy("1002", json!({ "mode": "external", "external_uri": uri }));
    let server = pbx
        .tsps
        .spawn_sipp(Sipp::uas("uas_answer.xml").port(server_port));

    pbx.tsps
        .sipp(pbx.caller("uac_call_routed.xml", "1002"))
        .assert_success("caller: the user's own server answers");
    let server = server.join();
    server.assert_success("the external feature server gets the call and answers");
    assert!(
        server.messages().contains(&format!("INVITE {uri} SIP/2.0")),
        "the INVITE is addressed to the external URI:\n{}",
        server.report()
    );
    assert_quiet(
        &pbx.tsps,
        &device,
        DOMAIN,
        "1002",
        "1002's device: its calls go to its own server",
    );

    let r = pbx.record();
    assert_eq!(r.outcome, CallOutcome::Answered, "{r:#?}");
    let legs = callee_legs(&r);
    assert_eq!(legs.len(), 1, "{r:#?}");
    assert_eq!(legs[0].target, uri, "{r:#?}");
    assert_eq!(legs[0].status_code, Some(200), "{r:#?}");
}

#[test]
fn tenant_policy_external_server_rejection_reaches_the_caller() {
    let mut pbx = Pbx::start(&[]);
    let server_port = free_port(IpAddr::V4(DEVICE_IP), false);
    let uri = format!("sip:ext@{DEVICE_IP}:{server_port}");
    pbx.set_policy("1002", json!({ "mode": "external", "external_uri": uri }));
    let server = pbx
        .tsps
        .spawn_sipp(Sipp::uas("uas_busy.xml").port(server_port));

    pbx.tsps
        .sipp(pbx.caller("uac_call_busy.xml", "1002"))
        .assert_success("caller gets the external server's 486");
    server
        .join()
        .assert_success("the external feature server answers 486 and gets the ACK");

    let r = pbx.record();
    assert_eq!(r.outcome, CallOutcome::Busy, "{r:#?}");
    let legs = callee_legs(&r);
    assert_eq!(legs.len(), 1, "{r:#?}");
    assert_eq!(legs[0].status_code, Some(486), "{r:#?}");
}

// 8. Per-call override while ringing.

/// Waits until the device's SIPp has answered the INVITE with 180: it is ringing.
fn wait_ringing(device: &mut SippHandle, what: &str) {
    assert!(
        device.wait_for_message("SIP/2.0 180 Ringing", Duration::from_secs(5)),
        "{what} did not ring within 5 s:\n{}",
        device.messages_so_far()
    );
}

#[test]
fn override_forwards_a_ringing_call() {
    // Without the override 1002 would ring for the whole 15 s and 1003 never.
    let mut pbx = Pbx::start(&[("TSPS_SIP__RING_TIMEOUT_SECS", "15")]);
    let (own, mut desk) = pbx.device("1002", "uas_no_answer.xml");
    let (target, carol) = pbx.device("1003", "uas_answer.xml");

    let caller = pbx
        .tsps
        .spawn_sipp(pbx.caller("uac_call_routed.xml", "1002"));
    wait_ringing(&mut desk, "1002's device");
    let live = pbx.live_call();
    assert_eq!(live["caller"], "1001", "{live}");
    assert_eq!(live["dialled"], "1002", "{live}");
    let call_id = live["id"].as_str().expect("call id").to_string();
    let (status, body) = pbx.override_call(
        &call_id,
        json!({ "action": "forward", "target": { "extension": "1003" } }),
    );
    assert_eq!(status, 204, "override: {body}");

    let (caller, desk, carol) = (caller.join(), desk.join(), carol.join());
    caller.assert_success("caller: 1002 rings, the call moves to 1003, answered");
    desk.assert_success("1002's device gets CANCEL on the override");
    carol.assert_success("1003 rings after the override and answers");

    let r = pbx.record();
    assert_eq!(r.id.to_string(), call_id, "{r:#?}");
    assert_answered_by(&r, target);
    assert_eq!(leg_to(&r, own).status_code, Some(487), "{r:#?}");
    // Over: the call is no longer live.
    let (status, body) = pbx.override_call(&call_id, json!({ "action": "reject" }));
    assert_eq!(status, 404, "override of an ended call: {body}");
}

#[test]
fn override_answer_on_one_device_cancels_the_other() {
    let mut pbx = Pbx::start(&[]);
    // 1002 rings 4 s before it answers; 1002b would ring until cancelled.
    let (chosen, mut phone) = pbx.device_sipp(
        "1002",
        Sipp::uas("uas_answer_late.xml").key("answer_after_ms", "4000"),
    );
    let (other, mut desk) = pbx.device("1002b", "uas_no_answer.xml");
    let phone_id = pbx.device_id("1002", "1002");

    let caller = pbx
        .tsps
        .spawn_sipp(pbx.caller("uac_call_routed.xml", "1002"));
    wait_ringing(&mut phone, "device 1002");
    wait_ringing(&mut desk, "device 1002b");
    let call_id = pbx.live_call()["id"].as_str().expect("call id").to_string();
    let (status, body) = pbx.override_call(
        &call_id,
        json!({ "action": "answer_on", "device_id": phone_id }),
    );
    assert_eq!(status, 204, "override: {body}");
    // The other device is cancelled by the override, not by 1002's answer later.
    assert!(
        desk.wait_for_message("CANCEL sip:", Duration::from_secs(2)),
        "1002b got no CANCEL within 2 s of the override:\n{}",
        desk.messages_so_far()
    );
    assert!(
        !phone.messages_so_far().contains("SIP/2.0 200 OK"),
        "1002 had not answered yet when 1002b was cancelled"
    );

    let (caller, phone, desk) = (caller.join(), phone.join(), desk.join());
    caller.assert_success("caller: answered on the chosen device");
    phone.assert_success("1002 keeps ringing, is not cancelled, answers");
    desk.assert_success("1002b gets CANCEL on the override");

    let r = pbx.record();
    assert_answered_by(&r, chosen);
    let cancelled = leg_to(&r, other);
    assert_eq!(cancelled.status_code, Some(487), "{r:#?}");
    let answered_at = leg_to(&r, chosen).answered_at.expect("answered");
    assert!(
        cancelled.ended_at.expect("ended") < answered_at,
        "1002b ended before 1002 answered: {r:#?}"
    );
}

/// The user chose the device: the plan's no-answer forward (5 s) no longer applies, the
/// device keeps ringing until it answers at 7 s, and 1003 never rings.
#[test]
fn override_answer_on_outlasts_the_no_answer_forward() {
    let mut pbx = Pbx::start(&[("TSPS_SIP__RING_TIMEOUT_SECS", "30")]);
    pbx.put_profile(
        "1002",
        json!({ "forwarding": { "no_answer": { "target": { "extension": "1003" }, "seconds": 5 } } }),
    );
    let (chosen, mut phone) = pbx.device_sipp(
        "1002",
        Sipp::uas("uas_answer_late.xml").key("answer_after_ms", "7000"),
    );
    let carol = pbx.quiet_device("1003");
    let phone_id = pbx.device_id("1002", "1002");

    let caller = pbx
        .tsps
        .spawn_sipp(pbx.caller("uac_call_routed.xml", "1002"));
    wait_ringing(&mut phone, "device 1002");
    let call_id = pbx.live_call()["id"].as_str().expect("call id").to_string();
    let (status, body) = pbx.override_call(
        &call_id,
        json!({ "action": "answer_on", "device_id": phone_id }),
    );
    assert_eq!(status, 204, "override: {body}");

    let (caller, phone) = (caller.join(), phone.join());
    caller.assert_success("caller: answered on the chosen device after 7 s");
    phone.assert_success("1002 rings past the 5 s no-answer forward and answers");
    assert_quiet(
        &pbx.tsps,
        &carol,
        DOMAIN,
        "1003",
        "1003: the override cancelled the forward",
    );

    let r = pbx.record();
    assert_answered_by(&r, chosen);
    assert_eq!(
        callee_legs(&r).len(),
        1,
        "only the chosen device rang: {r:#?}"
    );
}

/// `answer_on` a device that is not ringing (the plan rings 1003 first): 1003 is
/// cancelled and the device is rung, for at most the ring timeout.
#[test]
fn override_answer_on_rings_a_device_that_was_not_ringing() {
    let mut pbx = Pbx::start(&[("TSPS_SIP__RING_TIMEOUT_SECS", "6")]);
    pbx.put_profile(
        "1002",
        json!({ "default_handling": { "method": "sequential", "steps": [
            { "target": { "extension": "1003" }, "seconds": 5 },
            { "target": "devices", "seconds": 5 }
        ] } }),
    );
    let (chosen, phone) = pbx.device("1002", "uas_no_answer.xml");
    let (first, mut carol) = pbx.device("1003", "uas_no_answer.xml");
    let phone_id = pbx.device_id("1002", "1002");

    let caller = pbx
        .tsps
        .spawn_sipp(pbx.caller("uac_call_timeout.xml", "1002"));
    wait_ringing(&mut carol, "1003 (the plan's first step)");
    let call_id = pbx.live_call()["id"].as_str().expect("call id").to_string();
    let (status, body) = pbx.override_call(
        &call_id,
        json!({ "action": "answer_on", "device_id": phone_id }),
    );
    assert_eq!(status, 204, "override: {body}");

    let (caller, phone, carol) = (caller.join(), phone.join(), carol.join());
    caller.assert_success("caller: nobody answers, 408 after the ring timeout");
    carol.assert_success("1003 is cancelled by the override");
    phone.assert_success("1002 is rung by the override, then cancelled at the ring timeout");

    let r = pbx.record();
    assert_eq!(r.outcome, CallOutcome::NoAnswer, "{r:#?}");
    assert_eq!(leg_to(&r, first).status_code, Some(487), "{r:#?}");
    let rung = leg_to(&r, chosen);
    assert_eq!(rung.status_code, Some(487), "{r:#?}");
    assert!(
        between(rang(rung), 5_000, 8_000),
        "the chosen device rang for the 6 s ring timeout, not {}: {r:#?}",
        rang(rung)
    );
}

/// The user's own server redirects (302) to another extension of the tenant: tsps
/// follows it inside the tenant and 1003 answers.
#[test]
fn tenant_policy_external_server_redirect_is_followed() {
    let mut pbx = Pbx::start(&[]);
    let server_port = free_port(IpAddr::V4(DEVICE_IP), false);
    let uri = format!("sip:ext@{DEVICE_IP}:{server_port}");
    pbx.set_policy("1002", json!({ "mode": "external", "external_uri": uri }));
    let server = pbx.tsps.spawn_sipp(
        Sipp::uas("uas_redirect.xml")
            .port(server_port)
            .key("redirect_to", &format!("sip:1003@{DOMAIN}")),
    );
    let (target, carol) = pbx.device("1003", "uas_answer.xml");

    let caller = pbx.tsps.sipp(pbx.caller("uac_call_routed.xml", "1002"));
    let (server, carol) = (server.join(), carol.join());
    caller.assert_success("caller: redirected to 1003, answered");
    server.assert_success("the external server answers 302 and gets the ACK");
    carol.assert_success("1003 takes the redirected call");

    let r = pbx.record();
    assert_answered_by(&r, target);
    let redirected: Vec<_> = callee_legs(&r)
        .into_iter()
        .filter(|l| l.target == uri)
        .collect();
    assert_eq!(redirected.len(), 1, "{r:#?}");
    assert_eq!(redirected[0].status_code, Some(302), "{r:#?}");
    assert_decided(&r, &["redirected to sip:1003@a.test", "1003: ring devices"]);
}
