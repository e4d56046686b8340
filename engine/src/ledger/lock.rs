//! One writer per log: `vigil serve` holds an exclusive lock on its log for its whole life,
//! so a second server on the same database refuses to start and says who holds it.
//!
//! SQLite: an advisory `flock` on `<database file>.lock` beside the database (released by
//! the kernel when the process dies, so a `kill -9` never leaves a stale lock); the file
//! holds the holder's pid, host and start time. PostgreSQL: a session advisory lock on a
//! dedicated connection, keyed by database and schema; the connection's
//! `application_name` names the holder. The PostgreSQL lock connection is watched: if it
//! drops and another server takes the lock meanwhile, this server stops writing (hold).

use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::Connection;

use super::IntegrityStatus;
use crate::ledger::chain::{Failure, FailureKind};

/// The held lock; dropping it releases it.
pub enum WriterLock {
    /// The lock file, locked.
    File(std::fs::File, PathBuf),
    /// The PostgreSQL watcher task (it holds the connection and the lock).
    Postgres(tokio::task::JoinHandle<()>),
    /// An in-memory SQLite database: nothing to share, nothing to lock.
    Memory,
}

impl std::fmt::Debug for WriterLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriterLock::File(_, p) => write!(f, "WriterLock::File({})", p.display()),
            WriterLock::Postgres(_) => f.write_str("WriterLock::Postgres"),
            WriterLock::Memory => f.write_str("WriterLock::Memory"),
        }
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        if let WriterLock::Postgres(task) = self {
            task.abort();
        }
    }
}

fn holder_text() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!(
        "vigil serve, pid {} on {} since {}",
        std::process::id(),
        host.trim(),
        crate::event::format_rfc3339_ms(crate::event::now_ms())
    )
}

/// The SQLite database file named by a `sqlite:` URL (None for in-memory databases).
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// Takes the writer lock of the log at `database_url`, or says who holds it.
pub async fn acquire(database_url: &str, status: Arc<IntegrityStatus>) -> anyhow::Result<WriterLock> {
    if database_url.starts_with("sqlite:") {
        let Some(db) = sqlite_path(database_url) else { return Ok(WriterLock::Memory) };
        let mut path = db.into_os_string();
        path.push(".lock");
        let path = PathBuf::from(path);
        let mut file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
        match file.try_lock() {
            Ok(()) => {
                file.set_len(0)?;
                file.rewind()?;
                file.write_all(holder_text().as_bytes())?;
                file.sync_all()?;
                Ok(WriterLock::File(file, path))
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                anyhow::bail!(
                    "another server is writing this log ({}; lock {}). One writer per log: stop it first",
                    if holder.trim().is_empty() { "holder unknown" } else { holder.trim() },
                    path.display()
                )
            }
            Err(std::fs::TryLockError::Error(e)) => Err(anyhow::anyhow!("cannot lock {}: {e}", path.display())),
        }
    } else {
        let (conn, key) = pg_lock(database_url).await?;
        let url = database_url.to_owned();
        let task = tokio::spawn(watch_pg(conn, key, url, status));
        Ok(WriterLock::Postgres(task))
    }
}

async fn pg_lock(url: &str) -> anyhow::Result<(sqlx::PgConnection, i64)> {
    let holder = holder_text();
    let options = sqlx::postgres::PgConnectOptions::from_str(url)?.application_name(&holder);
    let mut conn = sqlx::PgConnection::connect_with(&options).await?;
    let (db, schema): (String, String) =
        sqlx::query_as("SELECT current_database()::text, current_schema()::text").fetch_one(&mut conn).await?;
    let digest = Sha256::digest(format!("vigil-writer-v1:{db}.{schema}"));
    let key = i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(key).fetch_one(&mut conn).await?;
    if !got {
        let who: Option<(Option<String>, Option<i32>, Option<String>)> = sqlx::query_as(
            "SELECT a.application_name::text, a.pid, a.client_addr::text FROM pg_locks l \
             JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted \
             AND l.classid::bigint = (($1::bigint >> 32) & 4294967295) AND l.objid::bigint = ($1::bigint & 4294967295) LIMIT 1",
        )
        .bind(key)
        .fetch_optional(&mut conn)
        .await
        .unwrap_or(None);
        let who = match who {
            Some((name, pid, addr)) => format!(
                "{} (PostgreSQL backend pid {}, client {})",
                name.unwrap_or_default(),
                pid.unwrap_or_default(),
                addr.unwrap_or_else(|| "local".into())
            ),
            None => "holder unknown".into(),
        };
        anyhow::bail!(
            "another server is writing this log ({who}; advisory lock on {db}.{schema}). One writer per log: stop it first"
        );
    }
    // A writer killed a moment ago may still have an append transaction in flight on the
    // server (its COMMIT sent, or its session not yet reaped): wait until every append
    // holding the append lock has ended, so the head read next is final.
    use crate::store::postgres::{APPEND_LOCK_DRAIN, APPEND_LOCK_RELEASE};
    sqlx::query("SET lock_timeout = '60s'").execute(&mut conn).await?;
    if let Err(e) = sqlx::query(APPEND_LOCK_DRAIN).execute(&mut conn).await {
        anyhow::bail!(
            "a previous writer's append transaction on {db}.{schema} did not end within 60 s ({e}); \
             find it in pg_stat_activity and start again once it has ended"
        );
    }
    sqlx::query(APPEND_LOCK_RELEASE).execute(&mut conn).await?;
    sqlx::query("SET lock_timeout = 0").execute(&mut conn).await?;
    Ok((conn, key))
}

/// Keeps the lock connection alive; after it drops, takes the lock again or, when another
/// server took it meanwhile, puts the log on hold.
async fn watch_pg(mut conn: sqlx::PgConnection, key: i64, url: String, status: Arc<IntegrityStatus>) {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        if sqlx::query("SELECT 1").execute(&mut conn).await.is_ok() {
            continue;
        }
        tracing::warn!("Lost the PostgreSQL writer-lock connection; taking the lock again");
        loop {
            match pg_lock(&url).await {
                Ok((c, _)) => {
                    conn = c;
                    break;
                }
                Err(e) if e.to_string().contains("another server") => {
                    tracing::error!(error = %e, "Another server took the writer lock; this one stops writing");
                    status.set_hold(
                        vec![Failure {
                            seq: 0,
                            kind: FailureKind::ChainBreak,
                            expected: "this server holds the writer lock".into(),
                            actual: e.to_string(),
                        }],
                        crate::event::now_ms(),
                    );
                    return;
                }
                Err(_) => tokio::time::sleep(Duration::from_secs(2)).await,
            }
        }
        let _ = key;
    }
}
