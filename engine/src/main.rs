//! The `vigil` command line: `vigil serve` runs the server; `vigil rules ...` is the rule
//! author's toolbox (see `vigil --help`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use vigil::config::{Config, Overrides};

/// mimalloc instead of the system allocator: ingest allocates and frees many small JSON
/// values per event, and glibc malloc was a quarter of the server's CPU under W1 (perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "vigil", version, about = "Vigil security event server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct ServerArgs {
    /// Address to listen on [env: VIGIL_LISTEN] (default 127.0.0.1:8080).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// sqlite://PATH or postgres://... [env: VIGIL_DATABASE_URL] (default sqlite://data/vigil.db).
    #[arg(long)]
    database_url: Option<String>,
    /// Directory of .wasm rules to load and watch [env: VIGIL_RULES_DIR].
    #[arg(long)]
    rules_dir: Option<PathBuf>,
    /// TOML config file [env: VIGIL_CONFIG].
    #[arg(long)]
    config: Option<PathBuf>,
    /// Directory of the key files and the anchor [env: VIGIL_DATA_DIR] (default ./data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

impl ServerArgs {
    fn load(self) -> anyhow::Result<Config> {
        Ok(Config::load(Overrides {
            config: self.config,
            listen: self.listen,
            database_url: self.database_url,
            rules_dir: self.rules_dir,
            data_dir: self.data_dir,
        })?)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServerArgs),
    /// Write, build, test, deploy and backtest rules.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Check an export offline (`--file`: no server, no database) or ask a running server to
    /// verify its log (`--url`): every failure with its seq and kind. Exit status 0 ok,
    /// 1 failed, 3 (`--file` only) ok but with an unsigned tail, 2 usage error.
    Verify {
        /// The NDJSON export (`GET /v1/events/export?format=ndjson`); `-` reads stdin.
        #[arg(long, required_unless_present = "url", conflicts_with = "url", requires = "public_key")]
        file: Option<PathBuf>,
        /// Ed25519 public key (hex, base64, a file holding it, or the JSON of
        /// `GET /v1/integrity/public-key`); repeat for keys from before a rotation.
        #[arg(long = "public-key")]
        public_key: Vec<String>,
        /// A running server to verify (`GET /v1/integrity/verify`), with `--key`.
        #[arg(long, env = "VIGIL_URL")]
        url: Option<String>,
        /// API key with the read role (with `--url`).
        #[arg(long, env = "VIGIL_KEY", hide_env_values = true, requires = "url")]
        key: Option<String>,
        /// First seq (with `--url`; default: the retention floor).
        #[arg(long, requires = "url")]
        from: Option<i64>,
        /// Last seq (with `--url`; default: the head).
        #[arg(long, requires = "url")]
        to: Option<i64>,
        /// Print only the JSON report (no summary, no progress).
        #[arg(long)]
        json: bool,
    },
    /// Follow and export the events of a running server.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// The server's keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// List receivers and their circuits on a running server.
    Receivers {
        #[command(flatten)]
        server: ServerConn,
    },
    /// List silences on a running server.
    Silences {
        #[command(flatten)]
        server: ServerConn,
    },
    /// List, acknowledge and resolve alerts on a running server.
    Alerts {
        #[command(subcommand)]
        command: AlertsCommand,
    },
    /// List, check, issue and lift decisions (block, throttle, require_mfa, lock) on a
    /// running server.
    Decisions {
        #[command(subcommand)]
        command: DecisionsCommand,
    },
    /// Write a commented configuration file, or check one.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print the OpenAPI 3.1 document of the HTTP API (what `GET /v1/openapi.json` serves).
    Openapi {
        /// Render it as the Markdown reference (`docs/api.md`) instead of JSON.
        #[arg(long)]
        markdown: bool,
    },
    /// Integrity holds.
    Integrity {
        #[command(subcommand)]
        command: IntegrityCommand,
    },
}

/// Where a command that talks to a running server sends its requests.
#[derive(clap::Args, Clone)]
struct ServerConn {
    /// Server URL.
    #[arg(long, env = "VIGIL_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// API key (a role that may do the operation).
    #[arg(long, env = "VIGIL_KEY", hide_env_values = true)]
    key: String,
    /// `text` (a table for listings) or `json` (the server's answer as is).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    output: String,
}

impl ServerConn {
    fn call(&self, method: reqwest::Method, path: String, body: Option<serde_json::Value>) -> vigil::cli::Call {
        vigil::cli::Call {
            url: self.url.clone(),
            key: self.key.clone(),
            json: self.output == "json",
            method,
            path,
            body,
        }
    }
}

/// The filters of `GET /v1/events`, for `vigil events tail`.
#[derive(clap::Args, Clone)]
struct EventFilters {
    /// Only this category.
    #[arg(long)]
    category: Option<String>,
    /// Only this action.
    #[arg(long)]
    action: Option<String>,
    /// low | medium | high | critical
    #[arg(long)]
    severity: Option<String>,
    /// success | failure | unknown
    #[arg(long)]
    outcome: Option<String>,
    /// Only this organization.
    #[arg(long)]
    organization_id: Option<String>,
    /// Only this user.
    #[arg(long)]
    user_id: Option<String>,
    /// Only this IP.
    #[arg(long)]
    ip: Option<String>,
    /// Only this request id.
    #[arg(long)]
    request_id: Option<String>,
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Print new events as they are stored (oldest first), until interrupted.
    Tail {
        #[command(flatten)]
        filters: EventFilters,
        /// Seconds between polls.
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
        #[command(flatten)]
        server: ServerConn,
    },
    /// Download an export (NDJSON with hashes and checkpoints, or CSV) to a file.
    Export {
        /// Where to write it (`-`: stdout).
        #[arg(long, short = 'o')]
        out: PathBuf,
        /// ndjson | csv
        #[arg(long, default_value = "ndjson", value_parser = ["ndjson", "csv"])]
        format: String,
        /// Event-time start (RFC 3339 or epoch ms).
        #[arg(long)]
        since: Option<String>,
        /// Event-time end, exclusive.
        #[arg(long)]
        until: Option<String>,
        /// First seq.
        #[arg(long)]
        from: Option<i64>,
        /// Last seq.
        #[arg(long)]
        to: Option<i64>,
        #[command(flatten)]
        server: ServerConn,
    },
}

#[derive(Subcommand)]
enum AlertsCommand {
    /// List alerts, newest first.
    List {
        /// open | acknowledged | resolved
        #[arg(long)]
        status: Option<String>,
        /// P1 | P2 | P3 | P4
        #[arg(long)]
        severity: Option<String>,
        /// Only this rule's alerts.
        #[arg(long)]
        rule: Option<String>,
        /// Most alerts shown (1..1000).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        server: ServerConn,
    },
    /// Acknowledge an alert.
    Ack {
        /// The alert id.
        id: i64,
        /// A comment kept in the alert's history.
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        server: ServerConn,
    },
    /// Resolve an alert with a disposition.
    Resolve {
        /// The alert id.
        id: i64,
        /// true_positive | false_positive | benign
        #[arg(long)]
        disposition: String,
        /// A comment kept in the alert's history.
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        server: ServerConn,
    },
}

#[derive(Subcommand)]
enum DecisionsCommand {
    /// Active decisions, newest first (`--status expired|lifted|all` for the stored ones).
    List {
        /// active (default) | expired | lifted | all
        #[arg(long)]
        status: Option<String>,
        /// ip | user | api_key | session | organization
        #[arg(long)]
        scope: Option<String>,
        /// Most decisions shown (1..1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        server: ServerConn,
    },
    /// The decisions that apply to a value now (what a bouncer asks).
    Check {
        /// ip | user | api_key | session | organization
        scope: String,
        /// The address, user id...
        value: String,
        #[command(flatten)]
        server: ServerConn,
    },
    /// Issue a decision (role respond).
    Add {
        /// ip | user | api_key | session | organization
        scope: String,
        /// The address, user id...
        value: String,
        /// block | throttle | require_mfa | lock
        #[arg(long, default_value = "block")]
        kind: String,
        /// How long, seconds.
        #[arg(long, default_value_t = 3600)]
        duration_secs: u64,
        /// Why (required).
        #[arg(long)]
        reason: String,
        /// The alert it goes with.
        #[arg(long)]
        alert: Option<i64>,
        #[command(flatten)]
        server: ServerConn,
    },
    /// Lift an active decision early (role respond).
    Lift {
        /// The decision id.
        id: i64,
        /// Why (required).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        server: ServerConn,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Write the commented reference configuration (every key, its default and meaning).
    Init {
        /// Where to write it.
        #[arg(long, default_value = "vigil.toml")]
        path: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Load the configuration as `vigil serve` would (file, then environment, then flags),
    /// validate it, and print what the server would use. Exit status 0 valid, 2 invalid.
    Check(ServerArgs),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create an API key on a running server (the secret is shown once).
    Create {
        /// A name for the key (who or what uses it).
        #[arg(long)]
        name: String,
        /// ingest | read | respond | admin | bouncer
        #[arg(long)]
        role: String,
        #[command(flatten)]
        server: ServerConn,
    },
    /// List a running server's API keys (never their secrets).
    List {
        #[command(flatten)]
        server: ServerConn,
    },
    /// Revoke an API key on a running server.
    Revoke {
        /// The key id (`k_...`).
        id: String,
        #[command(flatten)]
        server: ServerConn,
    },
    /// Print the checkpoint public key (hex) of a data directory.
    CheckpointPublic {
        /// The data directory [env: VIGIL_DATA_DIR] (default ./data).
        #[arg(long, env = "VIGIL_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
    },
    /// Replace the checkpoint signing key (the server uses it from its next start; old
    /// checkpoints stay verifiable with the old public key, which is kept).
    RotateCheckpoint {
        /// The data directory [env: VIGIL_DATA_DIR] (default ./data).
        #[arg(long, env = "VIGIL_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum IntegrityCommand {
    /// End an integrity hold on a running server (recorded in the chain with the reason).
    Accept {
        /// Why the operator accepts the log as it is now.
        #[arg(long)]
        reason: String,
        /// Server URL.
        #[arg(long, env = "VIGIL_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Admin API key.
        #[arg(long, env = "VIGIL_KEY", hide_env_values = true)]
        key: String,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// List the rules deployed on a running server with their counters.
    List {
        #[command(flatten)]
        server: ServerConn,
    },
    /// Scaffold a rule crate `<dir>/<name>` on vigil-sdk, with tests.
    New {
        /// Rule name ([a-z0-9_]{1,64}); also the crate name.
        name: String,
        /// Where to create it.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Build the rule crate at `--path` to wasm32 (release); prints module SHA-256s.
    Build {
        #[arg(long, default_value = ".")]
        path: PathBuf,
    },
    /// Run the rule crate's native tests.
    Test {
        #[arg(long, default_value = ".")]
        path: PathBuf,
    },
    /// Upload a module to a running server (PUT /v1/rules/{name}).
    Deploy {
        /// The .wasm file.
        file: PathBuf,
        /// Rule name (default: the file stem).
        #[arg(long)]
        name: Option<String>,
        /// Server URL.
        #[arg(long, env = "VIGIL_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Admin API key.
        #[arg(long, env = "VIGIL_KEY", hide_env_values = true)]
        key: String,
    },
    /// Run a module over stored events and print the alerts it would raise (writes nothing).
    Backtest {
        /// The .wasm file.
        file: PathBuf,
        /// Start of the event-time range (RFC 3339 or epoch ms).
        #[arg(long)]
        since: String,
        /// End of the event-time range, exclusive (default: no end).
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // `vigil serve` logs in the format of its configuration (set up once it is loaded).
    if !matches!(cli.command, Command::Serve(_)) {
        vigil::telemetry::init_logging();
    }
    vigil::app::install_tls();
    match cli.command {
        Command::Serve(args) => {
            let config = args.load()?;
            vigil::telemetry::init_logging_as(&config.log.format);
            serve(config).await
        }
        Command::Verify { file, public_key, url, key, from, to, json } => {
            let code = match (file, url) {
                (Some(file), _) => vigil::cli::verify_file(&file, &public_key, json)?,
                (None, Some(url)) => {
                    let key = key.ok_or_else(|| anyhow::anyhow!("--url needs --key (or VIGIL_KEY)"))?;
                    vigil::cli::verify_server(&url, &key, from, to, json).await?
                }
                (None, None) => anyhow::bail!("give --file (an export) or --url (a running server)"),
            };
            std::process::exit(code);
        }
        Command::Receivers { server } => server.call(reqwest::Method::GET, "/v1/receivers".into(), None).run().await,
        Command::Silences { server } => server.call(reqwest::Method::GET, "/v1/silences".into(), None).run().await,
        Command::Events { command } => match command {
            EventsCommand::Tail { filters, interval, count, server } => {
                let f = filters;
                let pairs = [
                    ("category", f.category),
                    ("action", f.action),
                    ("severity", f.severity),
                    ("outcome", f.outcome),
                    ("organization_id", f.organization_id),
                    ("user_id", f.user_id),
                    ("ip", f.ip),
                    ("request_id", f.request_id),
                ]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect();
                let every = std::time::Duration::from_secs_f64(interval.clamp(0.05, 3600.0));
                let filter = vigil::cli::TailFilter { pairs };
                let json = server.output == "json";
                vigil::cli::tail(&server.url, &server.key, &filter, every, count, json, |line| println!("{line}")).await
            }
            EventsCommand::Export { out, format, since, until, from, to, server } => {
                let mut q = vec![format!("format={format}")];
                q.extend(since.map(|s| format!("since={}", vigil::cli::query_escape(&s))));
                q.extend(until.map(|s| format!("until={}", vigil::cli::query_escape(&s))));
                q.extend(from.map(|s| format!("from={s}")));
                q.extend(to.map(|s| format!("to={s}")));
                let bytes = vigil::cli::export(&server.url, &server.key, &q.join("&"), &out).await?;
                if out.as_os_str() != "-" {
                    eprintln!("{bytes} bytes written to {}", out.display());
                }
                Ok(())
            }
        },
        Command::Config { command } => match command {
            ConfigCommand::Init { path, force } => vigil::cli::config_init(&path, force),
            ConfigCommand::Check(args) => match args.load() {
                Ok(config) => {
                    println!("{}", vigil::cli::config_summary(&config));
                    Ok(())
                }
                Err(e) => {
                    eprintln!("invalid configuration: {e:#}");
                    std::process::exit(2);
                }
            },
        },
        Command::Alerts { command } => {
            let call = match command {
                AlertsCommand::List { status, severity, rule, limit, server } => {
                    let mut query = vec![format!("limit={limit}")];
                    for (k, v) in [("status", status), ("severity", severity), ("rule", rule)] {
                        if let Some(v) = v {
                            query.push(format!("{k}={}", vigil::cli::query_escape(&v)));
                        }
                    }
                    server.call(reqwest::Method::GET, format!("/v1/alerts?{}", query.join("&")), None)
                }
                AlertsCommand::Ack { id, comment, server } => server.call(
                    reqwest::Method::POST,
                    format!("/v1/alerts/{id}/ack"),
                    Some(serde_json::json!({"comment": comment})),
                ),
                AlertsCommand::Resolve { id, disposition, comment, server } => server.call(
                    reqwest::Method::POST,
                    format!("/v1/alerts/{id}/resolve"),
                    Some(serde_json::json!({"disposition": disposition, "comment": comment})),
                ),
            };
            call.run().await
        }
        Command::Decisions { command } => {
            let call = match command {
                DecisionsCommand::List { status, scope, limit, server } => {
                    let mut query = vec![format!("limit={limit}")];
                    for (k, v) in [("status", status), ("scope", scope)] {
                        if let Some(v) = v {
                            query.push(format!("{k}={}", vigil::cli::query_escape(&v)));
                        }
                    }
                    server.call(reqwest::Method::GET, format!("/v1/decisions?{}", query.join("&")), None)
                }
                DecisionsCommand::Check { scope, value, server } => {
                    let (scope, value) = (vigil::cli::query_escape(&scope), vigil::cli::query_escape(&value));
                    server.call(reqwest::Method::GET, format!("/v1/decisions?scope={scope}&value={value}"), None)
                }
                DecisionsCommand::Add { scope, value, kind, duration_secs, reason, alert, server } => {
                    let body = serde_json::json!({"scope": scope, "value": value, "kind": kind,
                        "duration_secs": duration_secs, "reason": reason, "alert_id": alert});
                    server.call(reqwest::Method::POST, "/v1/decisions".into(), Some(body))
                }
                DecisionsCommand::Lift { id, reason, server } => server.call(
                    reqwest::Method::DELETE,
                    format!("/v1/decisions/{id}"),
                    Some(serde_json::json!({"reason": reason})),
                ),
            };
            call.run().await
        }
        Command::Keys { command } => match command {
            KeysCommand::Create { name, role, server } => {
                let body = serde_json::json!({"name": name, "role": role});
                server.call(reqwest::Method::POST, "/v1/keys".into(), Some(body)).run().await
            }
            KeysCommand::List { server } => server.call(reqwest::Method::GET, "/v1/keys".into(), None).run().await,
            KeysCommand::Revoke { id, server } => {
                let path = format!("/v1/keys/{}", vigil::cli::query_escape(&id));
                server.call(reqwest::Method::DELETE, path, None).run().await
            }
            KeysCommand::CheckpointPublic { data_dir } => {
                let keys = vigil::ledger::keys::current_public(&data_dir)?;
                #[allow(clippy::print_stdout)]
                {
                    println!("{}", keys.public_hex());
                }
                eprintln!("key id {}", keys.key_id());
                Ok(())
            }
            KeysCommand::RotateCheckpoint { data_dir } => {
                let id = vigil::ledger::keys::rotate(&data_dir)?;
                eprintln!(
                    "New checkpoint key {id}; restart the server to sign with it (old checkpoints stay checkable)"
                );
                Ok(())
            }
        },
        Command::Openapi { markdown } => {
            if markdown {
                print!("{}", vigil::api::openapi::markdown());
            } else {
                println!("{}", vigil::api::openapi::document_text());
            }
            Ok(())
        }
        Command::Integrity { command } => match command {
            IntegrityCommand::Accept { reason, url, key } => vigil::cli::accept(&reason, &url, &key).await,
        },
        Command::Rules { command } => match command {
            RulesCommand::List { server } => server.call(reqwest::Method::GET, "/v1/rules".into(), None).run().await,
            RulesCommand::New { name, dir } => {
                let root = vigil::cli::new_rule(&name, &dir)?;
                eprintln!(
                    "Created {}: `vigil rules test --path {0}` then `vigil rules build --path {0}`",
                    root.display()
                );
                Ok(())
            }
            RulesCommand::Build { path } => vigil::cli::build(&path, None),
            RulesCommand::Test { path } => vigil::cli::test(&path, None),
            RulesCommand::Deploy { file, name, url, key } => vigil::cli::deploy(&file, name, &url, &key).await,
            RulesCommand::Backtest { file, since, until, server } => {
                let time = |s: &str| {
                    vigil::event::parse_time(s)
                        .ok_or_else(|| anyhow::anyhow!("{s:?} is not an RFC 3339 time or epoch ms"))
                };
                let until = until.as_deref().map(time).transpose()?;
                let (seen, alerts) = vigil::cli::backtest(&file, time(&since)?, until, server.load()?).await?;
                #[allow(clippy::print_stdout)]
                for alert in &alerts {
                    println!("{alert}");
                }
                eprintln!(
                    "{seen} events evaluated; {} alerts would have been raised (nothing was written)",
                    alerts.len()
                );
                Ok(())
            }
        },
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let server = vigil::app::start(config).await?;
    if let Some(key) = &server.generated_admin_key {
        #[allow(clippy::print_stdout)]
        {
            println!("\n  First start: an admin API key was generated. It is shown only this once:\n\n    {key}\n");
        }
    }
    let mut server = server;
    let task = std::mem::replace(&mut server.task, tokio::spawn(async { Ok(()) }));
    tokio::pin!(task);
    tokio::select! {
        stopped = &mut task => return Ok(stopped??),
        _ = shutdown_signal() => {}
    }
    tracing::info!("Shutting down");
    server.shutdown().await;
    task.await??;
    Ok(())
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
