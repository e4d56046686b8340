//! `GET /v1/rules`, `GET /v1/rules/{name}`, `GET /v1/rules/{name}/stats` (role: read) and
//! `PUT` / `DELETE /v1/rules/{name}` (role: admin). A PUT body is the `.wasm` module, or with
//! `Content-Type: application/yaml` a Sigma text (one rule, or several YAML documents:
//! detection rules, the correlations naming them, pipelines) run by the embedded Sigma
//! evaluator; it is compiled and validated on a blocking thread, then swapped in atomically.
//! A refused rule gets a 400 saying why (for Sigma: which Sigma rule, which line, what is
//! wrong), and the running version is untouched. Deploys and deletes are events in the
//! chain carrying the version's SHA-256.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::{AppState, read_body};
use crate::api::error::ApiError;
use crate::auth::Role;
use crate::deploy::DeployError;
use crate::rules::{RuleError, RuleFormat};

/// The format of a PUT body, by its content type: YAML types are Sigma, anything else a
/// wasm module (`application/wasm`, `application/octet-stream` or none).
fn upload_format(req: &HttpRequest) -> RuleFormat {
    let content_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match content_type.as_str() {
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" => RuleFormat::Sigma,
        _ => RuleFormat::Wasm,
    }
}

fn rule_error(e: DeployError) -> ApiError {
    match e {
        DeployError::Rule(RuleError::Invalid(m)) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_rule", m),
        DeployError::Rule(RuleError::NotFound(name)) => ApiError::not_found(format!("no rule named {name}")),
        DeployError::Store(e) => e.into(),
        other => ApiError::internal(&other),
    }
}

/// Lists rules.
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.keys.require(&req, Role::Read)?;
    Ok(HttpResponse::Ok().json(json!({"rules": state.rules.describe()})))
}

/// One rule.
pub async fn get(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.keys.require(&req, Role::Read)?;
    let name = path.into_inner();
    let rule = state.rules.describe_one(&name).ok_or_else(|| ApiError::not_found(format!("no rule named {name}")))?;
    Ok(HttpResponse::Ok().json(rule))
}

/// A rule's counters and state size.
pub async fn stats(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state.keys.require(&req, Role::Read)?;
    let name = path.into_inner();
    let rule = state.rules.describe_one(&name).ok_or_else(|| ApiError::not_found(format!("no rule named {name}")))?;
    Ok(HttpResponse::Ok().json(json!({
        "name": name, "status": rule["status"], "sha256": rule["sha256"], "version": rule["version"],
        "stats": rule["stats"], "state": rule["state"],
    })))
}

/// Deploys (or replaces) a rule.
#[tracing::instrument(skip_all, fields(rule))]
pub async fn deploy(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let who = state.keys.require(&req, Role::Admin)?;
    let name = path.into_inner();
    tracing::Span::current().record("rule", name.as_str());
    // One compilation at a time, and the slot taken before the body is read: a deploy
    // that finds another compiling is answered at once, holding no module in memory.
    let slot = state.rule_journal.try_compile_slot().ok_or_else(|| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "deploy_busy",
            "another rule module is being compiled (one at a time); retry shortly",
        )
        .retry_after(1)
    })?;
    let limit = state.config.rules.max_module_bytes;
    let bytes = read_body(&req, payload, limit).await.map_err(|e| {
        if e.status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                e.status,
                e.code,
                format!("the module is larger than [rules] max_module_bytes ({limit} bytes); nothing was compiled"),
            )
        } else {
            e
        }
    })?;
    let upload = crate::deploy::Upload { bytes: bytes.to_vec(), name: Some(name), format: upload_format(&req) };
    let deployed =
        state.rule_journal.deploy(slot, &state.rules, upload, "api", &who.key_id).await.map_err(rule_error)?;
    tracing::info!(version = %deployed.version, sha256 = %deployed.sha256, cached = deployed.cached, "Rule deployed");
    let status = if deployed.replaced.is_some() { StatusCode::OK } else { StatusCode::CREATED };
    Ok(HttpResponse::build(status).json(deployed))
}

/// Deletes a rule.
#[tracing::instrument(skip_all)]
pub async fn delete(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let who = state.keys.require(&req, Role::Admin)?;
    let name = path.into_inner();
    let sha256 = state.rule_journal.delete(&state.rules, &name, "api", &who.key_id).await.map_err(rule_error)?;
    Ok(HttpResponse::Ok().json(json!({"deleted": name, "sha256": sha256})))
}
