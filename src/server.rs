//! Wiring for `tsps serve`: store, directory, actors, SIP transports and HTTP.

use crate::config::Config;
use crate::persistence::StorePersistence;
use crate::sip::auth::guard::Guard;
use crate::sip::auth::Authenticator;
use crate::sip::digest::{Algorithm, NonceKeeper};
use crate::sip::shard::{Shard, ShardPool, SipContext, SipSettings};
use crate::store::SharedDirectory;
use crate::transport::limit::Limits;
use crate::transport::Transports;
use actix::prelude::*;
use anyhow::Context as _;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::info;
use tsps_actors::events::EventBus;
use tsps_actors::platform::{Platform, PlatformConfig};
use tsps_actors::ports::SystemClock;
use tsps_actors::tenant::DirectorySource;
use tsps_actors::Directory;

/// `tsps serve`: an actix System whose main runtime is a multi-threaded tokio runtime
/// (HTTP, sockets, database), plus one worker Arbiter per core for the SIP shards and
/// the call, user and tenant actors. See docs/decisions/0002-actix-with-tokio.md.
pub fn serve(
    config: Config,
    demo: bool,
    ready_file: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    let system = actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tsps-io")
            .enable_all()
            .build()
            .expect("tokio runtime")
    });
    system.block_on(async move {
        let running = start(config, demo).await?;
        info!(
            sip_udp = ?running.sip_udp,
            sip_tcp = ?running.sip_tcp,
            http = %running.http,
            "tsps is running"
        );
        if let Some(path) = ready_file {
            let ready = serde_json::json!({
                "sip_udp": running.sip_udp,
                "sip_tcp": running.sip_tcp,
                "http": running.http,
            });
            // Written whole then renamed: a reader never sees half a file.
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, ready.to_string())
                .and_then(|_| std::fs::rename(&tmp, &path))
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        shutdown_signal().await;
        info!("shutting down");
        running.shutdown().await;
        Ok(())
    })
}

/// Ctrl-C, or SIGTERM (how Kubernetes and systemd stop a process).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                tokio::signal::ctrl_c().await.ok();
            }
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await.ok();
}

/// A running platform (started inside an actix System).
pub struct Running {
    pub sip_udp: Option<SocketAddr>,
    pub sip_tcp: Option<SocketAddr>,
    pub http: SocketAddr,
    pub bus: EventBus,
    pub platform: Arc<Platform>,
    pub directory: SharedDirectory,
    cancel: CancellationToken,
    arbiters: Vec<Arbiter>,
    media: Option<crate::media::MediaEngine>,
    writer: tokio::task::JoinHandle<()>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops accepting traffic, stops the workers, then drains the database writer.
    pub async fn shutdown(self) {
        self.cancel.cancel();
        for a in &self.arbiters {
            a.stop();
        }
        for a in self.arbiters {
            let _ = tokio::task::spawn_blocking(move || a.join()).await;
        }
        for t in self.tasks {
            let _ = t.await;
        }
        // The call actors (and their bridges) are gone; stop what is left and wait.
        if let Some(media) = &self.media {
            let _ = tokio::time::timeout(Duration::from_secs(5), media.shutdown()).await;
        }
        // The platform holds the writer's sender; once it is gone the writer drains.
        drop(self.platform);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.writer).await;
    }
}

impl DirectorySource for SharedDirectory {
    fn current(&self) -> Arc<Directory> {
        self.get()
    }
}

/// Starts everything; must run inside an actix System.
pub async fn start(config: Config, demo: bool) -> anyhow::Result<Running> {
    let store = crate::store::open(
        config.database.url.expose(),
        config.database.max_connections,
    )
    .await
    .context("cannot open the database")?;
    if demo {
        let summary = crate::provision::apply_demo(&*store).await?;
        info!(%summary, "demo tenant ready");
    }
    // Personal mode: the local tenant, user and upstream trunk exist before the snapshot.
    let personal = match &config.personal {
        Some(p) => Some(crate::personal::prepare(&*store, p).await?),
        None => None,
    };
    let directory = SharedDirectory::load(store.clone()).await?;
    let restored = store.load_bindings(chrono::Utc::now()).await?;
    info!(bindings = restored.len(), "registrations restored");
    let (persistence, writer) = StorePersistence::start(store.clone());

    let workers = if config.sip.workers == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        config.sip.workers
    };
    let arbiters: Vec<Arbiter> = (0..workers).map(|_| Arbiter::new()).collect();
    // Room for about a second of events at full call rate: the push hub must never
    // fall behind in normal operation (it resyncs every session when it does).
    let bus = EventBus::new(65_536);
    // Several nodes sharing Redis (docs/cluster.md): the bridge tells the others of this
    // node's registrations (through the persistence port) and store changes.
    let cluster = match &config.redis.url {
        Some(url) => Some(crate::cluster::Cluster::new(
            &config.redis,
            url.expose(),
            config.sip.max_expires,
            &bus,
        )?),
        None => None,
    };
    let persistence: Arc<dyn tsps_actors::ports::Persistence> = Arc::new(persistence);
    let persistence = match &cluster {
        Some(c) => c.persistence(persistence),
        None => persistence,
    };
    let adjustable = Arc::new(crate::features::AdjustableClock::default());
    let clock: Arc<dyn tsps_actors::ports::Clock> = if config.testing.clock_api {
        tracing::warn!("testing.clock_api is on: the API can move the clock (tests only)");
        adjustable.clone()
    } else {
        Arc::new(SystemClock)
    };
    let media_engine = start_media(&config);
    let media: Arc<dyn tsps_actors::ports::Media> = match &media_engine {
        Some(engine) => Arc::new(engine.clone()),
        None => Arc::new(tsps_actors::ports::NoMedia),
    };
    let platform = Platform::new(
        arbiters.iter().map(|a| a.handle()).collect(),
        Arc::new(directory.clone()),
        persistence,
        clock.clone(),
        Arc::new(crate::features::StoreFeatures(store.clone())),
        bus.clone(),
        PlatformConfig {
            ring_timeout: Duration::from_secs(config.sip.ring_timeout_secs),
            upstream_tenant: personal.as_ref().map(|p| p.tenant),
            media,
        },
    );
    platform.sync(&directory.get(), restored);

    let cancel = CancellationToken::new();
    let parse = |s: &str| -> anyhow::Result<Option<SocketAddr>> {
        if s.is_empty() {
            Ok(None)
        } else {
            Ok(Some(s.parse()?))
        }
    };
    let nofile = crate::transport::limit::raise_nofile();
    let conns = &config.security.connections;
    let tcp_settings = crate::transport::TcpSettings {
        limits: Limits::sized(conns.max_total, conns.max_per_source, nofile),
        idle_timeout: Duration::from_secs(conns.idle_timeout_secs),
        message_timeout: Duration::from_secs(conns.header_timeout_secs),
    };
    info!(
        open_files = nofile,
        max_connections = tcp_settings.limits.max_total,
        max_per_source = tcp_settings.limits.max_per_source,
        "connection limits (each of SIP over TCP and HTTP)"
    );
    let transports = Transports::bind(
        parse(&config.sip.udp_listen)?,
        parse(&config.sip.tcp_listen)?,
        config.sip.max_message_bytes,
        cancel.clone(),
        workers,
        tcp_settings,
    )
    .await
    .context("cannot bind the SIP sockets")?;
    let public_host = config.sip_public_host();
    if config.sip.public_host.is_none() {
        info!(%public_host, "sip.public_host not set: using this address in Via and Contact");
    }
    let presence_stats = Arc::new(crate::sip::presence::PresenceStats::default());
    let guard = Arc::new(Guard::new(config.security.auth.settings()));
    let ctx = Arc::new(SipContext {
        settings: SipSettings {
            public_host,
            udp_port: transports.udp_local().map(|a| a.port()),
            tcp_port: transports.tcp_local().map(|a| a.port()),
            min_expires: config.sip.min_expires,
            max_expires: config.sip.max_expires,
            shards: workers,
            presence: config
                .presence
                .settings(config.quotas.subscriptions_per_tenant),
            overload: config.sip.overload_settings(),
        },
        directory: Arc::new(directory.clone()),
        actors: Arc::new(crate::sip::platform::PlatformActors::new(platform.clone())),
        auth: Authenticator::new(
            NonceKeeper::new(rand::random(), config.sip.nonce_ttl_secs),
            guard.clone(),
            config
                .sip
                .digest_algorithms
                .iter()
                .map(|a| {
                    if a.eq_ignore_ascii_case("MD5") {
                        Algorithm::Md5
                    } else {
                        Algorithm::Sha256
                    }
                })
                .collect(),
        )
        .allow_server_digest_uri(config.security.auth.allow_server_digest_uri),
        transports: Arc::new(transports.clone()),
        shards: std::sync::OnceLock::new(),
        upstream: personal.as_ref().map(|p| p.upstream()),
        presence_stats: presence_stats.clone(),
        overload_stats: Arc::new(crate::sip::overload::OverloadStats::default()),
        queues: (0..workers)
            .map(|_| crate::sip::overload::QueueDepth::default())
            .collect(),
        clock: clock.clone(),
    });
    let shards: Vec<Addr<Shard>> = arbiters
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let ctx = ctx.clone();
            Shard::start_in_arbiter(&a.handle(), move |_| Shard::new(i, ctx))
        })
        .collect();
    // Before any message can arrive: shards forward to each other through this list.
    let _ = ctx.shards.set(shards.clone());
    transports.start(Arc::new(ShardPool {
        shards,
        queues: ctx.queues.clone(),
    }));

    let mut tasks = Vec::new();
    if let (Some(cfg), Some(prepared)) = (&config.personal, &personal) {
        let udp = transports
            .udp_local()
            .context("personal mode registers upstream over UDP: set sip.udp_listen")?;
        let (task, _status) = crate::personal::start(
            cfg,
            prepared,
            &ctx.settings.public_host,
            udp.port(),
            udp.ip(),
            cancel.clone(),
        )
        .await?;
        tasks.push(task);
    }
    // Say, every ten seconds, which places in the code lost log lines to the rate limit.
    {
        let cancel = cancel.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tick.tick() => crate::logging::report_suppressed(),
                }
            }
        }));
    }
    // Keep the actors in line with the directory after provisioning changes.
    {
        let (directory, platform, cancel) = (directory.clone(), platform.clone(), cancel.clone());
        tasks.push(tokio::spawn(async move {
            let mut seen = directory.get();
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let now = directory.get();
                if !Arc::ptr_eq(&now, &seen) {
                    platform.sync(&now, Vec::new());
                    seen = now;
                }
            }
        }));
    }

    let listener = tokio::net::TcpListener::bind(&config.http.listen)
        .await
        .with_context(|| format!("cannot bind HTTP on {}", config.http.listen))?;
    let http = listener.local_addr()?;
    let push = crate::push::Hub::new(
        Arc::new(crate::push::PlatformSource {
            platform: platform.clone(),
            directory: directory.clone(),
        }),
        crate::push::HubConfig::default(),
        clock.clone(),
    );
    push.run(&bus, cancel.clone());
    // SIP presence: the tenants' presence actors follow the bus.
    {
        let (rx, platform, cancel) = (bus.subscribe(), platform.clone(), cancel.clone());
        tasks.push(tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = tsps_actors::presence::route_bus(move |t| platform.registry.presence(t), rx) => {}
            }
        }));
    }
    // Instant messages sent here (chat, calls rejected with a message): the shards send
    // them to the recipients' phones.
    {
        let (rx, sip, cancel) = (bus.subscribe(), ctx.messengers(), cancel.clone());
        tasks.push(tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = tsps_actors::presence::message::route_messages(rx, sip) => {}
            }
        }));
    }
    let notify: Arc<dyn crate::notify::ChangeNotifier> = Arc::new(crate::features::ActorNotifier {
        platform: platform.clone(),
        directory: directory.clone(),
    });
    let http_limiter = crate::transport::limit::ConnectionLimiter::new(tcp_settings.limits);
    let mut metrics = crate::metrics::NodeMetrics::new(platform.clone(), push.clone())
        .with_connections("sip_tcp", transports.tcp_stats())
        .with_connections("http", http_limiter.stats().clone())
        .with_presence(presence_stats)
        .with_auth(ctx.auth.stats().clone(), guard.clone())
        .with_sip_overload(ctx.overload_stats.clone());
    if let Some(engine) = &media_engine {
        metrics = metrics.with_media(engine.stats());
    }
    let notify = match cluster {
        Some(c) => {
            metrics = metrics.with_cluster(c.stats());
            let cluster_notify = c.notifier(notify.clone());
            let hub = push.clone();
            let deps = crate::cluster::link::Deps {
                platform: platform.clone(),
                directory: directory.clone(),
                bus: bus.clone(),
                notifier: notify,
                on_gap: Box::new(move || hub.resync_all()),
            };
            tasks.extend(c.start(deps, cancel.clone()));
            cluster_notify
        }
        None => notify,
    };
    let state = crate::web::ApiState {
        directory: directory.clone(),
        api_token: config.http.api_token.clone(),
        notify,
        clock: clock.clone(),
        live: Arc::new(crate::features::PlatformCalls {
            platform: platform.clone(),
            clock: config.testing.clock_api.then(|| adjustable.clone()),
            dialers: ctx.dialers(),
        }),
        metrics: Arc::new(metrics),
        push,
        guard: guard.clone(),
        quotas: config.quotas.quotas(),
    };
    let app = crate::web::router_with(state, crate::web::AuthSettings::from_config(&config.http));
    {
        let cancel = cancel.clone();
        let header_timeout = Duration::from_secs(config.security.connections.header_timeout_secs);
        tasks.push(tokio::spawn(crate::web::serve::serve(
            listener,
            app,
            http_limiter,
            header_timeout,
            cancel,
        )));
    }

    Ok(Running {
        sip_udp: transports.udp_local(),
        sip_tcp: transports.tcp_local(),
        http,
        bus,
        platform,
        directory,
        cancel,
        arbiters,
        media: media_engine,
        writer,
        tasks,
    })
}

/// The conference bridges' engine, on this (the I/O) runtime; None when disabled.
fn start_media(config: &Config) -> Option<crate::media::MediaEngine> {
    if !config.media.enabled {
        info!("media.enabled is off: no conference bridges on this node");
        return None;
    }
    let settings = config.media_settings();
    if config.media.address.is_none() && config.sip_public_host().parse::<IpAddr>().is_err() {
        tracing::warn!(
            address = %settings.address,
            "sip.public_host is a name: set media.address to an IP the phones can reach"
        );
    }
    info!(
        address = %settings.address,
        bind = %settings.bind,
        ports = %format_args!("{}-{}", settings.rtp_port_min, settings.rtp_port_max),
        "media engine ready"
    );
    Some(crate::media::MediaEngine::new(
        settings,
        tokio::runtime::Handle::current(),
    ))
}

pub async fn provision_apply(config: &Config, file: &Path) -> anyhow::Result<()> {
    // Parse and validate before touching the database, so a typo costs no connection.
    let doc = crate::provision::load_file(file)?;
    crate::provision::validate(&doc)?;
    let store = crate::store::open(
        config.database.url.expose(),
        config.database.max_connections,
    )
    .await
    .context("cannot open the database")?;
    let summary = crate::provision::apply(&*store, &doc).await?;
    println!("applied {}\n{summary}", file.display());
    Ok(())
}
