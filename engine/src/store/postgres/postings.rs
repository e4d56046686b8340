//! The posting table on PostgreSQL (migration 0019; the design is store/postings.rs's): the
//! postings of an append are one binary `COPY` after its event rows (postgres.rs), verify
//! reads them back here, a truncation the operator accepted drops those of the vanished
//! rows, and the migration's transaction fills them for the rows stored before it, in the
//! database's own schema and in every partition schema of a cluster. The same for the
//! per-block filters (store/block_filters.rs, migration 0020): written by the append that
//! fills a block, and by migration 0020 for the full blocks stored before it.

use sqlx::{AssertSqlSafe, Row};

use super::super::{IndexedColumns, StoreError, block_filters, postings};
use super::{PgStore, copy, quote_ident};

/// Rows read per step of the backfill.
const BACKFILL_ROWS: i64 = 20_000;

impl PgStore {
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
    for schema in posting_schemas(conn).await? {
        backfill_schema(conn, &quote_ident(&schema)).await?;
    }
    Ok(())
}

/// This schema and the partition schemas (`<schema>_p<n>`) that have a postings table.
async fn posting_schemas(conn: &mut sqlx::PgConnection) -> Result<Vec<String>, StoreError> {
    let base: String = sqlx::query_scalar("SELECT current_schema()").fetch_one(&mut *conn).await?;
    Ok(sqlx::query_scalar(
        "SELECT n.nspname::text FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = 'postings' \
         WHERE n.nspname = $1 OR (left(n.nspname, length($1) + 2) = $1 || '_p' \
         AND substr(n.nspname, length($1) + 3) ~ '^[0-9]+$') ORDER BY n.nspname",
    )
    .bind(&base)
    .fetch_all(&mut *conn)
    .await?)
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

/// Writes the filters of the blocks whose last seq is in `first..=last` (an append filled
/// them), reading their terms back from the postings in the append's transaction; `schema`
/// qualifies the tables (empty: the search path's).
pub(super) async fn seal_blocks(
    conn: &mut sqlx::PgConnection,
    schema: &str,
    first: i64,
    last: i64,
) -> Result<(), StoreError> {
    let full = block_filters::last_full_block(last);
    for block in postings::block(first)..=full {
        seal_block(conn, schema, block).await?;
    }
    seal_spans(conn, schema, postings::block(first), full).await
}

/// Writes the span filters (store/block_filters.rs) of the spans that end in blocks
/// `from..=to` and have none yet, from their blocks' rows.
async fn seal_spans(conn: &mut sqlx::PgConnection, schema: &str, from: i64, to: i64) -> Result<(), StoreError> {
    let sealed = format!("SELECT EXISTS (SELECT 1 FROM {schema}posting_filters WHERE bucket = 256 AND block = $1)");
    // One index probe per block bucket (`= ANY`), not a scan of every bucket below 256.
    let select = format!(
        "SELECT bucket, fps FROM {schema}posting_filters WHERE bucket = ANY($1::bigint[]) AND block >= $2 AND block <= $3"
    );
    let insert = format!(
        "INSERT INTO {schema}posting_filters (bucket, block, fps) \
         SELECT b, $1, f FROM UNNEST($2::bigint[], $3::bytea[]) AS u(b, f)"
    );
    let buckets: Vec<i64> = (0..block_filters::BUCKETS).collect();
    for span in block_filters::span_of(from)..=block_filters::span_of(to + 1) - 1 {
        let end = block_filters::span_end(span);
        if sqlx::query_scalar::<_, bool>(AssertSqlSafe(sealed.as_str())).bind(end).fetch_one(&mut *conn).await? {
            continue;
        }
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(AssertSqlSafe(select.as_str()))
            .bind(&buckets)
            .bind(end + 1 - block_filters::SPAN_BLOCKS)
            .bind(end)
            .fetch_all(&mut *conn)
            .await?;
        let Some(span_rows) = block_filters::build_span(&rows) else { continue };
        let (b, f): (Vec<i64>, Vec<Vec<u8>>) = span_rows.into_iter().unzip();
        sqlx::query(AssertSqlSafe(insert.as_str())).bind(end).bind(b).bind(f).execute(&mut *conn).await?;
    }
    Ok(())
}

async fn seal_block(conn: &mut sqlx::PgConnection, schema: &str, block: i64) -> Result<(), StoreError> {
    // One array, not a row per posting (~18,000 at W1).
    let select = format!("SELECT COALESCE(array_agg(term), '{{}}') FROM {schema}postings WHERE block = $1");
    let terms: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(select.as_str())).bind(block).fetch_one(&mut *conn).await?;
    let rows = block_filters::build(terms);
    let insert = format!(
        "INSERT INTO {schema}posting_filters (bucket, block, fps) \
         SELECT b, $1, f FROM UNNEST($2::bigint[], $3::bytea[]) AS u(b, f)"
    );
    let (buckets, fps): (Vec<i64>, Vec<Vec<u8>>) = rows.into_iter().unzip();
    sqlx::query(AssertSqlSafe(insert.as_str())).bind(block).bind(buckets).bind(fps).execute(&mut *conn).await?;
    Ok(())
}

/// Fills the filters of the full blocks stored before migration 0020, in this schema and in
/// each partition schema; runs in the migration's transaction.
pub(super) async fn backfill_filters(conn: &mut sqlx::PgConnection) -> Result<(), StoreError> {
    for (schema, oldest, last_full) in sealed_logs(conn).await? {
        for block in oldest..=last_full {
            seal_block(conn, &schema, block).await?;
        }
        seal_spans(conn, &schema, oldest, last_full).await?;
    }
    Ok(())
}

/// Each schema with postings (qualifier, with its dot), its oldest posting block and its
/// last full block, where it holds events.
async fn sealed_logs(conn: &mut sqlx::PgConnection) -> Result<Vec<(String, i64, i64)>, StoreError> {
    let mut out = Vec::new();
    for schema in posting_schemas(conn).await? {
        let schema = format!("{}.", quote_ident(&schema));
        let bounds = format!("SELECT (SELECT MIN(block) FROM {schema}postings), (SELECT MAX(seq) FROM {schema}events)");
        let (oldest, head): (Option<i64>, Option<i64>) =
            sqlx::query_as(AssertSqlSafe(bounds.as_str())).fetch_one(&mut *conn).await?;
        if let (Some(oldest), Some(head)) = (oldest, head) {
            out.push((schema, oldest, block_filters::last_full_block(head)));
        }
    }
    Ok(out)
}

/// Fills the span filters of the spans full before migration 0021, in this schema and in
/// each partition schema (those the 0020 backfill of the same upgrade sealed are kept).
pub(super) async fn backfill_spans(conn: &mut sqlx::PgConnection) -> Result<(), StoreError> {
    for (schema, oldest, last_full) in sealed_logs(conn).await? {
        seal_spans(conn, &schema, oldest, last_full).await?;
    }
    Ok(())
}
