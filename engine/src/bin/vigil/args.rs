//! The `vigil` command line as clap types: every subcommand, flag and environment variable
//! (`vigil --help` prints them). Parsing only; `main.rs` runs them.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use vigil::config::{Config, Overrides};

mod archive;
mod rules;

pub use archive::{ArchiveCommand, ArchiveSource};
pub use rules::{RulesCommand, SigmaCommand};

#[derive(Parser)]
#[command(name = "vigil", version, about = "Vigil security event server")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args, Clone)]
pub struct ServerArgs {
    /// Address to listen on [env: VIGIL_LISTEN] (default 127.0.0.1:8080).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// sqlite://PATH or postgres://... [env: VIGIL_DATABASE_URL] (default sqlite://data/vigil.db).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Directory of .wasm rules to load and watch [env: VIGIL_RULES_DIR].
    #[arg(long)]
    pub rules_dir: Option<PathBuf>,
    /// TOML config file [env: VIGIL_CONFIG].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Directory of the key files and the anchor [env: VIGIL_DATA_DIR] (default ./data).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

impl ServerArgs {
    pub fn load(self) -> anyhow::Result<Config> {
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
pub enum Command {
    /// Run the server.
    Serve(ServerArgs),
    /// Write, build, test, deploy and backtest rules.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Check an export offline (`--file`: no server, no database), the retention archive and
    /// the live log as one chain (`--archive` and/or several `--file`), or ask a running
    /// server to verify its log (`--url`): every failure with its seq and kind. Exit status
    /// 0 ok, 1 failed, 3 (offline only) ok but with an unsigned tail, 2 usage error.
    Verify {
        /// The NDJSON export (`GET /v1/events/export?format=ndjson`); `-` reads stdin.
        /// Repeat to check archive parts and a live export as one chain (any order).
        #[arg(long, required_unless_present_any = ["url", "archive", "archive_config"], conflicts_with = "url", requires = "public_key")]
        file: Vec<PathBuf>,
        /// The retention archive: a directory, or s3://bucket/prefix (endpoint, region and
        /// credentials from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID,
        /// AWS_SECRET_ACCESS_KEY; AWS_ALLOW_HTTP=true for an http endpoint). Every part is
        /// read and joined with the `--file` exports into one chain.
        #[arg(long, conflicts_with_all = ["url", "archive_config"], requires = "public_key")]
        archive: Option<String>,
        /// A configuration file whose `[retention.archive]` names the archive (instead of `--archive`).
        #[arg(long, conflicts_with = "url", requires = "public_key")]
        archive_config: Option<PathBuf>,
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
    /// List, add and remove allowlist entries (values no decision may apply to) on a
    /// running server.
    Allowlist {
        #[command(subcommand)]
        command: AllowlistCommand,
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
    /// The security report of a day, week or month from a running server
    /// (`GET /v1/reports/security`), as JSON or a printable HTML page.
    Report {
        /// day, week (Monday to Sunday) or month.
        #[arg(long, default_value = "day", value_parser = ["day", "week", "month"])]
        period: String,
        /// A day of the period, YYYY-MM-DD in UTC (default: today).
        #[arg(long)]
        date: Option<String>,
        /// `json` or `html` (write it to a file with `>`).
        #[arg(long, default_value = "json", value_parser = ["json", "html"])]
        output: String,
        /// Server URL.
        #[arg(long, env = "VIGIL_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// API key with the read role.
        #[arg(long, env = "VIGIL_KEY", hide_env_values = true)]
        key: String,
    },
    /// The retention archive (read directly: no server, no database): list its parts, or
    /// restore a range to a verified export file for an investigation.
    Archive {
        #[command(subcommand)]
        command: ArchiveCommand,
    },
    /// Integrity holds.
    Integrity {
        #[command(subcommand)]
        command: IntegrityCommand,
    },
}

/// The running server a command talks to and the API key it sends: `--url` and `--key`,
/// the same on every such command.
#[derive(clap::Args, Clone)]
pub struct Endpoint {
    /// Server URL.
    #[arg(long, env = "VIGIL_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API key (a role that may do the operation: admin to deploy or accept).
    #[arg(long, env = "VIGIL_KEY", hide_env_values = true)]
    pub key: String,
}

/// Where a command that talks to a running server sends its requests, and how it prints
/// the answer.
#[derive(clap::Args, Clone)]
pub struct ServerConn {
    #[command(flatten)]
    pub endpoint: Endpoint,
    /// `text` (a table for listings) or `json` (the server's answer as is).
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
}

impl ServerConn {
    pub fn call(&self, method: reqwest::Method, path: String, body: Option<serde_json::Value>) -> vigil::cli::Call {
        vigil::cli::Call {
            url: self.endpoint.url.clone(),
            key: self.endpoint.key.clone(),
            json: self.output == "json",
            method,
            path,
            body,
        }
    }
}

/// The filters of `GET /v1/events`, for `vigil events tail`.
#[derive(clap::Args, Clone)]
pub struct EventFilters {
    /// Only this category.
    #[arg(long)]
    pub category: Option<String>,
    /// Only this action.
    #[arg(long)]
    pub action: Option<String>,
    /// low | medium | high | critical
    #[arg(long)]
    pub severity: Option<String>,
    /// success | failure | unknown
    #[arg(long)]
    pub outcome: Option<String>,
    /// Only this organization.
    #[arg(long)]
    pub organization_id: Option<String>,
    /// Only this user.
    #[arg(long)]
    pub user_id: Option<String>,
    /// Only this IP.
    #[arg(long)]
    pub ip: Option<String>,
    /// Only this request id.
    #[arg(long)]
    pub request_id: Option<String>,
    /// Only events sent with this API key (its id, `k_...`).
    #[arg(long)]
    pub ingest_key: Option<String>,
}

#[derive(Subcommand)]
pub enum EventsCommand {
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
pub enum AlertsCommand {
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
pub enum DecisionsCommand {
    /// Active decisions, newest first (`--status expired|lifted|simulated|all` for the stored ones).
    List {
        /// active (default) | expired | lifted | simulated | all
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
        /// How long, seconds (default 3600).
        #[arg(long, conflicts_with = "duration")]
        duration_secs: Option<u64>,
        /// How long, as text: `90s`, `30m`, `4h`, `7d`.
        #[arg(long)]
        duration: Option<String>,
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
pub enum AllowlistCommand {
    /// The entries in force (built-in, configuration, API); `--all` adds expired and
    /// removed ones (role read).
    List {
        /// Also expired and removed entries.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        server: ServerConn,
    },
    /// Add an entry; the active decisions it covers are lifted (role admin).
    Add {
        /// ip | user | api_key | session | organization
        scope: String,
        /// The value (an `ip` may be a CIDR network).
        value: String,
        /// Why (required).
        #[arg(long)]
        reason: String,
        /// How long it applies, as text (`30m`, `4h`, `7d`); default: until removed.
        #[arg(long)]
        duration: Option<String>,
        #[command(flatten)]
        server: ServerConn,
    },
    /// Remove an entry added through the API (role admin).
    Remove {
        /// The entry id.
        id: String,
        #[command(flatten)]
        server: ServerConn,
    },
}

#[derive(Subcommand)]
pub enum ConfigCommand {
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
    /// validate it, and print what the server would use, with a warning for each receiver
    /// nothing routes to. Exit status 0 valid, 2 invalid, 1 valid with warnings and `--strict`.
    Check {
        #[command(flatten)]
        server: ServerArgs,
        /// Exit with status 1 when there are warnings (a receiver nothing routes to).
        #[arg(long)]
        strict: bool,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
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
pub enum IntegrityCommand {
    /// End an integrity hold on a running server (recorded in the chain with the reason).
    Accept {
        /// Why the operator accepts the log as it is now.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        server: Endpoint,
    },
}
