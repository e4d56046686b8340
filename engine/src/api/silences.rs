//! Silences: `POST /v1/silences` (role respond), `GET /v1/silences[/{id}]` (role read),
//! `DELETE /v1/silences/{id}` (role respond: expires it; it stays listed). Matching alerts
//! are stored and counted but not notified. Creating and expiring one are chain events.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::{AppState, read_json};
use crate::alerts::silence::{MAX_MATCHERS, Matcher};
use crate::api::error::ApiError;
use crate::auth::Role;
use crate::store::SilenceRow;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSilence {
    matchers: Vec<Matcher>,
    starts_at: Option<serde_json::Value>,
    ends_at: serde_json::Value,
    created_by: String,
    #[serde(default)]
    comment: String,
}

fn time(name: &str, v: &serde_json::Value) -> Result<i64, ApiError> {
    let parsed = match v {
        serde_json::Value::String(s) => crate::event::parse_time(s),
        serde_json::Value::Number(n) => n.as_i64(),
        _ => None,
    };
    parsed.ok_or_else(|| ApiError::bad_request(format!("`{name}` must be an RFC 3339 time or epoch milliseconds")))
}

/// Creates a silence.
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let who = state.keys.require(&req, Role::Respond)?;
    let s: NewSilence = read_json(&req, payload, 64 * 1024, "silence").await?;
    if s.matchers.is_empty() || s.matchers.len() > MAX_MATCHERS {
        return Err(ApiError::bad_request(format!("a silence needs 1 to {MAX_MATCHERS} matchers")));
    }
    for (i, m) in s.matchers.iter().enumerate() {
        // Names the matcher (its index and field): a pattern past the size limit, or not a
        // pattern at all, is a 400 the client can act on.
        m.validate().map_err(|e| {
            let short = |s: &str| s.chars().take(64).collect::<String>();
            let (name, op) = (short(&m.name), short(&m.op));
            ApiError::bad_request(format!("matchers[{i}] (`{name}` {op}): {e}"))
                .with_details(json!({"matcher": i, "name": name, "op": op}))
        })?;
    }
    if s.created_by.trim().is_empty() || s.created_by.len() > 256 || s.comment.len() > 4096 {
        return Err(ApiError::bad_request(
            "`created_by` is required (at most 256 bytes); `comment` is at most 4096 bytes",
        ));
    }
    let now = state.alerts.clock().now_ms();
    let starts_at = match &s.starts_at {
        Some(v) => time("starts_at", v)?,
        None => now,
    };
    let ends_at = time("ends_at", &s.ends_at)?;
    if ends_at <= starts_at || ends_at <= now {
        return Err(ApiError::bad_request("`ends_at` must be after `starts_at` and in the future"));
    }
    let row = SilenceRow {
        id: uuid::Uuid::now_v7().to_string(),
        matchers: serde_json::to_string(&s.matchers).unwrap_or_else(|_| "[]".into()),
        starts_at,
        ends_at,
        created_by: crate::alerts::storable(&format!("{} ({})", s.created_by.trim(), who.key_id)),
        comment: crate::alerts::storable(&s.comment),
        created_at: now,
        expired_at: None,
        matched: 0,
    };
    let row = state.alerts.create_silence(row, &who.key_id).await?;
    Ok(HttpResponse::Created().json(row.to_api_json(now)))
}

/// Lists every silence (active, pending and expired), newest first.
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.keys.require(&req, Role::Read)?;
    let now = state.alerts.clock().now_ms();
    let all: Vec<_> = state.store.list_silences().await?.iter().map(|s| s.to_api_json(now)).collect();
    Ok(HttpResponse::Ok().json(json!({"silences": all})))
}

/// One silence.
pub async fn get(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.keys.require(&req, Role::Read)?;
    let now = state.alerts.clock().now_ms();
    let s = state
        .store
        .silence(&path)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no silence {}", path.as_str())))?;
    Ok(HttpResponse::Ok().json(s.to_api_json(now)))
}

/// Expires a silence now.
pub async fn expire(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let who = state.keys.require(&req, Role::Respond)?;
    let id = path.into_inner();
    if state.store.silence(&id).await?.is_none() {
        return Err(ApiError::not_found(format!("no silence {id}")));
    }
    state.alerts.expire_silence(&id, &who.key_id).await?;
    let now = state.alerts.clock().now_ms();
    let s = state.store.silence(&id).await?;
    Ok(HttpResponse::Ok().json(s.map(|s| s.to_api_json(now)).unwrap_or_default()))
}
