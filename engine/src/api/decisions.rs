//! Decisions: `GET /v1/decisions` (the check an app's bouncer makes, from memory),
//! `GET /v1/decisions/stream` (what was added and what ended since a cursor; a snapshot is
//! streamed page by page), `GET /v1/decisions/{id}` (roles read, respond, admin),
//! `POST /v1/decisions` and `DELETE /v1/decisions/{id}` (role respond: issue one, lift one
//! early; a reason is required; a value on the allowlist is refused with 409 `allowlisted`).
//! A bouncer key sees active decisions only, each with `id, scope, value, kind, expires_at`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::{AppState, parse_query, read_json};
use crate::api::error::ApiError;
use crate::auth::Role;
use crate::respond::{DecisionError, Kind, NewDecision, Scope, Snapshot, Stream};
use crate::store::decisions::{DecisionFilter, DecisionRow, DecisionStatus};

impl From<DecisionError> for ApiError {
    fn from(e: DecisionError) -> Self {
        use actix_web::http::StatusCode;
        match e {
            DecisionError::NotFound(id) => ApiError::not_found(format!("no decision {id}")),
            DecisionError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            DecisionError::Invalid(m) => ApiError::bad_request(m),
            DecisionError::Allowlisted(entry) => ApiError::new(
                StatusCode::CONFLICT,
                "allowlisted",
                format!(
                    "{} {} is allowlisted by entry {} ({}): no decision may apply to it",
                    entry.scope, entry.value, entry.id, entry.reason
                ),
            )
            .with_details(entry.to_api_json_in_force()),
            DecisionError::NoAllowEntry(id) => ApiError::not_found(format!("no allowlist entry {id}")),
            DecisionError::Store(e) => e.into(),
        }
    }
}

/// The shape `role` may see: a bouncer sees only what enforcement needs.
fn view(d: &DecisionRow, role: Role) -> serde_json::Value {
    if role == Role::Bouncer { d.to_bouncer_json() } else { d.to_api_json() }
}

/// 403 for what a bouncer key may not read.
fn bouncer_forbidden(what: &str) -> ApiError {
    ApiError::new(
        actix_web::http::StatusCode::FORBIDDEN,
        "forbidden",
        format!("a bouncer key reads active decisions only (id, scope, value, kind, expires_at), not {what}"),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    scope: Option<String>,
    value: Option<String>,
    kind: Option<String>,
    alert_id: Option<String>,
    status: Option<String>,
    #[serde(default, deserialize_with = "crate::api::int_param")]
    limit: Option<i64>,
    cursor: Option<String>,
}

fn scope(s: &str) -> Result<Scope, ApiError> {
    Scope::parse(s).ok_or_else(|| ApiError::bad_request("`scope` must be ip, user, api_key, session or organization"))
}

fn kind(s: &str) -> Result<Kind, ApiError> {
    Kind::parse(s).ok_or_else(|| ApiError::bad_request("`kind` must be block, throttle, require_mfa or lock"))
}

fn parse_id(s: &str) -> Result<i64, ApiError> {
    super::strict_id(s).ok_or_else(|| ApiError::bad_request("the decision id must be a positive integer"))
}

/// `GET /v1/decisions`: with `scope` and `value`, the decisions that apply to it now (an
/// app's check, answered from memory); otherwise every active one (filters `scope`, `kind`,
/// `alert_id`), or with `status` (`expired`, `lifted`, `all`) the stored ones, newest first.
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let who = state.keys.require(&req, Role::Bouncer)?;
    let q: ListQuery = parse_query(req.query_string())?;
    if who.role == Role::Bouncer {
        if q.status.as_deref().is_some_and(|s| s != "active") {
            return Err(bouncer_forbidden("expired, lifted, simulated or past decisions (`status`)"));
        }
        if q.alert_id.is_some() {
            return Err(bouncer_forbidden("which alert a decision goes with (`alert_id`)"));
        }
    }
    let scope = q.scope.as_deref().map(scope).transpose()?;
    let kind = q.kind.as_deref().map(kind).transpose()?;
    let alert_id = q
        .alert_id
        .as_deref()
        .map(|a| super::strict_id(a).ok_or_else(|| ApiError::bad_request("`alert_id` must be a positive integer")))
        .transpose()?;
    let set = state.decisions.set();
    let now = state.decisions.now();
    if let Some(value) = &q.value {
        let Some(scope) = scope else { return Err(ApiError::bad_request("`value` needs `scope`")) };
        if q.status.is_some() || q.cursor.is_some() || q.limit.is_some() {
            return Err(ApiError::bad_request("a check (`scope` and `value`) takes no `status`, `limit` or `cursor`"));
        }
        set.counters.checks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let found: Vec<_> = set
            .lookup(scope, value, now)
            .iter()
            .filter(|d| kind.is_none_or(|k| d.kind == k) && alert_id.is_none_or(|a| d.alert_id == Some(a)))
            .map(|d| view(d, who.role))
            .collect();
        return Ok(HttpResponse::Ok().json(json!({"decisions": found, "next_cursor": null})));
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("`limit` must be between 1 and 1000"));
    }
    // None: the active ones, from memory; Some(None): every stored one.
    let status = match q.status.as_deref().map(|s| (s, DecisionStatus::parse(s))) {
        None | Some((_, Some(DecisionStatus::Active))) => None,
        Some((_, Some(s))) => Some(Some(s)),
        Some(("all", None)) => Some(None),
        Some((_, None)) => {
            return Err(ApiError::bad_request("`status` must be active, expired, lifted, simulated or all"));
        }
    };
    let before = super::parse_cursor(q.cursor.as_deref())?;
    let rows = match status {
        // Active: from memory, paged by id like the stored listing.
        None => {
            let (all, _) = set.snapshot(now, |d| {
                scope.is_none_or(|s| d.scope == s)
                    && kind.is_none_or(|k| d.kind == k)
                    && alert_id.is_none_or(|a| d.alert_id == Some(a))
                    && before.is_none_or(|b| d.id < b)
            });
            all.into_iter().take(limit as usize).map(|d| (*d).clone()).collect::<Vec<_>>()
        }
        Some(status) => {
            let filter =
                DecisionFilter { scope, kind, status, alert_id, before_id: before, limit, ..DecisionFilter::default() };
            state.store.list_decisions(&filter).await?
        }
    };
    let next_cursor = (rows.len() as i64 == limit).then(|| rows.last().map(|r| r.id.to_string())).flatten();
    let decisions: Vec<_> = rows.iter().map(|d| view(d, who.role)).collect();
    Ok(HttpResponse::Ok().json(json!({"decisions": decisions, "next_cursor": next_cursor})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamQuery {
    since: Option<String>,
}

/// `GET /v1/decisions/stream?since=<cursor>`: without a cursor (or with `0`, or one this
/// server never gave) a snapshot of every active decision, streamed page by page; with one,
/// what was added and what ended since. `more: true` asks the caller to come back at once
/// with `cursor`.
pub async fn stream(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let who = state.keys.require(&req, Role::Bouncer)?;
    let q: StreamQuery = parse_query(req.query_string())?;
    state.decisions.set().stream_polled(&who.key_id, state.decisions.now());
    let since = match q.since.as_deref() {
        None | Some("0") => None,
        Some(s) => Some(
            super::strict_id(s)
                .ok_or_else(|| ApiError::bad_request("`since` must be a cursor this endpoint returned, or 0"))?,
        ),
    };
    let page = match state.decisions.stream(since).await? {
        Stream::Snapshot(snapshot) => {
            return Ok(HttpResponse::Ok()
                .content_type("application/json")
                .streaming(snapshot_body(snapshot, who.role)));
        }
        Stream::Delta(page) => page,
    };
    let rows = |r: &[DecisionRow]| r.iter().map(|d| view(d, who.role)).collect::<Vec<_>>();
    Ok(HttpResponse::Ok().json(json!({
        "snapshot": false, "added": rows(&page.added), "deleted": rows(&page.deleted),
        "cursor": page.cursor.to_string(), "more": page.more,
    })))
}

/// The body of a snapshot: `{"snapshot": true, "cursor", "more": false, "deleted": [],
/// "added": [...]}`, `added` written a page of the active set at a time as it is read.
fn snapshot_body(
    snapshot: Snapshot,
    role: Role,
) -> impl futures_util::Stream<Item = Result<web::Bytes, std::convert::Infallible>> {
    use futures_util::StreamExt as _;
    use futures_util::stream;
    let head = format!(r#"{{"snapshot":true,"cursor":"{}","more":false,"deleted":[],"added":["#, snapshot.cursor);
    let pages = stream::unfold((snapshot, 0usize, false), move |(snapshot, n, mut wrote)| async move {
        let rows = snapshot.page(n)?;
        let mut buf = Vec::with_capacity(rows.len() * 200);
        for d in rows {
            if wrote {
                buf.push(b',');
            }
            wrote = true;
            // Writing a `Value` into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut buf, &view(&d, role));
        }
        Some((Ok(web::Bytes::from(buf)), (snapshot, n + 1, wrote)))
    });
    stream::once(async move { Ok(web::Bytes::from(head)) })
        .chain(pages)
        .chain(stream::once(async { Ok(web::Bytes::from_static(b"]}")) }))
}

/// `GET /v1/decisions/{id}`: one decision, any status, with its history (not for bouncer
/// keys: 403).
pub async fn get(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let who = state.keys.require(&req, Role::Bouncer)?;
    if who.role == Role::Bouncer {
        return Err(bouncer_forbidden("one decision with its reason and history (`GET /v1/decisions/{id}`)"));
    }
    let id = parse_id(&path)?;
    let row = state.decisions.get(id).await?;
    let history: Vec<_> = state.decisions.history(id).await?.iter().map(|c| c.to_api_json()).collect();
    let mut body = row.to_api_json();
    body["history"] = json!(history);
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueBody {
    scope: String,
    value: String,
    kind: String,
    duration_secs: Option<serde_json::Number>,
    duration: Option<String>,
    reason: String,
    alert_id: Option<serde_json::Number>,
}

/// How long, in seconds, from `duration_secs` (an integer) or `duration` (text: `"30m"`,
/// `"4h"`, `"7d"`, `"90s"`): exactly one of them, from 1 second to `max`.
pub fn duration_secs(secs: Option<&serde_json::Number>, text: Option<&str>, max: i64) -> Result<i64, ApiError> {
    match (secs, text) {
        (Some(_), Some(_)) => Err(ApiError::bad_request("give `duration_secs` or `duration`, not both")),
        (None, None) => Err(ApiError::bad_request(
            "a duration is required: `duration_secs` (seconds) or `duration` (e.g. \"30m\", \"4h\", \"7d\")",
        )),
        (Some(n), None) => crate::alerts::integral(n)
            .filter(|s| (1..=max).contains(s))
            .ok_or_else(|| ApiError::bad_request(format!("`duration_secs` must be an integer from 1 to {max}"))),
        (None, Some(text)) => {
            let ms = crate::respond::parse_duration(text)
                .map_err(|why| ApiError::bad_request(format!("`duration`: {why}")))?;
            let secs = ms / 1000;
            if secs > max {
                return Err(ApiError::bad_request(format!("`duration`: `{text}` is longer than {max} seconds")));
            }
            Ok(secs)
        }
    }
}

/// `POST /v1/decisions`: a person's decision.
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let who = state.keys.require(&req, Role::Respond)?;
    let body: IssueBody = read_json(&req, payload, 16 * 1024, "decision").await?;
    let max = state.decisions.config().max_duration_secs as i64;
    let secs = duration_secs(body.duration_secs.as_ref(), body.duration.as_deref(), max)?;
    let alert_id = match &body.alert_id {
        None => None,
        Some(n) => {
            let id = crate::alerts::integral(n)
                .filter(|i| *i > 0)
                .ok_or_else(|| ApiError::bad_request("`alert_id` must be a positive integer"))?;
            state.store.alert(id).await?.ok_or_else(|| ApiError::bad_request(format!("no alert {id}")))?;
            Some(id)
        }
    };
    let new = NewDecision {
        scope: scope(&body.scope)?,
        value: body.value,
        kind: kind(&body.kind)?,
        duration_ms: secs * 1000,
        reason: body.reason,
        actor: who.key_id.clone(),
        rule: None,
        alert_id,
        event_seqs: Vec::new(),
    };
    let (row, _) = state.decisions.issue(new).await?;
    Ok(HttpResponse::Created().json(row.to_api_json()))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LiftBody {
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LiftQuery {
    reason: Option<String>,
}

/// `DELETE /v1/decisions/{id}`: lifts an active decision early; the reason comes in the
/// body (`{"reason": "..."}`) or as `?reason=`.
pub async fn lift(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // `/v1/decisions/stream` is a route of its own: DELETE there is a wrong method, not an id.
    if path.as_str() == "stream" {
        return super::ops::not_found(req).await;
    }
    let who = state.keys.require(&req, Role::Respond)?;
    let id = parse_id(&path)?;
    let q: LiftQuery = parse_query(req.query_string())?;
    let body = super::read_body(&req, payload, 16 * 1024).await?;
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        LiftBody::default()
    } else {
        super::json_object::<LiftBody>(&body, "JSON body")?
    };
    let reason = from_body
        .reason
        .or(q.reason)
        .ok_or_else(|| ApiError::bad_request("a reason is required: {\"reason\": \"...\"} or ?reason="))?;
    let row = state.decisions.lift(id, &who.key_id, &reason).await?;
    Ok(HttpResponse::Ok().json(row.to_api_json()))
}
