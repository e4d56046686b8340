//! SQLite's WAL checkpoints, off the writer: a background task on a connection of its own
//! copies the WAL back into the database file (PASSIVE, so it never blocks the writer or a
//! reader), and asks the writer to **restart** the WAL when it has grown past
//! [`RESTART_FRAMES`] (docs/storage.md, "WAL checkpoints").
//!
//! Why the writer takes part: SQLite starts the WAL over from its first frame only when a
//! write transaction begins while every frame is already copied back. Under a continuous
//! load the writer begins its next group the moment the last one commits, so a PASSIVE
//! checkpoint never finds the WAL fully copied at that moment and the file grows for as
//! long as the load lasts (hundreds of MB in seconds), every frame written past its end.
//! Restarting from the writer connection between two groups copies the few frames the last
//! PASSIVE round left and makes the next commit write from the start of the file again,
//! over blocks it already has.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::AssertSqlSafe;
use sqlx::sqlite::SqliteConnectOptions;

/// How often the checkpointer runs `wal_checkpoint(PASSIVE)` while the WAL is small.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);
/// How often it runs while the WAL is large (a burst of writes).
const CHECKPOINT_INTERVAL_BUSY: Duration = Duration::from_millis(50);
/// WAL frames (pages) appended between two rounds above which the shorter interval is used.
const CHECKPOINT_BUSY_FRAMES: i64 = 1_000;
/// WAL frames (4 KiB pages: 16 MiB) above which the checkpointer asks the writer to restart
/// the WAL (tests set their own).
pub(super) const RESTART_FRAMES: i64 = 4_096;
/// Least time between two restart requests: a reader that keeps the WAL in use holds the
/// writer up at most [`RESTART_WAIT`] per this interval.
const RESTART_EVERY: Duration = Duration::from_millis(250);
/// How long the writer's restart waits for readers to leave the WAL.
pub(super) const RESTART_WAIT: Duration = Duration::from_millis(20);
/// A request the writer has not taken within this time (no group came) is withdrawn and
/// PASSIVE rounds resume.
const RESTART_STALE: Duration = Duration::from_secs(1);
/// WAL file size above which the checkpointer tries `wal_checkpoint(TRUNCATE)` (after a
/// long reader held every restart back). Well above what a restarted WAL reaches under
/// load (up to 64 MiB at 10M stored events): a truncated file is one the next commits
/// must extend again, block by block.
const WAL_TRUNCATE_BYTES: u64 = 128 << 20;
/// Least time between two TRUNCATE attempts.
const TRUNCATE_EVERY: Duration = Duration::from_secs(5);
/// Busy timeout of the checkpointer's connection: TRUNCATE waits for the write lock and for
/// readers at most this long (and holds up the writer at most this long).
pub(super) const CHECKPOINT_BUSY_TIMEOUT: Duration = Duration::from_millis(100);
/// Least time between two logged checkpoint errors.
const CHECKPOINT_LOG_EVERY: Duration = Duration::from_secs(60);

/// Stops the checkpointer task when dropped.
pub(super) struct CheckpointerGuard {
    pub(super) _stop: tokio::sync::oneshot::Sender<()>,
}

/// What one checkpointer round found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CheckpointRound {
    /// Frames in the WAL.
    pub log: i64,
    /// Frames of the WAL copied back to the database (by this or an earlier checkpoint).
    pub checkpointed: i64,
}

/// A WAL restart the checkpointer asks of the writer, which makes it before its next group.
#[derive(Debug, Default)]
pub(super) struct RestartRequest {
    wanted: AtomicBool,
}

impl RestartRequest {
    /// Whether a restart is asked for (the writer checks before each group).
    pub(super) fn wanted(&self) -> bool {
        self.wanted.load(Ordering::Acquire)
    }

    /// The writer made its attempt (or gave up on it).
    pub(super) fn done(&self) {
        self.wanted.store(false, Ordering::Release);
    }

    fn ask(&self) {
        self.wanted.store(true, Ordering::Release);
    }
}

/// Runs `PRAGMA wal_checkpoint(mode)` on `conn`: (busy, log frames, checkpointed frames).
async fn wal_checkpoint(conn: &mut sqlx::SqliteConnection, mode: &str) -> Result<CheckpointRound, sqlx::Error> {
    let (_busy, log, checkpointed): (i64, i64, i64) =
        sqlx::query_as(AssertSqlSafe(format!("PRAGMA wal_checkpoint({mode})"))).fetch_one(&mut *conn).await?;
    Ok(CheckpointRound { log, checkpointed })
}

/// The background checkpointer: PASSIVE checkpoints every [`CHECKPOINT_INTERVAL`] (sooner
/// while the WAL is large); past `restart_frames` frames it asks the writer for a restart
/// (`restart`) and pauses until the writer has made it; an occasional TRUNCATE when the
/// WAL file has grown past [`WAL_TRUNCATE_BYTES`] all the same. Errors are logged
/// (rate-limited) and never stop it; it ends when `stop` resolves (the store was dropped).
pub(super) async fn run_checkpointer(
    options: SqliteConnectOptions,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    restart: Arc<RestartRequest>,
    restart_frames: i64,
    rounds: Option<tokio::sync::mpsc::UnboundedSender<CheckpointRound>>,
) {
    use sqlx::ConnectOptions;
    let wal_path = {
        let mut p = options.get_filename().as_os_str().to_owned();
        p.push("-wal");
        std::path::PathBuf::from(p)
    };
    let mut conn: Option<sqlx::SqliteConnection> = None;
    let mut last_log: Option<Instant> = None;
    let mut suppressed = 0u64;
    let mut last_truncate = Instant::now();
    let mut asked_at: Option<Instant> = None;
    let mut wait = CHECKPOINT_INTERVAL;
    let mut prev_log = 0i64;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tokio::time::sleep(wait) => {}
        }
        if restart.wanted() {
            if asked_at.is_some_and(|t| t.elapsed() < RESTART_STALE) {
                // The writer copies what is left when it restarts; a PASSIVE round now
                // would only contend with it for the checkpoint lock.
                wait = CHECKPOINT_INTERVAL_BUSY;
                continue;
            }
            restart.done();
        }
        let result: Result<CheckpointRound, sqlx::Error> = async {
            if conn.is_none() {
                conn = Some(options.connect().await?);
            }
            let c = conn.as_mut().expect("connected above");
            let mut round = wal_checkpoint(c, "PASSIVE").await?;
            let wal_bytes = std::fs::metadata(&wal_path).map(|m| m.len()).unwrap_or(0);
            if wal_bytes > WAL_TRUNCATE_BYTES && last_truncate.elapsed() >= TRUNCATE_EVERY {
                last_truncate = Instant::now();
                // SQLITE_BUSY here (a long reader, a commit in flight) is not an error: the
                // next attempt comes in TRUNCATE_EVERY.
                if let Ok(r) = wal_checkpoint(c, "TRUNCATE").await {
                    round = r;
                }
            }
            Ok(round)
        }
        .await;
        match result {
            Ok(round) => {
                if round.log >= restart_frames && asked_at.is_none_or(|t| t.elapsed() >= RESTART_EVERY) {
                    asked_at = Some(Instant::now());
                    restart.ask();
                }
                // Frames appended since the last round (the WAL restarts from its start once
                // all of it was checkpointed): many means a burst, come back sooner.
                let grown = if round.log >= prev_log { round.log - prev_log } else { round.log };
                prev_log = round.log;
                wait = if grown > CHECKPOINT_BUSY_FRAMES { CHECKPOINT_INTERVAL_BUSY } else { CHECKPOINT_INTERVAL };
                if let Some(tx) = &rounds {
                    let _ = tx.send(round);
                }
            }
            Err(e) => {
                // A broken connection is reopened at the next round.
                conn = None;
                wait = CHECKPOINT_INTERVAL;
                if last_log.is_none_or(|t| t.elapsed() >= CHECKPOINT_LOG_EVERY) {
                    tracing::warn!(error = %e, suppressed, "SQLite WAL checkpoint failed (retried)");
                    last_log = Some(Instant::now());
                    suppressed = 0;
                } else {
                    suppressed += 1;
                }
            }
        }
    }
    if let Some(c) = conn {
        use sqlx::Connection;
        let _ = c.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::super::SqliteStore;
    use super::{CheckpointRound, RESTART_FRAMES};
    use crate::store::StoredRow;
    use sha2::Digest;

    fn wal_len(db: &std::path::Path) -> u64 {
        let mut p = db.as_os_str().to_owned();
        p.push("-wal");
        std::fs::metadata(std::path::PathBuf::from(p)).map(|m| m.len()).unwrap_or(0)
    }

    /// A store in a new temp dir (named by `tag`) whose WAL restarts past `restart_frames`,
    /// and the receiver of its checkpointer's rounds.
    async fn open_store(
        tag: u32,
        restart_frames: i64,
    ) -> (std::path::PathBuf, std::path::PathBuf, SqliteStore, tokio::sync::mpsc::UnboundedReceiver<CheckpointRound>)
    {
        let dir = std::env::temp_dir().join(format!("vigil-walckpt-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("v.db");
        let (tx, rounds) = tokio::sync::mpsc::unbounded_channel::<CheckpointRound>();
        let store =
            SqliteStore::open_with(&format!("sqlite://{}", db.display()), restart_frames, Some(tx)).await.unwrap();
        (dir, db, store, rounds)
    }

    /// The writer never checkpoints (`wal_autocheckpoint = 0`): the background task copies
    /// the WAL back, so the WAL starts over instead of growing, a copy of the files taken while the store
    /// is open (a crash) holds every committed row, and the task ends with the store.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn background_task_checkpoints_the_wal_and_stops_with_the_store() {
        let (dir, db, store, mut rounds) = open_store(line!(), RESTART_FRAMES).await;
        let autockpt: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint").fetch_one(&store.writer).await.unwrap();
        assert_eq!(autockpt, 0, "the writer must not checkpoint inside commits");
        sqlx::query("CREATE TABLE walfill (id INTEGER PRIMARY KEY, body BLOB)").execute(&store.writer).await.unwrap();
        let blob = vec![7u8; 8192];
        let mut logs = Vec::new();
        let mut written = 0i64;
        for _round in 0..6 {
            for _ in 0..100 {
                sqlx::query("INSERT INTO walfill (body) VALUES (?)").bind(&blob).execute(&store.writer).await.unwrap();
                written += 1;
            }
            // Wait for a round that found the whole WAL checkpointed.
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
            loop {
                let r = tokio::time::timeout_at(deadline, rounds.recv()).await.expect("a checkpoint round").unwrap();
                if r.log > 0 && r.checkpointed == r.log {
                    logs.push(r.log);
                    break;
                }
            }
        }
        // Without checkpoints every batch would add its ~300 frames to one growing WAL. Once
        // all of it is checkpointed, the next write starts the WAL over; SQLite skips that
        // restart when the write meets a checkpoint in progress (then that batch is appended,
        // so how often it happens depends on the machine's load), so the test asks for a
        // restart, not for one every time.
        assert!(
            logs.iter().skip(1).any(|&l| l <= logs[0]),
            "the WAL never started over (frames at each full checkpoint: {logs:?})"
        );
        assert!(wal_len(&db) > 0);
        // The rows are in the database file, and a copy of the files taken now (a crash
        // snapshot: database + WAL, no shared memory) holds every committed row.
        let crash = dir.join("crash.db");
        std::fs::copy(&db, &crash).unwrap();
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        let mut crash_wal = crash.as_os_str().to_owned();
        crash_wal.push("-wal");
        let _ = std::fs::copy(std::path::PathBuf::from(wal), std::path::PathBuf::from(crash_wal));
        let copy = SqliteStore::open(&format!("sqlite://{}", crash.display())).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM walfill").fetch_one(&copy.reader).await.unwrap();
        assert_eq!(n, written);
        drop(copy);
        // The task ends (and drops its sender) once the last clone of the store is gone.
        let clone = store.clone();
        drop(store);
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(600), async {
                while rounds.recv().await.is_some() {}
            })
            .await
            .is_err(),
            "the checkpointer stopped while a clone of the store was alive"
        );
        drop(clone);
        tokio::time::timeout(std::time::Duration::from_secs(5), async { while rounds.recv().await.is_some() {} })
            .await
            .expect("the checkpointer stops when the store is dropped");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A chained group of `n` rows after `head` (seq, hash), each with ~2 KB of details so
    /// a few groups fill many WAL frames.
    fn group(head: (i64, [u8; 32]), n: i64) -> Vec<StoredRow> {
        let (mut seq, mut prev) = head;
        let pad = "x".repeat(2000);
        (0..n)
            .map(|_| {
                seq += 1;
                let canon = format!(
                    r#"{{"action":"login","category":"authentication","details":{{"pad":"{pad}"}},"event_id":"e{seq}","mask_policy":1,"outcome":"success","received_at":1,"seq":{seq},"severity":"low","timestamp":1,"user_id":"u{seq}"}}"#
                )
                .into_bytes();
                // The store checks only that each row chains on the one before (the ledger
                // computes the real chain hash; any 32 bytes serve here).
                let hash: [u8; 32] = sha2::Sha256::digest([prev.as_slice(), &canon].concat()).into();
                let row = StoredRow::from_canon(seq, canon, prev.to_vec(), hash.to_vec()).unwrap();
                prev = hash;
                row
            })
            .collect()
    }

    /// Under appends that never pause (the writer begins its next group the moment the
    /// last one commits), the WAL still starts over: the checkpointer asks, the writer
    /// restarts it between two groups, and the file stays a small part of what was
    /// written; every row is stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_starts_over_under_appends_that_never_pause() {
        let (dir, db, store, mut rounds) = open_store(line!(), 256).await;
        // A reader that begins a read transaction on the WAL now and then, as queries and
        // detection's read-back do: the restart waits for it or tries again later.
        let reader = store.reader.clone();
        let reading = tokio::spawn(async move {
            loop {
                let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE seq % 97 = 0")
                    .fetch_one(&reader)
                    .await
                    .unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            }
        });
        let (mut head, mut max_wal, mut restarts) = ((0i64, [0u8; 32]), 0u64, 0usize);
        let mut last_log = 0i64;
        let started = std::time::Instant::now();
        while started.elapsed() < std::time::Duration::from_secs(2) || restarts < 3 {
            assert!(started.elapsed() < std::time::Duration::from_secs(60), "no WAL restart in 60 s");
            let rows = group(head, 100);
            store.append(&rows, None).await.unwrap();
            let last = rows.last().unwrap();
            head = (last.seq, last.hash.as_slice().try_into().unwrap());
            max_wal = max_wal.max(wal_len(&db));
            while let Ok(r) = rounds.try_recv() {
                if r.log < last_log {
                    restarts += 1;
                }
                last_log = r.log;
            }
        }
        reading.abort();
        let written_frames = {
            // Each group of 100 rows writes at least its ~2.1 KB per row.
            head.0 * 2_100 / 4_096
        };
        let frame = 4_096 + 24;
        assert!(
            max_wal < (written_frames as u64 * frame) / 2,
            "the WAL grew to {max_wal} bytes for {written_frames} frames written ({restarts} restarts)"
        );
        // A reader that keeps one snapshot for a second (an export) holds every restart
        // back: the writer waits at most RESTART_WAIT per attempt and goes on appending.
        let mut held = store.reader.acquire().await.unwrap();
        sqlx::query("BEGIN").execute(&mut *held).await.unwrap();
        let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events").fetch_one(&mut *held).await.unwrap();
        let (hold, mut slowest) = (std::time::Instant::now(), std::time::Duration::ZERO);
        while hold.elapsed() < std::time::Duration::from_secs(2) {
            let rows = group(head, 100);
            let t = std::time::Instant::now();
            store.append(&rows, None).await.unwrap();
            slowest = slowest.max(t.elapsed());
            let last = rows.last().unwrap();
            head = (last.seq, last.hash.as_slice().try_into().unwrap());
        }
        // The checkpointer asks for a restart within a few rounds of the hold's start; a
        // restart that waited for the reader on the writer's own busy timeout would hold
        // that append up for 10 s.
        assert!(
            slowest < std::time::Duration::from_secs(3),
            "an append waited {slowest:?} while a reader held the WAL"
        );
        sqlx::query("COMMIT").execute(&mut *held).await.unwrap();
        drop(held);
        // Once it is gone, the WAL starts over again.
        while rounds.try_recv().is_ok() {}
        let mut peak = 0i64;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            assert!(std::time::Instant::now() < deadline, "the WAL did not start over after the reader left");
            let rows = group(head, 100);
            store.append(&rows, None).await.unwrap();
            let last = rows.last().unwrap();
            head = (last.seq, last.hash.as_slice().try_into().unwrap());
            match rounds.try_recv() {
                Ok(r) if r.log < peak => break,
                Ok(r) => peak = peak.max(r.log),
                Err(_) => {}
            }
        }
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM events").fetch_one(&store.reader).await.unwrap();
        assert_eq!(n, head.0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
