//! Correlations: each detection match feeds the correlations that name its rule; their
//! state is the host's (windows, distinct sets, last-seen values), so it survives hot
//! reloads and restarts. A threshold correlation fires when its condition starts to hold.

use rsigma_parser::{ConditionExpr, ConditionOperator, CorrelationType, Quantifier};
use vigil_sdk::{Alert, Context, Event};

use crate::{Correlation, SigmaEvaluator};

impl SigmaEvaluator {
    pub(crate) fn correlate(&self, c: usize, position: usize, ev: &Event<'_>, ctx: &mut Context) {
        let corr = &self.correlations[c];
        let values: Vec<&str> = corr.group_fields[position].iter().map(|f| ev.get(f).unwrap_or("")).collect();
        let mut key = corr.key.clone();
        for v in &values {
            key.push('\u{1f}');
            key.push_str(v);
        }
        let (now, seqs) = match corr.kind {
            CorrelationType::EventCount => {
                let w = ctx.window(corr.timespan_ms);
                let n = w.add(&key, 1) as u64;
                if !fires(&corr.predicates, n, n - 1) {
                    return;
                }
                (n, w.seqs(&key))
            }
            CorrelationType::ValueCount => {
                let Some(field) = &corr.value_field else { return };
                let Some(value) = ev.get(field).filter(|v| !v.is_empty()) else { return };
                let d = ctx.distinct(corr.timespan_ms);
                let before = d.count(&key) as u64;
                let n = d.add(&key, value) as u64;
                if !fires(&corr.predicates, n, before) {
                    return;
                }
                (n, d.seqs(&key))
            }
            CorrelationType::Temporal => {
                let w = ctx.window(corr.timespan_ms);
                let here = w.add(format!("{key}\u{1e}{position}"), 1);
                let present: Vec<bool> =
                    (0..corr.refs.len()).map(|i| i == position || w.count(format!("{key}\u{1e}{i}")) > 0).collect();
                let mut before = present.clone();
                before[position] = here > 1;
                let (now, was) = (self.temporal_holds(corr, &present), self.temporal_holds(corr, &before));
                if !now || was {
                    return;
                }
                let mut seqs: Vec<i64> = (0..corr.refs.len()).flat_map(|i| w.seqs(format!("{key}\u{1e}{i}"))).collect();
                seqs.sort_unstable();
                seqs.dedup();
                (present.iter().filter(|p| **p).count() as u64, seqs)
            }
            CorrelationType::TemporalOrdered => {
                let seen = ctx.last_seen();
                let t = ctx.time_ms();
                let start = if position == 0 {
                    t
                } else {
                    let Some(previous) = seen.get(format!("{key}\u{1e}{}", position - 1)) else { return };
                    let Some(start) = previous.as_str().and_then(|s| s.parse::<i64>().ok()) else { return };
                    if t - start > corr.timespan_ms || t < start {
                        return;
                    }
                    start
                };
                seen.set(format!("{key}\u{1e}{position}"), start.to_string());
                if position + 1 != corr.refs.len() {
                    return;
                }
                (corr.refs.len() as u64, vec![ctx.seq()])
            }
            _ => return,
        };
        let mut alert = Alert::new(corr.title.as_str())
            .severity(corr.severity)
            .dedup_key(format!("sigma:{}:{}", corr.key, values.join(",")))
            .field("sigma_rule", corr.key.as_str())
            .field("correlation", corr.kind.as_str())
            .field("count", now as i64)
            .field("timespan_ms", corr.timespan_ms);
        for (name, value) in corr.group_names.iter().zip(&values) {
            alert = alert.field(name, *value);
        }
        if !corr.mitre.is_empty() {
            alert = alert.field("mitre", corr.mitre.join(","));
        }
        if !seqs.is_empty() {
            alert = alert.event_seqs(seqs);
        }
        ctx.emit(alert);
    }

    fn temporal_holds(&self, corr: &Correlation, present: &[bool]) -> bool {
        match &corr.expression {
            Some(expr) => eval_expression(expr, &corr.refs, present),
            None => {
                let n = present.iter().filter(|p| **p).count() as u64;
                holds(&corr.predicates, n)
            }
        }
    }
}

/// A temporal correlation's boolean condition: an identifier holds when that rule (of the
/// correlation's `rules`, `refs[i]`) was seen (`present[i]`); `1 of P`, `N of P` and `all
/// of P` count the rules whose name matches the pattern `P` (`them`: every rule), as Sigma
/// counts selections in a detection condition.
fn eval_expression(expr: &ConditionExpr, refs: &[String], present: &[bool]) -> bool {
    match expr {
        ConditionExpr::And(args) => args.iter().all(|a| eval_expression(a, refs, present)),
        ConditionExpr::Or(args) => args.iter().any(|a| eval_expression(a, refs, present)),
        ConditionExpr::Not(arg) => !eval_expression(arg, refs, present),
        ConditionExpr::Identifier(name) => refs.iter().position(|r| r == name).is_some_and(|i| present[i]),
        ConditionExpr::Selector { quantifier, pattern } => {
            let named = || refs.iter().zip(present).filter(|(r, _)| pattern.matches_detection_name(r));
            let seen = named().filter(|(_, p)| **p).count() as u64;
            match quantifier {
                Quantifier::Any => seen >= 1,
                Quantifier::Count(n) => seen >= *n,
                Quantifier::All => seen == named().count() as u64,
            }
        }
    }
}

/// Whether every predicate holds for `n`.
fn holds(predicates: &[(ConditionOperator, u64)], n: u64) -> bool {
    predicates.iter().all(|&(op, v)| match op {
        ConditionOperator::Lt => n < v,
        ConditionOperator::Lte => n <= v,
        ConditionOperator::Gt => n > v,
        ConditionOperator::Gte => n >= v,
        ConditionOperator::Eq => n == v,
        ConditionOperator::Neq => n != v,
    })
}

/// A threshold correlation fires when its condition starts to hold: it holds at `n` and did
/// not before this event (`before`; a group's first event always counts as a start).
fn fires(predicates: &[(ConditionOperator, u64)], n: u64, before: u64) -> bool {
    holds(predicates, n) && (before == 0 || !holds(predicates, before))
}
