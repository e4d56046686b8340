//! `GET /v1/events/export?format=ndjson|csv&since=&until=&from=&to=` (role: read): the log
//! streamed in constant memory (chunks of rows read by seq, written as they are read).
//! NDJSON is format `vigil-export-v1` (see `ledger::export`), checkable offline with
//! `vigil verify --file`; CSV is for people. `since`/`until` (event time) select the seq
//! range from the first to the last event in that time range, and every row in between is
//! exported, so the chain of the export is unbroken; `from`/`to` give the seq range directly.
//! An NDJSON export that reaches the head signs it first, so the whole file is covered.
//!
//! Cluster mode: the export holds every partition (or the one `partition=` names), one
//! section per partition in ascending order, each a complete export of that partition's
//! chain whose header names `partition` (and, exporting every partition, `partitions`;
//! `ledger::export::sections`);
//! `from`/`to` are seqs of one partition, so they need `partition`. A partition this node
//! writes is signed first; another node's partition is exported up to its head, its tail
//! after the newest checkpoint reported `unsigned` offline until its writer signs it (within
//! `checkpoint_every_secs`). CSV gets a first column `partition`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::{AppState, parse_query, parse_time_param};
use crate::api::error::ApiError;
use crate::auth::Role;
use crate::ledger::export::{CSV_COLUMNS, ExportSink, Section, csv_record, write_ndjson};
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
    /// Cluster mode: only this partition.
    #[serde(default, deserialize_with = "crate::api::int_param")]
    partition: Option<i64>,
}

/// One partition's part of an export: its store, seq range and retention floor.
struct Part {
    store: Store,
    section: Option<Section>,
    from: i64,
    to: i64,
    floor: i64,
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
    let parts = match &state.cluster {
        None if q.partition.is_some_and(|p| p != 0) => {
            return Err(ApiError::bad_request("`partition` is for cluster mode; a single node's log is partition 0"));
        }
        None => {
            if !csv {
                // Sign the head first, so an export up to now has no unsigned tail.
                state.sequencer.checkpoint_now().await?;
            }
            vec![part(state.store.clone(), None, &q, since, until).await?]
        }
        Some(member) => {
            let n = member.partitions();
            let all = q.partition.is_none();
            let chosen: Vec<u32> = match q.partition {
                Some(p) => vec![u32::try_from(p).ok().filter(|p| *p < n).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "`partition` must be between 0 and {} (the cluster's partitions)",
                        n - 1
                    ))
                })?],
                None if q.from.is_some() || q.to.is_some() => {
                    return Err(ApiError::bad_request(
                        "`from` and `to` are seqs of one partition in cluster mode: give `partition` too",
                    ));
                }
                None => (0..n).collect(),
            };
            let mut parts = Vec::with_capacity(chosen.len());
            for p in chosen {
                if !csv {
                    member.checkpoint(p).await?;
                }
                let section = Section { partition: p, partitions: all.then_some(n) };
                parts.push(part(member.reader(p).await?, Some(section), &q, since, until).await?);
            }
            parts
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<web::Bytes, std::io::Error>>(4);
    let name = match parts.as_slice() {
        [one] => format!(
            "vigil-{}{}-{}",
            one.section.map_or(String::new(), |s| format!("p{}-", s.partition)),
            one.from,
            one.to
        ),
        _ => "vigil-partitions".to_owned(),
    };
    let cluster = state.cluster.is_some();
    tokio::spawn(async move {
        let exported_at = crate::event::now_ms();
        for (i, part) in parts.iter().enumerate() {
            let result = if csv {
                let partition = part.section.map(|s| s.partition);
                write_csv(&part.store, part.from, part.to, cluster.then_some(partition.unwrap_or(0)), i == 0, &tx).await
            } else {
                let range = (part.from, part.to);
                write_ndjson(&part.store, range, part.floor, exported_at, part.section, &mut Client(tx.clone()))
                    .await
                    .map(|_| ())
            };
            if let Err(e) = result {
                tracing::error!(error = %e, "Export stopped early");
                let _ = tx.send(Err(std::io::Error::other("export failed; see the server log"))).await;
                return;
            }
            if tx.is_closed() {
                return;
            }
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let (content_type, ext) = if csv { ("text/csv; charset=utf-8", "csv") } else { ("application/x-ndjson", "ndjson") };
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("content-disposition", format!("attachment; filename=\"{name}.{ext}\"")))
        .streaming(body))
}

/// The seq range of one log to export: `from`/`to` (default: everything above the
/// retention floor up to the head), narrowed to the events of `since`..`until`.
async fn part(
    store: Store,
    section: Option<Section>,
    q: &ExportQuery,
    since: Option<i64>,
    until: Option<i64>,
) -> Result<Part, ApiError> {
    let head = store.head().await?.seq;
    let floor = store.retention_floor().await?;
    let (mut from, mut to) = (q.from.unwrap_or(1).max(floor + 1), q.to.unwrap_or(head).min(head));
    if since.is_some() || until.is_some() {
        match store.seq_bounds(since, until).await? {
            Some((lo, hi)) => (from, to) = (from.max(lo), to.min(hi)),
            None => (from, to) = (from, from - 1),
        }
    }
    Ok(Part { store, section, from, to, floor })
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

/// Writes `from..=to` as CSV rows (with the header line when `header`); in cluster mode
/// each row starts with its `partition`.
async fn write_csv(
    store: &Store,
    from: i64,
    to: i64,
    partition: Option<u32>,
    header: bool,
    tx: &Sink,
) -> Result<(), StoreError> {
    if header {
        let mut line = if partition.is_some() { "partition,".to_owned() } else { String::new() };
        line.push_str(&CSV_COLUMNS.join(","));
        line.push_str("\r\n");
        if !send(tx, line.into_bytes()).await {
            return Ok(());
        }
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
            if let Some(p) = partition {
                out.push_str(&format!("{p},"));
            }
            out.push_str(&csv_record(&event));
        }
        if !send(tx, out.into_bytes()).await {
            return Ok(());
        }
    }
    Ok(())
}
