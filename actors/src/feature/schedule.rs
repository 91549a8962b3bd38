//! Whether a schedule is active at a local time (the tenant's time zone).

use super::profile::{minutes, Day, Profile};
use chrono::{Datelike, NaiveDateTime, Timelike, Weekday};

fn day(w: Weekday) -> Day {
    match w {
        Weekday::Mon => Day::Mon,
        Weekday::Tue => Day::Tue,
        Weekday::Wed => Day::Wed,
        Weekday::Thu => Day::Thu,
        Weekday::Fri => Day::Fri,
        Weekday::Sat => Day::Sat,
        Weekday::Sun => Day::Sun,
    }
}

/// `name` (or `!name`, negated) is active at `at`. Unknown schedules are never active.
pub fn is_active(p: &Profile, name: &str, at: NaiveDateTime) -> bool {
    match name.strip_prefix('!') {
        Some(n) => !active(p, n, at, 0),
        None => active(p, name, at, 0),
    }
}

fn active(p: &Profile, name: &str, at: NaiveDateTime, depth: u8) -> bool {
    // `except` chains are short; the bound only guards against a cycle in bad data.
    if depth > 8 {
        return false;
    }
    let Some(s) = p.schedule(name) else {
        return false;
    };
    let today = day(at.weekday());
    let now = at.hour() * 60 + at.minute();
    let in_week = s.weekly.iter().any(|w| {
        w.days.contains(&today)
            && matches!((minutes(&w.start), minutes(&w.end)), (Some(a), Some(b)) if a <= now && now < b)
    });
    let date = at.date();
    let in_dates = s.dates.iter().any(|d| d.from <= date && date <= d.to);
    (in_week || in_dates) && !s.except.iter().any(|e| active(p, e, at, depth + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feature::profile::{DateRange, Schedule, WeeklyRange};
    use chrono::NaiveDate;

    fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, min, 0)
            .unwrap()
    }

    fn profile() -> Profile {
        Profile {
            schedules: vec![
                Schedule {
                    name: "business".into(),
                    weekly: vec![WeeklyRange {
                        days: vec![Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri],
                        start: "08:00".into(),
                        end: "17:30".into(),
                    }],
                    dates: vec![],
                    except: vec!["holidays".into()],
                },
                Schedule {
                    name: "holidays".into(),
                    weekly: vec![],
                    dates: vec![DateRange {
                        from: NaiveDate::from_ymd_opt(2026, 12, 24).unwrap(),
                        to: NaiveDate::from_ymd_opt(2026, 12, 26).unwrap(),
                    }],
                    except: vec![],
                },
            ],
            ..Profile::default()
        }
    }

    #[test]
    fn business_hours_after_hours_and_holidays() {
        let p = profile();
        // 2026-11-23 is a Monday.
        assert!(is_active(&p, "business", at(2026, 11, 23, 8, 0)));
        assert!(is_active(&p, "business", at(2026, 11, 23, 17, 29)));
        assert!(
            !is_active(&p, "business", at(2026, 11, 23, 17, 30)),
            "end is exclusive"
        );
        assert!(
            !is_active(&p, "business", at(2026, 11, 22, 10, 0)),
            "sunday"
        );
        assert!(
            is_active(&p, "!business", at(2026, 11, 22, 10, 0)),
            "after hours"
        );
        // Thursday 24 December is a holiday: not business hours.
        assert!(!is_active(&p, "business", at(2026, 12, 24, 10, 0)));
        assert!(is_active(&p, "holidays", at(2026, 12, 24, 10, 0)));
        assert!(!is_active(&p, "nope", at(2026, 12, 24, 10, 0)));
    }

    #[test]
    fn minutes_parse() {
        assert_eq!(minutes("08:30"), Some(510));
        assert_eq!(minutes("24:00"), Some(1440));
        assert_eq!(minutes("24:01"), None);
        assert_eq!(minutes("8:30"), None);
        assert_eq!(minutes("08:60"), None);
    }
}
