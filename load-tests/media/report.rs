//! From counters to results: one CSV row per level and mode, and the summary with the
//! ratios against the baselines of the same level (docs/benchmarks.md).

use crate::client::{self, Client, PACKETS_PER_SECOND};
use crate::probe::{self, Memory, Snapshot};
use crate::target::Mode;
use crate::{Args, EngineCounts, Stop};
use hdrhistogram::Histogram;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// The clients' counters summed, and the per-client received counts.
#[derive(Clone, Debug, Default)]
pub struct ClientTotals {
    pub sent: u64,
    pub send_errors: u64,
    pub received: Vec<u64>,
    pub gaps: u64,
    pub silent: u64,
}

impl ClientTotals {
    pub fn read(clients: &[Client]) -> Self {
        let sum = |v: Vec<u64>| v.iter().sum();
        Self {
            sent: sum(client::read(clients, |c| &c.sent)),
            send_errors: sum(client::read(clients, |c| &c.send_errors)),
            received: client::read(clients, |c| &c.received),
            gaps: sum(client::read(clients, |c| &c.gaps)),
            silent: sum(client::read(clients, |c| &c.silent)),
        }
    }

    pub fn minus(&self, earlier: &Self) -> Self {
        Self {
            sent: self.sent - earlier.sent,
            send_errors: self.send_errors - earlier.send_errors,
            received: self
                .received
                .iter()
                .zip(&earlier.received)
                .map(|(b, a)| b - a)
                .collect(),
            gaps: self.gaps - earlier.gaps,
            silent: self.silent - earlier.silent,
        }
    }
}

/// The inter-arrival jitter of a window, summed up from its histogram (µs).
#[derive(Clone, Copy, Debug, Default)]
pub struct Jitter {
    pub samples: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Jitter {
    pub fn of(h: &Histogram<u64>) -> Self {
        Self {
            samples: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// Everything one measurement window produced.
pub struct Measured {
    pub conferences: usize,
    pub participants: usize,
    pub mode: Mode,
    pub setup: Duration,
    /// Readings at the window's start and end.
    pub a: Snapshot,
    pub b: Snapshot,
    /// Differences over the window.
    pub clients: ClientTotals,
    pub engine: EngineCounts,
    pub jitter: Jitter,
    pub spreads_ns: Vec<i64>,
    /// Before the clients, with the clients, with the target, at the window's end,
    /// after the teardown.
    pub memory: [Memory; 5],
}

/// One line of `media.csv`. Per-participant rates are per second; CPU is in % of one
/// core (100 = one core busy); empty cells do not apply (the idle row, the black hole).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Row {
    pub conferences: usize,
    pub participants: usize,
    pub mode: &'static str,
    pub window_s: f64,
    pub setup_ms: Option<f64>,
    pub sent_pps: Option<f64>,
    pub received_pps: Option<f64>,
    pub loss_pct: Option<f64>,
    pub worst_client_pct: Option<f64>,
    pub seq_gaps: Option<u64>,
    pub silent_pct: Option<f64>,
    pub send_errors: Option<u64>,
    pub jitter_samples: Option<u64>,
    pub jitter_p50_ms: Option<f64>,
    pub jitter_p99_ms: Option<f64>,
    pub jitter_p999_ms: Option<f64>,
    pub jitter_max_ms: Option<f64>,
    pub spread_p50_ms: Option<f64>,
    pub spread_max_ms: Option<f64>,
    pub engine_received_pps: Option<f64>,
    pub engine_sent_pps: Option<f64>,
    pub engine_dropped: Option<u64>,
    pub cpu_process_pct: f64,
    pub cpu_process_system_pct: f64,
    pub cpu_io_pct: f64,
    pub cpu_gen_pct: f64,
    pub cpu_other_pct: f64,
    pub io_us_per_participant_s: Option<f64>,
    pub process_us_per_participant_s: Option<f64>,
    pub rss_before_kb: u64,
    pub rss_clients_kb: Option<u64>,
    pub rss_target_kb: Option<u64>,
    pub rss_end_kb: u64,
    pub rss_after_kb: Option<u64>,
    /// (RSS at the window's end − RSS with the clients only) ÷ participants.
    pub rss_kb_per_participant: Option<f64>,
    pub heap_end_kb: f64,
    /// Live heap added by setting up the target (sockets, tasks, FIFOs), per participant.
    pub heap_setup_kb_per_participant: Option<f64>,
    /// Live heap at the window's end − with the clients only, per participant.
    pub heap_kb_per_participant: Option<f64>,
    /// Live heap after the teardown − before the clients: what a level leaves behind.
    pub heap_kept_kb: Option<f64>,
    pub allocations_per_participant_s: Option<f64>,
    pub udp_mem_kb: u64,
    pub udp_rcvbuf_errors: u64,
    pub udp_sndbuf_errors: u64,
    pub loadavg_1m: f64,
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

fn cpu_pct(seconds: f64, window: f64) -> f64 {
    round(seconds / window * 100.0, 2)
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn ms(us: u64) -> f64 {
    round(us as f64 / 1000.0, 3)
}

impl Row {
    pub fn idle(a: &Snapshot, b: &Snapshot) -> Row {
        let window = (b.at - a.at).as_secs_f64();
        let cpu = b.cpu.minus(a.cpu);
        Row {
            mode: "idle",
            window_s: round(window, 3),
            cpu_process_pct: cpu_pct(cpu.process, window),
            cpu_process_system_pct: cpu_pct(cpu.process_system, window),
            cpu_io_pct: cpu_pct(cpu.io, window),
            cpu_gen_pct: cpu_pct(cpu.gen, window),
            cpu_other_pct: cpu_pct(cpu.process - cpu.io - cpu.gen, window),
            rss_before_kb: a.memory.rss_kb,
            rss_end_kb: b.memory.rss_kb,
            heap_end_kb: round(b.memory.heap_bytes as f64 / 1024.0, 1),
            udp_mem_kb: b.udp.memory_pages * 4,
            udp_rcvbuf_errors: b.udp.receive_buffer_errors - a.udp.receive_buffer_errors,
            udp_sndbuf_errors: b.udp.send_buffer_errors - a.udp.send_buffer_errors,
            loadavg_1m: probe::loadavg_1m(),
            ..Row::default()
        }
    }

    pub fn measured(m: Measured) -> Row {
        let window = (m.b.at - m.a.at).as_secs_f64();
        let n = m.participants as f64;
        let per_participant = |count: u64| round(count as f64 / n / window, 2);
        let cpu = m.b.cpu.minus(m.a.cpu);
        let received: u64 = m.clients.received.iter().sum();
        let expected = PACKETS_PER_SECOND * window;
        let returns = m.mode != Mode::Blackhole;
        let worst = m.clients.received.iter().min().copied().unwrap_or(0);
        let mut spreads = m.spreads_ns.clone();
        spreads.sort_unstable();
        let spread_ms = |p: f64| percentile(&spreads, p).map(|ns| round(ns as f64 / 1e6, 3));
        let j = &m.jitter;
        let jitter = |v: f64| (j.samples > 0).then_some(v);
        let [before, with_clients, with_target, end, after] = m.memory;
        let kb_each = |bytes: i64| round(bytes as f64 / 1024.0 / n, 2);
        Row {
            conferences: m.conferences,
            participants: m.participants,
            mode: m.mode.name(),
            window_s: round(window, 3),
            setup_ms: Some(round(m.setup.as_secs_f64() * 1000.0, 1)),
            sent_pps: Some(per_participant(m.clients.sent)),
            received_pps: Some(per_participant(received)),
            loss_pct: returns.then(|| round((1.0 - received as f64 / n / expected) * 100.0, 2)),
            worst_client_pct: returns.then(|| round(worst as f64 / expected * 100.0, 1)),
            seq_gaps: returns.then_some(m.clients.gaps),
            silent_pct: (m.mode == Mode::Bridge)
                .then(|| round(m.clients.silent as f64 / received.max(1) as f64 * 100.0, 3)),
            send_errors: Some(m.clients.send_errors),
            jitter_samples: returns.then_some(j.samples),
            jitter_p50_ms: jitter(j.p50_ms),
            jitter_p99_ms: jitter(j.p99_ms),
            jitter_p999_ms: jitter(j.p999_ms),
            jitter_max_ms: jitter(j.max_ms),
            spread_p50_ms: returns.then(|| spread_ms(50.0)).flatten(),
            spread_max_ms: returns.then(|| spread_ms(100.0)).flatten(),
            engine_received_pps: (m.mode == Mode::Bridge)
                .then(|| per_participant(m.engine.received)),
            engine_sent_pps: (m.mode == Mode::Bridge).then(|| per_participant(m.engine.sent)),
            engine_dropped: (m.mode == Mode::Bridge).then_some(m.engine.dropped),
            cpu_process_pct: cpu_pct(cpu.process, window),
            cpu_process_system_pct: cpu_pct(cpu.process_system, window),
            cpu_io_pct: cpu_pct(cpu.io, window),
            cpu_gen_pct: cpu_pct(cpu.gen, window),
            cpu_other_pct: cpu_pct(cpu.process - cpu.io - cpu.gen, window),
            io_us_per_participant_s: Some(round(cpu.io / n / window * 1e6, 2)),
            process_us_per_participant_s: Some(round(cpu.process / n / window * 1e6, 2)),
            rss_before_kb: before.rss_kb,
            rss_clients_kb: Some(with_clients.rss_kb),
            rss_target_kb: Some(with_target.rss_kb),
            rss_end_kb: end.rss_kb,
            rss_after_kb: Some(after.rss_kb),
            rss_kb_per_participant: Some(round(
                (end.rss_kb as f64 - with_clients.rss_kb as f64) / n,
                2,
            )),
            heap_end_kb: round(end.heap_bytes as f64 / 1024.0, 1),
            heap_setup_kb_per_participant: Some(kb_each(
                with_target.heap_bytes - with_clients.heap_bytes,
            )),
            heap_kb_per_participant: Some(kb_each(end.heap_bytes - with_clients.heap_bytes)),
            heap_kept_kb: Some(round(
                (after.heap_bytes - before.heap_bytes) as f64 / 1024.0,
                1,
            )),
            allocations_per_participant_s: Some(per_participant(m.b.allocations - m.a.allocations)),
            udp_mem_kb: m.b.udp.memory_pages * 4,
            udp_rcvbuf_errors: m.b.udp.receive_buffer_errors - m.a.udp.receive_buffer_errors,
            udp_sndbuf_errors: m.b.udp.send_buffer_errors - m.a.udp.send_buffer_errors,
            loadavg_1m: probe::loadavg_1m(),
        }
    }

    /// Why this row ends the run: packets lost on the way back; (the bridge) fewer mix
    /// packets than 50/s per participant; or packets so late against their RTP clock
    /// that the median participant's spread exceeds `max_spread_ms` (with tokio's Burst
    /// the mixer catches up after a stall, so late ticks show as spread, not as loss).
    pub fn failure(&self, max_loss_pct: f64, max_spread_ms: f64) -> Option<String> {
        if let Some(loss) = self.loss_pct.filter(|l| *l > max_loss_pct) {
            return Some(format!("{}: {loss}% of the packets lost", self.mode));
        }
        let floor = PACKETS_PER_SECOND * (1.0 - max_loss_pct / 100.0);
        if let Some(sent) = self.engine_sent_pps.filter(|s| *s < floor) {
            return Some(format!(
                "{}: the mixer sent {sent} packets/s per participant (ticks behind)",
                self.mode
            ));
        }
        self.spread_p50_ms.filter(|s| *s > max_spread_ms).map(|s| {
            format!(
                "{}: median spread {s} ms > {max_spread_ms} ms (packets late)",
                self.mode
            )
        })
    }

    /// A progress line for stderr.
    pub fn line(&self) -> String {
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| v.to_string());
        format!(
            "{:>4} conf {:<9} rx/s {:<6} loss% {:<6} jitter p50/p99/max {}/{}/{} ms \
             cpu% proc {} io {} gen {} rss {} KB",
            self.conferences,
            self.mode,
            opt(self.received_pps),
            opt(self.loss_pct),
            opt(self.jitter_p50_ms),
            opt(self.jitter_p99_ms),
            opt(self.jitter_max_ms),
            self.cpu_process_pct,
            self.cpu_io_pct,
            self.cpu_gen_pct,
            self.rss_end_kb
        )
    }
}

pub fn write(dir: &Path, rows: &[Row], summary: &str) -> anyhow::Result<()> {
    let mut csv = csv::Writer::from_path(dir.join("media.csv"))?;
    for row in rows {
        csv.serialize(row)?;
    }
    csv.flush()?;
    std::fs::write(dir.join("media-summary.txt"), summary)?;
    Ok(())
}

fn find(rows: &[Row], conferences: usize, mode: Mode) -> Option<&Row> {
    rows.iter()
        .find(|r| r.conferences == conferences && r.mode == mode.name())
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "-".into()
    }
}

/// The text summary: settings, one table of the windows, the ratios per level.
pub fn summary(args: &Args, rows: &[Row], stop: &Stop, elapsed: Duration) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "media-load: {} participants per conference (PCMU, 20 ms, 50 packets/s each way), \
         window {} s after {} s of warm-up; engine runtime {} threads ({}), generator {} \
         thread(s) ({}), {} clients per sender task; run took {:.0} s",
        args.participants,
        args.seconds,
        args.warmup,
        args.io_threads,
        probe::IO_THREADS,
        args.gen_threads,
        probe::GEN_THREADS,
        args.clients_per_sender,
        elapsed.as_secs_f64()
    );
    if !args.note.is_empty() {
        let _ = writeln!(s, "note: {}", args.note);
    }
    let _ = writeln!(
        s,
        "stop: {}",
        match stop {
            Stop::Done => "every level passed".to_string(),
            Stop::Failed { conferences, why } =>
                format!("failed at {conferences} conferences ({why}); no higher level run"),
            Stop::OutOfTime { skipped } =>
                format!("--max-seconds reached; levels not run: {skipped:?}"),
        }
    );
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v}"));
    let _ = writeln!(
        s,
        "\nconf | mode | rx pkt/s/part | loss % | jitter p50/p99/max ms | spread p50/max ms | \
         CPU % of a core: process (system) / io / gen | io µs per participant-s | RSS end KB | RSS KB/part | \
         heap KB/part (at setup) | heap kept KB | allocations/part-s | load1"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "{} | {} | {} | {} | {}/{}/{} | {}/{} | {} ({}) / {} / {} | {} | {} | {} | {} ({}) | {} | {} | {}",
            r.conferences,
            r.mode,
            opt(r.received_pps),
            opt(r.loss_pct),
            opt(r.jitter_p50_ms),
            opt(r.jitter_p99_ms),
            opt(r.jitter_max_ms),
            opt(r.spread_p50_ms),
            opt(r.spread_max_ms),
            r.cpu_process_pct,
            r.cpu_process_system_pct,
            r.cpu_io_pct,
            r.cpu_gen_pct,
            opt(r.io_us_per_participant_s),
            r.rss_end_kb,
            opt(r.rss_kb_per_participant),
            opt(r.heap_kb_per_participant),
            opt(r.heap_setup_kb_per_participant),
            opt(r.heap_kept_kb),
            opt(r.allocations_per_participant_s),
            r.loadavg_1m
        );
    }
    let _ = writeln!(
        s,
        "\nratios at each level (same process, same run):\n\
         conf | io µs/part-s bridge / echo = ratio | process % minus blackhole: bridge / echo = ratio | \
         bridge io % of a core per conference | conferences per core at that cost | \
         heap KB/participant minus blackhole's: bridge / echo | jitter p99 ms bridge / echo"
    );
    let mut levels: Vec<usize> = rows.iter().map(|r| r.conferences).collect();
    levels.dedup();
    for c in levels.into_iter().filter(|c| *c > 0) {
        let (Some(bridge), Some(echo)) = (find(rows, c, Mode::Bridge), find(rows, c, Mode::Echo))
        else {
            continue;
        };
        let blackhole = find(rows, c, Mode::Blackhole);
        let bh = blackhole.map_or(0.0, |r| r.cpu_process_pct);
        // The generator's own tasks are in every mode's heap growth: the black hole's.
        let bh_heap = blackhole
            .and_then(|r| r.heap_kb_per_participant)
            .unwrap_or(0.0);
        let net_heap = |r: &Row| r.heap_kb_per_participant.map(|h| round(h - bh_heap, 2));
        let (bu, eu) = (
            bridge.io_us_per_participant_s.unwrap_or(0.0),
            echo.io_us_per_participant_s.unwrap_or(0.0),
        );
        let (bp, ep) = (bridge.cpu_process_pct - bh, echo.cpu_process_pct - bh);
        let per_conference = bridge.cpu_io_pct / c as f64;
        let _ = writeln!(
            s,
            "{c} | {bu} / {eu} = {} | {:.2} / {:.2} = {} | {:.3} | {:.0} | {} / {} | {} / {}",
            ratio(bu, eu),
            bp,
            ep,
            ratio(bp, ep),
            per_conference,
            if per_conference > 0.0 {
                100.0 / per_conference
            } else {
                f64::NAN
            },
            opt(net_heap(bridge)),
            opt(net_heap(echo)),
            opt(bridge.jitter_p99_ms),
            opt(echo.jitter_p99_ms),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentile(&[], 50.0), None);
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&[7], 1.0), Some(7));
    }

    #[test]
    fn a_level_fails_on_loss_or_a_late_mixer() {
        let row = |loss, sent, spread| Row {
            mode: "bridge",
            loss_pct: Some(loss),
            engine_sent_pps: sent,
            spread_p50_ms: Some(spread),
            ..Row::default()
        };
        let fails = |r: Row| r.failure(1.0, 40.0);
        assert_eq!(fails(row(0.4, Some(49.9), 39.0)), None);
        assert!(fails(row(1.5, Some(50.0), 1.0)).unwrap().contains("1.5%"));
        assert!(fails(row(0.0, Some(48.0), 1.0)).unwrap().contains("behind"));
        assert!(fails(row(0.0, Some(50.0), 41.0)).unwrap().contains("late"));
        assert_eq!(fails(row(0.0, None, 1.0)), None);
    }
}
