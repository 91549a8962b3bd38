use super::*;
use proptest::prelude::*;

const SECRET: [u8; 32] = [7; 32];
const NOW: u64 = 1_700_000_000;

fn keeper() -> NonceKeeper {
    NonceKeeper::new(SECRET, 300)
}

#[test]
fn rfc2617_example_md5_with_qop() {
    // RFC 2617 §3.5.
    let creds = parse_credentials(
        r#"Digest username="Mufasa", realm="testrealm@host.com",
           nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html",
           qop=auth, nc=00000001, cnonce="0a4f113b",
           response="6629fae49393a05397450978507c4ef1",
           opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
    )
    .unwrap();
    assert_eq!(creds.algorithm, Algorithm::Md5);
    assert_eq!(
        creds.opaque.as_deref(),
        Some("5ccc069c403ebaf9f0171e9517f40e41")
    );
    let ha1 = ha1_md5("Mufasa", "testrealm@host.com", "Circle Of Life");
    let got = response(
        creds.algorithm,
        &ha1,
        &creds.nonce,
        "GET",
        &creds.uri,
        Some(("00000001", "0a4f113b")),
    );
    assert_eq!(got, "6629fae49393a05397450978507c4ef1");
    assert_eq!(got, creds.response);
}

#[test]
fn md5_without_qop() {
    // Expected value from python hashlib (RFC 2069 form of the RFC 2617 example).
    let ha1 = ha1_md5("Mufasa", "testrealm@host.com", "Circle Of Life");
    let got = response(
        Algorithm::Md5,
        &ha1,
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "GET",
        "/dir/index.html",
        None,
    );
    assert_eq!(got, "670fd8c2df070c60b045671b8b24ff02");
}

#[test]
fn sha256_vectors() {
    // Computed independently with python hashlib; the first one equals RFC 7616 §3.9.1.
    let ha1 = ha1_sha256("Mufasa", "http-auth@example.org", "Circle of Life");
    assert_eq!(
        ha1,
        "7987c64c30e25f1b74be53f966b49b90f2808aa92faf9a00262392d7b4794232"
    );
    let got = response(
        Algorithm::Sha256,
        &ha1,
        "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        "GET",
        "/dir/index.html",
        Some(("00000001", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")),
    );
    assert_eq!(
        got,
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
    let ha1 = ha1_sha256("alice", "tsps.test", "s3cret");
    assert_eq!(
        ha1,
        "bece7f95902834e7b36401dd86ae5ed60b431232bcdc3200e6d80c451013a121"
    );
    let got = response(
        Algorithm::Sha256,
        &ha1,
        "abc123",
        "REGISTER",
        "sip:tsps.test",
        None,
    );
    assert_eq!(
        got,
        "574614531f62382657930b6dec8261ca7e83c92d8188e3db8237504b61e40901"
    );
}

fn challenge_for(k: &NonceKeeper, alg: Algorithm, stale: bool) -> String {
    let all = k.challenges("tsps.test", NOW, stale);
    let wanted = format!("algorithm={}", alg.name());
    all.into_iter().find(|c| c.contains(&wanted)).unwrap()
}

fn answer(k: &NonceKeeper, alg: Algorithm, password: &str) -> Credentials {
    let ch = challenge_for(k, alg, false);
    let value = answer_challenge(
        &ch,
        "REGISTER",
        "sip:tsps.test",
        "alice",
        password,
        "c-nonce/1",
        1,
    )
    .unwrap();
    parse_credentials(&value).unwrap()
}

#[test]
fn challenges_offer_sha256_first_then_md5() {
    let all = keeper().challenges("tsps.test", NOW, false);
    assert_eq!(all.len(), 2);
    assert!(all[0].starts_with("Digest realm=\"tsps.test\", nonce=\""));
    assert!(all[0].contains("algorithm=SHA-256"));
    assert!(all[1].contains("algorithm=MD5"));
    for c in &all {
        assert!(c.contains("qop=\"auth\""));
        assert!(!c.contains("stale"));
        let parsed = parse_challenge(c).unwrap();
        assert_eq!(parsed.realm, "tsps.test");
        assert_eq!(parsed.qop, vec!["auth".to_owned()]);
        assert!(!parsed.stale);
    }
    let stale = keeper().challenges("tsps.test", NOW, true);
    assert!(stale.iter().all(|c| c.ends_with(", stale=true")));
    assert!(parse_challenge(&stale[0]).unwrap().stale);
}

#[test]
fn round_trip_both_algorithms() {
    let k = keeper();
    for alg in [Algorithm::Md5, Algorithm::Sha256] {
        let creds = answer(&k, alg, "s3cret");
        assert_eq!(creds.algorithm, alg);
        assert_eq!(creds.qop.as_deref(), Some("auth"));
        assert_eq!(creds.nc.as_deref(), Some("00000001"));
        assert_eq!(creds.cnonce.as_deref(), Some("c-nonce/1"));
        let ha1 = alg.ha1("alice", "tsps.test", "s3cret");
        // A different method changes HA2.
        assert_eq!(k.verify(&creds, "INVITE", &ha1, NOW), Verdict::BadResponse);
        // The HA1 of the other algorithm does not fit.
        let other = match alg {
            Algorithm::Md5 => Algorithm::Sha256,
            Algorithm::Sha256 => Algorithm::Md5,
        };
        let wrong_ha1 = other.ha1("alice", "tsps.test", "s3cret");
        assert_eq!(
            k.verify(&creds, "REGISTER", &wrong_ha1, NOW),
            Verdict::BadResponse
        );
        // Refused answers do not use up the count: the right one still passes, once.
        assert_eq!(k.verify(&creds, "REGISTER", &ha1, NOW + 300), Verdict::Ok);
        assert_eq!(k.verify(&creds, "REGISTER", &ha1, NOW), Verdict::Replay);
    }
}

/// The answer to `challenge` with nonce count `nc`.
fn answer_nc(challenge: &str, nc: u32) -> Credentials {
    let value = answer_challenge(
        challenge,
        "REGISTER",
        "sip:tsps.test",
        "alice",
        "s3cret",
        "c-nonce/1",
        nc,
    )
    .unwrap();
    parse_credentials(&value).unwrap()
}

#[test]
fn each_nonce_count_is_accepted_once_and_in_order() {
    let k = keeper();
    let ha1 = ha1_md5("alice", "tsps.test", "s3cret");
    let ch = challenge_for(&k, Algorithm::Md5, false);
    let first = answer_nc(&ch, 1);
    assert_eq!(k.verify(&first, "REGISTER", &ha1, NOW), Verdict::Ok);
    // The captured header sent again (another socket, another Call-ID: the digest
    // does not cover them) is a replay.
    assert_eq!(k.verify(&first, "REGISTER", &ha1, NOW + 1), Verdict::Replay);
    // The user agent's next request with the same nonce counts on.
    assert_eq!(
        k.verify(&answer_nc(&ch, 2), "REGISTER", &ha1, NOW + 2),
        Verdict::Ok
    );
    // Counts may skip (requests lost on the way) but never go back.
    assert_eq!(
        k.verify(&answer_nc(&ch, 7), "REGISTER", &ha1, NOW + 3),
        Verdict::Ok
    );
    assert_eq!(
        k.verify(&answer_nc(&ch, 5), "REGISTER", &ha1, NOW + 4),
        Verdict::Replay
    );
    // A wrong password with a fresh count is still a wrong password.
    let mut guessed = answer_nc(&ch, 8);
    guessed.response = "0".repeat(32);
    assert_eq!(
        k.verify(&guessed, "REGISTER", &ha1, NOW + 5),
        Verdict::BadResponse
    );
    assert_eq!(
        k.verify(&answer_nc(&ch, 8), "REGISTER", &ha1, NOW + 5),
        Verdict::Ok
    );
}

#[test]
fn a_nonce_whose_slot_went_to_a_newer_one_is_stale() {
    let k = NonceKeeper::with_slots(SECRET, 300, 4);
    let ha1 = ha1_md5("alice", "tsps.test", "s3cret");
    let old = challenge_for(&k, Algorithm::Md5, false);
    // Four more nonces: the ring of four slots has come round to the first one's.
    for _ in 0..4 {
        k.nonce("tsps.test", NOW);
    }
    assert_eq!(
        k.verify(&answer_nc(&old, 1), "REGISTER", &ha1, NOW),
        Verdict::Replay
    );
    let fresh = challenge_for(&k, Algorithm::Md5, false);
    assert_eq!(
        k.verify(&answer_nc(&fresh, 1), "REGISTER", &ha1, NOW),
        Verdict::Ok
    );
}

#[test]
fn concurrent_replays_let_one_through() {
    let k = std::sync::Arc::new(keeper());
    let ha1 = ha1_md5("alice", "tsps.test", "s3cret");
    let creds = answer_nc(&challenge_for(&k, Algorithm::Md5, false), 1);
    let oks: usize = (0..4)
        .map(|_| {
            let (k, creds, ha1) = (k.clone(), creds.clone(), ha1.clone());
            std::thread::spawn(move || {
                (0..100)
                    .filter(|_| k.verify(&creds, "REGISTER", &ha1, NOW) == Verdict::Ok)
                    .count()
            })
        })
        .map(|t| t.join().unwrap())
        .sum();
    assert_eq!(oks, 1);
}

#[test]
fn qop_absent_round_trip() {
    let k = keeper();
    for alg in [Algorithm::Md5, Algorithm::Sha256] {
        let nonce = k.nonce("tsps.test", NOW);
        let ch = format!(
            "Digest realm=\"tsps.test\", nonce=\"{nonce}\", algorithm={}",
            alg.name()
        );
        let value =
            answer_challenge(&ch, "INVITE", "sip:bob@tsps.test", "alice", "pw", "x", 1).unwrap();
        assert!(!value.contains("qop"), "{value}");
        assert!(!value.contains("cnonce"), "{value}");
        let creds = parse_credentials(&value).unwrap();
        assert_eq!(creds.qop, None);
        let ha1 = alg.ha1("alice", "tsps.test", "pw");
        assert_eq!(k.verify(&creds, "INVITE", &ha1, NOW + 1), Verdict::Ok);
        // Without a nonce count the nonce is good once.
        assert_eq!(k.verify(&creds, "INVITE", &ha1, NOW + 2), Verdict::Replay);
    }
}

#[test]
fn stale_after_ttl_only_with_a_correct_response() {
    let k = keeper();
    let creds = answer(&k, Algorithm::Sha256, "s3cret");
    let ha1 = ha1_sha256("alice", "tsps.test", "s3cret");
    assert_eq!(
        k.verify(&creds, "REGISTER", &ha1, NOW + 301),
        Verdict::Stale
    );
    let bad = ha1_sha256("alice", "tsps.test", "nope");
    assert_eq!(
        k.verify(&creds, "REGISTER", &bad, NOW + 301),
        Verdict::BadResponse
    );
    // A clock that stepped back still accepts our own nonce.
    assert_eq!(k.verify(&creds, "REGISTER", &ha1, NOW - 10), Verdict::Ok);
}

#[test]
fn tampered_nonce_is_bad_nonce() {
    let k = keeper();
    let creds = answer(&k, Algorithm::Md5, "s3cret");
    let ha1 = ha1_md5("alice", "tsps.test", "s3cret");
    // Move the timestamp forward by one second: the MAC no longer fits.
    let mut raw = URL_SAFE_NO_PAD.decode(&creds.nonce).unwrap();
    raw[7] ^= 1;
    let tampered = Credentials {
        nonce: URL_SAFE_NO_PAD.encode(&raw),
        ..creds.clone()
    };
    assert_eq!(
        k.verify(&tampered, "REGISTER", &ha1, NOW),
        Verdict::BadNonce
    );
    for nonce in [
        "",
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "!!!!",
        &"A".repeat(500),
    ] {
        let c = Credentials {
            nonce: nonce.to_owned(),
            ..creds.clone()
        };
        assert_eq!(
            k.verify(&c, "REGISTER", &ha1, NOW),
            Verdict::BadNonce,
            "{nonce}"
        );
    }
    // Another secret did not issue it.
    let other = NonceKeeper::new([8; 32], 300);
    assert_eq!(
        other.verify(&creds, "REGISTER", &ha1, NOW),
        Verdict::BadNonce
    );
}

#[test]
fn wrong_password_is_bad_response() {
    let k = keeper();
    for alg in [Algorithm::Md5, Algorithm::Sha256] {
        let creds = answer(&k, alg, "guess");
        let ha1 = alg.ha1("alice", "tsps.test", "s3cret");
        assert_eq!(
            k.verify(&creds, "REGISTER", &ha1, NOW),
            Verdict::BadResponse
        );
    }
}

#[test]
fn realm_mismatch_is_rejected() {
    let k = keeper();
    let creds = answer(&k, Algorithm::Md5, "s3cret");
    // The client claims another realm: the nonce was not issued for it.
    let moved = Credentials {
        realm: "other.test".into(),
        ..creds.clone()
    };
    let ha1 = ha1_md5("alice", "other.test", "s3cret");
    assert_eq!(k.verify(&moved, "REGISTER", &ha1, NOW), Verdict::BadNonce);
    // Right nonce realm, but the HA1 of another realm: the response does not fit.
    let ha1 = ha1_md5("alice", "other.test", "s3cret");
    assert_eq!(
        k.verify(&creds, "REGISTER", &ha1, NOW),
        Verdict::BadResponse
    );
}

#[test]
fn response_compare_ignores_hex_case_and_rejects_unknown_qop() {
    let k = keeper();
    let creds = answer(&k, Algorithm::Md5, "s3cret");
    let ha1 = ha1_md5("alice", "tsps.test", "s3cret");
    let upper = Credentials {
        response: creds.response.to_ascii_uppercase(),
        ..creds.clone()
    };
    assert_eq!(
        k.verify(&upper, "REGISTER", &ha1.to_ascii_uppercase(), NOW),
        Verdict::Ok
    );
    let auth_int = Credentials {
        qop: Some("auth-int".into()),
        ..creds.clone()
    };
    assert_eq!(
        k.verify(&auth_int, "REGISTER", &ha1, NOW),
        Verdict::BadResponse
    );
    let no_cnonce = Credentials {
        cnonce: None,
        ..creds.clone()
    };
    assert_eq!(
        k.verify(&no_cnonce, "REGISTER", &ha1, NOW),
        Verdict::BadResponse
    );
    let short = Credentials {
        response: creds.response[..10].to_owned(),
        ..creds
    };
    assert_eq!(
        k.verify(&short, "REGISTER", &ha1, NOW),
        Verdict::BadResponse
    );
}

#[test]
fn parse_credentials_errors() {
    let ok = r#"Digest username="a", realm="r", nonce="n", uri="sip:r", response="00""#;
    assert!(parse_credentials(ok).is_ok());
    let cases: [(&str, DigestError); 10] = [
        ("", DigestError::NotDigest(String::new())),
        (
            r#"Basic dXNlcjpwYXNz"#,
            DigestError::NotDigest("Basic".into()),
        ),
        (
            r#"Digest realm="r", nonce="n", uri="u", response="0""#,
            DigestError::MissingParam("username"),
        ),
        (
            r#"Digest username="a, realm="r""#,
            DigestError::Syntax("expected ',' between parameters"),
        ),
        (
            r#"Digest username="a"#,
            DigestError::Syntax("unterminated quoted string"),
        ),
        (
            r#"Digest username"#,
            DigestError::Syntax("expected '=' after a parameter name"),
        ),
        (
            &format!("{ok}, username=\"b\""),
            DigestError::DuplicateParam("username"),
        ),
        (
            &format!("{ok}, algorithm=MD5-sess"),
            DigestError::UnsupportedAlgorithm("MD5-sess".into()),
        ),
        (
            &format!("{ok}, qop=auth, cnonce=\"c\""),
            DigestError::MissingParam("nc"),
        ),
        (
            &format!("{ok}, qop=auth, nc=1, cnonce=\"c\""),
            DigestError::InvalidParam("nc"),
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(parse_credentials(input), Err(expected), "{input}");
    }
}

#[test]
fn quoting_survives_a_round_trip() {
    let k = keeper();
    let ch = challenge_for(&k, Algorithm::Sha256, false);
    let user = r#"al"ice\x"#;
    let value = answer_challenge(&ch, "REGISTER", "sip:tsps.test", user, "pw", "c\r\n", 7).unwrap();
    assert!(!value.contains('\r') && !value.contains('\n'));
    let creds = parse_credentials(&value).unwrap();
    assert_eq!(creds.username, user);
    assert_eq!(creds.nc.as_deref(), Some("00000007"));
    // The control characters were dropped on the wire, so the server hashes "c".
    assert_eq!(creds.cnonce.as_deref(), Some("c"));
    let ha1 = ha1_sha256(user, "tsps.test", "pw");
    // The client hashed "c\r\n" while the wire says "c": the mismatch is detected.
    assert_eq!(
        k.verify(&creds, "REGISTER", &ha1, NOW),
        Verdict::BadResponse
    );
}

#[test]
fn answer_challenge_rejects_what_it_cannot_do() {
    let base = r#"Digest realm="r", nonce="n""#;
    assert_eq!(
        answer_challenge(
            &format!("{base}, qop=\"auth-int\""),
            "A",
            "u",
            "a",
            "p",
            "c",
            1
        ),
        Err(DigestError::UnsupportedQop("auth-int".into()))
    );
    assert_eq!(
        answer_challenge(
            &format!("{base}, algorithm=SHA-512-256"),
            "A",
            "u",
            "a",
            "p",
            "c",
            1
        ),
        Err(DigestError::UnsupportedAlgorithm("SHA-512-256".into()))
    );
    assert_eq!(
        answer_challenge(r#"Digest realm="r""#, "A", "u", "a", "p", "c", 1),
        Err(DigestError::MissingParam("nonce"))
    );
    // qop list with auth among others picks auth and echoes the opaque.
    let v = answer_challenge(
        &format!("{base}, qop=\"auth-int, auth\", opaque=\"xyz\""),
        "A",
        "u",
        "a",
        "p",
        "c",
        1,
    )
    .unwrap();
    assert!(v.contains("qop=auth, nc=00000001, cnonce=\"c\""), "{v}");
    assert!(v.ends_with("opaque=\"xyz\""), "{v}");
}

#[test]
fn debug_redacts_the_secret() {
    let shown = format!("{:?}", keeper());
    assert!(shown.contains("[redacted]"));
    assert!(!shown.contains("7, 7"));
}

proptest! {
    #[test]
    fn parse_credentials_never_panics(s in any::<String>()) {
        let _ = parse_credentials(&s);
        let _ = parse_challenge(&s);
    }

    #[test]
    fn parse_credentials_never_panics_on_digest_like_input(
        s in r#"Digest [a-z=", \\\t]{0,80}"#
    ) {
        let _ = parse_credentials(&s);
        let _ = parse_challenge(&s);
    }

    #[test]
    fn verify_never_panics(nonce in any::<String>(), response in any::<String>(),
                           nc in proptest::option::of(any::<String>())) {
        let creds = Credentials {
            username: "a".into(), realm: "r".into(), nonce, uri: "u".into(), response,
            algorithm: Algorithm::Md5, qop: Some("auth".into()), nc,
            cnonce: Some("c".into()), opaque: None,
        };
        let v = keeper().verify(&creds, "REGISTER", "00", NOW);
        prop_assert_ne!(v, Verdict::Ok);
    }

    #[test]
    fn answer_then_verify_is_ok(user in "[ -~]{1,20}", password in "[ -~]{0,20}",
                                cnonce in "[!-~]{1,20}", nc in 1u32..) {
        let k = keeper();
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let ch = challenge_for(&k, alg, false);
            let value = answer_challenge(&ch, "INVITE", "sip:b@tsps.test", &user,
                                         &password, &cnonce, nc).unwrap();
            let creds = parse_credentials(&value).unwrap();
            prop_assert_eq!(&creds.username, &user);
            let ha1 = alg.ha1(&user, "tsps.test", &password);
            prop_assert_eq!(k.verify(&creds, "INVITE", &ha1, NOW), Verdict::Ok);
        }
    }
}
