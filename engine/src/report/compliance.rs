//! Compliance evidence of a period (`GET /v1/reports/compliance?framework=`): for PCI DSS
//! v4.0 requirement 10, SOC 2 CC7.2/CC7.3, ISO 27001:2022 A.8.15/A.8.16 and GDPR art.
//! 30/32, the controls with the endpoint or export that proves each (docs/compliance.md),
//! and the evidence itself: what was logged, the integrity state and the checkpoints
//! signing the period, who read the log (`audit` / `log_accessed` chain events), rule
//! changes (`configuration` chain events), alert response against the SLAs, retention.

use serde_json::{Value, json};

use super::{Period, ReportSources, response_json};
use crate::event::format_rfc3339_ms;
use crate::ledger::CheckpointJson;
use crate::store::report_stats::SlaMs;
use crate::store::{EventFilter, Origin, StatsFilter, StoreError, decode_canon};

/// Most access and rule-change events, and checkpoints, one report lists.
pub const EVIDENCE_LIMIT: i64 = 1000;

/// A framework the evidence is mapped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framework {
    PciDss,
    Soc2,
    Iso27001,
    Gdpr,
}

impl Framework {
    /// From `pci-dss`, `soc2`, `iso27001` or `gdpr`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pci-dss" => Some(Self::PciDss),
            "soc2" => Some(Self::Soc2),
            "iso27001" => Some(Self::Iso27001),
            "gdpr" => Some(Self::Gdpr),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::PciDss => "pci-dss",
            Self::Soc2 => "soc2",
            Self::Iso27001 => "iso27001",
            Self::Gdpr => "gdpr",
        }
    }

    /// (control, what it asks, evidence members of this report, endpoints that prove it).
    fn controls(self) -> &'static [(&'static str, &'static str, &'static [&'static str], &'static [&'static str])] {
        match self {
            Self::PciDss => &[
                (
                    "10.2",
                    "Audit logs record user activity and security events",
                    &["logged", "log_access", "rule_changes"],
                    &["GET /v1/events", "GET /v1/events/export"],
                ),
                (
                    "10.3",
                    "Audit logs are protected from destruction and unauthorized modification",
                    &["integrity", "checkpoints"],
                    &["GET /v1/integrity/verify", "GET /v1/integrity/checkpoints", "vigil verify --file"],
                ),
                (
                    "10.4",
                    "Audit logs are reviewed to identify anomalies or suspicious activity",
                    &["alert_response"],
                    &["GET /v1/reports/security", "GET /v1/alerts"],
                ),
                (
                    "10.5",
                    "Audit log history is retained and available for analysis",
                    &["retention", "logged"],
                    &["GET /v1/events/export", "vigil archive list", "vigil verify --archive"],
                ),
                (
                    "10.7",
                    "Failures of critical security control systems are detected, reported and responded to",
                    &["integrity", "alert_response"],
                    &["GET /v1/integrity/status", "GET /metrics"],
                ),
            ],
            Self::Soc2 => &[
                (
                    "CC7.2",
                    "The entity monitors system components for anomalies indicative of malicious acts",
                    &["logged", "alert_response", "rule_changes"],
                    &["GET /v1/reports/security", "GET /v1/rules"],
                ),
                (
                    "CC7.3",
                    "The entity evaluates security events to determine whether they are incidents",
                    &["alert_response"],
                    &["GET /v1/alerts", "GET /v1/alerts/stats"],
                ),
            ],
            Self::Iso27001 => &[
                (
                    "A.8.15",
                    "Logging: logs recording activities are produced, stored, protected and analysed",
                    &["logged", "integrity", "checkpoints", "log_access", "retention"],
                    &["GET /v1/events/export", "GET /v1/integrity/verify"],
                ),
                (
                    "A.8.16",
                    "Monitoring activities: networks, systems and applications are monitored for anomalous behaviour",
                    &["alert_response", "rule_changes"],
                    &["GET /v1/reports/security", "GET /v1/alerts"],
                ),
            ],
            Self::Gdpr => &[
                (
                    "Art. 30",
                    "Records of processing activities",
                    &["logged", "log_access", "retention"],
                    &["GET /v1/events/export", "GET /v1/events/stats"],
                ),
                (
                    "Art. 32",
                    "Security of processing: integrity, ability to restore, regular testing of measures",
                    &["integrity", "checkpoints", "alert_response"],
                    &["GET /v1/integrity/verify", "vigil verify --file"],
                ),
            ],
        }
    }
}

/// The evidence of `period` for `framework`, as JSON.
pub async fn compliance_report(
    src: &ReportSources<'_>,
    framework: Framework,
    period: &Period,
    now: i64,
) -> Result<Value, StoreError> {
    let (from, to) = (period.from, period.to);
    let stats = src
        .store
        .stats(&StatsFilter {
            since: Some(from),
            until: Some(to),
            organization_id: None,
            category: None,
            bucket_ms: 86_400_000,
            top: 10,
            origin: Origin::All,
        })
        .await?;
    let seqs = src.store.seq_bounds(Some(from), Some(to)).await?;
    let checkpoints: Vec<CheckpointJson> = match seqs {
        Some((lo, hi)) => src
            .store
            .checkpoints(lo, hi)
            .await?
            .iter()
            .take(EVIDENCE_LIMIT as usize)
            .map(CheckpointJson::from)
            .collect(),
        None => Vec::new(),
    };
    let log_access = chain_events(src, "audit", Some("log_accessed"), from, to).await?;
    let rule_changes = chain_events(src, "configuration", None, from, to).await?;
    let figures = src.store.period_figures(from, to, now, SlaMs(src.config.sla_ms())).await?;
    let controls: Vec<Value> = framework
        .controls()
        .iter()
        .map(|(id, title, evidence, endpoints)| json!({"id": id, "title": title, "evidence": evidence, "endpoints": endpoints}))
        .collect();
    let hold = src.integrity.hold();
    Ok(json!({
        "framework": framework.name(),
        "period": period.kind.name(),
        "date": period.date_text(),
        "from": format_rfc3339_ms(from),
        "to": format_rfc3339_ms(to),
        "generated_at": format_rfc3339_ms(now),
        "controls": controls,
        "evidence": {
            "logged": {"total": stats.total, "by_category": stats.by_category, "by_outcome": stats.by_outcome,
                "seq_range": seqs.map(|(lo, hi)| json!({"from": lo, "to": hi}))},
            "integrity": {"status": if hold.is_some() { "hold" } else { "ok" },
                "hold_since": hold.as_ref().map(|h| format_rfc3339_ms(h.since)),
                "last_verify": src.integrity.last_verify(),
                "verify_hint": seqs.map(|(lo, hi)| format!("GET /v1/integrity/verify?from={lo}&to={hi}"))},
            "checkpoints": checkpoints,
            "log_access": log_access,
            "rule_changes": rule_changes,
            "alert_response": response_json(&figures.by_severity, &src.config.sla_ms()),
            "retention": {"retention_days": src.retention_days, "hot_days": src.retention_days,
                "archive": src.archive},
        },
    }))
}

/// The server's own chain events of `category` (and `action`) in the period, oldest first:
/// when, what, who (`user_id`: the key id or actor) and their details.
async fn chain_events(
    src: &ReportSources<'_>,
    category: &str,
    action: Option<&str>,
    from: i64,
    to: i64,
) -> Result<Vec<Value>, StoreError> {
    let rows = src
        .store
        .query(&EventFilter {
            category: Some(category.into()),
            action: action.map(str::to_owned),
            since: Some(from),
            until: Some(to),
            limit: EVIDENCE_LIMIT,
            ..Default::default()
        })
        .await?;
    Ok(rows
        .iter()
        .rev()
        .filter_map(|r| {
            let event = decode_canon(r.seq, &r.canon).ok()?;
            // Only the server's own records (no ingest key, source vigil): a client cannot
            // forge evidence by sending an `audit` event.
            if r.columns.ingest_key.is_some() || event.get("source").and_then(Value::as_str) != Some("vigil") {
                return None;
            }
            Some(json!({"seq": r.seq, "at": format_rfc3339_ms(r.columns.ts), "action": r.columns.action,
                "actor": r.columns.user_id, "details": event.get("details")}))
        })
        .collect())
}
