//! Receivers and the outbox: `GET /v1/receivers` (role read: kind, circuit state, counts,
//! last error; never URLs or secrets), `POST /v1/receivers/{name}/circuit` (role admin:
//! `{"action": "reset"|"force_open"|"force_close"}`), `GET /v1/notifications` (role read;
//! filters status, receiver, alert_id; dead letters are `status=dead`) and
//! `POST /v1/notifications/{id}/retry` (role respond: a dead or failed notification is
//! queued again, its age counted from now).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::{AppState, parse_query, read_json};
use crate::api::error::ApiError;
use crate::auth::Role;
use crate::store::{NotificationFilter, NotificationStatus};

/// Receivers with their circuit state.
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.keys.require(&req, Role::Read)?;
    Ok(HttpResponse::Ok().json(json!({"receivers": state.outbox.describe()})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CircuitCommand {
    action: String,
}

/// Resets or forces a receiver's circuit.
pub async fn circuit(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let who = state.keys.require(&req, Role::Admin)?;
    let cmd: CircuitCommand = read_json(&req, payload, 4096, "circuit command").await?;
    let name = path.into_inner();
    let circuit = state
        .outbox
        .circuit(&name, &cmd.action)
        .map_err(|m| if m.starts_with("no receiver") { ApiError::not_found(m) } else { ApiError::bad_request(m) })?;
    tracing::info!(receiver = %name, action = %cmd.action, key_id = %who.key_id, "Circuit command");
    Ok(HttpResponse::Ok().json(json!({"name": name, "circuit": circuit})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotificationQuery {
    status: Option<String>,
    receiver: Option<String>,
    #[serde(default, deserialize_with = "crate::api::int_param")]
    alert_id: Option<i64>,
    #[serde(default, deserialize_with = "crate::api::int_param")]
    limit: Option<i64>,
    cursor: Option<String>,
}

/// Lists notifications, newest first.
pub async fn notifications(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.keys.require(&req, Role::Read)?;
    let q: NotificationQuery = parse_query(req.query_string())?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("`limit` must be between 1 and 1000"));
    }
    let status = q
        .status
        .as_deref()
        .map(|s| {
            NotificationStatus::parse(s).ok_or_else(|| {
                ApiError::bad_request("`status` must be pending, delivered, failed, dead, folded, digest or digested")
            })
        })
        .transpose()?;
    let filter = NotificationFilter {
        status,
        receiver: q.receiver,
        alert_id: q.alert_id,
        before_id: super::parse_cursor(q.cursor.as_deref())?,
        idempotency_key: None,
        limit,
    };
    let rows = state.store.list_notifications(&filter).await?;
    let next_cursor = (rows.len() as i64 == limit).then(|| rows.last().map(|r| r.id.to_string())).flatten();
    let out: Vec<_> = rows.iter().map(|n| n.to_api_json()).collect();
    Ok(HttpResponse::Ok().json(json!({"notifications": out, "next_cursor": next_cursor})))
}

/// Queues a dead or failed notification again.
pub async fn retry(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let who = state.keys.require(&req, Role::Respond)?;
    let id = super::strict_id(&path)
        .ok_or_else(|| ApiError::bad_request("the notification id must be a positive integer"))?;
    let mut n =
        state.store.notification(id).await?.ok_or_else(|| ApiError::not_found(format!("no notification {id}")))?;
    if !matches!(n.status, NotificationStatus::Dead | NotificationStatus::Failed) {
        return Err(ApiError::new(
            actix_web::http::StatusCode::CONFLICT,
            "conflict",
            format!("notification {id} is {}; only dead or failed ones can be retried", n.status),
        ));
    }
    let now = state.alerts.clock().now_ms();
    n.status = NotificationStatus::Pending;
    n.next_attempt_at = now;
    n.created_at = now;
    n.updated_at = now;
    state.store.update_notification(&n).await?;
    tracing::info!(notification = id, key_id = %who.key_id, "Notification queued again");
    state.outbox.wake();
    Ok(HttpResponse::Ok().json(n.to_api_json()))
}
