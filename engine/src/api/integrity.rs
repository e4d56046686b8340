//! `GET /v1/integrity/verify` and `GET /v1/integrity/head` (role: read).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::{AppState, parse_query};
use crate::auth::Role;
use crate::error::ApiError;
use crate::store::verify::{HeadView, verify as verify_range};
use crate::telemetry::Metrics;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyQuery {
    from: Option<i64>,
    to: Option<i64>,
}

/// Verifies the chain over `[from, to]`.
#[tracing::instrument(skip_all)]
pub async fn verify(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.keys.require(&req, Role::Read)?;
    let q: VerifyQuery = parse_query(req.query_string())?;
    if let (Some(from), Some(to)) = (q.from, q.to)
        && from > to
    {
        return Err(ApiError::bad_request("`from` must not be greater than `to`"));
    }
    let report = verify_range(&state.store, q.from, q.to, &state.checkpoint_key).await?;
    Metrics::add(&state.metrics.verify_runs, 1);
    if report.status != "ok" {
        Metrics::add(&state.metrics.verify_failed, 1);
        tracing::warn!(failures = report.failure_count, "Integrity verification found failures");
    }
    Ok(HttpResponse::Ok().json(report))
}

/// The head `{seq, hash}` of the log.
pub async fn head(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.keys.require(&req, Role::Read)?;
    let head = state.store.head().await?;
    Ok(HttpResponse::Ok().json(HeadView { seq: head.seq, hash: hex::encode(head.hash) }))
}
