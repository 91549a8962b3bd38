//! Third-party call control: hold, release, blind transfer, click-to-dial, answer on.

use super::*;

#[actix::test]
async fn hold_and_resume_reinvite_the_other_party_and_ack_its_answer() {
    let (mut h, b) = Harness::connected(&[(BOB, BOB_PHONE)]).await;
    // Carol takes no part in the call; before answer nothing can be held.
    assert_eq!(
        h.control_now(testkit::CAROL, ControlAction::Hold).await,
        Err(ControlError::NotFound)
    );
    let hold = h.control(ALICE, ControlAction::Hold);
    // Bob is the one held: he gets Alice's offer turned sendonly.
    let offer = match h.next().await {
        LegCommand::ReOffer { leg, body } if leg == b => body_text(&body),
        other => panic!("expected a re-INVITE to Bob, got {other:?}"),
    };
    assert!(offer.contains("a=sendonly"), "{offer}");
    // Meanwhile neither side may start another re-INVITE, and the API neither.
    h.event(h.a, LegEventKind::ReOffer { body: None });
    assert!(matches!(h.next().await, LegCommand::ReAnswer { leg, code: 491, .. } if leg == h.a));
    assert_eq!(
        h.control_now(BOB, ControlAction::Hold).await,
        Err(ControlError::WrongState("a re-INVITE is in progress"))
    );
    h.event(
        b,
        LegEventKind::ReAnswer {
            code: 200,
            body: Some(sdp("v=0\r\na=recvonly\r\n")),
        },
    );
    assert!(matches!(h.next().await, LegCommand::Ack { leg, body: None } if leg == b));
    assert_eq!(hold.await.unwrap(), Ok(()));
    assert_eq!(
        h.control_now(ALICE, ControlAction::Hold).await,
        Err(ControlError::WrongState("the call is already on hold"))
    );

    let resume = h.control(ALICE, ControlAction::Resume);
    match h.next().await {
        LegCommand::ReOffer { leg, body } if leg == b => {
            assert!(
                body_text(&body).contains("a=sendrecv"),
                "{}",
                body_text(&body)
            )
        }
        other => panic!("expected a re-INVITE to Bob, got {other:?}"),
    }
    // A refusal reaches the API; the call stays held.
    h.event(
        b,
        LegEventKind::ReAnswer {
            code: 488,
            body: None,
        },
    );
    assert_eq!(resume.await.unwrap(), Err(ControlError::Refused(488)));
    let resume = h.control(ALICE, ControlAction::Resume);
    assert!(matches!(h.next().await, LegCommand::ReOffer { leg, .. } if leg == b));
    h.event(
        b,
        LegEventKind::ReAnswer {
            code: 200,
            body: None,
        },
    );
    assert!(matches!(h.next().await, LegCommand::Ack { leg, .. } if leg == b));
    assert_eq!(resume.await.unwrap(), Ok(()));

    // Bob may hold Alice too: then Alice's leg gets the re-INVITE.
    let hold = h.control(BOB, ControlAction::Hold);
    assert!(matches!(h.next().await, LegCommand::ReOffer { leg, .. } if leg == h.a));
    h.event(
        h.a,
        LegEventKind::ReAnswer {
            code: 200,
            body: None,
        },
    );
    assert!(matches!(h.next().await, LegCommand::Ack { leg, .. } if leg == h.a));
    assert_eq!(hold.await.unwrap(), Ok(()));

    h.event(b, LegEventKind::Hangup);
    assert!(matches!(h.next().await, LegCommand::Hangup { leg } if leg == h.a));
    let (_, kinds) = h.ended().await;
    let media: Vec<_> = kinds
        .iter()
        .filter_map(|k| match k {
            K::MediaChanged { by, held } => Some((*by, *held)),
            _ => None,
        })
        .collect();
    assert_eq!(
        media,
        [
            (Party::Caller, true),
            (Party::Caller, false),
            (Party::Callee, true)
        ]
    );
}

#[actix::test]
async fn release_while_ringing_out_cancels_and_ends_the_callers_invite() {
    let mut h = Harness::start(&[BOB_PHONE], "1002");
    let b = h.dialled_legs(1).await[0];
    assert_eq!(h.control_now(ALICE, ControlAction::Release).await, Ok(()));
    assert!(matches!(h.next().await, LegCommand::Cancel { leg } if leg == b));
    assert!(matches!(h.next().await, LegCommand::Reject { leg, code: 487 } if leg == h.a));
    let (record, _) = h.ended().await;
    assert_eq!(record.outcome, CallOutcome::Cancelled);
    assert_eq!(record.hangup_by, Some(Party::Caller));
}

#[actix::test]
async fn release_while_ringing_in_declines_with_603() {
    let mut h = Harness::start(&[BOB_PHONE], "1002");
    let b = h.dialled_legs(1).await[0];
    assert_eq!(h.control_now(BOB, ControlAction::Release).await, Ok(()));
    assert!(matches!(h.next().await, LegCommand::Cancel { leg } if leg == b));
    assert!(matches!(h.next().await, LegCommand::Reject { leg, code: 603 } if leg == h.a));
    let (record, _) = h.ended().await;
    assert_eq!(record.outcome, CallOutcome::Rejected);
}

#[actix::test]
async fn release_when_answered_hangs_up_both_legs() {
    let (mut h, b) = Harness::connected(&[(BOB, BOB_PHONE)]).await;
    assert_eq!(h.status_of(BOB).await, crate::user::UserStatus::Busy);
    assert_eq!(h.control_now(BOB, ControlAction::Release).await, Ok(()));
    let mut hung: Vec<LegId> = Vec::new();
    for _ in 0..2 {
        match h.next().await {
            LegCommand::Hangup { leg } => hung.push(leg),
            other => panic!("expected BYE, got {other:?}"),
        }
    }
    hung.sort();
    let mut both = vec![h.a, b];
    both.sort();
    assert_eq!(hung, both);
    let (record, _) = h.ended().await;
    assert_eq!(record.outcome, CallOutcome::Answered);
    assert_eq!(record.hangup_by, Some(Party::Callee));
}

#[actix::test]
async fn blind_transfer_connects_the_other_party_to_the_target() {
    let (mut h, b) = Harness::connected(&[(BOB, BOB_PHONE), (testkit::CAROL, CAROL_PHONE)]).await;
    assert_eq!(
        h.control_now(
            BOB,
            ControlAction::Transfer {
                target: "4711".into()
            }
        )
        .await,
        Err(ControlError::BadTarget("4711".into()))
    );
    // Too long to be a number: refused before routing, and the call stays.
    assert_eq!(
        h.control_now(
            BOB,
            ControlAction::Transfer {
                target: "1".repeat(300)
            }
        )
        .await,
        Err(ControlError::TargetTooLong)
    );
    // An outside number, but this tenant has no trunk: the user is told so.
    assert_eq!(
        h.control_now(
            BOB,
            ControlAction::Transfer {
                target: "+41790000009".into()
            }
        )
        .await,
        Err(ControlError::NoTrunk)
    );
    assert_eq!(
        h.control_now(
            BOB,
            ControlAction::Transfer {
                target: "1003".into()
            }
        )
        .await,
        Ok(())
    );
    // Bob leaves; Carol is rung without an offer, shown Alice as the caller.
    assert!(matches!(h.next().await, LegCommand::Hangup { leg } if leg == b));
    let carol = match h.next().await {
        LegCommand::Dial(d) => {
            assert!(matches!(&d.target, DialTarget::Contact(c) if c.contact == CAROL_PHONE));
            assert_eq!(d.body, None, "delayed offer to the transfer target");
            assert_eq!(d.caller.user, "1001");
            assert_eq!(d.callee.user, "1003");
            d.leg
        }
        other => panic!("expected a dial to Carol, got {other:?}"),
    };
    // Bob is no longer on the call: idle, and his commands are refused.
    assert_eq!(h.status_of(BOB).await, crate::user::UserStatus::Idle);
    assert_eq!(
        h.control_now(BOB, ControlAction::Release).await,
        Err(ControlError::NotFound)
    );
    // Alice hears no ringing (her call is answered already): no Progress is relayed.
    h.event(
        carol,
        LegEventKind::Progress {
            code: 180,
            body: None,
        },
    );
    let carol_offer = sdp("v=0\r\nm=audio 9000 RTP/AVP 0\r\n");
    h.event(
        carol,
        LegEventKind::Answered {
            body: Some(carol_offer.clone()),
        },
    );
    // Carol's offer goes to Alice in a re-INVITE; Alice's answer to Carol in the ACK.
    assert!(
        matches!(h.next().await, LegCommand::ReOffer { leg, body: Some(x) } if leg == h.a && x == carol_offer)
    );
    let alice_answer = sdp("v=0\r\nm=audio 6000 RTP/AVP 0\r\n");
    h.event(
        h.a,
        LegEventKind::ReAnswer {
            code: 200,
            body: Some(alice_answer.clone()),
        },
    );
    assert!(matches!(h.next().await, LegCommand::Ack { leg, body: None } if leg == h.a));
    assert!(
        matches!(h.next().await, LegCommand::Ack { leg, body: Some(x) } if leg == carol && x == alice_answer)
    );
    assert_eq!(
        h.status_of(testkit::CAROL).await,
        crate::user::UserStatus::Busy
    );
    h.event(h.a, LegEventKind::Hangup);
    assert!(matches!(h.next().await, LegCommand::Hangup { leg } if leg == carol));
    let (record, kinds) = h.ended().await;
    assert_eq!(record.outcome, CallOutcome::Answered);
    assert_eq!(record.legs.len(), 3, "the record keeps every leg");
    assert!(record.legs[1].ended_at.is_some());
    // Each leg names whose phone it rang: the call is in Carol's history too.
    let users: Vec<_> = record.legs.iter().map(|l| l.user_id).collect();
    assert_eq!(
        users,
        [Some(testkit::ALICE), Some(BOB), Some(testkit::CAROL)]
    );
    assert!(
        record
            .decision
            .iter()
            .any(|d| d == "1002: transferred to 1003"),
        "{:?}",
        record.decision
    );
    assert!(kinds
        .iter()
        .any(|k| matches!(k, K::LegEnded { leg, code: None } if *leg == b)));
    assert!(kinds.iter().any(
        |k| matches!(k, K::LegDialing { leg, side: Party::Callee, user: Some(u), .. } if *leg == carol && *u == testkit::CAROL)
    ));
    // Alice's line names Carol from the transfer on.
    assert!(kinds.iter().any(|k| matches!(k,
        K::PartyChanged { side: Party::Callee, number, user: Some(u) } if number == "1003" && *u == testkit::CAROL)));
}

#[actix::test]
async fn click_to_dial_rings_the_device_first_then_the_destination() {
    let mut h = Harness::click_to_dial(&[(ALICE, ALICE_PHONE), (BOB, BOB_PHONE)], "1002").await;
    // The device first, without an offer, showing whom it is calling.
    let device = match h.next().await {
        LegCommand::Dial(d) => {
            assert!(matches!(&d.target, DialTarget::Contact(c) if c.contact == ALICE_PHONE));
            assert_eq!(d.body, None);
            assert_eq!(d.caller.user, "1002");
            assert_eq!(d.caller.display_name.as_deref(), Some("Bob"));
            assert_eq!(d.callee.user, "1001");
            d.leg
        }
        other => panic!("expected a dial to Alice's device, got {other:?}"),
    };
    // An override is for calls ringing to a user, not for this.
    assert_eq!(
        h.platform
            .registry
            .call(TENANT, h.call_id())
            .unwrap()
            .send(Override(OverrideAction::Reject))
            .await
            .unwrap(),
        Err(OverrideError::NotRinging)
    );
    h.event(
        device,
        LegEventKind::Progress {
            code: 180,
            body: None,
        },
    );
    let offer = sdp("v=0\r\nm=audio 5000 RTP/AVP 0\r\n");
    h.event(
        device,
        LegEventKind::Answered {
            body: Some(offer.clone()),
        },
    );
    // Then the destination, as if dialled from the device, with the device's offer.
    let bob = match h.next().await {
        LegCommand::Dial(d) => {
            assert!(matches!(&d.target, DialTarget::Contact(c) if c.contact == BOB_PHONE));
            assert_eq!(d.body, Some(offer.clone()));
            assert_eq!(d.caller.user, "1001");
            d.leg
        }
        other => panic!("expected a dial to Bob, got {other:?}"),
    };
    h.event(
        bob,
        LegEventKind::Progress {
            code: 180,
            body: None,
        },
    );
    let answer = sdp("v=0\r\nm=audio 7000 RTP/AVP 0\r\n");
    h.event(
        bob,
        LegEventKind::Answered {
            body: Some(answer.clone()),
        },
    );
    // The device gets the answer in the ACK; Bob's 200 is ACKed.
    assert!(
        matches!(h.next().await, LegCommand::Ack { leg, body: Some(x) } if leg == device && x == answer)
    );
    assert!(matches!(h.next().await, LegCommand::Ack { leg, body: None } if leg == bob));
    assert_eq!(h.status_of(ALICE).await, crate::user::UserStatus::Busy);
    // Alice hangs up from the portal: both BYE.
    assert_eq!(h.control_now(ALICE, ControlAction::Release).await, Ok(()));
    let mut hung = Vec::new();
    for _ in 0..2 {
        match h.next().await {
            LegCommand::Hangup { leg } => hung.push(leg),
            other => panic!("expected BYE, got {other:?}"),
        }
    }
    assert!(hung.contains(&device) && hung.contains(&bob));
    let (record, kinds) = h.ended().await;
    assert_eq!(record.outcome, CallOutcome::Answered);
    assert_eq!(record.hangup_by, Some(Party::Caller));
    assert_eq!(record.legs.len(), 2);
    assert_eq!(record.legs[0].role, Party::Caller);
    assert!(matches!(
        &kinds[0],
        K::Started {
            caller_leg: None,
            caller_user: Some(ALICE),
            ..
        }
    ));
    assert_eq!(
        names(&kinds),
        [
            "started", "dialing", "ringing", "answered", "decided", "dialing", "ringing",
            "answered", "ended"
        ]
    );
    assert!(matches!(
        &kinds[1],
        K::LegDialing {
            side: Party::Caller,
            user: Some(ALICE),
            ..
        }
    ));
    assert!(matches!(
        &kinds[5],
        K::LegDialing {
            side: Party::Callee,
            user: Some(BOB),
            ..
        }
    ));
}

#[actix::test]
async fn click_to_dial_device_not_answering_ends_the_call() {
    tokio::time::pause();
    let mut h = Harness::click_to_dial(&[(ALICE, ALICE_PHONE), (BOB, BOB_PHONE)], "1002").await;
    let device = match h.next().await {
        LegCommand::Dial(d) => d.leg,
        other => panic!("expected a dial to Alice's device, got {other:?}"),
    };
    tokio::time::advance(Duration::from_secs(61)).await;
    assert!(matches!(h.next().await, LegCommand::Cancel { leg } if leg == device));
    let (record, _) = h.ended().await;
    assert_eq!(record.outcome, CallOutcome::NoAnswer);
    assert_eq!(record.legs.len(), 1, "the destination never rang");
}

#[actix::test]
async fn click_to_dial_released_while_the_device_rings_cancels_it() {
    let mut h = Harness::click_to_dial(&[(ALICE, ALICE_PHONE), (BOB, BOB_PHONE)], "1002").await;
    let device = match h.next().await {
        LegCommand::Dial(d) => d.leg,
        other => panic!("expected a dial to Alice's device, got {other:?}"),
    };
    assert_eq!(
        h.control_now(BOB, ControlAction::Release).await,
        Err(ControlError::NotFound),
        "Bob is not rung before Alice's device answers"
    );
    assert_eq!(h.control_now(ALICE, ControlAction::Release).await, Ok(()));
    assert!(matches!(h.next().await, LegCommand::Cancel { leg } if leg == device));
    let (record, _) = h.ended().await;
    assert_eq!(record.outcome, CallOutcome::Cancelled);
}

#[actix::test]
async fn answer_on_is_the_override_for_the_ringing_user_only() {
    let mut h = Harness::start(&[BOB_PHONE], "1002");
    let b = h.dialled_legs(1).await[0];
    assert_eq!(
        h.control_now(
            ALICE,
            ControlAction::AnswerOn(crate::ids::DeviceId::for_test(1))
        )
        .await,
        Err(ControlError::WrongState(
            "the call is not ringing to the user"
        ))
    );
    assert_eq!(
        h.control_now(
            BOB,
            ControlAction::AnswerOn(crate::ids::DeviceId::for_test(9))
        )
        .await,
        Err(ControlError::UnknownDevice)
    );
    // Bob's only device keeps ringing.
    assert_eq!(
        h.control_now(
            BOB,
            ControlAction::AnswerOn(crate::ids::DeviceId::for_test(1))
        )
        .await,
        Ok(())
    );
    h.event(b, LegEventKind::Failed { code: 486 });
    assert!(matches!(
        h.next().await,
        LegCommand::Reject { code: 486, .. }
    ));
    h.ended().await;
}

#[actix::test]
async fn caller_transfers_the_callee_who_then_anchors_the_call() {
    let (mut h, b) = Harness::connected(&[(BOB, BOB_PHONE), (testkit::CAROL, CAROL_PHONE)]).await;
    assert_eq!(
        h.control_now(
            ALICE,
            ControlAction::Transfer {
                target: "1003".into()
            }
        )
        .await,
        Ok(())
    );
    assert!(matches!(h.next().await, LegCommand::Hangup { leg } if leg == h.a));
    // Carol takes Alice's place on the caller side; she sees Bob calling.
    let carol = match h.next().await {
        LegCommand::Dial(d) => {
            assert_eq!(d.body, None);
            assert_eq!(d.caller.user, "1002");
            assert_eq!(d.callee.user, "1003");
            d.leg
        }
        other => panic!("expected a dial to Carol, got {other:?}"),
    };
    // Alice's old leg may send its BYE late: it no longer matters.
    h.event(h.a, LegEventKind::Hangup);
    h.event(
        carol,
        LegEventKind::Answered {
            body: Some(sdp("v=0\r\n")),
        },
    );
    assert!(matches!(h.next().await, LegCommand::ReOffer { leg, .. } if leg == b));
    h.event(
        b,
        LegEventKind::ReAnswer {
            code: 200,
            body: Some(sdp("v=0\r\n")),
        },
    );
    assert!(matches!(h.next().await, LegCommand::Ack { leg, .. } if leg == b));
    assert!(matches!(h.next().await, LegCommand::Ack { leg, .. } if leg == carol));
    // Carol may hold Bob now: she is on the caller side.
    let hold = h.control(testkit::CAROL, ControlAction::Hold);
    assert!(matches!(h.next().await, LegCommand::ReOffer { leg, .. } if leg == b));
    h.event(
        b,
        LegEventKind::ReAnswer {
            code: 200,
            body: None,
        },
    );
    assert!(matches!(h.next().await, LegCommand::Ack { leg, .. } if leg == b));
    assert_eq!(hold.await.unwrap(), Ok(()));
    h.event(b, LegEventKind::Hangup);
    assert!(matches!(h.next().await, LegCommand::Hangup { leg } if leg == carol));
    let (record, kinds) = h.ended().await;
    assert_eq!(record.outcome, CallOutcome::Answered);
    assert_eq!(record.hangup_by, Some(Party::Callee));
    assert!(kinds
        .iter()
        .any(|k| matches!(k, K::LegDialing { leg, side: Party::Caller, .. } if *leg == carol)));
    assert!(kinds.iter().any(|k| matches!(
        k,
        K::MediaChanged {
            by: Party::Caller,
            held: true
        }
    )));
}

#[actix::test]
async fn transfer_target_not_answering_hangs_up_the_remaining_party() {
    let (mut h, b) = Harness::connected(&[(BOB, BOB_PHONE), (testkit::CAROL, CAROL_PHONE)]).await;
    let transfer = ControlAction::Transfer {
        target: "1003".into(),
    };
    assert_eq!(h.control_now(BOB, transfer).await, Ok(()));
    assert!(matches!(h.next().await, LegCommand::Hangup { leg } if leg == b));
    let carol = expect_dial_to(&mut h, CAROL_PHONE).await;
    h.event(carol, LegEventKind::Failed { code: 486 });
    assert!(matches!(h.next().await, LegCommand::Hangup { leg } if leg == h.a));
    let (record, _) = h.ended().await;
    assert_eq!(
        record.outcome,
        CallOutcome::Answered,
        "it was answered before"
    );
    assert_eq!(record.hangup_by, Some(Party::System));
    assert_eq!(record.legs[2].status_code, Some(486));
}
