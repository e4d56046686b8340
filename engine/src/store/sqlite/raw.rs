//! The event rows and their postings written through SQLite's C API on the writer
//! connection, inside the transaction sqlx opened: multi-row statements of a few fixed
//! sizes, each value bound straight from the row (`SQLITE_STATIC`: SQLite reads the
//! caller's bytes during the step, no copy on the Rust side).
//!
//! Through sqlx every value was cloned into an owned argument, sent to its worker thread,
//! bound there with a copy (`SQLITE_TRANSIENT`). The SQL, the triggers that guard the
//! tables and the transaction are the same; only the binding changed. Measured in BENCHMARKS.md ("The SQLite writer").
//!
//! Also the writer's WAL restart ([`restart_wal`], checkpointer.rs), which needs a busy
//! timeout of its own for one call.
//!
//! The only unsafe code of the store: every pointer comes from sqlx's locked handle (no
//! other thread uses the connection while the lock is held), statements are finalized on
//! drop, and bound pointers are used only by the `sqlite3_step` that follows their binding
//! (bindings are cleared before the values they point to go out of scope).
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int};
use std::ptr::{self, NonNull};

use libsqlite3_sys as ffi;

use super::super::{IndexedColumns, StoreError, StoredRow, block_filters, classify_code, postings};
use super::chunk_sizes_of;

/// The head of the events insert; each row adds `(?, ...)` with [`EVENT_COLUMNS`] values.
const INSERT_EVENTS: &str = "INSERT INTO events (seq, event_id, ts, category, action, severity, outcome, \
    organization_id, user_id, ip, request_id, ingest_key, canon, prev_hash, hash) VALUES ";
const EVENT_COLUMNS: usize = 15;
/// Rows per statement: a few fixed sizes, so a group is a handful of statements. One
/// multi-row statement costs SQLite far less per row than single-row ones (one statement
/// transaction and one trigger program start per statement, not per row): callgrind counted
/// ~29k more instructions per row inside `sqlite3_step` with single-row statements.
const EVENT_CHUNKS: [usize; 5] = [256, 64, 16, 4, 1];

const INSERT_POSTINGS: &str = "INSERT INTO postings (block, term, seq) VALUES ";
const POSTING_COLUMNS: usize = 3;
const POSTING_CHUNKS: [usize; 6] = [1024, 256, 64, 16, 4, 1];

/// Bytes SQLite holds on the heap now, and the most it held since start (every connection
/// of the process: page caches, schema, statements; `sqlite3_status64`'s MEMORY_USED,
/// which the bundled build keeps).
pub fn memory_used() -> (i64, i64) {
    let (mut now, mut high) = (0i64, 0i64);
    // SAFETY: sqlite3_status64 only writes the two integers it is given.
    let rc = unsafe { ffi::sqlite3_status64(ffi::SQLITE_STATUS_MEMORY_USED, &mut now, &mut high, 0) };
    if rc == ffi::SQLITE_OK { (now, high) } else { (0, 0) }
}

/// Inserts `rows` and their postings on `db`, which must be in a write transaction (the
/// caller commits or rolls back).
pub(super) fn insert_rows(db: NonNull<ffi::sqlite3>, rows: &[StoredRow]) -> Result<(), StoreError> {
    let mut statements = Statements::new(db, INSERT_EVENTS, EVENT_COLUMNS);
    let mut start = 0;
    for size in chunk_sizes_of(rows.len(), &EVENT_CHUNKS) {
        let statement = statements.get(size)?;
        for (i, row) in rows[start..start + size].iter().enumerate() {
            statement.bind_event((i * EVENT_COLUMNS) as c_int, row)?;
        }
        statement.execute()?;
        start += size;
    }
    let mut keys: Vec<(i64, i64, i64)> = rows
        .iter()
        .flat_map(|r| postings::terms(&r.columns).map(move |(_, term)| (postings::block(r.seq), term, r.seq)))
        .collect();
    // Sorted by key so they go in as runs at the tree's edge; two fields of one event could
    // hash alike, and the key must still be unique.
    keys.sort_unstable();
    keys.dedup();
    let mut statements = Statements::new(db, INSERT_POSTINGS, POSTING_COLUMNS);
    let mut start = 0;
    for size in chunk_sizes_of(keys.len(), &POSTING_CHUNKS) {
        let statement = statements.get(size)?;
        for (i, &(block, term, seq)) in keys[start..start + size].iter().enumerate() {
            let at = (i * POSTING_COLUMNS) as c_int;
            statement.int(at + 1, block)?;
            statement.int(at + 2, term)?;
            statement.int(at + 3, seq)?;
        }
        statement.execute()?;
        start += size;
    }
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        seal_blocks(db, first.seq, last.seq)?;
    }
    Ok(())
}

/// Writes the filters (store/block_filters.rs) of the blocks whose last seq is in
/// `first..=last`: an append filled them (the seqs before `first` are stored, the chain
/// is contiguous), or migration 0020 fills those stored before it. Their terms are read back from the postings, inside this transaction.
pub(super) fn seal_blocks(db: NonNull<ffi::sqlite3>, first: i64, last: i64) -> Result<(), StoreError> {
    let full = block_filters::last_full_block(last);
    let from = postings::block(first);
    if full < from {
        return Ok(());
    }
    let mut terms = Statement::prepare(db, c"SELECT term FROM postings WHERE block = ?")?;
    let mut insert = Statements::new(db, "INSERT INTO posting_filters (bucket, block, fps) VALUES ", 3);
    for block in from..=full {
        terms.int(1, block)?;
        let rows = block_filters::build(terms.column_ints()?);
        let statement = insert.get(rows.len())?;
        for (i, (bucket, fps)) in rows.iter().enumerate() {
            let at = (i * 3) as c_int;
            statement.int(at + 1, *bucket)?;
            statement.int(at + 2, block)?;
            statement.blob(at + 3, fps)?;
        }
        statement.execute()?;
    }
    seal_spans(db, from, full)
}

/// Writes the span filters (store/block_filters.rs) of the spans that end in blocks
/// `from..=to` and have none yet, from their blocks' rows.
pub(super) fn seal_spans(db: NonNull<ffi::sqlite3>, from: i64, to: i64) -> Result<(), StoreError> {
    let spans = block_filters::span_of(from)..=block_filters::span_of(to + 1) - 1;
    if spans.is_empty() {
        return Ok(());
    }
    // A sealed span has a row for every span bucket, the first (256) among them.
    let mut sealed = Statement::prepare(db, c"SELECT COUNT(*) FROM posting_filters WHERE bucket = 256 AND block = ?")?;
    let mut rows = Statement::prepare(
        db,
        c"SELECT bucket, fps FROM posting_filters WHERE bucket = ? AND block >= ? AND block <= ?",
    )?;
    let mut insert = Statements::new(db, "INSERT INTO posting_filters (bucket, block, fps) VALUES ", 3);
    for span in spans {
        let end = block_filters::span_end(span);
        sealed.int(1, end)?;
        if sealed.column_ints()?.first().copied().unwrap_or(0) > 0 {
            continue;
        }
        let mut blocks = Vec::with_capacity((block_filters::BUCKETS * block_filters::SPAN_BLOCKS) as usize);
        for bucket in 0..block_filters::BUCKETS {
            rows.int(1, bucket)?;
            rows.int(2, end + 1 - block_filters::SPAN_BLOCKS)?;
            rows.int(3, end)?;
            blocks.extend(rows.column_int_blobs()?);
        }
        let Some(span_rows) = block_filters::build_span(&blocks) else { continue };
        for chunk in span_rows.chunks(block_filters::BUCKETS as usize) {
            let statement = insert.get(chunk.len())?;
            for (i, (bucket, fps)) in chunk.iter().enumerate() {
                let at = (i * 3) as c_int;
                statement.int(at + 1, *bucket)?;
                statement.int(at + 2, end)?;
                statement.blob(at + 3, fps)?;
            }
            statement.execute()?;
        }
    }
    Ok(())
}

/// The `(seq, canon)` of the rows with `from <= seq <= to`, ascending, at most `limit`:
/// detection's read-back and replay. Stepped through the C API by the calling thread on a
/// reader connection of `pool`, so the rows are neither decoded through sqlx nor handed
/// over from sqlx's worker thread (BENCHMARKS.md, "Detection's read-back"). A value of the
/// wrong type (a tampered row) is read as SQLite converts it, never a panic.
pub(super) async fn scan_canon(
    pool: &sqlx::SqlitePool,
    from: i64,
    to: i64,
    limit: i64,
) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
    let mut conn = pool.acquire().await?;
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle();
    let read = || {
        let mut statement =
            Statement::prepare(db, c"SELECT seq, canon FROM events WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?")?;
        statement.int(1, from)?;
        statement.int(2, to)?;
        statement.int(3, limit)?;
        statement.column_int_blobs()
    };
    blocking(read)
}

/// Runs `f`, which steps SQLite on this thread: on a worker of the multi-threaded runtime,
/// through `block_in_place`, so tokio moves the worker's other tasks away first.
pub(super) fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// What [`restart_wal`] found: the WAL's frames and how many of them are in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct WalRestart {
    /// SQLite answered SQLITE_BUSY: a reader still used the WAL when `wait` ran out.
    pub busy: bool,
    pub log: i64,
    pub checkpointed: i64,
}

/// `wal_checkpoint(RESTART)` on the writer connection `db`, outside any transaction: it
/// copies the frames the background checkpointer has not copied yet and waits (at most
/// `wait`) for readers to leave the WAL, so the next commit writes the WAL from its start
/// again, over blocks the file already has. The connection's busy timeout is `wait` for
/// this call only and `restore` again after it.
pub(super) fn restart_wal(
    db: NonNull<ffi::sqlite3>,
    wait: std::time::Duration,
    restore: std::time::Duration,
) -> Result<WalRestart, StoreError> {
    let ms = |d: std::time::Duration| c_int::try_from(d.as_millis()).unwrap_or(c_int::MAX);
    let (mut log, mut checkpointed) = (0 as c_int, 0 as c_int);
    // SAFETY: `db` is the open connection whose lock the caller holds; the two out-pointers
    // are live locals; the schema name is a NUL-terminated literal.
    let rc = unsafe {
        ffi::sqlite3_busy_timeout(db.as_ptr(), ms(wait));
        let rc = ffi::sqlite3_wal_checkpoint_v2(
            db.as_ptr(),
            c"main".as_ptr(),
            ffi::SQLITE_CHECKPOINT_RESTART,
            &mut log,
            &mut checkpointed,
        );
        ffi::sqlite3_busy_timeout(db.as_ptr(), ms(restore));
        rc
    };
    match rc {
        ffi::SQLITE_OK | ffi::SQLITE_BUSY => {
            Ok(WalRestart { busy: rc == ffi::SQLITE_BUSY, log: log.into(), checkpointed: checkpointed.into() })
        }
        _ => Err(error(db, rc)),
    }
}

/// The multi-row statements of one insert, prepared on first use per size.
struct Statements {
    db: NonNull<ffi::sqlite3>,
    head: &'static str,
    columns: usize,
    prepared: Vec<(usize, Statement)>,
}

impl Statements {
    fn new(db: NonNull<ffi::sqlite3>, head: &'static str, columns: usize) -> Self {
        Self { db, head, columns, prepared: Vec::new() }
    }

    fn get(&mut self, rows: usize) -> Result<&mut Statement, StoreError> {
        let at = match self.prepared.iter().position(|(size, _)| *size == rows) {
            Some(at) => at,
            None => {
                let row = format!("({})", vec!["?"; self.columns].join(", "));
                let sql = format!("{}{}", self.head, vec![row.as_str(); rows].join(", "));
                let sql = CString::new(sql).expect("statement text holds no NUL");
                self.prepared.push((rows, Statement::prepare(self.db, &sql)?));
                self.prepared.len() - 1
            }
        };
        Ok(&mut self.prepared[at].1)
    }
}

/// A prepared statement of the locked connection, finalized on drop.
struct Statement {
    db: NonNull<ffi::sqlite3>,
    raw: NonNull<ffi::sqlite3_stmt>,
}

impl Statement {
    fn prepare(db: NonNull<ffi::sqlite3>, sql: &CStr) -> Result<Self, StoreError> {
        let mut raw = ptr::null_mut();
        // SAFETY: `db` is the open connection held by the caller's lock; `sql` is a valid
        // NUL-terminated string (length -1: read up to the NUL).
        let rc = unsafe { ffi::sqlite3_prepare_v2(db.as_ptr(), sql.as_ptr(), -1, &mut raw, ptr::null_mut()) };
        match NonNull::new(raw) {
            Some(raw) if rc == ffi::SQLITE_OK => Ok(Self { db, raw }),
            _ => Err(error(db, rc)),
        }
    }

    /// Binds one event row's values to parameters `at + 1 ..= at + 15`.
    fn bind_event(&mut self, at: c_int, row: &StoredRow) -> Result<(), StoreError> {
        let IndexedColumns {
            event_id,
            ts,
            category,
            action,
            severity,
            outcome,
            organization_id,
            user_id,
            ip,
            request_id,
            ingest_key,
        } = &row.columns;
        self.int(at + 1, row.seq)?;
        self.text(at + 2, Some(event_id))?;
        self.int(at + 3, *ts)?;
        self.text(at + 4, Some(category))?;
        self.text(at + 5, Some(action))?;
        self.text(at + 6, Some(severity))?;
        self.text(at + 7, Some(outcome))?;
        self.text(at + 8, organization_id.as_deref())?;
        self.text(at + 9, user_id.as_deref())?;
        self.text(at + 10, ip.as_deref())?;
        self.text(at + 11, request_id.as_deref())?;
        self.text(at + 12, ingest_key.as_deref())?;
        self.blob(at + 13, &row.canon)?;
        self.blob(at + 14, &row.prev_hash)?;
        self.blob(at + 15, &row.hash)?;
        Ok(())
    }

    fn int(&mut self, index: c_int, value: i64) -> Result<(), StoreError> {
        // SAFETY: the statement is live; an index out of range is reported, not undefined.
        self.check(unsafe { ffi::sqlite3_bind_int64(self.raw.as_ptr(), index, value) })
    }

    /// Binds `value` without copying it: valid until the next `execute`, which clears it.
    fn text(&mut self, index: c_int, value: Option<&str>) -> Result<(), StoreError> {
        let Some(value) = value else {
            // SAFETY: as for `int`.
            return self.check(unsafe { ffi::sqlite3_bind_null(self.raw.as_ptr(), index) });
        };
        let len = c_int::try_from(value.len()).map_err(|_| too_large(index))?;
        // SAFETY: `value` outlives the step that reads it (`execute` clears the bindings
        // before returning and every caller binds and executes within one borrow);
        // SQLITE_STATIC tells SQLite not to free it.
        self.check(unsafe {
            ffi::sqlite3_bind_text(self.raw.as_ptr(), index, value.as_ptr().cast::<c_char>(), len, ffi::SQLITE_STATIC())
        })
    }

    /// As `text`, for bytes (an empty slice is an empty blob, never NULL).
    fn blob(&mut self, index: c_int, value: &[u8]) -> Result<(), StoreError> {
        if value.is_empty() {
            // SAFETY: as for `int`.
            return self.check(unsafe { ffi::sqlite3_bind_zeroblob(self.raw.as_ptr(), index, 0) });
        }
        let len = c_int::try_from(value.len()).map_err(|_| too_large(index))?;
        // SAFETY: as for `text`.
        self.check(unsafe {
            ffi::sqlite3_bind_blob(self.raw.as_ptr(), index, value.as_ptr().cast(), len, ffi::SQLITE_STATIC())
        })
    }

    /// Steps the statement to completion, then resets it and clears its bindings (so no
    /// pointer to the caller's values outlives this call), whatever the outcome.
    fn execute(&mut self) -> Result<(), StoreError> {
        // SAFETY: the statement is live and every parameter was bound just before.
        let rc = unsafe { ffi::sqlite3_step(self.raw.as_ptr()) };
        let result = if rc == ffi::SQLITE_DONE { Ok(()) } else { Err(error(self.db, rc)) };
        // SAFETY: as above. Reset repeats the step's error code, already taken.
        unsafe {
            ffi::sqlite3_reset(self.raw.as_ptr());
            ffi::sqlite3_clear_bindings(self.raw.as_ptr());
        }
        result
    }

    /// Steps a query to its end, collecting its first column as integers, then resets it and
    /// clears its bindings.
    fn column_ints(&mut self) -> Result<Vec<i64>, StoreError> {
        let mut out = Vec::new();
        let result = loop {
            // SAFETY: the statement is live and its parameters bound.
            match unsafe { ffi::sqlite3_step(self.raw.as_ptr()) } {
                // SAFETY: a row is current; column 0 exists (one-column query).
                ffi::SQLITE_ROW => out.push(unsafe { ffi::sqlite3_column_int64(self.raw.as_ptr(), 0) }),
                ffi::SQLITE_DONE => break Ok(out),
                rc => break Err(error(self.db, rc)),
            }
        };
        // SAFETY: as in `execute`.
        unsafe {
            ffi::sqlite3_reset(self.raw.as_ptr());
            ffi::sqlite3_clear_bindings(self.raw.as_ptr());
        }
        result
    }

    /// The rows `(integer, blob)` of a two-column query.
    fn column_int_blobs(&mut self) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        let raw = self.raw.as_ptr();
        let result = loop {
            // SAFETY: the statement is live and its parameters bound.
            match unsafe { ffi::sqlite3_step(raw) } {
                ffi::SQLITE_ROW => {
                    // SAFETY: a row is current with two columns; the blob pointer is valid
                    // for the length SQLite reports until the next step, and copied first.
                    let (int, blob) = unsafe {
                        let len = ffi::sqlite3_column_bytes(raw, 1).max(0) as usize;
                        let data = ffi::sqlite3_column_blob(raw, 1) as *const u8;
                        let blob =
                            if data.is_null() { Vec::new() } else { std::slice::from_raw_parts(data, len).to_vec() };
                        (ffi::sqlite3_column_int64(raw, 0), blob)
                    };
                    out.push((int, blob));
                }
                ffi::SQLITE_DONE => break Ok(out),
                rc => break Err(error(self.db, rc)),
            }
        };
        // SAFETY: as in `execute`.
        unsafe {
            ffi::sqlite3_reset(raw);
            ffi::sqlite3_clear_bindings(raw);
        }
        result
    }

    fn check(&self, rc: c_int) -> Result<(), StoreError> {
        if rc == ffi::SQLITE_OK { Ok(()) } else { Err(error(self.db, rc)) }
    }
}

impl Drop for Statement {
    fn drop(&mut self) {
        // SAFETY: finalized exactly once; the connection is still locked by the caller.
        unsafe { ffi::sqlite3_finalize(self.raw.as_ptr()) };
    }
}

/// The connection's error after `rc`, classified as sqlx errors are (out of space,
/// unavailable) so callers answer 507/503 alike; anything else fails the batch.
fn error(db: NonNull<ffi::sqlite3>, rc: c_int) -> StoreError {
    // SAFETY: `db` is live; sqlite3_errmsg returns a NUL-terminated string owned by the
    // connection, copied out at once.
    let (code, message) = unsafe {
        let code = ffi::sqlite3_extended_errcode(db.as_ptr());
        let message = ffi::sqlite3_errmsg(db.as_ptr());
        let message =
            if message.is_null() { String::new() } else { CStr::from_ptr(message).to_string_lossy().into_owned() };
        (if code == ffi::SQLITE_OK { rc } else { code }, message)
    };
    let text = format!("error returned from database: (code: {code}) {message}");
    match classify_code(&code.to_string(), &message) {
        super::super::ErrorClass::Full => StoreError::Full(text),
        super::super::ErrorClass::Unavailable => StoreError::Unavailable(text),
        super::super::ErrorClass::Other => StoreError::WriteFailed(text),
    }
}

fn too_large(index: c_int) -> StoreError {
    StoreError::WriteFailed(format!("parameter {index} of an event row is larger than SQLite can bind"))
}

#[cfg(test)]
mod tests {
    use super::super::SqliteStore;
    use crate::store::{IndexedColumns, StoreError, StoredRow};

    fn row(seq: i64, event_id: &str) -> StoredRow {
        StoredRow {
            seq,
            canon: format!("{{\"event_id\":\"{event_id}\",\"seq\":{seq},\"x\":\"\u{e9}\\u0000\"}}").into_bytes(),
            prev_hash: vec![seq as u8; 32],
            hash: vec![(seq as u8).wrapping_add(1); 32],
            columns: IndexedColumns {
                event_id: event_id.into(),
                ts: 1_700_000_000_000 + seq,
                category: "authentication".into(),
                action: "login_failed".into(),
                severity: "low".into(),
                outcome: "failure".into(),
                organization_id: (seq % 2 == 0).then(|| "org-\u{1F600}".into()),
                user_id: Some(format!("user-{seq}")),
                ip: None,
                request_id: Some(String::new()),
                ingest_key: Some("k_test".into()),
            },
            unreadable: Vec::new(),
        }
    }

    /// Every size class of the multi-row statements, values read back byte for byte (NULL
    /// stays NULL, an empty string stays empty, non-ASCII text intact), postings written;
    /// a row the table's triggers refuse fails the whole batch with SQLite's message and
    /// leaves nothing of it once the transaction is dropped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rows_read_back_exactly_and_a_refused_row_stores_nothing() {
        let dir = std::env::temp_dir().join(format!("vigil-raw-{}-{}", std::process::id(), line!()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = SqliteStore::open(&format!("sqlite://{}/r.db", dir.display())).await.unwrap();
        let rows: Vec<StoredRow> = (1..=342).map(|s| row(s, &format!("e{s}"))).collect();
        let mut tx = store.writer.begin().await.unwrap();
        {
            let mut handle = tx.lock_handle().await.unwrap();
            super::insert_rows(handle.as_raw_handle(), &rows).unwrap();
        }
        tx.commit().await.unwrap();
        let back = store.scan(1, 1000, 1000).await.unwrap();
        assert_eq!(back.len(), rows.len());
        for (want, have) in rows.iter().zip(&back) {
            assert_eq!(
                (have.seq, &have.canon, &have.prev_hash, &have.hash),
                (want.seq, &want.canon, &want.prev_hash, &want.hash)
            );
            assert_eq!(have.columns, want.columns, "seq {}", want.seq);
        }
        let postings: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM postings").fetch_one(&store.reader).await.unwrap();
        // user_id, request_id and ingest_key on every row, organization_id on even seqs.
        assert_eq!(postings, 342 * 3 + 171);

        // seq 343 is fine, 344 repeats an event id of the same key: the trigger refuses it.
        let bad = vec![row(343, "e343"), row(344, "e1")];
        let mut tx = store.writer.begin().await.unwrap();
        let err = {
            let mut handle = tx.lock_handle().await.unwrap();
            super::insert_rows(handle.as_raw_handle(), &bad).unwrap_err()
        };
        drop(tx);
        match err {
            StoreError::WriteFailed(m) => assert!(m.contains("append-only"), "{m}"),
            other => panic!("expected a refused write, got {other:?}"),
        }
        assert_eq!(store.scan(343, 1000, 10).await.unwrap().len(), 0, "nothing of a refused batch is stored");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
