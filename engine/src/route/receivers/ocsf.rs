//! `webhook` receivers with `format = "ocsf"`: each alert notification as an OCSF 1.3.0
//! Detection Finding (class 2004). The first notification of an alert is activity Create;
//! repeats, escalations, acknowledgements and reopenings are Update (status In Progress
//! once acknowledged); the resolve is Close (status Resolved). `severity_id` follows the
//! alert's priority, `finding_info.attacks` the MITRE ATT&CK ids of the rule's manifest,
//! `finding_info.uid` is the alert's id (stable across its notifications) and
//! `metadata.uid` the notification's idempotency key. A storm summary or a digest (several
//! alerts) is a JSON array of findings. The body is built as `serde_json` values, so
//! attacker text is JSON-escaped wherever it sits. Checked against the OCSF 1.3.0 JSON
//! Schema of the class in `tests/all/integrations/ocsf.rs`.

use serde_json::{Value, json};

use super::{Context, alert_of, headline};
use crate::event::parse_time;
use crate::store::NotificationRow;

/// The OCSF version the findings declare.
pub const OCSF_VERSION: &str = "1.3.0";

/// The body of one notification: one finding, or an array for several alerts.
pub fn ocsf_body(n: &NotificationRow, payload: &Value, ctx: &Context, now_ms: i64) -> Value {
    match payload.get("items").and_then(Value::as_array) {
        Some(items) => {
            Value::Array(items.iter().map(|i| finding(n, &i["alert"], payload, ctx, now_ms, Some(2))).collect())
        }
        None => finding(n, alert_of(payload), payload, ctx, now_ms, None),
    }
}

/// (activity_id, activity name, status_id, status name) of a notification. The
/// notification's kind decides (the alert may have moved on by the time it is delivered);
/// repeats and escalations carry the alert's current status.
fn activity(kind: &str, reopened: bool, alert_status: &str) -> (i64, &'static str, i64, &'static str) {
    match kind {
        "trigger" if reopened => (2, "Update", 1, "New"),
        "trigger" => (1, "Create", 1, "New"),
        "acknowledge" => (2, "Update", 2, "In Progress"),
        "resolve" => (3, "Close", 4, "Resolved"),
        _ => match alert_status {
            "acknowledged" => (2, "Update", 2, "In Progress"),
            "resolved" => (2, "Update", 4, "Resolved"),
            _ => (2, "Update", 1, "New"),
        },
    }
}

fn finding(n: &NotificationRow, a: &Value, payload: &Value, ctx: &Context, now_ms: i64, force: Option<i64>) -> Value {
    let status = a["status"].as_str().unwrap_or("open");
    let reopened = payload["extra"]["reopened"] == true;
    let (mut activity_id, mut activity_name, status_id, status_name) = activity(&n.kind, reopened, status);
    if let Some(forced) = force.filter(|_| activity_id != 3) {
        (activity_id, activity_name) = (forced, "Update");
    }
    let (severity_id, severity) = match a["severity"].as_str().unwrap_or("") {
        "P1" => (5, "Critical"),
        "P2" => (4, "High"),
        "P3" => (3, "Medium"),
        "P4" => (2, "Low"),
        _ => (0, "Unknown"),
    };
    let ms = |v: &Value| v.as_str().and_then(parse_time);
    let rule = a["rule"].as_str().unwrap_or_default();
    let mitre = ctx.mitre_of(rule);
    let mut info = json!({
        "uid": format!("vigil-alert-{}", a["id"]),
        "title": a["title"].as_str().unwrap_or("alert"),
        "analytic": {"name": rule, "type_id": 1, "type": "Rule", "version": a["rule_version"]},
        "src_url": ctx.alert_link(&a["id"]),
        "types": ["vigil"],
    });
    for (key, value) in [
        ("created_time", ms(&a["created_at"]).or_else(|| ms(&a["first_seen"]))),
        ("first_seen_time", ms(&a["first_seen"])),
        ("last_seen_time", ms(&a["last_seen"])),
    ] {
        if let Some(v) = value {
            info[key] = json!(v);
        }
    }
    if !mitre.is_empty() {
        info["attacks"] = Value::Array(mitre.iter().map(|id| attack(id)).collect());
    }
    if let Some(seqs) = a["event_seqs"].as_array().filter(|s| !s.is_empty()) {
        info["related_events"] = seqs.iter().take(100).map(|s| json!({"uid": s.to_string()})).collect();
    }
    let mut finding = json!({
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "category_uid": 2,
        "category_name": "Findings",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": 2004 * 100 + activity_id,
        "type_name": format!("Detection Finding: {activity_name}"),
        "time": now_ms,
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status_id,
        "status": status_name,
        "message": headline(n, payload),
        "count": a["count"].as_i64().unwrap_or(1),
        "metadata": {
            "version": OCSF_VERSION,
            "uid": n.idempotency_key,
            "product": {"name": "Vigil", "vendor_name": "Vigil", "version": env!("CARGO_PKG_VERSION")},
        },
        "finding_info": info,
        "unmapped": {"vigil": {"notification": n.kind, "alert_id": a["id"], "dedup_key": a["dedup_key"],
            "fingerprint": a["fingerprint"], "fields": a["fields"], "extra": payload.get("extra")}},
    });
    if let Some(t) = ms(&a["first_seen"]) {
        finding["start_time"] = json!(t);
    }
    if let Some(t) = ms(&a["last_seen"]) {
        finding["end_time"] = json!(t);
    }
    if let Some(comment) = payload["extra"]["comment"].as_str() {
        finding["comment"] = json!(comment);
    }
    finding
}

/// A MITRE ATT&CK id as an OCSF `attack`: `TA0006` a tactic, `T1110` a technique,
/// `T1110.001` a sub-technique (with its technique).
fn attack(id: &str) -> Value {
    if id.starts_with("TA") {
        json!({"tactic": {"uid": id}})
    } else if let Some((technique, _)) = id.split_once('.') {
        json!({"technique": {"uid": technique}, "sub_technique": {"uid": id}})
    } else {
        json!({"technique": {"uid": id}})
    }
}
