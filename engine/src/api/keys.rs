//! `POST/GET /v1/keys`, `DELETE /v1/keys/{id}` (role: admin). The key secret is shown once,
//! in the creation response; creation and revocation are events in the chain.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use crate::api::error::ApiError;
use crate::auth::{Role, generate_key};
use crate::event::system_event;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    name: String,
    role: String,
}

/// Creates a key.
#[tracing::instrument(skip_all)]
pub async fn create(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // The role first: nothing of the body is read for a key that may not create keys.
    let who = state.keys.require(&req, Role::Admin)?;
    let input: CreateKey = super::read_json(&req, payload, 4096, "key (expected {\"name\", \"role\"})").await?;
    let role = Role::parse(&input.role)
        .ok_or_else(|| ApiError::bad_request("`role` must be one of ingest, read, respond, admin, bouncer"))?;
    if input.name.is_empty() || input.name.len() > 128 || input.name.chars().any(char::is_control) {
        return Err(ApiError::bad_request("`name` must be 1 to 128 bytes, without control characters"));
    }
    let (id, secret) = generate_key();
    // Intent first: the chain records the key before it exists, so no key works without
    // its chain event.
    state
        .sequencer
        .submit(vec![system_event(
            "api_key_management",
            "api_key_created",
            &who.key_id,
            json!({"key_id": id, "name": input.name, "role": role.as_str()}),
        )])
        .await?;
    let row = state.keys.insert(&id, &input.name, role, &secret).await?;
    tracing::info!(key_id = %id, role = role.as_str(), by = %who.key_id, "API key created");
    Ok(HttpResponse::Created().json(json!({
        "id": row.id, "name": row.name, "role": row.role, "key": secret,
        "created_at": crate::event::format_rfc3339_ms(row.created_at),
    })))
}

/// Lists keys (never their secrets or hashes).
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.keys.require(&req, Role::Admin)?;
    let keys: Vec<_> = state
        .store
        .list_keys()
        .await?
        .into_iter()
        .map(|k| {
            json!({
                "id": k.id, "name": k.name, "role": k.role,
                "created_at": crate::event::format_rfc3339_ms(k.created_at),
                "revoked_at": k.revoked_at.map(crate::event::format_rfc3339_ms),
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"keys": keys})))
}

/// Revokes a key.
#[tracing::instrument(skip_all)]
pub async fn revoke(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let who = state.keys.require(&req, Role::Admin)?;
    let id = path.into_inner();
    let Some(role) = state.keys.role_of(&id) else {
        return Err(ApiError::not_found(format!("no active key with id {id}")));
    };
    // An admin cannot lock everybody out: not with the key in hand, not with the last admin.
    if id == who.key_id {
        return Err(ApiError::new(
            actix_web::http::StatusCode::CONFLICT,
            "conflict",
            "a key cannot revoke itself; revoke it with another admin key",
        ));
    }
    if role == Role::Admin && state.keys.admin_count() <= 1 {
        return Err(ApiError::new(
            actix_web::http::StatusCode::CONFLICT,
            "conflict",
            "this is the last active admin key; create another admin key first",
        ));
    }
    state
        .sequencer
        .submit(vec![system_event("api_key_management", "api_key_revoked", &who.key_id, json!({"key_id": id}))])
        .await?;
    if !state.keys.revoke(&id).await? {
        return Err(ApiError::not_found(format!("no active key with id {id}")));
    }
    tracing::info!(key_id = %id, by = %who.key_id, "API key revoked");
    Ok(HttpResponse::Ok().json(json!({"id": id, "revoked": true})))
}
