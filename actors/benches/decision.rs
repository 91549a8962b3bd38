//! Benchmark of the routing decision with 10,000 contacts for the user (issue: p99 under
//! 1 ms). Two measurements, each call timed on its own so that percentiles are real:
//! (a) the pure decision plus the contact lookup, (b) an `OfferCall` round trip through a
//! live user actor holding those contacts (mailbox, lookup, decision, reply).
//! Run: `cargo bench -p tsps-actors --bench decision` (or load-tests/decision-bench.sh).

use actix::{Actor, System};
use chrono::{NaiveDate, Utc};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tsps_actors::feature::profile::*;
use tsps_actors::feature::{decide, CallContext, Caller, ContactMatch};
use tsps_actors::ports::{
    BoxFuture, ContactEntry, FeatureSource, NoPersistence, SystemClock, UserFeatures,
};
use tsps_actors::user::{OfferCall, UserActor};
use tsps_actors::{CallId, TenantId, UserId};

const CONTACTS: usize = 10_000;
const CALLS: usize = 100_000;

fn profile() -> Profile {
    let code = |name: &str, handling| HandlingCode {
        name: name.into(),
        handling,
    };
    Profile {
        handling_codes: vec![
            code("VIP", Handling::Ring),
            code("Family", Handling::Ring),
            code("Block", Handling::RejectDeclined),
            code(
                "Sales",
                Handling::Forward {
                    target: Target::Extension("2000".into()),
                },
            ),
        ],
        dnd: DoNotDisturb {
            enabled: false,
            exceptions: vec!["VIP".into()],
        },
        forwarding: Forwarding {
            busy: Some(Target::Extension("1003".into())),
            no_answer: Some(NoAnswerForward {
                target: Target::Number("+41445550999".into()),
                seconds: 20,
            }),
            selective: (0..20)
                .map(|i| SelectiveForward {
                    when: Condition {
                        callers: vec![format!("+4179{i:03}*")],
                        schedule: Some("!business".into()),
                        ..Condition::default()
                    },
                    target: Target::Extension("1003".into()),
                })
                .collect(),
            ..Forwarding::default()
        },
        simultaneous: vec![Target::Number("+41790000123".into())],
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

fn contacts() -> Vec<ContactEntry> {
    let codes = [
        None,
        Some("VIP"),
        Some("Family"),
        Some("Block"),
        Some("Sales"),
    ];
    (0..CONTACTS)
        .map(|i| ContactEntry {
            number: format!("+4179{i:07}"),
            name: format!("Contact {i}"),
            handling_code: codes[i % codes.len()].map(str::to_string),
            shared: i % 3 == 0,
        })
        .collect()
}

/// Callers: half known contacts, half unknown numbers, in a fixed pseudo-random order.
fn callers() -> Vec<String> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..CALLS)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = (x % CONTACTS as u64) as usize;
            if i % 2 == 0 {
                format!("+4179{n:07}")
            } else {
                format!("+4178{n:07}")
            }
        })
        .collect()
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{name}: n={} mean={:.1}us p50={:.1}us p99={:.1}us p99.9={:.1}us max={:.1}us",
        samples.len(),
        mean.as_secs_f64() * 1e6,
        pct(0.50).as_secs_f64() * 1e6,
        pct(0.99).as_secs_f64() * 1e6,
        pct(0.999).as_secs_f64() * 1e6,
        samples.last().unwrap().as_secs_f64() * 1e6,
    );
}

struct Fixed(UserFeatures);

impl FeatureSource for Fixed {
    fn load(
        &self,
        _: TenantId,
        _: UserId,
    ) -> BoxFuture<Result<UserFeatures, tsps_actors::ports::FeatureError>> {
        let f = self.0.clone();
        Box::pin(async move { Ok(f) })
    }
}

fn main() {
    let p = profile();
    validate(&p, "1002").expect("a valid profile");
    let entries = contacts();
    let index: HashMap<String, ContactMatch> = entries
        .iter()
        .map(|c| {
            (
                c.number.clone(),
                ContactMatch {
                    name: c.name.clone(),
                    handling_code: c.handling_code.clone(),
                    shared: c.shared,
                },
            )
        })
        .collect();
    let callers = callers();
    let evening = NaiveDate::from_ymd_opt(2026, 11, 23)
        .unwrap()
        .and_hms_opt(20, 0, 0)
        .unwrap();

    // (a) lookup + decision.
    let mut samples = Vec::with_capacity(CALLS);
    for number in &callers {
        let t = Instant::now();
        let caller = Caller {
            number: Some(number.clone()),
            anonymous: false,
        };
        let d = decide(
            &p,
            &CallContext {
                caller: &caller,
                contact: index.get(number),
                presence: Presence::Available,
                on_call: false,
                registered_devices: 2,
                local_time: evening,
            },
        );
        std::hint::black_box(d);
        samples.push(t.elapsed());
    }
    report("decision (lookup + decide), 10k contacts", samples);

    // (b) OfferCall round trip through a live user actor.
    let system = System::new();
    system.block_on(async move {
        let features = Fixed(UserFeatures {
            profile: p,
            contacts: entries,
            ..Default::default()
        });
        let user = UserActor::new(
            TenantId::for_test(1),
            UserId::for_test(1),
            vec![],
            Arc::new(NoPersistence),
            Arc::new(SystemClock),
            Arc::new(features),
        )
        .start();
        let mut samples = Vec::with_capacity(CALLS);
        let t0 = Utc::now();
        for (i, number) in callers.iter().enumerate() {
            let msg = OfferCall {
                call: CallId::for_test(i as u128),
                caller: Caller {
                    number: Some(number.clone()),
                    anonymous: false,
                },
                local_time: evening,
            };
            let t = Instant::now();
            let offer = user.send(msg).await.expect("offer");
            samples.push(t.elapsed());
            std::hint::black_box(offer);
        }
        let _ = t0;
        report(
            "OfferCall round trip via the user actor, 10k contacts",
            samples,
        );
    });
}
