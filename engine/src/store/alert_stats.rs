//! Alert statistics (`GET /v1/alerts/stats`, the ops summary and the digest):
//! counts per status, severity and rule over the `alerts` table, with the sums behind the
//! mean times to acknowledge and resolve.

use serde_json::{Value, json};

use super::{Store, StoreError, dispatch};

/// Counts of `GET /v1/alerts/stats`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AlertStats {
    /// Per status.
    pub by_status: Vec<(String, i64)>,
    /// Per severity.
    pub by_severity: Vec<(String, i64)>,
    /// Per rule: (rule, alerts, acknowledged or resolved, sum of ms to ack, resolved,
    /// sum of ms to resolve, with a disposition, false positives).
    pub by_rule: Vec<RuleAlertStats>,
}

/// Per-rule alert numbers.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RuleAlertStats {
    pub rule: String,
    pub alerts: i64,
    /// Acknowledged (ever).
    pub acked: i64,
    /// Sum of (acked_at - created_at), ms.
    pub ack_ms: i64,
    pub resolved: i64,
    /// Sum of (resolved_at - created_at), ms.
    pub resolve_ms: i64,
    /// Resolved with a disposition.
    pub dispositions: i64,
    /// Resolved as false_positive.
    pub false_positives: i64,
}

impl AlertStats {
    /// API shape: counts, mean time to acknowledge and to resolve (seconds), and the
    /// false-positive rate per rule (false positives / alerts resolved with a disposition).
    pub fn to_json(&self) -> Value {
        let pairs = |v: &[(String, i64)]| Value::Object(v.iter().map(|(k, n)| (k.clone(), json!(n))).collect());
        let mean = |sum: i64, n: i64| (n > 0).then(|| sum as f64 / n as f64 / 1000.0);
        let (mut acked, mut ack_ms, mut resolved, mut resolve_ms, mut total) = (0, 0, 0, 0, 0);
        let by_rule: Vec<Value> = self
            .by_rule
            .iter()
            .map(|r| {
                (acked, ack_ms, resolved, resolve_ms, total) =
                    (acked + r.acked, ack_ms + r.ack_ms, resolved + r.resolved, resolve_ms + r.resolve_ms, total + r.alerts);
                json!({"rule": r.rule, "alerts": r.alerts, "acknowledged": r.acked, "resolved": r.resolved,
                    "mtta_seconds": mean(r.ack_ms, r.acked), "mttr_seconds": mean(r.resolve_ms, r.resolved),
                    "dispositions": r.dispositions, "false_positives": r.false_positives,
                    "false_positive_rate": (r.dispositions > 0).then(|| r.false_positives as f64 / r.dispositions as f64)})
            })
            .collect();
        json!({"total": total, "by_status": pairs(&self.by_status), "by_severity": pairs(&self.by_severity),
            "by_rule": by_rule, "mtta_seconds": mean(ack_ms, acked), "mttr_seconds": mean(resolve_ms, resolved)})
    }
}

impl Store {
    /// Alert counts and response times (alerts created at or after `since`). Read on the
    /// read pool (SQLite): `/metrics` asks, and must never queue behind the writer.
    pub async fn alert_stats(&self, since: Option<i64>) -> Result<AlertStats, StoreError> {
        dispatch!(self, s => s.alert_stats(since).await)
    }
}

macro_rules! alert_stats_queries {
    ($store:ty, $db:ty, reader: $reader:ident) => {
        impl $store {
            pub(super) async fn alert_stats(&self, since: Option<i64>) -> Result<AlertStats, StoreError> {
                let since = since.unwrap_or(i64::MIN);
                let mut stats = AlertStats::default();
                for (column, out) in [("status", &mut stats.by_status), ("severity", &mut stats.by_severity)] {
                    let mut qb = QueryBuilder::<$db>::new(format!("SELECT {column} AS value, COUNT(*) AS n FROM alerts WHERE created_at >= "));
                    qb.push_bind(since).push(format_args!(" GROUP BY {column} ORDER BY {column}"));
                    *out = qb.build().fetch_all(&self.$reader).await?.iter().map(|r| (r.get("value"), r.get("n"))).collect();
                }
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT rule, COUNT(*) AS alerts, \
                     CAST(COALESCE(SUM(CASE WHEN acked_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS acked, \
                     CAST(COALESCE(SUM(CASE WHEN acked_at IS NOT NULL THEN acked_at - created_at ELSE 0 END), 0) AS BIGINT) AS ack_ms, \
                     CAST(COALESCE(SUM(CASE WHEN resolved_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS resolved, \
                     CAST(COALESCE(SUM(CASE WHEN resolved_at IS NOT NULL THEN resolved_at - created_at ELSE 0 END), 0) AS BIGINT) AS resolve_ms, \
                     CAST(COALESCE(SUM(CASE WHEN disposition IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS dispositions, \
                     CAST(COALESCE(SUM(CASE WHEN disposition = 'false_positive' THEN 1 ELSE 0 END), 0) AS BIGINT) AS false_positives \
                     FROM alerts WHERE created_at >= ",
                );
                qb.push_bind(since).push(" GROUP BY rule ORDER BY rule");
                stats.by_rule = qb
                    .build()
                    .fetch_all(&self.$reader)
                    .await?
                    .iter()
                    .map(|r| RuleAlertStats {
                        rule: r.get("rule"),
                        alerts: r.get("alerts"),
                        acked: r.get("acked"),
                        ack_ms: r.get("ack_ms"),
                        resolved: r.get("resolved"),
                        resolve_ms: r.get("resolve_ms"),
                        dispositions: r.get("dispositions"),
                        false_positives: r.get("false_positives"),
                    })
                    .collect();
                Ok(stats)
            }
        }
    };
}

pub(crate) use alert_stats_queries;
