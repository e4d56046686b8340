//! Cluster mode (DESIGN.md section 9, docs/cluster.md): many stateless nodes on one
//! PostgreSQL. This module is the node's side of it: which partition an event belongs to
//! ([`partition_of`]), where partitions go (rendezvous hashing over live nodes,
//! `placement`), and the member loop (`member`) that heartbeats, takes and renews partition
//! leases (PostgreSQL's clock, store/cluster.rs) and runs one `Sequencer` per partition it
//! holds, on a partition store whose every append checks the lease (fencing). A service
//! (L5): it uses the store and the ledger; `app` wires it, `api` reads its view.

use sha2::{Digest, Sha256};

pub mod anchors;
pub mod ingest;
pub mod member;
pub mod placement;
pub mod stream;
pub mod wire;

pub use ingest::{ClusterIngest, IngestConfig};
pub use member::{
    ClusterMember, ClusterView, DetectionView, MemberConfig, PartitionView, SlotCursor, SlotView, WriterTemplate,
};
pub use stream::DECISIONS_SUBJECT;

/// The partition of an event: a hash of its idempotency key `(ingest_key, event_id)` modulo
/// the number of partitions, so a retry of the same event lands on the same partition (and is
/// found there as a duplicate).
pub fn partition_of(ingest_key: Option<&str>, event_id: &str, partitions: u32) -> u32 {
    let mut h = Sha256::new();
    h.update(b"vigil-partition-v1\0");
    h.update(ingest_key.unwrap_or("").as_bytes());
    h.update([0u8]);
    h.update(event_id.as_bytes());
    let d = h.finalize();
    let n = u64::from_be_bytes(d[..8].try_into().expect("8 bytes"));
    (n % u64::from(partitions.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_always_lands_on_the_same_partition_and_keys_spread() {
        assert_eq!(partition_of(Some("k1"), "e1", 8), partition_of(Some("k1"), "e1", 8));
        assert_eq!(partition_of(None, "x", 1), 0);
        let mut counts = [0u32; 8];
        for i in 0..8000 {
            counts[partition_of(Some("k"), &format!("ev-{i}"), 8) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (800..1200).contains(&c)), "{counts:?}");
        // The key is part of the identity: ("a", "bc") and ("ab", "c") are different events.
        let spread: std::collections::HashSet<u32> =
            (0..64).map(|i| partition_of(Some(&format!("key{i}")), "same", 64)).collect();
        assert!(spread.len() > 16);
    }
}
