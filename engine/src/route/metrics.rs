//! Prometheus text for `/metrics`: the [`Outbox`]'s delivery counters and circuit states,
//! and alert counts and response times from the store's alert statistics.

use std::sync::atomic::Ordering;

use super::Outbox;
use super::breaker;
use crate::telemetry::label;

impl Outbox {
    /// Delivery counters and circuit states in Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let s = &self.stats;
        for (name, help, v) in [
            ("vigil_notifications_delivered_total", "Notifications delivered.", &s.delivered),
            (
                "vigil_notifications_retried_total",
                "Delivery attempts that failed and were scheduled again.",
                &s.retried,
            ),
            (
                "vigil_notifications_failed_total",
                "Notifications refused by their receiver (4xx, not retried).",
                &s.failed,
            ),
            ("vigil_notifications_dead_total", "Notifications dead-lettered after max_age.", &s.dead),
            ("vigil_notifications_folded_total", "Notifications folded into storm summaries.", &s.folded),
            ("vigil_alerts_routed_total", "Alerts routed by a routing rule.", &s.routed),
            (
                "vigil_alerts_default_routed_total",
                "Alerts sent to the default receivers (no routing rule, or it failed).",
                &s.fallback,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Ordering::Relaxed));
        }
        let now = self.clock.now_ms();
        let mut breakers = self.breakers();
        let mut rows: Vec<_> =
            breakers.iter_mut().map(|(n, b)| (n.clone(), b.state(now), b.delivered, b.failed)).collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        let _ = writeln!(
            out,
            "# HELP vigil_receiver_circuit_open 1 when the receiver's circuit is open or half-open.\n\
             # TYPE vigil_receiver_circuit_open gauge"
        );
        for (name, state, _, _) in &rows {
            let open = u8::from(*state != breaker::State::Closed);
            let _ = writeln!(
                out,
                "vigil_receiver_circuit_open{{receiver=\"{}\",state=\"{}\"}} {open}",
                label(name),
                state.as_str()
            );
        }
    }
}

/// Alert counts and response times in Prometheus text format.
pub fn render_alert_metrics(out: &mut String, stats: &crate::store::AlertStats) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "# HELP vigil_alerts Alerts by status.\n# TYPE vigil_alerts gauge");
    for (status, n) in &stats.by_status {
        let _ = writeln!(out, "vigil_alerts{{status=\"{}\"}} {n}", label(status));
    }
    let _ = writeln!(out, "# HELP vigil_alerts_by_severity Alerts by severity.\n# TYPE vigil_alerts_by_severity gauge");
    for (sev, n) in &stats.by_severity {
        let _ = writeln!(out, "vigil_alerts_by_severity{{severity=\"{}\"}} {n}", label(sev));
    }
    let _ = writeln!(
        out,
        "# HELP vigil_rule_alerts Alerts per rule.\n# TYPE vigil_rule_alerts gauge\n\
         # HELP vigil_rule_mtta_seconds Mean time to acknowledge per rule.\n# TYPE vigil_rule_mtta_seconds gauge\n\
         # HELP vigil_rule_mttr_seconds Mean time to resolve per rule.\n# TYPE vigil_rule_mttr_seconds gauge\n\
         # HELP vigil_rule_false_positive_ratio False positives / alerts resolved with a disposition.\n\
         # TYPE vigil_rule_false_positive_ratio gauge"
    );
    for r in &stats.by_rule {
        let rule = label(&r.rule);
        let _ = writeln!(out, "vigil_rule_alerts{{rule=\"{rule}\"}} {}", r.alerts);
        if r.acked > 0 {
            let _ = writeln!(
                out,
                "vigil_rule_mtta_seconds{{rule=\"{rule}\"}} {}",
                r.ack_ms as f64 / r.acked as f64 / 1000.0
            );
        }
        if r.resolved > 0 {
            let _ = writeln!(
                out,
                "vigil_rule_mttr_seconds{{rule=\"{rule}\"}} {}",
                r.resolve_ms as f64 / r.resolved as f64 / 1000.0
            );
        }
        if r.dispositions > 0 {
            let _ = writeln!(
                out,
                "vigil_rule_false_positive_ratio{{rule=\"{rule}\"}} {}",
                r.false_positives as f64 / r.dispositions as f64
            );
        }
    }
}
