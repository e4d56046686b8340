//! Escalation policies: the configured ones (or the defaults for P1 and P2), which one an
//! alert follows, and when each level fires. The [`Router`](super::Router) answers the
//! lifecycle's escalation questions with these; `alerts` stores and runs the timers.

use vigil_sdk::Severity;

use crate::config::{Config, EscalationLevel, EscalationPolicy, parse_duration_ms};
use crate::finding::parse_severity;
use crate::store::{AlertRow, EscalationRow};

/// Named policies, in configuration order.
pub(super) type Policies = Vec<(String, EscalationPolicy)>;

/// The policies of `[[escalation]]`, each named by its `name`, else `severity:<sev>`, else
/// `policy:<index>`.
pub(super) fn from_config(config: &Config) -> Policies {
    if config.escalation.is_empty() {
        // Without configured policies: an unacknowledged P1 is notified again after
        // 15 minutes, a P2 after an hour, to its own receivers.
        [(Severity::P1, "15m"), (Severity::P2, "1h")]
            .into_iter()
            .map(|(sev, after)| {
                let p = EscalationPolicy {
                    name: None,
                    severity: Some(sev.as_str().into()),
                    repeat: 0,
                    levels: vec![EscalationLevel { after: after.into(), receivers: vec![] }],
                };
                (format!("severity:{sev}"), p)
            })
            .collect()
    } else {
        config
            .escalation
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let name = p.name.clone().unwrap_or_else(|| match &p.severity {
                    Some(s) => format!("severity:{s}"),
                    None => format!("policy:{i}"),
                });
                (name, p.clone())
            })
            .collect()
    }
}

pub(super) fn find<'a>(policies: &'a [(String, EscalationPolicy)], name: &str) -> Option<&'a EscalationPolicy> {
    policies.iter().find(|(n, _)| n == name).map(|(_, p)| p)
}

fn after_ms(level: &EscalationLevel) -> i64 {
    parse_duration_ms(&level.after).unwrap_or(i64::MAX / 4)
}

/// The first timer of a newly notified alert: the policy a routing rule named, else the
/// one for the alert's severity.
pub(super) fn start(policies: &[(String, EscalationPolicy)], alert: &AlertRow, now: i64) -> Option<EscalationRow> {
    let chosen = alert.escalation_policy.as_deref().and_then(|n| policies.iter().find(|(name, _)| name == n));
    let (name, policy) = chosen.or_else(|| {
        policies.iter().find(|(_, p)| p.severity.as_deref().and_then(parse_severity) == Some(alert.severity))
    })?;
    let first = policy.levels.first()?;
    Some(EscalationRow {
        policy: name.clone(),
        level: 0,
        round: 0,
        due_at: now.saturating_add(after_ms(first)),
        status: "pending".into(),
        ..Default::default()
    })
}

/// A due timer: the receivers of its level (empty: the alert's own) and the next timer (the
/// next level, else the first level of the next round while rounds are left).
pub(super) fn step(
    policies: &[(String, EscalationPolicy)],
    timer: &EscalationRow,
) -> Option<(Vec<String>, Option<EscalationRow>)> {
    let policy = find(policies, &timer.policy)?;
    let level = policy.levels.get(timer.level as usize)?;
    let pass_start = timer.due_at - after_ms(level);
    let next = if let Some(next_level) = policy.levels.get(timer.level as usize + 1) {
        Some(EscalationRow {
            level: timer.level + 1,
            due_at: pass_start.saturating_add(after_ms(next_level)),
            ..timer.clone()
        })
    } else if (timer.round as u32) < policy.repeat {
        Some(EscalationRow {
            level: 0,
            round: timer.round + 1,
            due_at: timer.due_at.saturating_add(after_ms(&policy.levels[0])),
            ..timer.clone()
        })
    } else {
        None
    };
    let next = next.map(|n| EscalationRow { id: 0, status: "pending".into(), ..n });
    Some((level.receivers.clone(), next))
}
