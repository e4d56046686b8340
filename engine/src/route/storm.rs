//! Storm control for the [`Outbox`]: past `[outbox] storm_threshold` deliveries to one
//! receiver within a minute, the alert notifications left over fold into one summary
//! notification (written to the store in one transaction with the folding).

use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::Outbox;
use crate::store::{NotificationRow, NotificationStatus};

impl Outbox {
    /// Storm control: past `storm_threshold` deliveries to one receiver within a minute,
    /// the rest of the alert notifications fold into one summary message.
    pub(super) async fn storm_control(&self, name: &str, rows: Vec<NotificationRow>, now: i64) -> Vec<NotificationRow> {
        let threshold = self.config.storm_threshold as usize;
        if threshold == 0 {
            return rows;
        }
        let recent = {
            let mut sent = self.sent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let q = sent.entry(name.to_owned()).or_default();
            while q.front().is_some_and(|t| now - t >= 60_000) {
                q.pop_front();
            }
            q.len()
        };
        let room = threshold.saturating_sub(recent);
        // Only never-attempted rows fold: one already tried may have reached the receiver
        // (a timeout after it accepted), and must keep its idempotency key.
        let foldable =
            |n: &NotificationRow| n.attempts == 0 && matches!(n.kind.as_str(), "trigger" | "repeat" | "escalation");
        if rows.iter().filter(|n| foldable(n)).count() <= room {
            return rows;
        }
        let (mut keep, mut fold) = (Vec::new(), Vec::new());
        let mut allowed = room;
        for n in rows {
            if !foldable(&n) {
                keep.push(n);
            } else if allowed > 0 {
                allowed -= 1;
                keep.push(n);
            } else {
                fold.push(n);
            }
        }
        if fold.is_empty() {
            return keep;
        }
        let items: Vec<Value> = fold
            .iter()
            .map(|n| {
                let p: Value = serde_json::from_str(&n.payload).unwrap_or(Value::Null);
                json!({"notification_id": n.idempotency_key, "kind": n.kind, "alert": p["alert"]})
            })
            .collect();
        let mut summary = vec![NotificationRow {
            receiver: name.to_owned(),
            kind: "summary".into(),
            idempotency_key: format!("summary-{}-{}", name, fold[0].id),
            payload: json!({"items": items, "folded": fold.len()}).to_string(),
            status: NotificationStatus::Pending,
            next_attempt_at: now,
            created_at: now,
            updated_at: now,
            ..Default::default()
        }];
        let ids: Vec<i64> = fold.iter().map(|n| n.id).collect();
        // The summary and the folding of the originals are one transaction.
        if let Err(e) = self.store.replace_notifications(&mut summary, &ids, NotificationStatus::Folded, now).await {
            tracing::warn!(error = %e, "Could not store a storm summary; notifications stay pending");
            return keep;
        }
        self.stats.folded.fetch_add(ids.len() as u64, Ordering::Relaxed);
        tracing::info!(receiver = name, folded = ids.len(), "Storm control: notifications folded into one summary");
        keep.extend(summary);
        keep
    }
}
