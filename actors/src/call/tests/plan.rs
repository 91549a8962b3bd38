//! The feature server's plan: sequential ringing, forwards on busy and no answer,
//! loops, redirects.

use super::*;

#[actix::test]
async fn sequential_ring_moves_on_after_each_timeout() {
    tokio::time::pause();
    let mut h = Harness::start_with(
        bob(sequential()),
        &[(BOB, BOB_PHONE), (testkit::CAROL, CAROL_PHONE)],
        "1002",
    );
    let first = expect_dial_to(&mut h, BOB_PHONE).await;
    tokio::time::advance(Duration::from_secs(11)).await;
    assert!(matches!(h.next().await, LegCommand::Cancel { leg } if leg == first));
    let second = expect_dial_to(&mut h, CAROL_PHONE).await;
    tokio::time::advance(Duration::from_secs(16)).await;
    assert!(matches!(h.next().await, LegCommand::Cancel { leg } if leg == second));
    assert!(matches!(
        h.next().await,
        LegCommand::Reject { code: 408, .. }
    ));
    let (record, kinds) = h.ended().await;
    assert_eq!(record.outcome, CallOutcome::NoAnswer);
    assert_eq!(record.legs.len(), 3);
    assert!(kinds.iter().any(|k| matches!(k, K::Decided { reasons, .. } if reasons.iter().any(|r| r.contains("sequential")))));
}

#[actix::test]
async fn override_during_sequential_ring_forwards_at_once() {
    tokio::time::pause();
    let mut h = Harness::start_with(
        bob(sequential()),
        &[(BOB, BOB_PHONE), (testkit::CAROL, CAROL_PHONE)],
        "1002",
    );
    let first = expect_dial_to(&mut h, BOB_PHONE).await;
    let call = h
        .platform
        .registry
        .call(TENANT, h.call_id())
        .expect("a live call");
    // Another tenant cannot reach the call.
    assert!(h
        .platform
        .registry
        .call(crate::ids::TenantId::for_test(99), h.call_id())
        .is_none());
    let res = call
        .send(Override(OverrideAction::Forward(Target::Extension(
            "1003".into(),
        ))))
        .await
        .unwrap();
    assert_eq!(res, Ok(()));
    assert!(matches!(h.next().await, LegCommand::Cancel { leg } if leg == first));
    let carol = expect_dial_to(&mut h, CAROL_PHONE).await;
    h.event(carol, LegEventKind::Answered { body: None });
    assert!(matches!(h.next().await, LegCommand::Answer { .. }));
    // Once answered, overrides are refused.
    let late = call.send(Override(OverrideAction::Reject)).await.unwrap();
    assert_eq!(late, Err(OverrideError::NotRinging));
    h.event(h.a, LegEventKind::Hangup);
    // Carol's 200 was never ACKed (the caller's ACK did not come): ACK, then BYE.
    assert!(matches!(h.next().await, LegCommand::Ack { leg, body: None } if leg == carol));
    assert!(matches!(h.next().await, LegCommand::Hangup { leg } if leg == carol));
    let (record, kinds) = h.ended().await;
    assert_eq!(record.outcome, CallOutcome::Answered);
    assert!(kinds.iter().any(|k| matches!(k, K::Overridden { .. })));
}

#[actix::test]
async fn busy_device_forwards_on_busy() {
    let mut p = crate::feature::Profile::default();
    p.forwarding.busy = Some(Target::Extension("1003".into()));
    let mut h = Harness::start_with(
        bob(p),
        &[(BOB, BOB_PHONE), (testkit::CAROL, CAROL_PHONE)],
        "1002",
    );
    let first = expect_dial_to(&mut h, BOB_PHONE).await;
    h.event(first, LegEventKind::Failed { code: 486 });
    let carol = expect_dial_to(&mut h, CAROL_PHONE).await;
    h.event(carol, LegEventKind::Failed { code: 486 });
    assert!(matches!(
        h.next().await,
        LegCommand::Reject { code: 486, .. }
    ));
    assert_eq!(h.ended().await.0.outcome, CallOutcome::Busy);
}

#[actix::test]
async fn no_answer_forwards_after_its_seconds() {
    tokio::time::pause();
    let mut p = crate::feature::Profile::default();
    p.forwarding.no_answer = Some(crate::feature::profile::NoAnswerForward {
        target: Target::Extension("1003".into()),
        seconds: 10,
    });
    let mut h = Harness::start_with(
        bob(p),
        &[(BOB, BOB_PHONE), (testkit::CAROL, CAROL_PHONE)],
        "1002",
    );
    let first = expect_dial_to(&mut h, BOB_PHONE).await;
    tokio::time::advance(Duration::from_secs(11)).await;
    assert!(matches!(h.next().await, LegCommand::Cancel { leg } if leg == first));
    let carol = expect_dial_to(&mut h, CAROL_PHONE).await;
    h.event(carol, LegEventKind::Answered { body: None });
    assert!(matches!(h.next().await, LegCommand::Answer { .. }));
    h.event(carol, LegEventKind::Hangup);
    assert!(matches!(h.next().await, LegCommand::Hangup { .. }));
    let (record, kinds) = h.ended().await;
    assert_eq!(record.hangup_by, Some(Party::Callee));
    // The forward's target answered on her own leg: her history has the call.
    assert_eq!(record.legs.last().unwrap().user_id, Some(testkit::CAROL));
    // And the caller's line names her once the call went on to her.
    assert_eq!(
        kinds
            .iter()
            .filter(|k| matches!(k, K::PartyChanged { .. }))
            .count(),
        1,
        "{kinds:?}"
    );
    assert!(kinds.iter().any(|k| matches!(k,
        K::PartyChanged { side: Party::Callee, number, user: Some(u) } if number == "1003" && *u == testkit::CAROL)));
}

#[actix::test]
async fn do_not_disturb_rejects_busy_with_the_reason() {
    let mut p = crate::feature::Profile::default();
    p.dnd.enabled = true;
    let mut h = Harness::start_with(bob(p), &[(BOB, BOB_PHONE)], "1002");
    assert!(matches!(
        h.next().await,
        LegCommand::Reject { code: 486, .. }
    ));
    let (record, kinds) = h.ended().await;
    assert_eq!(record.outcome, CallOutcome::Busy);
    assert!(kinds.iter().any(|k| matches!(k, K::Decided { reasons, .. } if reasons.contains(&"do not disturb".to_string()))));
}

#[actix::test]
async fn forwarding_loop_is_refused() {
    let mut m = testkit::MapFeatures::default();
    let fwd = |x: &str| crate::ports::UserFeatures {
        profile: crate::feature::Profile {
            forwarding: crate::feature::profile::Forwarding {
                always: Some(Target::Extension(x.into())),
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    };
    m.0.insert(BOB, fwd("1003"));
    m.0.insert(testkit::CAROL, fwd("1002"));
    let mut h = Harness::start_with(
        m,
        &[(BOB, BOB_PHONE), (testkit::CAROL, CAROL_PHONE)],
        "1002",
    );
    assert!(matches!(
        h.next().await,
        LegCommand::Reject { code: 482, .. }
    ));
    assert_eq!(h.ended().await.0.outcome, CallOutcome::Failed);
}

#[actix::test]
async fn redirect_into_the_tenant_is_routed_and_outside_it_is_dialled() {
    let mut h = Harness::start_with(
        testkit::MapFeatures::default(),
        &[(BOB, BOB_PHONE), (testkit::CAROL, CAROL_PHONE)],
        "1002",
    );
    let first = expect_dial_to(&mut h, BOB_PHONE).await;
    let to = |uri: &str, user: &str, host: &str| RedirectTarget {
        uri: uri.into(),
        user: Some(user.into()),
        host: host.into(),
    };
    h.event(
        first,
        LegEventKind::Redirected {
            code: 302,
            targets: vec![to("sip:1003@a.test", "1003", "a.test")],
        },
    );
    let carol = expect_dial_to(&mut h, CAROL_PHONE).await;
    h.event(
        carol,
        LegEventKind::Redirected {
            code: 302,
            targets: vec![to("sip:vm@192.0.2.10:5060", "vm", "192.0.2.10")],
        },
    );
    match h.next().await {
        LegCommand::Dial(d) => {
            assert_eq!(d.target, DialTarget::Uri("sip:vm@192.0.2.10:5060".into()))
        }
        other => panic!("expected a dial to the redirect URI, got {other:?}"),
    }
    h.event(h.a, LegEventKind::Cancelled);
    assert!(matches!(h.next().await, LegCommand::Cancel { .. }));
    let (record, _) = h.ended().await;
    assert!(
        record
            .decision
            .iter()
            .any(|r| r.contains("redirected to sip:1003@a.test")),
        "{:?}",
        record.decision
    );
}
