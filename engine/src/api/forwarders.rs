//! `GET /v1/forwarders` (role read): each `[[forwarders]]` entry with its cursor, the head,
//! its lag, what it sent, its errors and breaker (never tokens; only the scheme, host and
//! port of a URL).

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::{AppState, parse_query};
use crate::api::error::ApiError;
use crate::auth::Role;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NoQuery {}

/// The forwarders and where they are.
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.keys.require(&req, Role::Read)?;
    let _: NoQuery = parse_query(req.query_string())?;
    Ok(HttpResponse::Ok().json(json!({"forwarders": state.forwarders.describe()})))
}
