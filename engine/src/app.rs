//! Assembles the running server from a `Config`: opens the store (migrating it), takes the
//! log's writer lock, loads the server's own secrets from `data_dir` (refusing to replace
//! one the database depends on), compares the database with the anchor, bootstraps the
//! first admin key, starts the `Sequencer`, the services (alerts, decisions, outbox, the
//! writer of `writer.rs`, the scheduled reports), detection and the retention job, and
//! binds the actix-web server.
//! The composition root (L7): the only module that wires the others together. Used by
//! `vigil serve` and by the tests (which bind port 0).

mod cluster;
mod detection;
mod writer;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use serde_json::json;

use crate::alerts::AlertService;
use crate::api::{self, AppState};
use crate::auth::{KeyRing, Role, generate_key};
use crate::config::Config;
use crate::deploy::RuleJournal;
use crate::deploy::watch::RulesDir;
use crate::detect::pipeline::{Pipeline, PipelineStats};
use crate::detect::replay;
use crate::event::system_event;
use crate::ingest::Masker;
use crate::ledger::IntegrityStatus;
use crate::ledger::access::AccessLog;
use crate::ledger::anchor::Anchor;
use crate::ledger::keys::{CheckpointKeys, LogFacts};
use crate::ledger::lock::WriterLock;
use crate::ledger::retention::Retention;
use crate::ledger::sequencer::{Sequencer, SequencerConfig};
use crate::report::schedule::ReportScheduler;
use crate::route::Outbox;
use crate::store::Store;
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
    /// The log's writer lock, held until the server stops.
    pub writer_lock: Arc<std::sync::Mutex<Option<WriterLock>>>,
    /// The syslog listeners (their bound addresses; tests bind port 0).
    pub inputs: Arc<crate::inputs::Inputs>,
    /// The scheduled reports (`[[reports.schedule]]`).
    pub reports: Arc<ReportScheduler>,
}

impl RunningServer {
    /// Graceful stop: stops taking requests, writes the open log-access windows, signs the
    /// head, releases the writer lock.
    pub async fn shutdown(&self) {
        self.inputs.stop();
        self.state.enricher.stop();
        self.state.forwarders.stop();
        self.state.outbox.stop();
        self.reports.stop();
        self.state.retention.stop().await;
        self.handle.stop(true).await;
        match self.state.access.flush_all().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "Log access records written at shutdown"),
            Err(e) => tracing::error!(error = %e, "Could not write the log access records at shutdown"),
        }
        match self.state.sequencer.checkpoint_now().await {
            Ok(Some(cp)) => tracing::info!(seq = cp.seq, checkpoint = cp.id, "Head signed at shutdown"),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "Could not sign the head at shutdown"),
        }
        self.state.sequencer.halt().await;
        if let Some(member) = &self.state.cluster {
            member.leave().await;
        }
        self.writer_lock.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// What `kill -9` leaves: stops without signing or flushing anything, and lets the
    /// lock go as the kernel would (tests start a new server on the same log after it).
    pub async fn crash(&self) {
        self.inputs.stop();
        self.state.enricher.stop();
        self.state.forwarders.stop();
        self.state.outbox.stop();
        self.reports.stop();
        self.state.retention.stop().await;
        self.handle.stop(false).await;
        self.state.sequencer.halt().await;
        if let Some(member) = &self.state.cluster {
            member.crash().await;
        }
        self.writer_lock.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

/// Starts everything; returns once the socket is bound.
// Long by design: the start-up order is the contract (store, lock, keys, anchor, rules,
// sequencer, services, HTTP), and one function reads it top to bottom.
pub async fn start(config: Config) -> anyhow::Result<RunningServer> {
    install_tls();
    let config = Arc::new(config);
    let store = Store::open(&config.database_url).await?;
    tracing::info!(backend = store.backend(), "Store opened and migrated");
    let integrity = Arc::new(IntegrityStatus::default());
    // Cluster mode: partition leases with fencing replace the one-writer lock (docs/cluster.md).
    let cluster_on = config.cluster.enabled();
    let writer_lock = if cluster_on {
        WriterLock::Memory
    } else {
        crate::ledger::lock::acquire(&config.database_url, integrity.clone()).await?
    };
    let head_at_start = store.head().await?.seq;
    let last_checkpoint = store.last_checkpoint().await?;
    let facts = LogFacts {
        events: head_at_start,
        has_signed_checkpoints: last_checkpoint.as_ref().is_some_and(|c| c.key_id.starts_with("ed25519:")),
    };
    let secrets = crate::ledger::keys::load(&config.data_dir, facts)?;
    let checkpoint_keys = Arc::new(secrets.checkpoints.clone());
    let anchor = Anchor::new(
        config.integrity.anchor_path.clone().unwrap_or_else(|| config.data_dir.join("anchor.json")),
        config.integrity.witness_paths.clone(),
        config.integrity.witness_url.clone(),
    );
    let anchor_failures = if cluster_on {
        // The partitions' writers move between nodes: a node's anchor file is not the log's.
        Vec::new()
    } else {
        compare_with_anchor(&store, &anchor, &checkpoint_keys, last_checkpoint.as_ref()).await?
    };
    // The active decisions and the allowlist, shared by the rules' gate and the decisions.
    let allowlist = crate::respond::Allowlist::with_config(&config.decisions.allow, config.clock.now_ms())
        .map_err(|message| crate::config::ConfigError::Invalid { key: "decisions.allow", message })?;
    let guardrails = crate::respond::Guardrails { set: Default::default(), allowlist: Arc::new(allowlist) };
    // GeoIP/ASN databases and lists: used by ingest and asked by rules.
    let enricher = Arc::new(crate::ingest::Enricher::load(&config).map_err(anyhow::Error::msg)?);
    let registry = Arc::new(crate::deploy::build_registry_with_lists(
        &config,
        Some((config.data_dir.join("rule-artifacts"), secrets.artifact.clone())),
        guardrails.clone(),
        Some(enricher.clone()),
    )?);
    let (committed_tx, committed_rx) = tokio::sync::mpsc::channel(config.rules.detection_queue_batches);
    let handoff = Arc::new(crate::ledger::handoff::Handoff::new(
        config.rules.detection_queue_events as u64,
        (config.rules.detection_queue_mb as u64) << 20,
    ));
    if !anchor_failures.is_empty() {
        tracing::error!(
            failures = anchor_failures.len(),
            first = ?anchor_failures[0],
            "The database does not match its anchor; client writes are refused until an operator accepts"
        );
        integrity.set_hold(anchor_failures.clone(), config.clock.now_ms());
    }
    let security = Arc::new(crate::telemetry::SecurityCounters::default());
    let (sequencer, cluster, cluster_ingest) = if cluster_on {
        let (sequencer, member, ingest) =
            cluster::start(&config, &store, &checkpoint_keys, &security, &secrets.mask).await?;
        // Detection reads the partitions from their cursors (app/detection.rs), not this queue.
        drop(committed_tx);
        (sequencer, Some(member), Some(ingest))
    } else {
        let writer = SequencerConfig {
            max_group_events: config.store.max_group_events,
            checkpoint_every_events: config.store.checkpoint_every_events,
            checkpoint_every: Duration::from_secs(config.store.checkpoint_every_secs),
            keys: (*checkpoint_keys).clone(),
            anchor: Some(anchor),
            status: integrity.clone(),
            clock: config.clock.clone(),
            security: security.clone(),
        };
        (Sequencer::start(store.clone(), writer, Some(committed_tx), handoff.clone()).await?, None, None)
    };
    if !anchor_failures.is_empty() {
        sequencer
            .submit(vec![system_event(
                "system",
                "integrity_failure",
                "vigil",
                json!({"found_at": "start", "failures": anchor_failures}),
            )])
            .await?;
    }
    // Stored rules, then rules from the directory, are active before detection starts, so
    // replay covers them.
    let rule_journal = RuleJournal::new(store.clone(), sequencer.clone());
    let (active, quarantined) = crate::deploy::restore(&store, &registry).await?;
    tracing::info!(active, quarantined, "Stored rules restored");
    if let Some(dir) = &config.rules_dir {
        let mut watcher = RulesDir::new(dir.clone(), registry.clone(), rule_journal.clone());
        let loaded = watcher.scan().await;
        tracing::info!(dir = %dir.display(), loaded, "Rules directory loaded");
        watcher.spawn(Duration::from_millis(config.rules.watch_interval_ms));
    }
    if cluster_on {
        // Deploys, deletes and quarantines made on other nodes reach this node's registry
        // (and so the holder of each rule's detection slot) through the shared `rules` table.
        crate::deploy::follow::RuleFollower::new(rule_journal.clone(), registry.clone())
            .await
            .spawn(Duration::from_secs(1));
    }
    for warning in config.unreachable_receiver_warnings() {
        tracing::warn!("{warning}");
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
        AlertService::new(store.clone(), sequencer.clone(), config.clock.clone(), config.alerts.clone(), router)
            .with_security_counters(security.clone());
    if !anchor_failures.is_empty()
        && let Err(e) = alerts.record_integrity_failure(&anchor_failures).await
    {
        tracing::error!(error = %e, "Could not raise the integrity alert");
    }
    spawn_hold_watch(integrity.clone(), alerts.clone(), sequencer.clone(), anchor_failures.len());
    let written = alerts.chain_pending().await?;
    if written > 0 {
        tracing::info!(changes = written, "Alert history written to the chain after a restart");
    }
    // Decisions: the active set the rules' gate counts, rebuilt from the store.
    let decisions = crate::respond::DecisionService::new(
        store.clone(),
        sequencer.clone(),
        config.clock.clone(),
        config.decisions.clone(),
        guardrails,
        alerts.clone(),
    );
    let written = decisions.chain_pending().await?;
    let active = decisions.load().await?;
    let lifted = decisions.lift_allowlisted().await?;
    if lifted > 0 {
        tracing::warn!(lifted, "Active decisions on allowlisted values lifted at start");
    }
    tracing::info!(active, chained_after_restart = written, mode = config.decisions.mode.as_str(), "Decisions loaded");
    decisions.clone().spawn_expiry(Duration::from_millis(250));
    // Cluster mode: the reports count every partition's events (the views over all of them).
    let report_store = match &cluster {
        Some(member) => member.all_partitions().await?,
        None => store.clone(),
    };
    let reports = Arc::new(ReportScheduler::new(&config, report_store, integrity.clone(), outbox_wake.clone()));
    if let Some(ingest) = &cluster_ingest {
        cluster::push_decisions(ingest, &decisions).await;
        decisions.clone().spawn_follow(Duration::from_millis(250));
    }
    let outbox =
        Arc::new(Outbox::new(&config, store.clone(), receivers, outbox_wake, route_stats, Some(registry.clone()))?);
    outbox.clone().spawn(alerts.clone());
    reports.clone().spawn(Duration::from_secs(1));
    writer::spawn_writer(alerts.clone(), rule_journal.clone(), decisions.clone(), results_rx);
    let (replay_store, runtime, replay) =
        (store.clone(), tokio::runtime::Handle::current(), config.rules.replay_on_start);
    if replay && head_at_start > 0 {
        // An upper bound until the replay has found where its window starts.
        detection.replay_pending.store(head_at_start as u64, std::sync::atomic::Ordering::Relaxed);
    }
    if let Some(member) = &cluster {
        // Cluster mode: each node runs the rules of the detection slots it holds over every partition.
        drop((committed_rx, results_tx));
        detection::ClusterDetection {
            member: member.clone(),
            registry: registry.clone(),
            alerts: alerts.clone(),
            journal: rule_journal.clone(),
            decisions: decisions.clone(),
            stats: detection.clone(),
            replay,
            runtime,
            base_schema: Default::default(),
        }
        .spawn()?;
    } else {
        let pipeline = Pipeline {
            registry: registry.clone(),
            committed: committed_rx,
            results: results_tx,
            stats: detection.clone(),
            store: store.clone(),
            runtime: tokio::runtime::Handle::current(),
            handoff: handoff.clone(),
        };
        let stats = detection.clone();
        pipeline.spawn(move |evaluator| {
            let window = evaluator.longest_window_ms();
            let pending = &stats.replay_pending;
            if !(replay && window > 0) {
                pending.store(0, std::sync::atomic::Ordering::Relaxed);
            } else {
                match runtime.block_on(replay::rebuild_state(&replay_store, evaluator, head_at_start, window, pending))
                {
                    Ok(n) => tracing::info!(events = n, window_ms = window, "Rule state rebuilt from stored events"),
                    Err(e) => tracing::error!(error = %e, "Rule state replay failed; rules start with empty state"),
                }
            }
        })?;
    }
    let archive_counters = Arc::new(crate::telemetry::ArchiveCounters::default());
    let mut retention = Retention::new(store.clone(), sequencer.clone(), config.clock.clone(), config.hot_days());
    if let Some(archive) = &config.retention.archive {
        tracing::info!(archive = %archive.describe(), "Retention archives each range before it is purged");
        retention = retention.with_archive(crate::ledger::retention::ArchiveSettings {
            config: archive.clone(),
            keys: checkpoint_keys.verifier().clone(),
            staging: config.data_dir.join("archive-staging"),
            counters: archive_counters.clone(),
        });
    }
    if !cluster_on {
        retention.clone().spawn(Duration::from_secs(config.integrity.retention_check_secs));
    } else if config.hot_days() > 0 || config.retention.archive.is_some() {
        // Cluster mode: retention per partition is not built yet (docs/cluster.md); say so
        // rather than keep everything silently.
        tracing::warn!(
            hot_days = config.hot_days(),
            "Cluster mode: retention and the archive are not run yet; every partition keeps all its events"
        );
    }
    let keys = KeyRing::load(store.clone()).await?;
    keys.set_failure_limit(config.auth.failures_per_minute);
    if cluster_on {
        // A key created or revoked through another node counts here within a second.
        let keys = keys.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if let Err(e) = keys.reload().await {
                    tracing::warn!(error = %e, "Could not re-read the API keys");
                }
            }
        });
    }
    let access = AccessLog::new(
        sequencer.clone(),
        store.clone(),
        handoff.clone(),
        Duration::from_secs(config.audit.access_window_secs),
    );
    access.clone().spawn(Duration::from_millis(config.audit.access_flush_ms));
    let generated_admin_key = bootstrap_admin(&config, &keys, &sequencer).await?;
    // Cluster mode: forwarders send from the shared cursor on detection slot 0's holder only.
    if cluster_on && !config.forwarders.is_empty() {
        // Per-partition forwarder cursors are not built yet (docs/cluster.md); say so rather
        // than leave the other partitions' events out silently.
        tracing::warn!(
            forwarders = config.forwarders.len(),
            "Cluster mode: forwarders send partition 0's events only; the other partitions' events are not forwarded yet"
        );
    }
    let gate =
        cluster.clone().map(|member| -> crate::forward::Gate { Arc::new(move || member.detection_fence().is_some()) });
    let forwarders = Arc::new(crate::forward::Forwarders::start_gated(&config, store.clone(), gate)?);
    enricher.start_reload(Duration::from_secs(config.enrich.reload_secs));
    let state = AppState {
        config: config.clone(),
        store,
        sequencer,
        masker: Arc::new(Masker::new(&secrets.mask)),
        enricher: enricher.clone(),
        keys,
        metrics: Arc::new(Metrics { security: security.clone(), archive: archive_counters, ..Metrics::default() }),
        checkpoint_keys,
        integrity,
        retention,
        rules: registry,
        rule_journal,
        detection,
        alerts,
        decisions,
        outbox,
        handoff,
        inflight: Arc::new(api::guard::InflightBudget::new(config.ingest.max_inflight_bytes)),
        ops: Arc::new(api::ops::OpsState::new(&config)),
        access,
        forwarders,
        cluster,
        cluster_ingest,
    };
    let inputs = Arc::new(
        crate::inputs::Inputs::start(
            &config,
            state.sequencer.clone(),
            state.masker.clone(),
            state.enricher.clone(),
            state.metrics.clone(),
        )
        .await?,
    );
    let listener = TcpListener::bind(config.listen)?;
    let addr = listener.local_addr()?;
    let workers =
        if config.workers == 0 { std::thread::available_parallelism().map_or(2, |n| n.get()) } else { config.workers };
    let data = web::Data::new(state.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap(actix_web::middleware::from_fn(api::guard::authenticate_first))
            .wrap(actix_web::middleware::from_fn(api::refuse_nul))
            .configure(api::configure)
    })
    .workers(workers)
    // `vigil serve` handles the signals (it signs the head before exiting).
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    tracing::info!(%addr, workers, "Vigil is listening");
    let writer_lock = Arc::new(std::sync::Mutex::new(Some(writer_lock)));
    Ok(RunningServer { addr, handle, task, generated_admin_key, state, writer_lock, inputs, reports })
}

/// Installs the process's TLS crypto provider (ring) for HTTPS receivers, SMTP STARTTLS
/// and the CLI's HTTP client. Idempotent; call before building any HTTP client.
pub fn install_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Makes sure an admin key exists: `VIGIL_ADMIN_KEY` when given (added if not yet stored),
/// else a generated one when no admin key exists at all (returned to be printed once).
async fn bootstrap_admin(
    config: &Config,
    keys: &KeyRing,
    sequencer: &crate::ledger::sequencer::SequencerHandle,
) -> anyhow::Result<Option<String>> {
    if let Some(key) = &config.admin_key
        && !keys.contains(key)
        && keys.was_revoked(key).await?
    {
        tracing::warn!(
            "VIGIL_ADMIN_KEY holds a key that was revoked; it stays revoked (unset it, or set a new key to \
             bootstrap a new admin)"
        );
        return Ok(None);
    }
    let (id, secret, generated) = match &config.admin_key {
        // The id is random: nothing about the key can be learnt from it.
        Some(key) if !keys.contains(key) => (format!("k_env_{}", &generate_key().0[2..]), key.clone(), false),
        None if !keys.has_admin() => {
            let (id, secret) = generate_key();
            (id, secret, true)
        }
        _ => return Ok(None),
    };
    sequencer
        .submit(vec![system_event(
            "api_key_management",
            "api_key_created",
            "vigil",
            json!({"key_id": id, "name": "bootstrap admin", "role": "admin"}),
        )])
        .await?;
    keys.insert(&id, "bootstrap admin", Role::Admin, &secret).await?;
    tracing::info!(key_id = %id, "Bootstrap admin key created");
    Ok(generated.then_some(secret))
}

/// Compares the database with the newest valid anchor. No anchor yet (first start, or a
/// database from before anchors) with checkpoints in the database: the newest one is
/// anchored now, with a warning.
async fn compare_with_anchor(
    store: &Store,
    anchor: &Anchor,
    keys: &CheckpointKeys,
    last: Option<&crate::store::Checkpoint>,
) -> anyhow::Result<Vec<crate::ledger::chain::Failure>> {
    let (anchored, problems) = anchor.read(keys.verifier());
    for p in &problems {
        tracing::error!(problem = %p, "An anchor file could not be trusted");
    }
    match anchored {
        Some(cp) => Ok(crate::ledger::anchor::check(store, &cp).await?),
        None => {
            if let Some(last) = last {
                if !problems.is_empty() {
                    anyhow::bail!(
                        "the anchor {} cannot be trusted ({}); restore it or remove it to re-anchor on the database",
                        anchor.path().display(),
                        problems.join("; ")
                    );
                }
                tracing::warn!(path = %anchor.path().display(), checkpoint = last.id, "No anchor file yet; anchoring the newest checkpoint");
                anchor.write(last).await?;
            }
            Ok(Vec::new())
        }
    }
}

/// Raises a P1 alert when the log goes on hold while running (the sequencer found the
/// database moved under it, or the writer lock was lost).
fn spawn_hold_watch(
    status: Arc<IntegrityStatus>,
    alerts: AlertService,
    sequencer: crate::ledger::sequencer::SequencerHandle,
    already: usize,
) {
    tokio::spawn(async move {
        let mut reported = already;
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let Some(hold) = status.hold() else {
                reported = 0;
                continue;
            };
            if hold.failures.len() > reported {
                let new = hold.failures[reported..].to_vec();
                reported = hold.failures.len();
                let record = system_event(
                    "system",
                    "integrity_failure",
                    "vigil",
                    json!({"found_at": "runtime", "failures": new}),
                );
                if let Err(e) = sequencer.submit(vec![record]).await {
                    tracing::error!(error = %e, "Could not record the integrity failure in the chain");
                }
                if let Err(e) = alerts.record_integrity_failure(&new).await {
                    tracing::error!(error = %e, "Could not raise the integrity alert");
                }
            }
        }
    });
}
