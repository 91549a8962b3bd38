//! Conference bridge load test (docs/benchmarks.md, "Conference media"): what a
//! conference of three costs on tsps's media engine, against a plain UDP echo of the same
//! traffic and the load generator alone, all in one process on 127.0.0.1.
//!
//! ```text
//! cargo run --release --example media-load -- --conferences 0,10,50,100 --seconds 10
//! ```
//!
//! For each level (a number of conferences) and each mode (blackhole, echo, bridge; see
//! `target.rs`) it binds one client socket per participant, sets up the target, runs the
//! traffic for a warm-up and then a measurement window, and tears everything down. The
//! engine runs on a 2-thread runtime named like tsps serve's I/O runtime (`tsps-io`), the
//! clients on their own (`gen`), so the CPU time of each side is read per thread from
//! /proc as well as for the whole process. The run stops after the first level where a
//! mode loses more than `--max-loss-pct` of its packets, the mixer sends fewer packets
//! than its ticks should, or the median participant's packets spread more than
//! `--max-spread-ms` against their RTP clock.
//!
//! Writes `media.csv` (one row per level and mode) and `media-summary.txt` (ratios) to
//! `--out`. Every loop is bounded: windows by time, teardowns by a deadline, the whole
//! run by `--max-seconds` (levels that would not fit are skipped).

mod alloc;
mod client;
mod probe;
mod report;
mod target;

use anyhow::Context;
use clap::Parser;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use target::Mode;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tsps::media::{MediaEngine, MediaSettings, MediaStats};

// mimalloc as in the tsps binary (src/main.rs), counting live bytes.
#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

#[derive(Parser, Debug, Clone)]
#[command(about = "Load test of tsps's conference bridges (loopback UDP, in-process)")]
pub struct Args {
    /// Levels: numbers of conferences, measured in turn (0 = the idle process).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0,10,50,100,200,400,800,1200,1600"
    )]
    conferences: Vec<usize>,
    /// Participants per conference.
    #[arg(long, default_value_t = 3)]
    participants: usize,
    /// Measurement window per level and mode, seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Traffic before the window (not measured), seconds.
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Modes measured at each level, in this order.
    #[arg(long, value_delimiter = ',', default_value = "blackhole,echo,bridge")]
    modes: Vec<Mode>,
    /// Worker threads of the engine's runtime (tsps serve's I/O runtime has 2).
    #[arg(long, default_value_t = 2)]
    io_threads: usize,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    gen_threads: usize,
    /// Clients per sender task.
    #[arg(long, default_value_t = 50)]
    clients_per_sender: usize,
    /// A level fails when the clients receive this share (%) less than 50 packets/s
    /// each, or the mixer sends that much less.
    #[arg(long, default_value_t = 1.0)]
    max_loss_pct: f64,
    /// A level fails when the median participant's packets spread more than this
    /// against their RTP clock (two packet times: what a phone's jitter buffer holds).
    #[arg(long, default_value_t = 40.0)]
    max_spread_ms: f64,
    /// RTP ports of the engine.
    #[arg(long, default_value_t = 20000)]
    rtp_port_min: u16,
    #[arg(long, default_value_t = 39999)]
    rtp_port_max: u16,
    /// The whole run's time limit, seconds: levels that would not fit are skipped.
    #[arg(long, default_value_t = 540.0)]
    max_seconds: f64,
    /// Output directory (created).
    #[arg(long, default_value = "load-tests/results/media")]
    out: PathBuf,
    /// A note written into the summary (machine state, git revision).
    #[arg(long, default_value = "")]
    note: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.participants >= 2, "a conference needs 2 participants");
    anyhow::ensure!(args.seconds >= 1.0, "--seconds must be at least 1");
    let io = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.io_threads)
        .thread_name(probe::IO_THREADS)
        .enable_all()
        .build()?;
    let gen = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.gen_threads)
        .thread_name(probe::GEN_THREADS)
        .enable_all()
        .build()?;
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let engine = MediaEngine::new(
        MediaSettings {
            address: local,
            bind: local,
            rtp_port_min: args.rtp_port_min,
            rtp_port_max: args.rtp_port_max,
        },
        io.handle().clone(),
    );
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let started = Instant::now();
    let outcome = gen.block_on(run(&args, &engine, io.handle()));
    gen.block_on(async {
        let _ = tokio::time::timeout(Duration::from_secs(5), engine.shutdown()).await;
    });
    let (rows, stop) = outcome?;
    let summary = report::summary(&args, &rows, &stop, started.elapsed());
    report::write(&args.out, &rows, &summary)?;
    print!("{summary}");
    Ok(())
}

/// Why the levels ended.
#[derive(Debug, Clone)]
pub enum Stop {
    Done,
    Failed { conferences: usize, why: String },
    OutOfTime { skipped: Vec<usize> },
}

async fn run(
    args: &Args,
    engine: &MediaEngine,
    io: &tokio::runtime::Handle,
) -> anyhow::Result<(Vec<report::Row>, Stop)> {
    let started = Instant::now();
    let mut rows = Vec::new();
    let per_mode = args.warmup + args.seconds + 2.0;
    for (i, &conferences) in args.conferences.iter().enumerate() {
        let modes: &[Mode] = if conferences == 0 { &[] } else { &args.modes };
        let needed = per_mode * modes.len().max(1) as f64;
        if started.elapsed().as_secs_f64() + needed > args.max_seconds {
            return Ok((
                rows,
                Stop::OutOfTime {
                    skipped: args.conferences[i..].to_vec(),
                },
            ));
        }
        if conferences == 0 {
            let row = idle(args).await;
            eprintln!("{}", row.line());
            rows.push(row);
            continue;
        }
        // The level's other modes still run after a failure: the baselines say whether
        // the bridge or the machine gave out.
        let mut failed = Vec::new();
        for &mode in modes {
            let row = measure(args, conferences, mode, engine, io).await?;
            eprintln!("{}", row.line());
            failed.extend(row.failure(args.max_loss_pct, args.max_spread_ms));
            rows.push(row);
        }
        if !failed.is_empty() {
            let why = failed.join("; ");
            return Ok((rows, Stop::Failed { conferences, why }));
        }
    }
    Ok((rows, Stop::Done))
}

/// The process with nothing open: the runtimes' idle cost, the baseline RSS.
async fn idle(args: &Args) -> report::Row {
    let a = probe::snapshot();
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    let b = probe::snapshot();
    report::Row::idle(&a, &b)
}

async fn measure(
    args: &Args,
    conferences: usize,
    mode: Mode,
    engine: &MediaEngine,
    io: &tokio::runtime::Handle,
) -> anyhow::Result<report::Row> {
    let participants = conferences * args.participants;
    let before = probe::memory();
    let clients = client::bind(participants, args.participants).context("client sockets")?;
    let with_clients = probe::memory();
    let ports: Vec<u16> = clients.iter().map(client::Client::port).collect();
    let setup_started = Instant::now();
    let target = target::setup(mode, &ports, args.participants, io, engine)
        .with_context(|| format!("{} for {conferences} conferences", mode.name()))?;
    let setup = setup_started.elapsed();
    let with_target = probe::memory();

    let window = Arc::new(client::Window::new());
    let cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();
    client::start(
        &clients,
        &target.addresses,
        args.clients_per_sender,
        &window,
        &cancel,
        &mut tasks,
    );
    // Half a packet interval more: the window's edges fall between the ticks of a
    // sender group, not on them (with one group, an edge on its tick counts a packet
    // as sent and not yet echoed, and biases the count of every client by one).
    tokio::time::sleep(Duration::from_secs_f64(args.warmup) + client::PACKET_INTERVAL / 2).await;

    let stats = engine.stats();
    let a = probe::snapshot();
    let ca = report::ClientTotals::read(&clients);
    let ea = EngineCounts::read(&stats);
    window.measuring.store(true, Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    window.measuring.store(false, Relaxed);
    let b = probe::snapshot();
    let cb = report::ClientTotals::read(&clients);
    let eb = EngineCounts::read(&stats);
    let spreads: Vec<i64> = clients
        .iter()
        .map(|c| c.counters.spread_ns.load(Relaxed))
        .collect();

    cancel.cancel();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while let Ok(Some(_)) = tokio::time::timeout_at(deadline, tasks.join_next()).await {}
    anyhow::ensure!(
        tasks.is_empty(),
        "the clients' tasks did not stop within 10 s"
    );
    target.teardown(engine).await?;
    drop(clients);
    // The histogram (about 140 KB) is the generator's: summed up and freed before
    // `after`, which tells what the level left on the heap.
    let jitter = report::Jitter::of(&window.jitter_us.lock().unwrap_or_else(|e| e.into_inner()));
    drop(window);
    let after = probe::memory();
    Ok(report::Row::measured(report::Measured {
        conferences,
        participants,
        mode,
        setup,
        a,
        b,
        clients: cb.minus(&ca),
        engine: eb.minus(ea),
        jitter,
        spreads_ns: spreads,
        memory: [before, with_clients, with_target, b.memory, after],
    }))
}

/// The engine's counters (docs/media.md, Metrics) at one instant.
#[derive(Clone, Copy, Debug, Default)]
pub struct EngineCounts {
    pub received: u64,
    pub sent: u64,
    pub dropped: u64,
}

impl EngineCounts {
    fn read(stats: &MediaStats) -> Self {
        Self {
            received: stats.packets_received.load(Relaxed),
            sent: stats.packets_sent.load(Relaxed),
            dropped: stats.packets_dropped.load(Relaxed),
        }
    }

    fn minus(self, earlier: Self) -> Self {
        Self {
            received: self.received - earlier.received,
            sent: self.sent - earlier.sent,
            dropped: self.dropped - earlier.dropped,
        }
    }
}
