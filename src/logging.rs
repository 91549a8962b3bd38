//! Logging that network input cannot flood (docs/security.md). Two defences:
//!
//! - Every place in the code that logs (a callsite) has a token bucket: `per_second`
//!   lines a second after a burst of ten times as many; the lines it could not write
//!   are counted, and [`report_suppressed`] says how many and where, once a period.
//!   An input that makes one place log for every packet writes a bounded trickle.
//! - The SIP parser library's own per-line warnings are switched off (tsps rejects
//!   what they would warn about before parsing: `sip::message`).
//!
//! The subscriber is process-wide, so the counters are too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;
use tracing::callsite::Identifier;
use tracing::subscriber::Interest;
use tracing::Metadata;
use tracing_subscriber::layer::{Context, Filter};

/// Lines not written since start, for `tsps_log_suppressed_total`.
static SUPPRESSED_TOTAL: AtomicU64 = AtomicU64::new(0);

/// The limiter of the running process, once logging is set up.
static LIMITER: OnceLock<&'static RateLimit> = OnceLock::new();

/// Directives added to every log filter: the parser library warns once per folded
/// header line, which tsps refuses before it gets there.
pub const QUIET_LIBRARIES: &str = "rsipstack::sip::parser=error";

pub fn suppressed_total() -> u64 {
    SUPPRESSED_TOTAL.load(Relaxed)
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    /// Lines refused since the last report.
    suppressed: u64,
    /// `file:line`, for the report.
    at: String,
}

/// A per-callsite rate limit, as a per-layer filter.
#[derive(Debug)]
pub struct RateLimit {
    per_second: f64,
    burst: f64,
    sites: Mutex<HashMap<Identifier, Bucket>>,
}

impl RateLimit {
    pub fn new(per_second: u32) -> Self {
        let per_second = f64::from(per_second.max(1));
        Self {
            per_second,
            burst: per_second * 10.0,
            sites: Mutex::new(HashMap::new()),
        }
    }

    /// Whether one more line from `meta`'s callsite may be written at `now`.
    pub fn allow(&self, meta: &Metadata<'_>, now: Instant) -> bool {
        let mut sites = self.sites.lock().unwrap_or_else(|e| e.into_inner());
        let b = sites.entry(meta.callsite()).or_insert_with(|| Bucket {
            tokens: self.burst,
            last: now,
            suppressed: 0,
            at: format!(
                "{}:{}",
                meta.file().unwrap_or("?"),
                meta.line().unwrap_or(0)
            ),
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_second).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            b.suppressed += 1;
            SUPPRESSED_TOTAL.fetch_add(1, Relaxed);
            false
        }
    }

    /// The callsites that lost lines since the last call, with how many; resets them.
    pub fn take_suppressed(&self) -> Vec<(String, u64)> {
        let mut sites = self.sites.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<(String, u64)> = sites
            .values_mut()
            .filter(|b| b.suppressed > 0)
            .map(|b| (b.at.clone(), std::mem::take(&mut b.suppressed)))
            .collect();
        out.sort();
        out
    }

    /// Makes this limiter the one [`report_suppressed`] reads.
    pub fn install(self) -> &'static RateLimit {
        let me: &'static RateLimit = Box::leak(Box::new(self));
        let _ = LIMITER.set(me);
        me
    }
}

impl<S> Filter<S> for &'static RateLimit {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        !meta.is_event() || self.allow(meta, Instant::now())
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        // Asked per event: the answer changes with the bucket.
        if meta.is_event() {
            Interest::sometimes()
        } else {
            Interest::always()
        }
    }
}

/// Logs, at most once per call, how many lines each callsite lost since the last call
/// (run every ten seconds by `tsps serve`).
pub fn report_suppressed() {
    let Some(limiter) = LIMITER.get() else {
        return;
    };
    for (at, n) in limiter.take_suppressed() {
        tracing::warn!(suppressed = n, at = %at, "log lines suppressed: over the rate limit of their place in the code");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tracing::Level;

    static CALLSITE: tracing::callsite::DefaultCallsite =
        tracing::callsite::DefaultCallsite::new(&META);
    static META: Metadata<'static> = tracing::metadata!(
        name: "test event",
        target: "tsps::logging::tests",
        level: Level::WARN,
        fields: &[],
        callsite: &CALLSITE,
        kind: tracing::metadata::Kind::EVENT,
    );

    #[test]
    fn a_flood_from_one_place_is_a_trickle() {
        let limit = RateLimit::new(10);
        let t0 = Instant::now();
        // A thousand events in the same instant: the burst of a hundred passes.
        let passed = (0..1000).filter(|_| limit.allow(&META, t0)).count();
        assert_eq!(passed, 100);
        // Then ten a second.
        let later = t0 + Duration::from_secs(3);
        let passed = (0..1000).filter(|_| limit.allow(&META, later)).count();
        assert_eq!(passed, 30);
        let report = limit.take_suppressed();
        assert_eq!(report.len(), 1);
        assert_eq!(report[0].1, 900 + 970);
        assert!(limit.take_suppressed().is_empty(), "reset after a report");
    }
}
