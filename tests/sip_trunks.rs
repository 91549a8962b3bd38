//! Calls through a carrier trunk, end to end. The carrier is SIPp on 127.0.0.2 (the
//! trunk's inbound source and peer address); the device is SIPp on 127.0.0.1.

mod common;

use common::{free_port, register, tenant_a_yaml, Sipp, Tsps, CARRIER_IP, DEVICE_IP};
use std::net::IpAddr;
use std::time::Duration;
use tsps_actors::model::{CallDirection, CallOutcome, Party};

const CDR_WAIT: Duration = Duration::from_secs(10);

#[test]
fn did_call_from_the_carrier_rings_the_user() {
    let trunk_port = free_port(IpAddr::V4(CARRIER_IP), false);
    let mut tsps = Tsps::start(&tenant_a_yaml(trunk_port), &[]);

    // +41445550100 is 1001's DID.
    let device_port = free_port(IpAddr::V4(DEVICE_IP), false);
    register(&tsps, "a.test", "1001", "secret1001", device_port);
    let device = tsps.spawn_sipp(Sipp::uas("uas_answer.xml").port(device_port));

    let carrier = tsps.sipp(
        Sipp::new("carrier_uac_did.xml")
            .local(CARRIER_IP, free_port(IpAddr::V4(CARRIER_IP), false))
            .key("did", "+41445550100")
            .key("caller_number", "+41790000001"),
    );
    let device = device.join();
    carrier.assert_success("carrier: no challenge, 180, 200, BYE answered");
    device.assert_success("device 1001 rings for its DID and gets the BYE");

    let records = tsps.wait_for_call_records("a.test", 1, CDR_WAIT);
    assert_eq!(records.len(), 1, "{records:#?}");
    let r = &records[0];
    assert_eq!(r.direction, CallDirection::Inbound, "{r:#?}");
    assert_eq!(r.outcome, CallOutcome::Answered, "{r:#?}");
    assert_eq!(r.hangup_by, Some(Party::Caller), "{r:#?}");
    assert!(
        r.callee.contains("41445550100"),
        "callee is the DID: {r:#?}"
    );
    assert!(
        r.caller.contains("41790000001"),
        "caller is the carrier's number: {r:#?}"
    );
    assert!(
        r.callee_user_id.is_some(),
        "the DID belongs to 1001: {r:#?}"
    );
    assert!(r.caller_user_id.is_none(), "the caller is outside: {r:#?}");
}

#[test]
fn did_without_plus_reaches_the_same_user() {
    let trunk_port = free_port(IpAddr::V4(CARRIER_IP), false);
    let mut tsps = Tsps::start(&tenant_a_yaml(trunk_port), &[]);
    let device_port = free_port(IpAddr::V4(DEVICE_IP), false);
    register(&tsps, "a.test", "1001", "secret1001", device_port);
    let device = tsps.spawn_sipp(Sipp::uas("uas_answer.xml").port(device_port));

    let carrier = tsps.sipp(
        Sipp::new("carrier_uac_did.xml")
            .local(CARRIER_IP, free_port(IpAddr::V4(CARRIER_IP), false))
            .key("did", "41445550100"),
    );
    let device = device.join();
    carrier.assert_success("carrier dials the DID without +");
    device.assert_success("device 1001 answers");
    let records = tsps.wait_for_call_records("a.test", 1, CDR_WAIT);
    assert_eq!(records[0].direction, CallDirection::Inbound, "{records:#?}");
    assert_eq!(records[0].outcome, CallOutcome::Answered, "{records:#?}");
}

#[test]
fn outbound_call_answers_the_trunk_challenge() {
    let trunk_port = free_port(IpAddr::V4(CARRIER_IP), false);
    let mut tsps = Tsps::start(&tenant_a_yaml(trunk_port), &[]);

    // The carrier challenges with 401 and checks the digest against tsps/trunkpw.
    let carrier = tsps.spawn_sipp(
        Sipp::uas("carrier_uas_challenge.xml")
            .local(CARRIER_IP, trunk_port)
            .key("trunk_user", "tsps")
            .key("trunk_password", "trunkpw"),
    );
    let device = tsps.sipp(
        Sipp::new("uac_call.xml")
            .device("a.test", "1001", "secret1001")
            .calling("+41791234567"),
    );
    let carrier = carrier.join();
    device.assert_success("device: 407 from tsps, then 180 and 200 from the carrier");
    carrier.assert_success("carrier: tsps answered the 401 with valid credentials");
    assert!(
        carrier
            .messages()
            .contains("INVITE sip:+41791234567@127.0.0.2"),
        "tsps sends the dialled number to the trunk's peer:\n{}",
        carrier.messages()
    );

    let records = tsps.wait_for_call_records("a.test", 1, CDR_WAIT);
    assert_eq!(records.len(), 1, "{records:#?}");
    let r = &records[0];
    assert_eq!(r.direction, CallDirection::Outbound, "{r:#?}");
    assert_eq!(r.outcome, CallOutcome::Answered, "{r:#?}");
    assert_eq!(r.hangup_by, Some(Party::Caller), "{r:#?}");
    assert_eq!(r.caller, "1001", "{r:#?}");
    assert!(r.callee.contains("41791234567"), "{r:#?}");
}
