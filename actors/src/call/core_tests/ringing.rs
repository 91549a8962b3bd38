//! Ringing: progress, the first answer, busy, timers, redirects, the override.

use super::*;

// ----- ringing -----------------------------------------------------------------------

pub(super) fn progress_is_relayed() -> (Phase, Phase) {
    let (mut c, legs) = Core::ringing(&[BOB_PHONE]);
    let out = c.leg(
        legs[0],
        LegEventKind::Progress {
            code: 180,
            body: None,
        },
    );
    assert!(matches!(events(&out)[..], [K::Ringing { leg }] if *leg == legs[0]));
    assert!(
        matches!(commands(&out)[..], [LegCommand::Progress { leg, code: 180, .. }] if *leg == c.a)
    );
    // A second 180 is relayed, not published again.
    let out = c.leg(
        legs[0],
        LegEventKind::Progress {
            code: 180,
            body: None,
        },
    );
    assert!(events(&out).is_empty());
    (Phase::Ringing, c.phase())
}

pub(super) fn first_answer_wins() -> (Phase, Phase) {
    let (mut c, legs) = Core::ringing(&[BOB_PHONE, BOB_DESK]);
    let out = c.leg(
        legs[1],
        LegEventKind::Answered {
            body: Some(sdp("v=0 desk")),
        },
    );
    let cmds = commands(&out);
    assert!(matches!(cmds[0], LegCommand::Cancel { leg } if *leg == legs[0]));
    assert!(matches!(cmds[1], LegCommand::Answer { leg, body: Some(_) } if *leg == c.a));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::CancelTimer(Timer::Ring))));
    assert!(out.iter().any(
        |o| matches!(o, Output::UserPhase { user, phase: Some(CallPhase::Active) } if *user == BOB)
    ));
    // The loser answering late is ACKed and hung up.
    let late = c.leg(legs[0], LegEventKind::Answered { body: None });
    assert!(matches!(
        commands(&late)[..],
        [LegCommand::Ack { .. }, LegCommand::Hangup { .. }]
    ));
    (Phase::Ringing, c.phase())
}

pub(super) fn all_busy_is_486() -> (Phase, Phase) {
    let (mut c, legs) = Core::ringing(&[BOB_PHONE, BOB_DESK]);
    assert!(c
        .leg(legs[0], LegEventKind::Failed { code: 486 })
        .iter()
        .all(|o| !matches!(o, Output::Record(_))));
    let out = c.leg(legs[1], LegEventKind::Failed { code: 600 });
    assert!(matches!(
        commands(&out)[..],
        [LegCommand::Reject { code: 486, .. }]
    ));
    assert_ended(&out, CallOutcome::Busy);
    (Phase::Ringing, c.phase())
}

pub(super) fn the_ring_timer_ends_with_408() -> (Phase, Phase) {
    let (mut c, legs) = Core::ringing(&[BOB_PHONE]);
    let out = c.feed(Input::Timer(Timer::Ring));
    let cmds = commands(&out);
    assert!(matches!(cmds[0], LegCommand::Cancel { leg } if *leg == legs[0]));
    assert!(matches!(cmds[1], LegCommand::Reject { code: 408, .. }));
    assert_ended(&out, CallOutcome::NoAnswer);
    assert_eq!(record(&out).hangup_by, Some(Party::System));
    (Phase::Ringing, c.phase())
}

pub(super) fn the_ring_timer_moves_to_the_next_step() -> (Phase, Phase) {
    let plan = Plan::Ring {
        steps: vec![
            RingStep {
                targets: vec![Target::Devices],
                seconds: 10,
            },
            RingStep {
                targets: vec![Target::Extension("1003".into())],
                seconds: 15,
            },
        ],
        on_busy: None,
        on_no_answer: None,
    };
    let (mut c, out) = Core::offered(plan, vec![binding(BOB, 1, BOB_PHONE)]);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::SetTimer(Timer::Ring, t) if *t == Duration::from_secs(10))));
    let out = c.feed(Input::Timer(Timer::Ring));
    // Carol's contacts are asked of her actor; the step waits for them.
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::GetBindings { user, step: 2, .. } if *user == CAROL)));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::SetTimer(Timer::Ring, t) if *t == Duration::from_secs(15))));
    let callee = PartyInfo {
        user: "1002".into(),
        display_name: Some("Bob".into()),
        domain: "a.test".into(),
    };
    let out = c.feed(Input::Bindings {
        step: 2,
        user: CAROL,
        callee,
        bindings: Some(vec![binding(CAROL, 3, "sip:1003@127.0.0.1:5063")]),
    });
    assert_eq!(dials(&out).len(), 1);
    // A late timer of the first step is no more.
    assert!(c
        .feed(Input::Timer(Timer::Glare(LegId::for_test(9))))
        .is_empty());
    (Phase::Ringing, c.phase())
}

pub(super) fn a_redirect_is_dialled() -> (Phase, Phase) {
    let (mut c, legs) = Core::ringing(&[BOB_PHONE]);
    let target = crate::ports::RedirectTarget {
        uri: "sip:bob@elsewhere.example".into(),
        user: Some("bob".into()),
        host: "elsewhere.example".into(),
    };
    let out = c.leg(
        legs[0],
        LegEventKind::Redirected {
            code: 302,
            targets: vec![target],
        },
    );
    let d = dials(&out);
    assert!(
        matches!(&d[..], [d] if matches!(&d.target, DialTarget::Uri(u) if u == "sip:bob@elsewhere.example"))
    );
    (Phase::Ringing, c.phase())
}

pub(super) fn the_caller_cancels() -> (Phase, Phase) {
    let (mut c, legs) = Core::ringing(&[BOB_PHONE]);
    let a = c.a;
    let out = c.leg(a, LegEventKind::Cancelled);
    assert!(matches!(commands(&out)[..], [LegCommand::Cancel { leg }] if *leg == legs[0]));
    assert_ended(&out, CallOutcome::Cancelled);
    assert_eq!(record(&out).hangup_by, Some(Party::Caller));
    (Phase::Ringing, c.phase())
}

pub(super) fn the_override_rejects_with_603() -> (Phase, Phase) {
    let (mut c, _) = Core::ringing(&[BOB_PHONE]);
    let reply = c.reply_id();
    let out = c.feed(Input::Override {
        reply,
        action: OverrideAction::Reject,
    });
    assert!(matches!(events(&out)[0], K::Overridden { .. }));
    assert!(matches!(
        commands(&out)[..],
        [
            LegCommand::Cancel { .. },
            LegCommand::Reject { code: 603, .. }
        ]
    ));
    assert!(matches!(out.last(), Some(Output::Reply(r, Reply::Override(Ok(())))) if *r == reply));
    (Phase::Ringing, c.phase())
}

pub(super) fn answer_on_keeps_one_device() -> (Phase, Phase) {
    let (mut c, legs) = Core::ringing(&[BOB_PHONE, BOB_DESK]);
    let reply = c.reply_id();
    let out = c.feed(Input::Override {
        reply,
        action: OverrideAction::AnswerOn(DeviceId::for_test(2)),
    });
    assert!(matches!(commands(&out)[..], [LegCommand::Cancel { leg }] if *leg == legs[0]));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::SetTimer(Timer::Ring, t) if *t == Duration::from_secs(60))));
    // An unknown device is refused.
    let reply = c.reply_id();
    let out = c.feed(Input::Override {
        reply,
        action: OverrideAction::AnswerOn(DeviceId::for_test(77)),
    });
    assert!(matches!(
        out.last(),
        Some(Output::Reply(
            _,
            Reply::Override(Err(OverrideError::UnknownDevice))
        ))
    ));
    (Phase::Ringing, c.phase())
}

pub(super) fn stopping_while_ringing_is_500() -> (Phase, Phase) {
    let (mut c, legs) = Core::ringing(&[BOB_PHONE]);
    let out = c.feed(Input::Stop);
    assert!(
        matches!(commands(&out)[..], [LegCommand::Cancel { leg }, LegCommand::Reject { code: 500, .. }] if *leg == legs[0])
    );
    assert_eq!(record(&out).outcome, CallOutcome::Failed);
    (Phase::Ringing, c.phase())
}

pub(super) fn one_failed_fork_keeps_ringing() -> (Phase, Phase) {
    let (mut c, legs) = Core::ringing(&[BOB_PHONE, BOB_DESK]);
    let out = c.leg(legs[0], LegEventKind::Failed { code: 480 });
    assert!(matches!(events(&out)[..], [K::LegEnded { leg, code: Some(480) }] if *leg == legs[0]));
    assert!(commands(&out).is_empty());
    // The same failure again is a late repeat: nothing.
    assert!(c
        .leg(legs[0], LegEventKind::Failed { code: 480 })
        .is_empty());
    (Phase::Ringing, c.phase())
}
