//! `GET /v1/events/export?format=ndjson|csv&since=&until=&from=&to=` (role: read): the log
//! streamed in constant memory (chunks of rows read by seq, written as they are read).
//! NDJSON is format `vigil-export-v1` (see `ledger::export`), checkable offline with
//! `vigil verify --file`; CSV is for people. `since`/`until` (event time) select the seq
//! range from the first to the last event in that time range, and every row in between is
//! exported, so the chain of the export is unbroken; `from`/`to` give the seq range directly.
//! An NDJSON export that reaches the head signs it first, so the whole file is covered.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::{AppState, parse_query, parse_time_param};
use crate::api::error::ApiError;
use crate::auth::Role;
use crate::ledger::export::{CSV_COLUMNS, ExportSink, csv_record, write_ndjson};
use crate::store::{Store, StoreError};

/// Rows read per round trip.
const CHUNK: i64 = 2000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExportQuery {
    format: Option<String>,
    since: Option<String>,
    until: Option<String>,
    #[serde(default, deserialize_with = "crate::api::int_param")]
    from: Option<i64>,
    #[serde(default, deserialize_with = "crate::api::int_param")]
    to: Option<i64>,
}

/// Streams the export.
#[tracing::instrument(skip_all)]
pub async fn export(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let who = state.keys.require(&req, Role::Read)?;
    let q: ExportQuery = parse_query(req.query_string())?;
    super::ops::record_read(&state, &who.key_id, crate::ledger::access::Read::EventsExport, req.query_string());
    let csv = match q.format.as_deref().unwrap_or("ndjson") {
        "ndjson" | "jsonl" => false,
        "csv" => true,
        _ => return Err(ApiError::bad_request("`format` must be ndjson or csv")),
    };
    let since = parse_time_param("since", q.since.as_deref())?;
    let until = parse_time_param("until", q.until.as_deref())?;
    if !csv {
        // Sign the head first, so an export up to now has no unsigned tail.
        state.sequencer.checkpoint_now().await?;
    }
    let head = state.store.head().await?.seq;
    let floor = state.store.retention_floor().await?;
    let (mut from, mut to) = (q.from.unwrap_or(1).max(floor + 1), q.to.unwrap_or(head).min(head));
    if since.is_some() || until.is_some() {
        match state.store.seq_bounds(since, until).await? {
            Some((lo, hi)) => (from, to) = (from.max(lo), to.min(hi)),
            None => (from, to) = (from, from - 1),
        }
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<web::Bytes, std::io::Error>>(4);
    let store = state.store.clone();
    tokio::spawn(async move {
        let result = if csv {
            write_csv(&store, from, to, &tx).await
        } else {
            write_ndjson(&store, from, to, floor, crate::event::now_ms(), &mut Client(tx.clone())).await.map(|_| ())
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "Export stopped early");
            let _ = tx.send(Err(std::io::Error::other("export failed; see the server log"))).await;
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let (content_type, ext) = if csv { ("text/csv; charset=utf-8", "csv") } else { ("application/x-ndjson", "ndjson") };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("content-disposition", format!("attachment; filename=\"vigil-{from}-{to}.{ext}\"")))
        .streaming(body))
}

type Sink = tokio::sync::mpsc::Sender<Result<web::Bytes, std::io::Error>>;

/// The client reading an NDJSON export.
struct Client(Sink);

impl ExportSink for Client {
    async fn take(&mut self, bytes: Vec<u8>) -> bool {
        send(&self.0, bytes).await
    }
}

/// Sends a chunk; false when the client went away.
async fn send(tx: &Sink, bytes: Vec<u8>) -> bool {
    tx.send(Ok(web::Bytes::from(bytes))).await.is_ok()
}

async fn write_csv(store: &Store, from: i64, to: i64, tx: &Sink) -> Result<(), StoreError> {
    let mut header = CSV_COLUMNS.join(",");
    header.push_str("\r\n");
    if !send(tx, header.into_bytes()).await {
        return Ok(());
    }
    let mut next = from;
    while next <= to {
        let rows = store.scan(next, to, CHUNK).await?;
        let Some(last) = rows.last() else { break };
        next = last.seq + 1;
        let mut out = String::with_capacity(rows.len() * 600);
        for row in &rows {
            let mut event = row.to_api_json_marked();
            if let Some(obj) = event.as_object_mut()
                && let Some(damage) = obj.remove("damaged")
            {
                obj.insert("reason".into(), format!("DAMAGED ROW: {damage}").into());
            }
            out.push_str(&csv_record(&event));
        }
        if !send(tx, out.into_bytes()).await {
            return Ok(());
        }
    }
    Ok(())
}
