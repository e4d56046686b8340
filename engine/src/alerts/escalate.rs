//! Notification bookkeeping over time, run by the `route` outbox's timer task: reminders
//! of open alerts every `[alerts] repeat_interval_secs`, and the escalation timers stored
//! with each alert, whose levels the [`Routing`](super::Routing) decides.

use serde_json::json;

use super::{AlertError, AlertService, FollowUp, silence};
use crate::store::{AlertChange, AlertRow, AlertStatus, AlertWrite};

impl AlertService {
    /// Notifies again every open alert last notified `[alerts] repeat_interval_secs` ago or
    /// more (none when the interval is 0); returns how many were reminded.
    pub async fn remind_due(&self) -> Result<usize, AlertError> {
        let interval = self.inner.config.repeat_interval_secs as i64 * 1000;
        if interval == 0 {
            return Ok(0);
        }
        let _one = self.inner.lock.lock().await;
        let now = self.now();
        let filter = crate::store::AlertFilter {
            status: Some(AlertStatus::Open),
            notified_before: Some(now - interval),
            limit: 100,
            ..Default::default()
        };
        let due = self.inner.store.list_alerts(&filter).await?;
        let silences = self.active_silences(now).await?;
        let mut writes = Vec::with_capacity(due.len());
        let mut nobody = Vec::new();
        for mut alert in due {
            let receivers = self.reminder_receivers(&alert);
            let silenced = silence::first_match(&silences, &alert).is_some();
            if receivers.is_empty() || silenced {
                // Nothing to send now: only the clock of the next reminder moves.
                nobody.push(alert.id);
                continue;
            }
            let extra = json!({"occurrences": alert.count, "reason": "repeat_interval"});
            let notifications = self.notifications("repeat", &receivers, now, extra);
            // The claim: stored only if no other node reminded it since it was read.
            let reminded_from = alert.last_notified_at;
            alert.last_notified_at = Some(now);
            let change = AlertChange {
                action: "reminded".into(),
                actor: "vigil".into(),
                at: now,
                details: json!({"receivers": receivers, "interval_secs": interval / 1000}).to_string(),
                ..Default::default()
            };
            writes.push(AlertWrite { alert, change, notifications, reminded_from, ..Default::default() });
        }
        self.inner.store.touch_notified(&nobody, now).await?;
        self.commit(&mut writes).await?;
        Ok(writes.iter().filter(|w| !w.skipped).count())
    }

    /// The receivers of an alert's first notification that take reminders (not digests).
    pub(super) fn reminder_receivers(&self, alert: &AlertRow) -> Vec<String> {
        alert.receiver_list().into_iter().filter(|r| self.inner.routing.follows_up(r, FollowUp::Reminder)).collect()
    }

    /// Runs the escalation timers due now; returns how many fired. Each write claims its
    /// timer (`finished_escalation`): with several nodes, only one fires a given timer.
    pub async fn escalate_due(&self) -> Result<usize, AlertError> {
        let _one = self.inner.lock.lock().await;
        let now = self.now();
        let due = self.inner.store.due_escalations(now, 100).await?;
        let silences = if due.is_empty() { Vec::new() } else { self.active_silences(now).await? };
        let mut writes = Vec::new();
        for timer in due {
            let Some(alert) = self.inner.store.alert(timer.alert_id).await? else { continue };
            let step = (alert.status == AlertStatus::Open)
                .then(|| self.inner.routing.escalation_step(&timer, &alert))
                .flatten();
            let Some((mut receivers, next)) = step else {
                // Not open any more (or the policy is gone): the timer stops.
                let change = AlertChange {
                    action: "escalation_stopped".into(),
                    actor: "vigil".into(),
                    at: now,
                    details: json!({"policy": timer.policy, "level": timer.level, "status": alert.status.as_str()})
                        .to_string(),
                    ..Default::default()
                };
                writes.push(AlertWrite { alert, change, finished_escalation: Some(timer.id), ..Default::default() });
                continue;
            };
            if receivers.is_empty() {
                receivers = alert.receiver_list();
            }
            // A silence that began since holds this level back (the timer goes on).
            let silenced = silence::first_match(&silences, &alert);
            if silenced.is_some() {
                receivers.clear();
            }
            let extra = json!({"policy": timer.policy, "level": timer.level + 1, "round": timer.round + 1});
            let notifications = self.notifications("escalation", &receivers, now, extra);
            let change = AlertChange {
                action: "escalated".into(),
                actor: "vigil".into(),
                at: now,
                details: json!({"policy": timer.policy, "level": timer.level + 1, "round": timer.round + 1,
                    "receivers": receivers, "due_at": timer.due_at, "silenced_by": silenced})
                .to_string(),
                ..Default::default()
            };
            writes.push(AlertWrite {
                alert,
                change,
                notifications,
                escalations: next.into_iter().collect(),
                finished_escalation: Some(timer.id),
                ..Default::default()
            });
        }
        self.commit(&mut writes).await?;
        Ok(writes.iter().filter(|w| !w.skipped && w.change.action == "escalated").count())
    }
}
