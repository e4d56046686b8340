//! Server configuration: a TOML file (`--config` / `VIGIL_CONFIG`), overridden by
//! environment variables, overridden by command-line flags. Every key is documented in
//! `vigil.example.toml` at the repository root. `Config` is plain data; `app::start`
//! builds the live server from it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod alerting;
mod cluster;
mod enrich;
mod inputs;
mod ops;
mod reach;
mod reports;
mod retention;

pub use alerting::{
    AlertsConfig, BreakerConfig, DecisionsConfig, EscalationLevel, EscalationPolicy, OutboxConfig, ReceiverConfig,
    RoutingConfig, parse_duration_ms, parse_time_of_day,
};
pub use alerting::{AllowConfig, DecisionMode, RuleDecisionsConfig, check_allow_entry};
pub use cluster::{ClusterConfig, DEFAULT_DETECTION_SLOTS, MAX_DETECTION_SLOTS, MAX_PARTITIONS};
pub use enrich::{EnrichConfig, ListConfig, ListKind, MAX_LISTS};
pub use inputs::{ForwarderConfig, InputsConfig, SyslogInput};
pub use ops::{AuditConfig, MetricsConfig};
pub use reach::DEFAULT_ROUTER_LISTS;
pub use reports::{ReportSchedule, ReportsConfig, parse_weekday};
pub use retention::{ArchiveConfig, RetentionConfig};

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// Which file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// Which file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid setting {key}: {message}")]
    Invalid {
        /// Which key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on (`VIGIL_LISTEN`, `--listen`).
    pub listen: SocketAddr,
    /// `sqlite://path` or `postgres://...` (`VIGIL_DATABASE_URL`, `--database-url`).
    pub database_url: String,
    /// Directory of `.wasm` rules to load and watch (`VIGIL_RULES_DIR`, `--rules-dir`).
    pub rules_dir: Option<PathBuf>,
    /// Where the server's key files and the anchor live, outside the database
    /// (`VIGIL_DATA_DIR`, `--data-dir`). Keep it on another volume from the database and
    /// back it up: a missing key with a database that needs it stops the start.
    pub data_dir: PathBuf,
    /// Events older than this many days (by receipt) are purged, in whole ranges ending at
    /// a checkpoint (`VIGIL_RETENTION_DAYS`; 0 keeps everything). The older name of
    /// `[retention] hot_days`, which wins when given: read [`Config::hot_days`].
    pub retention_days: u32,
    /// `[retention]`: the hot tier's length and the archive a purge writes first.
    pub retention: RetentionConfig,
    /// Largest accepted request body, bytes (413 past it).
    pub body_limit_bytes: usize,
    /// HTTP worker threads (0 = one per CPU).
    pub workers: usize,
    /// Admin key to create at start when absent (`VIGIL_ADMIN_KEY` only; never put it in a file you commit).
    #[serde(skip)]
    pub admin_key: Option<String>,
    /// Sequencer and checkpoint settings.
    pub store: StoreConfig,
    /// Anchor, witnesses and retention schedule.
    pub integrity: IntegrityConfig,
    /// Rule sandbox, state and per-rule configuration.
    pub rules: RulesConfig,
    /// Alert dedup and re-notification.
    pub alerts: AlertsConfig,
    /// `[decisions]`: automated response (what rules may decide, and for how long).
    pub decisions: DecisionsConfig,
    /// Where alerts go without (or despite) a routing rule.
    pub routing: RoutingConfig,
    /// Notification delivery: retries, dead letters, storm control.
    pub outbox: OutboxConfig,
    /// Circuit breaker of every receiver.
    pub breaker: BreakerConfig,
    /// `[[receivers]]`: where notifications go.
    pub receivers: Vec<ReceiverConfig>,
    /// `[[escalation]]`: policies for unacknowledged alerts (none given: P1 after 15 min
    /// and P2 after 1 h re-notify the alert's own receivers).
    pub escalation: Vec<EscalationPolicy>,
    /// `[log]`: how the server writes its log.
    pub log: LogConfig,
    /// `[ingest]`: bounds on request bodies in flight.
    pub ingest: IngestConfig,
    /// `[auth]`: throttling of failed authentications.
    pub auth: AuthConfig,
    /// `[metrics]`: the database figures of `/metrics` (cached) and its key.
    pub metrics: MetricsConfig,
    /// `[audit]`: reads of the log written to the chain.
    pub audit: AuditConfig,
    /// `[inputs]`: syslog listeners.
    pub inputs: InputsConfig,
    /// `[[forwarders]]`: committed events pushed to SIEMs.
    pub forwarders: Vec<ForwarderConfig>,
    /// `[reports]`: SLAs and privileged users of the security report.
    pub reports: ReportsConfig,
    /// `[enrich]`: GeoIP and ASN databases applied to events with an `ip`.
    pub enrich: EnrichConfig,
    /// `[[lists]]`: threat-intel and reference lists (event `ip` hits, rule queries).
    pub lists: Vec<ListConfig>,
    /// `[cluster]`: cluster mode (off by default).
    pub cluster: ClusterConfig,
    /// The server clock (tests replace it with a manual one).
    #[serde(skip)]
    pub clock: crate::clock::Clock,
}

/// `[ingest]` section: how much request body the server holds at once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Request-body bytes all requests together may hold while they are read, parsed and
    /// stored; past it a request is answered 503 with Retry-After (nothing stored). Counted
    /// as bytes arrive, so a stalled body holds only what it sent.
    pub max_inflight_bytes: usize,
    /// A request body must arrive within this many seconds of its first byte being awaited
    /// (408 past it), so slow or stalled bodies cannot hold memory or a budget.
    pub body_timeout_secs: u64,
    /// Most events in one request (at most 100 000; 413-like 400 past it, naming the limit).
    /// A batch is stored atomically, so all its parsed events are held at once (about
    /// 4-6 KiB each): this bounds the memory of one request whatever the body's shape.
    pub max_events_per_request: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self { max_inflight_bytes: 32 * 1024 * 1024, body_timeout_secs: 30, max_events_per_request: 20_000 }
    }
}

/// `[auth]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Invalid keys one client address may present in a minute; past it, its requests with
    /// a bad key get 429 (valid keys are never throttled; no key at all stays 401). 0 turns
    /// the throttle off.
    pub failures_per_minute: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { failures_per_minute: 30 }
    }
}

/// `[log]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (one human-readable line per record) or `json` (one JSON object per line, for
    /// log shippers) [env: VIGIL_LOG_FORMAT]. The level filter is `VIGIL_LOG`.
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: "text".into() }
    }
}

/// `[rules]` section: sandbox limits (named, with defaults), state bounds, and
/// `[rules.config.<name>]` tables handed to each rule's init as JSON.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Largest accepted module, bytes.
    pub max_module_bytes: usize,
    /// Linear memory cap per rule instance, MiB.
    pub memory_limit_mb: usize,
    /// Wall-clock budget of a rule's init (at deploy and after a fault), ms; past it the
    /// call is interrupted and the module refused or the fault counted.
    pub call_deadline_ms: u64,
    /// Wall-clock budget of one rule over one detection batch: this base...
    pub batch_budget_base_ms: u64,
    /// ...plus this allowance per event offered to the rule, microseconds. Counted across
    /// every call the batch takes, however the rule sizes its verdict array.
    pub batch_budget_per_event_us: u64,
    /// A rule's strikes are forgiven after this long without a fault, seconds.
    pub fault_decay_secs: u64,
    /// Alerts one rule may emit per minute (token bucket, burst of the same size); the
    /// excess is dropped, counted and reported once as a P3 "alert flood" alert.
    pub alerts_per_minute: u32,
    /// Log lines one rule may write per minute (token bucket); the excess is dropped and counted.
    pub log_lines_per_minute: u32,
    /// Period of the epoch ticker that enforces the deadline, ms.
    pub epoch_tick_ms: u64,
    /// Faults of one deployment before the rule is quarantined.
    pub max_faults: u64,
    /// Most rules loaded at once (sizes the instance pool).
    pub max_rules: u32,
    /// Most state entries per rule.
    pub state_max_keys: usize,
    /// Approximate state bytes per rule, MiB.
    pub state_max_mb: usize,
    /// How often the rules directory is polled, ms.
    pub watch_interval_ms: u64,
    /// Rebuild rule state from stored events at start.
    pub replay_on_start: bool,
    /// Committed batches queued for detection; when full, ingest does not wait: detection
    /// reads the skipped events back from the store.
    pub detection_queue_batches: usize,
    /// Most committed events queued for detection (the same skip-and-read-back when full).
    pub detection_queue_events: usize,
    /// Most bytes of committed events queued for detection, MiB.
    pub detection_queue_mb: usize,
    /// Per-rule configuration, e.g. `[rules.config.brute_force] short_threshold = 5`.
    pub config: std::collections::HashMap<String, toml::Table>,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            max_module_bytes: 8 << 20,
            memory_limit_mb: 64,
            call_deadline_ms: 200,
            batch_budget_base_ms: 200,
            batch_budget_per_event_us: 100,
            fault_decay_secs: 600,
            alerts_per_minute: 600,
            log_lines_per_minute: 60,
            epoch_tick_ms: 10,
            max_faults: 3,
            max_rules: 64,
            state_max_keys: 100_000,
            state_max_mb: 64,
            watch_interval_ms: 250,
            replay_on_start: true,
            detection_queue_batches: 1024,
            detection_queue_events: 16_384,
            detection_queue_mb: 16,
            config: Default::default(),
        }
    }
}

/// `[store]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Most events written in one group-commit transaction.
    pub max_group_events: usize,
    /// Signed checkpoint every this many events...
    pub checkpoint_every_events: i64,
    /// ... and no committed event stays unsigned longer than this many seconds.
    pub checkpoint_every_secs: u64,
}

/// `[integrity]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntegrityConfig {
    /// The anchor file (default `<data_dir>/anchor.json`).
    pub anchor_path: Option<PathBuf>,
    /// More files each new anchor is written to (another disk, a mounted share).
    pub witness_paths: Vec<PathBuf>,
    /// URL each new anchor is POSTed to (JSON), best effort.
    pub witness_url: Option<String>,
    /// How often the retention job looks for a range to purge, seconds.
    pub retention_check_secs: u64,
    /// A `GET /v1/integrity/verify` covering more events than this runs only while no
    /// other such verification does (429 with `Retry-After` otherwise); 0: every one.
    pub exclusive_verify_events: i64,
}

impl Default for IntegrityConfig {
    fn default() -> Self {
        Self {
            anchor_path: None,
            witness_paths: Vec::new(),
            witness_url: None,
            retention_check_secs: 3600,
            exclusive_verify_events: 100_000,
        }
    }
}

/// Shortest accepted `VIGIL_ADMIN_KEY`.
pub const MIN_ADMIN_KEY_LEN: usize = 24;

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid default address"),
            database_url: "sqlite://data/vigil.db".into(),
            rules_dir: None,
            data_dir: PathBuf::from("data"),
            retention_days: 90,
            retention: RetentionConfig::default(),
            body_limit_bytes: 10 * 1024 * 1024,
            workers: 0,
            admin_key: None,
            store: StoreConfig::default(),
            integrity: IntegrityConfig::default(),
            rules: RulesConfig::default(),
            alerts: AlertsConfig::default(),
            decisions: DecisionsConfig::default(),
            routing: RoutingConfig::default(),
            outbox: OutboxConfig::default(),
            breaker: BreakerConfig::default(),
            receivers: Vec::new(),
            escalation: Vec::new(),
            log: LogConfig::default(),
            ingest: IngestConfig::default(),
            auth: AuthConfig::default(),
            metrics: MetricsConfig::default(),
            audit: AuditConfig::default(),
            inputs: InputsConfig::default(),
            forwarders: Vec::new(),
            reports: ReportsConfig::default(),
            enrich: EnrichConfig::default(),
            lists: Vec::new(),
            cluster: ClusterConfig::default(),
            clock: crate::clock::Clock::system(),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { max_group_events: 5000, checkpoint_every_events: 10_000, checkpoint_every_secs: 10 }
    }
}

/// Values given on the command line (they beat the environment and the file).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--rules-dir`.
    pub rules_dir: Option<PathBuf>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
}

impl Config {
    /// File (if any), then environment, then flags.
    pub fn load(flags: Overrides) -> Result<Self, ConfigError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let path = flags.config.clone().or_else(|| env("VIGIL_CONFIG").map(PathBuf::from));
        let mut config = match &path {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        if let Some(listen) = env("VIGIL_LISTEN") {
            config.listen =
                listen.parse().map_err(|e| ConfigError::Invalid { key: "VIGIL_LISTEN", message: format!("{e}") })?;
        }
        if let Some(url) = env("VIGIL_DATABASE_URL") {
            config.database_url = url;
        }
        if let Some(dir) = env("VIGIL_RULES_DIR") {
            config.rules_dir = Some(dir.into());
        }
        if let Some(dir) = env("VIGIL_DATA_DIR") {
            config.data_dir = dir.into();
        }
        if let Some(days) = env("VIGIL_RETENTION_DAYS") {
            config.retention_days = days
                .parse()
                .map_err(|e| ConfigError::Invalid { key: "VIGIL_RETENTION_DAYS", message: format!("{e}") })?;
            // The environment beats the file, whichever name the file used.
            config.retention.hot_days = None;
        }
        config.admin_key = env("VIGIL_ADMIN_KEY");
        if let Some(format) = env("VIGIL_LOG_FORMAT") {
            config.log.format = format;
        }
        if let Some(listen) = flags.listen {
            config.listen = listen;
        }
        if let Some(url) = flags.database_url {
            config.database_url = url;
        }
        if let Some(dir) = flags.rules_dir {
            config.rules_dir = Some(dir);
        }
        if let Some(dir) = flags.data_dir {
            config.data_dir = dir;
        }
        config.validate()?;
        Ok(config)
    }

    /// Reads a TOML file (unknown keys are errors).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        retention::check_both_names(&text).map_err(|message| ConfigError::Parse { path: path.into(), message })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.into(), message: toml_error(&text, &e) })
    }

    /// Range checks.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(ConfigError::Invalid { key: "log.format", message: "must be \"text\" or \"json\"".into() });
        }
        if self.body_limit_bytes < 1024 {
            return Err(ConfigError::Invalid { key: "body_limit_bytes", message: "must be at least 1024".into() });
        }
        if self.ingest.max_inflight_bytes < self.body_limit_bytes {
            return Err(ConfigError::Invalid {
                key: "ingest.max_inflight_bytes",
                message: format!(
                    "must be at least body_limit_bytes ({}), or no request of the largest size could be read",
                    self.body_limit_bytes
                ),
            });
        }
        if !(1..=100_000).contains(&self.ingest.max_events_per_request) {
            return Err(ConfigError::Invalid {
                key: "ingest.max_events_per_request",
                message: "must be between 1 and 100000".into(),
            });
        }
        if self.ingest.body_timeout_secs == 0 {
            return Err(ConfigError::Invalid { key: "ingest.body_timeout_secs", message: "must be positive".into() });
        }
        if let Some(key) = &self.admin_key
            && key.chars().count() < MIN_ADMIN_KEY_LEN
        {
            return Err(ConfigError::Invalid {
                key: "VIGIL_ADMIN_KEY",
                message: format!(
                    "must be at least {MIN_ADMIN_KEY_LEN} characters (generate one with `openssl rand -hex 24`)"
                ),
            });
        }
        if self.store.checkpoint_every_secs == 0 || self.integrity.retention_check_secs == 0 {
            return Err(ConfigError::Invalid {
                key: "store.checkpoint_every_secs",
                message: "checkpoint_every_secs and integrity.retention_check_secs must be positive".into(),
            });
        }
        if self.store.max_group_events == 0 {
            return Err(ConfigError::Invalid { key: "store.max_group_events", message: "must be positive".into() });
        }
        if self.store.checkpoint_every_events <= 0 {
            return Err(ConfigError::Invalid {
                key: "store.checkpoint_every_events",
                message: "must be positive".into(),
            });
        }
        let r = &self.rules;
        if r.epoch_tick_ms == 0 || r.call_deadline_ms < r.epoch_tick_ms {
            return Err(ConfigError::Invalid {
                key: "rules.call_deadline_ms",
                message: "must be at least one epoch tick".into(),
            });
        }
        if !(1..=4096).contains(&r.memory_limit_mb)
            || r.max_rules == 0
            || r.max_faults == 0
            || r.detection_queue_batches == 0
        {
            return Err(ConfigError::Invalid {
                key: "rules",
                message: "memory_limit_mb, max_rules, max_faults and detection_queue_batches must be positive".into(),
            });
        }
        self.validate_alerting()?;
        self.validate_inputs()?;
        self.validate_forwarders()?;
        self.validate_reports()?;
        self.validate_enrich()?;
        self.validate_retention()?;
        self.validate_cluster()?;
        self.validate_ops()
    }
}

/// A TOML error as line, column and what was wrong, without the excerpt of the file that
/// `toml`'s own message quotes: that line may hold a secret under a mistyped key (a
/// `secret_access_key` spelled differently), and the error is printed and logged.
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {}", e.message().trim_end())
        }
        None => e.message().trim_end().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parse_error_names_the_line_without_quoting_it() {
        let dir = std::env::temp_dir().join(format!("vigil-toml-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("vigil.toml");
        let secret = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY";
        std::fs::write(
            &path,
            format!(
                "[retention]\nhot_days = 30\n[retention.archive]\ns3_bucket = \"b-1\"\naws_secret_key = \"{secret}\"\n"
            ),
        )
        .unwrap();
        let message = Config::from_file(&path).unwrap_err().to_string();
        assert!(!message.contains(secret), "{message}");
        assert!(message.contains("line 5") && message.contains("aws_secret_key"), "{message}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_reference_config_parses_and_unknown_keys_are_refused() {
        let reference = include_str!("../../vigil.example.toml");
        let config: Config = toml::from_str(reference).expect("vigil.example.toml parses");
        config.validate().unwrap();
        let err = toml::from_str::<Config>("listen = \"127.0.0.1:1\"\nlisten_port = 5").unwrap_err();
        assert!(err.to_string().contains("listen_port"), "{err}");
    }

    #[test]
    fn a_bad_allowlist_entry_or_decision_mode_stops_the_start_with_a_message() {
        let ok = "[decisions]\nmode = \"simulate\"\n[decisions.rules.brute_force]\nmode = \"enforce\"\n\
                  [[decisions.allow]]\nscope = \"ip\"\nvalue = \"::ffff:10.0.0.0/104\"\nreason = \"office\"\n";
        let config: Config = toml::from_str(ok).unwrap();
        config.validate().unwrap();
        assert_eq!(config.decisions.mode_for("brute_force"), DecisionMode::Enforce);
        assert_eq!(config.decisions.mode_for("other"), DecisionMode::Simulate);
        for (bad, why) in [
            ("[[decisions.allow]]\nscope = \"ip\"\nvalue = \"10.0.0.0/33\"\nreason = \"x\"\n", "prefix length"),
            ("[[decisions.allow]]\nscope = \"ip\"\nvalue = \"office\"\nreason = \"x\"\n", "not an IP address"),
            ("[[decisions.allow]]\nscope = \"host\"\nvalue = \"a\"\nreason = \"x\"\n", "unknown scope"),
            ("[[decisions.allow]]\nscope = \"user\"\nvalue = \"a\"\nreason = \"\"\n", "reason"),
        ] {
            let config: Config = toml::from_str(bad).unwrap();
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains("decisions.allow") && err.contains("entry 1") && err.contains(why), "{err}");
        }
        for bad in [
            "[decisions]\nmode = \"dry-run\"\n",
            "[decisions.rules.brute_force]\nmode = \"off\"\n",
            "[[decisions.allow]]\nscope = \"ip\"\nvalue = \"10.0.0.1\"\n",
            "[[decisions.allow]]\nscope = \"ip\"\nvalue = \"10.0.0.1\"\nreason = \"x\"\nexpires = 1\n",
        ] {
            assert!(toml::from_str::<Config>(bad).is_err(), "{bad}");
        }
    }
}
