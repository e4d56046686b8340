//! Signed checkpoints (`checkpoints` table): the [`Checkpoint`] row and the `Store` methods
//! that find and list them. The ledger signs and appends them (with a group of events, or
//! alone through `append_checkpoint`); verify, export and retention look them up.

use super::{Store, StoreError, dispatch};

/// A signed checkpoint row.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Checkpoint id (1-based).
    pub id: i64,
    /// The seq it covers.
    pub seq: i64,
    /// The hash of that seq.
    pub hash: Vec<u8>,
    /// When it was made (epoch ms).
    pub created_at: i64,
    /// Previous checkpoint id (0 for the first).
    pub prev_id: i64,
    /// Which key signed it (`ed25519:<16 hex>`; `hmac-sha256` for checkpoints written
    /// before version 0.2).
    pub key_id: String,
    /// Ed25519 signature over [`crate::ledger::keys::checkpoint_message`].
    pub signature: Vec<u8>,
}

impl Store {
    /// Checkpoints whose seq is within `[from, to]`, ascending.
    pub async fn checkpoints(&self, from: i64, to: i64) -> Result<Vec<Checkpoint>, StoreError> {
        dispatch!(self, s => s.checkpoints(from, to).await)
    }

    /// The newest checkpoint.
    pub async fn last_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
        dispatch!(self, s => s.last_checkpoint().await)
    }

    /// Appends a checkpoint on its own (the timer, shutdown, a purge, an export).
    pub async fn append_checkpoint(&self, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        dispatch!(self, s => s.append(&[], Some(checkpoint)).await)
    }

    /// The checkpoint with this id.
    pub async fn checkpoint_by_id(&self, id: i64) -> Result<Option<Checkpoint>, StoreError> {
        dispatch!(self, s => s.checkpoint_where("id = ", id, "").await)
    }

    /// The newest checkpoint at or below `seq`.
    pub async fn checkpoint_at_or_before(&self, seq: i64) -> Result<Option<Checkpoint>, StoreError> {
        dispatch!(self, s => s.checkpoint_where("seq <= ", seq, " ORDER BY id DESC").await)
    }

    /// The newest checkpoint signed before `at` (epoch ms).
    pub async fn checkpoint_signed_before(&self, at: i64) -> Result<Option<Checkpoint>, StoreError> {
        dispatch!(self, s => s.checkpoint_where("created_at < ", at, " ORDER BY id DESC").await)
    }

    /// Checkpoints with id below `before_id` (all when None), newest first, at most `limit`.
    pub async fn list_checkpoints(&self, before_id: Option<i64>, limit: i64) -> Result<Vec<Checkpoint>, StoreError> {
        dispatch!(self, s => s.list_checkpoints(before_id.unwrap_or(i64::MAX), limit).await)
    }
}

/// Columns of `checkpoints` (`checkpoint_row` reads them by name).
macro_rules! checkpoint_columns {
    () => {
        "id, seq, hash, created_at, prev_id, signature, key_id"
    };
}

macro_rules! checkpoint_queries {
    ($store:ty, $db:ty, $row:ty, reader: $reader:ident, writer: $writer:ident) => {
        impl $store {
            pub(super) async fn checkpoints(&self, from: i64, to: i64) -> Result<Vec<Checkpoint>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(concat!(
                    "SELECT ",
                    checkpoint_columns!(),
                    " FROM checkpoints WHERE seq >= "
                ));
                qb.push_bind(from).push(" AND seq <= ").push_bind(to).push(" ORDER BY id");
                Ok(qb.build().fetch_all(&self.$reader).await?.iter().map(checkpoint_row).collect())
            }

            pub(super) async fn last_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(concat!(
                    "SELECT ",
                    checkpoint_columns!(),
                    " FROM checkpoints ORDER BY id DESC LIMIT 1"
                ));
                Ok(qb.build().fetch_optional(&self.$writer).await?.as_ref().map(checkpoint_row))
            }

            pub(super) async fn checkpoint_where(
                &self,
                condition: &'static str,
                value: i64,
                order: &'static str,
            ) -> Result<Option<Checkpoint>, StoreError> {
                let mut qb =
                    QueryBuilder::<$db>::new(concat!("SELECT ", checkpoint_columns!(), " FROM checkpoints WHERE "));
                qb.push(condition).push_bind(value).push(order).push(" LIMIT 1");
                Ok(qb.build().fetch_optional(&self.$writer).await?.as_ref().map(checkpoint_row))
            }

            pub(super) async fn list_checkpoints(
                &self,
                before_id: i64,
                limit: i64,
            ) -> Result<Vec<Checkpoint>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(concat!(
                    "SELECT ",
                    checkpoint_columns!(),
                    " FROM checkpoints WHERE id < "
                ));
                qb.push_bind(before_id).push(" ORDER BY id DESC LIMIT ").push_bind(limit);
                Ok(qb.build().fetch_all(&self.$reader).await?.iter().map(checkpoint_row).collect())
            }
        }

        fn checkpoint_row(r: &$row) -> Checkpoint {
            Checkpoint {
                id: r.try_get("id").unwrap_or_default(),
                seq: r.try_get("seq").unwrap_or_default(),
                hash: r.try_get("hash").unwrap_or_default(),
                created_at: r.try_get("created_at").unwrap_or_default(),
                prev_id: r.try_get("prev_id").unwrap_or_default(),
                signature: r.try_get("signature").unwrap_or_default(),
                key_id: r.try_get("key_id").unwrap_or_default(),
            }
        }
    };
}

pub(crate) use {checkpoint_columns, checkpoint_queries};
