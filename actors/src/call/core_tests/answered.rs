//! Answered: the re-INVITE relay, hold, hangups, transfers, conferences.

use super::*;

// ----- answered ----------------------------------------------------------------------

pub(super) fn a_reinvite_is_relayed_and_glare_is_491() -> (Phase, Phase) {
    let (mut c, b) = Core::answered();
    let a = c.a;
    let out = c.leg(
        b,
        LegEventKind::ReOffer {
            body: Some(sdp("v=0 bob\r\na=sendonly\r\n")),
        },
    );
    assert!(matches!(
        events(&out)[..],
        [K::MediaChanged {
            by: Party::Callee,
            held: true
        }]
    ));
    assert!(matches!(commands(&out)[..], [LegCommand::ReOffer { leg, .. }] if *leg == a));
    let out = c.leg(a, LegEventKind::ReOffer { body: None });
    assert!(
        matches!(commands(&out)[..], [LegCommand::ReAnswer { code: 491, leg, .. }] if *leg == a)
    );
    let out = c.leg(
        a,
        LegEventKind::ReAnswer {
            code: 200,
            body: Some(sdp("v=0 alice")),
        },
    );
    assert!(
        matches!(commands(&out)[..], [LegCommand::ReAnswer { code: 200, leg, .. }] if *leg == b)
    );
    (Phase::Answered, c.phase())
}

pub(super) fn hold_is_answered_later() -> (Phase, Phase) {
    let (mut c, b) = Core::answered();
    let (reply, out) = c.control(BOB, ControlAction::Hold);
    assert!(control_reply(&out, reply).is_none());
    let a = c.a;
    assert!(
        matches!(commands(&out)[..], [LegCommand::ReOffer { leg, body: Some(_) }] if *leg == a)
    );
    // A second hold meanwhile is refused.
    let (again, out) = c.control(BOB, ControlAction::Hold);
    assert!(matches!(
        control_reply(&out, again),
        Some(Err(ControlError::WrongState(_)))
    ));
    let out = c.leg(
        a,
        LegEventKind::ReAnswer {
            code: 200,
            body: Some(sdp("v=0 alice")),
        },
    );
    assert!(matches!(commands(&out)[..], [LegCommand::Ack { leg, .. }] if *leg == a));
    assert!(matches!(control_reply(&out, reply), Some(Ok(()))));
    assert!(matches!(
        events(&out)[..],
        [K::MediaChanged {
            by: Party::Callee,
            held: true
        }]
    ));
    let _ = b;
    (Phase::Answered, c.phase())
}

pub(super) fn a_hangup_ends_the_call() -> (Phase, Phase) {
    let (mut c, b) = Core::answered();
    let out = c.leg(b, LegEventKind::Hangup);
    let a = c.a;
    assert!(matches!(commands(&out)[..], [LegCommand::Hangup { leg }] if *leg == a));
    assert_ended(&out, CallOutcome::Answered);
    assert_eq!(record(&out).hangup_by, Some(Party::Callee));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::UserPhase { user, phase: None } if *user == BOB)));
    (Phase::Answered, c.phase())
}

pub(super) fn a_blind_transfer_rings_the_target() -> (Phase, Phase) {
    let (mut c, b) = Core::answered();
    let (reply, out) = c.control(
        BOB,
        ControlAction::Transfer {
            target: "1003".into(),
        },
    );
    assert!(matches!(control_reply(&out, reply), Some(Ok(()))));
    assert!(matches!(commands(&out)[..], [LegCommand::Hangup { leg }] if *leg == b));
    assert!(
        matches!(out.iter().find(|o| matches!(o, Output::Offer { .. })), Some(Output::Offer { user, .. }) if *user == CAROL)
    );
    (Phase::Answered, c.phase())
}

pub(super) fn a_hand_over_ends_this_call() -> (Phase, Phase) {
    let (mut c, b) = Core::answered();
    let a = c.a;
    let reply = c.reply_id();
    let out = c.feed(Input::HandOver {
        reply,
        user: BOB,
        into: CallId::for_test(2),
    });
    assert!(matches!(out[0], Output::HandOverLeg(leg) if leg == a));
    assert!(matches!(commands(&out)[..], [LegCommand::Hangup { leg }] if *leg == b));
    let handed = out.iter().find_map(|o| match o {
        Output::Reply(r, Reply::HandOver(Ok(h))) if *r == reply => Some(h),
        _ => None,
    });
    assert!(matches!(handed, Some(h) if h.leg == a && h.party.user == "1001"));
    assert_ended(&out[..out.len() - 1], CallOutcome::Answered);
    (Phase::Answered, c.phase())
}

/// A leg of another call, answered, as that call hands it over.
fn handed(leg: LegId, user: UserId, number: &str) -> LegHandOff {
    LegHandOff {
        leg,
        incoming: false,
        user: Some(user),
        device: None,
        sdp: Some(sdp("v=0 carol")),
        record: LegRecord {
            id: leg,
            role: Party::Callee,
            target: format!("sip:{number}@127.0.0.1"),
            started_at: at(),
            answered_at: Some(at()),
            ended_at: None,
            status_code: Some(200),
            user_id: Some(user),
        },
        party: PartyInfo {
            user: number.into(),
            display_name: None,
            domain: "a.test".into(),
        },
    }
}

pub(super) fn a_join_adopts_the_other_calls_party() -> (Phase, Phase) {
    let (mut c, b) = Core::answered();
    let (reply, out) = c.control(
        BOB,
        ControlAction::Join {
            with: CallId::for_test(2),
        },
    );
    assert!(matches!(out[..], [Output::AskHandOver { user, .. }] if user == BOB));
    // The handed-over leg speaks before its hand-over is in: its event waits.
    let carol = LegId::for_test(300);
    assert!(c.leg(carol, LegEventKind::Hangup).is_empty());
    let out = c.feed(Input::HandedOver(Ok(handed(carol, CAROL, "1003"))));
    let cmds = commands(&out);
    assert!(matches!(cmds[0], LegCommand::Hangup { leg } if *leg == b));
    assert!(matches!(cmds[1], LegCommand::ReOffer { leg, body: None } if *leg == carol));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Requeue(ev) if ev.leg == carol)));
    assert!(matches!(control_reply(&out, reply), Some(Ok(()))));
    let after = c.phase();
    // A join with a call that is not live is refused before anything is asked.
    let (mut c, _) = Core::answered();
    let reply = c.reply_id();
    let out = c.feed(Input::Control {
        reply,
        user: BOB,
        action: ControlAction::Join {
            with: CallId::for_test(2),
        },
        other_live: false,
    });
    assert!(matches!(
        &out[..],
        [Output::Reply(
            _,
            Reply::Control(Err(ControlError::NotFound))
        )]
    ));
    (Phase::Answered, after)
}

fn conferenced() -> (Core, LegId, LegId) {
    let (mut c, b) = Core::answered();
    let (_, out) = c.control(
        BOB,
        ControlAction::Conference {
            with: CallId::for_test(2),
        },
    );
    assert!(matches!(out[..], [Output::AskHandOver { .. }]));
    let carol = LegId::for_test(300);
    c.feed(Input::HandedOver(Ok(handed(carol, CAROL, "1003"))));
    (c, b, carol)
}

pub(super) fn a_conference_reinvites_every_member_to_the_bridge() -> (Phase, Phase) {
    let (mut c, b) = Core::answered();
    let (reply, _) = c.control(
        BOB,
        ControlAction::Conference {
            with: CallId::for_test(2),
        },
    );
    let carol = LegId::for_test(300);
    let out = c.feed(Input::HandedOver(Ok(handed(carol, CAROL, "1003"))));
    let reoffers: Vec<LegId> = commands(&out)
        .iter()
        .filter_map(|c| match c {
            LegCommand::ReOffer { leg, body: Some(_) } => Some(*leg),
            _ => None,
        })
        .collect();
    assert_eq!(reoffers, [b, c.a, carol]);
    assert!(events(&out).iter().any(
        |e| matches!(e, K::Conference { host, parties } if *host == BOB && parties.len() == 3)
    ));
    assert!(matches!(control_reply(&out, reply), Some(Ok(()))));
    assert_eq!(c.media.log()[0], "open");
    // 491 from a member: tried again after a pause.
    let out = c.leg(
        carol,
        LegEventKind::ReAnswer {
            code: 491,
            body: None,
        },
    );
    assert!(matches!(out[..], [Output::SetTimer(Timer::Glare(leg), _)] if leg == carol));
    let out = c.feed(Input::Timer(Timer::Glare(carol)));
    assert!(matches!(commands(&out)[..], [LegCommand::ReOffer { leg, .. }] if *leg == carol));
    (Phase::Answered, c.phase())
}

pub(super) fn the_last_member_alone_is_released() -> (Phase, Phase) {
    let (mut c, _b, carol) = conferenced();
    let a = c.a;
    let out = c.leg(carol, LegEventKind::Hangup);
    assert!(events(&out)
        .iter()
        .any(|e| matches!(e, K::LegEnded { leg, .. } if *leg == carol)));
    assert!(!out.iter().any(|o| matches!(o, Output::Record(_))));
    let out = c.leg(a, LegEventKind::Hangup);
    assert!(matches!(commands(&out)[..], [LegCommand::Hangup { .. }]));
    assert_ended(&out, CallOutcome::Answered);
    (Phase::Answered, c.phase())
}

pub(super) fn stopping_when_answered_hangs_up_both() -> (Phase, Phase) {
    let (mut c, b) = Core::answered();
    let a = c.a;
    let out = c.feed(Input::Stop);
    assert!(
        matches!(commands(&out)[..], [LegCommand::Hangup { leg: x }, LegCommand::Hangup { leg: y }] if *x == b && *y == a)
    );
    assert_eq!(record(&out).hangup_by, Some(Party::System));
    (Phase::Answered, c.phase())
}

pub(super) fn an_ended_call_does_nothing() -> (Phase, Phase) {
    let (mut c, b) = Core::answered();
    c.leg(b, LegEventKind::Hangup);
    let before = c.phase();
    assert!(c.leg(b, LegEventKind::ReOffer { body: None }).is_empty());
    assert!(c.feed(Input::Timer(Timer::Ring)).is_empty());
    let (reply, out) = c.control(BOB, ControlAction::Hold);
    assert!(matches!(
        control_reply(&out, reply),
        Some(Err(ControlError::NotFound))
    ));
    assert!(c.feed(Input::Stop).is_empty());
    (before, c.phase())
}

pub(super) fn the_transfer_target_is_connected_by_a_reinvite() -> (Phase, Phase) {
    let (mut c, _b) = Core::answered();
    c.control(
        BOB,
        ControlAction::Transfer {
            target: "1003".into(),
        },
    );
    let offer = Offer {
        decision: Decision {
            plan: ring_devices(),
            reasons: vec![],
        },
        bindings: vec![binding(CAROL, 3, "sip:1003@127.0.0.1:5063")],
        contact: None,
        attendant: None,
    };
    let out = c.feed(Input::Offered {
        user: CAROL,
        offer: Offered::Offer(Box::new(offer)),
    });
    // Carol gets no offer: hers goes to Alice in a re-INVITE (RFC 3725 flow I).
    let carol = match &dials(&out)[..] {
        [d] if d.body.is_none() => d.leg,
        other => panic!("one dial without offer, got {other:?}"),
    };
    let before = c.phase();
    let out = c.leg(
        carol,
        LegEventKind::Answered {
            body: Some(sdp("v=0 carol")),
        },
    );
    let a = c.a;
    assert!(
        matches!(commands(&out)[..], [LegCommand::ReOffer { leg, body: Some(_) }] if *leg == a)
    );
    let after = c.phase();
    let out = c.leg(
        a,
        LegEventKind::ReAnswer {
            code: 200,
            body: Some(sdp("v=0 alice again")),
        },
    );
    assert!(matches!(
        commands(&out)[..],
        [LegCommand::Ack { leg: x, body: None }, LegCommand::Ack { leg: y, body: Some(_) }]
            if *x == a && *y == carol
    ));
    (before, after)
}

pub(super) fn a_refused_hold_is_answered_refused() -> (Phase, Phase) {
    let (mut c, _b) = Core::answered();
    let (reply, _) = c.control(BOB, ControlAction::Hold);
    let a = c.a;
    let out = c.leg(
        a,
        LegEventKind::ReAnswer {
            code: 488,
            body: None,
        },
    );
    assert!(matches!(
        control_reply(&out, reply),
        Some(Err(ControlError::Refused(488)))
    ));
    // The transaction layer ACKs a non-2xx: nothing to send, nothing published.
    assert!(commands(&out).is_empty());
    assert!(events(&out).is_empty());
    // The next hold may go.
    let (again, out) = c.control(BOB, ControlAction::Hold);
    assert!(control_reply(&out, again).is_none());
    (Phase::Answered, c.phase())
}

pub(super) fn the_host_releasing_ends_the_conference() -> (Phase, Phase) {
    let (mut c, b, carol) = conferenced();
    let (reply, out) = c.control(BOB, ControlAction::Release);
    assert!(matches!(control_reply(&out, reply), Some(Ok(()))));
    let hung: Vec<LegId> = commands(&out)
        .iter()
        .filter_map(|c| match c {
            LegCommand::Hangup { leg } => Some(*leg),
            _ => None,
        })
        .collect();
    assert_eq!(hung, [b, c.a, carol]);
    assert_eq!(record(&out).hangup_by, Some(Party::Callee));
    assert!(c.media.log().contains(&"close".to_string()));
    (Phase::Answered, c.phase())
}
