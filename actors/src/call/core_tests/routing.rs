//! Routing: admission by the tenant, the offer to a feature server, click-to-dial.

use super::*;

// ----- routing -----------------------------------------------------------------------

pub(super) fn start_asks_the_tenant() -> (Phase, Phase) {
    let mut c = Core::incoming();
    let before = c.phase();
    let out = c.feed(Input::Start);
    assert!(
        matches!(&out[..], [Output::Admit(CallOrigin::User { user, .. })] if *user == ALICE),
        "{out:?}"
    );
    (before, c.phase())
}

pub(super) fn a_rejected_admission_ends_the_call() -> (Phase, Phase) {
    let mut c = Core::incoming();
    c.feed(Input::Start);
    let out = c.feed(Input::Admitted(Admitted::Admission(Admission::Reject {
        code: 403,
        outcome: CallOutcome::Rejected,
        reason: "tenant: calls are barred",
    })));
    assert!(matches!(
        commands(&out)[..],
        [LegCommand::Reject { code: 403, .. }]
    ));
    assert_eq!(record(&out).decision, ["tenant: calls are barred"]);
    assert_ended(&out, CallOutcome::Rejected);
    (Phase::Routing, c.phase())
}

pub(super) fn no_tenant_is_404() -> (Phase, Phase) {
    let mut c = Core::incoming();
    c.feed(Input::Start);
    let out = c.feed(Input::Admitted(Admitted::NoTenant));
    assert!(matches!(
        commands(&out)[..],
        [LegCommand::Reject { code: 404, .. }]
    ));
    assert_eq!(events(&out).len(), 2, "started, ended");
    assert_ended(&out, CallOutcome::Unavailable);
    (Phase::Routing, c.phase())
}

pub(super) fn admitted_to_a_user_is_offered() -> (Phase, Phase) {
    let mut c = Core::incoming();
    c.feed(Input::Start);
    let out = c.feed(Input::Admitted(Admitted::Admission(to_bob())));
    assert!(
        matches!(
            events(&out)[..],
            [K::Started { .. }, K::PartyChanged { .. }]
        ) || matches!(events(&out)[..], [K::Started { .. }])
    );
    assert!(out.iter().any(|o| matches!(o, Output::UserPhase { user, phase: Some(CallPhase::Active) } if *user == ALICE)));
    assert!(matches!(out.last(), Some(Output::Offer { user, .. }) if *user == BOB));
    (Phase::Routing, c.phase())
}

pub(super) fn an_outside_number_without_trunk_is_403() -> (Phase, Phase) {
    let mut c = Core::incoming();
    c.feed(Input::Start);
    let out = c.feed(Input::Admitted(Admitted::Admission(Admission::Outside {
        trunk: crate::ids::TrunkId::for_test(1),
        number: "+4930123".into(),
    })));
    // No trunk in the directory: the one step fails at once.
    assert!(matches!(
        commands(&out)[..],
        [LegCommand::Reject { code: 403, .. }]
    ));
    assert_ended(&out, CallOutcome::Failed);
    (Phase::Routing, c.phase())
}

pub(super) fn an_external_feature_server_is_dialled() -> (Phase, Phase) {
    let mut c = Core::incoming();
    c.feed(Input::Start);
    let out = c.feed(Input::Admitted(Admitted::Admission(Admission::External {
        user: BOB,
        uri: "sip:bob@fs.example".into(),
    })));
    let d = dials(&out);
    assert!(
        matches!(&d[..], [d] if matches!(&d.target, DialTarget::Uri(u) if u == "sip:bob@fs.example"))
    );
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::SetTimer(Timer::Ring, t) if *t == Duration::from_secs(60))));
    (Phase::Routing, c.phase())
}

pub(super) fn a_ring_plan_dials_every_device() -> (Phase, Phase) {
    let mut c = Core::incoming();
    c.feed(Input::Start);
    c.feed(Input::Admitted(Admitted::Admission(to_bob())));
    let before = c.phase();
    let offer = Offer {
        decision: Decision {
            plan: ring_devices(),
            reasons: vec!["default handling".into()],
        },
        bindings: vec![binding(BOB, 1, BOB_PHONE), binding(BOB, 2, BOB_DESK)],
        contact: None,
        attendant: None,
    };
    let out = c.feed(Input::Offered {
        user: BOB,
        offer: Offered::Offer(Box::new(offer)),
    });
    let d = dials(&out);
    assert_eq!(d.len(), 2);
    assert!(d
        .iter()
        .all(|d| d.body.as_deref() == Some(&b"v=0 alice"[..])));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::SetTimer(Timer::Ring, t) if *t == Duration::from_secs(30))));
    assert!(matches!(events(&out)[0], K::Decided { user, .. } if *user == BOB));
    (before, c.phase())
}

pub(super) fn a_reject_plan_ends_the_call() -> (Phase, Phase) {
    let (c, out) = Core::offered(Plan::Reject { code: 486 }, vec![]);
    assert!(matches!(
        commands(&out)[..],
        [LegCommand::Reject { code: 486, .. }]
    ));
    assert_ended(&out, CallOutcome::Busy);
    (Phase::Ringing, c.phase())
}

pub(super) fn no_user_actor_is_480() -> (Phase, Phase) {
    let mut c = Core::incoming();
    c.feed(Input::Start);
    c.feed(Input::Admitted(Admitted::Admission(to_bob())));
    let before = c.phase();
    let out = c.feed(Input::Offered {
        user: BOB,
        offer: Offered::NoUser,
    });
    assert!(matches!(
        commands(&out)[..],
        [LegCommand::Reject { code: 480, .. }]
    ));
    assert_ended(&out, CallOutcome::Unavailable);
    (before, c.phase())
}

// ----- click-to-dial -----------------------------------------------------------------

fn click_to_dial() -> Core {
    let start = CallStart::ClickToDial {
        device: DeviceId::for_test(1),
        reach: DeviceReach::Contacts(vec![binding(ALICE, 1, "sip:1001@127.0.0.1:5061")]),
    };
    Core::with_start(start, LegId::for_test(0))
}

pub(super) fn click_to_dial_rings_the_device() -> (Phase, Phase) {
    let mut c = click_to_dial();
    let before = c.phase();
    let out = c.feed(Input::Start);
    let d = dials(&out);
    // Alice's phone shows whom she is calling; no offer (RFC 3725 flow I).
    assert!(matches!(&d[..], [d] if d.caller.user == "1002" && d.body.is_none()));
    (before, c.phase())
}

pub(super) fn the_device_answering_routes_the_destination() -> (Phase, Phase) {
    let mut c = click_to_dial();
    let out = c.feed(Input::Start);
    let device = dials(&out)[0].leg;
    let before = c.phase();
    let out = c.leg(
        device,
        LegEventKind::Answered {
            body: Some(sdp("v=0 alice")),
        },
    );
    let after = c.phase();
    assert!(matches!(events(&out)[..], [K::Answered { .. }]));
    assert!(matches!(out.last(), Some(Output::Admit(_))));
    // Bob's legs get the device's offer.
    c.feed(Input::Admitted(Admitted::Admission(to_bob())));
    let offer = Offer {
        decision: Decision {
            plan: ring_devices(),
            reasons: vec![],
        },
        bindings: vec![binding(BOB, 2, BOB_PHONE)],
        contact: None,
        attendant: None,
    };
    let out = c.feed(Input::Offered {
        user: BOB,
        offer: Offered::Offer(Box::new(offer)),
    });
    assert!(matches!(&dials(&out)[..], [d] if d.body.as_deref() == Some(&b"v=0 alice"[..])));
    (before, after)
}
