use super::*;
use crate::events::{CallEvent, DeviceEvent, StatusEvent};
use crate::feature::Presence;
use crate::ids::LegId;
use crate::model::{CallDirection, CallOutcome, Party};
use crate::user::UserStatus;
use chrono::Utc;
use std::sync::Mutex;

const T: TenantId = TenantId::for_test(1);
const ALICE: UserId = UserId::for_test(1);
const BOB: UserId = UserId::for_test(2);
const CALL: CallId = CallId::for_test(9);
const WATCHER_DEV: DeviceId = DeviceId::for_test(33);

/// Collects what the actor sends to "the shard".
#[derive(Default, Clone)]
struct Inbox(Arc<Mutex<Vec<WatcherUpdate>>>);

struct Collector(Inbox);
impl Actor for Collector {
    type Context = Context<Self>;
}
impl Handler<WatcherUpdate> for Collector {
    type Result = ();
    fn handle(&mut self, msg: WatcherUpdate, _: &mut Self::Context) {
        self.0 .0.lock().unwrap().push(msg);
    }
}

impl Inbox {
    fn take(&self) -> Vec<WatcherUpdate> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn watch(sub: u64, watched: UserId, package: Package, im: bool, to: &Addr<Collector>) -> Watch {
    Watch {
        sub: SubscriptionId(sub),
        watched,
        watcher_device: WATCHER_DEV,
        package,
        im,
        per_device_limit: 2,
        tenant_limit: 3,
        user_actor: None,
        updates: to.clone().recipient(),
    }
}

fn call(kind: CallEventKind) -> BusEvent {
    BusEvent(Arc::new(Event::Call(CallEvent {
        call: CALL,
        tenant: T,
        at: Utc::now(),
        kind,
    })))
}

fn started() -> BusEvent {
    call(CallEventKind::Started {
        direction: CallDirection::Internal,
        caller: "1001".into(),
        callee: "1002".into(),
        caller_user: Some(ALICE),
        callee_user: Some(BOB),
        caller_leg: Some(LegId::for_test(1)),
    })
}

fn decided() -> BusEvent {
    call(CallEventKind::Decided {
        user: BOB,
        contact: Some("Alice <the boss> & co".into()),
        reasons: vec![],
        attendant: false,
    })
}

/// Lets the actors process what was sent (their mailboxes drain in order).
async fn settle(actor: &Addr<PresenceActor>) -> PresenceSnapshot {
    actor.send(GetPresenceSnapshot).await.unwrap()
}

#[actix::test]
async fn a_call_is_notified_early_confirmed_terminated_to_the_callees_watchers() {
    let inbox = Inbox::default();
    let shard = Collector(inbox.clone()).start();
    let actor = PresenceActor::new(T).start();
    let first = actor
        .send(watch(1, BOB, Package::Dialog, true, &shard))
        .await
        .unwrap()
        .unwrap();
    assert!(first.dialogs.is_empty());
    assert_eq!(first.hook, Hook::Idle);
    actor
        .send(watch(2, ALICE, Package::Dialog, false, &shard))
        .await
        .unwrap()
        .unwrap();

    actor.do_send(started());
    actor.do_send(decided());
    let b_leg = LegId::for_test(2);
    actor.do_send(call(CallEventKind::LegDialing {
        leg: b_leg,
        target: "sip:1002@127.0.0.1".into(),
        side: Party::Callee,
        user: Some(BOB),
        device: None,
    }));
    actor.do_send(call(CallEventKind::Ringing { leg: b_leg }));
    actor.do_send(call(CallEventKind::Answered { leg: b_leg }));
    actor.do_send(call(CallEventKind::Ended {
        outcome: CallOutcome::Answered,
        hangup_by: Some(Party::Caller),
    }));
    // The call's end makes Bob's hook idle: no NOTIFY just to drop the ended call.
    actor.do_send(BusEvent(Arc::new(Event::Status(StatusEvent {
        tenant: T,
        user: BOB,
        presence: Presence::Available,
        hook: UserStatus::Idle,
        registered: true,
        dnd: false,
        at: Utc::now(),
    }))));
    let snap = settle(&actor).await;
    assert_eq!(snap.calls, 0);
    tokio::task::yield_now().await;
    let got = inbox.take();
    let of = |sub: u64| -> Vec<(Vec<DialogState>, Hook, bool)> {
        got.iter()
            .filter(|u| u.sub == SubscriptionId(sub))
            .map(|u| {
                (
                    u.state.dialogs.iter().map(|d| d.state).collect(),
                    u.state.hook,
                    u.im,
                )
            })
            .collect()
    };
    use DialogState::*;
    assert_eq!(
        of(1),
        [
            (vec![Early], Hook::Ringing, true),
            (vec![Confirmed], Hook::OnCall, true),
            (vec![Terminated], Hook::Idle, true),
        ]
    );
    // The caller: trying, early once the callee rings, then confirmed, terminated.
    assert_eq!(
        of(2),
        [
            (vec![Trying], Hook::Dialing, false),
            (vec![Early], Hook::Dialing, false),
            (vec![Confirmed], Hook::OnCall, false),
            (vec![Terminated], Hook::Idle, false),
        ]
    );
    let bob_early = got.iter().find(|u| u.sub == SubscriptionId(1)).unwrap();
    let d = &bob_early.state.dialogs[0];
    assert!(!d.initiator);
    assert_eq!(d.remote.number, "1001");
    assert_eq!(d.remote.name.as_deref(), Some("Alice <the boss> & co"));
    // Seq grows with each change, so the SIP side keeps the newer of two states.
    let seqs: Vec<u64> = got
        .iter()
        .filter(|u| u.sub == SubscriptionId(1))
        .map(|u| u.state.seq)
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

#[actix::test]
async fn presence_watchers_hear_only_presence_changes() {
    let inbox = Inbox::default();
    let shard = Collector(inbox.clone()).start();
    let actor = PresenceActor::new(T).start();
    actor
        .send(watch(1, BOB, Package::Presence, false, &shard))
        .await
        .unwrap()
        .unwrap();
    actor.do_send(BusEvent(Arc::new(Event::Device(DeviceEvent {
        tenant: T,
        user: BOB,
        device: DeviceId::for_test(2),
        contacts: 1,
        at: Utc::now(),
    }))));
    actor.do_send(started());
    actor.do_send(decided()); // ringing: the presence view says "Ringing"
    actor.do_send(call(CallEventKind::LegDialing {
        leg: LegId::for_test(2),
        target: "sip:1002@127.0.0.1".into(),
        side: Party::Callee,
        user: Some(BOB),
        device: None,
    }));
    actor.do_send(call(CallEventKind::Answered {
        leg: LegId::for_test(2),
    }));
    actor.do_send(BusEvent(Arc::new(Event::Status(StatusEvent {
        tenant: T,
        user: BOB,
        presence: Presence::Away,
        hook: UserStatus::Busy,
        registered: true,
        dnd: false,
        at: Utc::now(),
    }))));
    actor.do_send(call(CallEventKind::Ended {
        outcome: CallOutcome::Answered,
        hangup_by: None,
    }));
    settle(&actor).await;
    tokio::task::yield_now().await;
    let got: Vec<(bool, Option<Activity>, &str)> = inbox
        .take()
        .iter()
        .map(|u| {
            assert!(u.notify && !u.im);
            let p = &u.state.presence;
            (p.open, p.activity, p.note)
        })
        .collect();
    assert_eq!(
        got,
        [
            (true, None, "Available"),
            (true, None, "Ringing"),
            (true, Some(Activity::OnThePhone), "On the phone"),
            // Away while on the phone: still on the phone; away once the call ends.
            (true, Some(Activity::Away), "Away"),
        ]
    );
}

#[actix::test]
async fn a_device_holds_a_bounded_number_of_subscriptions() {
    let shard = Collector(Inbox::default()).start();
    let actor = PresenceActor::new(T).start();
    for sub in 1..=2 {
        actor
            .send(watch(sub, BOB, Package::Dialog, false, &shard))
            .await
            .unwrap()
            .unwrap();
    }
    let third = actor
        .send(watch(3, ALICE, Package::Dialog, false, &shard))
        .await
        .unwrap();
    assert_eq!(
        third,
        Err(WatchError::TooManyForDevice {
            device: WATCHER_DEV,
            limit: 2
        })
    );
    actor.do_send(Unwatch {
        sub: SubscriptionId(1),
    });
    actor
        .send(watch(4, ALICE, Package::Dialog, false, &shard))
        .await
        .unwrap()
        .unwrap();
    let snap = settle(&actor).await;
    assert_eq!((snap.subscriptions, snap.watched_users), (2, 2));
    actor.do_send(Unwatch {
        sub: SubscriptionId(2),
    });
    actor.do_send(Unwatch {
        sub: SubscriptionId(4),
    });
    let snap = settle(&actor).await;
    assert_eq!(snap, PresenceSnapshot::default());
}

#[actix::test]
async fn another_tenants_events_are_ignored() {
    let inbox = Inbox::default();
    let shard = Collector(inbox.clone()).start();
    let actor = PresenceActor::new(T).start();
    actor
        .send(watch(1, BOB, Package::Presence, false, &shard))
        .await
        .unwrap()
        .unwrap();
    actor.do_send(BusEvent(Arc::new(Event::Status(StatusEvent {
        tenant: TenantId::for_test(2),
        user: BOB,
        presence: Presence::Away,
        hook: UserStatus::Idle,
        registered: true,
        dnd: false,
        at: Utc::now(),
    }))));
    settle(&actor).await;
    tokio::task::yield_now().await;
    assert!(inbox.take().is_empty());
}

#[actix::test]
async fn the_first_watch_reads_presence_and_devices_from_the_user_actor() {
    let (platform, _, _) = crate::testkit::platform(&["sip:1002@127.0.0.1:5062"]);
    let shard = Collector(Inbox::default()).start();
    let actor = platform.registry.presence(crate::testkit::TENANT);
    let state = actor
        .send(Watch {
            user_actor: platform.registry.user(crate::testkit::BOB),
            ..watch(1, crate::testkit::BOB, Package::Presence, false, &shard)
        })
        .await
        .unwrap()
        .unwrap();
    assert!(state.presence.open, "{state:?}");
    assert_eq!(state.presence.note, "Available");
    // The registry hands out the same actor for the tenant.
    assert_eq!(
        platform
            .registry
            .presence(crate::testkit::TENANT)
            .send(GetPresenceSnapshot)
            .await
            .unwrap()
            .subscriptions,
        1
    );
}

#[actix::test]
async fn the_tenants_devices_together_hold_at_most_its_quota() {
    let shard = Collector(Inbox::default()).start();
    let actor = PresenceActor::new(T).start();
    // Three devices, each under its own limit of two: the tenant's quota (3) stops
    // the fourth subscription.
    for (sub, dev) in [(1, 41), (2, 42), (3, 43)] {
        let mut w = watch(sub, BOB, Package::Dialog, false, &shard);
        w.watcher_device = DeviceId::for_test(dev);
        actor.send(w).await.unwrap().unwrap();
    }
    let mut fourth = watch(4, ALICE, Package::Dialog, false, &shard);
    fourth.watcher_device = DeviceId::for_test(44);
    assert_eq!(
        actor.send(fourth).await.unwrap(),
        Err(WatchError::TooManyForTenant { limit: 3 })
    );
    actor.do_send(Unwatch {
        sub: SubscriptionId(1),
    });
    let mut again = watch(5, ALICE, Package::Dialog, false, &shard);
    again.watcher_device = DeviceId::for_test(44);
    assert!(actor.send(again).await.unwrap().is_ok());
}
