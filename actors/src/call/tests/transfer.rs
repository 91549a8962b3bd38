//! Consultative transfer: one call adopts the other call's remaining party.

use super::*;

#[actix::test]
async fn consultative_transfer_joins_the_held_party_with_the_active_one() {
    let bindings = [(BOB, BOB_PHONE), (testkit::CAROL, CAROL_PHONE)];
    let (mut first, bob) = Harness::connected(&bindings).await;
    // Alice holds Bob, then calls Carol: two lines at once.
    let hold = first.control(ALICE, ControlAction::Hold);
    assert!(matches!(first.next().await, LegCommand::ReOffer { leg, .. } if leg == bob));
    first.event(
        bob,
        LegEventKind::ReAnswer {
            code: 200,
            body: Some(sdp("v=0\r\no=bob 1 2 IN IP4 127.0.0.1\r\na=recvonly\r\n")),
        },
    );
    assert!(matches!(first.next().await, LegCommand::Ack { leg, .. } if leg == bob));
    assert_eq!(hold.await.unwrap(), Ok(()));
    let mut second = first.second_call("1003");
    let carol = second.answered_by(CAROL_PHONE).await;
    assert_eq!(first.status_of(ALICE).await, crate::user::UserStatus::Busy);

    // Only Alice's answered calls can be joined, and only hers.
    let join = |with| ControlAction::Join { with };
    assert_eq!(
        second.control_now(BOB, join(first.call_id())).await,
        Err(ControlError::NotFound),
        "Bob takes no part in the second call"
    );
    assert_eq!(
        second.control_now(ALICE, join(CallId::new())).await,
        Err(ControlError::NotFound),
        "no such call"
    );
    assert_eq!(
        second.control_now(ALICE, join(second.call_id())).await,
        Err(ControlError::WrongState(
            "a call cannot be joined with itself"
        ))
    );

    let joined = second.control(ALICE, join(first.call_id()));
    // The first call hands Bob's leg over and releases Alice's leg there.
    let to = match first.next().await {
        LegCommand::HandOver { leg, events } if leg == bob => events,
        other => panic!("expected the hand-over of Bob's leg, got {other:?}"),
    };
    assert!(matches!(first.next().await, LegCommand::Hangup { leg } if leg == first.a));
    // The second call releases Alice's leg there and asks Bob for a fresh offer; Bob's
    // leg stays on the first call's SIP side, so the re-INVITE goes out there.
    assert!(matches!(second.next().await, LegCommand::Hangup { leg } if leg == second.a));
    assert!(matches!(first.next().await, LegCommand::ReOffer { leg, body: None } if leg == bob));
    assert_eq!(joined.await.unwrap(), Ok(()));
    // Alice is on neither call any more.
    assert_eq!(
        second.control_now(ALICE, ControlAction::Release).await,
        Err(ControlError::NotFound)
    );

    // Bob's offer (sent where the shard now sends his leg's events) goes to Carol, and
    // Carol's answer back to Bob in the ACK.
    let bob_offer = sdp("v=0\r\no=bob 1 3 IN IP4 127.0.0.1\r\na=sendrecv\r\n");
    to.do_send(LegEvent {
        leg: bob,
        kind: LegEventKind::ReAnswer {
            code: 200,
            body: Some(bob_offer.clone()),
        },
    });
    assert!(
        matches!(second.next().await, LegCommand::ReOffer { leg, body: Some(x) } if leg == carol && x == bob_offer)
    );
    let carol_answer = sdp("v=0\r\no=carol 1 2 IN IP4 127.0.0.1\r\na=sendrecv\r\n");
    second.event(
        carol,
        LegEventKind::ReAnswer {
            code: 200,
            body: Some(carol_answer.clone()),
        },
    );
    assert!(matches!(second.next().await, LegCommand::Ack { leg, body: None } if leg == carol));
    assert!(
        matches!(first.next().await, LegCommand::Ack { leg, body: Some(x) } if leg == bob && x == carol_answer)
    );
    assert_eq!(second.status_of(ALICE).await, crate::user::UserStatus::Idle);
    assert_eq!(second.status_of(BOB).await, crate::user::UserStatus::Busy);

    // The joined call is an ordinary call: Bob may hold Carol, on his own side.
    let hold = second.control(BOB, ControlAction::Hold);
    assert!(matches!(second.next().await, LegCommand::ReOffer { leg, .. } if leg == carol));
    second.event(
        carol,
        LegEventKind::ReAnswer {
            code: 200,
            body: None,
        },
    );
    assert!(matches!(second.next().await, LegCommand::Ack { leg, .. } if leg == carol));
    assert_eq!(hold.await.unwrap(), Ok(()));
    // Bob hangs up (his leg's events reach the second call): Carol gets the BYE.
    to.do_send(LegEvent {
        leg: bob,
        kind: LegEventKind::Hangup,
    });
    assert!(matches!(second.next().await, LegCommand::Hangup { leg } if leg == carol));

    let (r1, k1) = first.record_of().await;
    assert_eq!(r1.outcome, CallOutcome::Answered);
    assert_eq!(r1.hangup_by, Some(Party::Caller), "Alice left");
    let want = format!(
        "1001: joined 1002 with call {} (consultative transfer)",
        second.call_id()
    );
    assert!(r1.decision.contains(&want), "{:?}", r1.decision);
    assert!(r1.legs.iter().all(|l| l.ended_at.is_some()));
    assert_eq!(names(&k1).last(), Some(&"ended"));

    let (r2, k2) = second.record_of().await;
    assert_eq!(r2.outcome, CallOutcome::Answered);
    assert_eq!(r2.hangup_by, Some(Party::Caller), "Bob took Alice's side");
    let want = format!(
        "1001: joined with 1002 of call {} (consultative transfer)",
        first.call_id()
    );
    assert!(r2.decision.contains(&want), "{:?}", r2.decision);
    assert_eq!(r2.legs.len(), 3, "Alice, Carol and Bob: {:?}", r2.legs);
    assert_eq!((r2.legs[2].id, r2.legs[2].role), (bob, Party::Caller));
    assert!(r2.legs[2].answered_at.is_some());
    assert!(k2.iter().any(|k| matches!(
        k,
        K::LegJoined { leg, side: Party::Caller, user: Some(u), number, from_call, .. }
            if *leg == bob && *u == BOB && number == "1002" && *from_call == first.call_id()
    )));
    assert_eq!(second.status_of(BOB).await, crate::user::UserStatus::Idle);
}

#[actix::test]
async fn consultative_transfer_needs_two_answered_calls() {
    let bindings = [(BOB, BOB_PHONE), (testkit::CAROL, CAROL_PHONE)];
    let (mut first, bob) = Harness::connected(&bindings).await;
    let mut second = first.second_call("1003");
    let carol = expect_dial_to(&mut second, CAROL_PHONE).await;
    // The second call still rings: neither may be joined with the other.
    let join = |with| ControlAction::Join { with };
    assert_eq!(
        first.control_now(ALICE, join(second.call_id())).await,
        Err(ControlError::WrongState("the other call is not answered"))
    );
    assert_eq!(
        second.control_now(ALICE, join(first.call_id())).await,
        Err(ControlError::WrongState("the call is not answered"))
    );
    // Nothing was touched: both calls go on.
    second.event(carol, LegEventKind::Failed { code: 486 });
    assert!(matches!(
        second.next().await,
        LegCommand::Reject { code: 486, .. }
    ));
    first.event(bob, LegEventKind::Hangup);
    assert!(matches!(first.next().await, LegCommand::Hangup { leg } if leg == first.a));
    assert_eq!(first.record_of().await.0.outcome, CallOutcome::Answered);
    assert_eq!(second.record_of().await.0.outcome, CallOutcome::Busy);
}

#[actix::test]
async fn a_leg_that_hangs_up_during_the_hand_over_ends_the_joined_call() {
    let bindings = [(BOB, BOB_PHONE), (testkit::CAROL, CAROL_PHONE)];
    let (mut first, bob) = Harness::connected(&bindings).await;
    let mut second = first.second_call("1003");
    let carol = second.answered_by(CAROL_PHONE).await;
    let joined = second.control(
        ALICE,
        ControlAction::Join {
            with: first.call_id(),
        },
    );
    let to = match first.next().await {
        LegCommand::HandOver { leg, events } if leg == bob => events,
        other => panic!("expected the hand-over, got {other:?}"),
    };
    assert!(matches!(first.next().await, LegCommand::Hangup { .. }));
    // Bob's BYE reaches the second call at once (before or after it took the leg
    // over, it is not lost).
    to.do_send(LegEvent {
        leg: bob,
        kind: LegEventKind::Hangup,
    });
    assert!(matches!(second.next().await, LegCommand::Hangup { leg } if leg == second.a));
    assert_eq!(joined.await.unwrap(), Ok(()));
    assert!(matches!(first.next().await, LegCommand::ReOffer { leg, .. } if leg == bob));
    assert!(matches!(second.next().await, LegCommand::Hangup { leg } if leg == carol));
    let (r2, _) = second.record_of().await;
    assert_eq!(r2.outcome, CallOutcome::Answered);
    assert_eq!(r2.hangup_by, Some(Party::Caller));
}
