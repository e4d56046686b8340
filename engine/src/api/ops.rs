//! Unauthenticated operational endpoints: liveness, readiness, Prometheus metrics, and the
//! JSON 404 for unknown routes.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::AppState;
use crate::api::error::ApiError;
use crate::auth::Role;

/// `GET /healthz`: the process is up.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// `GET /readyz`: the database answers and the log takes writes (not on integrity hold).
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.integrity.on_hold() {
        return HttpResponse::ServiceUnavailable().json(
            json!({"status": "integrity_hold", "hint": "GET /v1/integrity/verify, then vigil integrity accept"}),
        );
    }
    match state.store.ping().await {
        Ok(()) => HttpResponse::Ok().json(json!({"status": "ready", "backend": state.store.backend()})),
        Err(e) => {
            tracing::warn!(error = %e, "Readiness check failed");
            HttpResponse::ServiceUnavailable().json(json!({"status": "unavailable"}))
        }
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let mut out = String::with_capacity(4096);
    state.metrics.render(&mut out);
    if let Ok(head) = state.store.head().await {
        crate::telemetry::gauge(&mut out, "vigil_log_head_seq", "Seq of the last stored event.", head.seq);
        let done = state.detection.last_seq.load(std::sync::atomic::Ordering::Relaxed) as i64;
        crate::telemetry::gauge(
            &mut out,
            "vigil_detection_lag_events",
            "Stored events not yet evaluated by rules.",
            (head.seq - done).max(0),
        );
    }
    crate::telemetry::counter(
        &mut out,
        "vigil_detection_processed_total",
        "Events evaluated by the detection pipeline.",
        state.detection.processed.load(std::sync::atomic::Ordering::Relaxed),
    );
    crate::telemetry::counter(
        &mut out,
        "vigil_detection_caught_up_total",
        "Events detection read back from the store because its queue was full.",
        state.detection.caught_up.load(std::sync::atomic::Ordering::Relaxed),
    );
    crate::telemetry::gauge(
        &mut out,
        "vigil_integrity_hold",
        "1 while the log refuses client writes after an integrity failure.",
        i64::from(state.integrity.on_hold()),
    );
    if let Some(cp) = state.integrity.last_checkpoint() {
        crate::telemetry::gauge(&mut out, "vigil_checkpoint_last_seq", "Seq of the newest signed checkpoint.", cp.seq);
        let age_ms = (state.config.clock.now_ms() - cp.created_at).max(0);
        crate::telemetry::gauge(
            &mut out,
            "vigil_checkpoint_age_seconds",
            "Seconds since the newest signed checkpoint was made.",
            format!("{:.3}", age_ms as f64 / 1000.0),
        );
    }
    crate::telemetry::gauge(
        &mut out,
        "vigil_sequencer_queue_depth",
        "Write requests waiting for the single writer.",
        state.sequencer.queue_depth(),
    );
    let queued = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    crate::telemetry::gauge(
        &mut out,
        "vigil_detection_queue_events",
        "Committed events handed to detection and not yet evaluated.",
        queued(&state.handoff.queued_events),
    );
    crate::telemetry::gauge(
        &mut out,
        "vigil_detection_queue_bytes",
        "Canonical bytes of the events in detection's queue.",
        queued(&state.handoff.queued_bytes),
    );
    state.rules.render_metrics(&mut out);
    crate::respond::render_metrics(&mut out, state.decisions.set(), state.decisions.now());
    match state.store.alert_stats(None).await {
        Ok(stats) => crate::route::render_alert_metrics(&mut out, &stats),
        Err(e) => tracing::warn!(error = %e, "Alert statistics unavailable for /metrics"),
    }
    state.outbox.render_metrics(&mut out);
    super::guard::render_metrics(&state, &mut out);
    match state.store.notification_counts().await {
        Ok(counts) => {
            out.push_str(
                "# HELP vigil_receiver_notifications Notifications in the outbox by receiver and status \
                 (delivered, pending, failed, dead, ...).\n# TYPE vigil_receiver_notifications gauge\n",
            );
            for (receiver, status, n) in counts {
                use std::fmt::Write as _;
                let _ = writeln!(
                    out,
                    "vigil_receiver_notifications{{receiver=\"{}\",status=\"{}\"}} {n}",
                    crate::telemetry::label(&receiver),
                    crate::telemetry::label(&status)
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "Notification counts unavailable for /metrics"),
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(out)
}

/// `GET /v1/whoami` (any valid key): the key's id, role and what the role may do, so a
/// client (the dashboard) shows only the actions the key can use.
pub async fn whoami(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let who = state.keys.authenticate(&req)?;
    let allows: serde_json::Map<String, serde_json::Value> =
        [Role::Ingest, Role::Read, Role::Respond, Role::Admin, Role::Bouncer]
            .into_iter()
            .map(|r| (r.as_str().to_owned(), who.role.allows(r).into()))
            .collect();
    Ok(HttpResponse::Ok().json(json!({"key_id": who.key_id, "role": who.role.as_str(), "allows": allows})))
}

/// Any unknown route: 405 with `Allow` when the path exists under other methods, else 404.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let methods = super::methods_at(req.path());
    if methods.is_empty() {
        return Err(ApiError::not_found("no such endpoint"));
    }
    let allow = methods.iter().map(|m| m.to_ascii_uppercase()).collect::<Vec<_>>().join(", ");
    let error = ApiError::new(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not served at this path; allowed: {allow}", req.method()),
    );
    let mut response = actix_web::ResponseError::error_response(&error);
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&allow) {
        response.headers_mut().insert(actix_web::http::header::ALLOW, value);
    }
    Ok(response)
}
