//! `GET /v1/integrity/verify`, `/head`, `/checkpoints`, `/public-key` (role: read) and
//! `POST /v1/integrity/accept` (role: admin): the operator's decision that ends an
//! integrity hold, itself written to the chain.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::{AppState, parse_query};
use crate::api::error::ApiError;
use crate::auth::Role;
use crate::ledger::CheckpointJson;
use crate::ledger::verify::{HeadView, verify as verify_range, verify_against};
use crate::telemetry::Metrics;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyQuery {
    #[serde(default, deserialize_with = "crate::api::int_param")]
    from: Option<i64>,
    #[serde(default, deserialize_with = "crate::api::int_param")]
    to: Option<i64>,
    /// Cluster mode: the partition whose chain to verify (default 0).
    #[serde(default, deserialize_with = "crate::api::int_param")]
    partition: Option<i64>,
}

/// Seconds a client is told to wait when a large verification is already running.
pub const VERIFY_BUSY_RETRY_SECS: u32 = 5;

/// Verifies the chain over `[from, to]`. One covering more than `[integrity]
/// exclusive_verify_events` events runs only while no other such one does: 429
/// `verify_busy` with `Retry-After` otherwise.
#[tracing::instrument(skip_all)]
pub async fn verify(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let who = state.keys.require(&req, Role::Read)?;
    let q: VerifyQuery = parse_query(req.query_string())?;
    if let (Some(from), Some(to)) = (q.from, q.to)
        && from > to
    {
        return Err(ApiError::bad_request("`from` must not be greater than `to`"));
    }
    super::ops::record_read(&state, &who.key_id, crate::ledger::access::Read::IntegrityVerify, req.query_string());
    let _permit = large_verify_permit(&state, &who.key_id, q.from, q.to)?;
    match (&state.cluster, q.partition) {
        (Some(member), None) => {
            let body = verify_every_partition(&state, member, q.from, q.to, &who.key_id).await?;
            Ok(HttpResponse::Ok().json(body))
        }
        (_, Some(p)) if p != 0 => Ok(HttpResponse::Ok().json(verify_partition(&state, p, q.from, q.to).await?)),
        _ => Ok(HttpResponse::Ok().json(verify_log(&state, q.from, q.to, &who.key_id).await?)),
    }
}

/// Verifies the server's own log (a single node's, or a cluster's partition 0), with the
/// integrity hold and the newest checkpoint this server signed; records the run as the last
/// verification.
async fn verify_log(
    state: &AppState,
    from: Option<i64>,
    to: Option<i64>,
    key_id: &str,
) -> Result<serde_json::Value, ApiError> {
    let mut known = state.integrity.last_checkpoint();
    if let Some(member) = &state.cluster
        && let Some(anchored) = anchored(state, member, 0).await?
        && known.as_ref().is_none_or(|k| k.id < anchored.id)
    {
        known = Some(anchored);
    }
    let report = verify_range(&state.store, from, to, state.checkpoint_keys.verifier(), known.as_ref()).await?;
    Metrics::add(&state.metrics.verify_runs, 1);
    if report.status != "ok" {
        Metrics::add(&state.metrics.verify_failed, 1);
        tracing::warn!(failures = report.failure_count, "Integrity verification found failures");
    }
    let mut report = report;
    let hold = state.integrity.hold();
    if let Some(hold) = &hold {
        // What put the log on hold stays a failure until an operator accepts it.
        for f in &hold.failures {
            if !report.failures.contains(f) {
                report.failures.push(f.clone());
                report.failure_count += 1;
            }
        }
        report.failures.sort_by_key(|f| f.seq);
        report.status = "failed";
    }
    state.integrity.set_last_verify(crate::ledger::LastVerify {
        at: crate::event::format_rfc3339_ms(state.config.clock.now_ms()),
        status: report.status,
        from: report.from,
        to: report.to,
        verified: report.verified,
        failure_count: report.failure_count,
        by: key_id.to_owned(),
    });
    let mut body = serde_json::to_value(&report).map_err(|e| ApiError::internal(&e))?;
    body["hold"] = serde_json::to_value(hold).unwrap_or_default();
    if state.cluster.is_some() {
        body["partition"] = json!(0);
    }
    Ok(body)
}

/// Cluster mode without `partition`: every partition's chain, each report under
/// `partitions` (ascending). The top level is partition 0's report (its head, checkpoint,
/// range and hold, as before) with `status` `failed` when any partition failed, and
/// `verified`, `checkpoints_checked`, `failure_count` and `failures` (each naming its
/// `partition`; at most 1000) over every partition.
async fn verify_every_partition(
    state: &AppState,
    member: &crate::cluster::ClusterMember,
    from: Option<i64>,
    to: Option<i64>,
    key_id: &str,
) -> Result<serde_json::Value, ApiError> {
    let mut reports = vec![verify_log(state, from, to, key_id).await?];
    for p in 1..member.partitions() {
        reports.push(verify_partition(state, i64::from(p), from, to).await?);
    }
    let mut body = reports[0].clone();
    let (mut verified, mut checked, mut count) = (0u64, 0u64, 0u64);
    let mut failures = Vec::new();
    for r in &reports {
        verified += r["verified"].as_u64().unwrap_or(0);
        checked += r["checkpoints_checked"].as_u64().unwrap_or(0);
        count += r["failure_count"].as_u64().unwrap_or(0);
        for f in r["failures"].as_array().into_iter().flatten() {
            if failures.len() < crate::ledger::chain::MAX_REPORTED_FAILURES {
                let mut f = f.clone();
                f["partition"] = r["partition"].clone();
                failures.push(f);
            }
        }
    }
    let failed = reports.iter().any(|r| r["status"] != "ok");
    body["status"] = json!(if failed { "failed" } else { "ok" });
    body["verified"] = json!(verified);
    body["checkpoints_checked"] = json!(checked);
    body["failure_count"] = json!(count);
    body["failures"] = json!(failures);
    body["partitions"] = json!(reports);
    Ok(body)
}

/// Cluster mode: verifies partition `p`'s chain (its own schema; docs/cluster.md). 400 when
/// the server is not in cluster mode or the cluster has no such partition.
async fn verify_partition(
    state: &AppState,
    p: i64,
    from: Option<i64>,
    to: Option<i64>,
) -> Result<serde_json::Value, ApiError> {
    let Some(member) = &state.cluster else {
        return Err(ApiError::bad_request("`partition` is for cluster mode; a single node's log is partition 0"));
    };
    let Some(p) = u32::try_from(p).ok().filter(|p| *p < member.partitions()) else {
        return Err(ApiError::bad_request(format!(
            "`partition` must be between 0 and {} (the cluster's partitions)",
            member.partitions() - 1
        )));
    };
    let store = member.reader(p).await?;
    let known = anchored(state, member, p).await?;
    let verifier = state.checkpoint_keys.verifier();
    let report = verify_against(&store, (from, to), verifier, known.as_ref(), "the partition's anchor").await?;
    Metrics::add(&state.metrics.verify_runs, 1);
    if report.status != "ok" {
        Metrics::add(&state.metrics.verify_failed, 1);
        tracing::warn!(partition = p, failures = report.failure_count, "Integrity verification found failures");
    }
    let mut body = serde_json::to_value(&report).map_err(|e| ApiError::internal(&e))?;
    body["partition"] = json!(p);
    Ok(body)
}

/// Partition `p`'s anchored checkpoint (cluster/anchors.rs) when its signature holds for
/// `p`; verify reports a log behind it, or without it, as truncated.
async fn anchored(
    state: &AppState,
    member: &crate::cluster::ClusterMember,
    p: u32,
) -> Result<Option<crate::store::Checkpoint>, ApiError> {
    let anchored = member.anchor(p).await?;
    Ok(anchored.filter(|cp| match state.checkpoint_keys.verifier().check_in(cp, p) {
        Ok(()) => true,
        Err(why) => {
            tracing::warn!(partition = p, reason = %why, "The partition's anchor is not signed for it; ignored");
            false
        }
    }))
}

/// The gate's permit when `[from, to]` is a large range (the sequencer's head in memory
/// stands for a missing `to`), None for a small one; 429 while another large one runs.
fn large_verify_permit(
    state: &AppState,
    key_id: &str,
    from: Option<i64>,
    to: Option<i64>,
) -> Result<Option<crate::api::ops::VerifyPermit>, ApiError> {
    let head = state.handoff.head.load(std::sync::atomic::Ordering::Relaxed) as i64;
    let from = from.unwrap_or(1).max(1);
    let to = to.unwrap_or(head).min(head);
    let limit = state.config.integrity.exclusive_verify_events;
    // `to - from + 1` events are in the range.
    if to.saturating_sub(from) < limit {
        return Ok(None);
    }
    let me = crate::api::ops::RunningVerify {
        since: crate::event::format_rfc3339_ms(state.config.clock.now_ms()),
        key_id: key_id.to_owned(),
        from,
        to,
    };
    match state.ops.verify.try_enter(me) {
        Ok(permit) => Ok(Some(permit)),
        Err(running) => Err(ApiError::new(
            actix_web::http::StatusCode::TOO_MANY_REQUESTS,
            "verify_busy",
            format!(
                "another verification of more than {limit} events is running; retry in {VERIFY_BUSY_RETRY_SECS} s, \
                 or verify a range of at most {limit} events (from, to)"
            ),
        )
        .with_details(json!({"running": running, "max_concurrent_events": limit}))
        .retry_after(VERIFY_BUSY_RETRY_SECS)),
    }
}

/// The head `{seq, hash}` of the log.
/// `GET /v1/integrity/status`: the head, the newest signed checkpoint and its age, the
/// write hold, the newest verification since start (what the dashboard shows), and the
/// retention archive (where, and what it did last) when one is configured.
pub async fn status(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.keys.require(&req, Role::Read)?;
    let head = state.store.head().await?;
    let checkpoint = state.integrity.last_checkpoint();
    let age = checkpoint.as_ref().map(|cp| (state.config.clock.now_ms() - cp.created_at).max(0) as f64 / 1000.0);
    let mut body = json!({
        "head": HeadView { seq: head.seq, hash: hex::encode(head.hash) },
        "last_checkpoint": checkpoint.as_ref().map(CheckpointJson::from),
        "checkpoint_age_seconds": age,
        "unsigned_events": head.seq - checkpoint.as_ref().map_or(0, |cp| cp.seq).min(head.seq),
        "hold": state.integrity.hold(),
        "last_verify": state.integrity.last_verify(),
        "archive": state.retention.archive_status(),
    });
    if let Some(member) = &state.cluster {
        body["partitions"] = json!(partition_status(state.as_ref(), member).await?);
    }
    Ok(HttpResponse::Ok().json(body))
}

/// Cluster mode: each partition's head, last signed checkpoint, unsigned events and lease.
async fn partition_status(
    state: &AppState,
    member: &crate::cluster::ClusterMember,
) -> Result<Vec<serde_json::Value>, ApiError> {
    let view = member.view();
    let mut out = Vec::with_capacity(member.partitions() as usize);
    for p in 0..member.partitions() {
        let store = member.reader(p).await?;
        let head = store.head().await?;
        let cp = store.last_checkpoint().await?;
        let lease = view.partitions.iter().find(|v| v.partition == p);
        let anchor = member.anchor(p).await.unwrap_or_else(|e| {
            tracing::warn!(partition = p, error = %e, "Could not read the partition's anchor");
            None
        });
        out.push(json!({
            "partition": p,
            "head": HeadView { seq: head.seq, hash: hex::encode(head.hash) },
            "last_checkpoint": cp.as_ref().map(CheckpointJson::from),
            "checkpoint_age_seconds": cp.as_ref().map(|c| (state.config.clock.now_ms() - c.created_at).max(0) as f64 / 1000.0),
            "unsigned_events": head.seq - cp.as_ref().map_or(0, |c| c.seq).min(head.seq),
            "owner": lease.and_then(|l| l.owner.clone()),
            "epoch": lease.map(|l| l.epoch),
            "anchor": anchor.as_ref().map(CheckpointJson::from),
        }));
    }
    Ok(out)
}

pub async fn head(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.keys.require(&req, Role::Read)?;
    let head = state.store.head().await?;
    Ok(HttpResponse::Ok().json(HeadView { seq: head.seq, hash: hex::encode(head.hash) }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointsQuery {
    #[serde(default, deserialize_with = "crate::api::int_param")]
    limit: Option<i64>,
    cursor: Option<String>,
}

/// Signed checkpoints, newest first, with cursor pagination.
pub async fn checkpoints(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.keys.require(&req, Role::Read)?;
    let q: CheckpointsQuery = parse_query(req.query_string())?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("`limit` must be between 1 and 1000"));
    }
    let before = super::parse_cursor(q.cursor.as_deref())?;
    let rows = state.store.list_checkpoints(before, limit).await?;
    let next_cursor = (rows.len() as i64 == limit).then(|| rows.last().map(|c| c.id.to_string())).flatten();
    let list: Vec<CheckpointJson> = rows.iter().map(CheckpointJson::from).collect();
    Ok(HttpResponse::Ok().json(json!({"checkpoints": list, "next_cursor": next_cursor})))
}

/// The public key(s) checkpoints are signed with.
pub async fn public_key(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.keys.require(&req, Role::Read)?;
    let keys = &state.checkpoint_keys;
    let all: Vec<_> = keys
        .public_keys()
        .into_iter()
        .map(|(id, hex, current)| json!({"key_id": id, "public_key": hex, "current": current}))
        .collect();
    Ok(HttpResponse::Ok().json(json!({
        "algorithm": "ed25519",
        "key_id": keys.key_id(),
        "public_key": keys.public_hex(),
        "keys": all,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Accept {
    reason: String,
}

/// Ends an integrity hold: records the operator's decision (with what was found) in the
/// chain, signs the head and re-anchors it, then lets client writes in again.
#[tracing::instrument(skip_all)]
pub async fn accept(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let who = state.keys.require(&req, Role::Admin)?;
    let input: Accept = super::read_json(&req, payload, 64 * 1024, "accept request (expected {\"reason\"})").await?;
    let reason = input.reason.trim();
    if reason.is_empty() || reason.len() > 2000 {
        return Err(ApiError::bad_request("`reason` must be 1 to 2000 bytes"));
    }
    let Some(hold) = state.integrity.hold() else {
        return Err(ApiError::new(
            actix_web::http::StatusCode::CONFLICT,
            "not_on_hold",
            "the log is not on integrity hold; nothing to accept",
        ));
    };
    let reason = state.masker.mask_str(reason).unwrap_or_else(|| reason.to_owned());
    state
        .sequencer
        .submit(vec![crate::event::system_event(
            "system",
            "integrity_accepted",
            &who.key_id,
            json!({"reason": reason, "hold_since": hold.since, "failures": hold.failures}),
        )])
        .await?;
    let checkpoint = state.sequencer.checkpoint_now().await?;
    state.integrity.clear_hold();
    tracing::warn!(by = %who.key_id, failures = hold.failures.len(), "Integrity hold accepted by an operator; writes resume");
    Ok(HttpResponse::Ok().json(json!({
        "accepted": true,
        "failures": hold.failures,
        "checkpoint": checkpoint.as_ref().map(CheckpointJson::from),
    })))
}
