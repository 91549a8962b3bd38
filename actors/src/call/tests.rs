//! Call actor tests: a FakeSip harness stands in for the SIP side.

use super::*;
use crate::events::CallEventKind as K;
use crate::testkit::{self, FakeSip, ALICE, BOB, TENANT};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

#[test]
fn final_status_prefers_busy_then_decline() {
    assert_eq!(final_status(&[408, 486]), (486, CallOutcome::Busy));
    assert_eq!(final_status(&[603, 480]), (603, CallOutcome::Rejected));
    assert_eq!(final_status(&[408, 408]), (408, CallOutcome::NoAnswer));
    assert_eq!(final_status(&[404]), (480, CallOutcome::Unavailable));
    assert_eq!(final_status(&[500]), (500, CallOutcome::Failed));
    assert_eq!(final_status(&[]), (480, CallOutcome::Unavailable));
}

struct Harness {
    call_id: CallId,
    call: Addr<CallActor>,
    a: LegId,
    sip: mpsc::UnboundedReceiver<LegCommand>,
    events: broadcast::Receiver<Arc<Event>>,
    persistence: Arc<testkit::MemoryPersistence>,
    platform: Arc<Platform>,
}

impl Harness {
    fn start(bob_contacts: &[&str], dialled: &str) -> Self {
        let bindings: Vec<_> = bob_contacts.iter().map(|c| (BOB, *c)).collect();
        Self::start_with(testkit::MapFeatures::default(), &bindings, dialled)
    }

    fn start_with(
        features: testkit::MapFeatures,
        bindings: &[(UserId, &str)],
        dialled: &str,
    ) -> Self {
        let (platform, persistence, bus) = testkit::platform_with(features, bindings);
        let (tx, sip) = mpsc::unbounded_channel();
        let fake = FakeSip(tx).start();
        let a = LegId::new();
        let call_id = CallId::new();
        let setup = CallSetup {
            call: call_id,
            tenant: TENANT,
            start: CallStart::Incoming {
                leg: a,
                target: "device:1001".into(),
                offer: Some(Arc::from(&b"v=0\r\n"[..])),
            },
            origin: CallOrigin::User {
                user: ALICE,
                dialled: dialled.into(),
            },
            caller: PartyInfo {
                user: "1001".into(),
                display_name: Some("Alice".into()),
                domain: "a.test".into(),
            },
            dialled: dialled.into(),
            sip: fake.recipient(),
        };
        let events = bus.subscribe();
        let call = CallActor::new(setup, platform.clone()).start();
        Self {
            call_id,
            call,
            a,
            sip,
            events,
            persistence,
            platform,
        }
    }

    async fn next(&mut self) -> LegCommand {
        tokio::time::timeout(Duration::from_secs(120), self.sip.recv())
            .await
            .expect("a leg command")
            .expect("channel open")
    }

    fn call_id(&self) -> CallId {
        self.call_id
    }

    fn event(&self, leg: LegId, kind: LegEventKind) {
        self.call.do_send(LegEvent { leg, kind });
    }

    async fn dialled_legs(&mut self, n: usize) -> Vec<LegId> {
        let mut legs = Vec::new();
        for _ in 0..n {
            match self.next().await {
                LegCommand::Dial(d) if matches!(d.target, DialTarget::Contact(_)) => {
                    assert_eq!(d.callee.user, "1002");
                    legs.push(d.leg);
                }
                other => panic!("expected Dial, got {other:?}"),
            }
        }
        legs
    }

    /// Waits until the call actor has stopped, then returns its record and events.
    async fn ended(mut self) -> (CallRecord, Vec<K>) {
        let mut kinds = Vec::new();
        loop {
            let e = tokio::time::timeout(Duration::from_secs(120), self.events.recv())
                .await
                .expect("an event")
                .expect("bus open");
            let Event::Call(e) = e.as_ref() else { continue };
            let done = matches!(e.kind, K::Ended { .. });
            kinds.push(e.kind.clone());
            if done {
                break;
            }
        }
        let record = self
            .persistence
            .records
            .lock()
            .unwrap()
            .pop()
            .expect("a call record");
        (record, kinds)
    }
}

fn names(kinds: &[K]) -> Vec<&'static str> {
    kinds
        .iter()
        .map(|k| match k {
            K::Started { .. } => "started",
            K::Decided { .. } => "decided",
            K::Overridden { .. } => "overridden",
            K::LegDialing { .. } => "dialing",
            K::Ringing { .. } => "ringing",
            K::Answered { .. } => "answered",
            K::MediaChanged { .. } => "media",
            K::LegEnded { .. } => "leg_ended",
            K::Ended { .. } => "ended",
        })
        .collect()
}

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

fn bob(profile: crate::feature::Profile) -> testkit::MapFeatures {
    let mut m = testkit::MapFeatures::default();
    m.0.insert(
        BOB,
        crate::ports::UserFeatures {
            profile,
            ..Default::default()
        },
    );
    m
}

async fn expect_dial_to(h: &mut Harness, contact: &str) -> LegId {
    match h.next().await {
        LegCommand::Dial(d) => match &d.target {
            DialTarget::Contact(b) if b.contact == contact => d.leg,
            other => panic!("expected a dial to {contact}, got {other:?}"),
        },
        other => panic!("expected a dial to {contact}, got {other:?}"),
    }
}

const BOB_PHONE: &str = "sip:1002@127.0.0.1:5062";
const CAROL_PHONE: &str = "sip:1003@127.0.0.1:5063";

fn sequential() -> crate::feature::Profile {
    use crate::feature::profile::{Handling, SequentialStep};
    crate::feature::Profile {
        default_handling: Handling::Sequential {
            steps: vec![
                SequentialStep {
                    target: Target::Devices,
                    seconds: 10,
                },
                SequentialStep {
                    target: Target::Extension("1003".into()),
                    seconds: 15,
                },
            ],
            fallback: None,
        },
        ..Default::default()
    }
}

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
    let call = h.platform.call(TENANT, h.call_id()).expect("a live call");
    // Another tenant cannot reach the call.
    assert!(h
        .platform
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
    let (record, _) = h.ended().await;
    assert_eq!(record.hangup_by, Some(Party::Callee));
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
