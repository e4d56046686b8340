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

/// The `cluster_leases` row of detection slot 0's lease (docs/cluster.md, "Detection"); slot
/// `s` has the row [`slot_lease`]`(s)` = `-1 - s`.
pub const DETECTION_LEASE: i32 = -1;

pub use crate::config::MAX_DETECTION_SLOTS;

/// The `cluster_leases` row of detection slot `slot`: `-1 - slot`.
pub fn slot_lease(slot: u32) -> i32 {
    -1 - slot as i32
}

/// The detection slot whose lease is the `cluster_leases` row `partition` (None: a
/// partition's lease).
pub fn lease_slot(partition: i32) -> Option<u32> {
    (partition < 0).then(|| (-1 - partition) as u32)
}

/// One row of `cluster_detect_cursors`: detection slot `slot` has recorded the findings of
/// its rules on partition `partition` up to `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DetectCursor {
    pub slot: u32,
    pub partition: u32,
    pub seq: i64,
}

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

/// Longest a lease statement waits for the lease row's lock. A writer stuck inside its
/// append transaction (its node cut off from the network mid-commit) holds its lease row
/// shared until PostgreSQL ends its session ([`WRITER_SESSION`]); the member round
/// must not wait for it meanwhile, or its own leases lapse while it waits.
const LEASE_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '1s'";

/// Set on every session of a partition writer, so that PostgreSQL ends a writer's session
/// within seconds once its node is gone in the middle of a commit, which rolls the
/// transaction back and releases the lease row and the append lock it holds, so that
/// another node can take the partition over:
/// - a transaction left idle that long (the node sent nothing more) is ended;
/// - data PostgreSQL sent that stays unacknowledged that long (e.g. its answer to the
///   `COPY` that starts the rows, after which it waits for the rows) closes the connection
///   (`tcp_user_timeout`; an idle-in-transaction limit does not cover a `COPY` waiting for
///   its data);
/// - keepalives find a silent peer when nothing is in flight.
///
/// A live writer sends its statements back to back; if one ever stalls this long, its
/// transaction fails as a whole and its requests are answered 503 (nothing half-stored).
pub(super) const WRITER_SESSION: [&str; 5] = [
    "SET idle_in_transaction_session_timeout = 2000",
    "SET tcp_user_timeout = 2000",
    "SET tcp_keepalives_idle = 2",
    "SET tcp_keepalives_interval = 1",
    "SET tcp_keepalives_count = 2",
];

/// PostgreSQL's `lock_not_available` (a `lock_timeout` ran out).
fn lock_not_available(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("55P03"))
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
            let mut tx = s.pool().begin().await?;
            sqlx::query(LEASE_LOCK_TIMEOUT).execute(&mut *tx).await?;
            let taken = sqlx::query_scalar(
                "UPDATE cluster_leases SET owner = $2, epoch = epoch + 1, acquired_at = now(), \
                 expires_at = now() + make_interval(secs => $3::float8 / 1000) \
                 WHERE partition = $1 AND expires_at <= now() RETURNING epoch",
            )
            .bind(partition)
            .bind(owner)
            .bind(lease_ms as f64)
            .fetch_optional(&mut *tx)
            .await;
            let epoch: Option<i64> = match taken {
                Ok(epoch) => epoch,
                Err(e) if lock_not_available(&e) => {
                    // The old writer's last transaction is still open: next round.
                    tracing::info!(partition, "The lease is still locked by its old writer's open transaction; trying again");
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            };
            tx.commit().await?;
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
            let mut tx = s.pool().begin().await?;
            sqlx::query(LEASE_LOCK_TIMEOUT).execute(&mut *tx).await?;
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
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
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

    /// The schema of this (base) store: partition 0's log, and the prefix of the other
    /// partitions' schemas ([`partition_schema`]).
    pub async fn base_schema(&self) -> Result<String, StoreError> {
        pg_only!(self, s => Ok(sqlx::query_scalar("SELECT current_schema()::text").fetch_one(s.pool()).await?))
    }

    /// The head seq of each of the `partitions` partitions of the log whose partition 0 is
    /// schema `base` (0: empty), in one statement through this store's pool, so a node that
    /// reads no partition's events opens no partition store.
    pub async fn partition_heads(&self, base: &str, partitions: u32) -> Result<Vec<i64>, StoreError> {
        let sql = (0..partitions)
            .map(|p| {
                let schema = if p == 0 { base.to_owned() } else { partition_schema(base, p) };
                format!(
                    "SELECT {p}::int4 AS p, COALESCE((SELECT seq FROM {}.events ORDER BY seq DESC LIMIT 1), 0)::int8",
                    super::postgres::quote_ident(&schema)
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        pg_only!(self, s => {
            let rows: Vec<(i32, i64)> =
                sqlx::query_as(sqlx::AssertSqlSafe(sql)).persistent(false).fetch_all(s.pool()).await?;
            let mut heads = vec![0; partitions as usize];
            for (p, seq) in rows {
                heads[p as usize] = seq;
            }
            Ok(heads)
        })
    }

    /// The detection cursors: per detection slot and partition, the seq up to which the
    /// findings of the slot's rules are recorded (a pair without a row: 0).
    pub async fn detect_cursors(&self) -> Result<Vec<DetectCursor>, StoreError> {
        pg_only!(self, s => {
            let rows: Vec<(i32, i32, i64)> =
                sqlx::query_as("SELECT slot, partition, seq FROM cluster_detect_cursors ORDER BY slot, partition")
                    .fetch_all(s.pool())
                    .await?;
            Ok(rows
                .into_iter()
                .map(|(slot, partition, seq)| DetectCursor { slot: slot as u32, partition: partition as u32, seq })
                .collect())
        })
    }

    /// Moves the cursor of `partition` for the detection slot whose lease is `fence` to
    /// `seq`, only while that lease is current and unexpired, checked and share-locked in
    /// the same statement. False: the lease was lost (nothing moved).
    pub async fn advance_detect_cursor(&self, fence: &Fence, partition: i32, seq: i64) -> Result<bool, StoreError> {
        let moved = self.advance_detect_cursors(partition, &[(fence.clone(), seq)]).await?;
        Ok(!moved.is_empty())
    }

    /// [`Self::advance_detect_cursor`] for several slots' leases at once (one statement):
    /// each `(fence, seq)` moves its slot's cursor of `partition` only while its own lease is
    /// current. Returns the slots whose cursor moved (a missing one lost its lease). A fence
    /// that is not a slot's lease moves nothing.
    pub async fn advance_detect_cursors(&self, partition: i32, moves: &[(Fence, i64)]) -> Result<Vec<u32>, StoreError> {
        let moves: Vec<&(Fence, i64)> = moves.iter().filter(|(f, _)| lease_slot(f.partition).is_some()).collect();
        if moves.is_empty() {
            return Ok(Vec::new());
        }
        pg_only!(self, s => {
            let moved: Vec<i32> = sqlx::query_scalar(
                "INSERT INTO cluster_detect_cursors (slot, partition, seq, epoch, updated_at) \
                 SELECT -1 - l.partition, $1, t.q, l.epoch, now() \
                 FROM UNNEST($2::int4[], $3::text[], $4::int8[], $5::int8[]) AS t(lease, owner, e, q) \
                 JOIN cluster_leases l ON l.partition = t.lease AND l.owner = t.owner AND l.epoch = t.e \
                 AND l.expires_at > now() FOR SHARE OF l \
                 ON CONFLICT (slot, partition) DO UPDATE SET seq = GREATEST(cluster_detect_cursors.seq, EXCLUDED.seq), \
                 epoch = EXCLUDED.epoch, updated_at = now() RETURNING slot",
            )
            .bind(partition)
            .bind(moves.iter().map(|(f, _)| f.partition).collect::<Vec<_>>())
            .bind(moves.iter().map(|(f, _)| f.owner.clone()).collect::<Vec<_>>())
            .bind(moves.iter().map(|(f, _)| f.epoch).collect::<Vec<_>>())
            .bind(moves.iter().map(|(_, q)| *q).collect::<Vec<_>>())
            .fetch_all(s.pool())
            .await?;
            Ok(moved.into_iter().map(|s| s as u32).collect())
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

/// Creates the cluster's shape on first use, as the login user: records `partitions` and
/// `detection_slots` (or checks them against the recorded values: they are fixed at
/// creation), creates each partition's schema and lease row and each detection slot's lease
/// row. Idempotent; one node at a time (an advisory lock).
pub(super) async fn init_cluster(
    conn: &mut sqlx::PgConnection,
    partitions: u32,
    detection_slots: u32,
) -> Result<u32, StoreError> {
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
        init_detection_slots(&mut *conn, detection_slots).await?;
        create_all_partitions_views(conn, partitions).await?;
        Ok(stored as u32)
    }
    .await;
    sqlx::query("SELECT pg_advisory_unlock(7415162)").execute(&mut *conn).await?;
    result
}

/// Records the number of detection slots (or checks it) and creates each slot's lease row
/// (docs/cluster.md, "Detection"). When the number is recorded now on a cluster whose single
/// detection holder had cursors (migration 0016, now slot 0's), every other slot starts from
/// a copy of them (every rule had evaluated up to there), with epoch 0 (its own lease's).
async fn init_detection_slots(conn: &mut sqlx::PgConnection, slots: u32) -> Result<(), StoreError> {
    if !(1..=MAX_DETECTION_SLOTS).contains(&slots) {
        return Err(StoreError::Cluster(format!("detection_slots must be between 1 and {MAX_DETECTION_SLOTS}")));
    }
    let recorded_now =
        sqlx::query("INSERT INTO cluster_detection (id, slots) VALUES (1, $1) ON CONFLICT (id) DO NOTHING")
            .bind(slots as i32)
            .execute(&mut *conn)
            .await?
            .rows_affected()
            == 1;
    let stored: i32 =
        sqlx::query_scalar("SELECT slots FROM cluster_detection WHERE id = 1").fetch_one(&mut *conn).await?;
    if stored as u32 != slots {
        return Err(StoreError::Cluster(format!(
            "this cluster was created with {stored} detection slots and this node is configured with {slots}; \
             the number is fixed at creation: set [cluster] detection_slots = {stored}"
        )));
    }
    for slot in 0..slots {
        sqlx::query("INSERT INTO cluster_leases (partition) VALUES ($1) ON CONFLICT (partition) DO NOTHING")
            .bind(slot_lease(slot))
            .execute(&mut *conn)
            .await?;
    }
    if recorded_now && slots > 1 {
        sqlx::query(
            "INSERT INTO cluster_detect_cursors (slot, partition, seq, epoch) \
             SELECT s, c.partition, c.seq, 0 FROM cluster_detect_cursors c, generate_series(1, $1 - 1) AS s \
             WHERE c.slot = 0 ON CONFLICT (slot, partition) DO NOTHING",
        )
        .bind(slots as i32)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
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
