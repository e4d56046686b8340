//! Escalation timers (`escalations` table): the [`EscalationRow`] that `commit_alert_writes`
//! (alerts.rs) starts, cancels and finishes, and the `Store` methods that find the due ones
//! (the alerts lifecycle) and an alert's timers (the alerts API).

use super::{Store, StoreError, dispatch};

/// An escalation timer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EscalationRow {
    pub id: i64,
    pub alert_id: i64,
    /// Policy name (`severity:P1` for the per-severity ones).
    pub policy: String,
    /// Level index (0-based) due next.
    pub level: i64,
    /// Repeat round (0-based).
    pub round: i64,
    /// Due (server clock, epoch ms).
    pub due_at: i64,
    /// pending / done / cancelled.
    pub status: String,
}

impl Store {
    /// Pending escalation timers due at `now`.
    pub async fn due_escalations(&self, now: i64, limit: i64) -> Result<Vec<EscalationRow>, StoreError> {
        dispatch!(self, s => s.due_escalations(now, limit).await)
    }

    /// Every escalation timer of an alert.
    pub async fn escalations_of(&self, alert_id: i64) -> Result<Vec<EscalationRow>, StoreError> {
        dispatch!(self, s => s.escalations_of(alert_id).await)
    }
}

macro_rules! escalation_queries {
    ($store:ty, $db:ty, $row:ty, writer: $writer:ident) => {
        impl $store {
            pub(super) async fn due_escalations(&self, now: i64, limit: i64) -> Result<Vec<EscalationRow>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT id, alert_id, policy, level, round, due_at, status FROM escalations WHERE status = 'pending' AND due_at <= ",
                );
                qb.push_bind(now).push(" ORDER BY due_at, id LIMIT ").push_bind(limit);
                let rows = qb.build().fetch_all(&self.$writer).await?;
                Ok(rows.iter().map(escalation_row).collect())
            }

            pub(super) async fn escalations_of(&self, alert_id: i64) -> Result<Vec<EscalationRow>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT id, alert_id, policy, level, round, due_at, status FROM escalations WHERE alert_id = ",
                );
                qb.push_bind(alert_id).push(" ORDER BY id");
                let rows = qb.build().fetch_all(&self.$writer).await?;
                Ok(rows.iter().map(escalation_row).collect())
            }
        }

        fn escalation_row(r: &$row) -> EscalationRow {
            EscalationRow {
                id: r.get("id"),
                alert_id: r.get("alert_id"),
                policy: r.get("policy"),
                level: r.get("level"),
                round: r.get("round"),
                due_at: r.get("due_at"),
                status: r.get("status"),
            }
        }
    };
}

pub(crate) use escalation_queries;
