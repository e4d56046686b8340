//! The posting table on PostgreSQL (migration 0019; the design is store/postings.rs's): the
//! postings of an append are one binary `COPY` after its event rows (postgres.rs), verify
//! reads them back here, a truncation the operator accepted drops those of the vanished
//! rows, and the migration's transaction fills them for the rows stored before it, in the
//! database's own schema and in every partition schema of a cluster.

use sqlx::{AssertSqlSafe, Row};

use super::super::query::EventFilter;
use super::super::{IndexedColumns, StoreError, StoredRow, postings};
use super::{PgStore, copy, quote_ident};

/// Rows read per step of the backfill.
const BACKFILL_ROWS: i64 = 20_000;

/// Blocks of the first window of a lookup; each next window is four times wider.
const FIRST_WINDOW_BLOCKS: i64 = 4;

impl PgStore {
    /// `GET /v1/events` by a posting field ([`EventFilter::posting_field`]), newest first:
    /// one query per window of blocks, from the newest down, each window four times wider
    /// than the last, until `limit` rows are found or the range is exhausted. PostgreSQL
    /// cannot stop a posting lookup early (it sorts every candidate seq before the `LIMIT`),
    /// so a lookup over the whole log read every posting of the value and fetched every
    /// matching row: 100,000 for an organization of a tenth of 1M events. A window bounds
    /// both; a rare value costs a few more round trips (4 + 16 + 64 + 256 blocks at 1M events).
    pub(in crate::store) async fn query_by_postings(&self, filter: &EventFilter) -> Result<Vec<StoredRow>, StoreError> {
        let limit = filter.limit.max(0);
        let hi = [filter.before_seq.map(|b| b - 1), filter.seq_range.map(|r| r.1)].into_iter().flatten().min();
        let hi = match hi {
            Some(hi) => hi,
            None => self.head().await?.seq,
        };
        let lo = filter.seq_range.map_or(0, |r| r.0);
        let mut out = Vec::new();
        let (mut top, mut blocks) = (hi, FIRST_WINDOW_BLOCKS);
        while top >= lo && (out.len() as i64) < limit {
            let bottom = ((postings::block(top.max(0)) - blocks + 1).max(0) << postings::BLOCK_SHIFT).max(lo);
            let window =
                EventFilter { seq_range: Some((bottom, top)), limit: limit - out.len() as i64, ..filter.clone() };
            out.extend(self.query(&window).await?);
            top = bottom - 1;
            blocks = blocks.saturating_mul(4);
        }
        Ok(out)
    }

    /// The postings `(term, seq)` of the events `from..=to` (verify compares them with the
    /// columns).
    pub(in crate::store) async fn postings(&self, from: i64, to: i64) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows =
            sqlx::query("SELECT term, seq FROM postings WHERE block >= $1 AND block <= $2 AND seq >= $3 AND seq <= $4")
                .bind(postings::block(from))
                .bind(postings::block(to))
                .bind(from)
                .bind(to)
                .persistent(false)
                .fetch_all(self.pool())
                .await?;
        Ok(rows
            .iter()
            .map(|r| (r.try_get::<i64, _>("term").unwrap_or(i64::MIN), r.try_get::<i64, _>("seq").unwrap_or(i64::MIN)))
            .collect())
    }

    /// Drops the postings of seqs above `head` (rows that vanished: a truncation). The
    /// table's guard refuses to drop a posting whose event is still there.
    pub(in crate::store) async fn prune_postings_after(&self, head: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM postings WHERE block >= $1 AND seq > $2")
            .bind(postings::block(head.max(0)))
            .bind(head)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }
}

/// Fills the postings of the rows stored before migration 0019, in this schema and in each
/// partition schema (`<schema>_p<n>`) that has a postings table; runs in the migration's
/// transaction.
pub(super) async fn backfill(conn: &mut sqlx::PgConnection) -> Result<(), StoreError> {
    let base: String = sqlx::query_scalar("SELECT current_schema()").fetch_one(&mut *conn).await?;
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT n.nspname::text FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = 'postings' \
         WHERE n.nspname = $1 OR (left(n.nspname, length($1) + 2) = $1 || '_p' \
         AND substr(n.nspname, length($1) + 3) ~ '^[0-9]+$') ORDER BY n.nspname",
    )
    .bind(&base)
    .fetch_all(&mut *conn)
    .await?;
    for schema in schemas {
        backfill_schema(conn, &quote_ident(&schema)).await?;
    }
    Ok(())
}

async fn backfill_schema(conn: &mut sqlx::PgConnection, schema: &str) -> Result<(), StoreError> {
    let select = format!(
        "SELECT seq, organization_id, user_id, ip, request_id, ingest_key FROM {schema}.events WHERE seq > $1 \
         ORDER BY seq LIMIT $2"
    );
    let copy_into = format!("COPY {schema}.postings (block, term, seq) FROM STDIN (FORMAT binary)");
    let mut after = i64::MIN;
    loop {
        let rows =
            sqlx::query(AssertSqlSafe(select.as_str())).bind(after).bind(BACKFILL_ROWS).fetch_all(&mut *conn).await?;
        let Some(last) = rows.last() else { return Ok(()) };
        after = last.try_get("seq")?;
        let text = |r: &sqlx::postgres::PgRow, column: &str| r.try_get::<Option<String>, _>(column).ok().flatten();
        let columns: Vec<(i64, IndexedColumns)> = rows
            .iter()
            .map(|r| postings::columns_of(r.try_get::<i64, _>("seq").unwrap_or_default(), |c| text(r, c)))
            .collect();
        let keys = postings::sorted_keys(columns.iter().map(|(seq, c)| (*seq, c)));
        if keys.is_empty() {
            continue;
        }
        let mut copy = conn.copy_in_raw(&copy_into).await?;
        if let Err(e) = copy.send(copy::encode_postings(&keys)).await {
            let _ = copy.abort("the backfill failed").await;
            return Err(e.into());
        }
        copy.finish().await?;
    }
}
