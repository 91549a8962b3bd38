//! The authenticator's decisions, one per row of the attacks it answers.

use super::guard::{Guard, GuardSettings};
use super::*;
use crate::sip::digest::{answer_challenge, ha1_md5, ha1_sha256};
use tsps_actors::model::{DigestAlgorithm, Tenant};
use tsps_actors::{DeviceId, UserId};

const REALM: &str = "a.test";
const T0: u64 = 1_700_000_000_000;
const BOTH: [Algorithm; 2] = [Algorithm::Md5, Algorithm::Sha256];

fn directory() -> Directory {
    let tenant = TenantId::for_test(1);
    Directory::new(
        vec![Tenant {
            id: tenant,
            domain: REALM.into(),
            name: "A".into(),
            time_zone: "UTC".into(),
        }],
        vec![],
        vec![Device {
            id: DeviceId::for_test(1),
            tenant_id: tenant,
            user_id: UserId::for_test(1),
            sip_username: "1001".into(),
            ha1_md5: ha1_md5("1001", REALM, "secret1001"),
            ha1_sha256: ha1_sha256("1001", REALM, "secret1001"),
            remote_answer: false,
            digest_algorithms: vec![],
        }],
        vec![],
        vec![],
    )
}

fn authenticator() -> Authenticator {
    Authenticator::new(
        NonceKeeper::new([3; 32], 300),
        Arc::new(Guard::new(GuardSettings::default())),
        vec![Algorithm::Md5, Algorithm::Sha256],
    )
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The Authorization a phone sends for `method` to `uri` after a challenge at `now`.
fn answer(
    auth: &Authenticator,
    method: &str,
    uri: &str,
    user: &str,
    password: &str,
    nc: u32,
    now: u64,
) -> String {
    let challenge = auth.challenges(REALM, now, false, &BOTH).remove(0);
    answer_challenge(&challenge, method, uri, user, password, "cn", nc).unwrap()
}

fn attempt<'a>(method: &'a str, uri: &'a str, creds: &'a [String], source: &str) -> Attempt<'a> {
    Attempt {
        method,
        request_uri: uri,
        credentials: creds.iter().map(String::as_str).collect(),
        source: ip(source),
        realm: REALM,
        tenant: Some(TenantId::for_test(1)),
        claimed: Some("1001"),
    }
}

fn accepted(d: &Decision) -> bool {
    matches!(d, Decision::Accept(dev) if dev.sip_username == "1001")
}

#[test]
fn a_right_answer_is_accepted_once_and_its_replay_challenged() {
    let (auth, dir) = (authenticator(), directory());
    let creds = [answer(
        &auth,
        "REGISTER",
        "sip:a.test",
        "1001",
        "secret1001",
        1,
        T0,
    )];
    let a = attempt("REGISTER", "sip:a.test", &creds, "127.0.0.1");
    assert!(accepted(&auth.decide(&a, &dir, T0)));
    // The captured header from another socket (another Call-ID, another Contact: the
    // digest covers neither).
    let replay = attempt("REGISTER", "sip:a.test", &creds, "127.0.0.66");
    for later in [T0 + 500, T0 + 30_000] {
        assert_eq!(
            auth.decide(&replay, &dir, later),
            Decision::Challenge {
                stale: true,
                offer: BOTH.to_vec()
            }
        );
    }
    assert_eq!(auth.stats().total(AuthOutcome::Replay), 2);
    // The phone's own refresh counts on and passes.
    let next = [answer_with_nonce_of(&creds[0], "REGISTER", "sip:a.test", 2)];
    assert!(accepted(&auth.decide(
        &attempt("REGISTER", "sip:a.test", &next, "127.0.0.1"),
        &dir,
        T0 + 60_000
    )));
}

/// The phone's next request with the nonce of `previous` and nonce count `nc`.
fn answer_with_nonce_of(previous: &str, method: &str, uri: &str, nc: u32) -> String {
    let c = digest::parse_credentials(previous).unwrap();
    let challenge = format!(
        "Digest realm=\"{}\", nonce=\"{}\", algorithm={}, qop=\"auth\"",
        c.realm, c.nonce, c.algorithm
    );
    answer_challenge(&challenge, method, uri, "1001", "secret1001", "cn", nc).unwrap()
}

#[test]
fn an_invite_answer_replayed_with_a_new_call_id_does_not_ring() {
    let (auth, dir) = (authenticator(), directory());
    let creds = [answer(
        &auth,
        "INVITE",
        "sip:1002@a.test",
        "1001",
        "secret1001",
        1,
        T0,
    )];
    let a = attempt("INVITE", "sip:1002@a.test", &creds, "127.0.0.1");
    assert!(accepted(&auth.decide(&a, &dir, T0)));
    assert_eq!(
        auth.decide(&a, &dir, T0 + 1),
        Decision::Challenge {
            stale: true,
            offer: BOTH.to_vec()
        }
    );
}

#[test]
fn an_answer_made_for_another_request_uri_is_400() {
    let (auth, dir) = (authenticator(), directory());
    let creds = [answer(
        &auth,
        "INVITE",
        "sip:1002@a.test",
        "1001",
        "secret1001",
        1,
        T0,
    )];
    // Sent to a premium number: the digest still names 1002.
    let a = attempt("INVITE", "sip:+19005550100@a.test", &creds, "127.0.0.1");
    assert_eq!(auth.decide(&a, &dir, T0), Decision::Refuse(400));
    // The same resource written differently is the same.
    let b = attempt(
        "INVITE",
        "sip:1002@A.TEST:5060;transport=udp",
        &creds,
        "127.0.0.1",
    );
    assert!(accepted(&auth.decide(&b, &dir, T0)));
}

#[test]
fn a_digest_signed_for_the_server_is_400_unless_the_operator_allows_it() {
    // SIPp signs every request for the server's address (its -auth_uri is one value).
    let sign = |auth: &Authenticator| {
        [answer(
            auth,
            "INVITE",
            "sip:127.0.0.1:5060",
            "1001",
            "secret1001",
            1,
            T0,
        )]
    };
    let (strict, dir) = (authenticator(), directory());
    let creds = sign(&strict);
    let a = attempt("INVITE", "sip:1002@a.test", &creds, "127.0.0.1");
    assert_eq!(strict.decide(&a, &dir, T0), Decision::Refuse(400));

    let lenient = authenticator().allow_server_digest_uri(true);
    let creds = sign(&lenient);
    let a = attempt("INVITE", "sip:1002@a.test", &creds, "127.0.0.1");
    assert!(accepted(&lenient.decide(&a, &dir, T0)));
    // Still once: the nonce count refuses the replay.
    assert!(!accepted(&lenient.decide(&a, &dir, T0 + 1)));
    // A digest naming another user's resource is still another request.
    let other = [answer(
        &lenient,
        "INVITE",
        "sip:1003@a.test",
        "1001",
        "secret1001",
        1,
        T0,
    )];
    let b = attempt("INVITE", "sip:1002@a.test", &other, "127.0.0.1");
    assert_eq!(lenient.decide(&b, &dir, T0), Decision::Refuse(400));
}

#[test]
fn another_method_with_the_same_answer_is_a_wrong_password() {
    let (auth, dir) = (authenticator(), directory());
    let creds = [answer(
        &auth,
        "REGISTER",
        "sip:a.test",
        "1001",
        "secret1001",
        1,
        T0,
    )];
    let a = attempt("INVITE", "sip:a.test", &creds, "127.0.0.1");
    assert_eq!(auth.decide(&a, &dir, T0), Decision::Refuse(403));
}

#[test]
fn unknown_realms_are_challenged_like_hosted_ones() {
    let (auth, dir) = (authenticator(), directory());
    let none: [String; 0] = [];
    let mut a = attempt("REGISTER", "sip:nobody.test", &none, "127.0.0.1");
    a.realm = "nobody.test";
    a.tenant = None;
    assert_eq!(
        auth.decide(&a, &dir, T0),
        Decision::Challenge {
            stale: false,
            offer: BOTH.to_vec()
        }
    );
    let challenge = auth.challenges("nobody.test", T0, false, &BOTH).remove(0);
    let creds = [answer_challenge(
        &challenge,
        "REGISTER",
        "sip:nobody.test",
        "1001",
        "x",
        "cn",
        1,
    )
    .unwrap()];
    a.credentials = creds.iter().map(String::as_str).collect();
    assert_eq!(auth.decide(&a, &dir, T0), Decision::Refuse(403));
}

#[test]
fn guessing_from_one_source_is_dropped_while_the_phone_registers() {
    let (auth, dir) = (authenticator(), directory());
    let attacker = "192.0.2.66";
    let mut answers = Vec::new();
    for i in 0..100u64 {
        let guess = [answer(
            &auth,
            "REGISTER",
            "sip:a.test",
            "1001",
            &format!("guess{i}"),
            1,
            T0 + i,
        )];
        answers.push(auth.decide(
            &attempt("REGISTER", "sip:a.test", &guess, attacker),
            &dir,
            T0 + i,
        ));
    }
    let refused = answers
        .iter()
        .filter(|d| **d == Decision::Refuse(403))
        .count();
    let ignored = answers.iter().filter(|d| **d == Decision::Ignore).count();
    // The source's burst of twenty; one of them tips the account too (burst of ten):
    // guesses after it are answered 403 unchecked, then the source is dropped.
    assert_eq!(refused, 21, "{answers:?}");
    assert_eq!(ignored, 79);
    // Even the right password from the attacker's address gets nothing now.
    let right = [answer(
        &auth,
        "REGISTER",
        "sip:a.test",
        "1001",
        "secret1001",
        1,
        T0 + 200,
    )];
    assert_eq!(
        auth.decide(
            &attempt("REGISTER", "sip:a.test", &right, attacker),
            &dir,
            T0 + 200
        ),
        Decision::Ignore
    );
    assert!(auth.stats().total(AuthOutcome::BlockedSource) >= 79);
}

#[test]
fn an_account_under_attack_from_many_sources_still_takes_its_phone() {
    let (auth, dir) = (authenticator(), directory());
    let phone = "127.0.0.1";
    let creds = [answer(
        &auth,
        "REGISTER",
        "sip:a.test",
        "1001",
        "secret1001",
        1,
        T0,
    )];
    assert!(accepted(&auth.decide(
        &attempt("REGISTER", "sip:a.test", &creds, phone),
        &dir,
        T0
    )));
    for i in 0..30u64 {
        let source = format!("198.51.100.{i}");
        let guess = [answer(
            &auth,
            "REGISTER",
            "sip:a.test",
            "1001",
            "guess",
            1,
            T0 + i,
        )];
        auth.decide(
            &attempt("REGISTER", "sip:a.test", &guess, &source),
            &dir,
            T0 + i,
        );
    }
    assert!(auth.stats().total(AuthOutcome::BlockedAccount) > 0);
    // A new source with the right password is refused while the block lasts...
    let right = [answer(
        &auth,
        "REGISTER",
        "sip:a.test",
        "1001",
        "secret1001",
        1,
        T0 + 100,
    )];
    assert_eq!(
        auth.decide(
            &attempt("REGISTER", "sip:a.test", &right, "198.51.100.200"),
            &dir,
            T0 + 100
        ),
        Decision::Refuse(403)
    );
    // ...the phone is not.
    let refresh = [answer(
        &auth,
        "REGISTER",
        "sip:a.test",
        "1001",
        "secret1001",
        1,
        T0 + 101,
    )];
    assert!(accepted(&auth.decide(
        &attempt("REGISTER", "sip:a.test", &refresh, phone),
        &dir,
        T0 + 101
    )));
}

#[test]
fn an_algorithm_not_offered_is_challenged_again() {
    let auth = Authenticator::new(
        NonceKeeper::new([3; 32], 300),
        Arc::new(Guard::new(GuardSettings::default())),
        vec![Algorithm::Sha256],
    );
    let dir = directory();
    let nonce_from = auth
        .challenges(REALM, T0, false, &[Algorithm::Sha256])
        .remove(0);
    let md5 = nonce_from.replace("SHA-256", "MD5");
    let creds = [answer_challenge(
        &md5,
        "REGISTER",
        "sip:a.test",
        "1001",
        "secret1001",
        "cn",
        1,
    )
    .unwrap()];
    assert_eq!(
        auth.decide(
            &attempt("REGISTER", "sip:a.test", &creds, "127.0.0.1"),
            &dir,
            T0
        ),
        Decision::Challenge {
            stale: false,
            offer: vec![Algorithm::Sha256]
        }
    );
}

#[test]
fn same_resource_compares_what_names_the_target() {
    assert!(same_resource("sip:1002@a.test", "sip:1002@a.test:5060"));
    assert!(same_resource("sip:%2B41@a.test", "sip:+41@a.test"));
    assert!(same_resource("sip:a.test;transport=tcp", "sip:a.test"));
    assert!(!same_resource("sip:1002@a.test", "sip:1003@a.test"));
    assert!(!same_resource("sip:a.test", "sip:b.test"));
    assert!(!same_resource("sip:a.test:5070", "sip:a.test"));
    assert!(!same_resource("sips:a.test", "sip:a.test"));
    assert!(!same_resource("garbage", "sip:a.test"));
}

/// A phone that knows only MD5 (baresip 1.0 fails when SHA-256 is offered beside it)
/// is offered MD5 alone; the others keep the platform's list.
#[test]
fn a_device_is_challenged_with_its_own_algorithms() {
    let auth = Authenticator::new(
        NonceKeeper::new([3; 32], 300),
        Arc::new(Guard::new(GuardSettings::default())),
        vec![Algorithm::Sha256, Algorithm::Md5],
    );
    let tenant = TenantId::for_test(1);
    let device = |n: u128, name: &str, algorithms: Vec<DigestAlgorithm>| Device {
        id: DeviceId::for_test(n),
        tenant_id: tenant,
        user_id: UserId::for_test(n),
        sip_username: name.into(),
        ha1_md5: ha1_md5(name, REALM, "pw"),
        ha1_sha256: ha1_sha256(name, REALM, "pw"),
        remote_answer: false,
        digest_algorithms: algorithms,
    };
    let dir = Directory::new(
        vec![Tenant {
            id: tenant,
            domain: REALM.into(),
            name: "A".into(),
            time_zone: "UTC".into(),
        }],
        vec![],
        vec![
            device(1, "baresip", vec![DigestAlgorithm::Md5]),
            device(2, "desk", vec![]),
        ],
        vec![],
        vec![],
    );
    let none: [String; 0] = [];
    let mut a = attempt("REGISTER", "sip:a.test", &none, "127.0.0.1");
    a.claimed = Some("baresip");
    assert_eq!(
        auth.decide(&a, &dir, T0),
        Decision::Challenge {
            stale: false,
            offer: vec![Algorithm::Md5]
        }
    );
    a.claimed = Some("desk");
    assert_eq!(
        auth.decide(&a, &dir, T0),
        Decision::Challenge {
            stale: false,
            offer: vec![Algorithm::Sha256, Algorithm::Md5]
        }
    );
    // The MD5-only phone answering with SHA-256 (a nonce it got elsewhere) is challenged
    // again with its own list; its MD5 answer passes.
    let sha = auth
        .challenges(REALM, T0, false, &[Algorithm::Sha256])
        .remove(0);
    let creds =
        [answer_challenge(&sha, "REGISTER", "sip:a.test", "baresip", "pw", "cn", 1).unwrap()];
    let mut a = attempt("REGISTER", "sip:a.test", &creds, "127.0.0.1");
    a.claimed = Some("baresip");
    assert_eq!(
        auth.decide(&a, &dir, T0),
        Decision::Challenge {
            stale: false,
            offer: vec![Algorithm::Md5]
        }
    );
    let md5 = auth
        .challenges(REALM, T0, false, &[Algorithm::Md5])
        .remove(0);
    let creds =
        [answer_challenge(&md5, "REGISTER", "sip:a.test", "baresip", "pw", "cn", 1).unwrap()];
    let a = attempt("REGISTER", "sip:a.test", &creds, "127.0.0.1");
    assert!(
        matches!(auth.decide(&a, &dir, T0), Decision::Accept(d) if d.sip_username == "baresip")
    );
}
