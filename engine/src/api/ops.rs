//! Unauthenticated operational endpoints: liveness, readiness, Prometheus metrics, and the
//! JSON 404 for unknown routes.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::AppState;
use crate::error::ApiError;

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
    state.rules.render_metrics(&mut out);
    match state.store.alert_stats(None).await {
        Ok(stats) => crate::route::render_alert_metrics(&mut out, &stats),
        Err(e) => tracing::warn!(error = %e, "Alert statistics unavailable for /metrics"),
    }
    state.outbox.render_metrics(&mut out);
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(out)
}

/// Any unknown route.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found("no such endpoint"))
}
