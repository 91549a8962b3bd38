//! Prometheus metrics of a running node, rendered at scrape time from the live
//! counters (no tenant labels: tenants are walls, and the endpoint is the operator's).

use crate::cluster::ClusterStats;
use crate::media::MediaStats;
use crate::push::Hub;
use crate::sip::auth::guard::Guard;
use crate::sip::auth::{AuthOutcome, AuthStats};
use crate::sip::overload::OverloadStats;
use crate::sip::presence::stats::{package_label, Outcome, PACKAGES};
use crate::sip::presence::PresenceStats;
use crate::transport::limit::ConnStats;
use prometheus::{
    Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tsps_actors::platform::Platform;

/// What `/api/v1/metrics` renders (Prometheus text format).
pub trait MetricsSource: Send + Sync + 'static {
    fn render(&self) -> String;
}

/// Nothing to report (an API without a running platform, in tests).
pub struct NoMetrics;

impl MetricsSource for NoMetrics {
    fn render(&self) -> String {
        String::new()
    }
}

pub struct NodeMetrics {
    platform: Arc<Platform>,
    push: Arc<Hub>,
    registry: Registry,
    live_calls: IntGauge,
    users: IntGauge,
    sessions: IntGauge,
    streams: IntGauge,
    push_total: IntCounterVec,
    log_suppressed: IntCounter,
    /// With Redis (several nodes): the bridge's link state and what it dropped.
    redis: Option<RedisMetrics>,
    /// With the media engine: conference bridges and their RTP.
    media: Option<MediaMetrics>,
    /// The SIP notifier: subscriptions, NOTIFY and MESSAGE outcomes.
    presence: Option<PresenceMetrics>,
    /// Digest authentication and the brute-force guard.
    auth: Option<AuthMetrics>,
    /// SIP overload control: refusals, queue depth and age.
    overload: Option<OverloadMetrics>,
    /// Connection limits of each listener (SIP over TCP, HTTP).
    connections: Vec<(&'static str, Arc<ConnStats>)>,
    conns_open: IntGaugeVec,
    conns_refused: IntCounterVec,
    conns_closed: IntCounterVec,
    accept_errors: IntCounterVec,
}

struct AuthMetrics {
    stats: Arc<AuthStats>,
    guard: Arc<Guard>,
    outcomes: IntCounterVec,
    blocked: IntGaugeVec,
    untracked: IntCounter,
}

impl AuthMetrics {
    fn new(stats: Arc<AuthStats>, guard: Arc<Guard>, registry: &Registry) -> Self {
        let m = Self {
            stats,
            guard,
            outcomes: IntCounterVec::new(
                Opts::new(
                    "tsps_sip_auth_total",
                    "Digest authentications by result: ok, challenged, stale, replay (a \
                     nonce count used again), wrong_password, unknown_user, wrong_uri (the \
                     digest names another Request-URI), blocked_source (dropped \
                     unanswered), blocked_account (refused unchecked).",
                ),
                &["result"],
            )
            .expect("valid metric"),
            blocked: IntGaugeVec::new(
                Opts::new(
                    "tsps_sip_auth_blocked",
                    "Sources and accounts blocked now for failed authentications.",
                ),
                &["scope"],
            )
            .expect("valid metric"),
            untracked: IntCounter::new(
                "tsps_sip_auth_untracked_total",
                "Failed authentications the guard could not count: its tables were full.",
            )
            .expect("valid metric"),
        };
        for c in [
            Box::new(m.outcomes.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.blocked.clone()),
            Box::new(m.untracked.clone()),
        ] {
            registry.register(c).expect("unique metric");
        }
        m
    }

    fn update(&self, now_ms: u64) {
        for o in AuthOutcome::ALL {
            let c = self.outcomes.with_label_values(&[o.label()]);
            c.inc_by(self.stats.total(o).saturating_sub(c.get()));
        }
        let (sources, accounts) = self.guard.counts(now_ms);
        self.blocked
            .with_label_values(&["source"])
            .set(sources as i64);
        self.blocked
            .with_label_values(&["account"])
            .set(accounts as i64);
        let untracked = self.guard.untracked();
        self.untracked
            .inc_by(untracked.saturating_sub(self.untracked.get()));
    }
}

struct OverloadMetrics {
    stats: Arc<OverloadStats>,
    refused: IntCounterVec,
    depth: IntGauge,
    age: prometheus::Gauge,
}

impl OverloadMetrics {
    fn new(stats: Arc<OverloadStats>, registry: &Registry) -> Self {
        let m = Self {
            stats,
            refused: IntCounterVec::new(
                Opts::new(
                    "tsps_sip_overload_refused_total",
                    "New INVITEs and REGISTERs answered 503 by overload control, by method.",
                ),
                &["method"],
            )
            .expect("valid metric"),
            depth: IntGauge::new(
                "tsps_sip_overload_queue_depth",
                "The deepest shard queue (messages waiting) since the last scrape.",
            )
            .expect("valid metric"),
            age: prometheus::Gauge::new(
                "tsps_sip_overload_queue_age_seconds",
                "The longest wait of a message in a shard queue since the last scrape.",
            )
            .expect("valid metric"),
        };
        for c in [
            Box::new(m.refused.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.depth.clone()),
            Box::new(m.age.clone()),
        ] {
            registry.register(c).expect("unique metric");
        }
        m
    }

    fn update(&self) {
        let (invite, register) = self.stats.refused_totals();
        for (method, value) in [("INVITE", invite), ("REGISTER", register)] {
            let c = self.refused.with_label_values(&[method]);
            c.inc_by(value.saturating_sub(c.get()));
        }
        let (depth, age) = self.stats.take_peaks();
        self.depth.set(depth as i64);
        self.age.set(age.as_secs_f64());
    }
}

struct PresenceMetrics {
    stats: Arc<PresenceStats>,
    subscriptions: IntGaugeVec,
    notify: IntCounterVec,
    folded: IntCounter,
    messages: IntCounterVec,
    rejected: IntCounterVec,
}

impl PresenceMetrics {
    fn new(stats: Arc<PresenceStats>, registry: &Registry) -> Self {
        let vec = |name: &str, help: &str, label: &str| {
            IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric")
        };
        let m = Self {
            stats,
            subscriptions: IntGaugeVec::new(
                Opts::new(
                    "tsps_presence_subscriptions",
                    "Active SUBSCRIBE subscriptions held by this node's notifier.",
                ),
                &["package"],
            )
            .expect("valid metric"),
            notify: vec(
                "tsps_presence_notify_total",
                "NOTIFYs of subscriptions by outcome: ok (2xx), error (another final \
                 response; ends the subscription), timeout (no answer, Timer F).",
                "result",
            ),
            folded: IntCounter::new(
                "tsps_presence_notify_folded_total",
                "Changes of a watched user folded into a later NOTIFY, because one was \
                 still in flight to the watcher.",
            )
            .expect("valid metric"),
            messages: vec(
                "tsps_presence_messages_total",
                "Instant MESSAGEs sent to phones (hook changes, users' messages) by \
                 outcome: ok, error, timeout.",
                "result",
            ),
            rejected: vec(
                "tsps_presence_subscribe_rejected_total",
                "SUBSCRIBEs refused, by response code (digest challenges not counted).",
                "code",
            ),
        };
        for c in [
            Box::new(m.subscriptions.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.notify.clone()),
            Box::new(m.folded.clone()),
            Box::new(m.messages.clone()),
            Box::new(m.rejected.clone()),
        ] {
            registry.register(c).expect("unique metric");
        }
        m
    }

    fn update(&self) {
        let s = &self.stats;
        for p in PACKAGES {
            self.subscriptions
                .with_label_values(&[package_label(p)])
                .set(s.subscriptions(p));
        }
        let catch_up = |c: IntCounter, value: u64| c.inc_by(value.saturating_sub(c.get()));
        for o in Outcome::ALL {
            catch_up(self.notify.with_label_values(&[o.label()]), s.notifies(o));
            catch_up(self.messages.with_label_values(&[o.label()]), s.messages(o));
        }
        catch_up(self.folded.clone(), s.folded_total());
        for (code, n) in s.rejections() {
            catch_up(self.rejected.with_label_values(&[&code.to_string()]), n);
        }
    }
}

struct MediaMetrics {
    stats: Arc<MediaStats>,
    bridges: IntGauge,
    participants: IntGauge,
    received: IntCounter,
    sent: IntCounter,
    dropped: IntCounter,
}

struct RedisMetrics {
    stats: Arc<ClusterStats>,
    up: IntGauge,
    dropped: IntCounter,
}

impl NodeMetrics {
    pub fn new(platform: Arc<Platform>, push: Arc<Hub>) -> Self {
        let registry = Registry::new();
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid metric");
            registry
                .register(Box::new(g.clone()))
                .expect("unique metric");
            g
        };
        let live_calls = gauge("tsps_live_calls", "Calls in progress on this node.");
        let users = gauge("tsps_users", "User actors running on this node.");
        let sessions = gauge(
            "tsps_push_sessions",
            "Open event sessions (WebSocket and SSE).",
        );
        let streams = gauge("tsps_push_streams", "Users with a live event stream.");
        let push_total = IntCounterVec::new(
            Opts::new(
                "tsps_push_total",
                "Event push counters: messages sent to streams, replays after a reconnect, \
                 resyncs (a session that fell behind, or resumed from too far back), and \
                 times the hub itself fell behind the bus.",
            ),
            &["what"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(push_total.clone()))
            .expect("unique metric");
        let log_suppressed = IntCounter::new(
            "tsps_log_suppressed_total",
            "Log lines not written: over the rate limit of their place in the code \
             ([security.log]); reported as one line every ten seconds.",
        )
        .expect("valid metric");
        registry
            .register(Box::new(log_suppressed.clone()))
            .expect("unique metric");
        let vec = |name: &str, help: &str, labels: &[&str]| {
            let v = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry
                .register(Box::new(v.clone()))
                .expect("unique metric");
            v
        };
        let conns_refused = vec(
            "tsps_connections_refused_total",
            "Connections closed at once: over the listener's limit per source address \
             (per_source) or in all (total).",
            &["listener", "reason"],
        );
        let conns_closed = vec(
            "tsps_connections_closed_total",
            "Connections closed by tsps: silent too long (idle; SIP over TCP) or a \
             message or request head too slow to arrive (slow).",
            &["listener", "reason"],
        );
        let accept_errors = vec(
            "tsps_accept_errors_total",
            "Failed accepts (out of file descriptors, most likely), each followed by a \
             growing pause.",
            &["listener"],
        );
        let conns_open = IntGaugeVec::new(
            Opts::new("tsps_connections", "Open connections of each listener."),
            &["listener"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(conns_open.clone()))
            .expect("unique metric");
        Self {
            platform,
            push,
            registry,
            live_calls,
            users,
            sessions,
            streams,
            push_total,
            log_suppressed,
            redis: None,
            media: None,
            presence: None,
            auth: None,
            overload: None,
            connections: Vec::new(),
            conns_open,
            conns_refused,
            conns_closed,
            accept_errors,
        }
    }

    /// Adds the connection counters of a listener (`sip_tcp`, `http`).
    pub fn with_connections(mut self, listener: &'static str, stats: Arc<ConnStats>) -> Self {
        self.connections.push((listener, stats));
        self
    }

    /// Adds the metrics of digest authentication and the brute-force guard.
    pub fn with_auth(mut self, stats: Arc<AuthStats>, guard: Arc<Guard>) -> Self {
        self.auth = Some(AuthMetrics::new(stats, guard, &self.registry));
        self
    }

    /// Adds the metrics of SIP overload control.
    pub fn with_sip_overload(mut self, stats: Arc<OverloadStats>) -> Self {
        self.overload = Some(OverloadMetrics::new(stats, &self.registry));
        self
    }

    /// Adds the metrics of the SIP notifier (presence subscriptions).
    pub fn with_presence(mut self, stats: Arc<PresenceStats>) -> Self {
        self.presence = Some(PresenceMetrics::new(stats, &self.registry));
        self
    }

    /// Adds the metrics of the media engine (conference bridges).
    pub fn with_media(mut self, stats: Arc<MediaStats>) -> Self {
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        let m = MediaMetrics {
            stats,
            bridges: gauge(
                "tsps_media_bridges",
                "Conference bridges open on this node.",
            ),
            participants: gauge(
                "tsps_media_participants",
                "Participants (RTP ports) on this node's conference bridges.",
            ),
            received: counter(
                "tsps_media_packets_received_total",
                "Datagrams received on conference bridge ports.",
            ),
            sent: counter(
                "tsps_media_packets_sent_total",
                "RTP packets of the conference mix sent.",
            ),
            dropped: counter(
                "tsps_media_packets_dropped_total",
                "RTP packets dropped: malformed, unknown payload type, a participant's \
                 buffer over 200 ms, or refused by the socket.",
            ),
        };
        for c in [
            Box::new(m.bridges.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.participants.clone()),
            Box::new(m.received.clone()),
            Box::new(m.sent.clone()),
            Box::new(m.dropped.clone()),
        ] {
            self.registry.register(c).expect("unique metric");
        }
        self.media = Some(m);
        self
    }

    /// Adds the metrics of the Redis bridge (a node of a cluster).
    pub fn with_cluster(mut self, stats: Arc<ClusterStats>) -> Self {
        let up = IntGauge::new(
            "tsps_redis_up",
            "1 while this node is connected to Redis (the other nodes), else 0.",
        )
        .expect("valid metric");
        let dropped = IntCounter::new(
            "tsps_redis_dropped_total",
            "Messages for the other nodes not sent (Redis down, or the outbox full).",
        )
        .expect("valid metric");
        for m in [
            Box::new(up.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(dropped.clone()),
        ] {
            self.registry.register(m).expect("unique metric");
        }
        self.redis = Some(RedisMetrics { stats, up, dropped });
        self
    }
}

impl MetricsSource for NodeMetrics {
    fn render(&self) -> String {
        self.live_calls
            .set(self.platform.registry.live_calls() as i64);
        self.users.set(self.platform.registry.user_count() as i64);
        let stats = &self.push.stats;
        self.sessions.set(stats.sessions.load(Relaxed));
        self.streams.set(self.push.streams() as i64);
        for (what, value) in [
            ("messages", stats.messages.load(Relaxed)),
            ("replays", stats.replays.load(Relaxed)),
            ("resyncs_lagged", stats.resyncs_lagged.load(Relaxed)),
            ("resyncs_stale", stats.resyncs_stale.load(Relaxed)),
            ("bus_lagged", stats.bus_lagged.load(Relaxed)),
        ] {
            let c = self.push_total.with_label_values(&[what]);
            // Counters only go up: add what happened since the last scrape.
            c.inc_by(value.saturating_sub(c.get()));
        }
        let catch_up = |c: IntCounter, value: u64| c.inc_by(value.saturating_sub(c.get()));
        for (listener, s) in &self.connections {
            self.conns_open
                .with_label_values(&[listener])
                .set(s.open.load(Relaxed));
            for (reason, value) in [
                ("per_source", &s.refused_per_source),
                ("total", &s.refused_total),
            ] {
                catch_up(
                    self.conns_refused.with_label_values(&[listener, reason]),
                    value.load(Relaxed),
                );
            }
            for (reason, value) in [("idle", &s.closed_idle), ("slow", &s.closed_slow)] {
                catch_up(
                    self.conns_closed.with_label_values(&[listener, reason]),
                    value.load(Relaxed),
                );
            }
            catch_up(
                self.accept_errors.with_label_values(&[listener]),
                s.accept_errors.load(Relaxed),
            );
        }
        let suppressed = crate::logging::suppressed_total();
        self.log_suppressed
            .inc_by(suppressed.saturating_sub(self.log_suppressed.get()));
        if let Some(r) = &self.redis {
            r.up.set(r.stats.up.load(Relaxed));
            let dropped = r.stats.dropped.load(Relaxed);
            r.dropped.inc_by(dropped.saturating_sub(r.dropped.get()));
        }
        if let Some(m) = &self.media {
            m.bridges.set(m.stats.bridges.load(Relaxed));
            m.participants.set(m.stats.participants.load(Relaxed));
            for (counter, value) in [
                (&m.received, &m.stats.packets_received),
                (&m.sent, &m.stats.packets_sent),
                (&m.dropped, &m.stats.packets_dropped),
            ] {
                let value = value.load(Relaxed);
                counter.inc_by(value.saturating_sub(counter.get()));
            }
        }
        if let Some(p) = &self.presence {
            p.update();
        }
        if let Some(o) = &self.overload {
            o.update();
        }
        if let Some(a) = &self.auth {
            a.update(chrono::Utc::now().timestamp_millis().max(0) as u64);
        }
        encode(&self.registry)
    }
}

fn encode(registry: &Registry) -> String {
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&registry.gather(), &mut out) {
        tracing::error!(error = %e, "cannot encode metrics");
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsps_actors::presence::Package;

    #[test]
    fn presence_metrics_render_every_label_and_follow_the_counters() {
        let stats = Arc::new(PresenceStats::default());
        let registry = Registry::new();
        let m = PresenceMetrics::new(stats.clone(), &registry);
        m.update();
        let text = encode(&registry);
        for line in [
            "tsps_presence_subscriptions{package=\"dialog\"} 0",
            "tsps_presence_subscriptions{package=\"presence\"} 0",
            "tsps_presence_notify_total{result=\"timeout\"} 0",
            "tsps_presence_messages_total{result=\"error\"} 0",
            "tsps_presence_notify_folded_total 0",
            "tsps_presence_subscribe_rejected_total{code=\"489\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        stats.subscription_started(Package::Dialog);
        stats.notify_ended(Outcome::Ok);
        stats.notify_ended(Outcome::Ok);
        stats.folded(3);
        stats.message_ended(Outcome::Timeout);
        stats.rejected(403);
        m.update();
        // A second scrape adds nothing: counters are caught up, not added again.
        m.update();
        let text = encode(&registry);
        for line in [
            "tsps_presence_subscriptions{package=\"dialog\"} 1",
            "tsps_presence_notify_total{result=\"ok\"} 2",
            "tsps_presence_notify_folded_total 3",
            "tsps_presence_messages_total{result=\"timeout\"} 1",
            "tsps_presence_subscribe_rejected_total{code=\"403\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        stats.subscription_ended(Package::Dialog);
        m.update();
        assert!(encode(&registry)
            .lines()
            .any(|l| l == "tsps_presence_subscriptions{package=\"dialog\"} 0"));
    }
}
