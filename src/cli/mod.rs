//! The command line: `fleetmon [serve]` with Prometheus-style flags (each
//! with a `FLEETMON_*` environment variable), `fleetmon check config FILE`,
//! and `fleetmon token create|list|revoke`, which work on a stopped store
//! directly or on a running server through its API (`--server`).

mod flags;
mod import;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use serde_json::Value;

use crate::auth::{Auth, Role, ADMIN_PASSWORD_ENV};
use crate::config::{ByteSize, Config, ConfigSource, PromDuration};
use crate::fleet::simulator::SimConfig;
use crate::fleet::tesla::{TeslaConfig, ACCESS_TOKEN_ENV};
use crate::fleet::UpstreamConfig;
use crate::logging::{self, LogFormat};
use crate::server::{Server, ServerOptions};
use crate::storage::{Kv, KvError, StorageOptions};

/// Where `--config.file` points when not given, if that file exists.
pub const DEFAULT_CONFIG_FILE: &str = "monitoring/fleetmon.yml";

/// fleetmon: a Tesla fleet backend with its own Prometheus-compatible monitoring, in one binary.
///
/// Without a subcommand, fleetmon serves (the same as `fleetmon serve`): the
/// fleet API under /api/1, its metrics at /metrics, on --web.listen-address.
/// Every flag can also be set by the environment variable shown with it.
///
/// On the first start with an empty store fleetmon creates the user `admin`, with the password in
/// FLEETMON_ADMIN_PASSWORD or, when that is unset, a generated one printed once in the log.
#[derive(Debug, Parser)]
#[command(name = "fleetmon", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Check files without running anything.
    Check {
        #[command(subcommand)]
        what: CheckCommand,
    },
    /// Manage API tokens (admin).
    Token {
        #[command(subcommand)]
        action: TokenCommand,
    },
    /// Backfill samples from an OpenMetrics (or text) file with timestamps.
    Import(import::ImportArgs),
}

#[derive(Debug, Subcommand)]
enum CheckCommand {
    /// Validate a configuration file (Prometheus prometheus.yml format); prints what is wrong and where.
    Config {
        /// The file to check.
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token; it is printed once and cannot be shown again.
    Create {
        /// A name for the token (letters, digits, '-', '_', '.').
        #[arg(long)]
        name: String,
        /// What the token may do.
        #[arg(long, value_enum)]
        role: RoleArg,
        #[command(flatten)]
        target: StoreTarget,
    },
    /// List tokens (never their secrets).
    List {
        #[command(flatten)]
        target: StoreTarget,
    },
    /// Revoke a token by id (or by the token itself).
    Revoke {
        /// The token's id, as `token list` shows it.
        id: String,
        #[command(flatten)]
        target: StoreTarget,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    /// Reads vehicle data and metrics.
    Viewer,
    /// Also sends commands and wakes cars.
    Editor,
    /// Also manages tokens.
    Admin,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::Viewer => Role::Viewer,
            RoleArg::Editor => Role::Editor,
            RoleArg::Admin => Role::Admin,
        }
    }
}

/// Where a token or import command acts: a stopped store, or a running server.
#[derive(Debug, Args)]
struct StoreTarget {
    /// The store of a stopped fleetmon.
    #[arg(
        long = "storage.path",
        env = "FLEETMON_STORAGE_PATH",
        default_value = "data"
    )]
    storage_path: PathBuf,
    /// A running fleetmon to ask instead (e.g. http://localhost:8000); authenticates with
    /// FLEETMON_TOKEN, or FLEETMON_USER (default admin) and FLEETMON_PASSWORD.
    #[arg(long, env = "FLEETMON_SERVER")]
    server: Option<String>,
}

#[derive(Debug, Args)]
struct LogArgs {
    /// Log level or filter: error, warn, info, debug, trace (or a tracing filter).
    #[arg(
        long = "log.level",
        env = "FLEETMON_LOG_LEVEL",
        default_value = "info",
        global = true
    )]
    level: String,
    /// Log line format.
    #[arg(
        long = "log.format",
        env = "FLEETMON_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum UpstreamKind {
    /// The built-in fleet simulator.
    Simulator,
    /// The real Tesla Fleet API (token in FLEETMON_TESLA_ACCESS_TOKEN).
    Tesla,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on for the UI, the APIs and /metrics.
    #[arg(
        long = "web.listen-address",
        env = "FLEETMON_WEB_LISTEN_ADDRESS",
        default_value = "0.0.0.0:8000"
    )]
    listen_address: String,
    /// How long requests in flight may take to finish at shutdown.
    #[arg(
        long = "web.shutdown-timeout",
        env = "FLEETMON_WEB_SHUTDOWN_TIMEOUT",
        default_value = "10s"
    )]
    shutdown_timeout: PromDuration,
    /// Let the Prometheus API's reads (queries, labels, series, targets, federation) through
    /// without credentials, for a trusted network. The fleet API and every write still need them.
    #[arg(long = "web.anonymous-read", env = "FLEETMON_WEB_ANONYMOUS_READ")]
    anonymous_read: bool,
    /// How long remote-write queues keep sending what is stored at shutdown (the rest goes
    /// out after the next start).
    #[arg(
        long = "storage.remote.flush-deadline",
        env = "FLEETMON_STORAGE_REMOTE_FLUSH_DEADLINE",
        default_value = "1m"
    )]
    remote_flush_deadline: PromDuration,
    /// How far back a query looks for a series' latest sample.
    #[arg(
        long = "query.lookback-delta",
        env = "FLEETMON_QUERY_LOOKBACK_DELTA",
        default_value = "5m"
    )]
    query_lookback_delta: PromDuration,
    /// Longest a query may run.
    #[arg(
        long = "query.timeout",
        env = "FLEETMON_QUERY_TIMEOUT",
        default_value = "2m"
    )]
    query_timeout: PromDuration,
    /// Most samples a query may hold in memory at once.
    #[arg(
        long = "query.max-samples",
        env = "FLEETMON_QUERY_MAX_SAMPLES",
        default_value_t = 50_000_000
    )]
    query_max_samples: usize,
    /// Most queries evaluated at once (the others wait).
    #[arg(
        long = "query.max-concurrency",
        env = "FLEETMON_QUERY_MAX_CONCURRENCY",
        default_value_t = 20
    )]
    query_max_concurrency: usize,
    /// Directory of the store (created if missing).
    #[arg(
        long = "storage.path",
        env = "FLEETMON_STORAGE_PATH",
        default_value = "data"
    )]
    storage_path: PathBuf,
    /// How long samples are kept: blocks older than this (counted back from the newest sample) are deleted.
    #[arg(
        long = "storage.retention.time",
        env = "FLEETMON_STORAGE_RETENTION_TIME",
        default_value = "15d"
    )]
    retention_time: PromDuration,
    /// Most bytes the blocks may take (e.g. 512MB, 10GB); the oldest blocks go first. 0 means no limit.
    #[arg(
        long = "storage.retention.size",
        env = "FLEETMON_STORAGE_RETENTION_SIZE",
        default_value = "0"
    )]
    retention_size: ByteSize,
    /// Bytes of decompressed chunks each block keeps cached for queries.
    #[arg(
        long = "storage.block-cache-size",
        env = "FLEETMON_STORAGE_BLOCK_CACHE_SIZE",
        default_value = "1MB"
    )]
    block_cache_size: ByteSize,
    /// Compress the WAL's sample records (zstd over columns): about half the
    /// bytes on disk for the head's window, for some CPU on each append.
    #[arg(
        long = "storage.wal-compression",
        env = "FLEETMON_STORAGE_WAL_COMPRESSION",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    wal_compression: bool,
    /// Configuration file (Prometheus prometheus.yml format). Default: monitoring/fleetmon.yml
    /// when it exists, else the configuration embedded in the binary.
    #[arg(long = "config.file", env = "FLEETMON_CONFIG_FILE")]
    config_file: Option<PathBuf>,
    /// Where fleet API calls go.
    #[arg(
        long = "fleet.upstream",
        env = "FLEETMON_FLEET_UPSTREAM",
        value_enum,
        default_value = "simulator"
    )]
    upstream: UpstreamKind,
    /// Number of simulated vehicles.
    #[arg(long = "fleet.simulator.vehicles", env = "FLEETMON_FLEET_SIMULATOR_VEHICLES", default_value_t = 5,
          value_parser = clap::value_parser!(u16).range(1..=10_000))]
    simulator_vehicles: u16,
    /// Seed of a new simulated fleet (the same seed gives the same cars and trips); random when unset.
    #[arg(long = "fleet.simulator.seed", env = "FLEETMON_FLEET_SIMULATOR_SEED")]
    simulator_seed: Option<u64>,
    /// How long a simulated car takes to wake up.
    #[arg(
        long = "fleet.simulator.wake-delay",
        env = "FLEETMON_FLEET_SIMULATOR_WAKE_DELAY",
        default_value = "10s"
    )]
    simulator_wake_delay: PromDuration,
    /// How long a simulated car stays awake while idle.
    #[arg(
        long = "fleet.simulator.sleep-after",
        env = "FLEETMON_FLEET_SIMULATOR_SLEEP_AFTER",
        default_value = "15m"
    )]
    simulator_sleep_after: PromDuration,
    /// Base URL of the Tesla Fleet API (or of a tesla-http-proxy in front of it).
    #[arg(
        long = "fleet.tesla.base-url",
        env = "FLEETMON_FLEET_TESLA_BASE_URL",
        default_value = "https://fleet-api.prd.na.vn.cloud.tesla.com"
    )]
    tesla_base_url: String,
    /// Timeout of one call to the Tesla Fleet API.
    #[arg(
        long = "fleet.tesla.timeout",
        env = "FLEETMON_FLEET_TESLA_TIMEOUT",
        default_value = "10s"
    )]
    tesla_timeout: PromDuration,
    /// How often the vehicle gauges are refreshed (sleeping cars are never woken for it).
    #[arg(
        long = "fleet.refresh-interval",
        env = "FLEETMON_FLEET_REFRESH_INTERVAL",
        default_value = "30s"
    )]
    refresh_interval: PromDuration,
}

/// Parses the command line and runs it; the process's exit code.
pub fn main() -> ExitCode {
    crate::memory::tune_allocator();
    // Parsed in two steps (as `Cli::parse` does) to keep the matches: they
    // hold every flag's effective value, for `/api/v1/status/flags`.
    let mut command = Cli::command();
    command.build();
    let matches = command.clone().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.format(&mut command).exit(),
    };
    let serve_flags = flags::of_serve(&command, &matches);
    if let Err(e) = logging::init(&cli.log.level, cli.log.format) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        None => serve(cli.serve, serve_flags),
        Some(Command::Serve(args)) => serve(args, serve_flags),
        Some(Command::Check {
            what: CheckCommand::Config { file },
        }) => check_config(&file),
        Some(Command::Token { action }) => token(action),
        Some(Command::Import(args)) => import::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn config_source(file: Option<&Path>) -> ConfigSource {
    let default = Path::new(DEFAULT_CONFIG_FILE);
    match file {
        Some(path) => ConfigSource::File(path.to_path_buf()),
        None if default.exists() => ConfigSource::File(default.to_path_buf()),
        None => ConfigSource::Embedded,
    }
}

fn serve(args: ServeArgs, flags: BTreeMap<String, String>) -> anyhow::Result<()> {
    let config_source = config_source(args.config_file.as_deref());
    let config = config_source.load()?;
    let upstream = match args.upstream {
        UpstreamKind::Simulator => UpstreamConfig::Simulator(SimConfig {
            vehicles: usize::from(args.simulator_vehicles),
            seed: args.simulator_seed.unwrap_or_else(rand::random),
            wake_delay_ms: args.simulator_wake_delay.0.as_millis() as i64,
            sleep_after_ms: args.simulator_sleep_after.0.as_millis() as i64,
        }),
        UpstreamKind::Tesla => {
            let access_token = std::env::var(ACCESS_TOKEN_ENV)
                .ok()
                .filter(|t| !t.trim().is_empty())
                .ok_or_else(|| anyhow::anyhow!("--fleet.upstream tesla needs a Fleet API access token in {ACCESS_TOKEN_ENV}"))?;
            UpstreamConfig::Tesla(TeslaConfig {
                base_url: args.tesla_base_url,
                access_token,
                timeout: args.tesla_timeout.0,
            })
        }
    };
    let options = ServerOptions {
        listen_address: args.listen_address,
        storage_path: args.storage_path,
        storage: StorageOptions {
            retention_time: args.retention_time.0,
            retention_size: Some(args.retention_size.0).filter(|size| *size > 0),
            block_cache_bytes: args.block_cache_size.0 as usize,
            wal_compression: args.wal_compression,
            ..StorageOptions::default()
        },
        config,
        config_source,
        upstream,
        refresh_interval: args.refresh_interval.0.max(Duration::from_secs(1)),
        shutdown_timeout: args.shutdown_timeout.0,
        remote_flush_deadline: args.remote_flush_deadline.0,
        query: crate::promql::EngineOptions {
            lookback_delta_ms: args.query_lookback_delta.0.as_millis() as i64,
            timeout: args.query_timeout.0,
            max_samples: args.query_max_samples,
        },
        query_concurrency: args.query_max_concurrency,
        anonymous_read: args.anonymous_read,
        flags,
        admin_password: std::env::var(ADMIN_PASSWORD_ENV)
            .ok()
            .filter(|p| !p.is_empty()),
    };
    runtime()?.block_on(async {
        let server = Server::bind(options).await?;
        server
            .run(async {
                let signal = crate::shutdown::signal().await;
                tracing::info!(signal, "received signal");
            })
            .await
    })
}

fn check_config(file: &Path) -> anyhow::Result<()> {
    let config = Config::load(file)?;
    println!(
        "{}: SUCCESS: {} scrape job(s), {} rule file(s)",
        file.display(),
        config.scrape_configs.len(),
        config.rule_files.len()
    );
    Ok(())
}

fn token(action: TokenCommand) -> anyhow::Result<()> {
    let target = match &action {
        TokenCommand::Create { target, .. }
        | TokenCommand::List { target }
        | TokenCommand::Revoke { target, .. } => target,
    };
    match &target.server {
        Some(server) => runtime()?.block_on(token_over_http(server, &action)),
        None => token_offline(&target.storage_path, &action),
    }
}

fn token_offline(storage: &Path, action: &TokenCommand) -> anyhow::Result<()> {
    let kv = Kv::open(storage).map_err(|e| match e {
        KvError::InUse(path) => anyhow::anyhow!(
            "fleetmon is running on {}: ask it instead, e.g. `fleetmon token ... --server http://localhost:8000` with FLEETMON_PASSWORD set to the admin password",
            path.display()
        ),
        other => other.into(),
    })?;
    let auth = Auth::new(&kv)?;
    match action {
        TokenCommand::Create { name, role, .. } => {
            let (info, token) = auth.create_token(name, (*role).into(), "cli")?;
            print_created(&serde_json::to_value(&info)?, &token);
        }
        TokenCommand::List { .. } => print_tokens(&serde_json::to_value(auth.list_tokens()?)?),
        TokenCommand::Revoke { id, .. } => {
            if !auth.revoke_token(id)? {
                anyhow::bail!("no token with id '{id}'");
            }
            println!("revoked {id}");
        }
    }
    kv.flush()?;
    Ok(())
}

async fn token_over_http(server: &str, action: &TokenCommand) -> anyhow::Result<()> {
    let base = format!("{}/api/v1/admin/tokens", server.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let request = match action {
        TokenCommand::Create { name, role, .. } => {
            let role = Role::from(*role).as_str();
            client
                .post(&base)
                .form(&[("name", name.as_str()), ("role", role)])
        }
        TokenCommand::List { .. } => client.get(&base),
        TokenCommand::Revoke { id, .. } => client.delete(format!("{base}/{id}")),
    };
    let response = authenticate(request, server)?
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach {server}: {e}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no error message");
        anyhow::bail!("{server} answered {status}: {message}");
    }
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    match action {
        TokenCommand::Create { .. } => {
            let token = data
                .get("token")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            print_created(&data, &token);
        }
        TokenCommand::List { .. } => print_tokens(&data),
        TokenCommand::Revoke { id, .. } => println!("revoked {id}"),
    }
    Ok(())
}

/// Adds the credentials of the environment to a request for a running
/// fleetmon: FLEETMON_TOKEN, or FLEETMON_USER (default admin) and
/// FLEETMON_PASSWORD.
fn authenticate(
    request: reqwest::RequestBuilder,
    server: &str,
) -> anyhow::Result<reqwest::RequestBuilder> {
    Ok(match std::env::var("FLEETMON_TOKEN") {
        Ok(token) if !token.is_empty() => request.bearer_auth(token),
        _ => {
            let user = std::env::var("FLEETMON_USER").unwrap_or_else(|_| "admin".into());
            let password = std::env::var("FLEETMON_PASSWORD").map_err(|_| {
                anyhow::anyhow!(
                    "set FLEETMON_PASSWORD (or FLEETMON_TOKEN) to authenticate to {server}"
                )
            })?;
            request.basic_auth(user, Some(password))
        }
    })
}

fn print_created(info: &Value, token: &str) {
    let field = |k: &str| {
        info.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    eprintln!(
        "created token {} '{}' with role {} — it is shown once, store it now:",
        field("id"),
        field("name"),
        field("role")
    );
    println!("{token}");
}

fn print_tokens(tokens: &Value) {
    println!("{:<14} {:<8} {:<24} CREATED BY", "ID", "ROLE", "NAME");
    for t in tokens.as_array().into_iter().flatten() {
        let field = |k: &str| {
            t.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        println!(
            "{:<14} {:<8} {:<24} {}",
            field("id"),
            field("role"),
            field("name"),
            field("created_by")
        );
    }
}
