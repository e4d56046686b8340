//! Silences (`silences` table): the [`SilenceRow`] and the `Store` methods that create,
//! list and expire them, used by the alerts lifecycle (which counts their hits in
//! `commit_alert_writes`) and the silences API.

use serde_json::{Value, json};

use super::{Store, StoreError, dispatch};
use crate::event::format_rfc3339_ms;

/// A silence.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SilenceRow {
    /// UUID.
    pub id: String,
    /// JSON array of `{name, op, value}`.
    pub matchers: String,
    /// Active from (epoch ms).
    pub starts_at: i64,
    /// Active until.
    pub ends_at: i64,
    /// Who (as given, plus the key id).
    pub created_by: String,
    /// Why.
    pub comment: String,
    /// When created.
    pub created_at: i64,
    /// When expired early by `DELETE`.
    pub expired_at: Option<i64>,
    /// Alerts it held back.
    pub matched: i64,
}

impl SilenceRow {
    /// Active at `now`.
    pub fn active_at(&self, now: i64) -> bool {
        self.starts_at <= now && now < self.ends_at && self.expired_at.is_none_or(|e| e > now)
    }

    /// API shape.
    pub fn to_api_json(&self, now: i64) -> Value {
        let state = if self.active_at(now) {
            "active"
        } else if now < self.starts_at && self.expired_at.is_none() {
            "pending"
        } else {
            "expired"
        };
        json!({"id": self.id, "matchers": serde_json::from_str::<Value>(&self.matchers).unwrap_or(Value::Null),
            "starts_at": format_rfc3339_ms(self.starts_at), "ends_at": format_rfc3339_ms(self.ends_at),
            "created_by": self.created_by, "comment": self.comment,
            "created_at": format_rfc3339_ms(self.created_at), "expired_at": self.expired_at.map(format_rfc3339_ms),
            "matched": self.matched, "state": state})
    }
}

impl Store {
    /// Stores a silence.
    pub async fn insert_silence(&self, silence: &SilenceRow) -> Result<(), StoreError> {
        dispatch!(self, s => s.insert_silence(silence).await)
    }

    /// Every silence, newest first (the newest 10,000).
    pub async fn list_silences(&self) -> Result<Vec<SilenceRow>, StoreError> {
        dispatch!(self, s => s.list_silences(None, None).await)
    }

    pub async fn silence(&self, id: &str) -> Result<Option<SilenceRow>, StoreError> {
        Ok(dispatch!(self, s => s.list_silences(None, Some(id)).await)?.into_iter().next())
    }

    /// Silences not expired at `now` (active or pending).
    pub async fn live_silences(&self, now: i64) -> Result<Vec<SilenceRow>, StoreError> {
        dispatch!(self, s => s.list_silences(Some(now), None).await)
    }

    /// Expires a silence now; false when there is none by that id or it already expired.
    pub async fn expire_silence(&self, id: &str, at: i64) -> Result<bool, StoreError> {
        dispatch!(self, s => s.expire_silence(id, at).await)
    }
}

macro_rules! silence_queries {
    ($store:ty, $db:ty, writer: $writer:ident) => {
        impl $store {
            pub(super) async fn insert_silence(&self, s: &SilenceRow) -> Result<(), StoreError> {
                let mut qb = QueryBuilder::<$db>::new(
                    "INSERT INTO silences (id, matchers, starts_at, ends_at, created_by, comment, created_at, expired_at, matched) ",
                );
                qb.push_values([s], |mut b, s| {
                    b.push_bind(s.id.clone())
                        .push_bind(s.matchers.clone())
                        .push_bind(s.starts_at)
                        .push_bind(s.ends_at)
                        .push_bind(s.created_by.clone())
                        .push_bind(s.comment.clone())
                        .push_bind(s.created_at)
                        .push_bind(s.expired_at)
                        .push_bind(s.matched);
                });
                qb.build().execute(&self.$writer).await?;
                Ok(())
            }

            pub(super) async fn list_silences(
                &self,
                live_at: Option<i64>,
                id: Option<&str>,
            ) -> Result<Vec<SilenceRow>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT id, matchers, starts_at, ends_at, created_by, comment, created_at, expired_at, matched \
                     FROM silences WHERE 1=1",
                );
                if let Some(now) = live_at {
                    qb.push(" AND expired_at IS NULL AND ends_at > ").push_bind(now);
                }
                if let Some(id) = id {
                    qb.push(" AND id = ").push_bind(id.to_owned());
                }
                qb.push(" ORDER BY created_at DESC, id LIMIT 10000");
                let rows = qb.build().fetch_all(&self.$writer).await?;
                Ok(rows
                    .iter()
                    .map(|r| SilenceRow {
                        id: r.get("id"),
                        matchers: r.get("matchers"),
                        starts_at: r.get("starts_at"),
                        ends_at: r.get("ends_at"),
                        created_by: r.get("created_by"),
                        comment: r.get("comment"),
                        created_at: r.get("created_at"),
                        expired_at: r.get("expired_at"),
                        matched: r.get("matched"),
                    })
                    .collect())
            }

            pub(super) async fn expire_silence(&self, id: &str, at: i64) -> Result<bool, StoreError> {
                let mut qb = QueryBuilder::<$db>::new("UPDATE silences SET expired_at = ");
                qb.push_bind(at).push(" WHERE id = ").push_bind(id.to_owned()).push(" AND expired_at IS NULL");
                Ok(qb.build().execute(&self.$writer).await?.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use silence_queries;
