//! Unauthenticated operational endpoints: liveness, readiness, Prometheus metrics, and the
//! JSON 404 for unknown routes; and [`OpsState`], what guards the costly ones: the cached
//! database figures of `/metrics` (never read on the writer, at most once per
//! `[metrics] cache_secs`) and the gate that runs one large verification at a time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::AppState;
use crate::api::error::ApiError;
use crate::auth::Role;

/// `GET /healthz`: the process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: the database answers and the log takes writes (not on integrity hold).
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if !state.sequencer.is_running() {
        return HttpResponse::ServiceUnavailable().json(json!({"status": "sequencer_stopped"}));
    }
    if state.integrity.on_hold() {
        return HttpResponse::ServiceUnavailable().json(
            json!({"status": "integrity_hold", "hint": "GET /v1/integrity/verify, then vigil integrity accept"}),
        );
    }
    match state.store.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ready", "backend": state.store.backend()})),
        Err(e) => {
            tracing::warn!(error = %e, "Readiness check failed");
            HttpResponse::ServiceUnavailable().json(json!({"status": "unavailable"}))
        }
    }
}

/// `GET /metrics`: Prometheus text format. Everything but the alert and notification counts
/// is in memory; those come from [`MetricsCache`] (the read pool, at most one read per
/// `[metrics] cache_secs`), so no flood of scrapes reaches the writer or the database.
/// With `[metrics] require_key`, only a key with the `read` role may scrape.
pub async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if state.config.metrics.require_key {
        state.keys.require(&req, Role::Read)?;
    }
    let figures = state.ops.metrics.figures(&state.store).await;
    let mut out = String::with_capacity(4096);
    state.metrics.render(&mut out);
    state.enricher.render(&mut out);
    // The sequencer's committed head, in memory (never a query).
    let head = state.handoff.head.load(std::sync::atomic::Ordering::Relaxed) as i64;
    crate::telemetry::gauge(&mut out, "vigil_log_head_seq", "Seq of the last stored event.", head);
    let done = state.detection.last_seq.load(std::sync::atomic::Ordering::Relaxed) as i64;
    crate::telemetry::gauge(
        &mut out,
        "vigil_detection_lag_events",
        "Stored events not yet evaluated by rules.",
        (head - done).max(0),
    );
    crate::telemetry::gauge(
        &mut out,
        "vigil_detection_replay_pending_events",
        "Stored events the rule-state replay at start has yet to evaluate; new events wait behind it.",
        state.detection.replay_pending.load(std::sync::atomic::Ordering::Relaxed) as i64,
    );
    crate::telemetry::counter(
        &mut out,
        "vigil_detection_processed_total",
        "Events evaluated by the detection pipeline.",
        state.detection.processed.load(std::sync::atomic::Ordering::Relaxed),
    );
    crate::telemetry::counter(
        &mut out,
        "vigil_detection_caught_up_total",
        "Events detection read back from the store because its queue was full.",
        state.detection.caught_up.load(std::sync::atomic::Ordering::Relaxed),
    );
    crate::telemetry::gauge(
        &mut out,
        "vigil_integrity_hold",
        "1 while the log refuses client writes after an integrity failure.",
        i64::from(state.integrity.on_hold()),
    );
    if let Some(cp) = state.integrity.last_checkpoint() {
        crate::telemetry::gauge(&mut out, "vigil_checkpoint_last_seq", "Seq of the newest signed checkpoint.", cp.seq);
        let age_ms = (state.config.clock.now_ms() - cp.created_at).max(0);
        crate::telemetry::gauge(
            &mut out,
            "vigil_checkpoint_age_seconds",
            "Seconds since the newest signed checkpoint was made.",
            format!("{:.3}", age_ms as f64 / 1000.0),
        );
    }
    crate::telemetry::gauge(
        &mut out,
        "vigil_sequencer_queue_depth",
        "Write requests waiting for the single writer.",
        state.sequencer.queue_depth(),
    );
    let queued = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    crate::telemetry::gauge(
        &mut out,
        "vigil_detection_queue_events",
        "Committed events handed to detection and not yet evaluated.",
        queued(&state.handoff.queued_events),
    );
    crate::telemetry::gauge(
        &mut out,
        "vigil_detection_queue_bytes",
        "Canonical bytes of the events in detection's queue.",
        queued(&state.handoff.queued_bytes),
    );
    crate::telemetry::gauge(
        &mut out,
        "vigil_detection_queue_events_max",
        "Most events detection's queue held at once since start (rules.detection_queue_events bounds it).",
        queued(&state.handoff.queued_events_max),
    );
    crate::telemetry::gauge(
        &mut out,
        "vigil_detection_queue_bytes_max",
        "Most canonical bytes detection's queue held at once since start (rules.detection_queue_mb bounds it).",
        queued(&state.handoff.queued_bytes_max),
    );
    crate::telemetry::gauge(
        &mut out,
        "vigil_sequencer_group_events_max",
        "Most events written in one group-commit transaction since start (store.max_group_events bounds it).",
        queued(&state.handoff.group_events_max),
    );
    let (sqlite_now, sqlite_high) = crate::store::sqlite::memory_used();
    crate::telemetry::gauge(
        &mut out,
        "vigil_sqlite_memory_bytes",
        "Heap bytes SQLite holds now, page caches included (0 when SQLite is not used).",
        sqlite_now,
    );
    crate::telemetry::gauge(
        &mut out,
        "vigil_sqlite_memory_bytes_max",
        "Most heap bytes SQLite held at once since start.",
        sqlite_high,
    );
    if let Some(member) = &state.cluster {
        render_cluster(&mut out, &member.view());
    }
    state.rules.render_metrics(&mut out);
    state.forwarders.render_metrics(&mut out);
    crate::respond::render_metrics(&mut out, state.decisions.set(), state.decisions.now());
    figures.render(&mut out);
    state.outbox.render_metrics(&mut out);
    super::guard::render_metrics(&state, &mut out);
    state.ops.render(&mut out, &state.access);
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(out))
}

/// Records a read of the log by `key_id` (an audited `log_accessed` event, see
/// `ledger::access`), with the request's query string as a sample filter: cut, then
/// masked like event values, since a filter may hold what a client should not have sent.
pub fn record_read(state: &AppState, key_id: &str, read: crate::ledger::access::Read, query: &str) {
    let cut: String = query.chars().take(crate::ledger::access::MAX_FILTER_CHARS).collect();
    let filter = state.masker.mask_str(&cut).unwrap_or(cut);
    state.access.record(key_id, read, &filter);
}

/// Most labelled series a family of database figures exposes on `/metrics` (the rules of
/// stored alerts, the receivers of stored notifications); the rest are summed in one
/// unlabelled `..._unlisted` gauge, so the exposition stays small whatever the tables hold.
pub const MAX_LABELLED_SERIES: usize = 100;

/// The operations state of the API: the cached database figures of `/metrics` and the
/// gate that lets one large verification run at a time.
#[derive(Debug)]
pub struct OpsState {
    /// Database figures of `/metrics`.
    pub metrics: MetricsCache,
    /// One large `GET /v1/integrity/verify` at a time.
    pub verify: VerifyGate,
}

impl OpsState {
    /// From `[metrics]` and `[integrity]`.
    pub fn new(config: &crate::config::Config) -> Self {
        Self {
            metrics: MetricsCache::new(Duration::from_secs(config.metrics.cache_secs)),
            verify: VerifyGate::default(),
        }
    }

    fn render(&self, out: &mut String, access: &crate::ledger::access::AccessLog) {
        use crate::telemetry::{counter, gauge};
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(
            out,
            "vigil_metrics_db_reads_total",
            "Database reads made for /metrics (at most one per [metrics] cache_secs).",
            n(&self.metrics.reads),
        );
        counter(
            out,
            "vigil_verify_busy_total",
            "Large verifications refused (429) while another one was running.",
            n(&self.verify.refused),
        );
        gauge(
            out,
            "vigil_verify_running",
            "1 while a large verification runs.",
            u8::from(self.verify.running().is_some()),
        );
        counter(out, "vigil_log_access_events_total", "log_accessed events written to the chain.", n(&access.written));
        counter(
            out,
            "vigil_log_access_unrecorded_total",
            "Reads of the log only counted: too many keys had an open window.",
            n(&access.unrecorded),
        );
        gauge(out, "vigil_log_access_open_windows", "Keys whose reads wait to be written.", access.open_keys());
    }
}

/// The database figures of `/metrics`, read on the read pool at most once per `ttl`;
/// concurrent scrapes during a read wait for it and share its result (single flight).
#[derive(Debug)]
pub struct MetricsCache {
    ttl: Duration,
    slot: tokio::sync::Mutex<Option<Arc<DbFigures>>>,
    /// Reads made (`vigil_metrics_db_reads_total`).
    pub reads: AtomicU64,
}

/// What `/metrics` shows from the database, capped at [`MAX_LABELLED_SERIES`] per family.
#[derive(Debug)]
pub struct DbFigures {
    at: Instant,
    alerts: Option<crate::store::AlertStats>,
    /// Alerts of the rules past the cap.
    unlisted_alerts: i64,
    notifications: Option<Vec<(String, String, i64)>>,
    /// Notifications of the series past the cap.
    unlisted_notifications: i64,
}

impl MetricsCache {
    /// A cache keeping figures for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, slot: tokio::sync::Mutex::new(None), reads: AtomicU64::new(0) }
    }

    /// The figures, read again when older than the ttl. A failed read is kept too (the
    /// series are left out until the next interval), so a database in trouble is not
    /// asked once per scrape.
    pub async fn figures(&self, store: &crate::store::Store) -> Arc<DbFigures> {
        let mut slot = self.slot.lock().await;
        if let Some(f) = slot.as_ref()
            && f.at.elapsed() < self.ttl
        {
            return f.clone();
        }
        self.reads.fetch_add(1, Ordering::Relaxed);
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            let alerts = store.alert_stats(None).await;
            let notifications = store.notification_counts().await;
            (alerts, notifications)
        })
        .await;
        let (alerts, notifications) = match read {
            Ok((a, n)) => (
                a.inspect_err(|e| tracing::warn!(error = %e, "Alert statistics unavailable for /metrics")).ok(),
                n.inspect_err(|e| tracing::warn!(error = %e, "Notification counts unavailable for /metrics")).ok(),
            ),
            Err(_) => {
                tracing::warn!("The database did not answer /metrics within 10 s");
                (None, None)
            }
        };
        let figures = Arc::new(DbFigures::capped(alerts, notifications));
        *slot = Some(figures.clone());
        figures
    }
}

impl DbFigures {
    fn capped(
        mut alerts: Option<crate::store::AlertStats>,
        mut notifications: Option<Vec<(String, String, i64)>>,
    ) -> Self {
        let mut unlisted_alerts = 0;
        if let Some(stats) = alerts.as_mut()
            && stats.by_rule.len() > MAX_LABELLED_SERIES
        {
            stats.by_rule.sort_by(|a, b| b.alerts.cmp(&a.alerts).then_with(|| a.rule.cmp(&b.rule)));
            unlisted_alerts = stats.by_rule.drain(MAX_LABELLED_SERIES..).map(|r| r.alerts).sum();
            stats.by_rule.sort_by(|a, b| a.rule.cmp(&b.rule));
        }
        let mut unlisted_notifications = 0;
        if let Some(rows) = notifications.as_mut()
            && rows.len() > MAX_LABELLED_SERIES
        {
            rows.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| (&a.0, &a.1).cmp(&(&b.0, &b.1))));
            unlisted_notifications = rows.drain(MAX_LABELLED_SERIES..).map(|r| r.2).sum();
            rows.sort();
        }
        Self { at: Instant::now(), alerts, unlisted_alerts, notifications, unlisted_notifications }
    }

    fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        if let Some(stats) = &self.alerts {
            crate::route::render_alert_metrics(out, stats);
            crate::telemetry::gauge(
                out,
                "vigil_rule_alerts_unlisted",
                "Alerts of the rules past the most frequent 100 (not labelled per rule).",
                self.unlisted_alerts,
            );
        }
        if let Some(counts) = &self.notifications {
            out.push_str(
                "# HELP vigil_receiver_notifications Notifications in the outbox by receiver and status \
                 (delivered, pending, failed, dead, ...).\n# TYPE vigil_receiver_notifications gauge\n",
            );
            for (receiver, status, n) in counts {
                let _ = writeln!(
                    out,
                    "vigil_receiver_notifications{{receiver=\"{}\",status=\"{}\"}} {n}",
                    crate::telemetry::label(receiver),
                    crate::telemetry::label(status)
                );
            }
            crate::telemetry::gauge(
                out,
                "vigil_receiver_notifications_unlisted",
                "Notifications of the receiver and status pairs past the largest 100.",
                self.unlisted_notifications,
            );
        }
    }
}

/// Lets one large verification (more than `[integrity] exclusive_verify_events` events) run
/// at a time: each reads and hashes the whole range, so a few at once would take the read
/// pool and the CPU from everything else.
#[derive(Debug)]
pub struct VerifyGate {
    permit: Arc<tokio::sync::Semaphore>,
    running: Arc<std::sync::Mutex<Option<RunningVerify>>>,
    /// Verifications refused because one was running (`vigil_verify_busy_total`).
    pub refused: AtomicU64,
}

/// The verification holding the gate.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunningVerify {
    /// When it started (RFC 3339).
    pub since: String,
    /// The key that runs it.
    pub key_id: String,
    /// Its range.
    pub from: i64,
    pub to: i64,
}

/// Held while a large verification runs; dropping it (the verification ended, or its
/// client went away) opens the gate.
#[derive(Debug)]
pub struct VerifyPermit {
    _permit: tokio::sync::OwnedSemaphorePermit,
    running: Arc<std::sync::Mutex<Option<RunningVerify>>>,
}

impl Drop for VerifyPermit {
    fn drop(&mut self) {
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

impl Default for VerifyGate {
    fn default() -> Self {
        Self { permit: Arc::new(tokio::sync::Semaphore::new(1)), running: Arc::default(), refused: AtomicU64::new(0) }
    }
}

impl VerifyGate {
    /// Takes the gate for `who`, or names the verification holding it.
    pub fn try_enter(&self, who: RunningVerify) -> Result<VerifyPermit, Option<RunningVerify>> {
        match self.permit.clone().try_acquire_owned() {
            Ok(permit) => {
                *self.running.lock().unwrap_or_else(|p| p.into_inner()) = Some(who);
                Ok(VerifyPermit { _permit: permit, running: self.running.clone() })
            }
            Err(_) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                Err(self.running())
            }
        }
    }

    /// The verification holding the gate, if any.
    pub fn running(&self) -> Option<RunningVerify> {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// `GET /v1/whoami` (any valid key): the key's id, role and what the role may do, so a
/// client (the dashboard) shows only the actions the key can use.
pub async fn whoami(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let who = state.keys.authenticate(&req)?;
    let allows: serde_json::Map<String, serde_json::Value> =
        [Role::Ingest, Role::Read, Role::Respond, Role::Admin, Role::Bouncer]
            .into_iter()
            .map(|r| (r.as_str().to_owned(), who.role.allows(r).into()))
            .collect();
    Ok(HttpResponse::Ok().json(json!({"key_id": who.key_id, "role": who.role.as_str(), "allows": allows})))
}

/// Any unknown route: 405 with `Allow` when the path exists under other methods, else 404.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let methods = super::methods_at(req.path());
    if methods.is_empty() {
        return Err(ApiError::not_found("no such endpoint"));
    }
    let allow = methods.iter().map(|m| m.to_ascii_uppercase()).collect::<Vec<_>>().join(", ");
    let error = ApiError::new(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not served at this path; allowed: {allow}", req.method()),
    );
    let mut response = actix_web::ResponseError::error_response(&error);
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allow) {
        response.headers_mut().insert(actix_web::http::header::ALLOW, value);
    }
    Ok(response)
}

/// Cluster mode's figures, from the member loop's last round (memory, never a query): live
/// nodes, and per partition whether this node writes it, its lease epoch and (where this
/// node writes it) its head.
fn render_cluster(out: &mut String, view: &crate::cluster::ClusterView) {
    use std::fmt::Write;
    crate::telemetry::gauge(
        out,
        "vigil_cluster_nodes_live",
        "Nodes whose heartbeat is younger than the lease (PostgreSQL's clock).",
        view.nodes.iter().filter(|n| n.live).count(),
    );
    out.push_str(
        "# HELP vigil_cluster_partition_owned 1 for each partition this node writes, else 0.\n\
         # TYPE vigil_cluster_partition_owned gauge\n",
    );
    for p in &view.partitions {
        let mine = p.owner.as_deref() == Some(view.node_id.as_str()) && p.live;
        let _ = writeln!(out, "vigil_cluster_partition_owned{{partition=\"{}\"}} {}", p.partition, u8::from(mine));
    }
    out.push_str(
        "# HELP vigil_cluster_partition_epoch The epoch of each partition's lease (grows at every takeover).\n\
         # TYPE vigil_cluster_partition_epoch gauge\n",
    );
    for p in &view.partitions {
        let _ = writeln!(out, "vigil_cluster_partition_epoch{{partition=\"{}\"}} {}", p.partition, p.epoch);
    }
    out.push_str(
        "# HELP vigil_cluster_partition_head_seq Seq of the last stored event of each partition this node writes.\n\
         # TYPE vigil_cluster_partition_head_seq gauge\n",
    );
    for p in &view.partitions {
        if let Some(head) = p.head {
            let _ = writeln!(out, "vigil_cluster_partition_head_seq{{partition=\"{}\"}} {head}", p.partition);
        }
    }
    out.push_str(
        "# HELP vigil_cluster_detection_slot_held 1 for each detection slot whose rules run on this node, else 0.\n\
         # TYPE vigil_cluster_detection_slot_held gauge\n",
    );
    for s in &view.detection.slots {
        let mine = s.owner.as_deref() == Some(view.node_id.as_str()) && s.live;
        let _ = writeln!(out, "vigil_cluster_detection_slot_held{{slot=\"{}\"}} {}", s.slot, u8::from(mine));
    }
    out.push_str(
        "# HELP vigil_cluster_detection_slot_epoch The epoch of each detection slot's lease (grows at every move).\n\
         # TYPE vigil_cluster_detection_slot_epoch gauge\n",
    );
    for s in &view.detection.slots {
        let _ = writeln!(out, "vigil_cluster_detection_slot_epoch{{slot=\"{}\"}} {}", s.slot, s.epoch);
    }
}
