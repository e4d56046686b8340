//! Allowlist entries added through the API (`allowlist`, migration 0012): the [`AllowRow`]
//! and the `Store` methods that add, remove and list them, generated for both backends by
//! [`allowlist_queries!`] (invoked in `sqlite.rs` and `postgres.rs`). What the entries do
//! (refusing decisions on allowed values) lives in `crate::respond`.

use vigil_sdk::Scope;

use super::{Store, StoreError, dispatch};

/// One allowlist entry as stored (entries from the API only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowRow {
    /// UUID.
    pub id: String,
    pub scope: Scope,
    /// Normalised (for `ip`, a network in canonical text).
    pub value: String,
    /// Why (required).
    pub reason: String,
    /// Epoch ms; it stops applying then (`None`: until removed).
    pub expires_at: Option<i64>,
    /// Epoch ms.
    pub created_at: i64,
    /// The key that added it.
    pub created_by: String,
    /// When `DELETE` removed it.
    pub removed_at: Option<i64>,
    /// The key that removed it.
    pub removed_by: Option<String>,
}

impl Store {
    /// Stores a new entry.
    pub async fn insert_allow_entry(&self, row: &AllowRow) -> Result<(), StoreError> {
        dispatch!(self, s => s.insert_allow_entry(row).await)
    }

    /// Marks an entry removed; false when there is none by that id or it was removed already.
    pub async fn remove_allow_entry(&self, id: &str, at: i64, by: &str) -> Result<bool, StoreError> {
        dispatch!(self, s => s.remove_allow_entry(id, at, by).await)
    }

    /// Entries, newest first (at most `limit`): only those not removed and not expired at
    /// `live_at` when given, else every one. A row that cannot be read is its own error.
    pub async fn list_allow_entries(
        &self,
        live_at: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Result<AllowRow, StoreError>>, StoreError> {
        dispatch!(self, s => s.list_allow_entries(live_at, None, limit).await)
    }

    /// One entry, removed or not.
    pub async fn allow_entry(&self, id: &str) -> Result<Option<AllowRow>, StoreError> {
        dispatch!(self, s => s.list_allow_entries(None, Some(id), 1).await)?.into_iter().next().transpose()
    }
}

macro_rules! allowlist_queries {
    ($store:ty, $db:ty, writer: $writer:ident) => {
        impl $store {
            pub(super) async fn insert_allow_entry(&self, a: &AllowRow) -> Result<(), StoreError> {
                let mut qb = QueryBuilder::<$db>::new(
                    "INSERT INTO allowlist (id, scope, value, reason, expires_at, created_at, created_by) ",
                );
                qb.push_values([a], |mut b, a| {
                    b.push_bind(a.id.clone())
                        .push_bind(a.scope.as_str())
                        .push_bind(a.value.clone())
                        .push_bind(a.reason.clone())
                        .push_bind(a.expires_at)
                        .push_bind(a.created_at)
                        .push_bind(a.created_by.clone());
                });
                qb.build().execute(&self.$writer).await?;
                Ok(())
            }

            pub(super) async fn remove_allow_entry(&self, id: &str, at: i64, by: &str) -> Result<bool, StoreError> {
                let mut qb = QueryBuilder::<$db>::new("UPDATE allowlist SET removed_at = ");
                qb.push_bind(at)
                    .push(", removed_by = ")
                    .push_bind(by.to_owned())
                    .push(" WHERE id = ")
                    .push_bind(id.to_owned())
                    .push(" AND removed_at IS NULL");
                Ok(qb.build().execute(&self.$writer).await?.rows_affected() == 1)
            }

            pub(super) async fn list_allow_entries(
                &self,
                live_at: Option<i64>,
                id: Option<&str>,
                limit: i64,
            ) -> Result<Vec<Result<AllowRow, StoreError>>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT id, scope, value, reason, expires_at, created_at, created_by, removed_at, removed_by \
                     FROM allowlist WHERE 1=1",
                );
                if let Some(now) = live_at {
                    qb.push(" AND removed_at IS NULL AND (expires_at IS NULL OR expires_at > ")
                        .push_bind(now)
                        .push(")");
                }
                if let Some(id) = id {
                    qb.push(" AND id = ").push_bind(id.to_owned());
                }
                qb.push(" ORDER BY created_at DESC, id LIMIT ").push_bind(limit);
                let rows = qb.build().fetch_all(&self.$writer).await?;
                Ok(rows
                    .iter()
                    .map(|r| {
                        let id: String = r.try_get("id")?;
                        let scope: String = r.try_get("scope")?;
                        let scope = Scope::parse(&scope).ok_or_else(|| StoreError::Corrupt {
                            seq: 0,
                            problem: format!("allowlist entry {id}: unknown scope {scope:?}"),
                        })?;
                        Ok(AllowRow {
                            id,
                            scope,
                            value: r.try_get("value")?,
                            reason: r.try_get("reason")?,
                            expires_at: r.try_get("expires_at")?,
                            created_at: r.try_get("created_at")?,
                            created_by: r.try_get("created_by")?,
                            removed_at: r.try_get("removed_at")?,
                            removed_by: r.try_get("removed_by")?,
                        })
                    })
                    .collect())
            }
        }
    };
}

pub(crate) use allowlist_queries;
