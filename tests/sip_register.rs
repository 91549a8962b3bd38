//! Registrar, end to end: SIPp devices register against a real `tsps serve`, and the
//! bindings are checked where tsps keeps them (the store) and by calling the device.

mod common;

use common::{free_port, register, tenant_a_yaml, Sipp, Tsps, DEVICE_IP};
use std::net::IpAddr;
use std::time::Duration;

fn start() -> Tsps {
    Tsps::start(&tenant_a_yaml(free_port(IpAddr::V4(DEVICE_IP), false)), &[])
}

fn contact_port(contact: &str) -> Option<u16> {
    // sip:1001@127.0.0.1:40000;transport=UDP -> 40000
    let host_port = contact.split('@').nth(1)?;
    let host_port = host_port.split([';', '>']).next()?;
    host_port.rsplit_once(':')?.1.parse().ok()
}

#[test]
fn register_with_good_credentials_creates_a_binding() {
    let mut tsps = start();
    let port = free_port(IpAddr::V4(DEVICE_IP), false);
    register(&tsps, "a.test", "1001", "secret1001", port);

    let bindings = tsps.bindings("a.test");
    assert_eq!(bindings.len(), 1, "one binding expected: {bindings:#?}");
    let b = &bindings[0];
    assert_eq!(contact_port(&b.contact), Some(port), "{b:#?}");
    let remaining = b.expires_at - chrono::Utc::now();
    assert!(
        remaining > chrono::Duration::seconds(200) && remaining <= chrono::Duration::seconds(301),
        "Expires 300 was asked for, binding expires in {remaining}"
    );
}

#[test]
fn several_contacts_per_aor_are_kept() {
    let mut tsps = start();
    let first = free_port(IpAddr::V4(DEVICE_IP), false);
    let second = free_port(IpAddr::V4(DEVICE_IP), false);
    register(&tsps, "a.test", "1001", "secret1001", first);
    register(&tsps, "a.test", "1001", "secret1001", second);

    let mut ports: Vec<_> = tsps
        .bindings("a.test")
        .iter()
        .filter_map(|b| contact_port(&b.contact))
        .collect();
    ports.sort();
    let mut expected = vec![first, second];
    expected.sort();
    assert_eq!(ports, expected);
}

#[test]
fn register_with_wrong_password_is_forbidden() {
    let mut tsps = start();
    let run = tsps.sipp(Sipp::new("register_bad_password.xml").device("a.test", "1001", "wrong"));
    run.assert_success("REGISTER with a wrong password gets 401 then 403");
    assert!(
        tsps.bindings("a.test").is_empty(),
        "no binding may be created"
    );
}

#[test]
fn unknown_user_or_domain_cannot_register() {
    let mut tsps = start();
    tsps.sipp(Sipp::new("register_rejected.xml").device("a.test", "1099", "secret1001"))
        .assert_success("REGISTER of an unknown user gets 403 or 404");
    tsps.sipp(Sipp::new("register_rejected.xml").device("nowhere.test", "1001", "secret1001"))
        .assert_success("REGISTER under an unknown domain gets 403 or 404");
    assert!(tsps.bindings("a.test").is_empty());
}

#[test]
fn expires_below_minimum_gets_423() {
    let mut tsps = start();
    tsps.sipp(
        Sipp::new("register_too_brief.xml")
            .device("a.test", "1001", "secret1001")
            .key("expires", "10"),
    )
    .assert_success("REGISTER with Expires: 10 gets 423 with Min-Expires");
    assert!(tsps.bindings("a.test").is_empty());
}

#[test]
fn unregister_removes_only_that_contact() {
    let mut tsps = start();
    let keep = free_port(IpAddr::V4(DEVICE_IP), false);
    let gone = free_port(IpAddr::V4(DEVICE_IP), false);
    register(&tsps, "a.test", "1001", "secret1001", keep);
    register(&tsps, "a.test", "1001", "secret1001", gone);

    tsps.sipp(
        Sipp::new("unregister.xml")
            .device("a.test", "1001", "secret1001")
            .port(gone),
    )
    .assert_success("REGISTER with Expires: 0");

    let ports: Vec<_> = tsps
        .bindings("a.test")
        .iter()
        .filter_map(|b| contact_port(&b.contact))
        .collect();
    assert_eq!(ports, vec![keep]);
}

#[test]
fn contact_star_removes_all_contacts_and_calls_find_nobody() {
    let mut tsps = start();
    register(
        &tsps,
        "a.test",
        "1002",
        "secret1002",
        free_port(IpAddr::V4(DEVICE_IP), false),
    );
    register(
        &tsps,
        "a.test",
        "1002",
        "secret1002",
        free_port(IpAddr::V4(DEVICE_IP), false),
    );
    assert_eq!(tsps.bindings("a.test").len(), 2);

    tsps.sipp(Sipp::new("unregister_all.xml").device("a.test", "1002", "secret1002"))
        .assert_success("REGISTER Contact: * Expires: 0");
    assert!(tsps.bindings("a.test").is_empty());

    // What the user sees: 1002 is no longer reachable.
    tsps.sipp(
        Sipp::new("uac_call_unavailable.xml")
            .device("a.test", "1001", "secret1001")
            .calling("1002"),
    )
    .assert_success("a call to 1002 after it unregistered gets 480");
}

#[test]
fn registrations_survive_a_restart() {
    let mut tsps = start();
    let callee_port = free_port(IpAddr::V4(DEVICE_IP), false);
    register(&tsps, "a.test", "1002", "secret1002", callee_port);

    tsps.restart();

    let callee = tsps.spawn_sipp(Sipp::uas("uas_answer.xml").port(callee_port));
    let caller = tsps.sipp(
        Sipp::new("uac_call.xml")
            .device("a.test", "1001", "secret1001")
            .calling("1002"),
    );
    let callee = callee.join();
    caller.assert_success("caller after the restart");
    callee.assert_success("callee registered before the restart");

    let records = tsps.wait_for_call_records("a.test", 1, Duration::from_secs(10));
    assert_eq!(records[0].outcome.as_str(), "answered", "{records:#?}");
}

#[test]
fn default_challenge_offers_sha256_then_md5() {
    // The harness offers MD5 first for SIPp; the product default is SHA-256 first.
    let tsps = Tsps::start(
        &tenant_a_yaml(free_port(IpAddr::V4(DEVICE_IP), false)),
        &[("TSPS_SIP__DIGEST_ALGORITHMS", "SHA-256,MD5")],
    );
    let register = "REGISTER sip:a.test SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5999;rport;branch=z9hG4bKdefaultorder1\r\n\
        From: <sip:1001@a.test>;tag=order1\r\n\
        To: <sip:1001@a.test>\r\n\
        Call-ID: default-order-1@127.0.0.1\r\n\
        CSeq: 1 REGISTER\r\n\
        Contact: <sip:1001@127.0.0.1:5999>\r\n\
        Expires: 300\r\n\
        Max-Forwards: 70\r\n\
        Content-Length: 0\r\n\r\n";
    let resp = tsps
        .udp_final_response(register.as_bytes(), Duration::from_secs(2))
        .expect("REGISTER without credentials gets a response");
    assert_eq!(common::status_code(&resp), Some(401), "{resp}");
    let challenges: Vec<&str> = resp
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("www-authenticate:"))
        .collect();
    assert_eq!(challenges.len(), 2, "{resp}");
    assert!(challenges[0].contains("algorithm=SHA-256"), "{resp}");
    assert!(challenges[1].contains("algorithm=MD5"), "{resp}");
    for c in &challenges {
        assert!(
            c.contains("realm=\"a.test\""),
            "realm is the tenant domain: {c}"
        );
        assert!(c.contains("qop=\"auth\""), "{c}");
    }
}

#[test]
fn register_over_tcp() {
    let mut tsps = start();
    tsps.sipp(
        Sipp::new("register.xml")
            .device("a.test", "1001", "secret1001")
            .transport("t1"),
    )
    .assert_success("REGISTER over TCP");
    let bindings = tsps.bindings("a.test");
    assert_eq!(bindings.len(), 1, "{bindings:#?}");
    assert!(
        bindings[0].received.starts_with("tcp:"),
        "reached over the connection it came on: {bindings:#?}"
    );
}

/// All `WWW-Authenticate` values of a response, in order.
fn challenges(resp: &str) -> Vec<String> {
    resp.lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case("WWW-Authenticate"))
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

fn raw_register(cseq: u32, authorization: Option<&str>) -> String {
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!(
        "REGISTER sip:a.test SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-stale-{cseq}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:1001@a.test>;tag=st1\r\n\
         To: <sip:1001@a.test>\r\n\
         Call-ID: stale-nonce-test\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:1001@127.0.0.1:5999>\r\n\
         {auth}Expires: 300\r\n\
         Content-Length: 0\r\n\r\n"
    )
}

/// RFC 8760 end to end with a SHA-256 client (the library's own client-side digest,
/// since SIPp speaks only MD5), and nonce expiry: an answer computed over an expired
/// nonce gets a fresh challenge with `stale=true`, and answering that one succeeds.
#[test]
fn sha256_digest_and_stale_nonce() {
    let tsps = Tsps::start(
        &tenant_a_yaml(free_port(IpAddr::V4(DEVICE_IP), false)),
        &[
            ("TSPS_SIP__DIGEST_ALGORITHMS", "SHA-256,MD5"),
            ("TSPS_SIP__NONCE_TTL_SECS", "1"),
            ("TSPS_TESTING__CLOCK_API", "true"),
        ],
    );
    let wait = Duration::from_secs(5);
    let answer = |challenge: &str| {
        tsps::sip::digest::answer_challenge(
            challenge,
            "REGISTER",
            "sip:a.test",
            "1001",
            "secret1001",
            "c0ffee",
            1,
        )
        .expect("answer the challenge")
    };
    let first = tsps
        .udp_final_response(raw_register(1, None).as_bytes(), wait)
        .expect("a challenge");
    let offered = challenges(&first);
    assert!(offered[0].contains("algorithm=SHA-256"), "{first}");
    assert!(!offered[0].contains("stale=true"), "{first}");

    // The nonce ages past its 1 s lifetime: the platform's clock moves a minute on.
    let later = chrono::Utc::now() + chrono::Duration::minutes(1);
    tsps.api_ok(
        reqwest::Method::PUT,
        "/testing/clock",
        Some(&serde_json::json!({ "now": later.to_rfc3339() })),
    );
    let stale = tsps
        .udp_final_response(raw_register(2, Some(&answer(&offered[0]))).as_bytes(), wait)
        .expect("a response to the stale answer");
    assert!(stale.starts_with("SIP/2.0 401"), "{stale}");
    let renewed = challenges(&stale);
    assert!(renewed[0].contains("stale=true"), "{stale}");

    let ok = tsps
        .udp_final_response(raw_register(3, Some(&answer(&renewed[0]))).as_bytes(), wait)
        .expect("a response to the fresh answer");
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert!(ok.contains("<sip:1001@127.0.0.1:5999>;expires="), "{ok}");
}
