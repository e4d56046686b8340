//! The allowlist: `GET /v1/allowlist` (role read: the entries in force, built-in, config and
//! API; `?status=all` adds expired and removed API entries), `POST /v1/allowlist` (role
//! admin: 201 with the entry and the ids of the active decisions it lifted) and
//! `DELETE /v1/allowlist/{id}` (role admin; config and built-in entries: 409). Changes are
//! chain events (`respond` writes them).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::{AppState, parse_query, read_json};
use crate::api::error::ApiError;
use crate::auth::Role;
use crate::respond::{AllowEntry, NewAllowEntry};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
}

/// Every entry in force (`status=active`, the default), or with `status=all` the expired
/// and removed API entries too (the newest 10,000).
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.keys.require(&req, Role::Read)?;
    let q: ListQuery = parse_query(req.query_string())?;
    let all = match q.status.as_deref() {
        None | Some("active") => false,
        Some("all") => true,
        Some(_) => return Err(ApiError::bad_request("`status` must be active or all")),
    };
    let now = state.decisions.now();
    let in_force = state.decisions.allowlist().in_force(now);
    let mut entries: Vec<_> = in_force.iter().map(|e| e.to_api_json(now)).collect();
    if all {
        for row in state.store.list_allow_entries(None, 10_000).await? {
            let Ok(entry) = row.map_err(|e| e.to_string()).and_then(|r| AllowEntry::from_row(&r)) else { continue };
            if !entry.applies_at(now) {
                entries.push(entry.to_api_json(now));
            }
        }
    }
    Ok(HttpResponse::Ok().json(json!({"entries": entries})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewEntry {
    scope: String,
    value: String,
    reason: String,
    expires_at: Option<serde_json::Value>,
    duration: Option<String>,
    duration_secs: Option<serde_json::Number>,
}

/// Adds an entry; the active decisions it covers are lifted with it as the reason.
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let who = state.keys.require(&req, Role::Admin)?;
    let body: NewEntry = read_json(&req, payload, 16 * 1024, "allowlist entry").await?;
    let now = state.decisions.now();
    let expires_at = match (&body.expires_at, &body.duration, &body.duration_secs) {
        (None, None, None) => None,
        (Some(at), None, None) => Some(time(at)?),
        (None, text, secs) if text.is_some() || secs.is_some() => {
            // The longest an entry may be given as a duration: ten years.
            let secs = super::decisions::duration_secs(secs.as_ref(), text.as_deref(), 10 * 365 * 86_400)?;
            Some(now.saturating_add(secs * 1000))
        }
        _ => return Err(ApiError::bad_request("give at most one of `expires_at`, `duration` and `duration_secs`")),
    };
    let new = NewAllowEntry { scope: body.scope, value: body.value, reason: body.reason, expires_at };
    let (entry, lifted) = state.decisions.add_allow_entry(new, &who.key_id).await?;
    let mut out = entry.to_api_json(now);
    out["decisions_lifted"] = json!(lifted);
    Ok(HttpResponse::Created().json(out))
}

fn time(v: &serde_json::Value) -> Result<i64, ApiError> {
    let parsed = match v {
        serde_json::Value::String(s) => crate::event::parse_time(s),
        serde_json::Value::Number(n) => n.as_i64(),
        _ => None,
    };
    parsed.ok_or_else(|| ApiError::bad_request("`expires_at` must be an RFC 3339 time or epoch milliseconds"))
}

/// Removes an API entry (it stays listed with `status=all`).
pub async fn remove(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let who = state.keys.require(&req, Role::Admin)?;
    let id = path.into_inner();
    if id.len() > 64 {
        return Err(ApiError::not_found(format!("no allowlist entry {}", id.chars().take(64).collect::<String>())));
    }
    let entry = state.decisions.remove_allow_entry(&id, &who.key_id).await?;
    Ok(HttpResponse::Ok().json(entry.to_api_json(state.decisions.now())))
}
