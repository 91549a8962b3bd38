//! Tenant walls at trunks (issue 10, item 1): a trunk's inbound source addresses decide
//! which tenant a call from an address belongs to, so a tenant admin cannot claim
//! them, the operator cannot give one tenant another's carrier or phones, and a phone
//! is never taken for a carrier.

mod common;

use common::browser::Browser;
use common::raw::{answer, RawUa, Req};
use common::{free_port, status_code, Tsps, DEVICE_IP};
use reqwest::Method;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

const TENANTS: &str = r#"tenants:
  - domain: a.test
    name: Tenant A
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
    dids:
      - number: "+41445550100"
        extension: "1001"
    trunks:
      - name: carrier
        peer_host: 127.0.0.2
        peer_port: 5060
        inbound_sources: ["127.0.0.2"]
  - domain: b.test
    name: Tenant B
    users:
      - extension: "2001"
        display_name: Mallory B
        role: tenant_admin
        password: mallory-secret-1
        devices:
          - sip_username: "2001"
            password: b-secret2001
    dids:
      - number: "+41445559999"
        extension: "2001"
"#;

fn tenant_id(tsps: &Tsps, domain: &str) -> String {
    common::tenant_users(tsps, domain).0
}

/// 1001 of a.test calls 1002 from `ua` without credentials: the first answer.
fn first_invite_answer(ua: &RawUa) -> String {
    ua.exchange(
        &Req {
            method: "INVITE",
            uri: "sip:1002@a.test",
            from: "1001@a.test",
            to: "1002@a.test",
            call_id: &format!("first-{}", ua.local()),
            cseq: 1,
            extra: vec![],
        },
        WAIT,
    )
    .expect("an answer to the INVITE")
}

#[test]
fn a_tenant_admin_cannot_claim_another_tenants_phone_address() {
    let mut tsps = Tsps::start(TENANTS, &[]);
    let phone_port = free_port(IpAddr::V4(DEVICE_IP), false);
    common::register(&tsps, "a.test", "1001", "a-secret1001", phone_port);
    let b = tenant_id(&tsps, "b.test");

    let mut mallory = Browser::new(&tsps);
    mallory.logged_in("b.test", "2001", "mallory-secret-1");
    let trunks = format!("/tenants/{b}/trunks");
    let grab = mallory.write(
        Method::POST,
        &trunks,
        json!({"name": "grab", "peer_host": "127.0.0.9", "inbound_sources": ["127.0.0.1"]}),
    );
    assert_eq!(
        (grab.status, grab.code()),
        (403, "forbidden"),
        "{}",
        grab.body
    );
    assert!(
        grab.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("platform operator"),
        "says who to ask: {}",
        grab.body
    );
    // Its own trunk without sources is fine; a later PUT may not add them, and one
    // without the field keeps what the operator set.
    let own = mallory.write(
        Method::POST,
        &trunks,
        json!({"name": "outbound", "peer_host": "127.0.0.9"}),
    );
    assert_eq!(own.status, 201, "{}", own.body);
    let path = format!("{trunks}/{}", own.body["id"].as_str().unwrap());
    let sneak = mallory.write(
        Method::PUT,
        &path,
        json!({"name": "outbound", "peer_host": "127.0.0.9", "inbound_sources": ["0.0.0.0/0"]}),
    );
    assert_eq!(sneak.status, 403, "{}", sneak.body);
    let renamed = mallory.write(
        Method::PUT,
        &path,
        json!({"name": "out", "peer_host": "127.0.0.9"}),
    );
    assert_eq!(renamed.status, 200, "{}", renamed.body);

    // A's phone is still challenged as a phone, and nothing lands in B's records.
    let phone = RawUa::bind(DEVICE_IP, &tsps);
    let answer = first_invite_answer(&phone);
    assert_eq!(status_code(&answer), Some(407), "{answer}");
    assert!(tsps.call_records("b.test").is_empty());
}

#[test]
fn the_operator_cannot_give_one_tenant_another_tenants_carrier_or_phones() {
    let tsps = Tsps::start(TENANTS, &[]);
    let phone_port = free_port(IpAddr::V4(DEVICE_IP), false);
    common::register(&tsps, "a.test", "1001", "a-secret1001", phone_port);
    let b = tenant_id(&tsps, "b.test");
    let trunks = format!("/tenants/{b}/trunks");
    let create = |name: &str, sources: &[&str]| {
        tsps.api(
            Method::POST,
            &trunks,
            Some(&json!({"name": name, "peer_host": "127.0.0.9", "inbound_sources": sources})),
        )
    };
    let (status, body) = create("all", &["0.0.0.0/0"]);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too wide"),
        "{body}"
    );
    // A's carrier.
    let (status, body) = create("theirs", &["127.0.0.3", "127.0.0.2"]);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    assert_eq!(
        body["error"]["details"][0]["field"], "inbound_sources[1]",
        "{body}"
    );
    // The address A's phone registered from (a /16 around it, too).
    for sources in [&["127.0.0.1"][..], &["127.0.0.0/16"][..]] {
        let (status, body) = create("phones", sources);
        assert_eq!(status, 409, "{sources:?}: {body}");
        let reasons: Vec<&str> = body["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d["reason"].as_str())
            .collect();
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("127.0.0.1, where a phone of another tenant is registered")),
            "{body}"
        );
    }
    let (status, body) = create("mine", &["127.0.0.5"]);
    assert_eq!(status, 201, "{body}");

    // The provisioning document is held to the same rule.
    let out = tsps.try_provision(
        "tenants:\n  - domain: b.test\n    name: Tenant B\n    trunks:\n      - name: grab\n        peer_host: 127.0.0.9\n        inbound_sources: [\"127.0.0.2\"]\n",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tenants[0].trunks[0]") && err.contains("another tenant's trunk"),
        "{err}"
    );
}

#[test]
fn a_phone_is_never_taken_for_a_carrier() {
    let tsps = Tsps::start(TENANTS, &[]);
    let b = tenant_id(&tsps, "b.test");
    let carrier_b = Ipv4Addr::new(127, 0, 0, 5);
    tsps.api_ok(
        Method::POST,
        &format!("/tenants/{b}/trunks"),
        Some(
            &json!({"name": "carrier", "peer_host": "127.0.0.5", "inbound_sources": ["127.0.0.5"]}),
        ),
    );
    let from_b_carrier = RawUa::bind(carrier_b, &tsps);
    // A phone of A may not register from B's carrier address.
    let register = |cseq, extra| Req {
        method: "REGISTER",
        uri: "sip:a.test",
        from: "1001@a.test",
        to: "1001@a.test",
        call_id: "reg-at-carrier",
        cseq,
        extra,
    };
    let challenge = from_b_carrier.exchange(&register(1, vec![]), WAIT).unwrap();
    let auth = answer(
        &challenge,
        "REGISTER",
        "sip:a.test",
        "1001",
        "a-secret1001",
        1,
    );
    let refused = from_b_carrier
        .exchange(&register(2, vec![format!("Authorization: {auth}")]), WAIT)
        .unwrap();
    assert_eq!(status_code(&refused), Some(403), "{refused}");

    // An INVITE from there carrying A's credentials is authenticated as A's device and
    // routed in A (1002 has no phone: 480), not taken as B's carrier (B has no such DID: 404).
    let phone = RawUa::bind(DEVICE_IP, &tsps);
    let challenge = first_invite_answer(&phone);
    let auth = answer(
        &challenge,
        "INVITE",
        "sip:1002@a.test",
        "1001",
        "a-secret1001",
        1,
    );
    let routed = from_b_carrier
        .exchange(
            &Req {
                method: "INVITE",
                uri: "sip:1002@a.test",
                from: "1001@a.test",
                to: "1002@a.test",
                call_id: "creds-at-carrier",
                cseq: 2,
                extra: vec![format!("Proxy-Authorization: {auth}")],
            },
            WAIT,
        )
        .unwrap();
    assert_eq!(status_code(&routed), Some(480), "{routed}");
}

#[test]
fn a_tenant_admin_sees_its_quotas_but_cannot_raise_them() {
    let tsps = Tsps::start(TENANTS, &[]);
    let b = tenant_id(&tsps, "b.test");
    let mut mallory = Browser::new(&tsps);
    mallory.logged_in("b.test", "2001", "mallory-secret-1");
    let quotas = format!("/tenants/{b}/quotas");
    let seen = mallory.get(&quotas);
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert_eq!(seen.body["devices"]["used"], 1, "{}", seen.body);
    let raised = mallory.write(Method::PUT, &quotas, json!({"contacts": 10_000_000}));
    assert_eq!(
        (raised.status, raised.code()),
        (403, "forbidden"),
        "{}",
        raised.body
    );
    // Nor another tenant's.
    let a = tenant_id(&tsps, "a.test");
    let theirs = mallory.get(&format!("/tenants/{a}/quotas"));
    assert_eq!(theirs.status, 404, "{}", theirs.body);
}
