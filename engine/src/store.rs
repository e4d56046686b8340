//! Storage: the append-only event log with its hash chain, API keys and checkpoints.
//!
//! `ingest` hands validated, masked events to the `Sequencer` (store/sequencer.rs), the one
//! writer per log, which assigns `seq`, builds the canonical bytes (store/canon.rs) and the
//! chain (store/chain.rs) and writes one transaction per group through [`Store`], an enum
//! over the two concrete backends (store/sqlite.rs, store/postgres.rs). `api` reads through
//! the same enum.

pub mod alerting;
pub mod decisions;
pub mod postgres;
pub mod postings;
pub mod query;
mod shared;
pub mod sqlite;

use std::collections::HashMap;

use serde_json::{Map, Value};

pub use alerting::{
    AlertChange, AlertFilter, AlertRow, AlertStats, AlertWrite, EscalationRow, NotificationFilter, NotificationRow,
    SilenceRow,
};
pub use query::{EventFilter, Stats, StatsFilter};

/// Errors of the storage layer. Messages never reach API clients verbatim.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A database error.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// The database has no space left (SQLite `SQLITE_FULL`, PostgreSQL `53100`). Nothing of
    /// the failed statement or transaction was stored; writes succeed again once space
    /// returns. Answered 507.
    #[error("the database is out of space: {0}")]
    Full(String),
    /// The database cannot be reached now (connection refused or lost, pool timeout,
    /// server shutting down or starting). Answered 503 with `Retry-After`.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A migration failed.
    #[error("migration {version} failed: {source}")]
    Migration {
        /// The migration that failed.
        version: String,
        /// Why.
        source: sqlx::Error,
    },
    /// The database URL is not one we support.
    #[error("unsupported database url (expected sqlite:// or postgres://): {0}")]
    UnsupportedUrl(String),
    /// Stored data is not what the store wrote (corruption or tampering).
    #[error("corrupt row at seq {seq}: {problem}")]
    Corrupt {
        /// Where.
        seq: i64,
        /// What.
        problem: String,
    },
    /// A group commit failed; the batch was not stored (the cause is logged).
    #[error("the batch could not be stored: {0}")]
    WriteFailed(String),
    /// The sequencer is gone (server shutting down).
    #[error("the sequencer has stopped")]
    SequencerStopped,
    /// The log is on integrity hold: client writes are refused until an operator accepts.
    #[error(
        "the log is on integrity hold: the database does not match what this server signed; \
         see GET /v1/integrity/verify, then `vigil integrity accept --reason ...`"
    )]
    OnHold,
    /// I/O error (data directory, key files).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// For conditions that are not one batch's fault (out of space, database unreachable,
    /// on hold, stopping): the same error again, to answer every request of a group.
    pub fn shared(&self) -> Option<StoreError> {
        match self {
            Self::Full(m) => Some(Self::Full(m.clone())),
            Self::Unavailable(m) => Some(Self::Unavailable(m.clone())),
            Self::OnHold => Some(Self::OnHold),
            Self::SequencerStopped => Some(Self::SequencerStopped),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    /// Classifies database errors: out of space and unreachable are conditions an operator
    /// fixes without touching the data, so they get their own variants (and statuses).
    fn from(err: sqlx::Error) -> Self {
        match classify(&err) {
            ErrorClass::Full => Self::Full(err.to_string()),
            ErrorClass::Unavailable => Self::Unavailable(err.to_string()),
            ErrorClass::Other => Self::Database(err),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum ErrorClass {
    Full,
    Unavailable,
    Other,
}

fn classify(err: &sqlx::Error) -> ErrorClass {
    match err {
        sqlx::Error::Io(e) if e.raw_os_error() == Some(28) => ErrorClass::Full,
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => ErrorClass::Unavailable,
        sqlx::Error::Database(db) => classify_code(db.code().as_deref().unwrap_or(""), db.message()),
        _ => ErrorClass::Other,
    }
}

/// SQLite reports its (extended) result code as a number of at most four digits,
/// PostgreSQL its five-character SQLSTATE.
fn classify_code(code: &str, message: &str) -> ErrorClass {
    if code.len() < 5
        && let Ok(n) = code.parse::<i64>()
    {
        return match n & 0xff {
            13 => ErrorClass::Full, // SQLITE_FULL
            // SQLITE_IOERR (a failed write or fsync: often ENOSPC on a full disk),
            // SQLITE_BUSY / SQLITE_LOCKED (another process holds the file), SQLITE_READONLY
            // (the file or its directory made read-only), SQLITE_CANTOPEN.
            10 if message.contains("full") => ErrorClass::Full,
            10 | 5 | 6 | 8 | 14 => ErrorClass::Unavailable,
            _ => ErrorClass::Other,
        };
    }
    match code {
        "53100" => ErrorClass::Full,
        // insufficient resources, connection exceptions, operator intervention (shutdown,
        // crash shutdown, cannot connect now), a read-only (standby) server, transaction
        // rollbacks (serialization failure, deadlock).
        c if c.starts_with("53")
            || c.starts_with("08")
            || c.starts_with("57P")
            || c.starts_with("40")
            || c == "25006" =>
        {
            ErrorClass::Unavailable
        }
        _ => ErrorClass::Other,
    }
}

/// One row of the events table, as stored.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoredRow {
    /// Position in the log (1-based, gap-free).
    pub seq: i64,
    /// The hashed canonical bytes.
    pub canon: Vec<u8>,
    /// Hash of the previous row.
    pub prev_hash: Vec<u8>,
    /// Chain hash of this row.
    pub hash: Vec<u8>,
    /// Indexed columns (derived from canon at write time).
    pub columns: IndexedColumns,
    /// Columns that could not be read as their type (a damaged or tampered row):
    /// `(column, what was found)`. Verify reports each; queries mark the row.
    pub unreadable: Vec<(&'static str, String)>,
}

/// The columns that exist only to serve queries; each must equal its value in canon.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IndexedColumns {
    /// event_id.
    pub event_id: String,
    /// timestamp, epoch ms.
    pub ts: i64,
    /// category.
    pub category: String,
    /// action.
    pub action: String,
    /// severity.
    pub severity: String,
    /// outcome.
    pub outcome: String,
    /// organization_id.
    pub organization_id: Option<String>,
    /// user_id.
    pub user_id: Option<String>,
    /// ip.
    pub ip: Option<String>,
    /// request_id.
    pub request_id: Option<String>,
}

impl IndexedColumns {
    /// Extracts the indexed columns from a canonical event object.
    pub fn from_event(obj: &Map<String, Value>) -> Self {
        let s = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
        Self {
            event_id: s("event_id").unwrap_or_default(),
            ts: obj.get("timestamp").and_then(Value::as_i64).unwrap_or_default(),
            category: s("category").unwrap_or_default(),
            action: s("action").unwrap_or_default(),
            severity: s("severity").unwrap_or_default(),
            outcome: s("outcome").unwrap_or_default(),
            organization_id: s("organization_id"),
            user_id: s("user_id"),
            ip: s("ip"),
            request_id: s("request_id"),
        }
    }

    fn pairs(&self) -> [(&'static str, String); 10] {
        let o = |v: &Option<String>| v.clone().unwrap_or_else(|| "<null>".into());
        [
            ("event_id", self.event_id.clone()),
            ("timestamp", self.ts.to_string()),
            ("category", self.category.clone()),
            ("action", self.action.clone()),
            ("severity", self.severity.clone()),
            ("outcome", self.outcome.clone()),
            ("organization_id", o(&self.organization_id)),
            ("user_id", o(&self.user_id)),
            ("ip", o(&self.ip)),
            ("request_id", o(&self.request_id)),
        ]
    }
}

impl StoredRow {
    /// Builds a row whose columns are derived from its canon (what the writer stores).
    pub fn from_canon(seq: i64, canon: Vec<u8>, prev_hash: Vec<u8>, hash: Vec<u8>) -> Result<Self, StoreError> {
        let obj = decode_canon(seq, &canon)?;
        Ok(Self { seq, columns: IndexedColumns::from_event(&obj), canon, prev_hash, hash, unreadable: Vec::new() })
    }

    /// Every indexed column (including `seq`) whose value differs from canon:
    /// `(column, value in canon, value in column)`.
    pub fn column_mismatches(&self) -> Vec<(&'static str, String, String)> {
        // Fast path: borrow just the indexed members out of canon (no tree, no copies) and
        // compare; the general path below runs only when something differs or is odd.
        if let Ok(c) = serde_json::from_slice::<CanonIndexed<'_>>(&self.canon) {
            let cols = &self.columns;
            let same = c.seq == Some(self.seq)
                && c.timestamp.unwrap_or_default() == cols.ts
                && c.event_id.as_deref().unwrap_or_default() == cols.event_id
                && c.category.as_deref().unwrap_or_default() == cols.category
                && c.action.as_deref().unwrap_or_default() == cols.action
                && c.severity.as_deref().unwrap_or_default() == cols.severity
                && c.outcome.as_deref().unwrap_or_default() == cols.outcome
                && c.organization_id.as_deref() == cols.organization_id.as_deref()
                && c.user_id.as_deref() == cols.user_id.as_deref()
                && c.ip.as_deref() == cols.ip.as_deref()
                && c.request_id.as_deref() == cols.request_id.as_deref();
            if same {
                return Vec::new();
            }
        }
        let obj = match serde_json::from_slice::<Value>(&self.canon) {
            Ok(Value::Object(obj)) => obj,
            _ => return vec![("canon", "a JSON object".into(), "undecodable bytes".into())],
        };
        let mut out = Vec::new();
        let canon_seq = obj.get("seq").and_then(Value::as_i64);
        if canon_seq != Some(self.seq) {
            out.push(("seq", format!("{canon_seq:?}"), self.seq.to_string()));
        }
        let expected = IndexedColumns::from_event(&obj);
        for ((name, want), (_, have)) in expected.pairs().into_iter().zip(self.columns.pairs()) {
            if want != have {
                out.push((name, want, have));
            }
        }
        out
    }

    /// The event as returned by the API: decoded from canon, plus seq/hash/prev_hash, with
    /// times rendered as RFC 3339 (UTC, millisecond precision).
    pub fn to_api_json(&self) -> Result<Value, StoreError> {
        let mut obj = decode_canon(self.seq, &self.canon)?;
        for key in ["timestamp", "received_at"] {
            if let Some(ms) = obj.get(key).and_then(Value::as_i64) {
                obj.insert(key.into(), Value::String(crate::event::format_rfc3339_ms(ms)));
            }
        }
        obj.insert("hash".into(), Value::String(hex::encode(&self.hash)));
        obj.insert("prev_hash".into(), Value::String(hex::encode(&self.prev_hash)));
        if !self.unreadable.is_empty() {
            obj.insert("damaged".into(), self.damage_json(None));
        }
        Ok(Value::Object(obj))
    }

    /// The event as the API returns it, or, for a row whose canon cannot be decoded, its
    /// seq and hashes with a `damaged` member saying what is wrong (queries answer over a
    /// damaged row instead of failing; verify names it).
    pub fn to_api_json_marked(&self) -> Value {
        match self.to_api_json() {
            Ok(v) => v,
            Err(e) => serde_json::json!({
                "seq": self.seq,
                "hash": hex::encode(&self.hash),
                "prev_hash": hex::encode(&self.prev_hash),
                "damaged": self.damage_json(Some(e.to_string())),
            }),
        }
    }

    fn damage_json(&self, canon_problem: Option<String>) -> Value {
        let mut problems: Vec<String> = self.unreadable.iter().map(|(c, what)| format!("{c}: {what}")).collect();
        problems.extend(canon_problem);
        serde_json::json!({"problems": problems, "hint": "run GET /v1/integrity/verify"})
    }
}

/// The indexed members of a canonical event, borrowed (for verify's column check).
#[derive(serde::Deserialize)]
struct CanonIndexed<'a> {
    seq: Option<i64>,
    timestamp: Option<i64>,
    #[serde(borrow)]
    event_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    category: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    action: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    severity: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    outcome: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    organization_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    user_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    ip: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    request_id: Option<std::borrow::Cow<'a, str>>,
}

/// Decodes a canonical event.
pub fn decode_canon(seq: i64, canon: &[u8]) -> Result<Map<String, Value>, StoreError> {
    match serde_json::from_slice::<Value>(canon) {
        Ok(Value::Object(obj)) => Ok(obj),
        _ => Err(StoreError::Corrupt { seq, problem: "canon is not a JSON object".into() }),
    }
}

/// The head of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Last seq (0 when empty).
    pub seq: i64,
    /// Its hash (zeros when empty).
    pub hash: [u8; 32],
}

/// A signed checkpoint row.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Checkpoint id (1-based).
    pub id: i64,
    /// The seq it covers.
    pub seq: i64,
    /// The hash of that seq.
    pub hash: Vec<u8>,
    /// When it was made (epoch ms).
    pub created_at: i64,
    /// Previous checkpoint id (0 for the first).
    pub prev_id: i64,
    /// Which key signed it (`ed25519:<16 hex>`; `hmac-sha256` for checkpoints written
    /// before version 0.2).
    pub key_id: String,
    /// Ed25519 signature over [`crate::ledger::keys::checkpoint_message`].
    pub signature: Vec<u8>,
}

/// A stored API key (the key itself is never stored, only its SHA-256).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyRow {
    /// Public id.
    pub id: String,
    /// Human name.
    pub name: String,
    /// Role name.
    pub role: String,
    /// SHA-256 of the key.
    pub key_hash: Vec<u8>,
    /// Creation time, epoch ms.
    pub created_at: i64,
    /// Revocation time, epoch ms.
    pub revoked_at: Option<i64>,
}

/// A deployed rule module as stored in the `rules` table.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRule {
    /// Rule name (manifest name).
    pub name: String,
    /// Lowercase hex SHA-256 of `module`.
    pub sha256: String,
    /// The `.wasm` bytes.
    pub module: Vec<u8>,
    /// Configuration JSON its init was given at deploy.
    pub config: String,
    /// `api` or `file:<path>`.
    pub source: String,
    /// Key id (or `rules_dir`) that deployed it.
    pub actor: String,
    /// When deployed, epoch ms.
    pub deployed_at: i64,
    /// `active` or `quarantined`.
    pub status: String,
    /// Why quarantined.
    pub reason: Option<String>,
    /// When the status was set, epoch ms.
    pub status_at: i64,
}

/// The storage backend: one concrete store per database, no `sqlx::Any`.
#[derive(Clone)]
pub enum Store {
    /// Embedded SQLite.
    Sqlite(sqlite::SqliteStore),
    /// PostgreSQL.
    Postgres(postgres::PgStore),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Sqlite($s) => $e,
            Store::Postgres($s) => $e,
        }
    };
}

impl Store {
    /// Opens (and migrates) the database named by `url`.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Store::Sqlite(sqlite::SqliteStore::open(url).await?))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Store::Postgres(postgres::PgStore::open(url).await?))
        } else {
            Err(StoreError::UnsupportedUrl(url.chars().take(16).collect()))
        }
    }

    /// Backend name for metrics and logs.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// The last stored row's seq and hash.
    pub async fn head(&self) -> Result<Head, StoreError> {
        dispatch!(self, s => s.head().await)
    }

    /// Drops index entries naming seqs above `head` (rows gone in a truncation), so new rows
    /// written at those seqs are indexed only by their own values. Returns how many.
    pub async fn prune_postings_after(&self, head: i64) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.prune_postings_after(head).await,
            Store::Postgres(_) => Ok(0),
        }
    }

    /// The postings `(term, seq)` of `from..=to`, where the backend keeps a posting table
    /// (SQLite); None where per-column indexes serve the lookups (PostgreSQL).
    pub async fn postings(&self, from: i64, to: i64) -> Result<Option<Vec<(i64, i64)>>, StoreError> {
        match self {
            Store::Sqlite(s) => Ok(Some(s.postings(from, to).await?)),
            Store::Postgres(_) => Ok(None),
        }
    }

    /// Which of `event_ids` are already stored, with their seq.
    pub async fn find_event_ids(&self, event_ids: &[String]) -> Result<HashMap<String, i64>, StoreError> {
        if event_ids.is_empty() {
            return Ok(HashMap::new());
        }
        dispatch!(self, s => s.find_event_ids(event_ids).await)
    }

    /// Appends rows (and an optional checkpoint) in one transaction.
    pub async fn append(&self, rows: &[StoredRow], checkpoint: Option<&Checkpoint>) -> Result<(), StoreError> {
        dispatch!(self, s => s.append(rows, checkpoint).await)
    }

    /// Rows with `from <= seq <= to`, ascending, at most `limit`.
    ///
    /// Asks the database for one window of `limit` seqs at a time (the log is gap-free, so
    /// a window holds at most `limit` rows): it then reads just that range, whatever its
    /// statistics say. With the whole remaining range and a stale row estimate, PostgreSQL
    /// bitmap-scanned and sorted the rest of the log for every chunk of verify (O(n^2)). A
    /// window with no rows at all (deleted) moves on to the next.
    pub async fn scan(&self, from: i64, to: i64, limit: i64) -> Result<Vec<StoredRow>, StoreError> {
        let limit = limit.max(1);
        let mut start = from;
        while start <= to {
            let end = to.min(start.saturating_add(limit - 1));
            let rows = dispatch!(self, s => s.scan(start, end, limit).await)?;
            if !rows.is_empty() || end == to {
                return Ok(rows);
            }
            start = end + 1;
        }
        Ok(Vec::new())
    }

    /// The row at `seq`, if any.
    pub async fn row(&self, seq: i64) -> Result<Option<StoredRow>, StoreError> {
        Ok(self.scan(seq, seq, 1).await?.into_iter().next())
    }

    /// The smallest seq whose event time is at or after `ts` (epoch ms).
    pub async fn first_seq_since(&self, ts: i64) -> Result<Option<i64>, StoreError> {
        dispatch!(self, s => s.first_seq_since(ts).await)
    }

    /// The latest event time in the log.
    pub async fn max_ts(&self) -> Result<Option<i64>, StoreError> {
        dispatch!(self, s => s.max_ts().await)
    }

    /// Filtered query, newest first. A time filter is first turned into the seq range of
    /// the matching events (one index-only pass over `ts`), so the newest-first walk over
    /// seq touches only that range instead of sorting every match.
    pub async fn query(&self, filter: &EventFilter) -> Result<Vec<StoredRow>, StoreError> {
        if filter.since.is_some() || filter.until.is_some() {
            let bounds = dispatch!(self, s => s.seq_bounds(filter.since, filter.until).await)?;
            let Some(range) = bounds else { return Ok(Vec::new()) };
            let narrowed = EventFilter { seq_range: Some(range), ..filter.clone() };
            return dispatch!(self, s => s.query(&narrowed).await);
        }
        dispatch!(self, s => s.query(filter).await)
    }

    /// The seq range of events whose time is in `[since, until)`.
    pub async fn seq_bounds(&self, since: Option<i64>, until: Option<i64>) -> Result<Option<(i64, i64)>, StoreError> {
        dispatch!(self, s => s.seq_bounds(since, until).await)
    }

    /// Aggregate statistics.
    pub async fn stats(&self, filter: &StatsFilter) -> Result<Stats, StoreError> {
        dispatch!(self, s => s.stats(filter).await)
    }

    /// Checkpoints whose seq is within `[from, to]`, ascending.
    pub async fn checkpoints(&self, from: i64, to: i64) -> Result<Vec<Checkpoint>, StoreError> {
        dispatch!(self, s => s.checkpoints(from, to).await)
    }

    /// The newest checkpoint.
    pub async fn last_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        dispatch!(self, s => s.last_checkpoint().await)
    }

    /// Stores a new API key.
    pub async fn insert_key(&self, key: &ApiKeyRow) -> Result<(), StoreError> {
        dispatch!(self, s => s.insert_key(key).await)
    }

    /// All API keys (active and revoked).
    pub async fn list_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        dispatch!(self, s => s.list_keys().await)
    }

    /// Marks a key revoked; false when no active key has that id.
    pub async fn revoke_key(&self, id: &str, at: i64) -> Result<bool, StoreError> {
        dispatch!(self, s => s.revoke_key(id, at).await)
    }

    /// Alerts matching a filter, newest first.
    pub async fn list_alerts(&self, filter: &AlertFilter) -> Result<Vec<AlertRow>, StoreError> {
        dispatch!(self, s => s.list_alerts(filter).await)
    }

    /// One alert.
    pub async fn alert(&self, id: i64) -> Result<Option<AlertRow>, StoreError> {
        let filter = AlertFilter { id: Some(id), limit: 1, ..AlertFilter::default() };
        Ok(self.list_alerts(&filter).await?.into_iter().next())
    }

    /// The newest unresolved alert with this fingerprint last seen at or after `since`.
    pub async fn find_open_alert(
        &self,
        rule: &str,
        severity: &str,
        dedup_key: &str,
        since: i64,
    ) -> Result<Option<AlertRow>, StoreError> {
        dispatch!(self, s => s.find_open_alert(rule, severity, dedup_key, since).await)
    }

    /// Writes alert changes, each with its history entry, notifications and timers, in one
    /// transaction; fills in the ids.
    pub async fn commit_alert_writes(&self, writes: &mut [AlertWrite]) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        dispatch!(self, s => s.commit_alert_writes(writes).await)
    }

    /// Stores notifications not tied to an alert change (summaries, digests); fills ids.
    pub async fn insert_notifications(&self, rows: &mut [NotificationRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        dispatch!(self, s => s.insert_notifications(rows).await)
    }

    /// In one transaction: stores `rows` (a storm summary, a digest) and sets the status of
    /// the notifications `ids` they replace (`folded`, `digested`).
    pub async fn replace_notifications(
        &self,
        rows: &mut [NotificationRow],
        ids: &[i64],
        status: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.replace_notifications(rows, ids, status, at).await)
    }

    /// Moves `last_notified_at` of alerts (a reminder that had nobody to go to).
    pub async fn touch_notified(&self, ids: &[i64], at: i64) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        dispatch!(self, s => s.touch_notified(ids, at).await)
    }

    /// Inserts a decision (its id is set) and its `issued` change, in one transaction.
    pub async fn insert_decision(
        &self,
        d: &mut decisions::DecisionRow,
    ) -> Result<decisions::DecisionChange, StoreError> {
        dispatch!(self, s => s.insert_decision(d).await)
    }

    /// Ends active decisions in one transaction; returns the changes written.
    pub async fn end_decisions(
        &self,
        ends: &[decisions::DecisionEnd],
    ) -> Result<Vec<decisions::DecisionChange>, StoreError> {
        if ends.is_empty() {
            return Ok(Vec::new());
        }
        dispatch!(self, s => s.end_decisions(ends).await)
    }

    /// Stored decisions matching a filter, newest first.
    pub async fn list_decisions(
        &self,
        f: &decisions::DecisionFilter,
    ) -> Result<Vec<decisions::DecisionRow>, StoreError> {
        dispatch!(self, s => s.list_decisions(f).await)
    }

    /// Decision changes after `since` (ascending), each with its decision; `unchained`:
    /// only those not yet in the chain.
    pub async fn decision_changes(
        &self,
        since: i64,
        unchained: bool,
        decision_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<(decisions::DecisionChange, decisions::DecisionRow)>, StoreError> {
        dispatch!(self, s => s.decision_changes(since, unchained, decision_id, limit).await)
    }

    /// The newest decision change id (0: none).
    pub async fn last_decision_change(&self) -> Result<i64, StoreError> {
        dispatch!(self, s => s.last_decision_change().await)
    }

    /// Records the chain seqs of decision changes: `(change id, seq)`.
    pub async fn set_decision_change_seqs(&self, seqs: &[(i64, i64)]) -> Result<(), StoreError> {
        if seqs.is_empty() {
            return Ok(());
        }
        dispatch!(self, s => s.set_decision_change_seqs(seqs).await)
    }

    /// Records the chain seq of alert changes: `(change id, seq)`.
    pub async fn set_change_seqs(&self, seqs: &[(i64, i64)]) -> Result<(), StoreError> {
        if seqs.is_empty() {
            return Ok(());
        }
        dispatch!(self, s => s.set_change_seqs(seqs).await)
    }

    /// History of one alert, oldest first: its newest 1000 entries (the chain keeps all).
    pub async fn alert_history(&self, alert_id: i64) -> Result<Vec<AlertChange>, StoreError> {
        dispatch!(self, s => s.alert_changes(Some(alert_id), false, 1000).await)
    }

    /// Alert changes not yet written to the chain, oldest first.
    pub async fn unchained_changes(&self, limit: i64) -> Result<Vec<AlertChange>, StoreError> {
        dispatch!(self, s => s.alert_changes(None, true, limit).await)
    }

    /// Notifications matching a filter, newest first.
    pub async fn list_notifications(&self, filter: &NotificationFilter) -> Result<Vec<NotificationRow>, StoreError> {
        dispatch!(self, s => s.list_notifications(filter, None).await)
    }

    /// Pending notifications due at `now` (for one receiver, or any), oldest first.
    pub async fn due_notifications(
        &self,
        receiver: Option<&str>,
        now: i64,
        limit: i64,
    ) -> Result<Vec<NotificationRow>, StoreError> {
        let filter = NotificationFilter {
            status: Some("pending".into()),
            receiver: receiver.map(str::to_owned),
            limit,
            ..Default::default()
        };
        dispatch!(self, s => s.list_notifications(&filter, Some(now)).await)
    }

    /// One notification.
    pub async fn notification(&self, id: i64) -> Result<Option<NotificationRow>, StoreError> {
        let filter = NotificationFilter { before_id: Some(id.saturating_add(1)), limit: 1, ..Default::default() };
        Ok(self.list_notifications(&filter).await?.into_iter().find(|n| n.id == id))
    }

    /// The notification with this idempotency key.
    pub async fn notification_by_key(&self, key: &str) -> Result<Option<NotificationRow>, StoreError> {
        let filter = NotificationFilter { idempotency_key: Some(key.to_owned()), limit: 1, ..Default::default() };
        Ok(self.list_notifications(&filter).await?.into_iter().next())
    }

    /// Saves a notification's delivery state.
    pub async fn update_notification(&self, n: &NotificationRow) -> Result<(), StoreError> {
        dispatch!(self, s => s.update_notification(n).await)
    }

    /// Sets the status of several notifications.
    pub async fn set_notification_status(&self, ids: &[i64], status: &str, at: i64) -> Result<(), StoreError> {
        dispatch!(self, s => s.set_notification_status(ids, status, at).await)
    }

    /// When the newest notification of `kind` for `receiver` was created.
    pub async fn last_notification_at(&self, receiver: &str, kind: &str) -> Result<Option<i64>, StoreError> {
        dispatch!(self, s => s.last_notification_at(receiver, kind).await)
    }

    /// Stores a silence.
    pub async fn insert_silence(&self, silence: &SilenceRow) -> Result<(), StoreError> {
        dispatch!(self, s => s.insert_silence(silence).await)
    }

    /// Every silence, newest first (the newest 10,000).
    pub async fn list_silences(&self) -> Result<Vec<SilenceRow>, StoreError> {
        dispatch!(self, s => s.list_silences(None, None).await)
    }

    /// One silence.
    pub async fn silence(&self, id: &str) -> Result<Option<SilenceRow>, StoreError> {
        Ok(dispatch!(self, s => s.list_silences(None, Some(id)).await)?.into_iter().next())
    }

    /// Silences not expired at `now` (active or pending).
    pub async fn live_silences(&self, now: i64) -> Result<Vec<SilenceRow>, StoreError> {
        dispatch!(self, s => s.list_silences(Some(now), None).await)
    }

    /// Expires a silence now; false when there is none by that id or it already expired.
    pub async fn expire_silence(&self, id: &str, at: i64) -> Result<bool, StoreError> {
        dispatch!(self, s => s.expire_silence(id, at).await)
    }

    /// Pending escalation timers due at `now`.
    pub async fn due_escalations(&self, now: i64, limit: i64) -> Result<Vec<EscalationRow>, StoreError> {
        dispatch!(self, s => s.due_escalations(now, limit).await)
    }

    /// Every escalation timer of an alert.
    pub async fn escalations_of(&self, alert_id: i64) -> Result<Vec<EscalationRow>, StoreError> {
        dispatch!(self, s => s.escalations_of(alert_id).await)
    }

    /// Notifications in the outbox by (receiver, status, count).
    pub async fn notification_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        dispatch!(self, s => s.notification_counts().await)
    }

    /// Alert counts and response times (alerts created at or after `since`).
    pub async fn alert_stats(&self, since: Option<i64>) -> Result<AlertStats, StoreError> {
        dispatch!(self, s => s.alert_stats(since).await)
    }

    /// Stores (or replaces) the deployed module of a rule name.
    pub async fn save_rule(&self, rule: &StoredRule) -> Result<(), StoreError> {
        dispatch!(self, s => s.save_rule(rule).await)
    }

    /// Sets the status of the stored version `sha256` of a rule; false when that version
    /// is not the stored one.
    pub async fn set_rule_status(
        &self,
        name: &str,
        sha256: &str,
        status: &str,
        reason: Option<&str>,
        at: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self, s => s.set_rule_status(name, sha256, status, reason, at).await)
    }

    /// Removes a stored rule; false when none had that name.
    pub async fn delete_rule(&self, name: &str) -> Result<bool, StoreError> {
        dispatch!(self, s => s.delete_rule(name).await)
    }

    /// Every stored rule, by name.
    pub async fn load_rules(&self) -> Result<Vec<StoredRule>, StoreError> {
        dispatch!(self, s => s.load_rules().await)
    }

    /// Appends a checkpoint on its own (the timer, shutdown, a purge, an export).
    pub async fn append_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        dispatch!(self, s => s.append(&[], Some(checkpoint)).await)
    }

    /// The checkpoint with this id.
    pub async fn checkpoint_by_id(&self, id: i64) -> Result<Option<Checkpoint>, StoreError> {
        dispatch!(self, s => s.checkpoint_where("id = ", id, "").await)
    }

    /// The newest checkpoint at or below `seq`.
    pub async fn checkpoint_at_or_before(&self, seq: i64) -> Result<Option<Checkpoint>, StoreError> {
        dispatch!(self, s => s.checkpoint_where("seq <= ", seq, " ORDER BY id DESC").await)
    }

    /// The oldest checkpoint at or above `seq`.
    pub async fn checkpoint_at_or_after(&self, seq: i64) -> Result<Option<Checkpoint>, StoreError> {
        dispatch!(self, s => s.checkpoint_where("seq >= ", seq, " ORDER BY id").await)
    }

    /// The newest checkpoint signed before `at` (epoch ms).
    pub async fn checkpoint_signed_before(&self, at: i64) -> Result<Option<Checkpoint>, StoreError> {
        dispatch!(self, s => s.checkpoint_where("created_at < ", at, " ORDER BY id DESC").await)
    }

    /// Checkpoints with id below `before_id` (all when None), newest first, at most `limit`.
    pub async fn list_checkpoints(&self, before_id: Option<i64>, limit: i64) -> Result<Vec<Checkpoint>, StoreError> {
        dispatch!(self, s => s.list_checkpoints(before_id.unwrap_or(i64::MAX), limit).await)
    }

    /// Rows at or below this seq may be deleted (by a retention purge); 0 when never purged.
    pub async fn retention_floor(&self) -> Result<i64, StoreError> {
        dispatch!(self, s => s.retention_floor().await)
    }

    /// Raises the retention floor to `floor` (the seq of a checkpoint) and deletes every row
    /// at or below it, in one transaction; returns the rows deleted.
    pub async fn purge(&self, floor: i64) -> Result<u64, StoreError> {
        dispatch!(self, s => s.purge(floor).await)
    }

    /// Liveness of the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.ping().await)
    }
}

#[cfg(test)]
mod tests {
    use super::{ErrorClass, classify, classify_code};

    #[test]
    fn database_errors_are_classified_by_code() {
        assert_eq!(classify_code("13", "database or disk is full"), ErrorClass::Full);
        assert_eq!(classify_code("778", "disk I/O error"), ErrorClass::Unavailable);
        assert_eq!(classify_code("5", "database is locked"), ErrorClass::Unavailable);
        assert_eq!(classify_code("8", "attempt to write a readonly database"), ErrorClass::Unavailable);
        assert_eq!(classify_code("25006", "cannot execute INSERT in a read-only transaction"), ErrorClass::Unavailable);
        assert_eq!(classify_code("1811", "trigger"), ErrorClass::Other);
        assert_eq!(classify_code("19", "UNIQUE constraint failed"), ErrorClass::Other);
        assert_eq!(classify_code("53100", "could not extend file"), ErrorClass::Full);
        assert_eq!(
            classify_code("57P01", "terminating connection due to administrator command"),
            ErrorClass::Unavailable
        );
        assert_eq!(classify_code("08006", "connection failure"), ErrorClass::Unavailable);
        assert_eq!(classify_code("23505", "duplicate key"), ErrorClass::Other);
        assert_eq!(classify(&sqlx::Error::PoolTimedOut), ErrorClass::Unavailable);
        let enospc = std::io::Error::from_raw_os_error(28);
        assert_eq!(classify(&sqlx::Error::Io(enospc)), ErrorClass::Full);
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(classify(&sqlx::Error::Io(refused)), ErrorClass::Unavailable);
    }
}
