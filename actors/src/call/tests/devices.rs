//! External phones through the trunk, and remote answer.

use super::*;

#[actix::test]
async fn click_to_dial_on_an_external_phone_rings_it_through_the_trunk_first() {
    let (platform, persistence, bus) = testkit::platform_with_extras(
        testkit::MapFeatures::default(),
        &[(BOB, BOB_PHONE)],
        extras(),
    );
    let start = CallStart::ClickToDial {
        device: ALICE_MOBILE,
        reach: DeviceReach::Number("+41790000001".into()),
    };
    let mut h = Harness::with_start(platform, persistence, bus, LegId::new(), start, "1002");
    // The mobile first, without an offer, shown the destination.
    let d = expect_trunk_dial(h.next().await, "+41790000001");
    assert_eq!(d.body, None);
    assert_eq!(d.caller.user, "1002");
    let mobile = d.leg;
    let offer = sdp("v=0\r\no=mobile 1 1 IN IP4 127.0.0.2\r\n");
    h.event(
        mobile,
        LegEventKind::Answered {
            body: Some(offer.clone()),
        },
    );
    let bob = match h.next().await {
        LegCommand::Dial(d) => {
            assert!(matches!(&d.target, DialTarget::Contact(c) if c.contact == BOB_PHONE));
            assert_eq!(d.body, Some(offer));
            assert_eq!(d.caller.user, "1001");
            d.leg
        }
        other => panic!("expected a dial to Bob, got {other:?}"),
    };
    let answer = sdp("v=0\r\no=bob 1 1 IN IP4 127.0.0.1\r\n");
    h.event(
        bob,
        LegEventKind::Answered {
            body: Some(answer.clone()),
        },
    );
    assert!(
        matches!(h.next().await, LegCommand::Ack { leg, body: Some(x) } if leg == mobile && x == answer)
    );
    assert!(matches!(h.next().await, LegCommand::Ack { leg, .. } if leg == bob));
    h.event(mobile, LegEventKind::Hangup);
    assert!(matches!(h.next().await, LegCommand::Hangup { leg } if leg == bob));
    let (record, kinds) = h.ended().await;
    assert_eq!(record.outcome, CallOutcome::Answered);
    assert_eq!(record.legs[0].target, "trunk:+41790000001");
    assert!(kinds.iter().any(|k| matches!(
        k,
        K::LegDialing {
            side: Party::Caller,
            user: Some(ALICE),
            device: Some(ALICE_MOBILE),
            ..
        }
    )));
}

#[actix::test]
async fn answer_on_an_external_phone_moves_the_ringing_call_to_it() {
    let (platform, persistence, bus) = testkit::platform_with_extras(
        testkit::MapFeatures::default(),
        &[(BOB, BOB_PHONE)],
        extras(),
    );
    let a = LegId::new();
    let offer = sdp("v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\n");
    let start = CallStart::Incoming {
        leg: a,
        target: "device:1001".into(),
        offer: Some(offer.clone()),
    };
    let mut h = Harness::with_start(platform, persistence, bus, a, start, "1002");
    let phone = expect_dial_to(&mut h, BOB_PHONE).await;
    // Only Bob's own phones count.
    assert_eq!(
        h.control_now(BOB, ControlAction::AnswerOn(ALICE_MOBILE))
            .await,
        Err(ControlError::UnknownDevice)
    );
    assert_eq!(
        h.control_now(BOB, ControlAction::AnswerOn(BOB_MOBILE))
            .await,
        Ok(())
    );
    assert!(matches!(h.next().await, LegCommand::Cancel { leg } if leg == phone));
    let d = expect_trunk_dial(h.next().await, "+41790000002");
    assert_eq!(d.body, Some(offer), "the caller's offer");
    assert_eq!(d.caller.user, "1001");
    h.event(d.leg, LegEventKind::Answered { body: None });
    assert!(matches!(h.next().await, LegCommand::Answer { leg, .. } if leg == a));
    h.event(a, LegEventKind::Hangup);
    assert!(matches!(h.next().await, LegCommand::Ack { leg, .. } if leg == d.leg));
    assert!(matches!(h.next().await, LegCommand::Hangup { leg } if leg == d.leg));
    let (_, kinds) = h.ended().await;
    assert!(kinds.iter().any(|k| matches!(
        k,
        K::LegDialing { leg, user: Some(BOB), device: Some(BOB_MOBILE), .. } if *leg == d.leg
    )));
}

#[actix::test]
async fn answer_on_a_remote_answer_device_tells_it_to_answer() {
    let (platform, persistence, bus) = testkit::platform_with_extras(
        testkit::MapFeatures::default(),
        &[(BOB, BOB_PHONE), (BOB, BOB_DESK)],
        remote_answer_extras(),
    );
    let a = LegId::new();
    let start = CallStart::Incoming {
        leg: a,
        target: "device:1001".into(),
        offer: Some(sdp("v=0\r\n")),
    };
    let mut h = Harness::with_start(platform, persistence, bus, a, start, "1002");
    let legs = h.dialled_legs(2).await;
    let (phone, desk) = (legs[0], legs[1]);
    h.event(
        phone,
        LegEventKind::Progress {
            code: 180,
            body: None,
        },
    );
    assert!(matches!(h.next().await, LegCommand::Progress { .. }));
    let answer_on = ControlAction::AnswerOn(DeviceId::for_test(1));
    assert_eq!(h.control_now(BOB, answer_on).await, Ok(()));
    assert!(matches!(h.next().await, LegCommand::Cancel { leg } if leg == desk));
    // It rings already: told at once.
    assert!(matches!(h.next().await, LegCommand::RemoteAnswer { leg } if leg == phone));
    h.event(phone, LegEventKind::Answered { body: None });
    assert!(matches!(h.next().await, LegCommand::Answer { leg, .. } if leg == a));
    h.event(a, LegEventKind::Cancelled);
    h.ended().await;
}

#[actix::test]
async fn remote_answer_waits_for_the_device_to_ring_and_needs_the_flag() {
    let (platform, persistence, bus) = testkit::platform_with_extras(
        testkit::MapFeatures::default(),
        &[(BOB, BOB_PHONE), (BOB, BOB_DESK)],
        remote_answer_extras(),
    );
    let a = LegId::new();
    let start = CallStart::Incoming {
        leg: a,
        target: "device:1001".into(),
        offer: Some(sdp("v=0\r\n")),
    };
    let mut h = Harness::with_start(platform, persistence, bus, a, start, "1002");
    let legs = h.dialled_legs(2).await;
    let (phone, desk) = (legs[0], legs[1]);
    // The desk phone has no remote answer: it only keeps ringing.
    let answer_on = ControlAction::AnswerOn(DeviceId::for_test(2));
    assert_eq!(h.control_now(BOB, answer_on).await, Ok(()));
    assert!(matches!(h.next().await, LegCommand::Cancel { leg } if leg == phone));
    h.event(
        desk,
        LegEventKind::Progress {
            code: 180,
            body: None,
        },
    );
    assert!(matches!(h.next().await, LegCommand::Progress { .. }));
    h.event(desk, LegEventKind::Failed { code: 486 });
    assert!(matches!(
        h.next().await,
        LegCommand::Reject { code: 486, .. }
    ));
    h.ended().await;

    // Device 1 does; before it rings it is told once it does, once.
    let (platform, persistence, bus) = testkit::platform_with_extras(
        testkit::MapFeatures::default(),
        &[(BOB, BOB_PHONE), (BOB, BOB_DESK)],
        remote_answer_extras(),
    );
    let a = LegId::new();
    let start = CallStart::Incoming {
        leg: a,
        target: "device:1001".into(),
        offer: Some(sdp("v=0\r\n")),
    };
    let mut h = Harness::with_start(platform, persistence, bus, a, start, "1002");
    let legs = h.dialled_legs(2).await;
    let (phone, desk) = (legs[0], legs[1]);
    let answer_on = ControlAction::AnswerOn(DeviceId::for_test(1));
    assert_eq!(h.control_now(BOB, answer_on).await, Ok(()));
    assert!(matches!(h.next().await, LegCommand::Cancel { leg } if leg == desk));
    for code in [180, 183] {
        h.event(phone, LegEventKind::Progress { code, body: None });
    }
    assert!(matches!(h.next().await, LegCommand::RemoteAnswer { leg } if leg == phone));
    assert!(matches!(
        h.next().await,
        LegCommand::Progress { code: 180, .. }
    ));
    assert!(matches!(
        h.next().await,
        LegCommand::Progress { code: 183, .. }
    ));
    h.event(a, LegEventKind::Cancelled);
    assert!(matches!(h.next().await, LegCommand::Cancel { leg } if leg == phone));
    h.ended().await;
}

#[actix::test]
async fn an_external_phone_needs_a_trunk() {
    let mut no_trunk = extras();
    no_trunk.trunks.clear();
    let (platform, persistence, bus) = testkit::platform_with_extras(
        testkit::MapFeatures::default(),
        &[(BOB, BOB_PHONE)],
        no_trunk,
    );
    let a = LegId::new();
    let start = CallStart::Incoming {
        leg: a,
        target: "device:1001".into(),
        offer: Some(sdp("v=0\r\n")),
    };
    let mut h = Harness::with_start(platform, persistence, bus, a, start, "1002");
    let phone = expect_dial_to(&mut h, BOB_PHONE).await;
    assert_eq!(
        h.control_now(BOB, ControlAction::AnswerOn(BOB_MOBILE))
            .await,
        Err(ControlError::WrongState(
            "the tenant has no trunk to reach the external phone"
        ))
    );
    // Nothing changed: the phone still rings.
    h.event(phone, LegEventKind::Failed { code: 486 });
    assert!(matches!(
        h.next().await,
        LegCommand::Reject { code: 486, .. }
    ));
    h.ended().await;
}
