//! `POST /v1/logs` (role: ingest): OTLP/HTTP logs, protobuf (`application/x-protobuf`) or
//! JSON (`application/json`). The body is read under the same limits as `POST /v1/events`;
//! every log record is mapped to an event (`ingest::otlp`), validated and masked on its
//! own; the valid ones are committed in one batch, with the sending key as `ingest_key`,
//! and the refused ones are counted and named in OTLP's partial-success answer (a refused
//! record stores nothing). A body that is not OTLP at all is a 400 (a `google.rpc.Status`
//! for protobuf requests, Vigil's JSON error otherwise).

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, ResponseError as _, web};
use serde_json::json;

use super::AppState;
use crate::api::error::ApiError;
use crate::auth::Role;
use crate::ingest::otlp::{self, proto};
use crate::ingest::validate_each;
use crate::telemetry::Metrics;

/// How many times its size a body may take while it is decoded (JSON values, messages).
const DECODE_FACTOR: usize = 8;

/// Most per-record reasons written into one partial-success message.
const MAX_REASONS: usize = 100;

/// The `Content-Encoding` of a body.
#[derive(Clone, Copy)]
enum Encoding {
    Identity,
    Gzip,
    /// HTTP's `deflate`: zlib-wrapped DEFLATE.
    Deflate,
}

/// The body as sent, decompressed under the same limit as an uncompressed body: past
/// `limit` bytes of output the request is a 413 (a zip bomb stops there, whatever its
/// ratio); a stream that is not what its encoding says is a 400.
fn decompress(body: super::guard::Body, encoding: Encoding, limit: usize) -> Result<Decoded, ApiError> {
    use std::io::Read as _;
    let reader: Box<dyn std::io::Read + '_> = match encoding {
        Encoding::Identity => return Ok(Decoded::Sent(body)),
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&body[..])),
        Encoding::Deflate => Box::new(flate2::read::ZlibDecoder::new(&body[..])),
    };
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    reader.take(limit as u64 + 1).read_to_end(&mut out).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_otlp",
            format!("the compressed body cannot be decompressed: {e}"),
        )
    })?;
    if out.len() > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body decompresses to more than {limit} bytes (body_limit_bytes)"),
        ));
    }
    Ok(Decoded::Inflated(out))
}

/// A body ready to decode: as sent (holding its in-flight budget), or inflated.
enum Decoded {
    Sent(super::guard::Body),
    Inflated(Vec<u8>),
}

impl std::ops::Deref for Decoded {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Decoded::Sent(b) => b,
            Decoded::Inflated(v) => v,
        }
    }
}

/// Ingests an OTLP logs export.
#[tracing::instrument(skip_all)]
pub async fn post_logs(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let protobuf = content_type.starts_with("application/x-protobuf");
    // Authentication errors are Vigil's JSON whatever the body (the key is checked before
    // any body is read); what follows answers in the request's encoding.
    let who = state.keys.require(&req, Role::Ingest)?;
    match ingest(&req, payload, &state, protobuf, &who.key_id).await {
        Ok(response) => Ok(response),
        Err(e) if protobuf => Ok(status_response(&e)),
        Err(e) => Err(e),
    }
}

async fn ingest(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    protobuf: bool,
    key_id: &str,
) -> Result<HttpResponse, ApiError> {
    let started = std::time::Instant::now();
    let content_type = req.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !protobuf && !content_type.starts_with("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "OTLP/HTTP bodies are application/x-protobuf or application/json",
        ));
    }
    let encoding = req.headers().get(CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("identity");
    let encoding = match encoding.trim().to_ascii_lowercase().as_str() {
        "" | "identity" => Encoding::Identity,
        "gzip" | "x-gzip" => Encoding::Gzip,
        "deflate" => Encoding::Deflate,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "OTLP bodies are accepted uncompressed or with Content-Encoding gzip or deflate",
            ));
        }
    };
    let rejected = |e: ApiError| {
        Metrics::add(&state.metrics.ingest_rejected, 1);
        e
    };
    let body = super::read_body(req, payload, state.config.body_limit_bytes).await.map_err(rejected)?;
    let body = decompress(body, encoding, state.config.body_limit_bytes).map_err(rejected)?;
    let wait = std::time::Duration::from_secs(state.config.ingest.body_timeout_secs);
    // Decoding builds a tree several times the body's size (a JSON value per member, then
    // the messages): room for it is taken from the in-flight budget first.
    let decoding = state.inflight.admit_parsed(body.len().saturating_mul(DECODE_FACTOR), 0, wait).await?;
    let request = if protobuf { otlp::decode_protobuf(&body) } else { otlp::decode_json(&body) }
        .map_err(|m| rejected(ApiError::new(StatusCode::BAD_REQUEST, "invalid_otlp", m)))?;
    let count = otlp::record_count(&request);
    let max = state.config.ingest.max_events_per_request;
    if count > max {
        return Err(rejected(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_otlp",
            format!("{count} log records in one request; at most {max} (ingest.max_events_per_request)"),
        )));
    }
    // Then room for the mapped events until they are answered (as POST /v1/events).
    let _parsed = state.inflight.admit_parsed(body.len(), count, wait).await?;
    drop(decoding);
    drop(body);
    let mapped = otlp::map_request(&request);
    drop(request);
    let (paths, values): (Vec<String>, Vec<serde_json::Value>) = mapped.into_iter().map(|m| (m.path, m.event)).unzip();
    let mut events = Vec::with_capacity(values.len());
    let mut reasons = Vec::new();
    for (path, result) in paths.iter().zip(validate_each(values, &state.masker)) {
        match result {
            Ok(mut ev) => {
                ev.ingest_key = Some(key_id.to_owned());
                events.push(ev);
            }
            Err(problems) => {
                let what: Vec<String> = problems.iter().map(|p| format!("{} {}", p.field, p.problem)).collect();
                reasons.push(format!("{path}: {}", what.join("; ")));
            }
        }
    }
    if !events.is_empty() {
        state.enricher.apply(&mut events, &state.masker);
        let acks = state
            .sequencer
            .submit_client(events)
            .await
            .inspect_err(|_| Metrics::add(&state.metrics.ingest_failed, 1))?;
        let stored = acks.iter().filter(|a| !a.duplicate).count();
        Metrics::add(&state.metrics.events_stored, stored as u64);
        Metrics::add(&state.metrics.events_duplicate, (acks.len() - stored) as u64);
    }
    Metrics::add(&state.metrics.ingest_requests, 1);
    Metrics::add(&state.metrics.otlp_records_refused, reasons.len() as u64);
    state.metrics.ingest_latency.observe(started.elapsed());
    let partial = (!reasons.is_empty()).then(|| proto::ExportLogsPartialSuccess {
        rejected_log_records: reasons.len() as i64,
        error_message: refusal_message(&reasons),
    });
    if protobuf {
        let response = proto::ExportLogsServiceResponse { partial_success: partial };
        Ok(HttpResponse::Ok().content_type("application/x-protobuf").body(prost::Message::encode_to_vec(&response)))
    } else {
        let body = match partial {
            None => json!({}),
            Some(p) => json!({"partialSuccess": {
                "rejectedLogRecords": p.rejected_log_records.to_string(),
                "errorMessage": p.error_message,
            }}),
        };
        Ok(HttpResponse::Ok().json(body))
    }
}

/// "N log record(s) refused, nothing of them stored: <path>: <field> <problem>; ..." (the
/// first [`MAX_REASONS`] records, one per line). Problems never repeat client values.
fn refusal_message(reasons: &[String]) -> String {
    let mut message = format!("{} log record(s) refused (nothing of them was stored; the others were):", reasons.len());
    for reason in reasons.iter().take(MAX_REASONS) {
        message.push('\n');
        message.push_str(reason);
    }
    if reasons.len() > MAX_REASONS {
        message.push_str(&format!("\n... and {} more", reasons.len() - MAX_REASONS));
    }
    message
}

/// An error as OTLP/HTTP writes it for a protobuf request: a `google.rpc.Status` body with
/// the same HTTP status and `Retry-After`.
fn status_response(e: &ApiError) -> HttpResponse {
    let code = match e.status.as_u16() {
        400 | 413 | 415 => 3, // INVALID_ARGUMENT
        401 => 16,            // UNAUTHENTICATED
        403 => 7,             // PERMISSION_DENIED
        408 => 4,             // DEADLINE_EXCEEDED
        429 | 507 => 8,       // RESOURCE_EXHAUSTED
        503 => 14,            // UNAVAILABLE
        _ => 13,              // INTERNAL
    };
    let mut response = e.error_response();
    let status = proto::Status { code, message: format!("{}: {}", e.code, e.message) };
    let mut builder = HttpResponse::build(e.status);
    for (name, value) in response.headers_mut().iter() {
        if name != CONTENT_TYPE && name != actix_web::http::header::CONTENT_LENGTH {
            builder.insert_header((name.clone(), value.clone()));
        }
    }
    builder.content_type("application/x-protobuf").body(prost::Message::encode_to_vec(&status))
}
