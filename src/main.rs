//! The `tsps` command: `serve` runs the platform, `provision apply` loads a declarative
//! file, `operator add|remove|list` manages the platform operators' portal accounts.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::collections::HashMap;
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use tsps::config::{Config, LogFormat};

/// Where `tsps operator add` takes the password from, for scripts (else from stdin).
const OPERATOR_PASSWORD_ENV: &str = "TSPS_OPERATOR_PASSWORD";

// mimalloc: SIP handling allocates many short-lived strings; glibc malloc and free were
// about a tenth of tsps's CPU under call load (perf, docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "tsps", version, about = "Telephony service provider system")]
struct Cli {
    /// Configuration file (TOML). `TSPS_*` environment variables override it.
    #[arg(long, short, global = true, env = "TSPS_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, PartialEq, Subcommand)]
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
    /// Platform operators: accounts that log in to the portal as the operator (every
    /// tenant, everything), without a domain.
    Operator {
        #[command(subcommand)]
        action: OperatorAction,
    },
}

#[derive(Debug, PartialEq, Subcommand)]
enum ProvisionAction {
    /// Create or update tenants, users, devices, DIDs and trunks from a YAML or TOML file.
    Apply { file: PathBuf },
}

#[derive(Debug, PartialEq, Subcommand)]
enum OperatorAction {
    /// Create an operator. The password (12 to 128 characters) comes from
    /// TSPS_OPERATOR_PASSWORD, or else from the first line of stdin.
    Add {
        /// Letters, digits and - _ . @ (stored lower case).
        login: String,
    },
    /// Remove an operator; its portal sessions end.
    Remove { login: String },
    /// List the operators (login and creation time).
    List,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut env: HashMap<String, String> = std::env::vars().collect();
    // Not a setting (the configuration would refuse it as an unknown field).
    let operator_password = env.remove(OPERATOR_PASSWORD_ENV);
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
        Command::Operator { action } => {
            // Read before the database is opened: a missing password costs nothing.
            let password = match &action {
                OperatorAction::Add { login } => {
                    let stdin = std::io::stdin();
                    if stdin.is_terminal() && operator_password.is_none() {
                        eprint!("password for operator {login} (shown as typed): ");
                    }
                    Some(read_password(operator_password, &mut stdin.lock())?)
                }
                _ => None,
            };
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(operator(&config, action, password))
        }
    }
}

async fn operator(
    config: &Config,
    action: OperatorAction,
    password: Option<String>,
) -> anyhow::Result<()> {
    let store = tsps::store::open(
        config.database.url.expose(),
        config.database.max_connections,
    )
    .await
    .context("cannot open the database")?;
    match action {
        OperatorAction::Add { login } => {
            let password = password.context("no password")?;
            let added = tsps::provision::add_operator(&*store, &login, &password).await?;
            println!("operator {} added", added.login);
        }
        OperatorAction::Remove { login } => {
            tsps::provision::remove_operator(&*store, &login).await?;
            println!("operator {} removed", login.trim().to_ascii_lowercase());
        }
        OperatorAction::List => {
            for o in store.list_operators().await? {
                println!("{}\t{}", o.login, o.created_at.to_rfc3339());
            }
        }
    }
    Ok(())
}

/// The new operator's password: `from_env` when set, else the first line of `input`
/// (its line end removed; nothing else is trimmed, spaces may be part of it).
fn read_password(from_env: Option<String>, input: &mut dyn BufRead) -> anyhow::Result<String> {
    if let Some(p) = from_env.filter(|p| !p.is_empty()) {
        return Ok(p);
    }
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let password = line.trim_end_matches(['\n', '\r']);
    anyhow::ensure!(
        !password.is_empty(),
        "no password: give it on stdin or in {OPERATOR_PASSWORD_ENV}"
    );
    Ok(password.to_string())
}

/// The log filter of `log.level`, with the parser library's per-line warnings off, and
/// every callsite rate-limited (src/logging.rs): no input floods the log.
fn init_logging(config: &Config) {
    use tracing_subscriber::filter::FilterExt;
    use tracing_subscriber::layer::{Layer, SubscriberExt};
    use tracing_subscriber::util::SubscriberInitExt;
    let level = format!("{},{}", config.log.level, tsps::logging::QUIET_LIBRARIES);
    let filter = tracing_subscriber::EnvFilter::try_new(&level).unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("info,{}", tsps::logging::QUIET_LIBRARIES))
    });
    let limiter = tsps::logging::RateLimit::new(config.security.log.lines_per_second).install();
    let filter = filter.and(limiter);
    let registry = tracing_subscriber::registry();
    match config.log.format {
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().with_filter(filter))
            .init(),
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_filter(filter))
            .init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("tsps").chain(args.iter().copied())).map(|c| c.command)
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn operator_subcommands_parse() {
        let op = |action| Command::Operator { action };
        assert_eq!(
            parse(&["operator", "add", "ops"]).unwrap(),
            op(OperatorAction::Add {
                login: "ops".into()
            })
        );
        assert_eq!(
            parse(&["operator", "remove", "ops"]).unwrap(),
            op(OperatorAction::Remove {
                login: "ops".into()
            })
        );
        assert_eq!(
            parse(&["operator", "list"]).unwrap(),
            op(OperatorAction::List)
        );
        // The config option is global: it may follow the subcommand.
        let cli =
            Cli::try_parse_from(["tsps", "operator", "list", "-c", "/etc/tsps.toml"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("/etc/tsps.toml")));
        // A login is required, one only; the password is never an argument.
        assert!(parse(&["operator", "add"]).is_err());
        assert!(parse(&["operator", "add", "a", "b"]).is_err());
        assert!(parse(&["operator", "add", "ops", "--password", "x"]).is_err());
        assert!(parse(&["operator"]).is_err());
        assert!(parse(&["operator", "rename", "a"]).is_err());
    }

    #[test]
    fn the_password_comes_from_the_environment_or_the_first_line() {
        let mut empty: &[u8] = b"";
        assert_eq!(
            read_password(Some("from-env-12".into()), &mut empty).unwrap(),
            "from-env-12"
        );
        let mut input: &[u8] = b" spaced secret \r\nsecond line\n";
        assert_eq!(read_password(None, &mut input).unwrap(), " spaced secret ");
        // An empty variable is no password: stdin is read.
        let mut input: &[u8] = b"typed-secret";
        assert_eq!(
            read_password(Some(String::new()), &mut input).unwrap(),
            "typed-secret"
        );
        for mut nothing in [&b""[..], &b"\n"[..]] {
            let e = read_password(None, &mut nothing).unwrap_err();
            assert!(e.to_string().contains(OPERATOR_PASSWORD_ENV), "{e}");
        }
    }
}
