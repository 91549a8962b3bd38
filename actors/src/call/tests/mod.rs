//! Call actor tests through the actix shell: the whole platform boots, a FakeSip
//! harness stands in for the SIP side. Split by topic; the helpers are here.

use super::*;
use crate::events::CallEventKind as K;
use crate::events::Event;
use crate::feature::Target;
use crate::ids::{CallId, DeviceId, LegId, UserId};
use crate::model::{CallDirection, CallOutcome, CallRecord, Party};
use crate::platform::Platform;
use crate::ports::{
    Body, Dial, DialTarget, LegCommand, LegEvent, LegEventKind, PartyInfo, RedirectTarget,
};
use crate::tenant::CallOrigin;
use crate::testkit::{self, FakeSip, ALICE, BOB, TENANT};
use actix::prelude::*;
use std::sync::Arc;
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
        let alice = platform.registry.user(ALICE).unwrap();
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
        let addr = self.platform.registry.user(user).unwrap();
        addr.send(crate::user::GetUserSnapshot)
            .await
            .unwrap()
            .status
    }
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
            self.platform.services.bus.clone(),
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

mod basic;
mod conference;
mod control;
mod devices;
mod plan;
mod transfer;
