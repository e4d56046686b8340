//! SQLite backend (the embedded default): WAL, `synchronous=FULL`, one writer connection
//! that takes `BEGIN IMMEDIATE` transactions (only the `Sequencer` appends events), a small
//! read pool; event rows go in through the C API (`raw`). Migrations come from `migrations/sqlite`, embedded.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{AssertSqlSafe, QueryBuilder, Row, Sqlite, SqlitePool};

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
use super::{block_filters, postings};
use crate::finding::parse_severity;

mod checkpointer;
mod raw;
use checkpointer::{CheckpointRound, CheckpointerGuard, RestartRequest};
pub use raw::memory_used;

/// Busy timeout of the writer connection (and the readers): how long a statement waits for
/// a lock another connection holds.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The embedded migrations, in order: (version, description, sql).
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "events", include_str!("../../../migrations/sqlite/0001_events.sql")),
    (2, "alerts", include_str!("../../../migrations/sqlite/0002_alerts.sql")),
    (3, "severity_index", include_str!("../../../migrations/sqlite/0003_severity_index.sql")),
    (4, "request_index", include_str!("../../../migrations/sqlite/0004_request_index.sql")),
    (5, "autovacuum", include_str!("../../../migrations/sqlite/0005_autovacuum.sql")),
    (6, "rules", include_str!("../../../migrations/sqlite/0006_rules.sql")),
    (7, "alerting", include_str!("../../../migrations/sqlite/0007_alerting.sql")),
    (8, "integrity", include_str!("../../../migrations/sqlite/0008_integrity.sql")),
    (9, "postings", include_str!("../../../migrations/sqlite/0009_postings.sql")),
    (10, "ts_seq", include_str!("../../../migrations/sqlite/0010_ts_seq.sql")),
    (11, "decisions", include_str!("../../../migrations/sqlite/0011_decisions.sql")),
    (12, "allowlist", include_str!("../../../migrations/sqlite/0012_allowlist.sql")),
    (13, "ingest_key", include_str!("../../../migrations/sqlite/0013_ingest_key.sql")),
    (14, "forwarders", include_str!("../../../migrations/sqlite/0014_forwarders.sql")),
    (15, "cluster", include_str!("../../../migrations/sqlite/0015_cluster.sql")),
    (16, "cluster_detection", include_str!("../../../migrations/sqlite/0016_cluster_detection.sql")),
    (17, "detection_slots", include_str!("../../../migrations/sqlite/0017_detection_slots.sql")),
    (18, "outbox_claims", include_str!("../../../migrations/sqlite/0018_outbox_claims.sql")),
    (19, "pg_postings", include_str!("../../../migrations/sqlite/0019_pg_postings.sql")),
    (20, "posting_filters", include_str!("../../../migrations/sqlite/0020_posting_filters.sql")),
    (21, "posting_spans", include_str!("../../../migrations/sqlite/0021_posting_spans.sql")),
];

/// Rows per multi-row INSERT statement (14 columns each, well under SQLite's variable limit).
const INSERT_CHUNK: usize = 256;

/// Splits `n` rows into statement sizes drawn from `steps`, so the handful of distinct
/// multi-row INSERT texts stay in sqlx's prepared-statement cache instead of a new
/// 3000-parameter statement being prepared for every group size.
fn chunk_sizes_of(mut n: usize, steps: &[usize]) -> Vec<usize> {
    let mut sizes = Vec::new();
    for &size in steps {
        while n >= size {
            sizes.push(size);
            n -= size;
        }
    }
    sizes
}

/// SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// The background WAL checkpointer (None for read-only stores); it stops when the last
    /// clone of the store is dropped.
    _checkpointer: Option<std::sync::Arc<CheckpointerGuard>>,
    /// Set by the checkpointer when the WAL should start over; the writer restarts it
    /// before its next group (checkpointer.rs).
    wal_restart: std::sync::Arc<RestartRequest>,
}

impl SqliteStore {
    /// Opens the database file (creating it and its directory), applies migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, checkpointer::RESTART_FRAMES, None).await
    }

    /// [`SqliteStore::open`] with the WAL restarted past `restart_frames` frames, sending
    /// what each checkpointer round found to `rounds` (tests).
    pub(crate) async fn open_with(
        url: &str,
        restart_frames: i64,
        rounds: Option<tokio::sync::mpsc::UnboundedSender<CheckpointRound>>,
    ) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: the WAL is fsynced at every commit, so a 201 survives power loss.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            // Page cache of the writer: 16 MiB. Inserts touch the right edge of the log, of
            // the posting table and of the low-cardinality indexes, so few pages are hot.
            // Readers get 8 MiB each (below); the OS page cache holds the rest of the file.
            .pragma("cache_size", "-16384")
            .pragma("temp_store", "memory")
            // No checkpoint inside a commit: the writer would copy the WAL back to the database
            // (and fsync it) while holding the write lock. A background task does it on a
            // connection of its own (`Checkpointer`); docs/storage.md.
            .pragma("wal_autocheckpoint", "0");
        if let Some(dir) = options.get_filename().parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            // After SQLITE_FULL or an I/O error SQLite may roll the transaction back itself;
            // sqlx's own ROLLBACK then fails and the connection stays "in a transaction" for
            // sqlx, refusing every later BEGIN: the server could never write again. Such a
            // connection is closed on release and the pool opens a fresh one.
            .after_release(|conn, _meta| {
                Box::pin(async move {
                    use sqlx::Connection;
                    if !conn.is_in_transaction() {
                        return Ok(true);
                    }
                    // A rollback queued by a dropped transaction runs before this statement.
                    let _ = sqlx::query("SELECT 1").execute(&mut *conn).await;
                    let healthy = !conn.is_in_transaction();
                    if !healthy {
                        tracing::warn!("Closing the SQLite writer connection: a failed transaction left it unusable");
                    }
                    Ok(healthy)
                })
            })
            .connect_with(options.clone())
            .await?;
        migrate(&writer).await?;
        let checkpointer_options =
            options.clone().busy_timeout(checkpointer::CHECKPOINT_BUSY_TIMEOUT).pragma("cache_size", "-2048");
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.pragma("cache_size", "-8192").read_only(true))
            .await?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let wal_restart = std::sync::Arc::new(RestartRequest::default());
        tokio::spawn(checkpointer::run_checkpointer(
            checkpointer_options,
            stop_rx,
            wal_restart.clone(),
            restart_frames,
            rounds,
        ));
        let guard = CheckpointerGuard { _stop: stop_tx };
        Ok(Self { writer, reader, _checkpointer: Some(std::sync::Arc::new(guard)), wal_restart })
    }

    /// Opens an existing database file read-only: nothing is created, migrated or written.
    pub async fn open_read_only(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(false)
            .read_only(true)
            .busy_timeout(BUSY_TIMEOUT)
            .pragma("cache_size", "-8192");
        let pool = SqlitePoolOptions::new().max_connections(2).connect_with(options).await?;
        Ok(Self { writer: pool.clone(), reader: pool, _checkpointer: None, wal_restart: Default::default() })
    }

    /// The file a `sqlite:` URL names.
    pub fn path(url: &str) -> Option<std::path::PathBuf> {
        SqliteConnectOptions::from_str(url).ok().map(|o| o.get_filename().to_path_buf())
    }

    pub(super) async fn head(&self) -> Result<Head, StoreError> {
        let row =
            sqlx::query("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetch_optional(&self.writer).await?;
        head_from(row.map(|r| {
            (r.try_get::<i64, _>("seq").unwrap_or(i64::MIN), r.try_get::<Vec<u8>, _>("hash").unwrap_or_default())
        }))
    }

    pub(super) async fn find_event_ids(
        &self,
        ids: &[String],
    ) -> Result<Vec<(Option<String>, String, i64)>, StoreError> {
        let mut found = Vec::new();
        for chunk in ids.chunks(INSERT_CHUNK) {
            let mut qb =
                QueryBuilder::<Sqlite>::new("SELECT ingest_key, event_id, seq FROM events WHERE event_id IN (");
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_bind(id.clone());
            }
            qb.push(")");
            // The read pool: the writer connection is busy with the transaction in flight
            // (whose ids the sequencer knows itself); committed rows are visible to readers.
            for row in qb.build().fetch_all(&self.reader).await? {
                found.push((row.get("ingest_key"), row.get("event_id"), row.get("seq")));
            }
        }
        Ok(found)
    }

    pub(super) async fn append(&self, rows: &[StoredRow], checkpoint: Option<&Checkpoint>) -> Result<(), StoreError> {
        if self.wal_restart.wanted() {
            self.restart_wal().await;
        }
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        if rows.is_empty() && checkpoint.is_none() {
            return Ok(());
        }
        let head =
            sqlx::query("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetch_optional(&mut *tx).await?;
        let head =
            head.map(|r| (r.try_get::<i64, _>("seq").unwrap_or(i64::MIN), r.try_get("hash").unwrap_or_default()));
        let floor: i64 =
            sqlx::query_scalar("SELECT floor FROM retention_floor WHERE id = 1").fetch_one(&mut *tx).await?;
        super::events::check_head_before_append(head, floor, rows, checkpoint)?;
        if !rows.is_empty() {
            // Rows and postings through the C API (raw.rs), inside this transaction; it
            // blocks this thread while it runs, so on the multi-threaded runtime tokio
            // moves its other tasks away first.
            let mut handle = tx.lock_handle().await?;
            let db = handle.as_raw_handle();
            raw::blocking(|| raw::insert_rows(db, rows))?;
        }
        if let Some(cp) = checkpoint {
            sqlx::query(
                "INSERT INTO checkpoints (id, seq, hash, created_at, prev_id, signature, key_id) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
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
        Ok(())
    }

    /// Restarts the WAL on the writer connection between two groups (checkpointer.rs). A
    /// failure is not the append's: the checkpointer asks again later.
    async fn restart_wal(&self) {
        let result: Result<_, StoreError> = async {
            let mut conn = self.writer.acquire().await?;
            let mut handle = conn.lock_handle().await?;
            let db = handle.as_raw_handle();
            raw::blocking(|| raw::restart_wal(db, checkpointer::RESTART_WAIT, BUSY_TIMEOUT))
        }
        .await;
        self.wal_restart.done();
        match result {
            Ok(r) => tracing::debug!(busy = r.busy, log = r.log, checkpointed = r.checkpointed, "SQLite WAL restart"),
            Err(e) => tracing::debug!(error = %e, "SQLite WAL restart failed"),
        }
    }

    pub(super) async fn scan(&self, from: i64, to: i64, limit: i64) -> Result<Vec<StoredRow>, StoreError> {
        let rows =
            sqlx::query(AssertSqlSafe(format!("{SELECT_EVENTS} WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?")))
                .bind(from)
                .bind(to)
                .bind(limit)
                .fetch_all(&self.reader)
                .await?;
        Ok(rows.iter().map(stored_row).collect())
    }

    pub(super) async fn scan_canon(&self, from: i64, to: i64, limit: i64) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        raw::scan_canon(&self.reader, from, to, limit).await
    }

    pub(super) async fn first_seq_since(&self, ts: i64) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT MIN(seq) FROM events WHERE ts >= ?").bind(ts).fetch_one(&self.reader).await?)
    }

    pub(super) async fn purge(&self, floor: i64) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let at_checkpoint: Option<i64> = sqlx::query_scalar("SELECT id FROM checkpoints WHERE seq = ? LIMIT 1")
            .bind(floor)
            .fetch_optional(&mut *tx)
            .await?;
        if at_checkpoint.is_none() {
            return Err(StoreError::Corrupt { seq: floor, problem: "a purge must end at a checkpoint".into() });
        }
        sqlx::query("UPDATE retention_floor SET floor = ? WHERE id = 1 AND floor < ?")
            .bind(floor)
            .bind(floor)
            .execute(&mut *tx)
            .await?;
        let deleted =
            sqlx::query("DELETE FROM events WHERE seq <= ?").bind(floor).execute(&mut *tx).await?.rows_affected();
        sqlx::query("DELETE FROM postings WHERE block <= ? AND seq <= ?")
            .bind(postings::block(floor))
            .bind(floor)
            .execute(&mut *tx)
            .await?;
        // The filters of blocks wholly purged (a block partly purged keeps its filter: a
        // superset of what is left, so still correct).
        sqlx::query("DELETE FROM posting_filters WHERE block <= ?")
            .bind(block_filters::last_full_block(floor))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(deleted)
    }

    /// The postings `(term, seq)` of the events `from..=to` (verify compares them with the
    /// columns).
    pub(super) async fn postings(&self, from: i64, to: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows =
            sqlx::query("SELECT term, seq FROM postings WHERE block >= ? AND block <= ? AND seq >= ? AND seq <= ?")
                .bind(postings::block(from))
                .bind(postings::block(to))
                .bind(from)
                .bind(to)
                .persistent(false)
                .fetch_all(&self.reader)
                .await?;
        Ok(rows
            .iter()
            .map(|r| (r.try_get::<i64, _>("term").unwrap_or(i64::MIN), r.try_get::<i64, _>("seq").unwrap_or(i64::MIN)))
            .collect())
    }

    /// Drops the postings of seqs above `head` (rows that vanished: a truncation).
    pub(super) async fn prune_postings_after(&self, head: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM postings WHERE block >= ? AND seq > ?")
            .bind(postings::block(head.max(0)))
            .bind(head)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    /// Lookups by the fields of store/postings.rs always go through the posting table.
    fn uses_postings(&self) -> bool {
        true
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }
}

async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS _vigil_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )
    .execute(pool)
    .await?;
    for (version, description, sql) in MIGRATIONS {
        let done: Option<i64> = sqlx::query_scalar("SELECT version FROM _vigil_migrations WHERE version = ?")
            .bind(*version)
            .fetch_optional(pool)
            .await?;
        if done.is_some() {
            continue;
        }
        let fail = |source| StoreError::Migration { version: format!("{version:04}_{description}"), source };
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::raw_sql(AssertSqlSafe(*sql)).execute(&mut *tx).await.map_err(fail)?;
        let backfill = match *version {
            9 => backfill_postings(&mut tx).await,
            20 => backfill_filters(&mut tx).await,
            21 => backfill_spans(&mut tx).await,
            _ => Ok(()),
        };
        {
            backfill.map_err(|e| match e {
                StoreError::Database(source) => fail(source),
                other => StoreError::Migration { version: format!("{other}"), source: sqlx::Error::BeginFailed },
            })?;
        }
        sqlx::query("INSERT INTO _vigil_migrations (version, description, applied_at) VALUES (?, ?, ?)")
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

/// Rows per multi-row INSERT into postings (3 columns each).
const POSTINGS_CHUNK: usize = 1024;

/// Writes the postings of `rows`, sorted by key so they go in as runs at the tree's edge.
async fn insert_postings<'a>(
    tx: &mut sqlx::SqliteConnection,
    rows: impl Iterator<Item = (i64, &'a IndexedColumns)>,
) -> Result<(), StoreError> {
    let mut keys: Vec<(i64, i64, i64)> =
        rows.flat_map(|(seq, c)| postings::terms(c).map(move |(_, term)| (postings::block(seq), term, seq))).collect();
    keys.sort_unstable();
    // Two fields of one event could hash alike; the key must still be unique.
    keys.dedup();
    let mut start = 0;
    for size in chunk_sizes_of(keys.len(), &[POSTINGS_CHUNK, 256, 64, 16, 4, 1]) {
        let chunk = &keys[start..start + size];
        start += size;
        let mut qb = QueryBuilder::<Sqlite>::new("INSERT INTO postings (block, term, seq) ");
        qb.push_values(chunk, |mut b, &(block, term, seq)| {
            b.push_bind(block).push_bind(term).push_bind(seq);
        });
        qb.build().execute(&mut *tx).await?;
    }
    Ok(())
}

/// Fills the postings of the rows stored before migration 0009.
async fn backfill_postings(tx: &mut sqlx::SqliteConnection) -> Result<(), StoreError> {
    let mut after = i64::MIN;
    // Run on a database older than 0013 there is no `ingest_key` column (and no event has one).
    let has_key: bool =
        sqlx::query_scalar("SELECT COUNT(*) > 0 FROM pragma_table_info('events') WHERE name = 'ingest_key'")
            .fetch_one(&mut *tx)
            .await?;
    let select = if has_key {
        "SELECT seq, organization_id, user_id, ip, request_id, ingest_key FROM events WHERE seq > ? ORDER BY seq \
         LIMIT 20000"
    } else {
        "SELECT seq, organization_id, user_id, ip, request_id, NULL AS ingest_key FROM events WHERE seq > ? \
         ORDER BY seq LIMIT 20000"
    };
    loop {
        let rows = sqlx::query(select).bind(after).fetch_all(&mut *tx).await?;
        let Some(last) = rows.last() else { return Ok(()) };
        after = last.try_get("seq")?;
        let text = |r: &SqliteRow, column: &str| r.try_get::<Option<String>, _>(column).ok().flatten();
        let columns: Vec<(i64, IndexedColumns)> = rows
            .iter()
            .map(|r| postings::columns_of(r.try_get::<i64, _>("seq").unwrap_or_default(), |c| text(r, c)))
            .collect();
        insert_postings(&mut *tx, columns.iter().map(|(seq, c)| (*seq, c))).await?;
    }
}

/// The oldest posting block and the head of a log that holds events (the filters'
/// backfills start from them).
async fn log_bounds(tx: &mut sqlx::SqliteConnection) -> Result<Option<(i64, i64)>, StoreError> {
    let (oldest, head): (Option<i64>, Option<i64>) =
        sqlx::query_as("SELECT (SELECT MIN(block) FROM postings), (SELECT MAX(seq) FROM events)")
            .fetch_one(&mut *tx)
            .await?;
    Ok(oldest.zip(head))
}

/// Fills the filters of the full blocks stored before migration 0020, as an append that
/// fills a block writes them (raw.rs).
async fn backfill_filters(tx: &mut sqlx::SqliteConnection) -> Result<(), StoreError> {
    let Some((oldest, head)) = log_bounds(tx).await? else { return Ok(()) };
    let mut handle = tx.lock_handle().await?;
    raw::seal_blocks(handle.as_raw_handle(), block_filters::first_seq(oldest), head)
}

/// Fills the span filters of the spans full before migration 0021 (those the 0020 backfill
/// of the same upgrade sealed already are kept).
async fn backfill_spans(tx: &mut sqlx::SqliteConnection) -> Result<(), StoreError> {
    let Some((oldest, head)) = log_bounds(tx).await? else { return Ok(()) };
    let mut handle = tx.lock_handle().await?;
    raw::seal_spans(handle.as_raw_handle(), oldest, block_filters::last_full_block(head))
}

super::events::event_queries!(SqliteStore, SqliteRow, writer: writer);
super::query::search_queries!(SqliteStore, Sqlite, reader: reader, fence: "", postings: uses_postings);
super::lookup::filter_queries!(SqliteStore, Sqlite, reader: reader, writer: writer);
super::checkpoints::checkpoint_queries!(SqliteStore, Sqlite, SqliteRow, reader: reader, writer: writer);
super::keys::key_queries!(SqliteStore, Sqlite, SqliteRow, writer: writer);
super::rules::rule_queries!(SqliteStore, Sqlite, writer: writer);
super::alerts::alert_queries!(SqliteStore, Sqlite, SqliteRow, writer: writer);
super::alert_changes::alert_change_queries!(SqliteStore, Sqlite, writer: writer);
super::alert_stats::alert_stats_queries!(SqliteStore, Sqlite, reader: reader);
super::report_stats::report_queries!(SqliteStore, Sqlite, reader: reader, country: "json_extract(CAST(canon AS TEXT), '$.geo.country')");
super::escalations::escalation_queries!(SqliteStore, Sqlite, SqliteRow, writer: writer);
super::outbox::outbox_queries!(SqliteStore, Sqlite, SqliteRow, writer: writer, reader: reader);
super::outbox_claims::outbox_claim_queries!(SqliteStore, Sqlite, writer: writer);

/// The database's clock in epoch ms (outbox claims: never a node's clock).
const DB_NOW_MS: &str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";
/// The row-lock clause of the outbox claim's sub-select.
const SKIP_LOCKED: &str = "";

super::silences::silence_queries!(SqliteStore, Sqlite, writer: writer);
super::decisions::decision_queries!(SqliteStore, Sqlite, SqliteRow, writer: writer);
super::allowlist::allowlist_queries!(SqliteStore, Sqlite, writer: writer);
super::forwarders::forwarder_queries!(SqliteStore, Sqlite, writer: writer);

#[cfg(test)]
mod tests {
    use super::chunk_sizes_of;

    #[test]
    fn chunk_sizes_cover_every_row_with_few_distinct_statements() {
        for n in [0, 1, 3, 255, 256, 257, 500, 5000, 12_345] {
            let sizes = chunk_sizes_of(n, &[256, 64, 16, 4, 1]);
            assert_eq!(sizes.iter().sum::<usize>(), n);
            assert!(sizes.iter().all(|s| [256, 64, 16, 4, 1].contains(s)));
        }
    }
}
