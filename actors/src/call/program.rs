//! The seam between the call's leg handling and what decides where the call goes.
//!
//! The core ([`super::call_core::CallCore`]) owns the legs: it dials, cancels, connects,
//! relays re-INVITEs and writes the record. Whenever it must know what comes next it
//! asks its [`CallProgram`] with a [`ProgramEvent`] (a feature server decided, the
//! call was forwarded, a step went unanswered, every leg was busy) and carries out the
//! [`Action`] it gets (ring these targets, forward, reject, give up). The program
//! never sees a leg, a timer or an actor.
//!
//! Today's program is [`PlanRunner`]: it runs the plan of the user's feature server
//! (`feature::decide`): ring steps in order, then the no-answer target; the busy
//! target when every leg of a step was busy. A compiled call-flow map (a later issue)
//! is another implementation of the same trait: the core, its legs and its tests do
//! not change.

use crate::feature::{Plan, RingStep, Target};
use std::collections::VecDeque;

/// What happened that the program must answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProgramEvent {
    /// A user's feature server decided how the call is handled.
    Decided(Plan),
    /// The call goes to `target` now (a forward of the plan, a transfer, the user's
    /// override): the plan's busy and no-answer targets no longer apply. A number or
    /// the user's devices ring as one step of `ring_seconds`.
    Forwarded { target: Target, ring_seconds: u32 },
    /// The current step ended unanswered: its time ran out, or its legs failed.
    NoAnswer,
    /// Every leg of the current step was busy.
    Busy,
    /// A redirect takes over: the steps left are void (the busy and no-answer targets
    /// stay).
    Redirected,
    /// The user took the ringing call in hand, or it was transferred: nothing of the
    /// plan is left.
    Overridden,
}

/// What the core does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Ring these targets together, for at most `seconds`.
    Ring(RingStep),
    /// Ask again with [`ProgramEvent::NoAnswer`] once the ring timer is cancelled (the
    /// program stored steps to ring).
    NextStep,
    /// Send the call on: another user's feature server, a number, the devices.
    Forward(Target),
    /// Refuse the call with this SIP status.
    Reject { code: u16 },
    /// Refuse the call and send the caller this text from the callee.
    RejectWithMessage { code: u16, text: String },
    /// Nothing is left to try: the core answers with the status its legs ended with.
    GiveUp,
    /// Nothing for the program to do: the core routes the target itself.
    Wait,
}

/// Where a call goes next: asked by the call core, never touching legs.
pub trait CallProgram: Send {
    fn next(&mut self, event: ProgramEvent) -> Action;
}

/// Today's program: the feature server's [`Plan`] (ring steps, busy and no-answer
/// targets).
#[derive(Debug, Default)]
pub struct PlanRunner {
    steps: VecDeque<RingStep>,
    on_busy: Option<Target>,
    on_no_answer: Option<Target>,
}

impl CallProgram for PlanRunner {
    fn next(&mut self, event: ProgramEvent) -> Action {
        match event {
            ProgramEvent::Decided(Plan::Reject { code }) => Action::Reject { code },
            ProgramEvent::Decided(Plan::RejectWithMessage { code, text }) => {
                Action::RejectWithMessage { code, text }
            }
            ProgramEvent::Decided(Plan::Forward { target }) => Action::Forward(target),
            ProgramEvent::Decided(Plan::Ring {
                steps,
                on_busy,
                on_no_answer,
            }) => {
                self.steps = steps.into();
                self.on_busy = on_busy;
                self.on_no_answer = on_no_answer;
                Action::NextStep
            }
            ProgramEvent::Forwarded {
                target,
                ring_seconds,
            } => {
                self.on_busy = None;
                self.on_no_answer = None;
                match target {
                    t @ (Target::Number(_) | Target::Devices) => {
                        self.steps = VecDeque::from([RingStep {
                            targets: vec![t],
                            seconds: ring_seconds,
                        }]);
                        Action::NextStep
                    }
                    Target::Extension(_) | Target::Attendant => Action::Wait,
                }
            }
            ProgramEvent::NoAnswer => match self.steps.pop_front() {
                Some(step) => Action::Ring(step),
                None => match self.on_no_answer.take() {
                    Some(t) => Action::Forward(t),
                    None => Action::GiveUp,
                },
            },
            ProgramEvent::Busy => {
                if let Some(t) = self.on_busy.take() {
                    self.steps.clear();
                    return Action::Forward(t);
                }
                if self.steps.is_empty() && self.on_no_answer.is_none() {
                    return Action::Reject { code: 486 };
                }
                self.next(ProgramEvent::NoAnswer)
            }
            ProgramEvent::Redirected => {
                self.steps.clear();
                Action::Wait
            }
            ProgramEvent::Overridden => {
                self.steps.clear();
                self.on_busy = None;
                self.on_no_answer = None;
                Action::Wait
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(t: Target, seconds: u32) -> RingStep {
        RingStep {
            targets: vec![t],
            seconds,
        }
    }

    fn ring(on_busy: Option<Target>, on_no_answer: Option<Target>) -> PlanRunner {
        let mut p = PlanRunner::default();
        let plan = Plan::Ring {
            steps: vec![
                step(Target::Devices, 10),
                step(Target::Extension("1003".into()), 15),
            ],
            on_busy,
            on_no_answer,
        };
        assert_eq!(p.next(ProgramEvent::Decided(plan)), Action::NextStep);
        p
    }

    #[test]
    fn steps_ring_in_order_then_the_no_answer_target_then_nothing() {
        let mut p = ring(None, Some(Target::Number("+4930".into())));
        assert_eq!(
            p.next(ProgramEvent::NoAnswer),
            Action::Ring(step(Target::Devices, 10))
        );
        assert_eq!(
            p.next(ProgramEvent::NoAnswer),
            Action::Ring(step(Target::Extension("1003".into()), 15))
        );
        assert_eq!(
            p.next(ProgramEvent::NoAnswer),
            Action::Forward(Target::Number("+4930".into()))
        );
        assert_eq!(p.next(ProgramEvent::NoAnswer), Action::GiveUp);
    }

    #[test]
    fn busy_goes_to_the_busy_target_else_on_else_486() {
        let mut p = ring(Some(Target::Attendant), None);
        assert_eq!(
            p.next(ProgramEvent::NoAnswer),
            Action::Ring(step(Target::Devices, 10))
        );
        assert_eq!(
            p.next(ProgramEvent::Busy),
            Action::Forward(Target::Attendant)
        );
        // The busy target was taken and the steps dropped: busy again is the end.
        assert_eq!(p.next(ProgramEvent::Busy), Action::Reject { code: 486 });

        let mut p = ring(None, None);
        assert_eq!(
            p.next(ProgramEvent::NoAnswer),
            Action::Ring(step(Target::Devices, 10))
        );
        assert_eq!(
            p.next(ProgramEvent::Busy),
            Action::Ring(step(Target::Extension("1003".into()), 15))
        );
        assert_eq!(p.next(ProgramEvent::Busy), Action::Reject { code: 486 });
    }

    #[test]
    fn a_forward_voids_the_fallbacks_and_rings_numbers_and_devices_as_one_step() {
        let mut p = ring(Some(Target::Attendant), Some(Target::Attendant));
        let fwd = ProgramEvent::Forwarded {
            target: Target::Number("+4930".into()),
            ring_seconds: 60,
        };
        assert_eq!(p.next(fwd), Action::NextStep);
        assert_eq!(
            p.next(ProgramEvent::NoAnswer),
            Action::Ring(step(Target::Number("+4930".into()), 60))
        );
        assert_eq!(p.next(ProgramEvent::NoAnswer), Action::GiveUp);
        let ext = ProgramEvent::Forwarded {
            target: Target::Extension("1003".into()),
            ring_seconds: 60,
        };
        assert_eq!(p.next(ext), Action::Wait);
    }

    #[test]
    fn a_redirect_drops_the_steps_but_keeps_the_fallbacks() {
        let mut p = ring(None, Some(Target::Attendant));
        assert_eq!(p.next(ProgramEvent::Redirected), Action::Wait);
        assert_eq!(
            p.next(ProgramEvent::NoAnswer),
            Action::Forward(Target::Attendant)
        );
        let mut p = ring(None, Some(Target::Attendant));
        assert_eq!(p.next(ProgramEvent::Overridden), Action::Wait);
        assert_eq!(p.next(ProgramEvent::NoAnswer), Action::GiveUp);
    }

    #[test]
    fn plans_that_refuse_or_forward_say_so() {
        let mut p = PlanRunner::default();
        let plan = |p: Plan| ProgramEvent::Decided(p);
        assert_eq!(
            p.next(plan(Plan::Reject { code: 486 })),
            Action::Reject { code: 486 }
        );
        assert_eq!(
            p.next(plan(Plan::Forward {
                target: Target::Devices
            })),
            Action::Forward(Target::Devices)
        );
        assert_eq!(
            p.next(plan(Plan::RejectWithMessage {
                code: 603,
                text: "later".into()
            })),
            Action::RejectWithMessage {
                code: 603,
                text: "later".into()
            }
        );
    }
}
