//! A call relayed between two legs: answer, forks, busy, cancel, ring timeout, re-INVITE.

use super::*;

#[actix::test]
async fn answered_call_is_relayed_and_recorded() {
    let mut h = Harness::start(&["sip:1002@127.0.0.1:5062"], "1002");
    let b = h.dialled_legs(1).await[0];
    h.event(
        b,
        LegEventKind::Progress {
            code: 180,
            body: None,
        },
    );
    assert!(matches!(h.next().await, LegCommand::Progress { leg, code: 180, .. } if leg == h.a));
    h.event(b, LegEventKind::Answered { body: None });
    assert!(matches!(h.next().await, LegCommand::Answer { leg, .. } if leg == h.a));
    h.event(h.a, LegEventKind::Acked { body: None });
    assert!(matches!(h.next().await, LegCommand::Ack { leg, .. } if leg == b));
    // Bob is busy while the call is up.
    let snap = h
        .platform
        .registry
        .user(BOB)
        .unwrap()
        .send(crate::user::GetUserSnapshot)
        .await
        .unwrap();
    assert_eq!(snap.status, crate::user::UserStatus::Busy);
    h.event(h.a, LegEventKind::Hangup);
    assert!(matches!(h.next().await, LegCommand::Hangup { leg } if leg == b));
    let (record, kinds) = h.ended().await;
    assert_eq!(
        names(&kinds),
        ["started", "decided", "dialing", "ringing", "answered", "ended"]
    );
    assert!(
        matches!(&kinds[0], K::Started { direction: CallDirection::Internal, caller, callee, .. } if caller == "1001" && callee == "1002")
    );
    assert_eq!(record.outcome, CallOutcome::Answered);
    assert_eq!(record.hangup_by, Some(Party::Caller));
    assert_eq!(record.legs.len(), 2);
    assert_eq!(record.legs[1].status_code, Some(200));
    assert!(record.answered_at.is_some());
}

#[actix::test]
async fn first_answer_wins_and_other_forks_are_cancelled() {
    let mut h = Harness::start(
        &["sip:1002@127.0.0.1:5062", "sip:1002@127.0.0.1:5064"],
        "1002",
    );
    let legs = h.dialled_legs(2).await;
    h.event(
        legs[0],
        LegEventKind::Progress {
            code: 180,
            body: None,
        },
    );
    h.event(
        legs[1],
        LegEventKind::Progress {
            code: 180,
            body: None,
        },
    );
    assert!(matches!(h.next().await, LegCommand::Progress { .. }));
    assert!(matches!(h.next().await, LegCommand::Progress { .. }));
    h.event(legs[1], LegEventKind::Answered { body: None });
    assert!(matches!(h.next().await, LegCommand::Cancel { leg } if leg == legs[0]));
    assert!(matches!(h.next().await, LegCommand::Answer { .. }));
    // The losing fork answers anyway (race with the CANCEL): it is ACKed and hung up.
    h.event(legs[0], LegEventKind::Answered { body: None });
    assert!(matches!(h.next().await, LegCommand::Ack { leg, .. } if leg == legs[0]));
    assert!(matches!(h.next().await, LegCommand::Hangup { leg } if leg == legs[0]));
    h.event(legs[1], LegEventKind::Hangup);
    assert!(matches!(h.next().await, LegCommand::Hangup { leg } if leg == h.a));
    let (record, _) = h.ended().await;
    assert_eq!(record.hangup_by, Some(Party::Callee));
    assert_eq!(record.legs[1].status_code, Some(487));
}

#[actix::test]
async fn busy_device_makes_the_call_busy() {
    let mut h = Harness::start(&["sip:1002@127.0.0.1:5062"], "1002");
    let b = h.dialled_legs(1).await[0];
    h.event(b, LegEventKind::Failed { code: 486 });
    assert!(matches!(
        h.next().await,
        LegCommand::Reject { code: 486, .. }
    ));
    let (record, _) = h.ended().await;
    assert_eq!(record.outcome, CallOutcome::Busy);
}

#[actix::test]
async fn nobody_registered_is_480_and_unknown_extension_404() {
    let mut h = Harness::start(&[], "1002");
    assert!(matches!(
        h.next().await,
        LegCommand::Reject { code: 480, .. }
    ));
    assert_eq!(h.ended().await.0.outcome, CallOutcome::Unavailable);
    let mut h = Harness::start(&[], "4711");
    assert!(matches!(
        h.next().await,
        LegCommand::Reject { code: 404, .. }
    ));
    assert_eq!(h.ended().await.0.outcome, CallOutcome::Unavailable);
}

#[actix::test]
async fn caller_cancel_cancels_every_fork() {
    let mut h = Harness::start(&["sip:1002@127.0.0.1:5062"], "1002");
    let b = h.dialled_legs(1).await[0];
    h.event(h.a, LegEventKind::Cancelled);
    assert!(matches!(h.next().await, LegCommand::Cancel { leg } if leg == b));
    let (record, _) = h.ended().await;
    assert_eq!(record.outcome, CallOutcome::Cancelled);
    assert_eq!(record.hangup_by, Some(Party::Caller));
}

#[actix::test]
async fn ring_timeout_ends_with_408() {
    tokio::time::pause();
    let mut h = Harness::start(&["sip:1002@127.0.0.1:5062"], "1002");
    let b = h.dialled_legs(1).await[0];
    tokio::time::advance(Duration::from_secs(61)).await;
    assert!(matches!(h.next().await, LegCommand::Cancel { leg } if leg == b));
    assert!(matches!(
        h.next().await,
        LegCommand::Reject { code: 408, .. }
    ));
    let (record, _) = h.ended().await;
    assert_eq!(record.outcome, CallOutcome::NoAnswer);
    assert_eq!(record.hangup_by, Some(Party::System));
}

#[actix::test]
async fn reinvite_is_relayed_both_ways() {
    let mut h = Harness::start(&["sip:1002@127.0.0.1:5062"], "1002");
    let b = h.dialled_legs(1).await[0];
    h.event(b, LegEventKind::Answered { body: None });
    assert!(matches!(h.next().await, LegCommand::Answer { .. }));
    let hold: Body = Arc::from(&b"v=0\r\na=sendonly\r\n"[..]);
    h.event(
        h.a,
        LegEventKind::ReOffer {
            body: Some(hold.clone()),
        },
    );
    assert!(
        matches!(h.next().await, LegCommand::ReOffer { leg, body: Some(x) } if leg == b && x == hold)
    );
    // A second offer while one is pending is refused with 491.
    h.event(b, LegEventKind::ReOffer { body: None });
    assert!(matches!(h.next().await, LegCommand::ReAnswer { leg, code: 491, .. } if leg == b));
    h.event(
        b,
        LegEventKind::ReAnswer {
            code: 200,
            body: None,
        },
    );
    assert!(matches!(h.next().await, LegCommand::ReAnswer { leg, code: 200, .. } if leg == h.a));
    h.event(h.a, LegEventKind::Acked { body: None });
    assert!(matches!(h.next().await, LegCommand::Ack { leg, .. } if leg == b));
    h.event(b, LegEventKind::Hangup);
    assert!(matches!(h.next().await, LegCommand::Hangup { .. }));
    let (_, kinds) = h.ended().await;
    assert!(kinds.iter().any(|k| matches!(
        k,
        K::MediaChanged {
            by: Party::Caller,
            held: true
        }
    )));
}
