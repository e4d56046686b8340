//! The schemas of `GET /v1/reports/security` and `GET /v1/reports/compliance`.

use serde_json::{Value, json};

use super::super::{nullable, nullable_time, object, r, time};

/// `GET /v1/reports/security` (report.rs builds it).
pub(super) fn security_report(count: &Value, counts_by: &Value, other_counts: &Value) -> Value {
    let seconds = nullable("number");
    let rate = nullable("number");
    object(
        &[
            "period",
            "date",
            "from",
            "to",
            "generated_at",
            "events",
            "privileged_users",
            "alerts",
            "response",
            "decisions",
            "integrity",
        ],
        json!({
            "period": {"type": "string", "enum": ["day", "week", "month"]},
            "date": {"type": "string", "format": "date", "description": "the first day of the period"},
            "from": time(), "to": time(), "generated_at": time(),
            "events": object(&["total", "by_category", "by_action", "by_outcome", "by_severity", "failure_rate", "failure_rates", "top_ips", "top_users", "top_actions", "buckets"], json!({
                "total": {"type": "integer"}, "by_category": count, "by_action": count, "by_outcome": count,
                "by_severity": count, "other": other_counts, "failure_rate": {"type": "number"},
                "failure_rates": {"type": "array", "items": object(&["category", "events", "failures", "failure_rate"], json!({
                    "category": {"type": "string"}, "events": {"type": "integer"}, "failures": {"type": "integer"}, "failure_rate": rate,
                }))},
                "high_risk": {"type": "integer"}, "top_ips": count, "top_users": count, "top_actions": count,
                "buckets": {"type": "array", "items": object(&["start", "count"], json!({"start": time(), "count": {"type": "integer"}}))}, "bucket_seconds": {"type": "integer"},
            })),
            "privileged_users": {"type": "array", "items": object(&["user_id", "new_ips", "new_countries"], json!({
                "user_id": {"type": "string"}, "new_ips": {"type": "array", "items": {"type": "string"}},
                "new_countries": {"type": "array", "items": {"type": "string"}}, "ips": {"type": "integer"},
            }))},
            "alerts": object(&["total", "by_severity", "by_status", "by_disposition", "by_rule"], json!({
                "total": {"type": "integer"}, "by_severity": counts_by, "by_status": counts_by, "by_disposition": counts_by,
                "by_rule": {"type": "array", "items": object(&["rule", "alerts"], json!({
                    "rule": {"type": "string"}, "alerts": {"type": "integer"}, "dispositions": {"type": "integer"},
                    "false_positives": {"type": "integer"}, "false_positive_rate": rate,
                }))},
            })),
            "response": object(&["by_severity"], json!({
                "by_severity": {"type": "array", "items": object(&["severity", "alerts", "sla_seconds"], json!({
                    "severity": {"type": "string", "enum": ["P1", "P2", "P3", "P4"]}, "alerts": {"type": "integer"},
                    "sla_seconds": {"type": "integer"}, "mttd_seconds": seconds, "mtta_seconds": seconds, "mttr_seconds": seconds,
                    "sla_met": {"type": "integer"}, "sla_missed": {"type": "integer"}, "sla_attainment": rate,
                }))},
                "mttd_seconds": seconds, "mtta_seconds": seconds, "mttr_seconds": seconds, "sla_attainment": rate,
            })),
            "decisions": object(&["issued", "lifted", "expired"], json!({
                "issued": {"type": "integer"}, "lifted": {"type": "integer"}, "expired": {"type": "integer"},
                "issued_by_kind": counts_by,
            })),
            "integrity": object(&["status", "checkpoints_in_period"], json!({
                "status": {"type": "string", "enum": ["ok", "hold"]}, "hold_since": nullable_time(),
                "hold_failures": {"type": "integer"}, "last_verify": {}, "last_checkpoint": {},
                "checkpoints_in_period": {"type": "integer"},
            })),
        }),
    )
}

/// `GET /v1/reports/compliance` (report/compliance.rs builds it).
pub(super) fn compliance_report(count: &Value) -> Value {
    let chain_event = object(
        &["seq", "at", "action"],
        json!({
            "seq": {"type": "integer"}, "at": time(), "action": {"type": "string"},
            "actor": {"type": ["string", "null"]}, "details": {},
        }),
    );
    object(
        &["framework", "period", "date", "from", "to", "controls", "evidence"],
        json!({
            "framework": {"type": "string", "enum": ["pci-dss", "soc2", "iso27001", "gdpr"]},
            "period": {"type": "string", "enum": ["day", "week", "month"]},
            "date": {"type": "string", "format": "date"}, "from": time(), "to": time(), "generated_at": time(),
            "controls": {"type": "array", "items": object(&["id", "title", "evidence", "endpoints"], json!({
                "id": {"type": "string"}, "title": {"type": "string"},
                "evidence": {"type": "array", "items": {"type": "string"}},
                "endpoints": {"type": "array", "items": {"type": "string"}},
            }))},
            "evidence": object(&["logged", "integrity", "checkpoints", "log_access", "rule_changes", "alert_response", "retention"], json!({
                "logged": object(&["total"], json!({"total": {"type": "integer"}, "by_category": count, "by_outcome": count, "seq_range": {}})),
                "integrity": object(&["status"], json!({"status": {"type": "string", "enum": ["ok", "hold"]}, "hold_since": nullable_time(), "last_verify": {}, "verify_hint": {"type": ["string", "null"]}})),
                "checkpoints": {"type": "array", "items": r("Checkpoint")},
                "log_access": {"type": "array", "items": chain_event},
                "rule_changes": {"type": "array", "items": chain_event},
                "alert_response": {"type": "object"},
                "retention": object(&["retention_days", "hot_days", "archive"], json!({
                    "retention_days": {"type": "integer", "description": "days events stay in the live database (same as hot_days)"},
                    "hot_days": {"type": "integer"},
                    "archive": {"oneOf": [{"type": "object", "description": "where purged ranges are archived before they leave the live database"}, {"type": "null"}]},
                })),
            })),
        }),
    )
}
