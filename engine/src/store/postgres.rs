//! PostgreSQL backend: migrations from `migrations/postgres` run as the connecting user,
//! then every pooled connection drops to the least-privileged `vigil_app` role (SELECT and
//! INSERT on the log) when it can. An append's event rows are one binary `COPY` (postgres/copy.rs).

use std::collections::HashMap;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Connection, Executor, PgPool, Postgres, QueryBuilder, Row};

use super::alert_stats::RuleAlertStats;
use vigil_sdk::{DecisionKind, Scope, Severity};

use super::alerts::{self, AlertStatus, alert_columns, alert_insert_columns};
use super::allowlist::AllowRow;
use super::checkpoints::checkpoint_columns;
use super::decisions::{DecisionChange, DecisionEnd, DecisionFilter, DecisionRow, DecisionStatus, decision_columns};
use super::events::head_from;
use super::outbox::{NotificationStatus, notification_columns};
use super::query::{self, Count, EventFilter, Stats, StatsFilter};
use super::report_stats;
use super::{
    AlertChange, AlertFilter, AlertRow, AlertStats, AlertWrite, ApiKeyRow, Checkpoint, Columns, EscalationRow, Head,
    IndexedColumns, NotificationFilter, NotificationRow, SilenceRow, StoreError, StoredRow, StoredRule,
};
use crate::finding::parse_severity;

mod copy;
mod postings;

/// The key of a log's append lock, computed by PostgreSQL from the log's database and
/// schema (like the writer lock's key in `ledger::lock`, but a different key). Every
/// append holds it shared until it commits; a server taking over the log takes it
/// exclusively once, which waits until a killed writer's last transaction has ended.
macro_rules! append_lock_key {
    () => {
        "('x' || substr(encode(sha256(convert_to('vigil-append-v1:' || current_database() || '.' || \
         current_schema(), 'UTF8')), 'hex'), 1, 16))::bit(64)::bigint"
    };
}

/// Taken by every append transaction.
const APPEND_LOCK_SHARED: &str = concat!("SELECT pg_advisory_xact_lock_shared(", append_lock_key!(), ")");
/// Taken (then released) by a server that has just become the log's writer.
pub const APPEND_LOCK_DRAIN: &str = concat!("SELECT pg_advisory_lock(", append_lock_key!(), ")");
/// Releases [`APPEND_LOCK_DRAIN`].
pub const APPEND_LOCK_RELEASE: &str = concat!("SELECT pg_advisory_unlock(", append_lock_key!(), ")");

/// The embedded migrations, in order: (version, description, sql).
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "events", include_str!("../../../migrations/postgres/0001_events.sql")),
    (2, "alerts", include_str!("../../../migrations/postgres/0002_alerts.sql")),
    (3, "severity_index", include_str!("../../../migrations/postgres/0003_severity_index.sql")),
    (4, "request_index", include_str!("../../../migrations/postgres/0004_request_index.sql")),
    (5, "autovacuum", include_str!("../../../migrations/postgres/0005_autovacuum.sql")),
    (6, "rules", include_str!("../../../migrations/postgres/0006_rules.sql")),
    (7, "alerting", include_str!("../../../migrations/postgres/0007_alerting.sql")),
    (8, "integrity", include_str!("../../../migrations/postgres/0008_integrity.sql")),
    (9, "postings", include_str!("../../../migrations/postgres/0009_postings.sql")),
    (10, "ts_seq", include_str!("../../../migrations/postgres/0010_ts_seq.sql")),
    (11, "decisions", include_str!("../../../migrations/postgres/0011_decisions.sql")),
    (12, "allowlist", include_str!("../../../migrations/postgres/0012_allowlist.sql")),
    (13, "ingest_key", include_str!("../../../migrations/postgres/0013_ingest_key.sql")),
    (14, "forwarders", include_str!("../../../migrations/postgres/0014_forwarders.sql")),
    (15, "cluster", include_str!("../../../migrations/postgres/0015_cluster.sql")),
    (16, "cluster_detection", include_str!("../../../migrations/postgres/0016_cluster_detection.sql")),
    (17, "detection_slots", include_str!("../../../migrations/postgres/0017_detection_slots.sql")),
    (18, "outbox_claims", include_str!("../../../migrations/postgres/0018_outbox_claims.sql")),
    (19, "pg_postings", include_str!("../../../migrations/postgres/0019_pg_postings.sql")),
    (20, "posting_filters", include_str!("../../../migrations/postgres/0020_posting_filters.sql")),
    (21, "posting_spans", include_str!("../../../migrations/postgres/0021_posting_spans.sql")),
];

/// The application role the server acts as.
pub const APP_ROLE: &str = "vigil_app";

/// PostgreSQL store.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    stats: std::sync::Arc<Statistics>,
    /// Cluster mode: the lease this partition writer holds; every append checks it inside
    /// its transaction (store/cluster.rs). None for a single node.
    fence: Option<std::sync::Arc<super::cluster::Fence>>,
    /// Cluster mode: the partition whose log this store reads (0: the database's own schema,
    /// which is also a single node's log). Checkpoints are signed and checked for it
    /// (`ledger::keys::checkpoint_message_in`).
    partition: u32,
    /// Lookups by the fields of store/postings.rs go through the posting table (false for
    /// the views over every partition, which have none: their seqs repeat across partitions).
    postings: bool,
}

/// Which log a store opens (see [`PgStore::open_partition`], [`PgStore::open_all_partitions`]).
enum Opening {
    /// The database's own schema (a single node, or a cluster's shared tables and partition 0).
    Base,
    /// Partition `p`'s log, written under the fence when there is one.
    Partition(u32, Option<super::cluster::Fence>),
    /// The read-only views over every partition's log (`<schema>_pall`).
    AllPartitions,
}

/// Quotes an identifier for SQL (`"name"`, inner quotes doubled).
pub(super) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Keeps the planner's statistics of the log current. The queries of `GET /v1/events` need
/// them (with the default estimates PostgreSQL bitmap-scans every `authentication` row to
/// find the 50 newest failures: 550 ms at 1M events, against ~1 ms with statistics), and
/// autovacuum may be off or minutes behind a burst of ingest. So the server runs `VACUUM
/// (ANALYZE) events, postings` itself each time the log has grown by a fifth (at least 50,000 rows),
/// on a connection of its own as the login user (the app role cannot). On an insert-only
/// table the vacuum visits only the new pages; it sets their visibility map bits, so the
/// seq bounds of a time window come from the `(ts, seq)` index alone.
struct Statistics {
    options: PgConnectOptions,
    next_at: std::sync::atomic::AtomicI64,
    running: std::sync::atomic::AtomicBool,
}

impl Statistics {
    fn after_append(self: &std::sync::Arc<Self>, head: i64) {
        use std::sync::atomic::Ordering;
        if head < self.next_at.load(Ordering::Relaxed) || self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let stats = self.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let result = async {
                let mut conn = sqlx::PgConnection::connect_with(&stats.options).await?;
                conn.execute("VACUUM (ANALYZE) events, postings").await?;
                conn.close().await
            }
            .await;
            match result {
                Ok(()) => tracing::debug!(head, ms = started.elapsed().as_millis() as u64, "Vacuumed the events table"),
                Err(e) => tracing::warn!(error = %e, "Could not vacuum (analyze) the events table"),
            }
            stats.next_at.store(head + (head / 5).max(50_000), Ordering::Relaxed);
            stats.running.store(false, Ordering::Release);
        });
    }
}

impl PgStore {
    /// Connects, applies migrations, and builds a pool whose connections `SET ROLE vigil_app`.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, Opening::Base).await
    }

    /// Creates (or checks) the cluster's shape in the database at `url` as the login user:
    /// `partitions` is recorded on first use and must match afterwards; every partition's
    /// schema and lease row exist when this returns. Migrates first.
    pub async fn init_cluster(url: &str, partitions: u32) -> Result<u32, StoreError> {
        Self::init_cluster_with_slots(url, partitions, crate::config::DEFAULT_DETECTION_SLOTS).await
    }

    /// [`Self::init_cluster`] with `detection_slots` detection slots (recorded on first use,
    /// like `partitions`, and checked afterwards; docs/cluster.md, "Detection").
    pub async fn init_cluster_with_slots(url: &str, partitions: u32, detection_slots: u32) -> Result<u32, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let mut conn = sqlx::PgConnection::connect_with(&options).await?;
        migrate(&mut conn).await?;
        let result = super::cluster::init_cluster(&mut conn, partitions, detection_slots).await;
        let _ = conn.close().await;
        result
    }

    /// The store of one partition's log, written under `fence` (None: read only, e.g. for
    /// verify): partition 0 is the log of the database's own schema, partition p its
    /// `<schema>_p<p>` (see [`Self::init_cluster`]). Shared tables (alerts, keys, rules...)
    /// are the same as the base store's.
    pub async fn open_partition(
        url: &str,
        partition: u32,
        fence: Option<super::cluster::Fence>,
    ) -> Result<Self, StoreError> {
        Self::open_with(url, Opening::Partition(partition, fence)).await
    }

    /// A read-only store over every partition at once (cluster mode): its `events` and
    /// `checkpoints` are the views of `<schema>_pall` (every partition's rows, with their
    /// `partition`), made by [`Self::init_cluster`]; statistics and reports read them, so
    /// their figures are exact sums over the partitions. Never written through.
    pub async fn open_all_partitions(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, Opening::AllPartitions).await
    }

    /// The partition whose log this store reads (0 for a single node).
    pub fn partition(&self) -> u32 {
        self.partition
    }

    async fn open_with(url: &str, opening: Opening) -> Result<Self, StoreError> {
        let mut options = PgConnectOptions::from_str(url)?;
        let mut conn = sqlx::PgConnection::connect_with(&options).await?;
        migrate(&mut conn).await?;
        let mut search_path = None;
        let mut fence = None;
        let partitioned = !matches!(opening, Opening::Base);
        let postings = !matches!(opening, Opening::AllPartitions);
        // The views over every partition serve statistics and reports only: no connection
        // until the first of those (a node's start adds none to PostgreSQL's count).
        let lazy = matches!(opening, Opening::AllPartitions);
        let (partition, target) = match opening {
            Opening::Base => (0, None),
            Opening::Partition(p, f) => {
                fence = f.map(std::sync::Arc::new);
                (p, (p > 0).then_some(Some(p)))
            }
            Opening::AllPartitions => (0, Some(None)),
        };
        // `target`: Some(Some(p)) partition p's schema, Some(None) the views over all of them.
        if let Some(target) = target {
            let base: String = sqlx::query_scalar("SELECT current_schema()").fetch_one(&mut conn).await?;
            let schema = match target {
                Some(p) => super::cluster::partition_schema(&base, p),
                None => super::cluster::all_partitions_schema(&base),
            };
            let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(&schema)
                .fetch_one(&mut conn)
                .await?;
            if !exists {
                return Err(StoreError::Cluster(match target {
                    Some(p) => {
                        format!("partition {p} has no schema {schema} (the cluster was created with fewer partitions)")
                    }
                    None => {
                        format!("the views over every partition ({schema}) are missing; a node creates them at start")
                    }
                }));
            }
            let path = format!("{},{}", quote_ident(&schema), quote_ident(&base));
            options = options.options([("search_path", path.clone())]);
            search_path = Some(path);
        }
        // Can this login act as the app role? (superusers and members can)
        let can_set: bool = sqlx::query_scalar("SELECT pg_has_role(current_user, $1, 'MEMBER')")
            .bind(APP_ROLE)
            .fetch_one(&mut conn)
            .await?;
        conn.close().await?;
        if !can_set {
            tracing::warn!(
                role = APP_ROLE,
                "Database login cannot SET ROLE to the app role; running with the login's own privileges"
            );
        }
        // A node holds one store per partition it writes or reads (cluster mode): those
        // get smaller pools, so three nodes stay well inside PostgreSQL's connection limit.
        // A read-only partition store (look-ups, verify, status, detection) gets 2, and
        // partition pools close connections idle for a minute.
        let read_only = fence.is_none();
        let writer = partitioned && !read_only;
        let mut pool_options = PgPoolOptions::new().max_connections(match (partitioned, read_only) {
            (false, _) => 8,
            (true, false) => 4,
            (true, true) => 2,
        });
        if partitioned {
            pool_options = pool_options.idle_timeout(std::time::Duration::from_secs(60));
        }
        let pool_options = pool_options
            // While the database is down a request waits this long for a connection, then
            // is answered 503 with Retry-After (the default, 30 s, looks like a hang).
            .acquire_timeout(std::time::Duration::from_secs(3))
            .after_connect(move |conn, _meta| {
                let search_path = search_path.clone();
                Box::pin(async move {
                    if can_set {
                        conn.execute("SET ROLE vigil_app").await?;
                    }
                    if let Some(path) = &search_path {
                        conn.execute(AssertSqlSafe(format!("SET search_path TO {path}"))).await?;
                    }
                    if writer {
                        for setting in super::cluster::WRITER_SESSION {
                            conn.execute(setting).await?;
                        }
                    }
                    Ok(())
                })
            });
        let pool = if lazy {
            pool_options.connect_lazy_with(options.clone())
        } else {
            pool_options.connect_with(options.clone()).await?
        };
        let options_for_stats = options;
        let stats = std::sync::Arc::new(Statistics {
            options: options_for_stats,
            next_at: std::sync::atomic::AtomicI64::new(10_000),
            running: std::sync::atomic::AtomicBool::new(false),
        });
        Ok(Self { pool, stats, fence, partition, postings })
    }

    pub(super) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Whether lookups go through the posting table (`search_queries!`).
    pub(super) fn uses_postings(&self) -> bool {
        self.postings
    }

    pub(super) fn fence(&self) -> Option<&super::cluster::Fence> {
        self.fence.as_deref()
    }

    pub(super) async fn head(&self) -> Result<Head, StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")
            .persistent(false)
            .fetch_optional(&self.pool)
            .await?;
        head_from(row.map(|r| {
            (r.try_get::<i64, _>("seq").unwrap_or(i64::MIN), r.try_get::<Vec<u8>, _>("hash").unwrap_or_default())
        }))
    }

    pub(super) async fn find_event_ids(
        &self,
        ids: &[String],
    ) -> Result<Vec<(Option<String>, String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT ingest_key, event_id, seq FROM events WHERE event_id = ANY($1)")
            .bind(ids.to_vec())
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| (r.get("ingest_key"), r.get("event_id"), r.get("seq"))).collect())
    }

    pub(super) async fn append(&self, rows: &[StoredRow], checkpoint: Option<&Checkpoint>) -> Result<(), StoreError> {
        if rows.is_empty() && checkpoint.is_none() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        // Cluster mode: the lease first (store/cluster.rs). The share lock on the lease row
        // lasts until this transaction ends, so a takeover waits for it; a lease that was
        // taken over or has expired refuses the whole transaction.
        if let Some(f) = &self.fence {
            let held = sqlx::query(super::cluster::FENCE_CHECK)
                .bind(f.partition)
                .bind(&f.owner)
                .bind(f.epoch)
                .fetch_optional(&mut *tx)
                .await?;
            if held.is_none() {
                return Err(StoreError::Fenced { partition: f.partition, epoch: f.epoch });
            }
        }
        // Every append holds the log's append lock shared until it commits, so a server that
        // takes over the log waits for a killed writer's last transaction to end first.
        sqlx::query(APPEND_LOCK_SHARED).execute(&mut *tx).await?;
        let head = sqlx::query("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")
            .persistent(false)
            .fetch_optional(&mut *tx)
            .await?;
        let head =
            head.map(|r| (r.try_get::<i64, _>("seq").unwrap_or(i64::MIN), r.try_get("hash").unwrap_or_default()));
        let floor: i64 = sqlx::query_scalar("SELECT floor FROM retention_floor WHERE id = 1")
            .persistent(false)
            .fetch_one(&mut *tx)
            .await?;
        super::events::check_head_before_append(head, floor, rows, checkpoint)?;
        if !rows.is_empty() {
            let mut copy = tx.copy_in_raw(copy::COPY_EVENTS).await?;
            if let Err(e) = copy.send(copy::encode(rows)).await {
                let _ = copy.abort("the append failed").await;
                return Err(e.into());
            }
            copy.finish().await?;
            let keys = super::postings::sorted_keys(rows.iter().map(|r| (r.seq, &r.columns)));
            if !keys.is_empty() {
                let mut copy = tx.copy_in_raw(copy::COPY_POSTINGS).await?;
                if let Err(e) = copy.send(copy::encode_postings(&keys)).await {
                    let _ = copy.abort("the append failed").await;
                    return Err(e.into());
                }
                copy.finish().await?;
            }
            if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
                postings::seal_blocks(&mut tx, "", first.seq, last.seq).await?;
            }
        }
        if let Some(cp) = checkpoint {
            sqlx::query(
                "INSERT INTO checkpoints (id, seq, hash, created_at, prev_id, signature, key_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(cp.id)
            .bind(cp.seq)
            .bind(cp.hash.clone())
            .bind(cp.created_at)
            .bind(cp.prev_id)
            .bind(cp.signature.clone())
            .bind(cp.key_id.clone())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        if let Some(last) = rows.last() {
            self.stats.after_append(last.seq);
        }
        Ok(())
    }

    pub(super) async fn scan(&self, from: i64, to: i64, limit: i64) -> Result<Vec<StoredRow>, StoreError> {
        let rows =
            sqlx::query(AssertSqlSafe(format!("{SELECT_EVENTS} WHERE seq >= $1 AND seq <= $2 ORDER BY seq LIMIT $3")))
                .bind(from)
                .bind(to)
                .bind(limit)
                // Not a cached prepared statement: a column whose type was changed behind the
                // server's back (tampering) must still be readable, and reported by verify.
                .persistent(false)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(stored_row).collect())
    }

    pub(super) async fn scan_canon(&self, from: i64, to: i64, limit: i64) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        let rows = sqlx::query("SELECT seq, canon FROM events WHERE seq >= $1 AND seq <= $2 ORDER BY seq LIMIT $3")
            .bind(from)
            .bind(to)
            .bind(limit)
            .persistent(false) // as `scan`: a tampered column type must stay readable
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.try_get("seq").unwrap_or(i64::MIN), r.try_get::<Vec<u8>, _>("canon").unwrap_or_default()))
            .collect())
    }

    pub(super) async fn first_seq_since(&self, ts: i64) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT MIN(seq) FROM events WHERE ts >= $1").bind(ts).fetch_one(&self.pool).await?)
    }

    pub(super) async fn purge(&self, floor: i64) -> Result<u64, StoreError> {
        // Through the SECURITY DEFINER function of migration 0008: the app role itself may
        // not delete events or move the floor.
        let deleted: i64 = sqlx::query_scalar("SELECT vigil_purge($1)").bind(floor).fetch_one(&self.pool).await?;
        // The filters of blocks wholly purged (their guard allows it now that the floor has
        // passed them; a block partly purged keeps its filter, a superset: still correct).
        sqlx::query("DELETE FROM posting_filters WHERE block <= $1")
            .bind(super::block_filters::last_full_block(floor))
            .execute(&self.pool)
            .await?;
        Ok(deleted.max(0) as u64)
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

async fn migrate(conn: &mut sqlx::PgConnection) -> Result<(), StoreError> {
    // One server migrates a database at a time.
    sqlx::query("SELECT pg_advisory_lock(7415161)").execute(&mut *conn).await?;
    let result = apply_migrations(conn).await;
    sqlx::query("SELECT pg_advisory_unlock(7415161)").execute(&mut *conn).await?;
    result
}

async fn apply_migrations(conn: &mut sqlx::PgConnection) -> Result<(), StoreError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS _vigil_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *conn)
    .await?;
    for (version, description, sql) in MIGRATIONS {
        let done: Option<i64> = sqlx::query_scalar("SELECT version FROM _vigil_migrations WHERE version = $1")
            .bind(*version)
            .fetch_optional(&mut *conn)
            .await?;
        if done.is_some() {
            continue;
        }
        let fail = |source| StoreError::Migration { version: format!("{version:04}_{description}"), source };
        let mut tx = conn.begin().await?;
        sqlx::raw_sql(AssertSqlSafe(*sql)).execute(&mut *tx).await.map_err(fail)?;
        let backfill = match *version {
            19 => postings::backfill(&mut tx).await,
            20 => postings::backfill_filters(&mut tx).await,
            21 => postings::backfill_spans(&mut tx).await,
            _ => Ok(()),
        };
        {
            backfill.map_err(|e| match e {
                StoreError::Database(source) => fail(source),
                other => StoreError::Migration { version: format!("{other}"), source: sqlx::Error::BeginFailed },
            })?;
        }
        sqlx::query("INSERT INTO _vigil_migrations (version, description, applied_at) VALUES ($1, $2, $3)")
            .bind(*version)
            .bind(*description)
            .bind(crate::event::now_ms())
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        tx.commit().await.map_err(fail)?;
    }
    Ok(())
}

super::events::event_queries!(PgStore, PgRow, writer: pool);
super::query::search_queries!(PgStore, Postgres, reader: pool, fence: " OFFSET 0", postings: uses_postings);
super::lookup::filter_queries!(PgStore, Postgres, reader: pool, writer: pool);
super::checkpoints::checkpoint_queries!(PgStore, Postgres, PgRow, reader: pool, writer: pool);
super::keys::key_queries!(PgStore, Postgres, PgRow, writer: pool);
super::rules::rule_queries!(PgStore, Postgres, writer: pool);
super::alerts::alert_queries!(PgStore, Postgres, PgRow, writer: pool);
super::alert_changes::alert_change_queries!(PgStore, Postgres, writer: pool);
super::alert_stats::alert_stats_queries!(PgStore, Postgres, reader: pool);
super::report_stats::report_queries!(PgStore, Postgres, reader: pool, country: "(convert_from(canon, 'UTF8')::json #>> '{geo,country}')");
super::escalations::escalation_queries!(PgStore, Postgres, PgRow, writer: pool);
super::outbox::outbox_queries!(PgStore, Postgres, PgRow, writer: pool, reader: pool);
super::outbox_claims::outbox_claim_queries!(PgStore, Postgres, writer: pool);

/// The database's clock in epoch ms (outbox claims: never a node's clock).
const DB_NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";
/// The row-lock clause of the outbox claim's sub-select.
const SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";

super::silences::silence_queries!(PgStore, Postgres, writer: pool);
super::decisions::decision_queries!(PgStore, Postgres, PgRow, writer: pool);
super::allowlist::allowlist_queries!(PgStore, Postgres, writer: pool);
super::forwarders::forwarder_queries!(PgStore, Postgres, writer: pool);
