//! `ApiError`: the one error type of the HTTP layer. Maps every failure to a status and a
//! stable `code`, in the shape `{"error": {"code", "message", "details"}}`, and never echoes
//! database internals (those are logged, masked, and replaced by a generic message).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::{Value, json};

use crate::store::StoreError;

/// An error answered to an API client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Extra structured details (e.g. the list of invalid fields).
    pub details: Value,
    /// Seconds for a `Retry-After` header (conditions that pass on their own).
    pub retry_after: Option<u32>,
}

impl ApiError {
    /// A new error without details.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: Value::Null, retry_after: None }
    }

    /// Adds details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// Adds a `Retry-After` header.
    pub fn retry_after(mut self, secs: u32) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// 400 bad_request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404 not_found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 401 unauthorized.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "a valid API key is required (Authorization: Bearer <key>)")
    }

    /// 403 forbidden.
    pub fn forbidden(needed: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", format!("this API key lacks the {needed} role"))
    }

    /// 413 payload_too_large.
    pub fn too_large(limit: usize) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", format!("request body exceeds {limit} bytes"))
    }

    /// 500 internal: the cause is logged, not returned.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "Request failed with an internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the server log")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            response.insert_header((actix_web::http::header::RETRY_AFTER, secs.to_string()));
        }
        response.json(json!({"error": {"code": self.code, "message": self.message, "details": self.details}}))
    }
}

impl From<crate::auth::AuthError> for ApiError {
    fn from(err: crate::auth::AuthError) -> Self {
        match err {
            crate::auth::AuthError::Forbidden(needed) => Self::forbidden(needed),
            crate::auth::AuthError::Throttled(secs) => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_failures",
                "too many failed authentications from this address; a valid API key is still accepted",
            )
            .retry_after(secs),
            _ => Self::unauthorized(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::SequencerStopped => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the server is shutting down").retry_after(1)
            }
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "Answering 503: the database is unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the database is unavailable; nothing of this request was stored; retry with the same event_ids",
                )
                .retry_after(2)
            }
            StoreError::Full(cause) => {
                tracing::warn!(error = %cause, "Answering 507: the database is out of space");
                Self::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "insufficient_storage",
                    "the database has no space left; nothing of this request was stored; retry with the same \
                     event_ids once space is freed",
                )
                .retry_after(10)
            }
            StoreError::Fenced { partition, .. } => {
                tracing::warn!(partition, "Answering 503: the partition's writer lost its lease");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "partition_moved",
                    "the partition's writer changed; nothing of this request was stored; retry with the same event_ids",
                )
                .retry_after(1)
            }
            StoreError::OnHold => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "integrity_hold", StoreError::OnHold.to_string())
            }
            // The data directory (anchor, rule artifacts, key files) is out of space.
            StoreError::Io(e) if e.raw_os_error() == Some(28) => {
                tracing::warn!(error = %e, "Answering 507: the data directory is out of space");
                Self::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "insufficient_storage",
                    "the server's data directory has no space left; retry once space is freed",
                )
                .retry_after(10)
            }
            other => Self::internal(&other),
        }
    }
}
