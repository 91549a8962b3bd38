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
#[serde(default, deny_unknown_fields)]
pub struct ProfileDoc {
    /// Named codes a user attaches to contacts (VIP, Family, Block).
    handling_codes: Vec<HandlingCodeDoc>,
    /// How calls are handled when no handling code applies. Default: ring.
    default_handling: HandlingDoc,
    /// Rung together with the user's devices (simultaneous ring).
    simultaneous: Vec<TargetDoc>,
    /// How long devices ring when no other rule says: 5 to 600, default 30.
    #[schema(example = 30, minimum = 5, maximum = 600)]
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

/// What a field left out of a PUT becomes (the test below holds it to
/// `Profile::default`).
impl Default for ProfileDoc {
    fn default() -> Self {
        Self {
            handling_codes: Vec::new(),
            default_handling: HandlingDoc::Ring,
            simultaneous: Vec::new(),
            ring_seconds: 30,
            forwarding: ForwardingDoc::default(),
            dnd: DoNotDisturbDoc::default(),
            call_waiting: true,
            schedules: Vec::new(),
            caller_rules: CallerRulesDoc::default(),
            attendant: None,
        }
    }
}

/// Where a call can be sent: `"devices"`, `"attendant"`, `{"extension": "1002"}` or
/// `{"number": "+41445550100"}`.
#[derive(Serialize, ToSchema)]
#[schema(as = Target)]
#[serde(untagged)]
pub enum TargetDoc {
    Named(NamedTargetDoc),
    Extension(ExtensionTargetDoc),
    Number(NumberTargetDoc),
}

/// The targets without a value.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NamedTargetDoc {
    /// The user's own registered devices.
    Devices,
    /// The user's attendant.
    Attendant,
}

/// Another user of the same tenant, by extension.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtensionTargetDoc {
    #[schema(example = "1002", pattern = "^[0-9]+$")]
    extension: String,
}

/// An outside number (through the tenant's trunk), as the user would dial it.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NumberTargetDoc {
    #[schema(example = "+41445550100")]
    number: String,
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
        #[schema(schema_with = super::rule_schemas::message_text)]
        text: String,
        #[serde(default)]
        #[schema(schema_with = super::rule_schemas::message_code)]
        code: u16,
    },
}

#[derive(Serialize, ToSchema)]
#[schema(as = SequentialStep)]
pub struct SequentialStepDoc {
    target: TargetDoc,
    /// 5 to 600.
    #[schema(minimum = 5, maximum = 600)]
    seconds: u32,
}

#[derive(Serialize, ToSchema)]
#[schema(as = HandlingCode)]
pub struct HandlingCodeDoc {
    /// 1 to 40 characters (bytes), not only spaces; unique within the profile.
    #[schema(
        example = "VIP",
        max_length = 40,
        pattern = r"[^\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
    )]
    name: String,
    handling: HandlingDoc,
}

#[derive(Default, Serialize, ToSchema)]
#[schema(as = Forwarding)]
#[serde(default, deny_unknown_fields)]
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
    #[schema(minimum = 5, maximum = 600)]
    seconds: u32,
}

#[derive(Serialize, ToSchema)]
#[schema(as = SelectiveForward)]
pub struct SelectiveForwardDoc {
    when: ConditionDoc,
    target: TargetDoc,
}

/// When a rule applies: every given part must hold; an empty condition always holds.
#[derive(Default, Serialize, ToSchema)]
#[schema(as = Condition)]
#[serde(default, deny_unknown_fields)]
pub struct ConditionDoc {
    /// Numbers or prefixes ending in `*` (`+4144*`).
    callers: Vec<String>,
    /// A schedule name; `!name` means outside that schedule.
    schedule: Option<String>,
    statuses: Vec<PresenceDoc>,
    /// Handling codes of the calling contact.
    codes: Vec<String>,
}

#[derive(Default, Serialize, ToSchema)]
#[schema(as = DoNotDisturb)]
#[serde(default, deny_unknown_fields)]
pub struct DoNotDisturbDoc {
    enabled: bool,
    /// Handling codes that ring through (VIP).
    exceptions: Vec<String>,
}

#[derive(Default, Serialize, ToSchema)]
#[schema(as = CallerRules)]
#[serde(default, deny_unknown_fields)]
pub struct CallerRulesDoc {
    /// 433 for callers who withhold their number.
    reject_anonymous: bool,
    /// Numbers or `prefix*` patterns declined with 603.
    blocked: Vec<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = Schedule)]
#[serde(deny_unknown_fields)]
pub struct ScheduleDoc {
    /// Not only spaces, not starting with `!`; unique within the profile.
    #[schema(
        example = "business",
        pattern = r"^(?:[^!\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]|[\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][\s\S]*[^\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])"
    )]
    name: String,
    #[serde(default)]
    weekly: Vec<WeeklyRangeDoc>,
    /// Whole days, inclusive.
    #[serde(default)]
    dates: Vec<DateRangeDoc>,
    /// Schedules whose time is taken out of this one (`["holidays"]`).
    #[serde(default)]
    except: Vec<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = WeeklyRange)]
#[serde(deny_unknown_fields)]
pub struct WeeklyRangeDoc {
    /// At least one.
    #[schema(min_items = 1, example = json!(["mon", "tue", "wed", "thu", "fri"]))]
    days: Vec<DayDoc>,
    /// `HH:MM`, inclusive.
    #[schema(
        example = "08:00",
        pattern = r"^(?:(?:[01][0-9]|2[0-3]|\+[0-9]):(?:[0-5][0-9]|\+[0-9])|24:(?:00|\+0))$"
    )]
    start: String,
    /// `HH:MM`, exclusive, after start.
    #[schema(
        example = "17:00",
        pattern = r"^(?:(?:[01][0-9]|2[0-3]|\+[0-9]):(?:[0-5][0-9]|\+[0-9])|24:(?:00|\+0))$"
    )]
    end: String,
}

#[derive(Serialize, ToSchema)]
#[schema(as = Day)]
#[serde(rename_all = "lowercase")]
pub enum DayDoc {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

#[derive(Serialize, ToSchema)]
#[schema(as = DateRange)]
#[serde(deny_unknown_fields)]
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
    fn the_mirrors_default_to_what_the_real_types_do() {
        assert_eq!(
            serde_json::to_value(ProfileDoc::default()).unwrap(),
            serde_json::to_value(Profile::default()).unwrap()
        );
        assert_eq!(
            serde_json::to_value(ConditionDoc::default()).unwrap(),
            serde_json::to_value(Condition::default()).unwrap()
        );
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
        // A target's schema is its variants' (each its own schema).
        let doc = [
            schema_json::<TargetDoc>(),
            schema_json::<NamedTargetDoc>(),
            schema_json::<ExtensionTargetDoc>(),
            schema_json::<NumberTargetDoc>(),
        ]
        .map(|s| s.to_string())
        .join(" ");
        for t in [
            Target::Devices,
            Target::Attendant,
            Target::Extension("1002".into()),
            Target::Number("+41445550100".into()),
        ] {
            let key = match serde_json::to_value(t).unwrap() {
                Value::Object(m) => m.keys().next().unwrap().clone(),
                Value::String(s) => s,
                other => panic!("{other}"),
            };
            assert!(doc.contains(&format!("\"{key}\"")), "{key} not in {doc}");
        }
        let doc = schema_json::<DayDoc>().to_string();
        for d in [
            Day::Mon,
            Day::Tue,
            Day::Wed,
            Day::Thu,
            Day::Fri,
            Day::Sat,
            Day::Sun,
        ] {
            let wire = serde_json::to_value(d).unwrap();
            assert!(doc.contains(&wire.to_string()), "{wire} not in {doc}");
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
