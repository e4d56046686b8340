//! `GET /v1/alerts` (filters: rule, severity, status, since, until, limit, cursor) and
//! `GET /v1/alerts/{id}` (role: read).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::{AppState, parse_query, parse_time_param};
use crate::alerts::AlertFilter;
use crate::auth::Role;
use crate::error::ApiError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    rule: Option<String>,
    severity: Option<String>,
    status: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// Lists alerts, newest first.
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.keys.require(&req, Role::Read)?;
    let q: ListQuery = parse_query(req.query_string())?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("`limit` must be between 1 and 1000"));
    }
    if let Some(sev) = &q.severity
        && !matches!(sev.as_str(), "P1" | "P2" | "P3" | "P4")
    {
        return Err(ApiError::bad_request("`severity` must be P1, P2, P3 or P4"));
    }
    if let Some(status) = &q.status
        && !matches!(status.as_str(), "open" | "acknowledged" | "resolved")
    {
        return Err(ApiError::bad_request("`status` must be open, acknowledged or resolved"));
    }
    let before_id = q
        .cursor
        .as_deref()
        .map(|c| c.parse::<i64>().ok().filter(|s| *s > 0).ok_or_else(|| ApiError::bad_request("`cursor` is not valid")))
        .transpose()?;
    let filter = AlertFilter {
        rule: q.rule,
        severity: q.severity,
        status: q.status,
        since: parse_time_param("since", q.since.as_deref())?,
        until: parse_time_param("until", q.until.as_deref())?,
        before_id,
        limit,
    };
    let rows = state.store.list_alerts(&filter).await?;
    let next_cursor = (rows.len() as i64 == limit).then(|| rows.last().map(|r| r.id.to_string())).flatten();
    let alerts: Vec<_> = rows.iter().map(|r| r.to_api_json()).collect();
    Ok(HttpResponse::Ok().json(json!({"alerts": alerts, "next_cursor": next_cursor})))
}

/// One alert.
pub async fn get(req: HttpRequest, path: web::Path<i64>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.keys.require(&req, Role::Read)?;
    let id = path.into_inner();
    let filter = AlertFilter { before_id: Some(id + 1), limit: 1, ..AlertFilter::default() };
    let row = state.store.list_alerts(&filter).await?.into_iter().find(|r| r.id == id);
    let row = row.ok_or_else(|| ApiError::not_found(format!("no alert {id}")))?;
    Ok(HttpResponse::Ok().json(row.to_api_json()))
}
