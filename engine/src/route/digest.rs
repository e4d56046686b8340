//! The daily digest of the [`Outbox`]: once a day, each `digest` receiver sends the P4
//! alerts held for it and the daily security report (from the store's event and alert
//! statistics) through its `via` receiver, as one notification.

use serde_json::{Value, json};

use super::Outbox;
use super::receivers::Kind;
use crate::store::{NotificationFilter, NotificationRow, NotificationStatus, StatsFilter};

impl Outbox {
    /// Sends each digest that is due: once a day at its `at` time (UTC), through its `via`
    /// receiver: the P4 alerts held for it and the daily security report.
    pub(super) async fn digests(&self) -> Result<(), crate::store::StoreError> {
        let now = self.clock.now_ms();
        for r in self.receivers.values().filter(|r| r.kind == Kind::Digest) {
            let Some(via) = &r.via else { continue };
            let day = 86_400_000;
            let mut last_due = now - now.rem_euclid(day) + r.at_ms;
            if last_due > now {
                last_due -= day;
            }
            // Once per digest and day (its key names both); the very first one is the first
            // `at` after the server started.
            let day_name = crate::event::format_rfc3339_ms(last_due);
            let key = format!("digest-{}-{}", r.name, &day_name[..10]);
            if self.store.notification_by_key(&key).await?.is_some() {
                continue;
            }
            if self.store.last_notification_at(via, "digest").await?.is_none() && last_due < self.started_at {
                continue;
            }
            let held = self
                .store
                .list_notifications(&NotificationFilter {
                    status: Some(NotificationStatus::Digest),
                    receiver: Some(r.name.clone()),
                    limit: 1000,
                    ..Default::default()
                })
                .await?;
            let mut held = held;
            self.hydrate(&mut held).await;
            let items: Vec<Value> = held
                .iter()
                .rev()
                .map(|n| {
                    let p: Value = serde_json::from_str(&n.payload).unwrap_or(Value::Null);
                    json!({"notification_id": n.idempotency_key, "kind": n.kind, "alert": p["alert"]})
                })
                .collect();
            let report = self.daily_report(last_due - day, last_due).await?;
            let mut digest = vec![NotificationRow {
                receiver: via.clone(),
                kind: "digest".into(),
                idempotency_key: key,
                payload: json!({"day": &day_name[..10], "digest": r.name, "items": items, "report": report})
                    .to_string(),
                status: NotificationStatus::Pending,
                next_attempt_at: now,
                created_at: now,
                updated_at: now,
                ..Default::default()
            }];
            let ids: Vec<i64> = held.iter().map(|n| n.id).collect();
            self.store.replace_notifications(&mut digest, &ids, NotificationStatus::Digested, now).await?;
            tracing::info!(digest = %r.name, alerts = ids.len(), "Daily digest queued");
        }
        Ok(())
    }

    /// The daily security report: events by category, failure rate, alerts by severity and
    /// rule, MTTA/MTTR, top IPs and users, for `[from, to)`.
    pub async fn daily_report(&self, from: i64, to: i64) -> Result<Value, crate::store::StoreError> {
        let stats = self
            .store
            .stats(&StatsFilter {
                since: Some(from),
                until: Some(to),
                organization_id: None,
                category: None,
                bucket_ms: 3_600_000,
                top: 10,
                origin: crate::store::Origin::All,
            })
            .await?;
        let alerts = self.store.alert_stats(Some(from)).await?.to_json();
        Ok(json!({
            "from": crate::event::format_rfc3339_ms(from), "to": crate::event::format_rfc3339_ms(to),
            "events": {"total": stats.total, "by_category": stats.by_category, "failure_rate": stats.failure_rate,
                "high_risk": stats.high_risk, "top_ips": stats.top_ips, "top_users": stats.top_users},
            "alerts": alerts,
        }))
    }
}
