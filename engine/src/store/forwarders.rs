//! The durable cursors of the forwarders (`forwarder_cursors`, migration 0014): the `Store`
//! methods that read and advance them, generated for both backends by
//! [`forwarder_queries!`] (invoked in `sqlite.rs` and `postgres.rs`). What forwarders do
//! lives in `crate::forward`.

use super::{Store, StoreError, dispatch};

impl Store {
    /// The seq forwarder `name` delivered up to (`None`: it never ran).
    pub async fn forwarder_cursor(&self, name: &str) -> Result<Option<i64>, StoreError> {
        dispatch!(self, s => s.forwarder_cursor(name).await)
    }

    /// Moves forwarder `name`'s cursor to `seq`.
    pub async fn set_forwarder_cursor(&self, name: &str, seq: i64, at: i64) -> Result<(), StoreError> {
        dispatch!(self, s => s.set_forwarder_cursor(name, seq, at).await)
    }
}

macro_rules! forwarder_queries {
    ($store:ty, $db:ty, writer: $writer:ident) => {
        impl $store {
            pub(super) async fn forwarder_cursor(&self, name: &str) -> Result<Option<i64>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new("SELECT seq FROM forwarder_cursors WHERE name = ");
                qb.push_bind(name.to_owned());
                let row = qb.build().fetch_optional(&self.$writer).await?;
                Ok(row.map(|r| r.try_get::<i64, _>("seq")).transpose()?)
            }

            pub(super) async fn set_forwarder_cursor(&self, name: &str, seq: i64, at: i64) -> Result<(), StoreError> {
                let mut qb = QueryBuilder::<$db>::new("INSERT INTO forwarder_cursors (name, seq, updated_at) VALUES (");
                qb.push_bind(name.to_owned())
                    .push(", ")
                    .push_bind(seq)
                    .push(", ")
                    .push_bind(at)
                    .push(") ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at");
                qb.build().execute(&self.$writer).await?;
                Ok(())
            }
        }
    };
}

pub(crate) use forwarder_queries;
