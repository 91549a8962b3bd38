//! Attacks on SIP authentication, replayed from outside as the black-box test of issue
//! 10 made them (docs/security.md): captured credentials replayed from another socket,
//! credentials made for another request, password guessing from one address and from
//! many, probing which domains are hosted, and a device calling into another tenant's
//! domain. Raw datagrams from chosen loopback addresses; SIPp as the real phone.

mod common;

use common::raw::{answer, headers, RawUa, Req};
use common::{free_port, status_code, tenant_a_yaml, Tsps, DEVICE_IP};
use reqwest::Method;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);
const ATTACKER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 66);

fn start() -> Tsps {
    Tsps::start(&tenant_a_yaml(free_port(IpAddr::V4(DEVICE_IP), false)), &[])
}

fn register<'a>(call_id: &'a str, cseq: u32, extra: Vec<String>) -> Req<'a> {
    Req {
        method: "REGISTER",
        uri: "sip:a.test",
        from: "1001@a.test",
        to: "1001@a.test",
        call_id,
        cseq,
        extra,
    }
}

/// Registers 1001 from `ua` with the right password; returns the Authorization sent.
fn registered(ua: &RawUa, call_id: &str) -> String {
    let challenge = ua
        .exchange(&register(call_id, 1, vec![]), WAIT)
        .expect("a challenge");
    assert_eq!(status_code(&challenge), Some(401), "{challenge}");
    let auth = answer(
        &challenge,
        "REGISTER",
        "sip:a.test",
        "1001",
        "secret1001",
        1,
    );
    let ok = ua
        .exchange(
            &register(call_id, 2, vec![format!("Authorization: {auth}")]),
            WAIT,
        )
        .expect("an answer");
    assert_eq!(status_code(&ok), Some(200), "{ok}");
    auth
}

fn metric(tsps: &Tsps, name: &str) -> f64 {
    common::sample(&tsps.metrics(), name).unwrap_or_else(|| panic!("no sample {name}"))
}

#[test]
fn a_captured_register_authorization_replayed_from_another_socket_registers_nothing() {
    let mut tsps = start();
    let phone = RawUa::bind(DEVICE_IP, &tsps);
    let auth = registered(&phone, "phone-1");

    // The attacker sends the captured header again: another socket, another Call-ID,
    // its own Contact (what the digest does not cover).
    let attacker = RawUa::bind(ATTACKER, &tsps);
    for (i, call_id) in ["replay-1", "replay-2"].into_iter().enumerate() {
        let resp = attacker
            .exchange(
                &register(
                    call_id,
                    1 + i as u32,
                    vec![format!("Authorization: {auth}")],
                ),
                WAIT,
            )
            .expect("an answer to the replay");
        assert_eq!(
            status_code(&resp),
            Some(401),
            "the replay is challenged: {resp}"
        );
        assert!(
            headers(&resp, "WWW-Authenticate").all(|c| c.contains("stale=true")),
            "a fresh nonce, stale: a phone would answer it by itself: {resp}"
        );
    }
    let bindings = tsps.bindings("a.test");
    assert_eq!(bindings.len(), 1, "{bindings:#?}");
    assert!(
        bindings[0].contact.contains(&phone.local().to_string()),
        "only the phone's own contact: {bindings:#?}"
    );
    assert_eq!(metric(&tsps, "tsps_sip_auth_total{result=\"replay\"}"), 2.0);
}

#[test]
fn an_invite_authorization_replayed_with_a_new_call_id_is_challenged_not_routed() {
    let tsps = start();
    let phone = RawUa::bind(DEVICE_IP, &tsps);
    let invite = |call_id: &'static str, cseq, extra| Req {
        method: "INVITE",
        uri: "sip:1002@a.test",
        from: "1001@a.test",
        to: "1002@a.test",
        call_id,
        cseq,
        extra,
    };
    let challenge = phone.exchange(&invite("call-1", 1, vec![]), WAIT).unwrap();
    assert_eq!(status_code(&challenge), Some(407), "{challenge}");
    let auth = answer(
        &challenge,
        "INVITE",
        "sip:1002@a.test",
        "1001",
        "secret1001",
        1,
    );
    // The real call: authenticated, routed (1002 has no phone: 480).
    let routed = phone
        .exchange(
            &invite("call-1", 2, vec![format!("Proxy-Authorization: {auth}")]),
            WAIT,
        )
        .unwrap();
    assert_eq!(status_code(&routed), Some(480), "{routed}");
    // Replayed with a new Call-ID, as toll fraud through a trunk would be: challenged.
    let attacker = RawUa::bind(ATTACKER, &tsps);
    let replay = attacker
        .exchange(
            &invite("fraud-1", 2, vec![format!("Proxy-Authorization: {auth}")]),
            WAIT,
        )
        .unwrap();
    assert_eq!(status_code(&replay), Some(407), "{replay}");
    assert!(replay.contains("stale=true"), "{replay}");
}

#[test]
fn credentials_made_for_another_request_uri_are_400() {
    let tsps = start();
    let phone = RawUa::bind(DEVICE_IP, &tsps);
    let invite = |uri: &'static str, cseq, extra| Req {
        method: "INVITE",
        uri,
        from: "1001@a.test",
        to: "1002@a.test",
        call_id: "uri-1",
        cseq,
        extra,
    };
    let challenge = phone
        .exchange(&invite("sip:1002@a.test", 1, vec![]), WAIT)
        .unwrap();
    let auth = answer(
        &challenge,
        "INVITE",
        "sip:1002@a.test",
        "1001",
        "secret1001",
        1,
    );
    // The same answer on an INVITE to a premium number.
    let resp = phone
        .exchange(
            &invite(
                "sip:+19005550100@a.test",
                2,
                vec![format!("Proxy-Authorization: {auth}")],
            ),
            WAIT,
        )
        .unwrap();
    assert_eq!(status_code(&resp), Some(400), "{resp}");
}

/// The REGISTER of attempt `i` from `ua` with `password`, after its challenge.
fn answered_register(ua: &RawUa, i: u32, password: &str) -> (String, String) {
    let call_id = format!("guess-{}-{i}", ua.local());
    let challenge = ua
        .exchange(&register(&call_id, 1, vec![]), WAIT)
        .expect("unauthenticated requests are still challenged");
    let auth = answer(&challenge, "REGISTER", "sip:a.test", "1001", password, 1);
    (call_id, format!("Authorization: {auth}"))
}

/// One guess: REGISTER, 401, REGISTER with a password that is refused. Returns the
/// answer to the guess (None: no answer at all, proven by a later OPTIONS' answer).
fn guess(ua: &RawUa, i: u32, password: &str) -> Option<String> {
    let (call_id, auth) = answered_register(ua, i, password);
    ua.exchange_or_silence(&register(&call_id, 2, vec![auth]), WAIT)
}

/// A REGISTER with the right password; its answer (a 200 comes after the user actor's,
/// so this waits for the answer itself).
fn login(ua: &RawUa, i: u32) -> String {
    let (call_id, auth) = answered_register(ua, i, "secret1001");
    ua.exchange(&register(&call_id, 2, vec![auth]), WAIT)
        .expect("an answer to the right password")
}

#[test]
fn password_guessing_from_one_address_is_cut_off_while_the_phone_keeps_registering() {
    let tsps = start();
    // The real phone is registered (and so known) before the attack starts.
    let phone = free_port(IpAddr::V4(DEVICE_IP), false);
    common::register(&tsps, "a.test", "1001", "secret1001", phone);
    let attacker = RawUa::bind(ATTACKER, &tsps);
    let answers: Vec<Option<u16>> = (0..60)
        .map(|i| guess(&attacker, i, &format!("guess{i}")).and_then(|r| status_code(&r)))
        .collect();
    let refused = answers.iter().filter(|a| **a == Some(403)).count();
    let silent = answers.iter().filter(|a| a.is_none()).count();
    // The source's burst (20) and one more, then nothing: the guesses go unanswered.
    assert_eq!((refused, silent), (21, 39), "{answers:?}");
    // The right password from the attacker's address is no way in either.
    assert_eq!(guess(&attacker, 100, "secret1001"), None);

    // The real phone, elsewhere, refreshes its registration as ever (SIPp).
    common::register(&tsps, "a.test", "1001", "secret1001", phone);

    assert!(metric(&tsps, "tsps_sip_auth_total{result=\"blocked_source\"}") >= 40.0);
    assert_eq!(
        metric(&tsps, "tsps_sip_auth_blocked{scope=\"source\"}"),
        1.0
    );

    // The operator sees the block and lifts it.
    let blocks = tsps.api_ok(Method::GET, "/security/blocks", None);
    assert_eq!(blocks["sources"][0]["source"], "127.0.0.66", "{blocks}");
    assert_eq!(blocks["sources"][0]["strikes"], 1, "{blocks}");
    let (status, _) = tsps.api(Method::DELETE, "/security/blocks/sources/127.0.0.66", None);
    assert_eq!(status, 204);
    let (status, body) = tsps.api(Method::DELETE, "/security/blocks/sources/127.0.0.66", None);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    // The account was locked for unknown sources by the same guesses; lifted too, the
    // right password works from the attacker's address again.
    let tenant = blocks["accounts"][0]["tenant_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = tsps.api(
        Method::DELETE,
        &format!("/security/blocks/accounts/{tenant}/1001"),
        None,
    );
    assert_eq!(status, 204);
    let after = login(&attacker, 101);
    assert_eq!(status_code(&after), Some(200), "{after}");
}

#[test]
fn guesses_spread_over_many_addresses_lock_the_account_but_not_its_phone() {
    let tsps = start();
    let phone = RawUa::bind(DEVICE_IP, &tsps);
    registered(&phone, "phone-1");
    // Thirty addresses, one guess each: no address comes near its own limit.
    for i in 0..30u8 {
        let ua = RawUa::bind(Ipv4Addr::new(127, 0, 1, i + 1), &tsps);
        let resp = guess(&ua, 0, "guess").expect("each guess is answered");
        assert_eq!(status_code(&resp), Some(403), "{resp}");
    }
    assert_eq!(
        metric(&tsps, "tsps_sip_auth_blocked{scope=\"account\"}"),
        1.0
    );
    // The right password from a new address is refused while the block lasts...
    let newcomer = RawUa::bind(Ipv4Addr::new(127, 0, 1, 200), &tsps);
    let refused = guess(&newcomer, 0, "secret1001").unwrap();
    assert_eq!(status_code(&refused), Some(403), "{refused}");
    // ...the phone that registered before keeps its registration fresh.
    registered(&phone, "phone-2");
    let blocks = tsps.api_ok(Method::GET, "/security/blocks", None);
    assert_eq!(blocks["accounts"][0]["username"], "1001", "{blocks}");
    let tenant = blocks["accounts"][0]["tenant_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = tsps.api(
        Method::DELETE,
        &format!("/security/blocks/accounts/{tenant}/1001"),
        None,
    );
    assert_eq!(status, 204);
    let ok = login(&newcomer, 1);
    assert_eq!(status_code(&ok), Some(200), "{ok}");
}

#[test]
fn an_outsider_cannot_tell_hosted_domains_from_others() {
    let tsps = start();
    let ua = RawUa::bind(ATTACKER, &tsps);
    for domain in ["a.test", "nobody.test"] {
        let aor = format!("1001@{domain}");
        let uri = format!("sip:{domain}");
        let req = Req {
            method: "REGISTER",
            uri: &uri,
            from: &aor,
            to: &aor,
            call_id: domain,
            cseq: 1,
            extra: vec![],
        };
        let challenge = ua.exchange(&req, WAIT).unwrap();
        assert_eq!(status_code(&challenge), Some(401), "{domain}: {challenge}");
        let auth = answer(&challenge, "REGISTER", &uri, "1001", "wrong", 1);
        let refused = ua
            .exchange(
                &Req {
                    cseq: 2,
                    extra: vec![format!("Authorization: {auth}")],
                    ..req.clone()
                },
                WAIT,
            )
            .unwrap();
        assert_eq!(status_code(&refused), Some(403), "{domain}: {refused}");

        let callee = format!("1002@{domain}");
        let invite_uri = format!("sip:{callee}");
        let invite = ua
            .exchange(
                &Req {
                    method: "INVITE",
                    uri: &invite_uri,
                    to: &callee,
                    call_id: &format!("invite-{domain}"),
                    ..req.clone()
                },
                WAIT,
            )
            .unwrap();
        assert_eq!(status_code(&invite), Some(407), "{domain}: {invite}");
    }
}

const TWO_TENANTS: &str = r#"tenants:
  - domain: a.test
    name: Tenant A
    users:
      - extension: "1002"
        display_name: Bob A
        devices:
          - sip_username: "1002"
            password: a-secret1002
  - domain: b.test
    name: Tenant B
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
"#;

#[test]
fn a_device_dialling_into_another_tenants_domain_reaches_nobody() {
    let tsps = Tsps::start(TWO_TENANTS, &[]);
    // B's own 1002 has a phone, which must not ring either.
    let b_phone = free_port(IpAddr::V4(DEVICE_IP), false);
    common::register(&tsps, "b.test", "1002", "b-secret1002", b_phone);
    let alice_b = RawUa::bind(DEVICE_IP, &tsps);
    let invite = |cseq, extra| Req {
        method: "INVITE",
        uri: "sip:1002@a.test",
        from: "1001@b.test",
        to: "1002@a.test",
        call_id: "cross-1",
        cseq,
        extra,
    };
    let challenge = alice_b.exchange(&invite(1, vec![]), WAIT).unwrap();
    assert!(challenge.contains("realm=\"b.test\""), "{challenge}");
    let auth = answer(
        &challenge,
        "INVITE",
        "sip:1002@a.test",
        "1001",
        "b-secret1001",
        1,
    );
    let resp = alice_b
        .exchange(
            &invite(2, vec![format!("Proxy-Authorization: {auth}")]),
            WAIT,
        )
        .unwrap();
    assert_eq!(status_code(&resp), Some(404), "{resp}");
}
