//! `GET /v1/reports/security` (role: read): the security report of a day, week or month
//! (`report::security_report`) as JSON, or with `format=html` as a printable page
//! (`report::html`); `GET /v1/reports/compliance` (role: read): the compliance evidence of
//! a period (`report::compliance`). Reading either is a read of the log, recorded by the
//! access log.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::{AppState, parse_query};
use crate::api::error::ApiError;
use crate::auth::Role;
use crate::report::compliance::{Framework, compliance_report};
use crate::report::{Period, ReportSources, html, security_report};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecurityQuery {
    period: Option<String>,
    date: Option<String>,
    format: Option<String>,
}

/// The security report of `period` (day, week or month; default day) holding `date`
/// (YYYY-MM-DD, UTC; default today).
#[tracing::instrument(skip_all)]
pub async fn security(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let who = state.keys.require(&req, Role::Read)?;
    let q: SecurityQuery = parse_query(req.query_string())?;
    let html = match q.format.as_deref() {
        None | Some("json") => false,
        Some("html") => true,
        Some(_) => return Err(ApiError::bad_request("`format` must be json or html")),
    };
    let now = state.config.clock.now_ms();
    let period =
        Period::parse(q.period.as_deref(), q.date.as_deref(), now).map_err(|e| ApiError::bad_request(e.to_string()))?;
    super::ops::record_read(&state, &who.key_id, crate::ledger::access::Read::Report, req.query_string());
    let store = super::events::read_store(&state).await?;
    let report = security_report(&sources(&state, &store), &period, now).await?;
    if html {
        return Ok(HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .insert_header(("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'"))
            .body(html::render(&report)));
    }
    Ok(HttpResponse::Ok().json(report))
}

fn sources<'a>(state: &'a AppState, store: &'a crate::store::Store) -> ReportSources<'a> {
    ReportSources {
        store,
        integrity: &state.integrity,
        config: &state.config.reports,
        retention_days: state.config.hot_days(),
        archive: state.retention.archive_status(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ComplianceQuery {
    framework: Option<String>,
    period: Option<String>,
    date: Option<String>,
}

/// The compliance evidence of a period for one framework (`pci-dss`, `soc2`, `iso27001`,
/// `gdpr`; required): the controls, the endpoints that prove them, and the evidence.
#[tracing::instrument(skip_all)]
pub async fn compliance(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let who = state.keys.require(&req, Role::Read)?;
    let q: ComplianceQuery = parse_query(req.query_string())?;
    let framework = q
        .framework
        .as_deref()
        .and_then(Framework::parse)
        .ok_or_else(|| ApiError::bad_request("`framework` must be pci-dss, soc2, iso27001 or gdpr"))?;
    let now = state.config.clock.now_ms();
    let period =
        Period::parse(q.period.as_deref(), q.date.as_deref(), now).map_err(|e| ApiError::bad_request(e.to_string()))?;
    super::ops::record_read(&state, &who.key_id, crate::ledger::access::Read::Report, req.query_string());
    let store = super::events::read_store(&state).await?;
    Ok(HttpResponse::Ok().json(compliance_report(&sources(&state, &store), framework, &period, now).await?))
}
