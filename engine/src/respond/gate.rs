//! The rules' gate: what the rule host asks on each `emit_decision` ([`Gate`], the
//! `rules::DecisionGate` of the server): the policy of `[decisions]`, the rule's count of
//! active decisions in the [`ActiveSet`] and the [`super::Allowlist`]. A decision on an
//! allowlisted value leaves the sandbox as a refused one, and [`annotate_refusals`] makes
//! the alert it goes with say so.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{ActiveSet, AllowEntry, Allowlist, Guardrails, Scope};
use crate::clock::Clock;
use crate::config::DecisionsConfig;
use crate::rules::DecisionRefusal;

/// What a rule may decide (`[decisions]` and the allowlist), as the rule host checks it on
/// `emit_decision`.
#[derive(Debug)]
pub struct Gate {
    config: DecisionsConfig,
    scopes: Vec<Scope>,
    set: Arc<ActiveSet>,
    allowlist: Arc<Allowlist>,
    clock: Clock,
}

/// Why the gate refused a rule's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `[decisions] from_rules = false`.
    Disabled,
    /// The scope is not in `rule_scopes`.
    Scope,
    /// Longer than `max_rule_duration_secs`.
    Duration,
    /// The rule holds `max_active_per_rule` active decisions.
    RuleCap,
    /// `max_active` decisions are active.
    TotalCap,
    /// The value is allowlisted.
    Allowlisted,
}

impl Refusal {
    /// Every reason (the order of [`DecisionCounters::refused_by`]).
    pub const ALL: [Refusal; 6] = [
        Refusal::Disabled,
        Refusal::Scope,
        Refusal::Duration,
        Refusal::RuleCap,
        Refusal::TotalCap,
        Refusal::Allowlisted,
    ];

    /// Label for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            Refusal::Disabled => "disabled",
            Refusal::Scope => "scope",
            Refusal::Duration => "duration",
            Refusal::RuleCap => "rule_cap",
            Refusal::TotalCap => "total_cap",
            Refusal::Allowlisted => "allowlisted",
        }
    }

    fn from_label(label: &str) -> Option<Refusal> {
        Refusal::ALL.into_iter().find(|r| r.as_str() == label)
    }
}

impl Gate {
    /// A gate over the active set and the allowlist with the `[decisions]` policy.
    pub fn new(config: DecisionsConfig, guardrails: Guardrails, clock: Clock) -> Self {
        let scopes = config.rule_scopes.iter().filter_map(|s| Scope::parse(s)).collect();
        Self { config, scopes, set: guardrails.set, allowlist: guardrails.allowlist, clock }
    }

    /// The active set it counts.
    pub fn set(&self) -> &Arc<ActiveSet> {
        &self.set
    }

    /// Whether `rule` may issue a decision of `scope` lasting `duration_ms`, given that it
    /// already issued `pending` not yet stored.
    pub fn admit(&self, rule: &str, scope: Scope, duration_ms: i64, pending: usize) -> Result<(), Refusal> {
        if !self.config.from_rules {
            return Err(Refusal::Disabled);
        }
        if !self.scopes.contains(&scope) {
            return Err(Refusal::Scope);
        }
        if duration_ms > (self.config.max_rule_duration_secs as i64).saturating_mul(1000) {
            return Err(Refusal::Duration);
        }
        if self.set.rule_count(rule) + pending >= self.config.max_active_per_rule {
            return Err(Refusal::RuleCap);
        }
        if self.set.len() + pending >= self.config.max_active {
            return Err(Refusal::TotalCap);
        }
        Ok(())
    }

    /// The allowlist entry that covers a decision on `value` in `scope` now, if any.
    pub fn allowlisted(&self, scope: Scope, value: &str) -> Option<Arc<AllowEntry>> {
        self.allowlist.find(scope, value, self.clock.now_ms())
    }
}

impl crate::rules::DecisionGate for Gate {
    /// The policy first (a rule past its limits is refused as such), then the allowlist.
    fn admit_decision(
        &self,
        rule: &str,
        decision: &crate::finding::EmittedDecision,
        pending: usize,
    ) -> Result<(), DecisionRefusal> {
        self.admit(rule, decision.scope, decision.duration_ms, pending)
            .map_err(|r| DecisionRefusal { label: r.as_str(), note: None })?;
        if let Some(entry) = self.allowlisted(decision.scope, &decision.value) {
            let note = entry.to_api_json(self.clock.now_ms());
            return Err(DecisionRefusal { label: Refusal::Allowlisted.as_str(), note: Some(note) });
        }
        Ok(())
    }

    fn count_refusal(&self, refusal: &DecisionRefusal) {
        match Refusal::from_label(refusal.label) {
            Some(r) => self.set.counters.refuse(r),
            None => {
                self.set.counters.refused.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Adds to each alert of a batch the decisions of the same rule and dedup key that the
/// gate refused with a note (allowlisted values): `fields.decisions_refused`, a list of
/// `{scope, value, kind, refused, allowlist_entry}`, so the alert (and its notifications)
/// says that no decision was issued, and why. A repeat of an open alert keeps its first
/// fields; its history notes the refusal (`decision_refused`) either way.
pub fn annotate_refusals(alerts: &mut [crate::finding::RaisedAlert], refused: &[crate::finding::RefusedDecision]) {
    for r in refused {
        let Some(key) = &r.decision.dedup_key else { continue };
        let Some(alert) = alerts.iter_mut().find(|a| a.rule == r.rule && &a.alert.dedup_key == key) else { continue };
        let fields = &mut alert.alert.fields;
        if fields.is_null() {
            *fields = serde_json::json!({});
        }
        if !fields.is_object() {
            continue;
        }
        let note = serde_json::json!({"scope": r.decision.scope.as_str(), "value": r.decision.value,
            "kind": r.decision.kind.as_str(), "refused": r.reason, "allowlist_entry": r.note});
        match fields.get_mut("decisions_refused").and_then(serde_json::Value::as_array_mut) {
            Some(list) if list.len() < 10 => list.push(note),
            Some(_) => {}
            None => fields["decisions_refused"] = serde_json::json!([note]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::render_metrics;
    use super::super::tests::row;
    use super::*;

    #[test]
    fn the_gate_applies_the_policy() {
        let set = Arc::new(ActiveSet::default());
        let config = DecisionsConfig {
            rule_scopes: vec!["ip".into()],
            max_rule_duration_secs: 60,
            max_active_per_rule: 2,
            ..DecisionsConfig::default()
        };
        let guardrails = Guardrails { set: set.clone(), ..Guardrails::default() };
        let gate = Gate::new(config, guardrails, Clock::manual(0));
        assert_eq!(gate.admit("r", Scope::Ip, 60_000, 0), Ok(()));
        assert_eq!(gate.admit("r", Scope::User, 60_000, 0), Err(Refusal::Scope));
        assert_eq!(gate.admit("r", Scope::Ip, 60_001, 0), Err(Refusal::Duration));
        set.insert(row(1, Scope::Ip, "a", Some("r"), i64::MAX), 1);
        assert_eq!(gate.admit("r", Scope::Ip, 1000, 1), Err(Refusal::RuleCap));
        assert_eq!(gate.admit("other", Scope::Ip, 1000, 1), Ok(()));
    }

    #[test]
    fn the_gate_refuses_allowlisted_values_with_a_note_and_counts_them() {
        use crate::rules::DecisionGate as _;
        let guardrails = Guardrails::default();
        let gate = Gate::new(DecisionsConfig::default(), guardrails.clone(), Clock::manual(0));
        let d = vigil_sdk::Decision::block(Scope::Ip, "::ffff:127.0.0.1").reason("r");
        let refusal = gate.admit_decision("r", &d, 0).unwrap_err();
        assert_eq!(refusal.label, "allowlisted");
        assert_eq!(refusal.note.as_ref().unwrap()["id"], "builtin-loopback-ipv4");
        gate.count_refusal(&refusal);
        let c = &guardrails.set.counters;
        assert_eq!(c.refused.load(Ordering::Relaxed), 1);
        assert_eq!(c.refused_by[Refusal::Allowlisted as usize].load(Ordering::Relaxed), 1);
        let ok = vigil_sdk::Decision::block(Scope::Ip, "203.0.113.7").reason("r");
        assert_eq!(gate.admit_decision("r", &ok, 0), Ok(()));
        let mut out = String::new();
        render_metrics(&mut out, &guardrails.set, 0);
        assert!(out.contains("vigil_decisions_refused_by_reason_total{reason=\"allowlisted\"} 1"), "{out}");
    }
}
