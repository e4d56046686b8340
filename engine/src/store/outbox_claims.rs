//! Claims on the outbox (migration 0018; docs/cluster.md "Timers and the outbox"): every
//! node's delivery worker may run, and each due notification is claimed by exactly one node
//! at a time. A claim names the node and lasts until `claim_until`, on the database's clock
//! (PostgreSQL's `clock_timestamp()`, SQLite's wall clock: never a node's, never a manual
//! test clock). The worker renews a claim right before each delivery and clears it when it
//! records the outcome; a node that dies holding claims releases them by expiry.

use super::outbox::NotificationRow;
use super::{Store, StoreError, dispatch};

impl Store {
    /// Claims for `node`, for `ttl_ms`, up to `limit` pending notifications of `receiver`
    /// due at `now` (server clock) that no node holds a live claim on, oldest first. A row
    /// whose alert has an older pending notification to the same receiver claimed by a node
    /// (in flight there) is left: a resolve never overtakes its trigger on another node.
    /// On PostgreSQL the rows are taken `FOR UPDATE SKIP LOCKED`: two nodes claiming at once
    /// get disjoint rows.
    pub async fn claim_due_notifications(
        &self,
        receiver: &str,
        node: &str,
        now: i64,
        ttl_ms: i64,
        limit: i64,
    ) -> Result<Vec<NotificationRow>, StoreError> {
        let mut rows = dispatch!(self, s => s.claim_due_notifications(receiver, node, now, ttl_ms, limit).await)?;
        rows.sort_by_key(|n| n.id);
        Ok(rows)
    }

    /// Renews `node`'s claim on a pending notification for another `ttl_ms`, right before a
    /// delivery attempt; false when the row is no longer pending or another node holds it
    /// (this node was paused past its claim): it must not be sent.
    pub async fn renew_notification_claim(&self, id: i64, node: &str, ttl_ms: i64) -> Result<bool, StoreError> {
        dispatch!(self, s => s.renew_notification_claim(id, node, ttl_ms).await)
    }

    /// Releases `node`'s claims on the notifications `ids` (those it claimed but did not
    /// attempt in a pass: held back, or behind an open circuit).
    pub async fn release_notification_claims(&self, ids: &[i64], node: &str) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        dispatch!(self, s => s.release_notification_claims(ids, node).await)
    }

    /// Releases every claim `node` holds: at start, those are a previous life's (node ids
    /// are unique in a cluster), so a restarted node does not wait for them to expire.
    pub async fn release_all_notification_claims(&self, node: &str) -> Result<u64, StoreError> {
        dispatch!(self, s => s.release_all_notification_claims(node).await)
    }
}

/// Expects, in the expanding module, `DB_NOW_MS` (SQL for the database's clock in epoch ms)
/// and `SKIP_LOCKED` (the row-lock clause of the claim's sub-select; empty on SQLite, whose
/// single writer connection serializes claims) and `outbox_queries!` (for `notification_row`).
macro_rules! outbox_claim_queries {
    ($store:ty, $db:ty, writer: $writer:ident) => {
        impl $store {
            pub(super) async fn claim_due_notifications(
                &self,
                receiver: &str,
                node: &str,
                now: i64,
                ttl_ms: i64,
                limit: i64,
            ) -> Result<Vec<NotificationRow>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new("UPDATE notifications SET claimed_by = ");
                qb.push_bind(node.to_owned())
                    .push(", claim_until = ")
                    .push(DB_NOW_MS)
                    .push(" + ")
                    .push_bind(ttl_ms)
                    .push(" WHERE id IN (SELECT n.id FROM notifications n WHERE n.status = 'pending' AND n.receiver = ")
                    .push_bind(receiver.to_owned())
                    .push(" AND n.next_attempt_at <= ")
                    .push_bind(now)
                    .push(" AND (n.claim_until IS NULL OR n.claim_until <= ")
                    .push(DB_NOW_MS)
                    .push(") AND NOT EXISTS (SELECT 1 FROM notifications o WHERE o.receiver = n.receiver \
                           AND o.alert_id = n.alert_id AND o.id < n.id AND o.status = 'pending' AND o.claim_until > ")
                    .push(DB_NOW_MS)
                    .push(") ORDER BY n.id LIMIT ")
                    .push_bind(limit)
                    .push(SKIP_LOCKED)
                    .push(concat!(") RETURNING ", notification_columns!()));
                let rows = qb.build().fetch_all(&self.$writer).await?;
                rows.iter().map(notification_row).collect()
            }

            pub(super) async fn renew_notification_claim(
                &self,
                id: i64,
                node: &str,
                ttl_ms: i64,
            ) -> Result<bool, StoreError> {
                let mut qb = QueryBuilder::<$db>::new("UPDATE notifications SET claim_until = ");
                qb.push(DB_NOW_MS)
                    .push(" + ")
                    .push_bind(ttl_ms)
                    .push(" WHERE status = 'pending' AND id = ")
                    .push_bind(id)
                    .push(" AND claimed_by = ")
                    .push_bind(node.to_owned());
                Ok(qb.build().execute(&self.$writer).await?.rows_affected() == 1)
            }

            pub(super) async fn release_notification_claims(&self, ids: &[i64], node: &str) -> Result<(), StoreError> {
                let mut qb =
                    QueryBuilder::<$db>::new("UPDATE notifications SET claimed_by = NULL, claim_until = NULL WHERE claimed_by = ");
                qb.push_bind(node.to_owned()).push(" AND id IN ");
                crate::store::push_ids(&mut qb, ids);
                qb.build().execute(&self.$writer).await?;
                Ok(())
            }

            pub(super) async fn release_all_notification_claims(&self, node: &str) -> Result<u64, StoreError> {
                let mut qb =
                    QueryBuilder::<$db>::new("UPDATE notifications SET claimed_by = NULL, claim_until = NULL WHERE claimed_by = ");
                qb.push_bind(node.to_owned()).push(" AND status = 'pending'");
                Ok(qb.build().execute(&self.$writer).await?.rows_affected())
            }
        }
    };
}

pub(crate) use outbox_claim_queries;
