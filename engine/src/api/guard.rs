//! What every request passes before a handler reads anything: the key is checked before any
//! body is read (the `authenticate_first` middleware; handlers then check the role), and a
//! body is read under two bounds, the bytes all requests together may hold
//! (`[ingest] max_inflight_bytes`, counted as they arrive: 503 + Retry-After past it) and a
//! deadline for the whole body (`[ingest] body_timeout_secs`: 408 past it), besides the
//! per-endpoint size limit (413).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::web;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::AppState;
use super::error::ApiError;

/// Paths served without a key: health, metrics (unless `[metrics] require_key`; its handler
/// checks), the OpenAPI document. The dashboard's static files and unknown paths are not
/// API routes and pass too (unknown paths answer 404).
const PUBLIC: &[&str] = &["/healthz", "/readyz", "/metrics", "/v1/openapi.json"];

/// Memory one parsed event holds until its request is answered (its map, canonical bytes,
/// indexed columns and the detection copy), measured: a 10 MB body of 37 000 small events
/// raised the server's peak RSS by 210 MB. Used to charge a batch before it is parsed.
pub const PARSED_EVENT_BYTES: usize = 4096;

/// Request memory held now, in KiB permits, in two stages that never wait on each other:
/// bodies while they arrive, then the parsed events of ingest batches until they are answered
/// (a batch larger than the whole budget runs alone). Each stage holds at most
/// `max_inflight_bytes`.
pub struct InflightBudget {
    permits: Arc<Semaphore>,
    parsed: Arc<Semaphore>,
    limit_bytes: usize,
    /// Requests refused because the budget was spent.
    pub shed: AtomicU64,
    /// Bodies that did not arrive in time.
    pub timed_out: AtomicU64,
    /// Most body bytes held at once since start (KiB-rounded, like the budget).
    pub bodies_max: AtomicU64,
    /// Most parsed-event charge held at once since start (bytes).
    pub parsed_max: AtomicU64,
}

impl InflightBudget {
    /// A budget of `limit_bytes`.
    pub fn new(limit_bytes: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new((limit_bytes / 1024).max(1))),
            parsed: Arc::new(Semaphore::new((limit_bytes / 1024).max(1))),
            limit_bytes,
            shed: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            bodies_max: AtomicU64::new(0),
            parsed_max: AtomicU64::new(0),
        }
    }

    /// Bytes of request bodies held now.
    pub fn in_use_bytes(&self) -> u64 {
        let total = (self.limit_bytes / 1024).max(1);
        (total.saturating_sub(self.permits.available_permits()) as u64) * 1024
    }

    /// Parsed-event charge held now, bytes ([`PARSED_EVENT_BYTES`] per event of the
    /// batches being parsed and stored).
    pub fn parsed_bytes(&self) -> u64 {
        let total = (self.limit_bytes / 1024).max(1);
        (total.saturating_sub(self.parsed.available_permits()) as u64) * 1024
    }

    /// Waits, at most `wait`, for room to parse and store `events` events read from a body
    /// of `body_len` bytes (charged [`PARSED_EVENT_BYTES`] each, or the body's size if
    /// larger, at most the whole budget); 503 with Retry-After when none comes.
    pub async fn admit_parsed(
        &self,
        body_len: usize,
        events: usize,
        wait: Duration,
    ) -> Result<OwnedSemaphorePermit, ApiError> {
        let total = (self.limit_bytes / 1024).max(1);
        let kib = body_len.div_ceil(1024).max(events.saturating_mul(PARSED_EVENT_BYTES / 1024)).clamp(1, total);
        match tokio::time::timeout(wait, self.parsed.clone().acquire_many_owned(kib as u32)).await {
            Ok(Ok(permit)) => {
                self.parsed_max.fetch_max(self.parsed_bytes(), Ordering::Relaxed);
                Ok(permit)
            }
            _ => {
                self.shed.fetch_add(1, Ordering::Relaxed);
                Err(overloaded(self.limit_bytes))
            }
        }
    }
}

/// The 503 of a spent budget.
fn overloaded(limit_bytes: usize) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        format!(
            "the server already holds {limit_bytes} bytes of requests in flight (ingest.max_inflight_bytes); \
             nothing was stored; retry shortly"
        ),
    )
    .retry_after(1)
}

/// A request body read under the budget: the bytes, and the share of the budget they hold
/// until the request is done with them (dropped with the body).
pub struct Body {
    bytes: web::Bytes,
    _held: Option<OwnedSemaphorePermit>,
}

impl Body {
    /// The bytes.
    pub fn bytes(&self) -> &web::Bytes {
        &self.bytes
    }
}

impl std::ops::Deref for Body {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

/// Reads a request body, refusing it with 413 past `limit` bytes (checked on the declared
/// length first, then while streaming), 503 when the server already holds
/// `max_inflight_bytes` of bodies, 408 when it does not arrive within `body_timeout_secs`.
pub async fn read_body(
    req: &actix_web::HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Body, ApiError> {
    use futures_util::StreamExt;
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::too_large(limit));
    }
    let state = req.app_data::<web::Data<AppState>>();
    let budget = state.map(|s| s.inflight.clone());
    let timeout = Duration::from_secs(state.map_or(30, |s| s.config.ingest.body_timeout_secs));
    let deadline = tokio::time::Instant::now() + timeout;
    let mut held: Option<OwnedSemaphorePermit> = None;
    let mut held_kib = 0usize;
    // One allocation of the declared length (at most `limit`): its pages become resident only
    // as bytes arrive, so a stalled body costs what it sent, and no regrowth copies the body.
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(8192).min(limit));
    loop {
        let next = match tokio::time::timeout_at(deadline, payload.next()).await {
            Ok(next) => next,
            Err(_) => {
                if let Some(b) = &budget {
                    b.timed_out.fetch_add(1, Ordering::Relaxed);
                }
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    format!("the request body did not arrive within {} s; nothing was stored", timeout.as_secs()),
                ));
            }
        };
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::too_large(limit));
        }
        if let Some(b) = &budget {
            let need = (body.len() + chunk.len()).div_ceil(1024);
            if need > held_kib {
                let more = b.permits.clone().try_acquire_many_owned((need - held_kib) as u32).map_err(|_| {
                    b.shed.fetch_add(1, Ordering::Relaxed);
                    overloaded(b.limit_bytes)
                })?;
                match &mut held {
                    Some(h) => h.merge(more),
                    None => held = Some(more),
                }
                held_kib = need;
                b.bodies_max.fetch_max(b.in_use_bytes(), Ordering::Relaxed);
            }
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Body { bytes: body.freeze(), _held: held })
}

/// Whether a concrete path is one of the API's routes (templates' `{x}` match one
/// non-empty segment); the dashboard's files are not.
fn is_api_route(path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').collect();
    super::ROUTES.iter().any(|(_, template)| {
        let t: Vec<&str> = template.split('/').collect();
        t.len() == segments.len()
            && t.iter().zip(&segments).all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s)
    })
}

/// Middleware: every API route but the public ones needs a valid key, checked before the
/// handler runs and so before any body is read (a missing or bad key is 401, 429 for a
/// client past its failure limit; the role is the handler's to check).
pub async fn authenticate_first(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let path = req.path();
    if !PUBLIC.contains(&path)
        && is_api_route(path)
        && let Some(state) = req.app_data::<web::Data<AppState>>()
    {
        state.keys.authenticate(req.request()).map_err(ApiError::from)?;
    }
    next.call(req).await
}

/// The guards' metrics: failed authentications by reason, bodies refused or timed out, and
/// the body bytes held now.
pub fn render_metrics(state: &AppState, out: &mut String) {
    use std::fmt::Write as _;
    out.push_str(
        "# HELP vigil_auth_failures_total Failed authentications by reason (missing or invalid key, a role \
         that does not allow the request), and requests answered 429 for too many failures (throttled).\n\
         # TYPE vigil_auth_failures_total counter\n",
    );
    for (reason, n) in state.keys.failures().counts() {
        let _ = writeln!(out, "vigil_auth_failures_total{{reason=\"{reason}\"}} {n}");
    }
    let b = &state.inflight;
    crate::telemetry::counter(
        out,
        "vigil_http_bodies_shed_total",
        "Requests answered 503 because ingest.max_inflight_bytes of bodies were already held.",
        b.shed.load(Ordering::Relaxed),
    );
    crate::telemetry::counter(
        out,
        "vigil_http_body_timeouts_total",
        "Requests answered 408 because their body did not arrive within ingest.body_timeout_secs.",
        b.timed_out.load(Ordering::Relaxed),
    );
    crate::telemetry::gauge(
        out,
        "vigil_http_inflight_body_bytes",
        "Request-body bytes held now (rounded up to KiB per request).",
        b.in_use_bytes(),
    );
    crate::telemetry::gauge(
        out,
        "vigil_http_inflight_body_bytes_max",
        "Most request-body bytes held at once since start (against ingest.max_inflight_bytes).",
        b.bodies_max.load(Ordering::Relaxed),
    );
    crate::telemetry::gauge(
        out,
        "vigil_http_inflight_parsed_bytes",
        "Parsed-event charge of the ingest batches being stored now (4096 bytes per event).",
        b.parsed_bytes(),
    );
    crate::telemetry::gauge(
        out,
        "vigil_http_inflight_parsed_bytes_max",
        "Most parsed-event charge held at once since start (against ingest.max_inflight_bytes).",
        b.parsed_max.load(Ordering::Relaxed),
    );
}
