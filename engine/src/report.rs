//! The security report of a day, week or month (`GET /v1/reports/security`, `vigil
//! report`): events by category, action, outcome and severity with failure rates and top
//! values (`store::query` statistics), new IPs and countries of privileged users, alerts by
//! rule, severity, status and disposition with MTTD, MTTA, MTTR and SLA attainment per
//! severity (`store::report_stats`), decisions issued and lifted, and the integrity status
//! (`ledger::IntegrityStatus`). `html` renders it as a printable page; `compliance` maps
//! the evidence of a period to PCI DSS, SOC 2, ISO 27001 and GDPR controls; `schedule`
//! queues the reports of `[[reports.schedule]]` in the outbox as their periods end.

pub mod compliance;
pub mod html;
pub mod period;
pub mod schedule;

use std::collections::BTreeSet;

use serde_json::{Value, json};

pub use self::period::{Period, PeriodKind, ReportError};
use crate::config::ReportsConfig;
use crate::event::format_rfc3339_ms;
use crate::ledger::{CheckpointJson, IntegrityStatus};
use crate::store::report_stats::{PeriodFigures, SeverityTimes, SlaMs};
use crate::store::{Origin, StatsFilter, Store, StoreError};

/// What a report is built from: the store, the integrity state and `[reports]`.
pub struct ReportSources<'a> {
    pub store: &'a Store,
    pub integrity: &'a IntegrityStatus,
    pub config: &'a ReportsConfig,
    /// Days events stay in the live database (`[retention] hot_days`; the compliance
    /// evidence states it).
    pub retention_days: u32,
    /// The retention archive (`[retention.archive]`: where, and its last part and failure
    /// when known), `None` when purged ranges are not archived.
    pub archive: Option<Value>,
}

const DAY_MS: i64 = 86_400_000;

/// The security report of `period`, as JSON (the shape `GET /v1/reports/security` answers).
pub async fn security_report(src: &ReportSources<'_>, period: &Period, now: i64) -> Result<Value, StoreError> {
    let (from, to) = (period.from, period.to);
    let bucket_ms = match period.kind {
        PeriodKind::Day => 3_600_000,
        PeriodKind::Week | PeriodKind::Month => DAY_MS,
    };
    let top = i64::from(src.config.top);
    let stats = src
        .store
        .stats(&StatsFilter {
            since: Some(from),
            until: Some(to),
            organization_id: None,
            category: None,
            bucket_ms,
            top,
            origin: Origin::All,
        })
        .await?;
    let figures = src.store.period_figures(from, to, now, SlaMs(src.config.sla_ms())).await?;
    let privileged = privileged_users(src, from, to).await?;
    let failures_by_category = match &stats.failures_by_category {
        Some(f) => f.clone(),
        None => src.store.failures_by_category(from, to).await?,
    };
    let failure_rates: Vec<Value> = failures_by_category
        .iter()
        .map(|(category, n, failures)| {
            json!({"category": category, "events": n, "failures": failures, "failure_rate": ratio(*failures, *n)})
        })
        .collect();
    let top_actions: Vec<_> = stats.by_action.iter().take(top as usize).cloned().collect();
    Ok(json!({
        "period": period.kind.name(),
        "date": period.date_text(),
        "from": format_rfc3339_ms(from),
        "to": format_rfc3339_ms(to),
        "generated_at": format_rfc3339_ms(now),
        "events": {
            "total": stats.total, "by_category": stats.by_category, "by_action": stats.by_action,
            "by_outcome": stats.by_outcome, "by_severity": stats.by_severity, "other": stats.other,
            "failure_rate": stats.failure_rate, "failure_rates": failure_rates, "high_risk": stats.high_risk,
            "top_ips": stats.top_ips, "top_users": stats.top_users, "top_actions": top_actions,
            "buckets": stats.buckets, "bucket_seconds": bucket_ms / 1000,
        },
        "privileged_users": privileged,
        "alerts": alerts_json(&figures),
        "response": response_json(&figures.by_severity, &src.config.sla_ms()),
        "decisions": decisions_json(&figures),
        "integrity": integrity_json(src.integrity, figures.checkpoints),
    }))
}

fn ratio(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn mean_secs(sum_ms: i64, n: i64) -> Option<f64> {
    (n > 0).then(|| sum_ms as f64 / n as f64 / 1000.0)
}

fn pairs(v: &[(String, i64)]) -> Value {
    Value::Object(v.iter().map(|(k, n)| (k.clone(), json!(n))).collect())
}

fn alerts_json(f: &PeriodFigures) -> Value {
    let by_rule: Vec<Value> = f
        .by_rule
        .iter()
        .map(|r| {
            json!({"rule": r.rule, "alerts": r.alerts, "dispositions": r.dispositions,
                "false_positives": r.false_positives, "false_positive_rate": ratio(r.false_positives, r.dispositions)})
        })
        .collect();
    let by_severity: Vec<(String, i64)> = f.by_severity.iter().map(|s| (s.severity.clone(), s.alerts)).collect();
    json!({
        "total": f.by_severity.iter().map(|s| s.alerts).sum::<i64>(),
        "by_severity": pairs(&by_severity), "by_status": pairs(&f.by_status),
        "by_disposition": pairs(&f.by_disposition), "by_rule": by_rule,
    })
}

/// MTTD, MTTA, MTTR and SLA attainment per severity (every P1..P4 listed, with zeros), and
/// over all alerts. Attainment is met / (met + missed): alerts still within their SLA and
/// not yet answered count in neither.
pub(crate) fn response_json(by_severity: &[SeverityTimes], sla_ms: &[i64; 4]) -> Value {
    let mut total = SeverityTimes::default();
    let rows: Vec<Value> = ["P1", "P2", "P3", "P4"]
        .iter()
        .zip(sla_ms)
        .map(|(name, sla)| {
            let s = by_severity.iter().find(|s| s.severity == *name).cloned().unwrap_or_default();
            total.alerts += s.alerts;
            total.detect_ms += s.detect_ms;
            total.acked += s.acked;
            total.ack_ms += s.ack_ms;
            total.resolved += s.resolved;
            total.resolve_ms += s.resolve_ms;
            total.sla_met += s.sla_met;
            total.sla_missed += s.sla_missed;
            json!({"severity": name, "alerts": s.alerts, "sla_seconds": sla / 1000,
                "mttd_seconds": mean_secs(s.detect_ms, s.alerts), "mtta_seconds": mean_secs(s.ack_ms, s.acked),
                "mttr_seconds": mean_secs(s.resolve_ms, s.resolved), "sla_met": s.sla_met, "sla_missed": s.sla_missed,
                "sla_attainment": ratio(s.sla_met, s.sla_met + s.sla_missed)})
        })
        .collect();
    json!({
        "by_severity": rows,
        "mttd_seconds": mean_secs(total.detect_ms, total.alerts),
        "mtta_seconds": mean_secs(total.ack_ms, total.acked),
        "mttr_seconds": mean_secs(total.resolve_ms, total.resolved),
        "sla_attainment": ratio(total.sla_met, total.sla_met + total.sla_missed),
    })
}

fn decisions_json(f: &PeriodFigures) -> Value {
    let count = |action: &str| f.decision_changes.iter().filter(|c| c.0 == action).map(|c| c.2).sum::<i64>();
    let issued_by_kind: Vec<(String, i64)> =
        f.decision_changes.iter().filter(|c| c.0 == "issued").map(|c| (c.1.clone(), c.2)).collect();
    json!({"issued": count("issued"), "lifted": count("lifted"), "expired": count("expired"),
        "issued_by_kind": pairs(&issued_by_kind)})
}

fn integrity_json(integrity: &IntegrityStatus, checkpoints: i64) -> Value {
    let hold = integrity.hold();
    json!({
        "status": if hold.is_some() { "hold" } else { "ok" },
        "hold_since": hold.as_ref().map(|h| format_rfc3339_ms(h.since)),
        "hold_failures": hold.as_ref().map_or(0, |h| h.failures.len()),
        "last_verify": integrity.last_verify(),
        "last_checkpoint": integrity.last_checkpoint().as_ref().map(CheckpointJson::from),
        "checkpoints_in_period": checkpoints,
    })
}

/// Per privileged user: the IPs and countries of the period not seen in the
/// `baseline_days` before it.
async fn privileged_users(src: &ReportSources<'_>, from: i64, to: i64) -> Result<Vec<Value>, StoreError> {
    let baseline_from = from - i64::from(src.config.baseline_days) * DAY_MS;
    let mut out = Vec::new();
    for user in &src.config.privileged_users {
        let now = src.store.user_sightings(user, from, to).await?;
        if now.is_empty() {
            continue;
        }
        let before = src.store.user_sightings(user, baseline_from, from).await?;
        let (old_ips, old_countries): (BTreeSet<_>, BTreeSet<_>) =
            (before.iter().filter_map(|s| s.0.clone()).collect(), before.iter().filter_map(|s| s.1.clone()).collect());
        let new_ips: BTreeSet<&String> =
            now.iter().filter_map(|s| s.0.as_ref()).filter(|ip| !old_ips.contains(*ip)).collect();
        let new_countries: BTreeSet<&String> =
            now.iter().filter_map(|s| s.1.as_ref()).filter(|c| !old_countries.contains(*c)).collect();
        out.push(json!({"user_id": user, "new_ips": new_ips, "new_countries": new_countries,
            "ips": now.iter().filter_map(|s| s.0.as_ref()).collect::<BTreeSet<_>>().len()}));
    }
    Ok(out)
}
