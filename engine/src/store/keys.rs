//! API keys (`api_keys` table): the [`ApiKeyRow`] (only the key's SHA-256 is stored) and the
//! `Store` methods that insert, list and revoke keys, used by `auth` and the keys API.

use super::{Store, StoreError, dispatch};

/// A stored API key (the key itself is never stored, only its SHA-256).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyRow {
    /// Public id.
    pub id: String,
    /// Human name.
    pub name: String,
    /// Role name.
    pub role: String,
    /// SHA-256 of the key.
    pub key_hash: Vec<u8>,
    /// Creation time, epoch ms.
    pub created_at: i64,
    /// Revocation time, epoch ms.
    pub revoked_at: Option<i64>,
}

impl Store {
    /// Stores a new API key.
    pub async fn insert_key(&self, key: &ApiKeyRow) -> Result<(), StoreError> {
        dispatch!(self, s => s.insert_key(key).await)
    }

    /// All API keys (active and revoked).
    pub async fn list_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        dispatch!(self, s => s.list_keys().await)
    }

    /// Marks a key revoked; false when no active key has that id.
    pub async fn revoke_key(&self, id: &str, at: i64) -> Result<bool, StoreError> {
        dispatch!(self, s => s.revoke_key(id, at).await)
    }
}

macro_rules! key_queries {
    ($store:ty, $db:ty, $row:ty, writer: $writer:ident) => {
        impl $store {
            pub(super) async fn insert_key(&self, key: &ApiKeyRow) -> Result<(), StoreError> {
                let mut qb = QueryBuilder::<$db>::new(
                    "INSERT INTO api_keys (id, name, role, key_hash, created_at, revoked_at) ",
                );
                qb.push_values([key], |mut b, k| {
                    b.push_bind(k.id.clone())
                        .push_bind(k.name.clone())
                        .push_bind(k.role.clone())
                        .push_bind(k.key_hash.clone())
                        .push_bind(k.created_at)
                        .push_bind(k.revoked_at);
                });
                qb.build().execute(&self.$writer).await?;
                Ok(())
            }

            pub(super) async fn list_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT id, name, role, key_hash, created_at, revoked_at FROM api_keys ORDER BY created_at, id",
                );
                Ok(qb.build().fetch_all(&self.$writer).await?.iter().map(key_row).collect())
            }

            pub(super) async fn revoke_key(&self, id: &str, at: i64) -> Result<bool, StoreError> {
                let mut qb = QueryBuilder::<$db>::new("UPDATE api_keys SET revoked_at = ");
                qb.push_bind(at).push(" WHERE id = ").push_bind(id.to_owned()).push(" AND revoked_at IS NULL");
                Ok(qb.build().execute(&self.$writer).await?.rows_affected() == 1)
            }
        }

        fn key_row(r: &$row) -> ApiKeyRow {
            ApiKeyRow {
                id: r.get("id"),
                name: r.get("name"),
                role: r.get("role"),
                key_hash: r.get("key_hash"),
                created_at: r.get("created_at"),
                revoked_at: r.get("revoked_at"),
            }
        }
    };
}

pub(crate) use key_queries;
