//! Alerts: `GET /v1/alerts` (filters: rule, severity, status, dedup_key, since, until,
//! limit, cursor), `GET /v1/alerts/{id}` (with its history, notifications, escalation
//! timers and triggering events decoded), `GET /v1/alerts/stats` (role read), and
//! `POST /v1/alerts` (manual), `POST /v1/alerts/{id}/ack|resolve|reopen` (role respond).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use vigil_sdk::Severity;

use super::{AppState, parse_query, parse_time_param, read_body, read_json};
use crate::alerts::{AlertError, ManualAlert};
use crate::api::error::ApiError;
use crate::auth::Role;
use crate::finding::parse_severity;
use crate::store::{AlertFilter, AlertStatus, NotificationFilter};

impl From<AlertError> for ApiError {
    fn from(e: AlertError) -> Self {
        use actix_web::http::StatusCode;
        match e {
            AlertError::NotFound(id) => ApiError::not_found(format!("no alert {id}")),
            AlertError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            AlertError::Invalid(m) => ApiError::bad_request(m),
            AlertError::Store(e) => e.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    rule: Option<String>,
    severity: Option<String>,
    status: Option<String>,
    dedup_key: Option<String>,
    since: Option<String>,
    until: Option<String>,
    #[serde(default, deserialize_with = "crate::api::int_param")]
    limit: Option<i64>,
    cursor: Option<String>,
}

/// The `severity` filter: P1..P4, exactly (upper case).
fn severity(sev: Option<&str>) -> Result<Option<Severity>, ApiError> {
    sev.map(|s| parse_severity(s).ok_or_else(|| ApiError::bad_request("`severity` must be P1, P2, P3 or P4")))
        .transpose()
}

/// Lists alerts, newest first.
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.keys.require(&req, Role::Read)?;
    let q: ListQuery = parse_query(req.query_string())?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("`limit` must be between 1 and 1000"));
    }
    let severity = severity(q.severity.as_deref())?;
    let status = q
        .status
        .as_deref()
        .map(|s| {
            AlertStatus::parse(s)
                .ok_or_else(|| ApiError::bad_request("`status` must be open, acknowledged or resolved"))
        })
        .transpose()?;
    let filter = AlertFilter {
        rule: q.rule,
        severity,
        status,
        dedup_key: q.dedup_key,
        since: parse_time_param("since", q.since.as_deref())?,
        until: parse_time_param("until", q.until.as_deref())?,
        before_id: super::parse_cursor(q.cursor.as_deref())?,
        id: None,
        notified_before: None,
        limit,
    };
    let rows = state.store.list_alerts(&filter).await?;
    let next_cursor = (rows.len() as i64 == limit).then(|| rows.last().map(|r| r.id.to_string())).flatten();
    let alerts: Vec<_> = rows.iter().map(|r| r.to_api_json()).collect();
    Ok(HttpResponse::Ok().json(json!({"alerts": alerts, "next_cursor": next_cursor})))
}

/// One alert with its history, notifications, escalation timers and events.
pub async fn get(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.keys.require(&req, Role::Read)?;
    let id = parse_id(&path)?;
    let row = state.store.alert(id).await?.ok_or_else(|| ApiError::not_found(format!("no alert {id}")))?;
    let changes = state.store.alert_history(id).await?;
    let chain = chain_check(&state, &row, changes.last()).await?;
    let history: Vec<_> = changes.iter().map(|c| c.to_api_json()).collect();
    let notifications: Vec<_> = state
        .store
        .list_notifications(&NotificationFilter { alert_id: Some(id), limit: 1000, ..Default::default() })
        .await?
        .iter()
        .map(|n| n.to_api_json())
        .collect();
    let escalations: Vec<_> = state
        .store
        .escalations_of(id)
        .await?
        .iter()
        .map(|e| {
            json!({"policy": e.policy, "level": e.level + 1, "round": e.round + 1,
                "due_at": crate::event::format_rfc3339_ms(e.due_at), "status": e.status})
        })
        .collect();
    let mut events = Vec::new();
    for seq in row.seqs() {
        if let Some(stored) = state.store.row(seq).await? {
            // A damaged row is reported as such, never a 500.
            events.push(stored.to_api_json_marked());
        }
    }
    let mut body = row.to_api_json();
    body["history"] = json!(history);
    body["notifications"] = json!(notifications);
    body["escalations"] = json!(escalations);
    body["events"] = json!(events);
    body["chain"] = chain;
    let decisions = state
        .store
        .list_decisions(&crate::store::decisions::DecisionFilter {
            alert_id: Some(id),
            limit: 100,
            ..Default::default()
        })
        .await?;
    body["decisions"] = json!(decisions.iter().map(|d| d.to_api_json()).collect::<Vec<_>>());
    Ok(HttpResponse::Ok().json(body))
}

/// Compares the alert row with its latest history event in the chain: the row is a
/// projection of the chain, so a row changed behind the server's back shows up here
/// (`consistent: false` with the fields that differ).
async fn chain_check(
    state: &AppState,
    row: &crate::store::AlertRow,
    last: Option<&crate::store::AlertChange>,
) -> Result<serde_json::Value, ApiError> {
    let Some(change) = last else { return Ok(json!({"state": "no_history"})) };
    let Some(seq) = change.chain_seq else {
        return Ok(json!({"state": "pending", "change_id": change.id}));
    };
    let Some(stored) = state.store.row(seq).await? else {
        return Ok(json!({"state": "missing", "seq": seq, "consistent": false}));
    };
    let event = match stored.to_api_json() {
        Ok(e) => e,
        Err(_) => return Ok(json!({"state": "unreadable", "seq": seq, "consistent": false})),
    };
    let d = &event["details"];
    let want = row.to_api_json();
    let mut differences = Vec::new();
    if event["event_id"].as_str() != Some(change.chain_event_id().as_str()) || d["alert_id"] != json!(row.id) {
        differences.push(json!({"field": "event", "chain": event["event_id"], "row": change.chain_event_id()}));
    }
    for field in ["rule", "rule_sha256", "severity", "status", "count", "fingerprint", "event_seqs", "disposition"] {
        if d[field] != want[field] {
            differences.push(json!({"field": field, "chain": d[field], "row": want[field]}));
        }
    }
    Ok(json!({"state": "chained", "seq": seq, "consistent": differences.is_empty(), "differences": differences}))
}

fn parse_id(path: &str) -> Result<i64, ApiError> {
    super::strict_id(path).ok_or_else(|| ApiError::bad_request("the alert id must be a positive integer"))
}

async fn json_body<T: serde::de::DeserializeOwned + Default>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, ApiError> {
    let body = read_body(req, payload, 64 * 1024).await?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    super::json_object(&body, "JSON body")
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Comment {
    #[serde(alias = "note", alias = "reason")]
    comment: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Acknowledgement {
    #[serde(alias = "note", alias = "reason")]
    comment: Option<String>,
    /// Lift the active decisions the alert caused.
    lift_decisions: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Resolution {
    disposition: Option<String>,
    #[serde(alias = "note", alias = "reason")]
    comment: Option<String>,
    /// Lift the active decisions the alert caused.
    lift_decisions: Option<bool>,
}

/// The alert after an ack or resolve, with the decisions it caused: those lifted on request
/// and those still active, which the client may offer to lift (`lift_decisions: true`).
async fn with_decisions(
    state: &AppState,
    row: &crate::store::AlertRow,
    lift: bool,
    actor: &str,
    why: &str,
) -> Result<serde_json::Value, ApiError> {
    let lifted = if lift { state.decisions.lift_for_alert(row.id, actor, why).await? } else { Vec::new() };
    let active: Vec<_> = state.decisions.set().for_alert(row.id).iter().map(|d| d.to_api_json()).collect();
    let mut body = row.to_api_json();
    body["decisions_lifted"] = json!(lifted);
    body["active_decisions"] = json!(active);
    Ok(body)
}

fn check_comment(c: &Option<String>) -> Result<(), ApiError> {
    if c.as_ref().is_some_and(|c| c.len() > 4096) {
        return Err(ApiError::bad_request("`comment` is at most 4096 bytes"));
    }
    Ok(())
}

/// `POST /v1/alerts`: a manual alert.
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let who = state.keys.require(&req, Role::Respond)?;
    let manual: ManualAlert = read_json(&req, payload, 64 * 1024, "manual alert").await?;
    let row = state.alerts.manual(&who.key_id, manual).await?;
    Ok(HttpResponse::Created().json(row.to_api_json()))
}

/// `POST /v1/alerts/{id}/ack`.
pub async fn ack(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let who = state.keys.require(&req, Role::Respond)?;
    let id = parse_id(&path)?;
    let body: Acknowledgement = json_body(&req, payload).await?;
    check_comment(&body.comment)?;
    let row = state.alerts.acknowledge(id, &who.key_id, body.comment).await?;
    let why = format!("alert {id} acknowledged by {}", who.key_id);
    Ok(HttpResponse::Ok()
        .json(with_decisions(&state, &row, body.lift_decisions == Some(true), &who.key_id, &why).await?))
}

/// `POST /v1/alerts/{id}/resolve` with `{"disposition": "true_positive"|"false_positive"|"benign"}`.
pub async fn resolve(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let who = state.keys.require(&req, Role::Respond)?;
    let id = parse_id(&path)?;
    let body: Resolution = json_body(&req, payload).await?;
    check_comment(&body.comment)?;
    let disposition = body
        .disposition
        .ok_or_else(|| ApiError::bad_request("`disposition` is required: true_positive, false_positive or benign"))?;
    let row = state.alerts.resolve(id, &who.key_id, &disposition, body.comment).await?;
    let why = format!("alert {id} resolved as {disposition} by {}", who.key_id);
    Ok(HttpResponse::Ok()
        .json(with_decisions(&state, &row, body.lift_decisions == Some(true), &who.key_id, &why).await?))
}

/// `POST /v1/alerts/{id}/reopen`.
pub async fn reopen(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let who = state.keys.require(&req, Role::Respond)?;
    let id = parse_id(&path)?;
    let body: Comment = json_body(&req, payload).await?;
    check_comment(&body.comment)?;
    let row = state.alerts.reopen(id, &who.key_id, body.comment).await?;
    Ok(HttpResponse::Ok().json(row.to_api_json()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsQuery {
    since: Option<String>,
}

/// `GET /v1/alerts/stats`: counts by status, severity and rule, MTTA, MTTR, false-positive rate.
pub async fn stats(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.keys.require(&req, Role::Read)?;
    let q: StatsQuery = parse_query(req.query_string())?;
    let since = parse_time_param("since", q.since.as_deref())?;
    Ok(HttpResponse::Ok().json(state.store.alert_stats(since).await?.to_json()))
}
