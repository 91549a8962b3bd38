//! The routing decision for one call to one user: a pure function of the profile and
//! what is known about the call. No I/O, no clock: the caller passes the local time.
//!
//! Order of precedence (first that applies wins):
//! 1. caller rules: anonymous rejection (433), blocked numbers (603);
//! 2. the caller's handling code when it rejects (busy 486 / declined 603 / with an
//!    instant message to the caller);
//! 3. do not disturb (switch or status), unless the code is an exception: busy treatment;
//! 4. the handling code when it forwards or sends to the attendant;
//! 5. forward always; 6. selective forwarding (first matching rule);
//! 7. busy (on a call with call waiting off): busy treatment;
//! 8. ringing, by the code's handling or the default one (all at once with the
//!    simultaneous targets, or sequential), with forward on busy and on no answer;
//!    nobody reachable: forward when unreachable, else 480.
//!
//! Busy treatment = forward on busy if set, else 486.

use super::profile::{matches_pattern, Condition, Handling, Presence, Profile, Target};
use super::schedule;
use chrono::NaiveDateTime;
use serde::Serialize;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    /// E.164 number or extension; None when withheld or unknown.
    pub number: Option<String>,
    pub anonymous: bool,
}

/// The caller found among the user's contacts (personal first, then tenant-shared).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ContactMatch {
    pub name: String,
    pub handling_code: Option<String>,
    pub shared: bool,
}

pub struct CallContext<'a> {
    pub caller: &'a Caller,
    pub contact: Option<&'a ContactMatch>,
    /// The status the user set.
    pub presence: Presence,
    /// The user is on a call right now.
    pub on_call: bool,
    pub registered_devices: usize,
    /// Now, in the tenant's time zone.
    pub local_time: NaiveDateTime,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RingStep {
    pub targets: Vec<Target>,
    pub seconds: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "plan", rename_all = "snake_case")]
pub enum Plan {
    Reject {
        code: u16,
    },
    /// Reject with `code` and send the caller `text` as an instant message.
    RejectWithMessage {
        code: u16,
        text: String,
    },
    Forward {
        target: Target,
    },
    /// Ring the steps in order; every leg busy → `on_busy`; all steps unanswered →
    /// `on_no_answer` (else the call fails with 480).
    Ring {
        steps: Vec<RingStep>,
        on_busy: Option<Target>,
        on_no_answer: Option<Target>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub plan: Plan,
    /// Why, in order: what was looked up and which rule decided.
    pub reasons: Vec<String>,
}

/// The status rules see: busy while on a call, unless the user chose something else.
pub fn effective_presence(set: Presence, on_call: bool) -> Presence {
    if on_call && set == Presence::Available {
        Presence::Busy
    } else {
        set
    }
}

pub fn decide(p: &Profile, ctx: &CallContext<'_>) -> Decision {
    let mut reasons = Vec::new();
    let plan = decide_inner(p, ctx, &mut reasons);
    Decision { plan, reasons }
}

fn decide_inner(p: &Profile, ctx: &CallContext<'_>, why: &mut Vec<String>) -> Plan {
    let presence = effective_presence(ctx.presence, ctx.on_call);
    let number = ctx
        .caller
        .number
        .as_deref()
        .filter(|_| !ctx.caller.anonymous);

    if p.caller_rules.reject_anonymous && number.is_none() {
        why.push("anonymous caller rejected".into());
        return Plan::Reject { code: 433 };
    }
    if let Some(n) = number {
        if let Some(pat) = p
            .caller_rules
            .blocked
            .iter()
            .find(|pat| matches_pattern(pat, n))
        {
            why.push(format!("caller {n} blocked by {pat}"));
            return Plan::Reject { code: 603 };
        }
    }

    let code = match ctx.contact {
        Some(c) => {
            why.push(format!(
                "caller is contact {:?} ({})",
                c.name,
                if c.shared { "tenant" } else { "personal" }
            ));
            match c.handling_code.as_deref() {
                Some(name) => match p.code(name) {
                    Some(code) => {
                        why.push(format!("handling code {name}"));
                        Some(code)
                    }
                    None => {
                        why.push(format!("handling code {name} is not defined: ignored"));
                        None
                    }
                },
                None => None,
            }
        }
        None => None,
    };
    let code_name = code.map(|c| c.name.as_str());

    match code.map(|c| &c.handling) {
        Some(Handling::RejectBusy) => return Plan::Reject { code: 486 },
        Some(Handling::RejectDeclined) => return Plan::Reject { code: 603 },
        Some(Handling::RejectWithMessage { text, code }) => return with_message(*code, text, why),
        _ => {}
    }

    let dnd = p.dnd.enabled || presence == Presence::DoNotDisturb;
    if dnd {
        if code_name.is_some_and(|c| p.dnd.exceptions.iter().any(|e| e == c)) {
            why.push("do not disturb: the handling code rings through".into());
        } else {
            why.push("do not disturb".into());
            return busy(p, why);
        }
    }

    match code.map(|c| &c.handling) {
        Some(Handling::Forward { target }) => return forward(p, target, why),
        Some(Handling::Attendant) => return forward(p, &Target::Attendant, why),
        _ => {}
    }

    if let Some(t) = &p.forwarding.always {
        why.push("forward always".into());
        return forward(p, t, why);
    }
    for (i, rule) in p.forwarding.selective.iter().enumerate() {
        if holds(p, &rule.when, number, presence, code_name, ctx.local_time) {
            why.push(format!("selective forwarding rule {}", i + 1));
            return forward(p, &rule.target, why);
        }
    }

    if ctx.on_call && !p.call_waiting {
        why.push("on a call and call waiting is off".into());
        return busy(p, why);
    }

    let handling = code.map(|c| &c.handling).unwrap_or(&p.default_handling);
    match handling {
        Handling::Forward { target } => forward(p, target, why),
        Handling::Attendant => forward(p, &Target::Attendant, why),
        Handling::RejectBusy => Plan::Reject { code: 486 },
        Handling::RejectDeclined => Plan::Reject { code: 603 },
        Handling::RejectWithMessage { text, code } => with_message(*code, text, why),
        Handling::Ring => {
            let mut targets = Vec::new();
            if ctx.registered_devices > 0 {
                targets.push(Target::Devices);
            }
            targets.extend(p.simultaneous.iter().filter_map(|t| resolve(p, t)));
            if targets.is_empty() {
                return unreachable(p, why);
            }
            let (seconds, on_no_answer) = match &p.forwarding.no_answer {
                Some(na) => (na.seconds, resolve(p, &na.target)),
                None => (p.ring_seconds, None),
            };
            why.push(if targets.len() > 1 {
                "ring devices and simultaneous targets".into()
            } else {
                "ring devices".to_string()
            });
            Plan::Ring {
                steps: vec![RingStep { targets, seconds }],
                on_busy: p.forwarding.busy.as_ref().and_then(|t| resolve(p, t)),
                on_no_answer,
            }
        }
        Handling::Sequential { steps, fallback } => {
            let steps: Vec<RingStep> = steps
                .iter()
                .filter(|s| s.target != Target::Devices || ctx.registered_devices > 0)
                .filter_map(|s| {
                    resolve(p, &s.target).map(|t| RingStep {
                        targets: vec![t],
                        seconds: s.seconds,
                    })
                })
                .collect();
            if steps.is_empty() {
                return unreachable(p, why);
            }
            why.push(format!("sequential ring, {} steps", steps.len()));
            let on_no_answer = fallback
                .as_ref()
                .or(p.forwarding.no_answer.as_ref().map(|n| &n.target))
                .and_then(|t| resolve(p, t));
            Plan::Ring {
                steps,
                on_busy: p.forwarding.busy.as_ref().and_then(|t| resolve(p, t)),
                on_no_answer,
            }
        }
    }
}

fn with_message(code: u16, text: &str, why: &mut Vec<String>) -> Plan {
    // Reasons are read by users (the incoming-call window, history): no SIP codes.
    why.push(format!(
        "turned away as {}, with a message to the caller",
        rejection_name(code)
    ));
    Plan::RejectWithMessage {
        code,
        text: text.to_string(),
    }
}

fn holds(
    p: &Profile,
    c: &Condition,
    number: Option<&str>,
    presence: Presence,
    code: Option<&str>,
    at: NaiveDateTime,
) -> bool {
    (c.callers.is_empty()
        || number.is_some_and(|n| c.callers.iter().any(|pat| matches_pattern(pat, n))))
        && c.schedule
            .as_deref()
            .is_none_or(|s| schedule::is_active(p, s, at))
        && (c.statuses.is_empty() || c.statuses.contains(&presence))
        && (c.codes.is_empty() || code.is_some_and(|k| c.codes.iter().any(|x| x == k)))
}

/// The attendant stands for its configured target; other targets are as given.
fn resolve(p: &Profile, t: &Target) -> Option<Target> {
    match t {
        Target::Attendant => p.attendant.clone(),
        other => Some(other.clone()),
    }
}

fn forward(p: &Profile, t: &Target, why: &mut Vec<String>) -> Plan {
    match resolve(p, t) {
        Some(target) => {
            why.push(format!("forward to {}", describe(&target)));
            Plan::Forward { target }
        }
        None => {
            why.push("no attendant configured".into());
            Plan::Reject { code: 480 }
        }
    }
}

fn busy(p: &Profile, why: &mut Vec<String>) -> Plan {
    match &p.forwarding.busy {
        Some(t) => {
            why.push("forward on busy".into());
            forward(p, t, why)
        }
        None => Plan::Reject { code: 486 },
    }
}

fn unreachable(p: &Profile, why: &mut Vec<String>) -> Plan {
    why.push("no registered device".into());
    match &p.forwarding.unreachable {
        Some(t) => {
            why.push("forward when unreachable".into());
            forward(p, t, why)
        }
        None => Plan::Reject { code: 480 },
    }
}

/// A rejection as a user names it: the SIP status code stays on the wire.
pub fn rejection_name(code: u16) -> &'static str {
    match code {
        486 | 600 => "busy",
        603 => "declined",
        _ => "unavailable",
    }
}

pub fn describe(t: &Target) -> String {
    match t {
        Target::Devices => "devices".into(),
        Target::Extension(x) => format!("extension {x}"),
        Target::Number(n) => format!("number {n}"),
        Target::Attendant => "attendant".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feature::profile::*;
    use chrono::NaiveDate;

    fn ext(x: &str) -> Target {
        Target::Extension(x.into())
    }
    fn num(x: &str) -> Target {
        Target::Number(x.into())
    }

    /// A profile with the usual codes and business hours Mon–Fri 08:00–17:00.
    fn base() -> Profile {
        let code = |name: &str, handling| HandlingCode {
            name: name.into(),
            handling,
        };
        Profile {
            handling_codes: vec![
                code("VIP", Handling::Ring),
                code("Block", Handling::RejectDeclined),
                code("Busy", Handling::RejectBusy),
                code(
                    "Sales",
                    Handling::Forward {
                        target: ext("2000"),
                    },
                ),
                code("Boss", Handling::Attendant),
                code(
                    "Later",
                    Handling::RejectWithMessage {
                        text: "Busy, I will call back".into(),
                        code: 486,
                    },
                ),
            ],
            attendant: Some(ext("1999")),
            schedules: vec![Schedule {
                name: "business".into(),
                weekly: vec![WeeklyRange {
                    days: vec![Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri],
                    start: "08:00".into(),
                    end: "17:00".into(),
                }],
                dates: vec![],
                except: vec![],
            }],
            ..Profile::default()
        }
    }

    struct Case {
        name: &'static str,
        profile: fn(&mut Profile),
        caller: Option<&'static str>,
        code: Option<&'static str>,
        presence: Presence,
        on_call: bool,
        devices: usize,
        /// Hour of Monday 2026-11-23, or None for Sunday 2026-11-22 at noon.
        monday_hour: Option<u32>,
        expect: Plan,
    }

    const CASE: Case = Case {
        name: "",
        profile: |_| {},
        caller: Some("+41790000001"),
        code: None,
        presence: Presence::Available,
        on_call: false,
        devices: 1,
        monday_hour: Some(10),
        expect: Plan::Reject { code: 0 },
    };

    fn ring(targets: Vec<Target>, seconds: u32) -> Plan {
        Plan::Ring {
            steps: vec![RingStep { targets, seconds }],
            on_busy: None,
            on_no_answer: None,
        }
    }

    fn cases() -> Vec<Case> {
        let meeting = || Plan::RejectWithMessage {
            code: 480,
            text: "In a meeting until 3, I will call back".into(),
        };
        vec![
            Case {
                name: "reject with a message by default handling",
                profile: |p| {
                    p.default_handling = Handling::RejectWithMessage {
                        text: "In a meeting until 3, I will call back".into(),
                        code: 480,
                    }
                },
                expect: meeting(),
                ..CASE
            },
            Case {
                name: "reject with a message by handling code, even through do not disturb",
                code: Some("Later"),
                presence: Presence::DoNotDisturb,
                expect: Plan::RejectWithMessage {
                    code: 486,
                    text: "Busy, I will call back".into(),
                },
                ..CASE
            },
            Case {
                name: "reject with a message when no device is registered",
                devices: 0,
                profile: |p| {
                    p.default_handling = Handling::RejectWithMessage {
                        text: "In a meeting until 3, I will call back".into(),
                        code: 480,
                    }
                },
                expect: meeting(),
                ..CASE
            },
            Case {
                name: "blocked callers get no message",
                caller: Some("+41999000000"),
                profile: |p| {
                    p.caller_rules.blocked = vec!["+41999*".into()];
                    p.default_handling = Handling::RejectWithMessage {
                        text: "In a meeting until 3, I will call back".into(),
                        code: 480,
                    }
                },
                expect: Plan::Reject { code: 603 },
                ..CASE
            },
            Case {
                name: "forward always wins over a message by default handling",
                profile: |p| {
                    p.forwarding.always = Some(ext("1003"));
                    p.default_handling = Handling::RejectWithMessage {
                        text: "In a meeting until 3, I will call back".into(),
                        code: 603,
                    }
                },
                expect: Plan::Forward {
                    target: ext("1003"),
                },
                ..CASE
            },
            Case {
                name: "plain call rings the devices",
                expect: ring(vec![Target::Devices], 30),
                ..CASE
            },
            Case {
                name: "no device registered",
                devices: 0,
                expect: Plan::Reject { code: 480 },
                ..CASE
            },
            Case {
                name: "no device, forward when unreachable",
                devices: 0,
                profile: |p| p.forwarding.unreachable = Some(num("+41445550999")),
                expect: Plan::Forward {
                    target: num("+41445550999"),
                },
                ..CASE
            },
            Case {
                name: "anonymous rejected",
                caller: None,
                profile: |p| p.caller_rules.reject_anonymous = true,
                expect: Plan::Reject { code: 433 },
                ..CASE
            },
            Case {
                name: "anonymous allowed by default",
                caller: None,
                expect: ring(vec![Target::Devices], 30),
                ..CASE
            },
            Case {
                name: "blocked pattern",
                profile: |p| p.caller_rules.blocked = vec!["+4179*".into()],
                expect: Plan::Reject { code: 603 },
                ..CASE
            },
            Case {
                name: "contact with the Block code",
                code: Some("Block"),
                expect: Plan::Reject { code: 603 },
                ..CASE
            },
            Case {
                name: "blocked contact stays blocked during do not disturb",
                code: Some("Block"),
                profile: |p| p.dnd.enabled = true,
                expect: Plan::Reject { code: 603 },
                ..CASE
            },
            Case {
                name: "reject as busy code",
                code: Some("Busy"),
                expect: Plan::Reject { code: 486 },
                ..CASE
            },
            Case {
                name: "do not disturb",
                profile: |p| p.dnd.enabled = true,
                expect: Plan::Reject { code: 486 },
                ..CASE
            },
            Case {
                name: "do not disturb by status",
                presence: Presence::DoNotDisturb,
                expect: Plan::Reject { code: 486 },
                ..CASE
            },
            Case {
                name: "do not disturb forwards on busy when set",
                profile: |p| {
                    p.dnd.enabled = true;
                    p.forwarding.busy = Some(ext("1003"));
                },
                expect: Plan::Forward {
                    target: ext("1003"),
                },
                ..CASE
            },
            Case {
                name: "VIP rings through do not disturb",
                code: Some("VIP"),
                profile: |p| {
                    p.dnd.enabled = true;
                    p.dnd.exceptions = vec!["VIP".into()];
                },
                expect: ring(vec![Target::Devices], 30),
                ..CASE
            },
            Case {
                name: "do not disturb beats forward always",
                profile: |p| {
                    p.dnd.enabled = true;
                    p.forwarding.always = Some(num("+41445550111"));
                },
                expect: Plan::Reject { code: 486 },
                ..CASE
            },
            Case {
                name: "forward always",
                profile: |p| p.forwarding.always = Some(num("+41445550111")),
                expect: Plan::Forward {
                    target: num("+41445550111"),
                },
                ..CASE
            },
            Case {
                name: "code forwards",
                code: Some("Sales"),
                expect: Plan::Forward {
                    target: ext("2000"),
                },
                ..CASE
            },
            Case {
                name: "code sends to the attendant",
                code: Some("Boss"),
                expect: Plan::Forward {
                    target: ext("1999"),
                },
                ..CASE
            },
            Case {
                name: "undefined code is ignored",
                code: Some("Gone"),
                expect: ring(vec![Target::Devices], 30),
                ..CASE
            },
            Case {
                name: "selective by caller pattern",
                profile: |p| {
                    p.forwarding.selective = vec![SelectiveForward {
                        when: Condition {
                            callers: vec!["+4179*".into()],
                            ..Condition::default()
                        },
                        target: ext("1003"),
                    }]
                },
                expect: Plan::Forward {
                    target: ext("1003"),
                },
                ..CASE
            },
            Case {
                name: "selective by caller pattern, other caller rings",
                caller: Some("+41445550100"),
                profile: |p| {
                    p.forwarding.selective = vec![SelectiveForward {
                        when: Condition {
                            callers: vec!["+4179*".into()],
                            ..Condition::default()
                        },
                        target: ext("1003"),
                    }]
                },
                expect: ring(vec![Target::Devices], 30),
                ..CASE
            },
            Case {
                name: "after hours forward at night",
                monday_hour: Some(20),
                profile: |p| {
                    p.forwarding.selective = vec![SelectiveForward {
                        when: Condition {
                            schedule: Some("!business".into()),
                            ..Condition::default()
                        },
                        target: num("+41445550222"),
                    }]
                },
                expect: Plan::Forward {
                    target: num("+41445550222"),
                },
                ..CASE
            },
            Case {
                name: "after hours forward on Sunday",
                monday_hour: None,
                profile: |p| {
                    p.forwarding.selective = vec![SelectiveForward {
                        when: Condition {
                            schedule: Some("!business".into()),
                            ..Condition::default()
                        },
                        target: num("+41445550222"),
                    }]
                },
                expect: Plan::Forward {
                    target: num("+41445550222"),
                },
                ..CASE
            },
            Case {
                name: "after hours rule is quiet during business hours",
                profile: |p| {
                    p.forwarding.selective = vec![SelectiveForward {
                        when: Condition {
                            schedule: Some("!business".into()),
                            ..Condition::default()
                        },
                        target: num("+41445550222"),
                    }]
                },
                expect: ring(vec![Target::Devices], 30),
                ..CASE
            },
            Case {
                name: "selective by status away",
                presence: Presence::Away,
                profile: |p| {
                    p.forwarding.selective = vec![SelectiveForward {
                        when: Condition {
                            statuses: vec![Presence::Away, Presence::InMeeting],
                            ..Condition::default()
                        },
                        target: ext("1999"),
                    }]
                },
                expect: Plan::Forward {
                    target: ext("1999"),
                },
                ..CASE
            },
            Case {
                name: "selective by code",
                code: Some("VIP"),
                profile: |p| {
                    p.forwarding.selective = vec![SelectiveForward {
                        when: Condition {
                            codes: vec!["VIP".into()],
                            ..Condition::default()
                        },
                        target: num("+41790000099"),
                    }]
                },
                expect: Plan::Forward {
                    target: num("+41790000099"),
                },
                ..CASE
            },
            Case {
                name: "busy while on a call: status busy matches rules",
                on_call: true,
                profile: |p| {
                    p.forwarding.selective = vec![SelectiveForward {
                        when: Condition {
                            statuses: vec![Presence::Busy],
                            ..Condition::default()
                        },
                        target: ext("1003"),
                    }]
                },
                expect: Plan::Forward {
                    target: ext("1003"),
                },
                ..CASE
            },
            Case {
                name: "call waiting off: busy",
                on_call: true,
                profile: |p| p.call_waiting = false,
                expect: Plan::Reject { code: 486 },
                ..CASE
            },
            Case {
                name: "call waiting off: forward on busy",
                on_call: true,
                profile: |p| {
                    p.call_waiting = false;
                    p.forwarding.busy = Some(ext("1003"));
                },
                expect: Plan::Forward {
                    target: ext("1003"),
                },
                ..CASE
            },
            Case {
                name: "call waiting on: rings",
                on_call: true,
                expect: ring(vec![Target::Devices], 30),
                ..CASE
            },
            Case {
                name: "simultaneous ring",
                profile: |p| p.simultaneous = vec![num("+41790000123"), ext("1003")],
                expect: ring(vec![Target::Devices, num("+41790000123"), ext("1003")], 30),
                ..CASE
            },
            Case {
                name: "simultaneous ring without devices rings the others",
                devices: 0,
                profile: |p| p.simultaneous = vec![num("+41790000123")],
                expect: ring(vec![num("+41790000123")], 30),
                ..CASE
            },
            Case {
                name: "forward on no answer and on busy",
                profile: |p| {
                    p.forwarding.no_answer = Some(NoAnswerForward {
                        target: ext("1999"),
                        seconds: 15,
                    });
                    p.forwarding.busy = Some(ext("1003"));
                },
                expect: Plan::Ring {
                    steps: vec![RingStep {
                        targets: vec![Target::Devices],
                        seconds: 15,
                    }],
                    on_busy: Some(ext("1003")),
                    on_no_answer: Some(ext("1999")),
                },
                ..CASE
            },
            Case {
                name: "sequential ring with fallback",
                profile: |p| {
                    p.default_handling = Handling::Sequential {
                        steps: vec![
                            SequentialStep {
                                target: Target::Devices,
                                seconds: 10,
                            },
                            SequentialStep {
                                target: num("+41790000123"),
                                seconds: 20,
                            },
                        ],
                        fallback: Some(Target::Attendant),
                    }
                },
                expect: Plan::Ring {
                    steps: vec![
                        RingStep {
                            targets: vec![Target::Devices],
                            seconds: 10,
                        },
                        RingStep {
                            targets: vec![num("+41790000123")],
                            seconds: 20,
                        },
                    ],
                    on_busy: None,
                    on_no_answer: Some(ext("1999")),
                },
                ..CASE
            },
            Case {
                name: "sequential ring skips devices when none is registered",
                devices: 0,
                profile: |p| {
                    p.default_handling = Handling::Sequential {
                        steps: vec![
                            SequentialStep {
                                target: Target::Devices,
                                seconds: 10,
                            },
                            SequentialStep {
                                target: ext("1003"),
                                seconds: 20,
                            },
                        ],
                        fallback: None,
                    }
                },
                expect: Plan::Ring {
                    steps: vec![RingStep {
                        targets: vec![ext("1003")],
                        seconds: 20,
                    }],
                    on_busy: None,
                    on_no_answer: None,
                },
                ..CASE
            },
        ]
    }

    #[test]
    fn decision_table() {
        let mut failures = Vec::new();
        for case in cases() {
            let mut p = base();
            (case.profile)(&mut p);
            validate(&p, "1001").unwrap_or_else(|e| panic!("{}: invalid profile {e:?}", case.name));
            let caller = Caller {
                number: case.caller.map(str::to_string),
                anonymous: case.caller.is_none(),
            };
            let contact = case.code.map(|c| ContactMatch {
                name: "Someone".into(),
                handling_code: Some(c.into()),
                shared: false,
            });
            let local_time = match case.monday_hour {
                Some(h) => NaiveDate::from_ymd_opt(2026, 11, 23)
                    .unwrap()
                    .and_hms_opt(h, 0, 0)
                    .unwrap(),
                None => NaiveDate::from_ymd_opt(2026, 11, 22)
                    .unwrap()
                    .and_hms_opt(12, 0, 0)
                    .unwrap(),
            };
            let ctx = CallContext {
                caller: &caller,
                contact: contact.as_ref(),
                presence: case.presence,
                on_call: case.on_call,
                registered_devices: case.devices,
                local_time,
            };
            let d = decide(&p, &ctx);
            if d.plan != case.expect {
                failures.push(format!(
                    "{}: got {:?} ({:?}), want {:?}",
                    case.name, d.plan, d.reasons, case.expect
                ));
            }
            assert!(
                !d.reasons.is_empty() || matches!(d.plan, Plan::Reject { .. }),
                "{}: no reasons",
                case.name
            );
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn validation_names_the_field() {
        let mut p = base();
        p.forwarding.busy = Some(ext("1001"));
        p.dnd.exceptions = vec!["Nope".into()];
        p.schedules[0].weekly.push(WeeklyRange {
            days: vec![Day::Mon],
            start: "16:00".into(),
            end: "18:00".into(),
        });
        let errs = validate(&p, "1001").unwrap_err();
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(
            text.iter()
                .any(|e| e.starts_with("forwarding.busy: forwards to the user's own extension")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|e| e.starts_with("dnd.exceptions[0]: unknown handling code")),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|e| e.starts_with("schedules[0].weekly: ranges overlap")),
            "{text:?}"
        );
        assert!(validate(&base(), "1001").is_ok());
    }

    #[test]
    fn a_rejection_message_is_1_to_500_characters_with_480_486_or_603() {
        let with = |text: &str, code| {
            let mut p = base();
            p.default_handling = Handling::RejectWithMessage {
                text: text.into(),
                code,
            };
            validate(&p, "1001")
                .err()
                .unwrap_or_default()
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(with("Back at 3", 480), Vec::<String>::new());
        assert_eq!(with(&"é".repeat(500), 603), Vec::<String>::new());
        assert_eq!(with("two\nlines", 486), Vec::<String>::new());
        assert_eq!(
            with("", 480),
            ["default_handling.text: must be 1 to 500 characters"]
        );
        assert_eq!(
            with("   ", 480),
            ["default_handling.text: must be 1 to 500 characters"]
        );
        assert_eq!(
            with(&"x".repeat(501), 480),
            ["default_handling.text: must be 1 to 500 characters"]
        );
        assert_eq!(
            with("bell\u{7}", 480),
            ["default_handling.text: must not contain control characters"]
        );
        assert_eq!(
            with("Back at 3", 404),
            ["default_handling.code: must be 480, 486 or 603"]
        );
    }
}
