//! Conferences on the media bridge.

use super::*;

#[actix::test]
async fn conference_mixes_the_held_party_the_active_one_and_the_host() {
    let media = testkit::FakeMedia::default();
    let bindings = [(BOB, BOB_PHONE), (testkit::CAROL, CAROL_PHONE)];
    {
        // Refused before anything moves.
        let (first, _) = Harness::connected_with_media(&bindings, media.clone()).await;
        let mut second = first.second_call("1003");
        second.answered_by(CAROL_PHONE).await;
        let conference = |with| ControlAction::Conference { with };
        assert_eq!(
            second
                .control_now(ALICE, conference(second.call_id()))
                .await,
            Err(ControlError::WrongState(
                "a call cannot be conferenced with itself"
            ))
        );
        assert_eq!(
            second.control_now(BOB, conference(first.call_id())).await,
            Err(ControlError::NotFound),
            "Bob takes no part in the second call"
        );
    }
    let conference = |with| ControlAction::Conference { with };
    let Conferenced {
        mut first,
        mut second,
        bob,
        carol,
        to,
    } = conferenced(&media, &bindings).await;
    for (leg, who) in [(second.a, "alice"), (carol, "carol")] {
        second.event(leg, answer_sdp(who));
        assert!(matches!(second.next().await, LegCommand::Ack { leg: l, body: None } if l == leg));
    }
    to.do_send(LegEvent {
        leg: bob,
        kind: answer_sdp("bob"),
    });
    assert!(matches!(first.next().await, LegCommand::Ack { leg, body: None } if leg == bob));
    // Each answer reached the bridge.
    let log = media.log();
    for leg in [second.a, carol, bob] {
        assert!(log.contains(&format!("answer {leg}")), "{log:?}");
    }
    assert_eq!(second.status_of(BOB).await, crate::user::UserStatus::Busy);

    // A conference is released or extended, nothing else.
    assert_eq!(
        second.control_now(ALICE, ControlAction::Hold).await,
        Err(ControlError::WrongState(
            "a conference can only be released or extended"
        ))
    );
    assert_eq!(
        second.control_now(BOB, conference(first.call_id())).await,
        Err(ControlError::WrongState(
            "only the host adds parties to the conference"
        ))
    );

    // Carol holds: tsps answers her itself; the others are not asked.
    second.event(
        carol,
        LegEventKind::ReOffer {
            body: Some(sdp("v=0\r\na=sendonly\r\n")),
        },
    );
    match second.next().await {
        LegCommand::ReAnswer {
            leg,
            code: 200,
            body,
        } if leg == carol => assert!(body_text(&body).contains("a=inactive")),
        other => panic!("expected tsps's answer to Carol, got {other:?}"),
    }
    // Bob leaves from the portal: only his leg ends, Alice and Carol go on.
    assert_eq!(
        second.control_now(BOB, ControlAction::Release).await,
        Ok(())
    );
    assert!(matches!(first.next().await, LegCommand::Hangup { leg } if leg == bob));
    assert!(media.log().contains(&format!("remove {bob}")));
    assert_eq!(second.status_of(BOB).await, crate::user::UserStatus::Idle);
    // The host leaves: the conference ends for everyone, and the bridge closes.
    assert_eq!(
        second.control_now(ALICE, ControlAction::Release).await,
        Ok(())
    );
    let mut hung_up = vec![];
    for _ in 0..2 {
        match second.next().await {
            LegCommand::Hangup { leg } => hung_up.push(leg),
            other => panic!("expected BYEs, got {other:?}"),
        }
    }
    hung_up.sort();
    let mut want = vec![second.a, carol];
    want.sort();
    assert_eq!(hung_up, want);

    let (r2, k2) = second.record_of().await;
    assert_eq!(r2.outcome, CallOutcome::Answered);
    assert_eq!(
        r2.hangup_by,
        Some(Party::Caller),
        "Alice, the host, ended it"
    );
    let want = format!("1001: conference with 1002 of call {}", first.call_id());
    assert!(r2.decision.contains(&want), "{:?}", r2.decision);
    assert_eq!(r2.legs.len(), 3, "Alice, Carol and Bob: {:?}", r2.legs);
    let parties: Vec<Vec<LegId>> = k2
        .iter()
        .filter_map(|k| match k {
            K::Conference { host, parties } => {
                assert_eq!(*host, ALICE);
                Some(parties.iter().map(|p| p.leg).collect())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        parties,
        [vec![second.a, carol, bob], vec![second.a, carol]],
        "the conference, then without Bob"
    );
    assert_eq!(media.log().last().map(String::as_str), Some("close"));
    assert_eq!(second.status_of(ALICE).await, crate::user::UserStatus::Idle);
}

#[actix::test]
async fn a_party_hanging_up_leaves_and_the_last_one_alone_is_released() {
    let media = testkit::FakeMedia::default();
    let bindings = [(BOB, BOB_PHONE), (testkit::CAROL, CAROL_PHONE)];
    let Conferenced {
        bob,
        carol,
        to,
        mut second,
        ..
    } = conferenced(&media, &bindings).await;
    // Carol refuses the bridge: she leaves (BYE after the failed re-INVITE).
    second.event(
        carol,
        LegEventKind::ReAnswer {
            code: 488,
            body: None,
        },
    );
    assert!(matches!(second.next().await, LegCommand::Hangup { leg } if leg == carol));
    // Bob hangs up: Alice is alone and is released.
    to.do_send(LegEvent {
        leg: bob,
        kind: LegEventKind::Hangup,
    });
    assert!(matches!(second.next().await, LegCommand::Hangup { leg } if leg == second.a));
    let (r2, _) = second.record_of().await;
    assert_eq!(r2.outcome, CallOutcome::Answered);
    assert_eq!(r2.hangup_by, Some(Party::Callee), "Bob's BYE ended it");
}

#[actix::test]
async fn without_a_bridge_nothing_is_touched() {
    let bindings = [(BOB, BOB_PHONE), (testkit::CAROL, CAROL_PHONE)];
    let (mut first, bob) = Harness::connected(&bindings).await;
    let mut second = first.second_call("1003");
    let carol = second.answered_by(CAROL_PHONE).await;
    assert_eq!(
        second
            .control_now(
                ALICE,
                ControlAction::Conference {
                    with: first.call_id()
                }
            )
            .await,
        Err(ControlError::Media(crate::ports::MediaError::Unavailable))
    );
    assert_eq!(
        second
            .control_now(
                ALICE,
                ControlAction::Conference {
                    with: CallId::new()
                }
            )
            .await,
        Err(ControlError::NotFound),
        "an unknown call is not found, bridge or not"
    );
    // Both calls go on as they were.
    first.event(bob, LegEventKind::Hangup);
    assert!(matches!(first.next().await, LegCommand::Hangup { leg } if leg == first.a));
    second.event(carol, LegEventKind::Hangup);
    assert!(matches!(second.next().await, LegCommand::Hangup { leg } if leg == second.a));
}

#[actix::test]
async fn the_host_adds_a_third_call_to_the_conference() {
    let media = testkit::FakeMedia::default();
    let bindings = [(BOB, BOB_PHONE), (testkit::CAROL, CAROL_PHONE)];
    let Conferenced {
        first,
        mut second,
        bob,
        carol,
        ..
    } = conferenced(&media, &bindings).await;
    drop(first);
    // Alice's third call: to Carol's phone once more (a second line; any party would do).
    let mut third = second.second_call("1003");
    let carol2 = third.answered_by(CAROL_PHONE).await;
    let added = second.control(
        ALICE,
        ControlAction::Conference {
            with: third.call_id(),
        },
    );
    let to3 = match third.next().await {
        LegCommand::HandOver { leg, events } if leg == carol2 => events,
        other => panic!("expected the hand-over of the third call's party, got {other:?}"),
    };
    assert!(matches!(third.next().await, LegCommand::Hangup { leg } if leg == third.a));
    // Only the new party is invited to the bridge; the others are not asked again.
    bridge_offer(third.next().await, carol2);
    assert_eq!(added.await.unwrap(), Ok(()));
    to3.do_send(LegEvent {
        leg: carol2,
        kind: answer_sdp("carol-again"),
    });
    assert!(matches!(third.next().await, LegCommand::Ack { leg, body: None } if leg == carol2));
    assert!(media.log().contains(&format!("answer {carol2}")));
    assert_eq!(
        media.log().iter().filter(|l| *l == "open").count(),
        1,
        "one bridge"
    );
    // The host ends it: every party gets a BYE where its leg lives.
    assert_eq!(
        second.control_now(ALICE, ControlAction::Release).await,
        Ok(())
    );
    assert!(matches!(third.next().await, LegCommand::Hangup { leg } if leg == carol2));
    let (r2, k2) = second.record_of().await;
    let last = k2
        .iter()
        .rev()
        .find_map(|k| match k {
            K::Conference { parties, .. } => Some(parties.iter().map(|p| p.leg).collect()),
            _ => None,
        })
        .unwrap_or_else(Vec::new);
    assert_eq!(last, [second.a, carol, bob, carol2], "four parties");
    let want = format!("1001: conference with 1003 of call {}", third.call_id());
    assert!(r2.decision.contains(&want), "{:?}", r2.decision);
    assert_eq!(r2.legs.len(), 4);
}
