//! Cluster mode's tables (PostgreSQL only, migration 0015; docs/cluster.md): the cluster's
//! fixed shape (`cluster_meta`), node heartbeats (`cluster_nodes`), the partition leases with
//! their fencing tokens (`cluster_leases`), and the schema of each partition's log. Every
//! time here is PostgreSQL's clock (`now()`), never a node's. The `cluster` service (L5)
//! drives them; the append transaction of a partition store checks its [`Fence`]
//! (postgres.rs) so a writer whose lease was taken over can never commit again.

use sqlx::Row;

use super::{Store, StoreError};

/// The fencing token of a partition writer: the lease `(partition, owner, epoch)` it holds.
/// Every append transaction of its store checks, inside the transaction and with a share
/// lock on the lease row, that this lease is still current and unexpired; a takeover (which
/// updates that row with a higher epoch) waits for such a transaction to end, and after it
/// no transaction carrying the old epoch can pass the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The partition.
    pub partition: i32,
    /// The node holding the lease.
    pub owner: String,
    /// The lease's epoch (only grows).
    pub epoch: i64,
}

/// The check every fenced append runs first.
pub(super) const FENCE_CHECK: &str = "SELECT 1 FROM cluster_leases WHERE partition = $1 AND owner = $2 AND epoch = $3 \
                                      AND expires_at > now() FOR SHARE";

/// The `cluster_leases` row of the detection lease: its holder runs the rules over every
/// partition (docs/cluster.md, "Detection").
pub const DETECTION_LEASE: i32 = -1;

/// One row of `cluster_nodes`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeRow {
    pub node_id: String,
    pub address: String,
    /// Epoch ms (PostgreSQL's clock).
    pub started_at: i64,
    pub last_seen: i64,
    /// Seen within the liveness window asked for.
    pub live: bool,
}

/// One row of `cluster_leases`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeaseRow {
    pub partition: i32,
    pub owner: Option<String>,
    pub epoch: i64,
    /// Epoch ms (PostgreSQL's clock); in the past: free to take.
    pub expires_at: i64,
    /// Not expired now (PostgreSQL's clock).
    pub live: bool,
}

/// Name of partition `p`'s schema, for a log whose partition 0 lives in `base`.
pub fn partition_schema(base: &str, partition: u32) -> String {
    format!("{base}_p{partition}")
}

/// Name of the schema of the read-only views over every partition's log (`events` and
/// `checkpoints`, each row with its `partition`), for a log whose partition 0 lives in `base`.
pub fn all_partitions_schema(base: &str) -> String {
    format!("{base}_pall")
}

fn not_postgres() -> StoreError {
    StoreError::Cluster("cluster mode needs a PostgreSQL database (postgres://...)".into())
}

macro_rules! pg_only {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Postgres($s) => $e,
            Store::Sqlite(_) => Err(not_postgres()),
        }
    };
}

impl Store {
    /// Writes this node's heartbeat (inserted on first call); returns PostgreSQL's now, ms.
    pub async fn cluster_heartbeat(&self, node_id: &str, address: &str) -> Result<i64, StoreError> {
        pg_only!(self, s => {
            let now: i64 = sqlx::query_scalar(
                "INSERT INTO cluster_nodes (node_id, address) VALUES ($1, $2) ON CONFLICT (node_id) DO UPDATE \
                 SET address = EXCLUDED.address, last_seen = now() \
                 RETURNING (extract(epoch FROM now()) * 1000)::int8",
            )
            .bind(node_id)
            .bind(address)
            .fetch_one(s.pool())
            .await?;
            Ok(now)
        })
    }

    /// Marks a node as just started (its `started_at`), e.g. when it rejoins.
    pub async fn cluster_node_started(&self, node_id: &str, address: &str) -> Result<(), StoreError> {
        pg_only!(self, s => {
            sqlx::query(
                "INSERT INTO cluster_nodes (node_id, address) VALUES ($1, $2) ON CONFLICT (node_id) DO UPDATE \
                 SET address = EXCLUDED.address, started_at = now(), last_seen = now()",
            )
            .bind(node_id)
            .bind(address)
            .execute(s.pool())
            .await?;
            Ok(())
        })
    }

    /// Every node, `live` when seen within the last `within_ms`.
    pub async fn cluster_nodes(&self, within_ms: i64) -> Result<Vec<NodeRow>, StoreError> {
        pg_only!(self, s => {
            let rows = sqlx::query(
                "SELECT node_id, address, (extract(epoch FROM started_at) * 1000)::int8 AS started_at, \
                 (extract(epoch FROM last_seen) * 1000)::int8 AS last_seen, \
                 last_seen > now() - make_interval(secs => $1::float8 / 1000) AS live \
                 FROM cluster_nodes ORDER BY node_id",
            )
            .bind(within_ms as f64)
            .fetch_all(s.pool())
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(NodeRow {
                        node_id: r.try_get("node_id")?,
                        address: r.try_get("address")?,
                        started_at: r.try_get("started_at")?,
                        last_seen: r.try_get("last_seen")?,
                        live: r.try_get("live")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(StoreError::from)
        })
    }

    /// Every partition's lease.
    pub async fn cluster_leases(&self) -> Result<Vec<LeaseRow>, StoreError> {
        pg_only!(self, s => {
            let rows = sqlx::query(
                "SELECT partition, owner, epoch, \
                 CASE WHEN expires_at = '-infinity' THEN 0 ELSE (extract(epoch FROM expires_at) * 1000)::int8 END \
                 AS expires_at, expires_at > now() AS live FROM cluster_leases ORDER BY partition",
            )
            .fetch_all(s.pool())
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(LeaseRow {
                        partition: r.try_get("partition")?,
                        owner: r.try_get("owner")?,
                        epoch: r.try_get("epoch")?,
                        expires_at: r.try_get("expires_at")?,
                        live: r.try_get("live")?,
                    })
                })
                .collect::<Result<Vec<_>, sqlx::Error>>()
                .map_err(StoreError::from)
        })
    }

    /// Takes partition `p`'s lease for `lease_ms` when it is free or expired (PostgreSQL's
    /// clock), with the next epoch. None: someone else holds it.
    pub async fn acquire_lease(&self, partition: i32, owner: &str, lease_ms: u64) -> Result<Option<Fence>, StoreError> {
        pg_only!(self, s => {
            let epoch: Option<i64> = sqlx::query_scalar(
                "UPDATE cluster_leases SET owner = $2, epoch = epoch + 1, acquired_at = now(), \
                 expires_at = now() + make_interval(secs => $3::float8 / 1000) \
                 WHERE partition = $1 AND expires_at <= now() RETURNING epoch",
            )
            .bind(partition)
            .bind(owner)
            .bind(lease_ms as f64)
            .fetch_optional(s.pool())
            .await?;
            Ok(epoch.map(|epoch| Fence { partition, owner: owner.to_owned(), epoch }))
        })
    }

    /// Extends a held lease by `lease_ms` from now. False: it expired or was taken over (the
    /// holder must stop writing; its store refuses anyway).
    pub async fn renew_lease(&self, fence: &Fence, lease_ms: u64) -> Result<bool, StoreError> {
        pg_only!(self, s => {
            let done = sqlx::query(
                "UPDATE cluster_leases SET expires_at = now() + make_interval(secs => $4::float8 / 1000) \
                 WHERE partition = $1 AND owner = $2 AND epoch = $3 AND expires_at > now()",
            )
            .bind(fence.partition)
            .bind(&fence.owner)
            .bind(fence.epoch)
            .bind(lease_ms as f64)
            .execute(s.pool())
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Renews every lease in `held` (all of `owner`) in one statement; returns the
    /// partitions whose lease was renewed (a missing one expired or was taken over).
    pub async fn renew_leases(&self, owner: &str, held: &[Fence], lease_ms: u64) -> Result<Vec<i32>, StoreError> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        pg_only!(self, s => {
            let renewed: Vec<i32> = sqlx::query_scalar(
                "UPDATE cluster_leases l SET expires_at = now() + make_interval(secs => $4::float8 / 1000) \
                 FROM UNNEST($2::int4[], $3::int8[]) AS t(p, e) \
                 WHERE l.partition = t.p AND l.epoch = t.e AND l.owner = $1 AND l.expires_at > now() \
                 RETURNING l.partition",
            )
            .bind(owner)
            .bind(held.iter().map(|f| f.partition).collect::<Vec<_>>())
            .bind(held.iter().map(|f| f.epoch).collect::<Vec<_>>())
            .bind(lease_ms as f64)
            .fetch_all(s.pool())
            .await?;
            Ok(renewed)
        })
    }

    /// Gives a held lease back (expires it now) so the partition's next owner need not wait.
    pub async fn release_lease(&self, fence: &Fence) -> Result<(), StoreError> {
        pg_only!(self, s => {
            sqlx::query(
                "UPDATE cluster_leases SET expires_at = now() WHERE partition = $1 AND owner = $2 AND epoch = $3 \
                 AND expires_at > now()",
            )
            .bind(fence.partition)
            .bind(&fence.owner)
            .bind(fence.epoch)
            .execute(s.pool())
            .await?;
            Ok(())
        })
    }

    /// The detection cursors: per partition, the seq up to which the rules' findings are
    /// recorded (a partition without a row: 0).
    pub async fn detect_cursors(&self) -> Result<Vec<(i32, i64)>, StoreError> {
        pg_only!(self, s => {
            let rows: Vec<(i32, i64)> =
                sqlx::query_as("SELECT partition, seq FROM cluster_detect_cursors ORDER BY partition")
                    .fetch_all(s.pool())
                    .await?;
            Ok(rows)
        })
    }

    /// Moves partition `partition`'s detection cursor to `seq`, only while `fence` (the
    /// detection lease) is current and unexpired, checked and share-locked in the same
    /// statement. False: the lease was lost (nothing moved).
    pub async fn advance_detect_cursor(&self, fence: &Fence, partition: i32, seq: i64) -> Result<bool, StoreError> {
        pg_only!(self, s => {
            let done = sqlx::query(
                "INSERT INTO cluster_detect_cursors (partition, seq, epoch, updated_at) \
                 SELECT $1, $2, epoch, now() FROM cluster_leases \
                 WHERE partition = $3 AND owner = $4 AND epoch = $5 AND expires_at > now() FOR SHARE \
                 ON CONFLICT (partition) DO UPDATE SET seq = GREATEST(cluster_detect_cursors.seq, EXCLUDED.seq), \
                 epoch = EXCLUDED.epoch, updated_at = now()",
            )
            .bind(partition)
            .bind(seq)
            .bind(fence.partition)
            .bind(&fence.owner)
            .bind(fence.epoch)
            .execute(s.pool())
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// The partition whose log this store reads and writes (0: a single node's log, or a
    /// cluster's partition 0).
    pub fn partition(&self) -> u32 {
        match self {
            Store::Postgres(s) => s.partition(),
            Store::Sqlite(_) => 0,
        }
    }

    /// The fencing token this store's appends carry (None: not a cluster partition writer).
    pub fn fence(&self) -> Option<&Fence> {
        match self {
            Store::Postgres(s) => s.fence(),
            Store::Sqlite(_) => None,
        }
    }
}

/// Creates the cluster's shape on first use, as the login user: records `partitions` (or
/// checks it against the recorded value: it is fixed at creation), creates each partition's
/// schema and lease row. Idempotent; one node at a time (an advisory lock).
pub(super) async fn init_cluster(conn: &mut sqlx::PgConnection, partitions: u32) -> Result<u32, StoreError> {
    sqlx::query("SELECT pg_advisory_lock(7415162)").execute(&mut *conn).await?;
    let result = async {
        sqlx::query("INSERT INTO cluster_meta (id, partitions) VALUES (1, $1) ON CONFLICT (id) DO NOTHING")
            .bind(partitions as i32)
            .execute(&mut *conn)
            .await?;
        let stored: i32 =
            sqlx::query_scalar("SELECT partitions FROM cluster_meta WHERE id = 1").fetch_one(&mut *conn).await?;
        if stored as u32 != partitions {
            return Err(StoreError::Cluster(format!(
                "this cluster was created with {stored} partitions and this node is configured with {partitions}; \
                 the number is fixed at creation: set [cluster] partitions = {stored}"
            )));
        }
        for p in 0..partitions as i32 {
            if p > 0 {
                sqlx::query("SELECT vigil_create_partition($1)").bind(p).execute(&mut *conn).await?;
            }
            sqlx::query("INSERT INTO cluster_leases (partition) VALUES ($1) ON CONFLICT (partition) DO NOTHING")
                .bind(p)
                .execute(&mut *conn)
                .await?;
        }
        // The detection lease (docs/cluster.md, "Detection").
        sqlx::query("INSERT INTO cluster_leases (partition) VALUES ($1) ON CONFLICT (partition) DO NOTHING")
            .bind(DETECTION_LEASE)
            .execute(&mut *conn)
            .await?;
        create_all_partitions_views(conn, partitions).await?;
        Ok(stored as u32)
    }
    .await;
    sqlx::query("SELECT pg_advisory_unlock(7415162)").execute(&mut *conn).await?;
    result
}

/// (Re)creates the read-only views over every partition (`<schema>_pall.events` and
/// `.checkpoints`: each partition's rows with their `partition` first, `UNION ALL`), which
/// the statistics and reports of a cluster read (PostgreSQL pushes their filters into each
/// partition's indexes). `CREATE OR REPLACE`: a column a later migration adds to the log is
/// appended by the next start.
async fn create_all_partitions_views(conn: &mut sqlx::PgConnection, partitions: u32) -> Result<(), StoreError> {
    let base: String = sqlx::query_scalar("SELECT current_schema()").fetch_one(&mut *conn).await?;
    let q = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    let all = q(&all_partitions_schema(&base));
    let union = |table: &str| {
        (0..partitions)
            .map(|p| {
                let schema = if p == 0 { base.clone() } else { partition_schema(&base, p) };
                format!("SELECT {p}::int4 AS partition, t.* FROM {}.{table} t", q(&schema))
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ")
    };
    let sql = format!(
        "CREATE SCHEMA IF NOT EXISTS {all}; \
         CREATE OR REPLACE VIEW {all}.events AS {}; \
         CREATE OR REPLACE VIEW {all}.checkpoints AS {}; \
         GRANT USAGE ON SCHEMA {all} TO vigil_app; \
         GRANT SELECT ON {all}.events, {all}.checkpoints TO vigil_app;",
        union("events"),
        union("checkpoints"),
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut *conn).await?;
    Ok(())
}
