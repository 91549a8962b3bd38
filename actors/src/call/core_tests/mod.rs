//! The call core driven directly: no platform, no actix runtime, no tokio, no sleeps.
//! Time is passed in (`Now`), the directory is a fixed snapshot, the media bridge a
//! fake, and every output is looked at.
//!
//! [`TRANSITIONS`] names every state transition of [`CallCore`] with the test that
//! walks it (one file per group of states); [`every_transition`] runs them all and holds each to its row (the state
//! before the input and after it).

use super::api::{ControlAction, ControlError, LegHandOff, OverrideAction, OverrideError};
use super::call_core::{CallCore, CoreConfig, CoreSetup, Phase};
use super::io::{Admitted, Input, Now, Offered, Output, Reply, ReplyId, Timer};
use super::program::PlanRunner;
use super::setup::{CallStart, DeviceReach};
use crate::events::{CallEventKind as K, Event};
use crate::feature::{Decision, Plan, RingStep, Target};
use crate::ids::{CallId, DeviceId, LegId, UserId};
use crate::model::{Binding, CallDirection, CallOutcome, CallRecord, LegRecord, Party};
use crate::ports::{Body, DialTarget, LegCommand, LegEvent, LegEventKind, PartyInfo};
use crate::tenant::{Admission, CallOrigin};
use crate::testkit::{self, ALICE, BOB, CAROL, TENANT};
use crate::user::{CallPhase, Offer};
use chrono::{DateTime, TimeZone, Utc};
use std::sync::Arc;
use std::time::Duration;

/// One transition: in state `from`, `input` leads to `to`; `run` walks it and returns
/// the states it saw before and after the input.
struct Transition {
    from: Phase,
    input: &'static str,
    to: Phase,
    run: fn() -> (Phase, Phase),
}

const TRANSITIONS: &[Transition] = &[
    Transition {
        from: Phase::Routing,
        input: "Start (incoming INVITE): ask the tenant",
        to: Phase::Routing,
        run: routing::start_asks_the_tenant,
    },
    Transition {
        from: Phase::Routing,
        input: "Admitted: rejected by the tenant",
        to: Phase::Ended,
        run: routing::a_rejected_admission_ends_the_call,
    },
    Transition {
        from: Phase::Routing,
        input: "Admitted: no tenant",
        to: Phase::Ended,
        run: routing::no_tenant_is_404,
    },
    Transition {
        from: Phase::Routing,
        input: "Admitted: to a user (offer to its feature server)",
        to: Phase::Ringing,
        run: routing::admitted_to_a_user_is_offered,
    },
    Transition {
        from: Phase::Routing,
        input: "Admitted: outside number without trunk",
        to: Phase::Ended,
        run: routing::an_outside_number_without_trunk_is_403,
    },
    Transition {
        from: Phase::Routing,
        input: "Admitted: the user's external feature server",
        to: Phase::Ringing,
        run: routing::an_external_feature_server_is_dialled,
    },
    Transition {
        from: Phase::Ringing,
        input: "Offered: a ring plan (dial the devices, arm the ring timer)",
        to: Phase::Ringing,
        run: routing::a_ring_plan_dials_every_device,
    },
    Transition {
        from: Phase::Ringing,
        input: "Offered: a reject plan",
        to: Phase::Ended,
        run: routing::a_reject_plan_ends_the_call,
    },
    Transition {
        from: Phase::Ringing,
        input: "Offered: no user actor",
        to: Phase::Ended,
        run: routing::no_user_actor_is_480,
    },
    Transition {
        from: Phase::Ringing,
        input: "Leg: progress (relayed to the caller)",
        to: Phase::Ringing,
        run: ringing::progress_is_relayed,
    },
    Transition {
        from: Phase::Ringing,
        input: "Leg: answered (first wins, forks cancelled)",
        to: Phase::Answered,
        run: ringing::first_answer_wins,
    },
    Transition {
        from: Phase::Ringing,
        input: "Leg: every leg busy",
        to: Phase::Ended,
        run: ringing::all_busy_is_486,
    },
    Transition {
        from: Phase::Ringing,
        input: "Timer: ring timeout, nothing left",
        to: Phase::Ended,
        run: ringing::the_ring_timer_ends_with_408,
    },
    Transition {
        from: Phase::Ringing,
        input: "Timer: step over, next step",
        to: Phase::Ringing,
        run: ringing::the_ring_timer_moves_to_the_next_step,
    },
    Transition {
        from: Phase::Ringing,
        input: "Leg: redirected outside the tenant (dial the URI)",
        to: Phase::Ringing,
        run: ringing::a_redirect_is_dialled,
    },
    Transition {
        from: Phase::Ringing,
        input: "Leg: the caller cancels",
        to: Phase::Ended,
        run: ringing::the_caller_cancels,
    },
    Transition {
        from: Phase::Ringing,
        input: "Override: reject",
        to: Phase::Ended,
        run: ringing::the_override_rejects_with_603,
    },
    Transition {
        from: Phase::Ringing,
        input: "Override: answer on one device",
        to: Phase::Ringing,
        run: ringing::answer_on_keeps_one_device,
    },
    Transition {
        from: Phase::Ringing,
        input: "Stop (the actor stops)",
        to: Phase::Ended,
        run: ringing::stopping_while_ringing_is_500,
    },
    Transition {
        from: Phase::Routing,
        input: "Start (click-to-dial): ring the user's device",
        to: Phase::Ringing,
        run: routing::click_to_dial_rings_the_device,
    },
    Transition {
        from: Phase::Ringing,
        input: "Leg: the click-to-dial device answers (route the destination)",
        to: Phase::Routing,
        run: routing::the_device_answering_routes_the_destination,
    },
    Transition {
        from: Phase::Answered,
        input: "Leg: re-INVITE relayed; another one meanwhile gets 491",
        to: Phase::Answered,
        run: answered::a_reinvite_is_relayed_and_glare_is_491,
    },
    Transition {
        from: Phase::Answered,
        input: "Control: hold (answered once the other party answered)",
        to: Phase::Answered,
        run: answered::hold_is_answered_later,
    },
    Transition {
        from: Phase::Answered,
        input: "Leg: either side hangs up",
        to: Phase::Ended,
        run: answered::a_hangup_ends_the_call,
    },
    Transition {
        from: Phase::Ringing,
        input: "Leg: one fork fails while another rings",
        to: Phase::Ringing,
        run: ringing::one_failed_fork_keeps_ringing,
    },
    Transition {
        from: Phase::Ringing,
        input: "Leg: the transfer target answers (its offer to the remaining party)",
        to: Phase::Answered,
        run: answered::the_transfer_target_is_connected_by_a_reinvite,
    },
    Transition {
        from: Phase::Answered,
        input: "Leg: the other phone refuses a hold (non-2xx)",
        to: Phase::Answered,
        run: answered::a_refused_hold_is_answered_refused,
    },
    Transition {
        from: Phase::Answered,
        input: "Control: the conference host releases (everyone is hung up)",
        to: Phase::Ended,
        run: answered::the_host_releasing_ends_the_conference,
    },
    Transition {
        from: Phase::Answered,
        input: "Control: blind transfer (the other side is dialled)",
        to: Phase::Ringing,
        run: answered::a_blind_transfer_rings_the_target,
    },
    Transition {
        from: Phase::Answered,
        input: "HandOver: the other party moves to another call",
        to: Phase::Ended,
        run: answered::a_hand_over_ends_this_call,
    },
    Transition {
        from: Phase::Answered,
        input: "Control: join, then HandedOver (consultative transfer)",
        to: Phase::Answered,
        run: answered::a_join_adopts_the_other_calls_party,
    },
    Transition {
        from: Phase::Answered,
        input: "Control: conference, then HandedOver (members to the bridge)",
        to: Phase::Answered,
        run: answered::a_conference_reinvites_every_member_to_the_bridge,
    },
    Transition {
        from: Phase::Answered,
        input: "Leg: a conference member leaves, one is left",
        to: Phase::Ended,
        run: answered::the_last_member_alone_is_released,
    },
    Transition {
        from: Phase::Answered,
        input: "Stop (the actor stops)",
        to: Phase::Ended,
        run: answered::stopping_when_answered_hangs_up_both,
    },
    Transition {
        from: Phase::Ended,
        input: "anything",
        to: Phase::Ended,
        run: answered::an_ended_call_does_nothing,
    },
];

#[test]
fn every_transition() {
    for t in TRANSITIONS {
        let (before, after) = (t.run)();
        assert_eq!((before, after), (t.from, t.to), "{}", t.input);
    }
}

// ----- the harness -------------------------------------------------------------------

const BOB_PHONE: &str = "sip:1002@127.0.0.1:5062";
const BOB_DESK: &str = "sip:1002@127.0.0.1:5064";

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap()
}

fn sdp(text: &str) -> Body {
    Arc::from(text.as_bytes())
}

fn binding(user: UserId, n: u128, contact: &str) -> Binding {
    Binding {
        tenant_id: TENANT,
        user_id: user,
        device_id: DeviceId::for_test(n),
        contact: contact.into(),
        received: "udp:127.0.0.1:5062".into(),
        expires_at: at() + chrono::Duration::hours(1),
        call_id: "reg".into(),
        cseq: 1,
    }
}

struct Core {
    core: CallCore,
    now: Now,
    a: LegId,
    media: testkit::FakeMedia,
    replies: u64,
}

impl Core {
    fn with_start(start: CallStart, a: LegId) -> Self {
        let now = Now {
            at: at(),
            directory: testkit::directory(testkit::Extras::default()),
        };
        let media = testkit::FakeMedia::default();
        let core = CallCore::new(
            CoreSetup {
                call: CallId::for_test(1),
                tenant: TENANT,
                start,
                origin: CallOrigin::User {
                    user: ALICE,
                    dialled: "1002".into(),
                },
                caller: PartyInfo {
                    user: "1001".into(),
                    display_name: Some("Alice".into()),
                    domain: "a.test".into(),
                },
                dialled: "1002".into(),
            },
            CoreConfig {
                ring_timeout: Duration::from_secs(60),
                upstream: false,
            },
            Arc::new(media.clone()),
            Box::new(PlanRunner::default()),
            now.clone(),
        );
        Self {
            core,
            now,
            a,
            media,
            replies: 0,
        }
    }

    /// Alice's INVITE to 1002 arrived.
    fn incoming() -> Self {
        let a = LegId::for_test(100);
        let start = CallStart::Incoming {
            leg: a,
            target: "device:1001".into(),
            offer: Some(sdp("v=0 alice")),
        };
        Self::with_start(start, a)
    }

    fn phase(&self) -> Phase {
        self.core.phase()
    }

    fn feed(&mut self, input: Input) -> Vec<Output> {
        self.core.handle(self.now.clone(), input)
    }

    fn leg(&mut self, leg: LegId, kind: LegEventKind) -> Vec<Output> {
        self.feed(Input::Leg(LegEvent { leg, kind }))
    }

    fn reply_id(&mut self) -> ReplyId {
        self.replies += 1;
        ReplyId(self.replies)
    }

    fn control(&mut self, user: UserId, action: ControlAction) -> (ReplyId, Vec<Output>) {
        let reply = self.reply_id();
        let out = self.feed(Input::Control {
            reply,
            user,
            action,
            other_live: true,
        });
        (reply, out)
    }

    /// Admitted to Bob, whose feature server answers `plan` with `bindings`.
    fn offered(plan: Plan, bindings: Vec<Binding>) -> (Self, Vec<Output>) {
        let mut c = Self::incoming();
        c.feed(Input::Start);
        c.feed(Input::Admitted(Admitted::Admission(to_bob())));
        let offer = Offer {
            decision: Decision {
                plan,
                reasons: vec!["default handling".into()],
            },
            bindings,
            contact: None,
            attendant: Some(Target::Extension("1003".into())),
        };
        let out = c.feed(Input::Offered {
            user: BOB,
            offer: Offered::Offer(Box::new(offer)),
        });
        (c, out)
    }

    /// Bob's devices ring (one step of 30 s); the dialled legs.
    fn ringing(contacts: &[&str]) -> (Self, Vec<LegId>) {
        let bindings = contacts
            .iter()
            .enumerate()
            .map(|(i, c)| binding(BOB, i as u128 + 1, c))
            .collect();
        let (c, out) = Self::offered(ring_devices(), bindings);
        (c, dials(&out).iter().map(|d| d.leg).collect())
    }

    /// Bob answered on his phone, Alice's INVITE got the 200 and ACKed it.
    fn answered() -> (Self, LegId) {
        let (mut c, legs) = Self::ringing(&[BOB_PHONE]);
        let b = legs[0];
        c.leg(
            b,
            LegEventKind::Answered {
                body: Some(sdp("v=0 bob\r\na=sendrecv\r\n")),
            },
        );
        c.leg(c.a, LegEventKind::Acked { body: None });
        (c, b)
    }
}

fn to_bob() -> Admission {
    Admission::ToUser {
        user: BOB,
        direction: CallDirection::Internal,
        extension: "1002".into(),
        display_name: "Bob".into(),
    }
}

fn ring_devices() -> Plan {
    Plan::Ring {
        steps: vec![RingStep {
            targets: vec![Target::Devices],
            seconds: 30,
        }],
        on_busy: None,
        on_no_answer: None,
    }
}

fn dials(out: &[Output]) -> Vec<&super::io::DialOut> {
    out.iter()
        .filter_map(|o| match o {
            Output::Dial(d) => Some(&**d),
            _ => None,
        })
        .collect()
}

fn commands(out: &[Output]) -> Vec<&LegCommand> {
    out.iter()
        .filter_map(|o| match o {
            Output::Leg(c) => Some(c),
            _ => None,
        })
        .collect()
}

fn events(out: &[Output]) -> Vec<&K> {
    out.iter()
        .filter_map(|o| match o {
            Output::Publish(Event::Call(e)) => Some(&e.kind),
            _ => None,
        })
        .collect()
}

fn record(out: &[Output]) -> &CallRecord {
    out.iter()
        .find_map(|o| match o {
            Output::Record(r) => Some(&**r),
            _ => None,
        })
        .expect("a call record")
}

fn control_reply(out: &[Output], id: ReplyId) -> Option<&Result<(), ControlError>> {
    out.iter().find_map(|o| match o {
        Output::Reply(r, Reply::Control(res)) if *r == id => Some(res),
        _ => None,
    })
}

/// The call ended: record written, registry told, the actor stops.
fn assert_ended(out: &[Output], outcome: CallOutcome) {
    assert_eq!(record(out).outcome, outcome);
    assert!(out.iter().any(|o| matches!(o, Output::Ended)));
    assert!(matches!(out.last(), Some(Output::Stop)), "{out:?}");
}

mod answered;
mod ringing;
mod routing;
