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
        let a = LegId::new();
        let start = CallStart::Incoming {
            leg: a,
            target: "device:1001".into(),
            offer: Some(Arc::from(&b"v=0\r\n"[..])),
        };
        Self::with_start(platform, persistence, bus, a, start, dialled)
    }

    /// Alice clicks to dial `dialled` from her device (her first registered contact).
    async fn click_to_dial(bindings: &[(UserId, &str)], dialled: &str) -> Self {
        let features = testkit::MapFeatures::default();
        let (platform, persistence, bus) = testkit::platform_with(features, bindings);
        let alice = platform.user(ALICE).unwrap();
        let mut contacts = alice.send(crate::user::GetBindings).await.unwrap();
        contacts.truncate(1);
        let start = CallStart::ClickToDial {
            device: contacts[0].device_id,
            reach: DeviceReach::Contacts(contacts),
        };
        // No incoming leg: `a` names none of the call's legs.
        Self::with_start(platform, persistence, bus, LegId::new(), start, dialled)
    }

    fn with_start(
        platform: Arc<Platform>,
        persistence: Arc<testkit::MemoryPersistence>,
        bus: crate::events::EventBus,
        a: LegId,
        start: CallStart,
        dialled: &str,
    ) -> Self {
        let (tx, sip) = mpsc::unbounded_channel();
        let fake = FakeSip(tx).start();
        let call_id = CallId::new();
        let setup = CallSetup {
            call: call_id,
            tenant: TENANT,
            start,
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
            K::LegJoined { .. } => "joined",
            K::PartyChanged { .. } => "party",
            K::Conference { .. } => "conference",
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

// ----- third-party call control ------------------------------------------------------

const ALICE_PHONE: &str = "sip:1001@127.0.0.1:5061";

fn sdp(text: &str) -> Body {
    Arc::from(text.as_bytes())
}

fn body_text(body: &Option<Body>) -> String {
    String::from_utf8_lossy(body.as_deref().unwrap_or_default()).into_owned()
}

impl Harness {
    /// Sends a control command without waiting for its answer (hold and resume answer
    /// only once the other party has).
    fn control(
        &self,
        user: UserId,
        action: ControlAction,
    ) -> tokio::task::JoinHandle<Result<(), ControlError>> {
        let call = self.call.clone();
        actix::spawn(async move {
            call.send(Control { user, action })
                .await
                .unwrap_or(Err(ControlError::NotFound))
        })
    }

    async fn control_now(&self, user: UserId, action: ControlAction) -> Result<(), ControlError> {
        self.control(user, action).await.unwrap()
    }

    /// Alice calls Bob, Bob answers with `answer`, Alice ACKs: the call is connected.
    async fn connected(bindings: &[(UserId, &str)]) -> (Harness, LegId) {
        let mut h = Harness::start_with(testkit::MapFeatures::default(), bindings, "1002");
        let b = expect_dial_to(&mut h, BOB_PHONE).await;
        h.event(
            b,
            LegEventKind::Answered {
                body: Some(sdp("v=0\r\nm=audio 7000 RTP/AVP 0\r\na=sendrecv\r\n")),
            },
        );
        assert!(matches!(h.next().await, LegCommand::Answer { leg, .. } if leg == h.a));
        h.event(h.a, LegEventKind::Acked { body: None });
        assert!(matches!(h.next().await, LegCommand::Ack { leg, .. } if leg == b));
        (h, b)
    }

    async fn status_of(&self, user: UserId) -> crate::user::UserStatus {
        let addr = self.platform.user(user).unwrap();
        addr.send(crate::user::GetUserSnapshot)
            .await
            .unwrap()
            .status
    }
}

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

// ----- consultative transfer ---------------------------------------------------------

impl Harness {
    /// Another call on the same platform, with a SIP side of its own (another shard):
    /// Alice calls `dialled` from a second incoming leg.
    fn second_call(&self, dialled: &str) -> Harness {
        let a = LegId::new();
        let start = CallStart::Incoming {
            leg: a,
            target: "device:1001".into(),
            offer: Some(sdp("v=0\r\no=alice 2 2 IN IP4 127.0.0.1\r\n")),
        };
        Harness::with_start(
            self.platform.clone(),
            self.persistence.clone(),
            self.platform.bus.clone(),
            a,
            start,
            dialled,
        )
    }

    /// Alice's call to `contact` (dialled `dialled`) is answered by it and ACKed.
    async fn answered_by(&mut self, contact: &str) -> LegId {
        let leg = expect_dial_to(self, contact).await;
        self.event(
            leg,
            LegEventKind::Answered {
                body: Some(sdp(
                    "v=0\r\no=callee 1 1 IN IP4 127.0.0.1\r\na=sendrecv\r\n",
                )),
            },
        );
        assert!(matches!(self.next().await, LegCommand::Answer { leg, .. } if leg == self.a));
        self.event(self.a, LegEventKind::Acked { body: None });
        assert!(matches!(self.next().await, LegCommand::Ack { leg: l, .. } if l == leg));
        leg
    }

    /// The record of this call once it has ended (other calls' records stay).
    async fn record_of(&mut self) -> (CallRecord, Vec<K>) {
        let mut kinds = Vec::new();
        loop {
            let e = tokio::time::timeout(Duration::from_secs(120), self.events.recv())
                .await
                .expect("an event")
                .expect("bus open");
            let Event::Call(e) = e.as_ref() else { continue };
            if e.call != self.call_id {
                continue;
            }
            let done = matches!(e.kind, K::Ended { .. });
            kinds.push(e.kind.clone());
            if done {
                break;
            }
        }
        let records = self.persistence.records.lock().unwrap().clone();
        let record = records
            .into_iter()
            .find(|r| r.id == self.call_id)
            .expect("this call's record");
        (record, kinds)
    }
}

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

// ----- external phones and remote answer ---------------------------------------------

const TRUNK: crate::ids::TrunkId = crate::ids::TrunkId::for_test(1);
const ALICE_MOBILE: DeviceId = DeviceId::for_test(50);
const BOB_MOBILE: DeviceId = DeviceId::for_test(51);

fn extras() -> testkit::Extras {
    let phone = |id, user, number: &str| crate::model::ExternalPhone {
        id,
        tenant_id: TENANT,
        user_id: user,
        number: number.into(),
        label: "Mobile".into(),
    };
    testkit::Extras {
        trunks: vec![crate::model::Trunk {
            id: TRUNK,
            tenant_id: TENANT,
            name: "carrier".into(),
            peer_host: "127.0.0.2".into(),
            peer_port: 5060,
            transport: crate::model::TransportKind::Udp,
            username: None,
            password: None,
            inbound_sources: vec![],
        }],
        phones: vec![
            phone(ALICE_MOBILE, ALICE, "+41790000001"),
            phone(BOB_MOBILE, BOB, "+41790000002"),
        ],
        ..Default::default()
    }
}

fn expect_trunk_dial(cmd: LegCommand, number: &str) -> Box<Dial> {
    match cmd {
        LegCommand::Dial(d)
            if d.target
                == (DialTarget::Trunk {
                    trunk_id: TRUNK,
                    number: number.into(),
                }) =>
        {
            d
        }
        other => panic!("expected a dial to {number} through the trunk, got {other:?}"),
    }
}

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

/// Bob's two phones: device 1 answers by itself when told to, device 2 cannot.
fn remote_answer_extras() -> testkit::Extras {
    let device = |n: u128, remote_answer| crate::model::Device {
        id: DeviceId::for_test(n),
        tenant_id: TENANT,
        user_id: BOB,
        sip_username: format!("bob{n}"),
        ha1_md5: String::new(),
        ha1_sha256: String::new(),
        remote_answer,
        digest_algorithms: vec![],
    };
    testkit::Extras {
        devices: vec![device(1, true), device(2, false)],
        ..Default::default()
    }
}

const BOB_DESK: &str = "sip:1002@127.0.0.1:5064";

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

// ----- conference ---------------------------------------------------------------------

impl Harness {
    /// As [`Harness::connected`], on a platform whose conference bridges are `media`.
    async fn connected_with_media(
        bindings: &[(UserId, &str)],
        media: testkit::FakeMedia,
    ) -> (Harness, LegId) {
        let extras = testkit::Extras {
            media: Some(Arc::new(media)),
            ..Default::default()
        };
        let (platform, persistence, bus) =
            testkit::platform_with_extras(testkit::MapFeatures::default(), bindings, extras);
        let a = LegId::new();
        let start = CallStart::Incoming {
            leg: a,
            target: "device:1001".into(),
            offer: Some(sdp("v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\n")),
        };
        let mut h = Harness::with_start(platform, persistence, bus, a, start, "1002");
        let b = expect_dial_to(&mut h, BOB_PHONE).await;
        h.event(
            b,
            LegEventKind::Answered {
                body: Some(sdp("v=0\r\nm=audio 7000 RTP/AVP 0\r\na=sendrecv\r\n")),
            },
        );
        assert!(matches!(h.next().await, LegCommand::Answer { leg, .. } if leg == h.a));
        h.event(h.a, LegEventKind::Acked { body: None });
        assert!(matches!(h.next().await, LegCommand::Ack { leg, .. } if leg == b));
        (h, b)
    }
}

/// The bridge's offer went to `leg` in a re-INVITE.
fn bridge_offer(cmd: LegCommand, leg: LegId) {
    match cmd {
        LegCommand::ReOffer {
            leg: l,
            body: Some(b),
        } if l == leg => {
            assert_eq!(b, testkit::FakeMedia::offer_for(leg));
        }
        other => panic!("expected the bridge's offer to {leg}, got {other:?}"),
    }
}

fn answer_sdp(who: &str) -> LegEventKind {
    LegEventKind::ReAnswer {
        code: 200,
        body: Some(sdp(&format!("v=0\r\no={who} 1 9 IN IP4 127.0.0.1\r\n"))),
    }
}

/// Alice's conference of her two calls: Bob (held on the first call, whose leg now
/// speaks through `to`) and Carol (the second call, which is the conference).
struct Conferenced {
    first: Harness,
    second: Harness,
    bob: LegId,
    carol: LegId,
    to: actix::Recipient<LegEvent>,
}

/// Alice calls Bob, then Carol, and merges the calls: every party has the bridge's
/// offer (not answered yet).
async fn conferenced(media: &testkit::FakeMedia, bindings: &[(UserId, &str)]) -> Conferenced {
    let (mut first, bob) = Harness::connected_with_media(bindings, media.clone()).await;
    let mut second = first.second_call("1003");
    let carol = second.answered_by(CAROL_PHONE).await;
    let merged = second.control(
        ALICE,
        ControlAction::Conference {
            with: first.call_id(),
        },
    );
    // The first call hands Bob over and releases Alice's leg there, as in a transfer.
    let to = match first.next().await {
        LegCommand::HandOver { leg, events } if leg == bob => events,
        other => panic!("expected the hand-over of Bob's leg, got {other:?}"),
    };
    assert!(matches!(first.next().await, LegCommand::Hangup { leg } if leg == first.a));
    // Alice's leg stays: Alice, Carol and Bob each get the bridge's offer for them.
    bridge_offer(second.next().await, second.a);
    bridge_offer(second.next().await, carol);
    bridge_offer(first.next().await, bob);
    assert_eq!(merged.await.unwrap(), Ok(()));
    Conferenced {
        first,
        second,
        bob,
        carol,
        to,
    }
}

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
