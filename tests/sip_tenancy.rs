//! Tenant isolation on SIP: two tenants with the same extensions. A call in tenant A
//! must reach A's 1002 and never B's; a device of A cannot register under B's domain;
//! an extension that exists only in B is unknown to A's devices.

mod common;

use common::{assert_quiet, free_port, register, Sipp, Tsps, DEVICE_IP};
use std::net::{IpAddr, UdpSocket};
use std::time::Duration;
use tsps_actors::model::CallOutcome;

const TWO_TENANTS: &str = r#"tenants:
  - domain: a.test
    name: Tenant A
    time_zone: Europe/Zurich
    users:
      - extension: "1001"
        display_name: Alice A
        devices:
          - sip_username: "1001"
            password: a-secret1001
      - extension: "1002"
        display_name: Bob A
        devices:
          - sip_username: "1002"
            password: a-secret1002
  - domain: b.test
    name: Tenant B
    time_zone: Europe/Berlin
    users:
      - extension: "1001"
        display_name: Alice B
        devices:
          - sip_username: "1001"
            password: b-secret1001
      - extension: "1002"
        display_name: Bob B
        devices:
          - sip_username: "1002"
            password: b-secret1002
      - extension: "2001"
        display_name: Carol B
        devices:
          - sip_username: "2001"
            password: b-secret2001
"#;

#[test]
fn a_call_in_tenant_a_reaches_a_and_never_b() {
    let mut tsps = Tsps::start(TWO_TENANTS, &[]);

    // B's 1002 registers first, then listens on a plain socket: it must stay silent.
    let b_port = free_port(IpAddr::V4(DEVICE_IP), false);
    register(&tsps, "b.test", "1002", "b-secret1002", b_port);
    let a_port = free_port(IpAddr::V4(DEVICE_IP), false);
    register(&tsps, "a.test", "1002", "a-secret1002", a_port);
    let b_phone = UdpSocket::bind((DEVICE_IP, b_port)).expect("bind B's phone port");

    let a_callee = tsps.spawn_sipp(Sipp::uas("uas_answer.xml").port(a_port));
    let caller = tsps.sipp(
        Sipp::new("uac_call.xml")
            .device("a.test", "1001", "a-secret1001")
            .calling("1002"),
    );
    let a_callee = a_callee.join();
    caller.assert_success("A's 1001 calls 1002");
    a_callee.assert_success("A's 1002 is the one that rings");
    assert_quiet(
        &tsps,
        &b_phone,
        "b.test",
        "1002",
        "B's 1002 during A's call",
    );

    let a_records = tsps.wait_for_call_records("a.test", 1, Duration::from_secs(10));
    assert_eq!(a_records.len(), 1, "{a_records:#?}");
    assert_eq!(
        a_records[0].outcome,
        CallOutcome::Answered,
        "{a_records:#?}"
    );
    assert!(
        tsps.call_records("b.test").is_empty(),
        "B has no call: {:#?}",
        tsps.call_records("b.test")
    );
}

#[test]
fn a_device_of_a_cannot_register_under_b() {
    let mut tsps = Tsps::start(TWO_TENANTS, &[]);
    // Same user name exists in B, with another password: the digest does not verify.
    tsps.sipp(Sipp::new("register_bad_password.xml").device("b.test", "1001", "a-secret1001"))
        .assert_success("A's credentials under b.test get 403");
    assert!(tsps.bindings("b.test").is_empty());
    assert!(tsps.bindings("a.test").is_empty());
}

#[test]
fn an_extension_only_b_has_is_not_found_for_a() {
    let tsps = Tsps::start(TWO_TENANTS, &[]);
    // B's 2001 is registered and would answer if tsps routed across tenants.
    let b_port = free_port(IpAddr::V4(DEVICE_IP), false);
    register(&tsps, "b.test", "2001", "b-secret2001", b_port);
    let b_phone = UdpSocket::bind((DEVICE_IP, b_port)).expect("bind B's phone port");

    tsps.sipp(
        Sipp::new("uac_call_not_found.xml")
            .device("a.test", "1001", "a-secret1001")
            .calling("2001"),
    )
    .assert_success("A's 1001 dialling 2001 gets 404");
    assert_quiet(&tsps, &b_phone, "b.test", "2001", "B's 2001");
}
