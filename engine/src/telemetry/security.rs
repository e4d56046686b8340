//! Security counters for dashboards (`GET /metrics`): events committed to the log by
//! category, outcome and severity, and alerts raised by rule and severity. Label sets are
//! bounded: categories, outcomes and severities outside the known values count as `other`,
//! and rules past [`MAX_RULE_LABELS`] distinct names count as rule `other`. The sequencer
//! bumps the event counters after a commit; the alert service the alert counters.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::label;

/// The categories with a label of their own (docs/events.md); the rest are `other`.
pub const CATEGORIES: [&str; 10] = [
    "authentication",
    "authorization",
    "data_access",
    "api_key_management",
    "configuration",
    "alert",
    "audit",
    "decision",
    "system",
    "other",
];
/// Outcomes, then `other`.
pub const OUTCOMES: [&str; 4] = ["success", "failure", "unknown", "other"];
/// Severities, then `other`.
pub const SEVERITIES: [&str; 5] = ["low", "medium", "high", "critical", "other"];
/// Most distinct rule names with a label of their own.
pub const MAX_RULE_LABELS: usize = 200;

const CELLS: usize = CATEGORIES.len() * OUTCOMES.len() * SEVERITIES.len();

/// Events by category, outcome and severity; alerts by rule and severity.
#[derive(Debug)]
pub struct SecurityCounters {
    events: [AtomicU64; CELLS],
    alerts: Mutex<BTreeMap<(String, String), u64>>,
}

impl Default for SecurityCounters {
    fn default() -> Self {
        Self { events: std::array::from_fn(|_| AtomicU64::new(0)), alerts: Mutex::default() }
    }
}

fn position(known: &[&str], value: &str) -> usize {
    known.iter().position(|k| *k == value).unwrap_or(known.len() - 1)
}

impl SecurityCounters {
    /// The cell of an event's (lowercase) category, outcome and severity.
    pub fn cell(category: &str, outcome: &str, severity: &str) -> usize {
        (position(&CATEGORIES, category) * OUTCOMES.len() + position(&OUTCOMES, outcome)) * SEVERITIES.len()
            + position(&SEVERITIES, severity)
    }

    /// Counts committed events, given by their cells.
    pub fn add_events(&self, cells: &[usize]) {
        for c in cells {
            if let Some(counter) = self.events.get(*c) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Counts one alert raised by `rule` with `severity` (P1..P4).
    pub fn add_alert(&self, rule: &str, severity: &str) {
        let mut alerts = self.alerts.lock().unwrap_or_else(|p| p.into_inner());
        let known = alerts.keys().any(|(r, _)| r == rule);
        let distinct = || alerts.keys().map(|(r, _)| r).collect::<std::collections::BTreeSet<_>>().len();
        let rule = if known || distinct() < MAX_RULE_LABELS { rule } else { "other" };
        *alerts.entry((rule.to_owned(), severity.to_owned())).or_insert(0) += 1;
    }

    /// Prometheus text of both families (series that are still 0 are left out).
    pub fn render(&self, out: &mut String) {
        out.push_str(
            "# HELP vigil_security_events_total Events committed to the log, by category, outcome and severity \
             (values outside the known ones are `other`).\n# TYPE vigil_security_events_total counter\n",
        );
        for (i, counter) in self.events.iter().enumerate() {
            let n = counter.load(Ordering::Relaxed);
            if n == 0 {
                continue;
            }
            let (category, rest) = (i / (OUTCOMES.len() * SEVERITIES.len()), i % (OUTCOMES.len() * SEVERITIES.len()));
            let (outcome, severity) = (rest / SEVERITIES.len(), rest % SEVERITIES.len());
            let _ = writeln!(
                out,
                "vigil_security_events_total{{category=\"{}\",outcome=\"{}\",severity=\"{}\"}} {n}",
                CATEGORIES[category], OUTCOMES[outcome], SEVERITIES[severity]
            );
        }
        out.push_str(
            "# HELP vigil_alerts_raised_total Alerts raised, by rule and severity (rules past 200 distinct names are `other`).\n\
             # TYPE vigil_alerts_raised_total counter\n",
        );
        let alerts = self.alerts.lock().unwrap_or_else(|p| p.into_inner());
        for ((rule, severity), n) in alerts.iter() {
            let _ = writeln!(
                out,
                "vigil_alerts_raised_total{{rule=\"{}\",severity=\"{}\"}} {n}",
                label(rule),
                label(severity)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_and_rules_past_the_bound_count_as_other() {
        let c = SecurityCounters::default();
        c.add_events(&[
            SecurityCounters::cell("authentication", "failure", "high"),
            SecurityCounters::cell("authentication", "failure", "high"),
            SecurityCounters::cell("made_up", "maybe", "extreme"),
        ]);
        for i in 0..MAX_RULE_LABELS + 5 {
            c.add_alert(&format!("r{i}"), "P2");
        }
        c.add_alert("r0", "P1");
        c.add_alert("a \"quoted\"\nrule", "P3");
        let mut out = String::new();
        c.render(&mut out);
        assert!(out.contains(
            "vigil_security_events_total{category=\"authentication\",outcome=\"failure\",severity=\"high\"} 2"
        ));
        assert!(out.contains("vigil_security_events_total{category=\"other\",outcome=\"other\",severity=\"other\"} 1"));
        assert!(out.contains("vigil_alerts_raised_total{rule=\"r0\",severity=\"P1\"} 1"));
        assert!(out.contains("vigil_alerts_raised_total{rule=\"other\",severity=\"P2\"} 5"), "{out}");
        assert!(
            out.contains("vigil_alerts_raised_total{rule=\"other\",severity=\"P3\"} 1"),
            "the quoted rule came past the bound"
        );
        let rules = out.lines().filter(|l| l.starts_with("vigil_alerts_raised_total{")).count();
        assert_eq!(rules, MAX_RULE_LABELS + 1 + 2);
    }
}
