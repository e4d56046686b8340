//! PostgreSQL backend: migrations from `migrations/postgres` run as the connecting user,
//! then every pooled connection drops to the least-privileged `vigil_app` role (SELECT and
//! INSERT on the log) when it can. Bulk insert is one `INSERT ... SELECT FROM UNNEST(...)`.

use std::collections::HashMap;
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Connection, Executor, PgPool, Postgres, QueryBuilder, Row};

use crate::alerts::{AlertFilter, AlertRow};

use super::query::{self, Count, EventFilter, Stats, StatsFilter};
use super::{ApiKeyRow, Checkpoint, Head, IndexedColumns, StoreError, StoredRow};

/// The embedded migrations, in order: (version, description, sql).
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "events", include_str!("../../../migrations/postgres/0001_events.sql")),
    (2, "alerts", include_str!("../../../migrations/postgres/0002_alerts.sql")),
    (3, "severity_index", include_str!("../../../migrations/postgres/0003_severity_index.sql")),
    (4, "request_index", include_str!("../../../migrations/postgres/0004_request_index.sql")),
];

/// The application role the server acts as.
pub const APP_ROLE: &str = "vigil_app";

const SELECT_ROW: &str = "SELECT seq, event_id, ts, category, action, severity, outcome, organization_id, user_id, ip, \
                          request_id, canon, prev_hash, hash FROM events";

/// PostgreSQL store.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects, applies migrations, and builds a pool whose connections `SET ROLE vigil_app`.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        let mut conn = sqlx::PgConnection::connect_with(&options).await?;
        migrate(&mut conn).await?;
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
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if can_set {
                        conn.execute("SET ROLE vigil_app").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Self { pool })
    }

    pub(super) async fn head(&self) -> Result<Head, StoreError> {
        let row =
            sqlx::query("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetch_optional(&self.pool).await?;
        super::sqlite::head_from(row.map(|r| (r.get::<i64, _>(0), r.get::<Vec<u8>, _>(1))))
    }

    pub(super) async fn find_event_ids(&self, ids: &[String]) -> Result<HashMap<String, i64>, StoreError> {
        let rows = sqlx::query("SELECT event_id, seq FROM events WHERE event_id = ANY($1)")
            .bind(ids.to_vec())
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub(super) async fn append(&self, rows: &[StoredRow], checkpoint: Option<&Checkpoint>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let col = |f: fn(&IndexedColumns) -> Option<String>| rows.iter().map(|r| f(&r.columns)).collect::<Vec<_>>();
        sqlx::query(
            "INSERT INTO events (seq, event_id, ts, category, action, severity, outcome, organization_id, user_id, ip, \
             request_id, canon, prev_hash, hash) SELECT * FROM UNNEST($1::int8[], $2::text[], $3::int8[], $4::text[], \
             $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bytea[], \
             $13::bytea[], $14::bytea[])",
        )
        .bind(rows.iter().map(|r| r.seq).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.columns.event_id.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.columns.ts).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.columns.category.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.columns.action.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.columns.severity.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.columns.outcome.clone()).collect::<Vec<_>>())
        .bind(col(|c| c.organization_id.clone()))
        .bind(col(|c| c.user_id.clone()))
        .bind(col(|c| c.ip.clone()))
        .bind(col(|c| c.request_id.clone()))
        .bind(rows.iter().map(|r| r.canon.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.prev_hash.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.hash.clone()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        if let Some(cp) = checkpoint {
            sqlx::query("INSERT INTO checkpoints (id, seq, hash, created_at, prev_id, signature) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(cp.id)
                .bind(cp.seq)
                .bind(cp.hash.clone())
                .bind(cp.created_at)
                .bind(cp.prev_id)
                .bind(cp.signature.clone())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn scan(&self, from: i64, to: i64, limit: i64) -> Result<Vec<StoredRow>, StoreError> {
        let rows =
            sqlx::query(AssertSqlSafe(format!("{SELECT_ROW} WHERE seq >= $1 AND seq <= $2 ORDER BY seq LIMIT $3")))
                .bind(from)
                .bind(to)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.iter().map(stored_row).collect())
    }

    pub(super) async fn first_seq_since(&self, ts: i64) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT MIN(seq) FROM events WHERE ts >= $1").bind(ts).fetch_one(&self.pool).await?)
    }

    pub(super) async fn max_ts(&self) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT MAX(ts) FROM events").fetch_one(&self.pool).await?)
    }

    pub(super) async fn seq_bounds(
        &self,
        since: Option<i64>,
        until: Option<i64>,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        let mut qb = QueryBuilder::<Postgres>::new("SELECT MIN(seq), MAX(seq) FROM events WHERE 1=1");
        query::push_time_range(&mut qb, since, until);
        let row = qb.build().fetch_one(&self.pool).await?;
        Ok(row.get::<Option<i64>, _>(0).zip(row.get::<Option<i64>, _>(1)))
    }

    pub(super) async fn query(&self, filter: &EventFilter) -> Result<Vec<StoredRow>, StoreError> {
        let mut qb = QueryBuilder::<Postgres>::new(SELECT_ROW);
        query::push_event_filter(&mut qb, filter);
        qb.push(" ORDER BY seq DESC LIMIT ").push_bind(filter.limit);
        let rows = qb.build().fetch_all(&self.pool).await?;
        Ok(rows.iter().map(stored_row).collect())
    }

    pub(super) async fn stats(&self, f: &StatsFilter) -> Result<Stats, StoreError> {
        let mut stats = Stats::default();
        let counts = |column: &str, limit: Option<i64>| {
            let mut qb = QueryBuilder::<Postgres>::new(format!("SELECT {column}, COUNT(*) AS n FROM events"));
            query::push_stats_filter(&mut qb, f);
            qb.push(format_args!(" AND {column} IS NOT NULL GROUP BY {column} ORDER BY n DESC, {column}"));
            if let Some(limit) = limit {
                qb.push(" LIMIT ").push_bind(limit);
            }
            qb
        };
        for (i, column) in query::GROUPED_COLUMNS.iter().enumerate() {
            let found = fetch_counts(&self.pool, counts(column, None)).await?;
            match i {
                0 => stats.by_category = found,
                1 => stats.by_severity = found,
                2 => stats.by_outcome = found,
                _ => stats.by_action = found,
            }
        }
        stats.top_ips = fetch_counts(&self.pool, counts("ip", Some(f.top))).await?;
        stats.top_users = fetch_counts(&self.pool, counts("user_id", Some(f.top))).await?;
        let mut qb = QueryBuilder::<Postgres>::new(
            "SELECT COUNT(*)::int8, COUNT(*) FILTER (WHERE outcome = 'failure')::int8, \
             COUNT(*) FILTER (WHERE severity IN ('high', 'critical'))::int8 FROM events",
        );
        query::push_stats_filter(&mut qb, f);
        let row = qb.build().fetch_one(&self.pool).await?;
        let failures: i64 = row.get(1);
        stats.total = row.get(0);
        stats.high_risk = row.get(2);
        stats.failure_rate = if stats.total > 0 { failures as f64 / stats.total as f64 } else { 0.0 };
        let mut qb = QueryBuilder::<Postgres>::new("SELECT (ts / ");
        qb.push_bind(f.bucket_ms).push(") * ").push_bind(f.bucket_ms).push(" AS b, COUNT(*)::int8 FROM events");
        query::push_stats_filter(&mut qb, f);
        qb.push(" GROUP BY b ORDER BY b LIMIT 10000");
        stats.buckets = qb
            .build()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| query::Bucket { start: crate::ingest::format_rfc3339_ms(r.get(0)), count: r.get(1) })
            .collect();
        Ok(stats)
    }

    pub(super) async fn checkpoints(&self, from: i64, to: i64) -> Result<Vec<Checkpoint>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, seq, hash, created_at, prev_id, signature FROM checkpoints WHERE seq >= $1 AND seq <= $2 ORDER BY id",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(checkpoint_row).collect())
    }

    pub(super) async fn last_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        let row = sqlx::query(
            "SELECT id, seq, hash, created_at, prev_id, signature FROM checkpoints ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(checkpoint_row))
    }

    pub(super) async fn insert_key(&self, key: &ApiKeyRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (id, name, role, key_hash, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(key.id.clone())
        .bind(key.name.clone())
        .bind(key.role.clone())
        .bind(key.key_hash.clone())
        .bind(key.created_at)
        .bind(key.revoked_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn list_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, role, key_hash, created_at, revoked_at FROM api_keys ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(key_row).collect())
    }

    pub(super) async fn revoke_key(&self, id: &str, at: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(at)
            .bind(id.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn record_alert(&self, a: &AlertRow, window_ms: i64) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let open: Option<(i64, String)> = sqlx::query_as(
            "SELECT id, event_seqs FROM alerts WHERE rule = $1 AND severity = $2 AND dedup_key = $3 \
             AND status = 'open' AND last_seen >= $4 ORDER BY id DESC LIMIT 1",
        )
        .bind(a.rule.clone())
        .bind(a.severity.clone())
        .bind(a.dedup_key.clone())
        .bind(a.first_seen - window_ms)
        .fetch_optional(&mut *tx)
        .await?;
        let id = match open {
            Some((id, seqs)) => {
                sqlx::query(
                    "UPDATE alerts SET count = count + 1, last_seen = GREATEST(last_seen, $1), event_seqs = $2 WHERE id = $3",
                )
                .bind(a.last_seen)
                .bind(crate::alerts::merge_seqs(&seqs, &a.event_seqs))
                .bind(id)
                .execute(&mut *tx)
                .await?;
                id
            }
            None => {
                sqlx::query_scalar(
                    "INSERT INTO alerts (rule, rule_version, rule_sha256, severity, title, dedup_key, status, count, \
                     first_seen, last_seen, event_seqs, fields, actions, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
                )
                .bind(a.rule.clone())
                .bind(a.rule_version.clone())
                .bind(a.rule_sha256.clone())
                .bind(a.severity.clone())
                .bind(a.title.clone())
                .bind(a.dedup_key.clone())
                .bind(a.status.clone())
                .bind(a.count)
                .bind(a.first_seen)
                .bind(a.last_seen)
                .bind(a.event_seqs.clone())
                .bind(a.fields.clone())
                .bind(a.actions.clone())
                .bind(a.created_at)
                .fetch_one(&mut *tx)
                .await?
            }
        };
        tx.commit().await?;
        Ok(id)
    }

    pub(super) async fn list_alerts(&self, f: &AlertFilter) -> Result<Vec<AlertRow>, StoreError> {
        let mut qb = QueryBuilder::<Postgres>::new(
            "SELECT id, rule, rule_version, rule_sha256, severity, title, dedup_key, status, count, first_seen, \
             last_seen, event_seqs, fields, actions, created_at FROM alerts",
        );
        crate::alerts::push_alert_filter(&mut qb, f);
        qb.push(" ORDER BY id DESC LIMIT ").push_bind(f.limit);
        let rows = qb.build().fetch_all(&self.pool).await?;
        Ok(rows.iter().map(alert_row).collect())
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
        sqlx::query("INSERT INTO _vigil_migrations (version, description, applied_at) VALUES ($1, $2, $3)")
            .bind(*version)
            .bind(*description)
            .bind(crate::ingest::now_ms())
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        tx.commit().await.map_err(fail)?;
    }
    Ok(())
}

async fn fetch_counts(pool: &PgPool, mut qb: QueryBuilder<Postgres>) -> Result<Vec<Count>, StoreError> {
    let rows = qb.build().fetch_all(pool).await?;
    Ok(rows.iter().map(|r| Count { value: r.get(0), count: r.get(1) }).collect())
}

fn stored_row(r: &PgRow) -> StoredRow {
    StoredRow {
        seq: r.get(0),
        columns: IndexedColumns {
            event_id: r.get(1),
            ts: r.get(2),
            category: r.get(3),
            action: r.get(4),
            severity: r.get(5),
            outcome: r.get(6),
            organization_id: r.get(7),
            user_id: r.get(8),
            ip: r.get(9),
            request_id: r.get(10),
        },
        canon: r.get(11),
        prev_hash: r.get(12),
        hash: r.get(13),
    }
}

fn checkpoint_row(r: &PgRow) -> Checkpoint {
    Checkpoint {
        id: r.get(0),
        seq: r.get(1),
        hash: r.get(2),
        created_at: r.get(3),
        prev_id: r.get(4),
        signature: r.get(5),
    }
}

fn key_row(r: &PgRow) -> ApiKeyRow {
    ApiKeyRow {
        id: r.get(0),
        name: r.get(1),
        role: r.get(2),
        key_hash: r.get(3),
        created_at: r.get(4),
        revoked_at: r.get(5),
    }
}

fn alert_row(r: &PgRow) -> AlertRow {
    AlertRow {
        id: r.get(0),
        rule: r.get(1),
        rule_version: r.get(2),
        rule_sha256: r.get(3),
        severity: r.get(4),
        title: r.get(5),
        dedup_key: r.get(6),
        status: r.get(7),
        count: r.get(8),
        first_seen: r.get(9),
        last_seen: r.get(10),
        event_seqs: r.get(11),
        fields: r.get(12),
        actions: r.get(13),
        created_at: r.get(14),
    }
}
