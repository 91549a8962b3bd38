//! OpenAPI schemas of the feature profile. The profile types live in the actors crate,
//! which knows no HTTP and so derives no `ToSchema`; these mirrors exist only for the
//! OpenAPI document. A test below compares their field names with what the real
//! types serialize, so the document cannot drift from the wire format unnoticed.

#![allow(dead_code)]

use serde::Serialize;
use utoipa::ToSchema;

/// A user's feature profile: handling codes, forwarding, do not disturb, ringing,
/// call waiting, schedules, caller rules and the attendant. Every field is optional
/// on PUT and takes its default when left out.
#[derive(Serialize, ToSchema)]
#[schema(as = Profile)]
pub struct ProfileDoc {
    /// Named codes a user attaches to contacts (VIP, Family, Block).
    handling_codes: Vec<HandlingCodeDoc>,
    /// How calls are handled when no handling code applies. Default: ring.
    default_handling: HandlingDoc,
    /// Rung together with the user's devices (simultaneous ring).
    simultaneous: Vec<TargetDoc>,
    /// How long devices ring when no other rule says: 5 to 600, default 30.
    #[schema(example = 30)]
    ring_seconds: u32,
    forwarding: ForwardingDoc,
    dnd: DoNotDisturbDoc,
    /// With call waiting off, a call while on a call is treated as busy. Default: on.
    call_waiting: bool,
    /// Weekly times and dates in the tenant's time zone, named for conditions.
    schedules: Vec<ScheduleDoc>,
    caller_rules: CallerRulesDoc,
    /// Who takes calls sent to the attendant: an extension or a number.
    attendant: Option<TargetDoc>,
}

/// Where a call can be sent: `"devices"`, `"attendant"`, `{"extension": "1002"}` or
/// `{"number": "+41445550100"}`.
#[derive(Serialize, ToSchema)]
#[schema(as = Target)]
#[serde(rename_all = "snake_case")]
pub enum TargetDoc {
    Devices,
    Extension(String),
    Number(String),
    Attendant,
}

/// What to do with a call, by `method`.
#[derive(Serialize, ToSchema)]
#[schema(as = Handling)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum HandlingDoc {
    /// Ring the user's devices and the simultaneous-ring targets at once.
    Ring,
    /// Ring targets one after the other, each for its time, then the fallback.
    Sequential {
        steps: Vec<SequentialStepDoc>,
        fallback: Option<TargetDoc>,
    },
    Forward {
        target: TargetDoc,
    },
    Attendant,
    /// 486 Busy Here.
    RejectBusy,
    /// 603 Decline.
    RejectDeclined,
    /// Reject with `code` and send the caller `text` as an instant message (their
    /// portal and SIP phones, when the caller is a user of the tenant or calls from a
    /// user's external phone).
    RejectWithMessage {
        /// 1 to 500 characters.
        #[schema(example = "In a meeting until 3, I will call back")]
        text: String,
        /// 480 (default), 486 or 603.
        #[schema(example = 480)]
        code: Option<u16>,
    },
}

#[derive(Serialize, ToSchema)]
#[schema(as = SequentialStep)]
pub struct SequentialStepDoc {
    target: TargetDoc,
    /// 5 to 600.
    seconds: u32,
}

#[derive(Serialize, ToSchema)]
#[schema(as = HandlingCode)]
pub struct HandlingCodeDoc {
    /// 1 to 40 characters, unique within the profile.
    #[schema(example = "VIP")]
    name: String,
    handling: HandlingDoc,
}

#[derive(Serialize, ToSchema)]
#[schema(as = Forwarding)]
pub struct ForwardingDoc {
    always: Option<TargetDoc>,
    busy: Option<TargetDoc>,
    no_answer: Option<NoAnswerForwardDoc>,
    /// No device registered.
    unreachable: Option<TargetDoc>,
    /// Checked in order; the first whose condition holds forwards the call.
    selective: Vec<SelectiveForwardDoc>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = NoAnswerForward)]
pub struct NoAnswerForwardDoc {
    target: TargetDoc,
    /// Seconds the devices ring first: 5 to 600.
    seconds: u32,
}

#[derive(Serialize, ToSchema)]
#[schema(as = SelectiveForward)]
pub struct SelectiveForwardDoc {
    when: ConditionDoc,
    target: TargetDoc,
}

/// When a rule applies: every given part must hold; an empty condition always holds.
#[derive(Serialize, ToSchema)]
#[schema(as = Condition)]
pub struct ConditionDoc {
    /// Numbers or prefixes ending in `*` (`+4144*`).
    callers: Vec<String>,
    /// A schedule name; `!name` means outside that schedule.
    schedule: Option<String>,
    statuses: Vec<PresenceDoc>,
    /// Handling codes of the calling contact.
    codes: Vec<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = DoNotDisturb)]
pub struct DoNotDisturbDoc {
    enabled: bool,
    /// Handling codes that ring through (VIP).
    exceptions: Vec<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = CallerRules)]
pub struct CallerRulesDoc {
    /// 433 for callers who withhold their number.
    reject_anonymous: bool,
    /// Numbers or `prefix*` patterns declined with 603.
    blocked: Vec<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = Schedule)]
pub struct ScheduleDoc {
    #[schema(example = "business")]
    name: String,
    weekly: Vec<WeeklyRangeDoc>,
    /// Whole days, inclusive.
    dates: Vec<DateRangeDoc>,
    /// Schedules whose time is taken out of this one (`["holidays"]`).
    except: Vec<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = WeeklyRange)]
pub struct WeeklyRangeDoc {
    /// `mon` ... `sun`.
    #[schema(example = json!(["mon", "tue", "wed", "thu", "fri"]))]
    days: Vec<String>,
    /// `HH:MM`, inclusive.
    #[schema(example = "08:00")]
    start: String,
    /// `HH:MM`, exclusive, after start.
    #[schema(example = "17:00")]
    end: String,
}

#[derive(Serialize, ToSchema)]
#[schema(as = DateRange)]
pub struct DateRangeDoc {
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
}

/// The status a user sets (busy is also set automatically while on a call).
#[derive(Serialize, ToSchema)]
#[schema(as = Presence)]
#[serde(rename_all = "snake_case")]
pub enum PresenceDoc {
    Available,
    Busy,
    Away,
    InMeeting,
    DoNotDisturb,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::collections::BTreeSet;
    use tsps_actors::feature::profile::*;
    use utoipa::openapi::schema::Schema;
    use utoipa::openapi::RefOr;
    use utoipa::PartialSchema;

    fn doc_fields<T: PartialSchema>() -> BTreeSet<String> {
        match T::schema() {
            RefOr::T(Schema::Object(o)) => o.properties.keys().cloned().collect(),
            other => panic!(
                "not an object schema: {}",
                serde_json::to_string(&other).unwrap()
            ),
        }
    }

    fn wire_fields(v: &impl serde::Serialize) -> BTreeSet<String> {
        match serde_json::to_value(v).unwrap() {
            Value::Object(m) => m.keys().cloned().collect(),
            other => panic!("not an object: {other}"),
        }
    }

    fn schema_json<T: PartialSchema>() -> Value {
        serde_json::to_value(T::schema()).unwrap()
    }

    #[test]
    fn the_mirrors_have_the_fields_of_the_real_types() {
        let t = || Target::Extension("1002".into());
        let condition = Condition {
            callers: vec!["+4144*".into()],
            schedule: Some("business".into()),
            statuses: vec![Presence::Away],
            codes: vec!["VIP".into()],
        };
        let schedule = Schedule {
            name: "business".into(),
            weekly: vec![WeeklyRange {
                days: vec![Day::Mon],
                start: "08:00".into(),
                end: "17:00".into(),
            }],
            dates: vec![DateRange {
                from: chrono::NaiveDate::from_ymd_opt(2026, 12, 24).unwrap(),
                to: chrono::NaiveDate::from_ymd_opt(2026, 12, 26).unwrap(),
            }],
            except: vec![],
        };
        let forwarding = Forwarding {
            always: Some(t()),
            busy: Some(t()),
            no_answer: Some(NoAnswerForward {
                target: t(),
                seconds: 20,
            }),
            unreachable: Some(t()),
            selective: vec![SelectiveForward {
                when: condition.clone(),
                target: t(),
            }],
        };
        let profile = Profile {
            attendant: Some(t()),
            ..Default::default()
        };
        let pairs = [
            (doc_fields::<ProfileDoc>(), wire_fields(&profile)),
            (doc_fields::<ForwardingDoc>(), wire_fields(&forwarding)),
            (
                doc_fields::<NoAnswerForwardDoc>(),
                wire_fields(forwarding.no_answer.as_ref().unwrap()),
            ),
            (
                doc_fields::<SelectiveForwardDoc>(),
                wire_fields(&forwarding.selective[0]),
            ),
            (doc_fields::<ConditionDoc>(), wire_fields(&condition)),
            (doc_fields::<ScheduleDoc>(), wire_fields(&schedule)),
            (
                doc_fields::<WeeklyRangeDoc>(),
                wire_fields(&schedule.weekly[0]),
            ),
            (
                doc_fields::<DateRangeDoc>(),
                wire_fields(&schedule.dates[0]),
            ),
            (
                doc_fields::<DoNotDisturbDoc>(),
                wire_fields(&DoNotDisturb::default()),
            ),
            (
                doc_fields::<CallerRulesDoc>(),
                wire_fields(&CallerRules::default()),
            ),
            (
                doc_fields::<HandlingCodeDoc>(),
                wire_fields(&HandlingCode {
                    name: "VIP".into(),
                    handling: Handling::Ring,
                }),
            ),
            (
                doc_fields::<SequentialStepDoc>(),
                wire_fields(&SequentialStep {
                    target: t(),
                    seconds: 10,
                }),
            ),
        ];
        for (doc, wire) in pairs {
            assert_eq!(doc, wire);
        }
    }

    #[test]
    fn enum_values_match_the_wire_format() {
        let doc = schema_json::<PresenceDoc>().to_string();
        for p in [
            Presence::Available,
            Presence::Busy,
            Presence::Away,
            Presence::InMeeting,
            Presence::DoNotDisturb,
        ] {
            let wire = serde_json::to_value(p).unwrap();
            assert!(doc.contains(&wire.to_string()), "{wire} not in {doc}");
        }
        let doc = schema_json::<TargetDoc>().to_string();
        for key in [
            "\"devices\"",
            "\"attendant\"",
            "\"extension\"",
            "\"number\"",
        ] {
            assert!(doc.contains(key), "{key} not in {doc}");
        }
        let doc = schema_json::<HandlingDoc>().to_string();
        let handlings = [
            json!({"method": "ring"}),
            json!({"method": "sequential", "steps": [], "fallback": null}),
            json!({"method": "forward", "target": "devices"}),
            json!({"method": "attendant"}),
            json!({"method": "reject_busy"}),
            json!({"method": "reject_declined"}),
            json!({"method": "reject_with_message", "text": "Back at 3"}),
        ];
        for h in handlings {
            // Each documented method parses as a real handling.
            let parsed: Handling = serde_json::from_value(h.clone()).unwrap();
            let method = serde_json::to_value(parsed).unwrap()["method"].to_string();
            assert!(doc.contains(&method), "{method} not in {doc}");
        }
        // A rejection with a message is 480 unless the profile says otherwise.
        let h: Handling =
            serde_json::from_value(json!({"method": "reject_with_message", "text": "Back at 3"}))
                .unwrap();
        assert_eq!(
            h,
            Handling::RejectWithMessage {
                text: "Back at 3".into(),
                code: 480
            }
        );
    }
}
