//! The call actor: the actix shell around one [`CallCore`].
//!
//! It turns what reaches the call into [`Input`]s (leg events, control commands, the
//! override, hand-over requests, timer firings, the answers of the tenant and user
//! actors) and carries out the core's [`Output`]s: leg commands to the SIP shard that
//! owns each leg, timers, the bus, the persistence port, the registry, replies. It
//! holds what the core must not: actor addresses, the SIP recipients of legs adopted
//! from other calls, timer handles and the senders of pending replies.

use super::api::{
    CallHandle, Control, ControlAction, ControlError, HandOver, HandedLeg, Override, OverrideError,
};
use super::call_core::{CallCore, CoreConfig, CoreSetup, Phase};
use super::io::{Admitted, Input, Now, Offered, Output, Reply, ReplyId, Timer};
use super::program::PlanRunner;
use super::setup::CallSetup;
use crate::ids::LegId;
use crate::platform::{LiveCallInfo, Platform};
use crate::ports::{Dial, LegCommand, LegEvent};
use crate::tenant::{AdmitCall, TenantCallEnded};
use crate::user::{CallPhaseChanged, GetBindings};
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::oneshot;

/// A request waiting for the core's answer.
enum Pending {
    Control(oneshot::Sender<Result<(), ControlError>>),
    Override(oneshot::Sender<Result<(), OverrideError>>),
    HandOver(oneshot::Sender<Result<HandedLeg, ControlError>>),
}

pub struct CallActor {
    core: CallCore,
    platform: Arc<Platform>,
    /// The call's own SIP shard.
    sip: Recipient<LegCommand>,
    caller: String,
    dialled: String,
    /// Legs adopted from another call stay on that call's shard.
    routes: HashMap<LegId, Recipient<LegCommand>>,
    timers: HashMap<Timer, SpawnHandle>,
    replies: HashMap<ReplyId, Pending>,
    next_reply: u64,
    /// Where a leg handed to another call sends its events (that call's address).
    hand_over_to: Option<Recipient<LegEvent>>,
    /// The call a join or conference names, looked up when the command came.
    other: Option<CallHandle>,
}

impl CallActor {
    pub fn new(setup: CallSetup, platform: Arc<Platform>) -> Self {
        let services = &platform.services;
        let now = Now {
            at: services.clock.now(),
            directory: services.directory.current(),
        };
        let config = CoreConfig {
            ring_timeout: services.config.ring_timeout,
            upstream: services.config.upstream_tenant == Some(setup.tenant),
        };
        let (caller, dialled) = (setup.caller.user.clone(), setup.dialled.clone());
        let core = CallCore::new(
            CoreSetup {
                call: setup.call,
                tenant: setup.tenant,
                start: setup.start,
                origin: setup.origin,
                caller: setup.caller,
                dialled: setup.dialled,
            },
            config,
            services.config.media.clone(),
            Box::new(PlanRunner::default()),
            now,
        );
        Self {
            core,
            sip: setup.sip,
            platform,
            caller,
            dialled,
            routes: HashMap::new(),
            timers: HashMap::new(),
            replies: HashMap::new(),
            next_reply: 0,
            hand_over_to: None,
            other: None,
        }
    }

    pub fn phase(&self) -> Phase {
        self.core.phase()
    }

    /// Hands one input to the core and carries out what it says, in order.
    fn feed(&mut self, input: Input, ctx: &mut Context<Self>) {
        let services = &self.platform.services;
        let now = Now {
            at: services.clock.now(),
            directory: services.directory.current(),
        };
        for out in self.core.handle(now, input) {
            self.execute(out, ctx);
        }
    }

    fn pending(&mut self, p: Pending) -> ReplyId {
        self.next_reply += 1;
        let id = ReplyId(self.next_reply);
        self.replies.insert(id, p);
        id
    }

    fn route(&self, leg: LegId) -> &Recipient<LegCommand> {
        self.routes.get(&leg).unwrap_or(&self.sip)
    }

    fn execute(&mut self, out: Output, ctx: &mut Context<Self>) {
        let call = self.core.call();
        let tenant = self.core.setup.tenant;
        match out {
            Output::Leg(cmd) => self.route(cmd.leg()).do_send(cmd),
            Output::Dial(d) => self.sip.do_send(LegCommand::Dial(Box::new(Dial {
                call,
                leg: d.leg,
                tenant,
                target: d.target,
                caller: d.caller,
                callee: d.callee,
                body: d.body,
                events: ctx.address().recipient(),
            }))),
            Output::HandOverLeg(leg) => {
                if let Some(events) = self.hand_over_to.clone() {
                    self.route(leg)
                        .do_send(LegCommand::HandOver { leg, events });
                }
            }
            Output::SetTimer(timer, after) => {
                if let Some(h) = self.timers.remove(&timer) {
                    ctx.cancel_future(h);
                }
                let h = ctx.run_later(after, move |act, ctx| {
                    act.timers.remove(&timer);
                    act.feed(Input::Timer(timer), ctx);
                });
                self.timers.insert(timer, h);
            }
            Output::CancelTimer(timer) => {
                if let Some(h) = self.timers.remove(&timer) {
                    ctx.cancel_future(h);
                }
            }
            Output::Publish(event) => self.platform.services.bus.publish(event),
            Output::Admit(origin) => match self.platform.registry.tenant(tenant) {
                None => self.feed(Input::Admitted(Admitted::NoTenant), ctx),
                Some(t) => t
                    .send(AdmitCall { call, origin })
                    .into_actor(self)
                    .map(|res, act, ctx| {
                        let a = match res {
                            Ok(a) => Admitted::Admission(a),
                            Err(_) => Admitted::Failed,
                        };
                        act.feed(Input::Admitted(a), ctx);
                    })
                    .wait(ctx),
            },
            Output::Offer { user, msg } => match self.platform.registry.user(user) {
                None => self.feed(
                    Input::Offered {
                        user,
                        offer: Offered::NoUser,
                    },
                    ctx,
                ),
                Some(addr) => addr
                    .send(msg)
                    .into_actor(self)
                    .map(move |res, act, ctx| {
                        let offer = match res {
                            Ok(o) => Offered::Offer(Box::new(o)),
                            Err(_) => Offered::Failed,
                        };
                        act.feed(Input::Offered { user, offer }, ctx);
                    })
                    .wait(ctx),
            },
            Output::GetBindings { user, step, callee } => match self.platform.registry.user(user) {
                None => {
                    let input = Input::Bindings {
                        step,
                        user,
                        callee,
                        bindings: None,
                    };
                    self.feed(input, ctx);
                }
                Some(addr) => {
                    addr.send(GetBindings)
                        .into_actor(self)
                        .map(move |res, act, ctx| {
                            let input = Input::Bindings {
                                step,
                                user,
                                callee,
                                bindings: Some(res.unwrap_or_default()),
                            };
                            act.feed(input, ctx);
                        })
                        .spawn(ctx);
                }
            },
            Output::AskHandOver { with: _, user } => {
                let Some(other) = self.other.take() else {
                    self.feed(Input::HandedOver(Err(ControlError::NotFound)), ctx);
                    return;
                };
                let ask = HandOver {
                    user,
                    into: call,
                    events: ctx.address().recipient(),
                };
                // Spawned, not awaited in the mailbox: the other call may be asking us
                // at the same moment, and both must still answer.
                other
                    .send(ask)
                    .into_actor(self)
                    .map(|res, act, ctx| {
                        let res = res.unwrap_or(Err(ControlError::NotFound)).map(|h| {
                            act.routes.insert(h.leg.leg, h.sip);
                            h.leg
                        });
                        act.feed(Input::HandedOver(res), ctx);
                    })
                    .spawn(ctx);
            }
            Output::UserPhase { user, phase } => {
                if let Some(addr) = self.platform.registry.user(user) {
                    addr.do_send(CallPhaseChanged { call, phase });
                }
            }
            Output::Reply(id, reply) => match (self.replies.remove(&id), reply) {
                (Some(Pending::Control(tx)), Reply::Control(r)) => {
                    let _ = tx.send(r);
                }
                (Some(Pending::Override(tx)), Reply::Override(r)) => {
                    let _ = tx.send(r);
                }
                (Some(Pending::HandOver(tx)), Reply::HandOver(r)) => {
                    let r = r.map(|leg| HandedLeg {
                        sip: self.route(leg.leg).clone(),
                        leg: *leg,
                    });
                    let _ = tx.send(r);
                }
                _ => {}
            },
            Output::Requeue(ev) => ctx.notify(ev),
            Output::Record(record) => self.platform.services.persistence.call_ended(*record),
            Output::Ended => self.platform.registry.call_ended(call),
            Output::TenantCallEnded => {
                if let Some(t) = self.platform.registry.tenant(tenant) {
                    t.do_send(TenantCallEnded { call });
                }
            }
            Output::Stop => ctx.stop(),
        }
    }
}

impl Actor for CallActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(64);
        self.platform.registry.call_started(
            self.core.setup.tenant,
            CallHandle::new(&ctx.address()),
            LiveCallInfo {
                call: self.core.call(),
                caller: self.caller.clone(),
                dialled: self.dialled.clone(),
                started_at: self.core.started_at(),
            },
        );
        self.feed(Input::Start, ctx);
    }

    fn stopping(&mut self, ctx: &mut Self::Context) -> Running {
        // A call actor never ends silently: whatever stops it, the legs are ended and
        // the record is written.
        if self.core.phase() != Phase::Ended {
            self.feed(Input::Stop, ctx);
        }
        Running::Stop
    }
}

impl Handler<LegEvent> for CallActor {
    type Result = ();

    fn handle(&mut self, msg: LegEvent, ctx: &mut Self::Context) {
        self.feed(Input::Leg(msg), ctx);
    }
}

impl Handler<Control> for CallActor {
    type Result = ResponseFuture<Result<(), ControlError>>;

    fn handle(&mut self, msg: Control, ctx: &mut Self::Context) -> Self::Result {
        let other_live = match &msg.action {
            ControlAction::Join { with } | ControlAction::Conference { with } => {
                self.other = self.platform.registry.call(self.core.setup.tenant, *with);
                self.other.is_some()
            }
            _ => true,
        };
        let (tx, rx) = oneshot::channel();
        let reply = self.pending(Pending::Control(tx));
        let input = Input::Control {
            reply,
            user: msg.user,
            action: msg.action,
            other_live,
        };
        self.feed(input, ctx);
        // A hold or resume is answered once the other party has answered.
        Box::pin(async move { rx.await.unwrap_or(Err(ControlError::NotFound)) })
    }
}

impl Handler<Override> for CallActor {
    type Result = ResponseFuture<Result<(), OverrideError>>;

    fn handle(&mut self, msg: Override, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let reply = self.pending(Pending::Override(tx));
        self.feed(
            Input::Override {
                reply,
                action: msg.0,
            },
            ctx,
        );
        Box::pin(async move { rx.await.unwrap_or(Err(OverrideError::NotRinging)) })
    }
}

impl Handler<HandOver> for CallActor {
    type Result = ResponseFuture<Result<HandedLeg, ControlError>>;

    fn handle(&mut self, msg: HandOver, ctx: &mut Self::Context) -> Self::Result {
        self.hand_over_to = Some(msg.events);
        let (tx, rx) = oneshot::channel();
        let reply = self.pending(Pending::HandOver(tx));
        let input = Input::HandOver {
            reply,
            user: msg.user,
            into: msg.into,
        };
        self.feed(input, ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(ControlError::NotFound)) })
    }
}
