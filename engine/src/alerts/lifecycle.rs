//! What people do to an alert: acknowledge, resolve with a disposition, reopen, and notes
//! added to its history (by `respond` for decisions). Each change owes follow-up
//! notifications to the receivers that take them (asked of the [`Routing`](super::Routing))
//! among those the alert was delivered to (or is on its way to), through the same outbox as
//! every notification; each says who did it and with what comment (`extra`).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{AlertError, AlertService, FollowUp, silence};
use crate::store::{
    AlertChange, AlertRow, AlertStatus, AlertWrite, NotificationFilter, NotificationRow, NotificationStatus,
};

impl AlertService {
    async fn load(&self, id: i64) -> Result<AlertRow, AlertError> {
        self.inner.store.alert(id).await?.ok_or(AlertError::NotFound(id))
    }

    /// The follow-ups of a change: to each receiver that takes `what` and that was sent a
    /// notification of this alert which was delivered, is still on its way (pending, its
    /// later rows wait behind it) or went out in a storm summary. A receiver whose every
    /// notification of the alert was refused or dead-lettered never saw it, and a receiver
    /// the alert was never routed or escalated to gets nothing.
    async fn follow_ups(
        &self,
        alert: &AlertRow,
        what: FollowUp,
        now: i64,
        extra: Value,
    ) -> Result<Vec<NotificationRow>, AlertError> {
        let sent = self
            .inner
            .store
            .list_notifications(&NotificationFilter { alert_id: Some(alert.id), limit: 10_000, ..Default::default() })
            .await?;
        let receivers: BTreeSet<String> = sent
            .into_iter()
            .filter(|n| {
                matches!(
                    n.status,
                    NotificationStatus::Delivered | NotificationStatus::Pending | NotificationStatus::Folded
                )
            })
            .map(|n| n.receiver)
            .filter(|r| self.inner.routing.follows_up(r, what))
            .collect();
        let receivers: Vec<String> = receivers.into_iter().collect();
        Ok(self.notifications(what.kind(), &receivers, now, extra))
    }

    /// Who changed the alert, for follow-ups: the key id and, when the actor is an API key,
    /// its name (read now: a key renamed or removed later does not change what was sent).
    async fn actor_extra(&self, actor: &str, comment: &Option<String>) -> Value {
        let name = match self.inner.store.list_keys().await {
            Ok(keys) => keys.into_iter().find(|k| k.id == actor).map(|k| k.name).filter(|n| !n.is_empty()),
            Err(e) => {
                tracing::warn!(error = %e, "Could not read key names for a follow-up; the key id is used");
                None
            }
        };
        json!({"actor": actor, "actor_name": name, "comment": comment})
    }

    /// Acknowledges an open alert.
    pub async fn acknowledge(&self, id: i64, actor: &str, comment: Option<String>) -> Result<AlertRow, AlertError> {
        let _one = self.inner.lock.lock().await;
        let now = self.now();
        let mut alert = self.load(id).await?;
        if alert.status != AlertStatus::Open {
            return Err(AlertError::Conflict(format!(
                "alert {id} is {}, only an open alert can be acknowledged",
                alert.status
            )));
        }
        alert.status = AlertStatus::Acknowledged;
        alert.acked_by = Some(actor.into());
        alert.acked_at = Some(now);
        let extra = self.actor_extra(actor, &comment).await;
        let notifications = self.follow_ups(&alert, FollowUp::Acknowledge, now, extra).await?;
        let change = AlertChange {
            action: "acknowledged".into(),
            actor: actor.into(),
            at: now,
            details: json!({"comment": comment}).to_string(),
            ..Default::default()
        };
        let mut writes =
            vec![AlertWrite { alert, change, notifications, cancel_escalations: true, ..Default::default() }];
        self.commit(&mut writes).await?;
        Ok(writes.remove(0).alert)
    }

    /// Resolves an open or acknowledged alert with a disposition.
    pub async fn resolve(
        &self,
        id: i64,
        actor: &str,
        disposition: &str,
        comment: Option<String>,
    ) -> Result<AlertRow, AlertError> {
        if !matches!(disposition, "true_positive" | "false_positive" | "benign") {
            return Err(AlertError::Invalid("`disposition` must be true_positive, false_positive or benign".into()));
        }
        let _one = self.inner.lock.lock().await;
        let now = self.now();
        let mut alert = self.load(id).await?;
        if alert.status == AlertStatus::Resolved {
            return Err(AlertError::Conflict(format!("alert {id} is already resolved")));
        }
        alert.status = AlertStatus::Resolved;
        alert.disposition = Some(disposition.into());
        alert.resolved_by = Some(actor.into());
        alert.resolved_at = Some(now);
        let mut extra = self.actor_extra(actor, &comment).await;
        extra["disposition"] = json!(disposition);
        let notifications = self.follow_ups(&alert, FollowUp::Resolve, now, extra).await?;
        let change = AlertChange {
            action: "resolved".into(),
            actor: actor.into(),
            at: now,
            details: json!({"disposition": disposition, "comment": comment}).to_string(),
            ..Default::default()
        };
        let mut writes =
            vec![AlertWrite { alert, change, notifications, cancel_escalations: true, ..Default::default() }];
        self.commit(&mut writes).await?;
        Ok(writes.remove(0).alert)
    }

    /// Adds an entry to an alert's history without changing the alert (a decision that
    /// goes with it was issued, expired or lifted); it is written to the chain like any.
    pub async fn note(&self, id: i64, action: &str, actor: &str, details: Value) -> Result<(), AlertError> {
        let _one = self.inner.lock.lock().await;
        let now = self.now();
        let alert = self.load(id).await?;
        let change = AlertChange {
            action: action.into(),
            actor: actor.into(),
            at: now,
            details: details.to_string(),
            ..Default::default()
        };
        let mut writes = vec![AlertWrite { alert, change, ..Default::default() }];
        self.commit(&mut writes).await
    }

    /// Reopens an acknowledged or resolved alert: it is open again, notified again and its
    /// escalation starts over.
    pub async fn reopen(&self, id: i64, actor: &str, comment: Option<String>) -> Result<AlertRow, AlertError> {
        let _one = self.inner.lock.lock().await;
        let now = self.now();
        let mut alert = self.load(id).await?;
        if alert.status == AlertStatus::Open {
            return Err(AlertError::Conflict(format!("alert {id} is already open")));
        }
        alert.status = AlertStatus::Open;
        alert.disposition = None;
        alert.resolved_by = None;
        alert.resolved_at = None;
        // The acknowledgement stays on record (time to acknowledge counts from creation to
        // the latest acknowledgement); the next ack replaces it.
        let mut write = AlertWrite { cancel_escalations: true, ..Default::default() };
        // Silences are looked at again: the one that held it may have ended, another begun.
        let silences = self.active_silences(now).await?;
        alert.silenced_by = silence::first_match(&silences, &alert);
        if alert.silenced_by.is_none() {
            let routed = self.inner.routing.receivers_for(&alert);
            let receivers = routed.receivers;
            alert.escalation_policy = routed.policy;
            alert.receivers = serde_json::to_string(&receivers).unwrap_or_else(|_| "[]".into());
            alert.last_notified_at = Some(now);
            let mut extra = self.actor_extra(actor, &comment).await;
            extra["reopened"] = json!(true);
            write.notifications = self.notifications("trigger", &receivers, now, extra);
            write.escalations.extend(self.inner.routing.escalation_start(&alert, now));
        }
        write.change = AlertChange {
            action: "reopened".into(),
            actor: actor.into(),
            at: now,
            details: json!({"comment": comment}).to_string(),
            ..Default::default()
        };
        write.alert = alert;
        let mut writes = vec![write];
        self.commit(&mut writes).await?;
        Ok(writes.remove(0).alert)
    }
}
