//! Assembles the running server from a `Config`: opens the store (migrating it), loads the
//! server's own secrets from `data_dir`, bootstraps the first admin key, starts the
//! `Sequencer`, and binds the actix-web server. Used by `vigil serve` and by the tests
//! (which bind port 0).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use serde_json::json;

use crate::alerts::AlertService;
use crate::api::{self, AppState};
use crate::auth::{KeyRing, Role, generate_key, hash_key};
use crate::config::Config;
use crate::detect::pipeline::{Pipeline, PipelineStats};
use crate::detect::replay;
use crate::event::system_event;
use crate::ingest::Masker;
use crate::route::Outbox;
use crate::rules::RuleRegistry;
use crate::rules::journal::RuleJournal;
use crate::rules::limits::RateLimits;
use crate::rules::module::{Sandbox, SandboxLimits};
use crate::rules::registry::RegistryConfig;
use crate::rules::watch::RulesDir;
use crate::store::Store;
use crate::store::sequencer::{Sequencer, SequencerConfig};
use crate::telemetry::Metrics;

/// A started server.
pub struct RunningServer {
    /// The bound address (useful with port 0).
    pub addr: std::net::SocketAddr,
    /// Stops the server.
    pub handle: actix_web::dev::ServerHandle,
    /// Completes when the server has stopped.
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The admin key generated at first start, if one was (printed once by `vigil serve`).
    pub generated_admin_key: Option<String>,
    /// Shared state (tests use it to reach the store directly).
    pub state: AppState,
}

/// Starts everything; returns once the socket is bound.
pub async fn start(config: Config) -> anyhow::Result<RunningServer> {
    install_tls();
    let config = Arc::new(config);
    std::fs::create_dir_all(&config.data_dir)?;
    let mask_key = load_or_create_secret(&config.data_dir.join("mask.key"))?;
    let checkpoint_key = load_or_create_secret(&config.data_dir.join("checkpoint.key"))?;
    let store = Store::open(&config.database_url).await?;
    tracing::info!(backend = store.backend(), "Store opened and migrated");
    let head_at_start = store.head().await?.seq;
    let artifact_key = load_or_create_secret(&config.data_dir.join("artifact.key"))?;
    let registry = Arc::new(build_registry(&config, Some((config.data_dir.join("rule-artifacts"), artifact_key)))?);
    let (committed_tx, committed_rx) = tokio::sync::mpsc::channel(config.rules.detection_queue_batches);
    let handoff = Arc::new(crate::store::sequencer::Handoff::new(
        config.rules.detection_queue_events as u64,
        (config.rules.detection_queue_mb as u64) << 20,
    ));
    let sequencer = Sequencer::start(
        store.clone(),
        SequencerConfig {
            max_group_events: config.store.max_group_events,
            checkpoint_every_events: config.store.checkpoint_every_events,
            checkpoint_every: Duration::from_secs(config.store.checkpoint_every_secs),
            checkpoint_key: checkpoint_key.clone(),
        },
        Some(committed_tx),
        handoff.clone(),
    )
    .await?;
    // Stored rules, then rules from the directory, are active before detection starts, so
    // replay covers them.
    let rule_journal = RuleJournal::new(store.clone(), sequencer.clone());
    let (active, quarantined) = crate::rules::journal::restore(&store, &registry).await?;
    tracing::info!(active, quarantined, "Stored rules restored");
    if let Some(dir) = &config.rules_dir {
        let mut watcher = RulesDir::new(dir.clone(), registry.clone(), rule_journal.clone());
        let loaded = watcher.scan().await;
        tracing::info!(dir = %dir.display(), loaded, "Rules directory loaded");
        watcher.spawn(Duration::from_millis(config.rules.watch_interval_ms));
    }
    let detection = Arc::new(PipelineStats::default());
    detection.last_seq.store(head_at_start as u64, std::sync::atomic::Ordering::Relaxed);
    let (results_tx, results_rx) = tokio::sync::mpsc::unbounded_channel();
    // Alerting: receivers (secrets resolved now, so a missing one stops the start with a
    // message), the router the lifecycle asks, the lifecycle, and the outbox worker.
    let receivers = crate::route::build_receivers(&config)?;
    let outbox_wake = Arc::new(tokio::sync::Notify::new());
    let route_stats = Arc::new(crate::route::RouteStats::default());
    let router = Arc::new(crate::route::Router::new(
        &config,
        registry.clone(),
        receivers.clone(),
        outbox_wake.clone(),
        results_tx.clone(),
        route_stats.clone(),
    ));
    let alerts =
        AlertService::new(store.clone(), sequencer.clone(), config.clock.clone(), config.alerts.clone(), router);
    let written = alerts.chain_pending().await?;
    if written > 0 {
        tracing::info!(changes = written, "Alert history written to the chain after a restart");
    }
    let outbox = Arc::new(Outbox::new(&config, store.clone(), receivers, outbox_wake, route_stats)?);
    outbox.clone().spawn(alerts.clone());
    crate::alerts::spawn_writer(alerts.clone(), rule_journal.clone(), results_rx);
    let (replay_store, runtime, replay) =
        (store.clone(), tokio::runtime::Handle::current(), config.rules.replay_on_start);
    let pipeline = Pipeline {
        registry: registry.clone(),
        committed: committed_rx,
        results: results_tx,
        stats: detection.clone(),
        store: store.clone(),
        runtime: tokio::runtime::Handle::current(),
        handoff,
    };
    pipeline.spawn(move |evaluator| {
        let window = evaluator.longest_window_ms();
        if replay && window > 0 {
            match runtime.block_on(replay::rebuild_state(&replay_store, evaluator, head_at_start, window)) {
                Ok(n) => tracing::info!(events = n, window_ms = window, "Rule state rebuilt from stored events"),
                Err(e) => tracing::error!(error = %e, "Rule state replay failed; rules start with empty state"),
            }
        }
    })?;
    let keys = KeyRing::load(store.clone()).await?;
    let generated_admin_key = bootstrap_admin(&config, &keys, &sequencer).await?;
    let state = AppState {
        config: config.clone(),
        store,
        sequencer,
        masker: Arc::new(Masker::new(&mask_key)),
        keys,
        metrics: Arc::new(Metrics::default()),
        checkpoint_key: Arc::new(checkpoint_key),
        rules: registry,
        rule_journal,
        detection,
        alerts,
        outbox,
    };
    let listener = TcpListener::bind(config.listen)?;
    let addr = listener.local_addr()?;
    let workers =
        if config.workers == 0 { std::thread::available_parallelism().map_or(2, |n| n.get()) } else { config.workers };
    let data = web::Data::new(state.clone());
    let server = HttpServer::new(move || App::new().app_data(data.clone()).configure(api::configure))
        .workers(workers)
        .listen(listener)?
        .run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    tracing::info!(%addr, workers, "Vigil is listening");
    Ok(RunningServer { addr, handle, task, generated_admin_key, state })
}

/// Installs the process's TLS crypto provider (ring) for HTTPS receivers, SMTP STARTTLS
/// and the CLI's HTTP client. Idempotent; call before building any HTTP client.
pub fn install_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The sandbox and registry from `[rules]`.
pub fn build_registry(config: &Config, artifact_cache: Option<(PathBuf, Vec<u8>)>) -> anyhow::Result<RuleRegistry> {
    let r = &config.rules;
    let sandbox = Sandbox::new(SandboxLimits {
        max_module_bytes: r.max_module_bytes,
        memory_bytes: r.memory_limit_mb << 20,
        tick: Duration::from_millis(r.epoch_tick_ms),
        deadline_ticks: r.call_deadline_ms.div_ceil(r.epoch_tick_ms),
        max_instances: r.max_rules * 2,
        artifact_cache,
    })?;
    let rule_config = r
        .config
        .iter()
        .map(|(name, table)| Ok((name.clone(), serde_json::to_string(table)?)))
        .collect::<anyhow::Result<_>>()?;
    let state_limits = vigil_sdk::state::StateLimits {
        max_keys: r.state_max_keys,
        max_bytes: r.state_max_mb << 20,
        ..Default::default()
    };
    Ok(RuleRegistry::new(
        sandbox,
        RegistryConfig {
            max_faults: r.max_faults,
            fault_decay: Duration::from_secs(r.fault_decay_secs),
            state_limits,
            rate_limits: RateLimits {
                alerts_per_minute: r.alerts_per_minute,
                log_lines_per_minute: r.log_lines_per_minute,
            },
            batch_budget_base: Duration::from_millis(r.batch_budget_base_ms),
            batch_budget_per_event: Duration::from_micros(r.batch_budget_per_event_us),
            rule_config,
        },
    ))
}

/// Makes sure an admin key exists: `VIGIL_ADMIN_KEY` when given (added if not yet stored),
/// else a generated one when no admin key exists at all (returned to be printed once).
async fn bootstrap_admin(
    config: &Config,
    keys: &KeyRing,
    sequencer: &crate::store::sequencer::SequencerHandle,
) -> anyhow::Result<Option<String>> {
    let (id, secret, generated) = match &config.admin_key {
        Some(key) if !keys.contains(key) => {
            (format!("k_env_{}", &hex::encode(hash_key(key))[..12]), key.clone(), false)
        }
        None if !keys.has_admin() => {
            let (id, secret) = generate_key();
            (id, secret, true)
        }
        _ => return Ok(None),
    };
    keys.insert(&id, "bootstrap admin", Role::Admin, &secret).await?;
    sequencer
        .submit(vec![system_event(
            "api_key_management",
            "api_key_created",
            "vigil",
            json!({"key_id": id, "name": "bootstrap admin", "role": "admin"}),
        )])
        .await?;
    tracing::info!(key_id = %id, "Bootstrap admin key created");
    Ok(generated.then_some(secret))
}

/// Reads a 32-byte secret from `path`, creating it (mode 0600) on first start.
fn load_or_create_secret(path: &Path) -> std::io::Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() >= 32 => Ok(bytes),
        Ok(_) => Err(std::io::Error::other(format!("{} is shorter than 32 bytes", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut key = vec![0u8; 32];
            getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            std::io::Write::write_all(&mut options.open(path)?, &key)?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}
