//! The `tsps` command: `serve` runs the platform, `provision apply` loads a declarative file.

use clap::{Parser, Subcommand};
use std::collections::HashMap;
use std::path::PathBuf;
use tsps::config::{Config, LogFormat};

// mimalloc: SIP handling allocates many short-lived strings; glibc malloc and free were
// about a tenth of tsps's CPU under call load (perf, docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "tsps", version, about = "Telephony service provider system")]
struct Cli {
    /// Configuration file (TOML). `TSPS_*` environment variables override it.
    #[arg(long, short, global = true, env = "TSPS_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the SIP server and the HTTP API.
    Serve {
        /// Create (or refresh) the demo tenant with a few users and devices first.
        #[arg(long)]
        demo: bool,
        /// Once listening, write the bound addresses here as JSON (`sip_udp`, `sip_tcp`,
        /// `http`): with port 0 in the config, this is how a supervisor or a test learns
        /// the ports.
        #[arg(long)]
        ready_file: Option<PathBuf>,
    },
    /// Declarative provisioning.
    Provision {
        #[command(subcommand)]
        action: ProvisionAction,
    },
}

#[derive(Subcommand)]
enum ProvisionAction {
    /// Create or update tenants, users, devices, DIDs and trunks from a YAML or TOML file.
    Apply { file: PathBuf },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let env: HashMap<String, String> = std::env::vars().collect();
    let config = Config::load(cli.config.as_deref(), &env)?;
    init_logging(&config);
    match cli.command {
        Command::Serve { demo, ready_file } => tsps::server::serve(config, demo, ready_file),
        Command::Provision {
            action: ProvisionAction::Apply { file },
        } => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(tsps::server::provision_apply(&config, &file))
        }
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
