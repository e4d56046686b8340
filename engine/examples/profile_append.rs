//! Appends W1-like rows to a fresh store the way the sequencer does (groups of `GROUP` rows
//! through `Store::append`, hashes chained), for profilers and before/after comparisons of
//! the write path: the rows are built before the timed part, so what is measured is the
//! store alone (statements, binding, B-trees, WAL, commit).
//! Run with: `cargo run --release -p vigil-engine --example profile_append -- 100000 2000`
//! (then under `valgrind --tool=callgrind --toggle-collect='*Store*append*'`).
//! With a third argument `postgres://user@host:port/db` the rows go to a fresh database
//! created next to `db` (dropped at the end), and the CPU time of that database's server
//! processes (read from /proc: the server must run on this machine) is reported too. A
//! fourth argument `unnest` appends with the statement `Store::append` used before binary
//! `COPY` (one `INSERT ... SELECT FROM UNNEST` of fifteen arrays, in the same transaction
//! steps), for an A/B in one build. Since migration 0019 that mode writes no postings (the
//! database it fills would not verify): compare the posting table against main's build.

use std::time::Instant;

use vigil::ledger::canon::to_canonical;
use vigil::ledger::chain::{GENESIS, chain_hash};
use vigil::store::{Store, StoredRow};

#[path = "../benches/support/w1.rs"]
mod w1;

fn main() {
    let mut args = std::env::args().skip(1);
    let total: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let group: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = std::env::temp_dir().join(format!("vigil-profile-append-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let pg = args.next().map(|url| rt.block_on(Scratch::create(&url)));
    let url = match &pg {
        Some(pg) => pg.url.clone(),
        None => format!("sqlite://{}/a.db", dir.display()),
    };
    let store = rt.block_on(Store::open(&url)).expect("store");
    let mut prev = GENESIS;
    let rows: Vec<StoredRow> = (0..total)
        .map(|i| {
            let mut event = w1::event(i);
            event.insert("ingest_key".into(), "k_profile".into());
            let canon = to_canonical(&event);
            let hash = chain_hash(&prev, &canon);
            let row = StoredRow::from_canon(i as i64 + 1, canon, prev.to_vec(), hash.to_vec()).expect("row");
            prev = hash;
            row
        })
        .collect();
    let unnest = args.next().is_some_and(|a| a == "unnest");
    let pool = match (&pg, unnest) {
        (Some(pg), true) => Some(rt.block_on(unnest::pool(&pg.url))),
        _ => None,
    };
    let server0 = pg.as_ref().map(|pg| rt.block_on(pg.server_cpu())).unwrap_or_default();
    let (cpu0, start) = (cpu_seconds(), Instant::now());
    for chunk in rows.chunks(group) {
        match &pool {
            Some(pool) => rt.block_on(unnest::append(pool, chunk)),
            None => rt.block_on(store.append(chunk, None)).expect("append"),
        }
    }
    let (cpu, wall) = (cpu_seconds() - cpu0, start.elapsed().as_secs_f64());
    let server = pg.as_ref().map(|pg| rt.block_on(pg.server_cpu())).unwrap_or_default();
    println!(
        "appended {total} rows in groups of {group}: {:.0} rows/s, {:.2} us wall and {:.2} us CPU per row",
        total as f64 / wall,
        wall * 1e6 / total as f64,
        cpu * 1e6 / total as f64
    );
    if pg.is_some() {
        // Server processes that ended during the run (the statistics vacuum's) are not counted.
        let per_row = server.iter().map(|(pid, t)| t - server0.get(pid).copied().unwrap_or(0.0)).sum::<f64>();
        println!("database server processes: {:.2} us CPU per row", per_row * 1e6 / total as f64);
    }
    drop(store);
    if let Some(pg) = pg {
        rt.block_on(pg.drop_database());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The PostgreSQL append before binary `COPY`: the same transaction (append lock, head and
/// floor read) with the event rows as one `INSERT ... SELECT FROM UNNEST` of fifteen arrays.
mod unnest {
    use sqlx::{Executor, PgPool};
    use vigil::store::{IndexedColumns, StoredRow};

    pub async fn pool(url: &str) -> PgPool {
        sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .after_connect(|conn, _| Box::pin(async move { conn.execute("SET ROLE vigil_app").await.map(|_| ()) }))
            .connect(url)
            .await
            .expect("pool")
    }

    pub async fn append(pool: &PgPool, rows: &[StoredRow]) {
        let mut tx = pool.begin().await.expect("begin");
        sqlx::query(
            "SELECT pg_advisory_xact_lock_shared(('x' || substr(encode(sha256(convert_to('vigil-append-v1:' || \
             current_database() || '.' || current_schema(), 'UTF8')), 'hex'), 1, 16))::bit(64)::bigint)",
        )
        .execute(&mut *tx)
        .await
        .expect("lock");
        sqlx::query("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")
            .persistent(false)
            .fetch_optional(&mut *tx)
            .await
            .expect("head");
        sqlx::query("SELECT floor FROM retention_floor WHERE id = 1")
            .persistent(false)
            .execute(&mut *tx)
            .await
            .expect("floor");
        let col = |f: fn(&IndexedColumns) -> Option<String>| rows.iter().map(|r| f(&r.columns)).collect::<Vec<_>>();
        sqlx::query(
            "INSERT INTO events (seq, event_id, ts, category, action, severity, outcome, organization_id, user_id, ip, \
             request_id, ingest_key, canon, prev_hash, hash) SELECT * FROM UNNEST($1::int8[], $2::text[], $3::int8[], \
             $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], \
             $12::text[], $13::bytea[], $14::bytea[], $15::bytea[])",
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
        .bind(col(|c| c.ingest_key.clone()))
        .bind(rows.iter().map(|r| r.canon.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.prev_hash.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.hash.clone()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await
        .expect("insert");
        tx.commit().await.expect("commit");
    }
}

/// A PostgreSQL database made for one run.
struct Scratch {
    admin: String,
    name: String,
    url: String,
}

impl Scratch {
    async fn create(url: &str) -> Self {
        use sqlx::Connection;
        let (base, _) = url.rsplit_once('/').expect("a postgres:// URL ending in /<database>");
        let name = format!("vigil_profile_append_{}", std::process::id());
        let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await.expect("create");
        let _ = conn.close().await;
        Self { admin: url.to_string(), url: format!("{base}/{name}"), name }
    }

    /// CPU seconds (user + system) of each server process connected to the database, by pid.
    async fn server_cpu(&self) -> std::collections::HashMap<i32, f64> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.admin).await.expect("connect");
        let pids: Vec<i32> = sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = $1")
            .bind(&self.name)
            .fetch_all(&mut conn)
            .await
            .expect("pg_stat_activity");
        let _ = conn.close().await;
        pids.into_iter().map(|pid| (pid, stat_seconds(&format!("/proc/{pid}/stat")))).collect()
    }

    async fn drop_database(self) {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.admin).await.expect("connect");
        let sql = format!("DROP DATABASE {} WITH (FORCE)", self.name);
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.expect("drop");
        let _ = conn.close().await;
    }
}

/// This process's user + system CPU time, from /proc (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    stat_seconds("/proc/self/stat")
}

/// User + system CPU seconds of the process whose `/proc/<pid>/stat` is `path`.
fn stat_seconds(path: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(path) else { return 0.0 };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line; field 3 is the first after the name.
    // Clock ticks are 100 per second on Linux.
    (ticks(11) + ticks(12)) / 100.0
}
