//! The notification outbox (`notifications` table): the [`NotificationRow`] owed to a
//! receiver, its filter, and the `Store` methods that store, list and update deliveries,
//! used by `route` (delivery, storm summaries, digests) and the API. The
//! `insert_notifications` helper of `outbox_queries!` also serves `commit_alert_writes`.

use serde_json::{Value, json};

use super::{Store, StoreError, dispatch};
use crate::event::format_rfc3339_ms;

text_enum! {
    /// Where a notification is in its delivery (`notifications.status`).
    #[derive(Default)]
    pub enum NotificationStatus {
        /// Waiting for (another) delivery attempt.
        #[default]
        Pending = "pending",
        /// The receiver took it.
        Delivered = "delivered",
        /// The last attempt failed; retried.
        Failed = "failed",
        /// Out of attempts.
        Dead = "dead",
        /// Folded into a storm summary.
        Folded = "folded",
        /// Held for the daily digest.
        Digest = "digest",
        /// Went out in a digest.
        Digested = "digested",
    }
}

/// A message owed to a receiver (the outbox).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NotificationRow {
    /// Id (0 before stored).
    pub id: i64,
    /// The alert it is about (none for summaries and digests).
    pub alert_id: Option<i64>,
    /// Receiver name.
    pub receiver: String,
    /// trigger / repeat / acknowledge / resolve / escalation / summary / digest.
    pub kind: String,
    /// Stable across retries and restarts: the Standard Webhooks `webhook-id`. Filled by
    /// the store when empty (`n<change id>-<receiver>`).
    pub idempotency_key: String,
    /// JSON: what to render (alert snapshot, occurrences, summary items...).
    pub payload: String,
    pub status: NotificationStatus,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// Not before (server clock, epoch ms).
    pub next_attempt_at: i64,
    /// Created (server clock).
    pub created_at: i64,
    /// Last status change.
    pub updated_at: i64,
    /// When delivered.
    pub delivered_at: Option<i64>,
    /// Last delivery error (never holds a secret: URLs are not included).
    pub last_error: Option<String>,
}

impl NotificationRow {
    /// API shape.
    pub fn to_api_json(&self) -> Value {
        json!({"id": self.id, "alert_id": self.alert_id, "receiver": self.receiver, "kind": self.kind,
            "idempotency_key": self.idempotency_key, "status": self.status.as_str(), "attempts": self.attempts,
            "next_attempt_at": format_rfc3339_ms(self.next_attempt_at),
            "created_at": format_rfc3339_ms(self.created_at), "updated_at": format_rfc3339_ms(self.updated_at),
            "delivered_at": self.delivered_at.map(format_rfc3339_ms), "last_error": self.last_error})
    }
}

/// Filters of `GET /v1/notifications`.
#[derive(Debug, Clone, Default)]
pub struct NotificationFilter {
    pub status: Option<NotificationStatus>,
    pub receiver: Option<String>,
    pub alert_id: Option<i64>,
    /// Only rows with an id below this one (the cursor of the next page).
    pub before_id: Option<i64>,
    /// Exactly this idempotency key.
    pub idempotency_key: Option<String>,
    /// Max rows.
    pub limit: i64,
}

impl Store {
    /// In one transaction: stores `rows` (a storm summary, a digest) and sets the status of
    /// the notifications `ids` they replace (`folded`, `digested`).
    pub async fn replace_notifications(
        &self,
        rows: &mut [NotificationRow],
        ids: &[i64],
        status: NotificationStatus,
        at: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.replace_notifications(rows, ids, status, at).await)
    }

    /// Stores `row` unless a notification with its idempotency key exists (one statement:
    /// two writers racing for the same key store it once). Returns whether it was stored
    /// (`row.id` is then set).
    pub async fn insert_notification_once(&self, row: &mut NotificationRow) -> Result<bool, StoreError> {
        dispatch!(self, s => s.insert_notification_once(row).await)
    }

    /// Notifications matching a filter, newest first.
    pub async fn list_notifications(&self, filter: &NotificationFilter) -> Result<Vec<NotificationRow>, StoreError> {
        dispatch!(self, s => s.list_notifications(filter, None).await)
    }

    /// Pending notifications due at `now` (for one receiver, or any) that no node holds a
    /// live claim on, oldest first (the delivery worker claims its rows instead:
    /// `claim_due_notifications`).
    pub async fn due_notifications(
        &self,
        receiver: Option<&str>,
        now: i64,
        limit: i64,
    ) -> Result<Vec<NotificationRow>, StoreError> {
        let filter = NotificationFilter {
            status: Some(NotificationStatus::Pending),
            receiver: receiver.map(str::to_owned),
            limit,
            ..Default::default()
        };
        dispatch!(self, s => s.list_notifications(&filter, Some(now)).await)
    }

    pub async fn notification(&self, id: i64) -> Result<Option<NotificationRow>, StoreError> {
        let filter = NotificationFilter { before_id: Some(id.saturating_add(1)), limit: 1, ..Default::default() };
        Ok(self.list_notifications(&filter).await?.into_iter().find(|n| n.id == id))
    }

    /// The notification with this idempotency key.
    pub async fn notification_by_key(&self, key: &str) -> Result<Option<NotificationRow>, StoreError> {
        let filter = NotificationFilter { idempotency_key: Some(key.to_owned()), limit: 1, ..Default::default() };
        Ok(self.list_notifications(&filter).await?.into_iter().next())
    }

    /// Saves a notification's delivery state and releases any claim on it.
    pub async fn update_notification(&self, n: &NotificationRow) -> Result<(), StoreError> {
        dispatch!(self, s => s.update_notification(n).await)
    }

    /// Sets the status of several notifications (releasing their claims).
    pub async fn set_notification_status(
        &self,
        ids: &[i64],
        status: NotificationStatus,
        at: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, s => s.set_notification_status(ids, status, at).await)
    }

    /// When the newest notification of `kind` for `receiver` was created.
    pub async fn last_notification_at(&self, receiver: &str, kind: &str) -> Result<Option<i64>, StoreError> {
        dispatch!(self, s => s.last_notification_at(receiver, kind).await)
    }

    /// Notifications in the outbox by (receiver, status, count): the stored texts, counted as
    /// they are.
    pub async fn notification_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        dispatch!(self, s => s.notification_counts().await)
    }
}

/// Columns of `notifications` (`notification_row` reads them by name).
macro_rules! notification_columns {
    () => {
        "id, alert_id, receiver, kind, idempotency_key, payload, status, attempts, next_attempt_at, created_at, \
         updated_at, delivered_at, last_error"
    };
}

macro_rules! outbox_queries {
    ($store:ty, $db:ty, $row:ty, writer: $writer:ident, reader: $reader:ident) => {
        impl $store {
            pub(super) async fn replace_notifications(
                &self,
                rows: &mut [NotificationRow],
                ids: &[i64],
                status: NotificationStatus,
                at: i64,
            ) -> Result<(), StoreError> {
                let mut tx = self.$writer.begin().await?;
                insert_notifications(&mut tx, rows).await?;
                if !ids.is_empty() {
                    let mut qb = QueryBuilder::<$db>::new("UPDATE notifications SET claimed_by = NULL, claim_until = NULL, status = ");
                    qb.push_bind(status.as_str()).push(", updated_at = ").push_bind(at).push(" WHERE id IN ");
                    crate::store::push_ids(&mut qb, ids);
                    qb.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            pub(super) async fn insert_notification_once(&self, n: &mut NotificationRow) -> Result<bool, StoreError> {
                let mut qb = insert_notification(n);
                qb.push(" ON CONFLICT (idempotency_key) DO NOTHING RETURNING id");
                let id: Option<i64> = qb.build_query_scalar().fetch_optional(&self.$writer).await?;
                if let Some(id) = id {
                    n.id = id;
                }
                Ok(id.is_some())
            }

            pub(super) async fn list_notifications(&self, f: &NotificationFilter, due_before: Option<i64>) -> Result<Vec<NotificationRow>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(concat!("SELECT ", notification_columns!(), " FROM notifications WHERE 1=1"));
                if let Some(s) = f.status {
                    qb.push(" AND status = ").push_bind(s.as_str());
                }
                if let Some(r) = &f.receiver {
                    qb.push(" AND receiver = ").push_bind(r.clone());
                }
                if let Some(a) = f.alert_id {
                    qb.push(" AND alert_id = ").push_bind(a);
                }
                if let Some(b) = f.before_id {
                    qb.push(" AND id < ").push_bind(b);
                }
                if let Some(k) = &f.idempotency_key {
                    qb.push(" AND idempotency_key = ").push_bind(k.clone());
                }
                if let Some(due) = due_before {
                    // Due, and no node holds a live claim on it (delivering it now).
                    qb.push(" AND next_attempt_at <= ")
                        .push_bind(due)
                        .push(" AND (claim_until IS NULL OR claim_until <= ")
                        .push(DB_NOW_MS)
                        .push(") ORDER BY id ASC LIMIT ");
                } else {
                    qb.push(" ORDER BY id DESC LIMIT ");
                }
                qb.push_bind(f.limit);
                let rows = qb.build().fetch_all(&self.$writer).await?;
                rows.iter().map(notification_row).collect()
            }

            pub(super) async fn update_notification(&self, n: &NotificationRow) -> Result<(), StoreError> {
                let mut qb = QueryBuilder::<$db>::new("UPDATE notifications SET claimed_by = NULL, claim_until = NULL, status = ");
                qb.push_bind(n.status.as_str())
                    .push(", attempts = ")
                    .push_bind(n.attempts)
                    .push(", next_attempt_at = ")
                    .push_bind(n.next_attempt_at)
                    .push(", updated_at = ")
                    .push_bind(n.updated_at)
                    .push(", created_at = ")
                    .push_bind(n.created_at)
                    .push(", delivered_at = ")
                    .push_bind(n.delivered_at)
                    .push(", last_error = ")
                    .push_bind(n.last_error.clone())
                    .push(" WHERE id = ")
                    .push_bind(n.id);
                qb.build().execute(&self.$writer).await?;
                Ok(())
            }

            pub(super) async fn set_notification_status(&self, ids: &[i64], status: NotificationStatus, at: i64) -> Result<(), StoreError> {
                if ids.is_empty() {
                    return Ok(());
                }
                let mut qb = QueryBuilder::<$db>::new("UPDATE notifications SET claimed_by = NULL, claim_until = NULL, status = ");
                qb.push_bind(status.as_str()).push(", updated_at = ").push_bind(at).push(" WHERE id IN ");
                crate::store::push_ids(&mut qb, ids);
                qb.build().execute(&self.$writer).await?;
                Ok(())
            }

            pub(super) async fn last_notification_at(&self, receiver: &str, kind: &str) -> Result<Option<i64>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new("SELECT MAX(created_at) FROM notifications WHERE receiver = ");
                qb.push_bind(receiver.to_owned()).push(" AND kind = ").push_bind(kind.to_owned());
                Ok(qb.build_query_scalar::<Option<i64>>().fetch_one(&self.$writer).await?)
            }

            pub(super) async fn notification_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
                let rows = QueryBuilder::<$db>::new(
                    "SELECT receiver, status, COUNT(*) AS n FROM notifications GROUP BY receiver, status ORDER BY receiver, status",
                )
                .build()
                // The read pool: `/metrics` asks, and must never queue behind the writer.
                .fetch_all(&self.$reader)
                .await?;
                Ok(rows.iter().map(|r| (r.get("receiver"), r.get("status"), r.get("n"))).collect())
            }
        }

        /// `INSERT INTO notifications ... VALUES (...)` for one row; the caller adds its
        /// conflict clause and `RETURNING id`.
        fn insert_notification(n: &NotificationRow) -> QueryBuilder<$db> {
            let mut qb = QueryBuilder::<$db>::new(
                "INSERT INTO notifications (alert_id, receiver, kind, idempotency_key, payload, status, attempts, \
                 next_attempt_at, created_at, updated_at, delivered_at, last_error) ",
            );
            qb.push_values([n], |mut b, n| {
                b.push_bind(n.alert_id)
                    .push_bind(n.receiver.clone())
                    .push_bind(n.kind.clone())
                    .push_bind(n.idempotency_key.clone())
                    .push_bind(n.payload.clone())
                    .push_bind(n.status.as_str())
                    .push_bind(n.attempts)
                    .push_bind(n.next_attempt_at)
                    .push_bind(n.created_at)
                    .push_bind(n.updated_at)
                    .push_bind(n.delivered_at)
                    .push_bind(n.last_error.clone());
            });
            qb
        }

        async fn insert_notifications(
            tx: &mut sqlx::Transaction<'_, $db>,
            rows: &mut [NotificationRow],
        ) -> Result<(), StoreError> {
            for n in rows.iter_mut() {
                let mut qb = insert_notification(n);
                qb.push(" RETURNING id");
                n.id = qb.build_query_scalar().fetch_one(&mut **tx).await?;
            }
            Ok(())
        }

        fn notification_row(r: &$row) -> Result<NotificationRow, StoreError> {
            let c = Columns::new(r, "notifications")?;
            Ok(NotificationRow {
                id: c.id(),
                alert_id: c.get("alert_id")?,
                receiver: c.get("receiver")?,
                kind: c.get("kind")?,
                idempotency_key: c.get("idempotency_key")?,
                payload: c.get("payload")?,
                status: c.parse("status", NotificationStatus::parse, NotificationStatus::names())?,
                attempts: c.get("attempts")?,
                next_attempt_at: c.get("next_attempt_at")?,
                created_at: c.get("created_at")?,
                updated_at: c.get("updated_at")?,
                delivered_at: c.get("delivered_at")?,
                last_error: c.get("last_error")?,
            })
        }
    };
}

pub(crate) use {notification_columns, outbox_queries};
