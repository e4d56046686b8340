//! HTTP API (actix-web): routes of DESIGN.md section 6. Each handler authenticates with
//! `auth::KeyRing::require` first (all but /healthz, /readyz, /metrics), then calls into
//! `ingest`, `store`, and later stages. Handlers live in `api/*.rs` by resource.

pub mod alerts;
pub mod events;
pub mod export;
pub mod integrity;
pub mod keys;
pub mod ops;
pub mod receivers;
pub mod rules;
pub mod silences;

use std::sync::Arc;

use actix_web::web;
use serde::de::DeserializeOwned;

use crate::auth::KeyRing;
use crate::config::Config;
use crate::error::ApiError;
use crate::ingest::Masker;
use crate::store::Store;
use crate::store::sequencer::SequencerHandle;
use crate::telemetry::Metrics;

/// Everything a handler may need, shared by all workers.
#[derive(Clone)]
pub struct AppState {
    /// The configuration the server started with.
    pub config: Arc<Config>,
    /// Read access to storage.
    pub store: Store,
    /// The single writer.
    pub sequencer: SequencerHandle,
    /// Secret/PII masking.
    pub masker: Arc<Masker>,
    /// API keys.
    pub keys: KeyRing,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Checkpoint signing key and the public keys it verifies with.
    pub checkpoint_keys: Arc<crate::integrity::keys::CheckpointKeys>,
    /// Integrity hold and the last signed checkpoint.
    pub integrity: Arc<crate::integrity::IntegrityStatus>,
    /// The retention job (tests run it on demand).
    pub retention: crate::integrity::retention::Retention,
    /// Deployed rules.
    pub rules: Arc<crate::rules::RuleRegistry>,
    /// Where rule changes are recorded before they take effect.
    pub rule_journal: crate::rules::journal::RuleJournal,
    /// Detection progress.
    pub detection: Arc<crate::detect::pipeline::PipelineStats>,
    /// The alert lifecycle (the one writer of alerts).
    pub alerts: crate::alerts::AlertService,
    /// Notification delivery (receivers and their circuits).
    pub outbox: Arc<crate::route::Outbox>,
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(ops::healthz))
        .route("/readyz", web::get().to(ops::readyz))
        .route("/metrics", web::get().to(ops::metrics))
        .route("/v1/events", web::post().to(events::post_events))
        .route("/v1/events", web::get().to(events::list_events))
        .route("/v1/events/stats", web::get().to(events::stats))
        .route("/v1/events/export", web::get().to(export::export))
        .route("/v1/integrity/verify", web::get().to(integrity::verify))
        .route("/v1/integrity/head", web::get().to(integrity::head))
        .route("/v1/integrity/checkpoints", web::get().to(integrity::checkpoints))
        .route("/v1/integrity/public-key", web::get().to(integrity::public_key))
        .route("/v1/integrity/accept", web::post().to(integrity::accept))
        .route("/v1/rules", web::get().to(rules::list))
        .route("/v1/rules/{name}", web::get().to(rules::get))
        .route("/v1/rules/{name}", web::put().to(rules::deploy))
        .route("/v1/rules/{name}", web::delete().to(rules::delete))
        .route("/v1/rules/{name}/stats", web::get().to(rules::stats))
        .route("/v1/alerts", web::get().to(alerts::list))
        .route("/v1/alerts", web::post().to(alerts::create))
        .route("/v1/alerts/stats", web::get().to(alerts::stats))
        .route("/v1/alerts/{id}", web::get().to(alerts::get))
        .route("/v1/alerts/{id}/ack", web::post().to(alerts::ack))
        .route("/v1/alerts/{id}/resolve", web::post().to(alerts::resolve))
        .route("/v1/alerts/{id}/reopen", web::post().to(alerts::reopen))
        .route("/v1/silences", web::post().to(silences::create))
        .route("/v1/silences", web::get().to(silences::list))
        .route("/v1/silences/{id}", web::get().to(silences::get))
        .route("/v1/silences/{id}", web::delete().to(silences::expire))
        .route("/v1/receivers", web::get().to(receivers::list))
        .route("/v1/receivers/{name}/circuit", web::post().to(receivers::circuit))
        .route("/v1/notifications", web::get().to(receivers::notifications))
        .route("/v1/notifications/{id}/retry", web::post().to(receivers::retry))
        .route("/v1/keys", web::post().to(keys::create))
        .route("/v1/keys", web::get().to(keys::list))
        .route("/v1/keys/{id}", web::delete().to(keys::revoke))
        .default_service(web::to(ops::not_found));
}

/// Reads a request body, refusing it with 413 past `limit` bytes (checked on the declared
/// length first, then while streaming).
pub async fn read_body(
    req: &actix_web::HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    use futures_util::StreamExt;
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::too_large(limit));
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(8192).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Reads a JSON body of at most `limit` bytes into `T`; a 400 names `what` and the problem.
pub async fn read_json<T: DeserializeOwned>(
    req: &actix_web::HttpRequest,
    payload: web::Payload,
    limit: usize,
    what: &str,
) -> Result<T, ApiError> {
    let body = read_body(req, payload, limit).await?;
    serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid {what}: {e}")))
}

/// Parses a query string into `T`, refusing unknown parameters with a 400 that names them.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    web::Query::<T>::from_query(query)
        .map(web::Query::into_inner)
        .map_err(|e| ApiError::bad_request(format!("invalid query parameters: {e}")))
}

/// Parses a time query parameter (RFC 3339 or epoch ms).
pub fn parse_time_param(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| {
            crate::event::parse_time(v).ok_or_else(|| {
                ApiError::bad_request(format!("`{name}` must be an RFC 3339 time or epoch milliseconds"))
            })
        })
        .transpose()
}
