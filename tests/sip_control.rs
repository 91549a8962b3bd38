//! Third-party call control end to end: real SIPp phones registered as devices of users,
//! and the REST API that controls their calls on a user's behalf (hold, resume, release,
//! blind and consultative transfer, click-to-dial from a phone or an external mobile
//! rung through the carrier, answer with remote answer).
//!
//! Each test checks what the phones saw (every SIPp scenario ran to its end, with the
//! SDP checks in the scenarios: a held phone that got no `a=sendonly`, or a phone of a
//! delayed-offer INVITE whose ACK carried no answer, fails its scenario) and the call
//! record tsps wrote.
//!
//! The tenant `a.test` has 1001, 1002 and 1003, one device each.

mod common;

use common::events::{EventsClient, Kind};
use common::pbx::{Pbx, DOMAIN};
use common::{
    free_port, register, tenant_a_yaml, tenant_users, Sipp, SippHandle, Tsps, CARRIER_IP, DEVICE_IP,
};
use reqwest::Method;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tsps_actors::model::{CallOutcome, CallRecord, Party};

const CDR_WAIT: Duration = Duration::from_secs(10);
const SIP_WAIT: Duration = Duration::from_secs(8);

/// Call-control helpers of the shared [`Pbx`].
impl Pbx {
    /// 1001 dials `callee` with `scenario`.
    fn caller(&self, scenario: &str, callee: &str) -> SippHandle {
        self.tsps.spawn_sipp(
            Sipp::new(scenario)
                .device(DOMAIN, "1001", "secret1001")
                .calling(callee),
        )
    }

    /// Polls the live calls until exactly one is there; returns its id.
    fn live_call(&self) -> String {
        let path = format!("/tenants/{}/calls/live", self.tenant);
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let calls = self.tsps.api_ok(Method::GET, &path, None);
            match calls.as_array().map(Vec::as_slice) {
                Some([one]) => return one["id"].as_str().expect("call id").to_string(),
                _ if Instant::now() >= until => panic!("expected one live call: {calls}"),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    fn record(&mut self) -> CallRecord {
        let records = self.tsps.wait_for_call_records(DOMAIN, 1, CDR_WAIT);
        assert_eq!(records.len(), 1, "exactly one call was made: {records:#?}");
        records.into_iter().next().expect("one record")
    }
}

fn wait_for(device: &mut SippHandle, needle: &str, what: &str) {
    assert!(
        device.wait_for_message(needle, SIP_WAIT),
        "{what}: no {needle:?} within {SIP_WAIT:?}:\n{}",
        device.messages_so_far()
    );
}

/// The first INVITE `device` received, as SIPp logged it.
fn first_invite(device: &SippHandle) -> String {
    let log = device.messages_so_far();
    let start = log
        .find("INVITE sip:")
        .unwrap_or_else(|| panic!("no INVITE received:\n{log}"));
    let rest = &log[start..];
    let end = rest.find("\n\n\n").unwrap_or(rest.len());
    rest[..end].to_string()
}

fn assert_no_offer(invite: &str, what: &str) {
    let length = common::header(invite, "Content-Length")
        .or_else(|| common::header(invite, "l"))
        .unwrap_or_else(|| panic!("{what}: no Content-Length:\n{invite}"));
    assert_eq!(length, "0", "{what}: an INVITE without SDP:\n{invite}");
}

#[test]
fn hold_resume_and_release_from_the_api() {
    let mut pbx = Pbx::start();
    let mut bob = pbx.device("1002", Sipp::uas("control_uas_held.xml"));
    let alice = pbx.caller("control_uac_call.xml", "1002");
    wait_for(&mut bob, "ACK sip:", "1002 answers the call");
    let call = pbx.live_call();

    // Only the users on the call may control it, and only inside their tenant.
    let (status, body) = pbx.control("1003", &call, "hold", None);
    assert_eq!(status, 404, "a user not on the call: {body}");
    let foreign = format!(
        "/tenants/{}/users/{}/calls/{call}/hold",
        uuid::Uuid::new_v4(),
        pbx.users["1001"]
    );
    let (status, body) = pbx.tsps.api(Method::POST, &foreign, None);
    assert_eq!(status, 404, "another tenant's path: {body}");
    let (status, body) = pbx.control("1001", &call, "resume", None);
    assert_eq!(status, 409, "resume of a call not on hold: {body}");
    assert_eq!(body["error"]["code"], "wrong_state", "{body}");

    // Hold answers once 1002 accepted the re-INVITE (its scenario checks a=sendonly).
    let (status, body) = pbx.control("1001", &call, "hold", None);
    assert_eq!(status, 204, "hold: {body}");
    assert!(
        bob.messages_so_far().contains("a=sendonly"),
        "1002 received the hold re-INVITE before the API answered"
    );
    let (status, body) = pbx.control("1001", &call, "hold", None);
    assert_eq!(status, 409, "hold of a held call: {body}");
    let (status, body) = pbx.control("1001", &call, "resume", None);
    assert_eq!(status, 204, "resume: {body}");

    let (status, body) = pbx.control("1001", &call, "release", None);
    assert_eq!(status, 204, "release: {body}");
    let (alice, bob) = (alice.join(), bob.join());
    alice.assert_success("1001: call placed, then BYE from tsps and nothing else");
    bob.assert_success("1002: answered, held (sendonly), resumed (sendrecv), BYE");

    let r = pbx.record();
    assert_eq!(r.outcome, CallOutcome::Answered, "{r:#?}");
    assert_eq!(r.hangup_by, Some(Party::Caller), "{r:#?}");
    let (status, body) = pbx.control("1001", &call, "release", None);
    assert_eq!(status, 404, "an ended call: {body}");
}

#[test]
fn blind_transfer_connects_the_caller_to_the_target() {
    let mut pbx = Pbx::start();
    let mut bob = pbx.device("1002", Sipp::uas("uas_answer.xml"));
    let mut carol = pbx.device(
        "1003",
        Sipp::uas("control_uas_delayed_offer.xml").key("answer_after_ms", "300"),
    );
    let alice = pbx.caller("control_uac_transferred.xml", "1002");
    wait_for(&mut bob, "ACK sip:", "1002 answers the call");
    let call = pbx.live_call();

    let (status, body) = pbx.control("1002", &call, "transfer", Some(json!({ "target": "4711" })));
    assert_eq!(status, 422, "no such extension: {body}");
    let (status, body) = pbx.control(
        "1002",
        &call,
        "transfer",
        Some(json!({ "replaces_call": call })),
    );
    assert_eq!(status, 409, "a call cannot be joined with itself: {body}");
    let (status, body) = pbx.control("1002", &call, "transfer", Some(json!({ "target": "1003" })));
    assert_eq!(status, 204, "transfer: {body}");
    wait_for(&mut bob, "BYE sip:", "1002 is released by the transfer");
    wait_for(&mut carol, "INVITE sip:", "1003 rings");
    assert_no_offer(&first_invite(&carol), "the transfer target");
    let (status, body) = pbx.control("1002", &call, "release", None);
    assert_eq!(status, 404, "1002 left the call: {body}");

    let (alice, bob, carol) = (alice.join(), bob.join(), carol.join());
    bob.assert_success("1002: answered, then BYE on the transfer");
    carol.assert_success("1003: INVITE without SDP, answers with its offer, answer in the ACK");
    alice.assert_success("1001: re-INVITE with 1003's offer, answers, hangs up");

    let r = pbx.record();
    assert_eq!(r.outcome, CallOutcome::Answered, "{r:#?}");
    assert_eq!(r.legs.len(), 3, "caller, 1002 and 1003: {r:#?}");
    assert!(r.legs.iter().all(|l| l.answered_at.is_some()), "{r:#?}");
    assert!(
        r.decision.iter().any(|d| d == "1002: transferred to 1003"),
        "{r:#?}"
    );
}

#[test]
fn click_to_dial_rings_the_users_device_first() {
    let mut pbx = Pbx::start();
    let mut phone = pbx.device(
        "1001",
        Sipp::uas("control_uas_delayed_offer.xml").key("answer_after_ms", "1000"),
    );
    let mut bob = pbx.device("1002", Sipp::uas("uas_answer.xml"));
    let device = pbx.device_id("1001");
    let path = format!("{}/calls", pbx.user_path("1001"));

    let (status, body) = pbx.tsps.api(
        Method::POST,
        &path,
        Some(&json!({ "device_id": device, "destination": "4711" })),
    );
    assert_eq!(status, 422, "no such destination: {body}");
    let (status, body) = pbx.tsps.api(
        Method::POST,
        &path,
        Some(&json!({ "device_id": pbx.device_id("1002"), "destination": "1002" })),
    );
    assert_eq!(status, 422, "another user's device: {body}");

    let (status, body) = pbx.tsps.api(
        Method::POST,
        &path,
        Some(&json!({ "device_id": device, "destination": "1002" })),
    );
    assert_eq!(status, 201, "click-to-dial: {body}");
    let call = body["call_id"].as_str().expect("call_id").to_string();

    // 1001's own device rings first, without an offer, showing whom it calls.
    wait_for(&mut phone, "SIP/2.0 180 Ringing", "1001's device rings");
    let invite = first_invite(&phone);
    assert_no_offer(&invite, "the user's device");
    let from = common::header(&invite, "From").unwrap_or_default();
    assert!(
        from.contains("sip:1002@"),
        "From shows the destination: {from}"
    );
    assert!(
        !bob.messages_so_far().contains("INVITE sip:"),
        "1002 must not ring before 1001's device answers"
    );

    // After the device answers, 1002 rings and answers; then 1001 hangs up.
    wait_for(&mut bob, "ACK sip:", "1002 answers");
    let (status, body) = pbx.control("1001", &call, "release", None);
    assert_eq!(status, 204, "release: {body}");
    let (phone, bob) = (phone.join(), bob.join());
    phone.assert_success("1001's device: INVITE without SDP, answer in the ACK, BYE");
    bob.assert_success("1002: INVITE with the device's offer, answers, BYE");

    let r = pbx.record();
    assert_eq!(r.id.to_string(), call, "{r:#?}");
    assert_eq!(r.outcome, CallOutcome::Answered, "{r:#?}");
    assert_eq!(r.hangup_by, Some(Party::Caller), "{r:#?}");
    assert_eq!(r.caller, "1001", "{r:#?}");
    assert_eq!(r.callee, "1002", "{r:#?}");
    let [dev, dest] = r.legs.as_slice() else {
        panic!("two legs: {r:#?}")
    };
    assert_eq!(
        (dev.role, dest.role),
        (Party::Caller, Party::Callee),
        "{r:#?}"
    );
    let dev_answered = dev.answered_at.expect("the device answered");
    assert!(
        dest.started_at >= dev_answered,
        "the destination was dialled only after the device answered: {r:#?}"
    );
}

fn is_line(v: &Value, call: &str, state: &str) -> bool {
    v["type"] == "line" && v["data"]["call_id"] == call && v["data"]["state"] == state
}

#[test]
fn consultative_transfer_joins_the_held_party_with_the_second_call() {
    let mut pbx = Pbx::start();
    // 1001's phone takes both of its calls (two click-to-dials): it must get two BYEs.
    let phone = pbx.device(
        "1001",
        Sipp::uas("control_uas_delayed_offer.xml")
            .key("answer_after_ms", "1000")
            .calls(2),
    );
    let mut bob = pbx.device("1002", Sipp::uas("control_uas_join_held.xml"));
    let mut carol = pbx.device("1003", Sipp::uas("control_uas_join_remaining.xml"));
    let mut lines = pbx.events_of("1001");
    let device = pbx.device_id("1001");

    // Call 1 to 1002, answered, then held.
    let first = pbx.click_to_dial(&device, "1002");
    wait_for(&mut bob, "ACK sip:", "1002 answers");
    let (status, body) = pbx.control("1001", &first, "hold", None);
    assert_eq!(status, 204, "hold: {body}");
    lines.until(SIP_WAIT, "the first line held", |v| {
        is_line(v, &first, "held")
    });

    // Call 2 to 1003 from the same phone while call 1 is held; while the phone still
    // rings the calls cannot be joined.
    let second = pbx.click_to_dial(&device, "1003");
    let transfer = |call: &str, body: Value| pbx.control("1001", call, "transfer", Some(body));
    let (status, body) = transfer(&first, json!({ "replaces_call": second }));
    assert_eq!(status, 409, "the second call is not answered yet: {body}");
    assert_eq!(body["error"]["code"], "wrong_state", "{body}");
    wait_for(&mut carol, "ACK sip:", "1003 answers");
    lines.until(SIP_WAIT, "the second line active", |v| {
        is_line(v, &second, "active")
    });

    // Both calls are 1001's and both are answered; anything else is refused.
    let (status, body) = transfer(&second, json!({ "replaces_call": uuid::Uuid::new_v4() }));
    assert_eq!(status, 404, "no such call: {body}");
    let (status, body) = pbx.control(
        "1002",
        &second,
        "transfer",
        Some(json!({ "replaces_call": first })),
    );
    assert_eq!(status, 404, "1002 takes no part in the second call: {body}");
    let (status, body) = transfer(&second, json!({ "replaces_call": first, "target": "1003" }));
    assert_eq!(status, 422, "one of target and replaces_call: {body}");

    // The join: 1002 is asked for a fresh offer, which 1003 gets; 1001's phone gets a
    // BYE on each call.
    let (status, body) = transfer(&second, json!({ "replaces_call": first }));
    assert_eq!(status, 204, "consultative transfer: {body}");
    let (status, body) = pbx.control("1001", &second, "release", None);
    assert_eq!(status, 404, "1001 left the joined call: {body}");
    for call in [&first, &second] {
        lines.until(SIP_WAIT, "1001's lines end", |v| {
            v["type"] == "line_ended" && v["data"]["call_id"] == call.as_str()
        });
    }

    let (phone, bob, carol) = (phone.join(), bob.join(), carol.join());
    phone.assert_success("1001's phone: two calls, a BYE on each");
    bob.assert_success("1002: held, re-INVITE without SDP, offer, answer in the ACK, BYE");
    carol.assert_success("1003: re-INVITE with 1002's offer, answers, hangs up");
    assert_eq!(
        phone.messages().matches("BYE sip:").count(),
        2,
        "1001's phone got two BYEs"
    );

    let records = pbx.tsps.wait_for_call_records(DOMAIN, 2, CDR_WAIT);
    let by_id = |id: &str| {
        records
            .iter()
            .find(|r| r.id.to_string() == id)
            .unwrap_or_else(|| panic!("the record of {id}: {records:#?}"))
    };
    let (r1, r2) = (by_id(&first), by_id(&second));
    assert_eq!(r1.outcome, CallOutcome::Answered, "{r1:#?}");
    assert_eq!(r1.hangup_by, Some(Party::Caller), "1001 left: {r1:#?}");
    let joined = format!("1001: joined 1002 with call {second} (consultative transfer)");
    assert!(r1.decision.contains(&joined), "{r1:#?}");
    assert_eq!(r2.outcome, CallOutcome::Answered, "{r2:#?}");
    assert_eq!(r2.hangup_by, Some(Party::Callee), "1003 hung up: {r2:#?}");
    let joined = format!("1001: joined with 1002 of call {first} (consultative transfer)");
    assert!(r2.decision.contains(&joined), "{r2:#?}");
    assert_eq!(r2.legs.len(), 3, "1001's phone, 1003 and 1002: {r2:#?}");
    assert!(r2.legs.iter().all(|l| l.answered_at.is_some()), "{r2:#?}");
}

#[test]
fn click_to_dial_from_an_external_phone_rings_it_through_the_trunk_first() {
    let trunk_port = free_port(IpAddr::V4(CARRIER_IP), false);
    let tsps = Tsps::start(&tenant_a_yaml(trunk_port), &[]);
    let (tenant, users) = tenant_users(&tsps, DOMAIN);
    let alice = format!("/tenants/{tenant}/users/{}", users["1001"]);
    let phones = format!("{alice}/external-phones");

    // Numbers are stored in E.164 by the tenant's dialing rules (no country code here).
    let (status, body) = tsps.api(
        Method::POST,
        &phones,
        Some(&json!({ "number": "079 123 45 67", "label": "Mobile" })),
    );
    assert_eq!(
        status, 422,
        "a national number without a country code: {body}"
    );
    let (status, body) = tsps.api(
        Method::POST,
        &phones,
        Some(&json!({ "number": "0041 79 123 45 67", "label": "Mobile" })),
    );
    assert_eq!(status, 201, "external phone: {body}");
    assert_eq!(body["number"], "+41791234567", "{body}");
    let mobile = body["id"].as_str().expect("id").to_string();
    let (status, body) = tsps.api(
        Method::POST,
        &phones,
        Some(&json!({ "number": "+41791234567" })),
    );
    assert_eq!(status, 409, "the same number twice: {body}");
    let listed = tsps.api_ok(Method::GET, &phones, None);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");

    // The phone is one of 1001's devices in the live snapshot, always reachable.
    let url = format!("{}/api/v1{alice}/events/sse", tsps.http_url());
    let mut events = EventsClient::connect(Kind::Sse, &url, tsps.api_token(), None);
    let snap = events.next(SIP_WAIT);
    let devices = snap["data"]["devices"].as_array().expect("devices").clone();
    assert!(
        devices.iter().any(|d| d["device_id"] == mobile.as_str()
            && d["registered"] == true
            && d["name"] == "Mobile +41791234567"),
        "{snap}"
    );

    let bob_port = free_port(IpAddr::V4(DEVICE_IP), false);
    register(&tsps, DOMAIN, "1002", "secret1002", bob_port);
    let mut bob = tsps.spawn_sipp(Sipp::uas("uas_answer.xml").port(bob_port));
    let mut carrier = tsps.spawn_sipp(
        Sipp::uas("control_carrier_mobile.xml")
            .local(CARRIER_IP, trunk_port)
            .key("answer_after_ms", "1000"),
    );
    let (status, body) = tsps.api(
        Method::POST,
        &format!("{alice}/calls"),
        Some(&json!({ "device_id": mobile, "destination": "1002" })),
    );
    assert_eq!(status, 201, "click-to-dial from the mobile: {body}");
    let call = body["call_id"].as_str().expect("call_id").to_string();

    // The mobile rings first, through the trunk, shown the destination.
    wait_for(&mut carrier, "SIP/2.0 180 Ringing", "the mobile rings");
    let invite = first_invite(&carrier);
    assert!(
        invite.starts_with("INVITE sip:+41791234567@127.0.0.2"),
        "the mobile's number to the carrier: {invite}"
    );
    assert_no_offer(&invite, "the mobile");
    let from = common::header(&invite, "From").unwrap_or_default();
    assert!(
        from.contains("sip:1002@"),
        "From shows the destination: {from}"
    );
    assert!(
        !bob.messages_so_far().contains("INVITE sip:"),
        "1002 must not ring before the mobile answers"
    );

    wait_for(&mut bob, "ACK sip:", "1002 answers");
    let (status, body) = tsps.api(Method::POST, &format!("{alice}/calls/{call}/release"), None);
    assert_eq!(status, 204, "release: {body}");
    let (carrier, bob) = (carrier.join(), bob.join());
    carrier.assert_success("the mobile: INVITE without SDP, answer in the ACK, BYE");
    bob.assert_success("1002: INVITE with the mobile's offer, answers, BYE");

    let mut tsps = tsps;
    let records = tsps.wait_for_call_records(DOMAIN, 1, CDR_WAIT);
    let r = &records[0];
    assert_eq!(r.outcome, CallOutcome::Answered, "{r:#?}");
    assert_eq!(r.legs[0].target, "trunk:+41791234567", "{r:#?}");
    assert_eq!(r.legs[0].role, Party::Caller, "{r:#?}");
    events.close();
}

#[test]
fn answer_on_a_remote_answer_phone_makes_it_answer_by_itself() {
    let mut pbx = Pbx::start();
    // 1002's phone answers when told to (NOTIFY Event: talk); its scenario fails without.
    let device = pbx.device_id("1002");
    let path = format!("{}/devices/{device}", pbx.user_path("1002"));
    let (status, body) = pbx.tsps.api(
        Method::PUT,
        &path,
        Some(&json!({ "sip_username": "1002", "password": "secret1002", "remote_answer": true })),
    );
    assert_eq!(status, 200, "remote answer on: {body}");
    assert_eq!(body["remote_answer"], true, "{body}");
    let mut bob = pbx.device("1002", Sipp::uas("control_uas_remote_answer.xml"));
    let alice = pbx.caller("control_uac_call.xml", "1002");
    wait_for(&mut bob, "SIP/2.0 180 Ringing", "1002 rings");
    let call = pbx.live_call();

    let answer = json!({ "device_id": device });
    let (status, body) = pbx.control("1002", &call, "answer", Some(answer));
    assert_eq!(status, 204, "answer on the phone: {body}");
    wait_for(&mut bob, "ACK sip:", "1002 answered by itself");
    let notify = bob.messages_so_far();
    assert!(notify.contains("NOTIFY sip:"), "{notify}");

    let (status, body) = pbx.control("1001", &call, "release", None);
    assert_eq!(status, 204, "release: {body}");
    let (alice, bob) = (alice.join(), bob.join());
    alice.assert_success("1001: answered by 1002's phone, BYE");
    bob.assert_success("1002: NOTIFY Event: talk in the ringing dialog, answers, BYE");
    let r = pbx.record();
    assert_eq!(r.outcome, CallOutcome::Answered, "{r:#?}");
}
