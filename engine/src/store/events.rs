//! The events table: the stored row ([`StoredRow`]) with its indexed columns, the log's
//! [`Head`], and the `Store` methods that append, scan, look up and purge rows. The ledger
//! writes and verifies through them, the API reads; appends and scans are dialect SQL
//! (sqlite.rs, postgres.rs), `event_queries!` the part both share. Filtered queries and
//! statistics over this table are in query.rs.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::{Checkpoint, Store, StoreError, dispatch};

/// What makes an event unique: `(ingest_key, event_id)` (the key None for the server's own).
pub type EventKey = (Option<String>, String);

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
    pub event_id: String,
    /// timestamp, epoch ms.
    pub ts: i64,
    pub category: String,
    pub action: String,
    pub severity: String,
    pub outcome: String,
    pub organization_id: Option<String>,
    pub user_id: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    /// Id of the API key that sent the event (None: the server's own, or stored before keys
    /// were recorded).
    pub ingest_key: Option<String>,
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
            ingest_key: s("ingest_key"),
        }
    }

    /// The columns of an event written from its typed fields (what `from_event` reads back
    /// from its canonical form).
    pub fn from_fields(f: &crate::event::EventFields, server: &crate::event::ServerFields<'_>) -> Self {
        use crate::event::{ORGANIZATION_ID, REQUEST_ID, USER_ID};
        Self {
            event_id: server.event_id.to_owned(),
            ts: f.timestamp.unwrap_or_default(),
            category: f.category.clone(),
            action: f.action.clone(),
            severity: f.severity.clone(),
            outcome: f.outcome.clone(),
            organization_id: f.strings[ORGANIZATION_ID].clone(),
            user_id: f.strings[USER_ID].clone(),
            ip: f.ip.clone(),
            request_id: f.strings[REQUEST_ID].clone(),
            ingest_key: server.ingest_key.map(str::to_owned),
        }
    }

    fn pairs(&self) -> [(&'static str, String); 11] {
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
            ("ingest_key", o(&self.ingest_key)),
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
                && c.request_id.as_deref() == cols.request_id.as_deref()
                && c.ingest_key.as_deref() == cols.ingest_key.as_deref();
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
    #[serde(borrow)]
    ingest_key: Option<std::borrow::Cow<'a, str>>,
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

/// Inside an append's transaction: the log's newest row must be the one the writer chains
/// on (the first row's `seq - 1` and `prev_hash`; for a checkpoint alone, the row it
/// signs). Rows deleted or written under the running writer (a truncation while it runs)
/// fail the append, before anything is written on top of them; the sequencer then re-reads
/// the head and puts the log on hold, so no new checkpoint or anchor can cover the change.
/// An empty table is right only below the retention floor (a purge of the whole log).
pub(super) fn check_head_before_append(
    head: Option<(i64, Vec<u8>)>,
    floor: i64,
    rows: &[StoredRow],
    checkpoint: Option<&Checkpoint>,
) -> Result<(), StoreError> {
    let (seq, hash) = match (rows.first(), checkpoint) {
        (Some(first), _) => (first.seq - 1, first.prev_hash.as_slice()),
        (None, Some(cp)) => (cp.seq, cp.hash.as_slice()),
        (None, None) => return Ok(()),
    };
    let fine = match &head {
        // An unreadable hash (a damaged row) is chained on as zeros, like `head_from` does.
        Some((s, h)) => *s == seq && (h.as_slice() == hash || (h.len() != 32 && hash == [0u8; 32])),
        None => seq == 0 || floor >= seq,
    };
    if fine {
        return Ok(());
    }
    let found = head.map_or_else(|| "no rows".to_owned(), |(s, h)| format!("seq {s} hash {}", hex::encode(h)));
    Err(StoreError::WriteFailed(format!(
        "the log's newest row is not the one the writer chains on (expected seq {seq} hash {}, found {found}): \
         rows were removed or written by someone else",
        hex::encode(hash)
    )))
}

/// The head given the newest row's `(seq, hash)` as both backends read it (none: empty log).
pub(super) fn head_from(row: Option<(i64, Vec<u8>)>) -> Result<Head, StoreError> {
    match row {
        None => Ok(Head { seq: 0, hash: [0; 32] }),
        Some((seq, hash)) => {
            // A damaged head row does not stop the server: the chain goes on from zeros and
            // verify names the row (hash_mismatch, and chain_break at both ends of the link).
            let hash = <[u8; 32]>::try_from(hash.as_slice()).ok().unwrap_or_else(|| {
                tracing::warn!(seq, "The newest row's hash is unreadable; verify will name it");
                [0; 32]
            });
            Ok(Head { seq, hash })
        }
    }
}

impl Store {
    /// The last stored row's seq and hash.
    pub async fn head(&self) -> Result<Head, StoreError> {
        dispatch!(self, s => s.head().await)
    }

    /// Drops index entries naming seqs above `head` (rows gone in a truncation), so new rows
    /// written at those seqs are indexed only by their own values. Returns how many.
    pub async fn prune_postings_after(&self, head: i64) -> Result<u64, StoreError> {
        let postings = dispatch!(self, s => s.prune_postings_after(head).await)?;
        let filters = match self {
            Store::Postgres(s) if !s.uses_postings() => 0,
            _ => dispatch!(self, s => s.prune_filters_after(head).await)?,
        };
        Ok(postings + filters)
    }

    /// The postings `(term, seq)` of `from..=to`, where the store keeps a posting table
    /// (both backends since PostgreSQL's migration 0019); None for the read-only views over
    /// every partition of a cluster, which have none.
    pub async fn postings(&self, from: i64, to: i64) -> Result<Option<Vec<(i64, i64)>>, StoreError> {
        match self {
            Store::Sqlite(s) => Ok(Some(s.postings(from, to).await?)),
            Store::Postgres(s) if s.uses_postings() => Ok(Some(s.postings(from, to).await?)),
            Store::Postgres(_) => Ok(None),
        }
    }

    /// Which of these `(ingest_key, event_id)` pairs are already stored, with their seq.
    /// Idempotency is per key: the same event_id sent by another key (or by the server, whose
    /// key is None) is another event.
    pub async fn find_event_ids(&self, ids: &[EventKey]) -> Result<HashMap<EventKey, i64>, StoreError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let wanted: std::collections::HashSet<&EventKey> = ids.iter().collect();
        let mut event_ids: Vec<String> = ids.iter().map(|(_, id)| id.clone()).collect();
        event_ids.sort_unstable();
        event_ids.dedup();
        // Rows with these event_ids (from any key), narrowed to the pairs asked for.
        let found: Vec<(Option<String>, String, i64)> = dispatch!(self, s => s.find_event_ids(&event_ids).await)?;
        Ok(found.into_iter().map(|(key, id, seq)| ((key, id), seq)).filter(|(k, _)| wanted.contains(k)).collect())
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
        windowed(
            from,
            to,
            limit,
            |start, end, limit| async move { dispatch!(self, s => s.scan(start, end, limit).await) },
        )
        .await
    }

    /// The `(seq, canon)` of the rows with `from <= seq <= to`, ascending, at most `limit`,
    /// windowed as [`Self::scan`]: what detection reads back and replays (SQLite steps it
    /// through the C API on the calling thread). An unreadable canon comes back empty.
    pub async fn scan_canon(&self, from: i64, to: i64, limit: i64) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        windowed(from, to, limit, |start, end, limit| async move {
            dispatch!(self, s => s.scan_canon(start, end, limit).await)
        })
        .await
    }

    /// The row at `seq`, if any.
    pub async fn row(&self, seq: i64) -> Result<Option<StoredRow>, StoreError> {
        Ok(self.scan(seq, seq, 1).await?.into_iter().next())
    }

    /// The smallest seq whose event time is at or after `ts` (epoch ms).
    pub async fn first_seq_since(&self, ts: i64) -> Result<Option<i64>, StoreError> {
        dispatch!(self, s => s.first_seq_since(ts).await)
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
}

/// `fetch(start, end, limit)` over windows of `limit` seqs from `from`, up to `to`, until one
/// has rows (the log is gap-free, so a window holds at most `limit` rows; a window whose
/// rows were all deleted moves on to the next). See [`Store::scan`].
async fn windowed<T, F, Fut>(from: i64, to: i64, limit: i64, mut fetch: F) -> Result<Vec<T>, StoreError>
where
    F: FnMut(i64, i64, i64) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<T>, StoreError>>,
{
    let limit = limit.max(1);
    let mut start = from;
    while start <= to {
        let end = to.min(start.saturating_add(limit - 1));
        let rows = fetch(start, end, limit).await?;
        if !rows.is_empty() || end == to {
            return Ok(rows);
        }
        start = end + 1;
    }
    Ok(Vec::new())
}

/// Also expands `SELECT_EVENTS` and the `stored_row` decoder, which the dialect's `scan` and
/// `search_queries!` (query.rs) use.
macro_rules! event_queries {
    ($store:ty, $row:ty, writer: $writer:ident) => {
        const SELECT_EVENTS: &str = "SELECT seq, event_id, ts, category, action, severity, outcome, organization_id, \
                                     user_id, ip, request_id, ingest_key, canon, prev_hash, hash FROM events";

        impl $store {
            pub(super) async fn retention_floor(&self) -> Result<i64, StoreError> {
                let floor: Option<i64> = sqlx::query_scalar("SELECT floor FROM retention_floor WHERE id = 1")
                    .fetch_optional(&self.$writer)
                    .await?;
                Ok(floor.unwrap_or(0))
            }
        }

        /// Reads an events row without trusting its types: a column holding a value of the
        /// wrong type (a tampered row) is recorded in `unreadable`, never a panic.
        fn stored_row(r: &$row) -> StoredRow {
            let mut bad = Vec::new();
            let mut text = |name: &'static str| -> Option<String> {
                match r.try_get::<Option<String>, _>(name) {
                    Ok(v) => v,
                    Err(_) => {
                        let shown = r
                            .try_get::<Option<i64>, _>(name)
                            .ok()
                            .flatten()
                            .map(|n| n.to_string())
                            .or_else(|| {
                                r.try_get::<Option<Vec<u8>>, _>(name)
                                    .ok()
                                    .flatten()
                                    .map(|b| String::from_utf8_lossy(&b).chars().take(64).collect())
                            })
                            .unwrap_or_default();
                        bad.push((name, format!("not text ({shown:?})")));
                        Some(shown)
                    }
                }
            };
            let event_id = text("event_id").unwrap_or_default();
            let category = text("category").unwrap_or_default();
            let action = text("action").unwrap_or_default();
            let severity = text("severity").unwrap_or_default();
            let outcome = text("outcome").unwrap_or_default();
            let organization_id = text("organization_id");
            let user_id = text("user_id");
            let ip = text("ip");
            let request_id = text("request_id");
            let ingest_key = text("ingest_key");
            let ts = match r.try_get::<i64, _>("ts") {
                Ok(v) => v,
                Err(_) => {
                    let shown = r.try_get::<Option<String>, _>("ts").ok().flatten().unwrap_or_default();
                    bad.push((
                        "timestamp",
                        format!("not an integer ({:?})", shown.chars().take(64).collect::<String>()),
                    ));
                    i64::MIN
                }
            };
            let mut bytes = |name: &'static str| -> Vec<u8> {
                match r.try_get::<Vec<u8>, _>(name) {
                    Ok(v) => v,
                    Err(_) => match r.try_get::<String, _>(name) {
                        Ok(s) => s.into_bytes(),
                        Err(_) => {
                            bad.push((name, "not bytes".to_owned()));
                            Vec::new()
                        }
                    },
                }
            };
            let canon = bytes("canon");
            let prev_hash = bytes("prev_hash");
            let hash = bytes("hash");
            StoredRow {
                seq: r.try_get("seq").unwrap_or(i64::MIN),
                columns: IndexedColumns {
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
                },
                canon,
                prev_hash,
                hash,
                unreadable: bad,
            }
        }
    };
}

pub(crate) use event_queries;
