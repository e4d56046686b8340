//! Alert history (`alert_changes` table): the [`AlertChange`] entries that
//! `commit_alert_writes` (alerts.rs) inserts, and the `Store` methods that read them and
//! record the seqs of their chain events, used by the alerts API and `alerts::chain`.

use serde_json::{Value, json};

use super::{Store, StoreError, dispatch};
use crate::event::format_rfc3339_ms;

/// One entry of an alert's history (and of the chain, once `chain_seq` is set).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AlertChange {
    /// Id (0 before stored).
    pub id: i64,
    pub alert_id: i64,
    /// created / repeated / acknowledged / resolved / reopened / escalated / silenced / manual.
    pub action: String,
    /// Key id, `vigil` or `rule:<name>`.
    pub actor: String,
    /// Server clock, epoch ms.
    pub at: i64,
    /// JSON object: what changed (alert id, rule SHA-256, event seqs, status...).
    pub details: String,
    /// Seq of its chain event, once written.
    pub chain_seq: Option<i64>,
}

impl AlertChange {
    pub fn chain_event_id(&self) -> String {
        format!("{}{}", crate::event::ALERT_CHANGE_ID_PREFIX, self.id)
    }

    /// API shape.
    pub fn to_api_json(&self) -> Value {
        json!({"id": self.id, "action": self.action, "actor": self.actor, "at": format_rfc3339_ms(self.at),
            "details": serde_json::from_str::<Value>(&self.details).unwrap_or(Value::Null),
            "chain_seq": self.chain_seq})
    }
}

impl Store {
    /// Records the chain seq of alert changes: `(change id, seq)`.
    pub async fn set_change_seqs(&self, seqs: &[(i64, i64)]) -> Result<(), StoreError> {
        if seqs.is_empty() {
            return Ok(());
        }
        dispatch!(self, s => s.set_change_seqs(seqs).await)
    }

    /// History of one alert, oldest first: its newest 1000 entries (the chain keeps all).
    pub async fn alert_history(&self, alert_id: i64) -> Result<Vec<AlertChange>, StoreError> {
        dispatch!(self, s => s.alert_changes(Some(alert_id), false, 1000).await)
    }

    /// Alert changes not yet written to the chain, oldest first.
    pub async fn unchained_changes(&self, limit: i64) -> Result<Vec<AlertChange>, StoreError> {
        dispatch!(self, s => s.alert_changes(None, true, limit).await)
    }
}

macro_rules! alert_change_queries {
    ($store:ty, $db:ty, writer: $writer:ident) => {
        impl $store {
            pub(super) async fn set_change_seqs(&self, seqs: &[(i64, i64)]) -> Result<(), StoreError> {
                let mut tx = self.$writer.begin().await?;
                for (id, seq) in seqs {
                    let mut qb = QueryBuilder::<$db>::new("UPDATE alert_changes SET chain_seq = ");
                    qb.push_bind(*seq).push(" WHERE id = ").push_bind(*id);
                    qb.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            pub(super) async fn alert_changes(
                &self,
                alert_id: Option<i64>,
                unchained: bool,
                limit: i64,
            ) -> Result<Vec<AlertChange>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT id, alert_id, action, actor, at, details, chain_seq FROM alert_changes WHERE 1=1",
                );
                if let Some(a) = alert_id {
                    qb.push(" AND alert_id = ").push_bind(a);
                }
                if unchained {
                    qb.push(" AND chain_seq IS NULL");
                }
                // One alert's history: the newest `limit` entries; the unchained backlog:
                // the oldest.
                qb.push(if alert_id.is_some() { " ORDER BY id DESC LIMIT " } else { " ORDER BY id LIMIT " })
                    .push_bind(limit);
                let mut rows = qb.build().fetch_all(&self.$writer).await?;
                if alert_id.is_some() {
                    rows.reverse();
                }
                Ok(rows
                    .iter()
                    .map(|r| AlertChange {
                        id: r.get("id"),
                        alert_id: r.get("alert_id"),
                        action: r.get("action"),
                        actor: r.get("actor"),
                        at: r.get("at"),
                        details: r.get("details"),
                        chain_seq: r.get("chain_seq"),
                    })
                    .collect())
            }
        }
    };
}

pub(crate) use alert_change_queries;
