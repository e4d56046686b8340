//! The figures of the security report (`report`, `GET /v1/reports/security`) that the event
//! statistics of `query.rs` do not give: alerts of a period by severity (detection,
//! acknowledgement and resolution times, SLA attainment), by rule, status and disposition;
//! decisions issued and lifted; checkpoints signed; and the IPs and countries a user was
//! seen from in a window. Every query is bounded by the period (indexes on `ts`, `user_id`).

use serde::Serialize;

use super::{Store, StoreError, dispatch};

/// Response-time figures of one alert severity in a period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SeverityTimes {
    pub severity: String,
    pub alerts: i64,
    /// Sum of (created_at - first_seen), ms, never negative: the time from the triggering
    /// event to the alert.
    pub detect_ms: i64,
    /// Acknowledged (ever).
    pub acked: i64,
    /// Sum of (acked_at - created_at), ms.
    pub ack_ms: i64,
    pub resolved: i64,
    /// Sum of (resolved_at - created_at), ms.
    pub resolve_ms: i64,
    /// First response (ack, or resolve without ack) within the SLA.
    pub sla_met: i64,
    /// First response after the SLA, or none yet and the SLA already passed at `now`.
    pub sla_missed: i64,
}

/// False positives of one rule in a period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuleOutcomes {
    pub rule: String,
    pub alerts: i64,
    /// Resolved with a disposition.
    pub dispositions: i64,
    /// Resolved as false_positive.
    pub false_positives: i64,
}

/// Alert and decision figures of a period `[from, to)` (alerts by `created_at`, decision
/// changes by their time, checkpoints by `created_at`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PeriodFigures {
    pub by_severity: Vec<SeverityTimes>,
    pub by_rule: Vec<RuleOutcomes>,
    pub by_status: Vec<(String, i64)>,
    /// `none` for alerts without a disposition.
    pub by_disposition: Vec<(String, i64)>,
    /// Decision changes: (action issued|expired|lifted, decision kind, count).
    pub decision_changes: Vec<(String, String, i64)>,
    /// Checkpoints signed in the period.
    pub checkpoints: i64,
}

/// The SLA (time to first response, ms) of each severity P1..P4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlaMs(pub [i64; 4]);

/// Where a user was seen: distinct (ip, country) pairs; either may be absent.
pub type Sightings = Vec<(Option<String>, Option<String>)>;

/// Most distinct rules a report lists (the most alerting first).
pub const RULE_LIMIT: i64 = 100;
/// Most distinct (ip, country) pairs read for one user and window.
pub const SIGHTING_LIMIT: i64 = 1000;

impl Store {
    /// Alert, decision and checkpoint figures of `[from, to)`; `now` decides whether an
    /// alert not yet answered has already missed its SLA.
    pub async fn period_figures(&self, from: i64, to: i64, now: i64, sla: SlaMs) -> Result<PeriodFigures, StoreError> {
        dispatch!(self, s => s.period_figures(from, to, now, sla).await)
    }

    /// Events per category in `[from, to)` (the [`RULE_LIMIT`] largest, ties by category):
    /// (category, events, failures). `Stats::failures_by_category` has them when the
    /// statistics of the same range were made in one pass.
    pub async fn failures_by_category(&self, from: i64, to: i64) -> Result<Vec<(String, i64, i64)>, StoreError> {
        dispatch!(self, s => s.failures_by_category(from, to).await)
    }

    /// The distinct (ip, country of `geo.country`) pairs of `user`'s events in `[from, to)`.
    pub async fn user_sightings(&self, user: &str, from: i64, to: i64) -> Result<Sightings, StoreError> {
        dispatch!(self, s => s.user_sightings(user, from, to).await)
    }
}

/// `country` is the dialect's SQL for `geo.country` out of the canonical bytes.
macro_rules! report_queries {
    ($store:ty, $db:ty, reader: $reader:ident, country: $country:literal) => {
        impl $store {
            pub(super) async fn period_figures(
                &self,
                from: i64,
                to: i64,
                now: i64,
                sla: report_stats::SlaMs,
            ) -> Result<report_stats::PeriodFigures, StoreError> {
                use report_stats::{PeriodFigures, RuleOutcomes, SeverityTimes};
                let mut figures = PeriodFigures::default();
                let window = |qb: &mut QueryBuilder<$db>, column: &str| {
                    qb.push(format_args!(" {column} >= ")).push_bind(from).push(format_args!(" AND {column} < ")).push_bind(to);
                };
                // First response: the ack, or the resolution of an alert never acked.
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT severity, COUNT(*) AS alerts, \
                     CAST(COALESCE(SUM(CASE WHEN created_at > first_seen THEN created_at - first_seen ELSE 0 END), 0) AS BIGINT) AS detect_ms, \
                     CAST(COALESCE(SUM(CASE WHEN acked_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS acked, \
                     CAST(COALESCE(SUM(CASE WHEN acked_at IS NOT NULL THEN acked_at - created_at ELSE 0 END), 0) AS BIGINT) AS ack_ms, \
                     CAST(COALESCE(SUM(CASE WHEN resolved_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS resolved, \
                     CAST(COALESCE(SUM(CASE WHEN resolved_at IS NOT NULL THEN resolved_at - created_at ELSE 0 END), 0) AS BIGINT) AS resolve_ms, \
                     CAST(COALESCE(SUM(CASE WHEN COALESCE(acked_at, resolved_at) - created_at <= sla THEN 1 ELSE 0 END), 0) AS BIGINT) AS met, \
                     CAST(COALESCE(SUM(CASE WHEN COALESCE(acked_at, resolved_at) - created_at > sla \
                       OR (COALESCE(acked_at, resolved_at) IS NULL AND ",
                );
                qb.push_bind(now).push(
                    " - created_at > sla) THEN 1 ELSE 0 END), 0) AS BIGINT) AS missed \
                     FROM (SELECT a.*, CASE severity WHEN 'P1' THEN ",
                );
                qb.push_bind(sla.0[0]).push(" WHEN 'P2' THEN ").push_bind(sla.0[1]).push(" WHEN 'P3' THEN ");
                qb.push_bind(sla.0[2]).push(" ELSE ").push_bind(sla.0[3]).push(" END AS sla FROM alerts a WHERE");
                window(&mut qb, "created_at");
                qb.push(") w GROUP BY severity ORDER BY severity");
                figures.by_severity = qb
                    .build()
                    .fetch_all(&self.$reader)
                    .await?
                    .iter()
                    .map(|r| SeverityTimes {
                        severity: r.get("severity"),
                        alerts: r.get("alerts"),
                        detect_ms: r.get("detect_ms"),
                        acked: r.get("acked"),
                        ack_ms: r.get("ack_ms"),
                        resolved: r.get("resolved"),
                        resolve_ms: r.get("resolve_ms"),
                        sla_met: r.get("met"),
                        sla_missed: r.get("missed"),
                    })
                    .collect();
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT rule, COUNT(*) AS alerts, \
                     CAST(COALESCE(SUM(CASE WHEN disposition IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT) AS dispositions, \
                     CAST(COALESCE(SUM(CASE WHEN disposition = 'false_positive' THEN 1 ELSE 0 END), 0) AS BIGINT) AS fps \
                     FROM alerts WHERE",
                );
                window(&mut qb, "created_at");
                qb.push(" GROUP BY rule ORDER BY alerts DESC, rule LIMIT ").push_bind(report_stats::RULE_LIMIT);
                figures.by_rule = qb
                    .build()
                    .fetch_all(&self.$reader)
                    .await?
                    .iter()
                    .map(|r| RuleOutcomes {
                        rule: r.get("rule"),
                        alerts: r.get("alerts"),
                        dispositions: r.get("dispositions"),
                        false_positives: r.get("fps"),
                    })
                    .collect();
                for (column, out) in [("status", &mut figures.by_status), ("COALESCE(disposition, 'none')", &mut figures.by_disposition)] {
                    let mut qb = QueryBuilder::<$db>::new(format!("SELECT {column} AS value, COUNT(*) AS n FROM alerts WHERE"));
                    window(&mut qb, "created_at");
                    qb.push(" GROUP BY value ORDER BY value");
                    *out = qb.build().fetch_all(&self.$reader).await?.iter().map(|r| (r.get("value"), r.get("n"))).collect();
                }
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT c.action AS action, d.kind AS kind, COUNT(*) AS n FROM decision_changes c \
                     JOIN decisions d ON d.id = c.decision_id WHERE",
                );
                window(&mut qb, "c.at");
                qb.push(" GROUP BY c.action, d.kind ORDER BY c.action, d.kind");
                figures.decision_changes = qb
                    .build()
                    .fetch_all(&self.$reader)
                    .await?
                    .iter()
                    .map(|r| (r.get("action"), r.get("kind"), r.get("n")))
                    .collect();
                let mut qb = QueryBuilder::<$db>::new("SELECT COUNT(*) AS n FROM checkpoints WHERE");
                window(&mut qb, "created_at");
                figures.checkpoints = qb.build().fetch_one(&self.$reader).await?.get("n");
                Ok(figures)
            }

            pub(super) async fn failures_by_category(&self, from: i64, to: i64) -> Result<Vec<(String, i64, i64)>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT category, COUNT(*) AS n, \
                     CAST(COALESCE(SUM(CASE WHEN outcome = 'failure' THEN 1 ELSE 0 END), 0) AS BIGINT) AS failures \
                     FROM events WHERE ts >= ",
                );
                qb.push_bind(from).push(" AND ts < ").push_bind(to);
                qb.push(" GROUP BY category ORDER BY n DESC, category LIMIT ").push_bind(report_stats::RULE_LIMIT);
                Ok(qb
                    .build()
                    .fetch_all(&self.$reader)
                    .await?
                    .iter()
                    .map(|r| (r.get("category"), r.get("n"), r.get("failures")))
                    .collect())
            }

            pub(super) async fn user_sightings(
                &self,
                user: &str,
                from: i64,
                to: i64,
            ) -> Result<report_stats::Sightings, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(concat!(
                    "SELECT ip, country FROM (SELECT ip, ",
                    $country,
                    " AS country FROM events WHERE user_id = "
                ));
                qb.push_bind(user.to_owned());
                query::push_time_range(&mut qb, Some(from), Some(to));
                qb.push(") s GROUP BY ip, country ORDER BY ip, country LIMIT ").push_bind(report_stats::SIGHTING_LIMIT);
                let rows = qb.build().persistent(false).fetch_all(&self.$reader).await?;
                Ok(rows.iter().map(|r| (r.get("ip"), r.get("country"))).collect())
            }
        }
    };
}

pub(crate) use report_queries;
