//! A user's feature profile: handling codes, forwarding, do not disturb, ringing,
//! call waiting, schedules, caller rules and the attendant. Plain data, stored as one
//! validated document per user; [`validate`] says what is wrong in terms a user reads.

use serde::{Deserialize, Serialize};

/// Where a call can be sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The user's own registered devices.
    Devices,
    /// Another user of the same tenant.
    Extension(String),
    /// An outside number (through the tenant's trunk).
    Number(String),
    /// The user's attendant.
    Attendant,
}

/// What to do with a call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
// Read through `HandlingFields`: serde's internally tagged enums buffer the fields to
// find the tag, and an error in a field would lose the field's name.
#[serde(tag = "method", rename_all = "snake_case", try_from = "HandlingFields")]
pub enum Handling {
    /// Ring the user's devices and the simultaneous-ring targets at once.
    Ring,
    /// Ring targets one after the other, each for its time, then the fallback.
    Sequential {
        steps: Vec<SequentialStep>,
        #[serde(default)]
        fallback: Option<Target>,
    },
    Forward {
        target: Target,
    },
    /// Send the call to the user's attendant.
    Attendant,
    /// Reject as busy (486).
    RejectBusy,
    /// Reject as declined (603).
    RejectDeclined,
    /// Reject with `code` (480, 486 or 603) and send the caller `text` as an instant
    /// message (their portal and their SIP phones, when the caller is a user of the
    /// tenant; see `presence::message`).
    RejectWithMessage {
        text: String,
        #[serde(default = "default_message_code")]
        code: u16,
    },
}

/// A handling as written: every field any method takes. A plain struct, so an error
/// in a field is reported at its path (`default_handling.code`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HandlingFields {
    method: HandlingMethod,
    steps: Option<Vec<SequentialStep>>,
    fallback: Option<Target>,
    target: Option<Target>,
    text: Option<String>,
    // Absent is the default code; `null` is no code at all.
    #[serde(default, deserialize_with = "present")]
    code: Option<u16>,
}

fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum HandlingMethod {
    Ring,
    Sequential,
    Forward,
    Attendant,
    RejectBusy,
    RejectDeclined,
    RejectWithMessage,
}

impl TryFrom<HandlingFields> for Handling {
    type Error = String;

    fn try_from(f: HandlingFields) -> Result<Self, String> {
        use HandlingMethod as M;
        let method = f.method;
        let name = |m: HandlingMethod| match m {
            M::Ring => "ring",
            M::Sequential => "sequential",
            M::Forward => "forward",
            M::Attendant => "attendant",
            M::RejectBusy => "reject_busy",
            M::RejectDeclined => "reject_declined",
            M::RejectWithMessage => "reject_with_message",
        };
        // A field the method does not use is a mistake to point out, not to drop.
        let unused = |field: &str, present: bool| -> Result<(), String> {
            match present {
                true => Err(format!(
                    "`{field}` is not a field of method {}",
                    name(method)
                )),
                false => Ok(()),
            }
        };
        let missing = |field: &str| format!("missing field `{field}`");
        let keep = |fields: &[&str]| -> Result<(), String> {
            for (field, present) in [
                ("steps", f.steps.is_some()),
                ("fallback", f.fallback.is_some()),
                ("target", f.target.is_some()),
                ("text", f.text.is_some()),
                ("code", f.code.is_some()),
            ] {
                if !fields.contains(&field) {
                    unused(field, present)?;
                }
            }
            Ok(())
        };
        Ok(match method {
            M::Ring => keep(&[]).map(|()| Handling::Ring)?,
            M::Attendant => keep(&[]).map(|()| Handling::Attendant)?,
            M::RejectBusy => keep(&[]).map(|()| Handling::RejectBusy)?,
            M::RejectDeclined => keep(&[]).map(|()| Handling::RejectDeclined)?,
            M::Sequential => {
                keep(&["steps", "fallback"])?;
                Handling::Sequential {
                    steps: f.steps.clone().ok_or_else(|| missing("steps"))?,
                    fallback: f.fallback.clone(),
                }
            }
            M::Forward => {
                keep(&["target"])?;
                Handling::Forward {
                    target: f.target.clone().ok_or_else(|| missing("target"))?,
                }
            }
            M::RejectWithMessage => {
                keep(&["text", "code"])?;
                Handling::RejectWithMessage {
                    text: f.text.clone().ok_or_else(|| missing("text"))?,
                    code: f.code.unwrap_or_else(default_message_code),
                }
            }
        })
    }
}

/// Temporarily unavailable: "not now", which the message explains.
fn default_message_code() -> u16 {
    480
}

/// The final statuses a rejection with a message may use.
pub const MESSAGE_CODES: [u16; 3] = [480, 486, 603];

/// Longest text of a rejection message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 500;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequentialStep {
    pub target: Target,
    pub seconds: u32,
}

/// A named handling code a user attaches to contacts (VIP, Family, Block, ...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandlingCode {
    pub name: String,
    pub handling: Handling,
}

/// The status a user sets (busy is also set automatically while on a call).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    #[default]
    Available,
    Busy,
    Away,
    InMeeting,
    DoNotDisturb,
}

/// When a rule applies. Every given part must hold; an empty condition always holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Condition {
    /// Caller numbers or patterns: `+41445550100`, or a prefix ending in `*`
    /// (`+4144*`). Empty: any caller.
    pub callers: Vec<String>,
    /// A schedule that must be active; `!name` means outside that schedule.
    pub schedule: Option<String>,
    /// The user's status must be one of these. Empty: any status.
    pub statuses: Vec<Presence>,
    /// The caller's handling code must be one of these. Empty: any.
    pub codes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoAnswerForward {
    pub target: Target,
    /// Seconds the devices ring before the call is forwarded.
    pub seconds: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectiveForward {
    #[serde(deserialize_with = "crate::wire::object")]
    pub when: Condition,
    pub target: Target,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Forwarding {
    pub always: Option<Target>,
    pub busy: Option<Target>,
    pub no_answer: Option<NoAnswerForward>,
    /// No device registered.
    pub unreachable: Option<Target>,
    /// Checked in order; the first whose condition holds forwards the call.
    pub selective: Vec<SelectiveForward>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DoNotDisturb {
    pub enabled: bool,
    /// Handling codes that ring through do not disturb (for example VIP).
    pub exceptions: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CallerRules {
    /// Reject callers who withhold their number (433 Anonymity Disallowed).
    pub reject_anonymous: bool,
    /// Numbers or `prefix*` patterns rejected as declined (603).
    pub blocked: Vec<String>,
}

/// Weekly opening times plus dates, in the tenant's time zone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub name: String,
    #[serde(default)]
    pub weekly: Vec<WeeklyRange>,
    /// Whole days (holidays, closures), inclusive.
    #[serde(default)]
    pub dates: Vec<DateRange>,
    /// Names of schedules whose time is taken out of this one (business hours
    /// `except: ["holidays"]`).
    #[serde(default)]
    pub except: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeeklyRange {
    /// `mon`, `tue`, ... `sun`.
    pub days: Vec<Day>,
    /// `HH:MM`, start inclusive, end exclusive, start before end.
    pub start: String,
    pub end: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DateRange {
    pub from: chrono::NaiveDate,
    pub to: chrono::NaiveDate,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Profile {
    pub handling_codes: Vec<HandlingCode>,
    /// How calls are handled when no handling code applies.
    pub default_handling: Handling,
    /// Rung together with the user's devices (simultaneous ring).
    pub simultaneous: Vec<Target>,
    /// How long devices ring when no other rule says.
    pub ring_seconds: u32,
    #[serde(deserialize_with = "crate::wire::object")]
    pub forwarding: Forwarding,
    #[serde(deserialize_with = "crate::wire::object")]
    pub dnd: DoNotDisturb,
    /// With call waiting off, a call while the user is on a call is treated as busy.
    pub call_waiting: bool,
    pub schedules: Vec<Schedule>,
    #[serde(deserialize_with = "crate::wire::object")]
    pub caller_rules: CallerRules,
    /// Who takes calls sent to the attendant: an extension or a number.
    pub attendant: Option<Target>,
}

impl Default for Profile {
    fn default() -> Self {
        Self {
            handling_codes: Vec::new(),
            default_handling: Handling::Ring,
            simultaneous: Vec::new(),
            ring_seconds: 30,
            forwarding: Forwarding::default(),
            dnd: DoNotDisturb::default(),
            call_waiting: true,
            schedules: Vec::new(),
            caller_rules: CallerRules::default(),
            attendant: None,
        }
    }
}

impl Profile {
    /// Every target of the profile with the path of its field (the paths `validate`
    /// uses), for checks and normalization that need the tenant.
    pub fn targets_mut(&mut self) -> Vec<(String, &mut Target)> {
        let mut all: Vec<(String, &mut Target)> = Vec::new();
        let handlings = self
            .handling_codes
            .iter_mut()
            .enumerate()
            .map(|(i, c)| (format!("handling_codes[{i}].handling"), &mut c.handling))
            .chain(std::iter::once((
                "default_handling".to_string(),
                &mut self.default_handling,
            )));
        for (field, h) in handlings {
            match h {
                Handling::Sequential { steps, fallback } => {
                    for (i, s) in steps.iter_mut().enumerate() {
                        all.push((format!("{field}.steps[{i}].target"), &mut s.target));
                    }
                    if let Some(f) = fallback {
                        all.push((format!("{field}.fallback"), f));
                    }
                }
                Handling::Forward { target } => all.push((format!("{field}.target"), target)),
                Handling::Ring
                | Handling::Attendant
                | Handling::RejectBusy
                | Handling::RejectDeclined
                | Handling::RejectWithMessage { .. } => {}
            }
        }
        for (i, t) in self.simultaneous.iter_mut().enumerate() {
            all.push((format!("simultaneous[{i}]"), t));
        }
        let fw = &mut self.forwarding;
        for (name, t) in [
            ("always", &mut fw.always),
            ("busy", &mut fw.busy),
            ("unreachable", &mut fw.unreachable),
        ] {
            if let Some(t) = t {
                all.push((format!("forwarding.{name}"), t));
            }
        }
        if let Some(na) = &mut fw.no_answer {
            all.push(("forwarding.no_answer.target".into(), &mut na.target));
        }
        for (i, s) in fw.selective.iter_mut().enumerate() {
            all.push((format!("forwarding.selective[{i}].target"), &mut s.target));
        }
        if let Some(t) = &mut self.attendant {
            all.push(("attendant".into(), t));
        }
        all
    }

    /// Every caller number or `prefix*` pattern, with the path of its field.
    pub fn caller_patterns_mut(&mut self) -> Vec<(String, &mut String)> {
        let mut all: Vec<(String, &mut String)> = Vec::new();
        for (i, s) in self.forwarding.selective.iter_mut().enumerate() {
            for (k, c) in s.when.callers.iter_mut().enumerate() {
                all.push((format!("forwarding.selective[{i}].when.callers[{k}]"), c));
            }
        }
        for (k, c) in self.caller_rules.blocked.iter_mut().enumerate() {
            all.push((format!("caller_rules.blocked[{k}]"), c));
        }
        all
    }

    pub fn code(&self, name: &str) -> Option<&HandlingCode> {
        self.handling_codes.iter().find(|c| c.name == name)
    }
    pub fn schedule(&self, name: &str) -> Option<&Schedule> {
        self.schedules.iter().find(|s| s.name == name)
    }
}

/// One problem in a profile, with the path of the field (`forwarding.busy`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ProfileError {
    pub field: String,
    pub reason: String,
}

const MIN_SECONDS: u32 = 5;
const MAX_SECONDS: u32 = 600;

/// Checks a profile of the user with `own_extension`. Returns every problem found.
pub fn validate(p: &Profile, own_extension: &str) -> Result<(), Vec<ProfileError>> {
    let mut errs = Vec::new();
    let mut err = |field: String, reason: &str| {
        errs.push(ProfileError {
            field,
            reason: reason.to_string(),
        })
    };
    let mut names = std::collections::HashSet::new();
    for (i, c) in p.handling_codes.iter().enumerate() {
        if c.name.trim().is_empty() || c.name.len() > 40 {
            err(
                format!("handling_codes[{i}].name"),
                "must be 1 to 40 characters",
            );
        }
        if !names.insert(c.name.as_str()) {
            err(format!("handling_codes[{i}].name"), "is used twice");
        }
    }
    let known_code = |n: &str| p.handling_codes.iter().any(|c| c.name == n);
    let mut sched_names = std::collections::HashSet::new();
    for (i, s) in p.schedules.iter().enumerate() {
        let f = format!("schedules[{i}]");
        if s.name.trim().is_empty() || s.name.starts_with('!') {
            err(
                format!("{f}.name"),
                "must be non-empty and not start with '!'",
            );
        }
        if !sched_names.insert(s.name.as_str()) {
            err(format!("{f}.name"), "is used twice");
        }
        let mut spans: Vec<(usize, u32, u32)> = Vec::new();
        for (j, w) in s.weekly.iter().enumerate() {
            let (a, b) = (minutes(&w.start), minutes(&w.end));
            match (a, b) {
                (Some(a), Some(b)) if a < b => {
                    for d in &w.days {
                        spans.push((*d as usize, a, b));
                    }
                }
                (Some(_), Some(_)) => err(format!("{f}.weekly[{j}]"), "start must be before end"),
                _ => err(format!("{f}.weekly[{j}]"), "times must be HH:MM"),
            }
            if w.days.is_empty() {
                err(
                    format!("{f}.weekly[{j}].days"),
                    "must name at least one day",
                );
            }
        }
        spans.sort();
        if spans
            .windows(2)
            .any(|w| w[0].0 == w[1].0 && w[1].1 < w[0].2)
        {
            err(format!("{f}.weekly"), "ranges overlap on the same day");
        }
        for (j, d) in s.dates.iter().enumerate() {
            if d.from > d.to {
                err(format!("{f}.dates[{j}]"), "from must not be after to");
            }
        }
        for (j, e) in s.except.iter().enumerate() {
            if e == &s.name {
                err(
                    format!("{f}.except[{j}]"),
                    "a schedule cannot except itself",
                );
            } else if p.schedule(e).is_none() {
                err(format!("{f}.except[{j}]"), "names no schedule");
            }
        }
    }
    let target = |field: String, t: &Target, errs: &mut Vec<ProfileError>| match t {
        Target::Extension(x) if x == own_extension => errs.push(ProfileError {
            field,
            reason: "forwards to the user's own extension (a loop)".into(),
        }),
        Target::Extension(x) if x.is_empty() || !x.bytes().all(|b| b.is_ascii_digit()) => errs
            .push(ProfileError {
                field,
                reason: "an extension is digits".into(),
            }),
        Target::Number(n) if !is_number(n) => errs.push(ProfileError {
            field,
            reason: "a number is digits, optionally after '+'".into(),
        }),
        Target::Attendant if p.attendant.is_none() => errs.push(ProfileError {
            field,
            reason: "no attendant is configured".into(),
        }),
        _ => {}
    };
    let condition = |field: String, c: &Condition, errs: &mut Vec<ProfileError>| {
        for (k, pat) in c.callers.iter().enumerate() {
            if !is_pattern(pat) {
                errs.push(ProfileError {
                    field: format!("{field}.callers[{k}]"),
                    reason: "a number or a prefix ending in '*'".into(),
                });
            }
        }
        if let Some(s) = &c.schedule {
            if p.schedule(s.trim_start_matches('!')).is_none() {
                errs.push(ProfileError {
                    field: format!("{field}.schedule"),
                    reason: "names no schedule".into(),
                });
            }
        }
        for (k, code) in c.codes.iter().enumerate() {
            if !known_code(code) {
                errs.push(ProfileError {
                    field: format!("{field}.codes[{k}]"),
                    reason: "unknown handling code".into(),
                });
            }
        }
    };
    let handling = |field: String, h: &Handling, errs: &mut Vec<ProfileError>| match h {
        Handling::Sequential { steps, fallback } => {
            if steps.is_empty() {
                errs.push(ProfileError {
                    field: format!("{field}.steps"),
                    reason: "needs at least one step".into(),
                });
            }
            for (k, s) in steps.iter().enumerate() {
                target(format!("{field}.steps[{k}].target"), &s.target, errs);
                if !(MIN_SECONDS..=MAX_SECONDS).contains(&s.seconds) {
                    errs.push(ProfileError {
                        field: format!("{field}.steps[{k}].seconds"),
                        reason: format!("must be {MIN_SECONDS} to {MAX_SECONDS}"),
                    });
                }
            }
            if let Some(f) = fallback {
                target(format!("{field}.fallback"), f, errs);
            }
        }
        Handling::Forward { target: t } => target(format!("{field}.target"), t, errs),
        Handling::Attendant if p.attendant.is_none() => errs.push(ProfileError {
            field,
            reason: "no attendant is configured".into(),
        }),
        Handling::RejectWithMessage { text, code } => {
            if let Err(reason) = check_message(text) {
                errs.push(ProfileError {
                    field: format!("{field}.text"),
                    reason,
                });
            }
            if !MESSAGE_CODES.contains(code) {
                errs.push(ProfileError {
                    field: format!("{field}.code"),
                    reason: "must be 480, 486 or 603".into(),
                });
            }
        }
        _ => {}
    };
    let mut more = Vec::new();
    for (i, c) in p.handling_codes.iter().enumerate() {
        handling(
            format!("handling_codes[{i}].handling"),
            &c.handling,
            &mut more,
        );
    }
    handling("default_handling".into(), &p.default_handling, &mut more);
    for (i, t) in p.simultaneous.iter().enumerate() {
        if *t == Target::Devices {
            more.push(ProfileError {
                field: format!("simultaneous[{i}]"),
                reason: "the user's devices always ring; list other targets".into(),
            });
        }
        target(format!("simultaneous[{i}]"), t, &mut more);
    }
    let fw = &p.forwarding;
    for (name, t) in [
        ("always", &fw.always),
        ("busy", &fw.busy),
        ("unreachable", &fw.unreachable),
    ] {
        if let Some(t) = t {
            target(format!("forwarding.{name}"), t, &mut more);
        }
    }
    if let Some(na) = &fw.no_answer {
        target("forwarding.no_answer.target".into(), &na.target, &mut more);
        if !(MIN_SECONDS..=MAX_SECONDS).contains(&na.seconds) {
            more.push(ProfileError {
                field: "forwarding.no_answer.seconds".into(),
                reason: format!("must be {MIN_SECONDS} to {MAX_SECONDS}"),
            });
        }
    }
    for (i, s) in fw.selective.iter().enumerate() {
        condition(
            format!("forwarding.selective[{i}].when"),
            &s.when,
            &mut more,
        );
        target(
            format!("forwarding.selective[{i}].target"),
            &s.target,
            &mut more,
        );
    }
    for (i, code) in p.dnd.exceptions.iter().enumerate() {
        if !known_code(code) {
            more.push(ProfileError {
                field: format!("dnd.exceptions[{i}]"),
                reason: "unknown handling code".into(),
            });
        }
    }
    for (i, pat) in p.caller_rules.blocked.iter().enumerate() {
        if !is_pattern(pat) {
            more.push(ProfileError {
                field: format!("caller_rules.blocked[{i}]"),
                reason: "a number or a prefix ending in '*'".into(),
            });
        }
    }
    match &p.attendant {
        Some(Target::Devices) | Some(Target::Attendant) => more.push(ProfileError {
            field: "attendant".into(),
            reason: "must be an extension or a number".into(),
        }),
        Some(t) => target("attendant".into(), t, &mut more),
        None => {}
    }
    if !(MIN_SECONDS..=MAX_SECONDS).contains(&p.ring_seconds) {
        more.push(ProfileError {
            field: "ring_seconds".into(),
            reason: format!("must be {MIN_SECONDS} to {MAX_SECONDS}"),
        });
    }
    errs.extend(more);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

/// An instant message's text: 1 to 500 characters, not only spaces, no control
/// characters other than line breaks (it goes into a SIP body and a portal line).
pub fn check_message(text: &str) -> Result<(), String> {
    let n = text.chars().count();
    if text.trim().is_empty() || n > MAX_MESSAGE_CHARS {
        return Err(format!("must be 1 to {MAX_MESSAGE_CHARS} characters"));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

fn is_number(n: &str) -> bool {
    let d = n.strip_prefix('+').unwrap_or(n);
    !d.is_empty() && d.len() <= 20 && d.bytes().all(|b| b.is_ascii_digit())
}

fn is_pattern(p: &str) -> bool {
    match p.strip_suffix('*') {
        Some(prefix) => prefix.is_empty() || is_number(prefix) || prefix == "+",
        None => is_number(p),
    }
}

/// Whether `number` matches a number or `prefix*` pattern.
pub fn matches_pattern(pattern: &str, number: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => number.starts_with(prefix),
        None => pattern == number,
    }
}

/// `HH:MM` as minutes after midnight; `24:00` is allowed as an end.
pub fn minutes(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return None;
    }
    Some(h * 60 + m)
}
