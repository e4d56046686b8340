//! `POST /v1/events` (role: ingest), `GET /v1/events` and `GET /v1/events/stats` (role: read;
//! each read is recorded as a `log_accessed` chain event, see `ledger::access`).
//!
//! Ingest reads the body under the configured limit (413 past it, before parsing), parses
//! one object / an array / NDJSON (with `?format=ocsf`, OCSF events mapped by
//! `ingest::ocsf` first), validates and masks every event (one 400 naming the index
//! and field of every problem; nothing stored), then waits for the `Sequencer` to commit and
//! answers 201 with each event's seq, in input order.

use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, parse_query, parse_time_param};
use crate::api::error::ApiError;
use crate::auth::Role;
use crate::ingest::{Problem, ocsf, split_body, validate_pieces};
use crate::ledger::access::Read;
use crate::store::{EventFilter, Origin, StatsFilter};
use crate::telemetry::Metrics;

/// Ingests a batch.
#[tracing::instrument(skip_all)]
pub async fn post_events(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let started = std::time::Instant::now();
    let who = state.keys.require(&req, Role::Ingest)?;
    let query: IngestQuery = parse_query(req.query_string())?;
    let ocsf = match query.format.as_deref() {
        None | Some("vigil") => false,
        Some("ocsf") => true,
        Some(_) => return Err(ApiError::bad_request("`format` must be vigil or ocsf")),
    };
    let body = super::read_body(&req, payload, state.config.body_limit_bytes).await.inspect_err(|_| {
        Metrics::add(&state.metrics.ingest_rejected, 1);
    })?;
    let rejected = |e: ApiError| {
        Metrics::add(&state.metrics.ingest_rejected, 1);
        e
    };
    let ndjson = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-ndjson") || ct.starts_with("application/jsonl"));
    let pieces = split_body(&body, ndjson, state.config.ingest.max_events_per_request)
        .map_err(|problems| rejected(invalid(problems)))?;
    // Room to hold the parsed batch until it is answered, before any of it is parsed.
    let _parsed = state
        .inflight
        .admit_parsed(body.len(), pieces.len(), std::time::Duration::from_secs(state.config.ingest.body_timeout_secs))
        .await?;
    let validated = if ocsf { validate_ocsf(&pieces, &state.masker) } else { validate_pieces(&pieces, &state.masker) };
    let mut events = validated.map_err(|problems| rejected(invalid(problems)))?;
    state.enricher.apply(&mut events, &state.masker);
    // The text is no longer needed: its memory and its share of the body budget go now.
    drop(pieces);
    drop(body);
    // Provenance: every event records the key that sent it (hashed with it), and
    // idempotency is per key.
    for ev in &mut events {
        ev.ingest_key = Some(who.key_id.clone());
    }
    let acks =
        state.sequencer.submit_client(events).await.inspect_err(|_| Metrics::add(&state.metrics.ingest_failed, 1))?;
    let stored = acks.iter().filter(|a| !a.duplicate).count();
    Metrics::add(&state.metrics.ingest_requests, 1);
    Metrics::add(&state.metrics.events_stored, stored as u64);
    Metrics::add(&state.metrics.events_duplicate, (acks.len() - stored) as u64);
    state.metrics.ingest_latency.observe(started.elapsed());
    Ok(HttpResponse::Created().json(json!({"stored": stored, "events": acks})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IngestQuery {
    format: Option<String>,
}

/// `?format=ocsf`: each piece is an OCSF event, mapped to Vigil's format (`ingest::ocsf`)
/// and then validated and masked like any other; a problem found after mapping names the
/// OCSF attribute it came from (`src_endpoint.ip (ip)`). The batch stays atomic.
fn validate_ocsf(pieces: &[&str], masker: &crate::ingest::Masker) -> Result<Vec<crate::event::NewEvent>, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut mapped = Vec::with_capacity(pieces.len());
    for (index, piece) in pieces.iter().enumerate() {
        let value = match serde_json::from_str::<Value>(piece) {
            Ok(v) => v,
            Err(e) => {
                problems.push(Problem { index, field: "body".into(), problem: format!("malformed JSON: {e}") });
                continue;
            }
        };
        match ocsf::map_event(index, value) {
            Ok(m) => mapped.push((index, m)),
            Err(p) => problems.push(p),
        }
    }
    let values: Vec<Value> = mapped.iter().map(|(_, m)| m.event.clone()).collect();
    let results = crate::ingest::validate_each(values, masker);
    let mut events = Vec::with_capacity(results.len());
    for ((index, m), result) in mapped.iter().zip(results) {
        match result {
            Ok(ev) => events.push(ev),
            Err(found) => problems.extend(found.into_iter().map(|p| {
                let field = match m.source_of(&p.field) {
                    Some(path) => format!("{path} ({})", p.field),
                    None => p.field,
                };
                Problem { index: *index, field, problem: p.problem }
            })),
        }
    }
    if problems.is_empty() {
        Ok(events)
    } else {
        problems.sort_by_key(|p| p.index);
        Err(problems)
    }
}

fn invalid(problems: Vec<Problem>) -> ApiError {
    let n = problems.len();
    let shown: Vec<Problem> = problems.into_iter().take(1000).collect();
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_event",
        format!("{n} problem(s) in the request; nothing was stored"),
    )
    .with_details(serde_json::to_value(shown).unwrap_or(Value::Null))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    category: Option<String>,
    action: Option<String>,
    severity: Option<String>,
    outcome: Option<String>,
    organization_id: Option<String>,
    user_id: Option<String>,
    ip: Option<String>,
    request_id: Option<String>,
    ingest_key: Option<String>,
    since: Option<String>,
    until: Option<String>,
    #[serde(default, deserialize_with = "crate::api::int_param")]
    limit: Option<i64>,
    cursor: Option<String>,
}

/// Lists stored events, newest first, with cursor pagination.
#[tracing::instrument(skip_all)]
pub async fn list_events(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let who = state.keys.require(&req, Role::Read)?;
    let q: ListQuery = parse_query(req.query_string())?;
    super::ops::record_read(&state, &who.key_id, Read::EventsQuery, req.query_string());
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("`limit` must be between 1 and 1000"));
    }
    let lower = |v: Option<String>| v.map(|s| s.to_ascii_lowercase());
    let mut filter = EventFilter {
        category: lower(q.category),
        action: lower(q.action),
        severity: lower(q.severity),
        outcome: lower(q.outcome),
        organization_id: q.organization_id,
        user_id: q.user_id,
        ip: q.ip.map(|ip| ip.parse::<std::net::IpAddr>().map(|a| a.to_string()).unwrap_or(ip)),
        request_id: q.request_id,
        ingest_key: q.ingest_key,
        since: parse_time_param("since", q.since.as_deref())?,
        until: parse_time_param("until", q.until.as_deref())?,
        before_seq: None,
        seq_range: None,
        posting_blocks: None,
        limit,
    };
    if let Some(member) = &state.cluster {
        let bounds = q.cursor.as_deref().map(|c| parse_partition_cursor(c, member.partitions())).transpose()?;
        let (rows, next_cursor) = list_partitions(member, &filter, bounds).await?;
        let events: Vec<Value> = rows
            .iter()
            .map(|(p, r)| {
                let mut event = r.to_api_json_marked();
                event["partition"] = json!(p);
                event
            })
            .collect();
        return Ok(HttpResponse::Ok().json(json!({"events": events, "next_cursor": next_cursor})));
    }
    filter.before_seq = super::parse_cursor(q.cursor.as_deref())?;
    let rows = state.store.query(&filter).await?;
    let next_cursor = (rows.len() as i64 == limit).then(|| rows.last().map(|r| r.seq.to_string())).flatten();
    let events: Vec<Value> = rows.iter().map(|r| r.to_api_json_marked()).collect();
    Ok(HttpResponse::Ok().json(json!({"events": events, "next_cursor": next_cursor})))
}

/// A cluster's cursor: one bound per partition, `.`-separated in partition order; partition
/// `p`'s next page holds its events with seq below its bound (1: none left).
fn parse_partition_cursor(cursor: &str, partitions: u32) -> Result<Vec<i64>, ApiError> {
    let bounds: Option<Vec<i64>> = cursor.split('.').map(|b| b.parse::<i64>().ok().filter(|b| *b >= 1)).collect();
    match bounds {
        Some(b) if b.len() == partitions as usize => Ok(b),
        _ => Err(ApiError::bad_request(format!(
            "`cursor` is not valid (in cluster mode it is the `next_cursor` of a previous page: {partitions} \
             seq bounds separated by dots)"
        ))),
    }
}

/// Cluster mode: a page of events from every partition, newest first by event time, and the
/// cursor of the next page. Each partition's next `limit` matches (below its bound) are read
/// and merged; the page takes the newest `limit` of them, which is a prefix of each
/// partition's seq-descending list, so the next page starts right after what this one took
/// from each partition: paging never skips or repeats an event. A partition with nothing
/// taken yet keeps its bound at its newest match read now (events stored later are, as on
/// one node, not in the following pages).
async fn list_partitions(
    member: &crate::cluster::ClusterMember,
    filter: &EventFilter,
    bounds: Option<Vec<i64>>,
) -> Result<(Vec<(u32, crate::store::StoredRow)>, Option<String>), ApiError> {
    let n = member.partitions() as usize;
    let mut read: Vec<Vec<crate::store::StoredRow>> = Vec::with_capacity(n);
    for p in 0..n {
        let bound = bounds.as_ref().map(|b| b[p]);
        if bound == Some(1) {
            read.push(Vec::new());
            continue;
        }
        let store = member.reader(p as u32).await?;
        read.push(store.query(&EventFilter { before_seq: bound, ..filter.clone() }).await?);
    }
    let mut taken = vec![0usize; n];
    let mut page = Vec::new();
    while (page.len() as i64) < filter.limit {
        // The newest head; equal times: the lower partition first.
        let best = (0..n)
            .filter(|p| taken[*p] < read[*p].len())
            .max_by(|a, b| read[*a][taken[*a]].columns.ts.cmp(&read[*b][taken[*b]].columns.ts).then(b.cmp(a)));
        let Some(p) = best else { break };
        page.push((p as u32, read[p][taken[p]].clone()));
        taken[p] += 1;
    }
    let mut more = false;
    let next: Vec<String> = (0..n)
        .map(|p| {
            let rows = &read[p];
            let left = taken[p] < rows.len() || (!rows.is_empty() && rows.len() as i64 == filter.limit);
            more |= left;
            let bound = match (left, taken[p]) {
                (false, _) => 1,
                (true, 0) => rows[0].seq + 1,
                (true, t) => rows[t - 1].seq,
            };
            bound.to_string()
        })
        .collect();
    Ok((page, more.then(|| next.join("."))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsQuery {
    since: Option<String>,
    until: Option<String>,
    organization_id: Option<String>,
    category: Option<String>,
    bucket: Option<String>,
    #[serde(default, deserialize_with = "crate::api::int_param")]
    top: Option<i64>,
    origin: Option<String>,
}

/// Aggregate statistics over a time range.
#[tracing::instrument(skip_all)]
pub async fn stats(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let who = state.keys.require(&req, Role::Read)?;
    let q: StatsQuery = parse_query(req.query_string())?;
    super::ops::record_read(&state, &who.key_id, Read::EventsStats, req.query_string());
    let bucket_ms = match q.bucket.as_deref().unwrap_or("hour") {
        "minute" => 60_000,
        "hour" => 3_600_000,
        "day" => 86_400_000,
        _ => return Err(ApiError::bad_request("`bucket` must be minute, hour or day")),
    };
    let top = q.top.unwrap_or(10);
    if !(1..=100).contains(&top) {
        return Err(ApiError::bad_request("`top` must be between 1 and 100"));
    }
    let filter = StatsFilter {
        since: parse_time_param("since", q.since.as_deref())?,
        until: parse_time_param("until", q.until.as_deref())?,
        organization_id: q.organization_id,
        category: q.category.map(|c| c.to_ascii_lowercase()),
        bucket_ms,
        top,
        origin: Origin::parse(q.origin.as_deref().unwrap_or("all"))
            .ok_or_else(|| ApiError::bad_request("`origin` must be app, vigil or all"))?,
    };
    Ok(HttpResponse::Ok().json(read_store(&state).await?.stats(&filter).await?))
}

/// The store statistics and reports read: the log, or in cluster mode the views over every
/// partition's log (so each figure is the sum over the partitions).
pub(super) async fn read_store(state: &AppState) -> Result<crate::store::Store, ApiError> {
    Ok(match &state.cluster {
        Some(member) => member.all_partitions().await?,
        None => state.store.clone(),
    })
}
