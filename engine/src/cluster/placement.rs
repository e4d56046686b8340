//! Where partitions go: rendezvous (highest random weight) hashing over the live nodes.
//! Every node computes the same answer from the same list of live nodes, a node joining
//! takes about 1/n of the partitions and a node leaving gives only its own away.

use sha2::{Digest, Sha256};

fn weight(node: &str, item: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(b"vigil-placement-v1\0");
    h.update(node.as_bytes());
    h.update([0u8]);
    h.update(item.as_bytes());
    let d = h.finalize();
    u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

/// The node that should hold `item` (a partition `p<n>` or a rule `rule:<name>`) among
/// `nodes` (None when there is none). Ties (never in practice) go to the smaller node id.
pub fn owner<'a>(nodes: &'a [String], item: &str) -> Option<&'a str> {
    nodes.iter().map(|n| (weight(n, item), std::cmp::Reverse(n.as_str()))).max().map(|(_, std::cmp::Reverse(n))| n)
}

/// The placement key of partition `p`.
pub fn partition_key(p: u32) -> String {
    format!("p{p}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_is_stable_spread_and_moves_only_what_it_must() {
        let three: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let two: Vec<String> = ["a", "c"].map(String::from).to_vec();
        let mut counts = std::collections::HashMap::new();
        for p in 0..300 {
            let key = partition_key(p);
            let o3 = owner(&three, &key).unwrap();
            *counts.entry(o3).or_insert(0) += 1;
            let o2 = owner(&two, &key).unwrap();
            if o3 != "b" {
                assert_eq!(o3, o2, "only b's partitions move when b leaves");
            }
        }
        assert!(counts.values().all(|&c| (70..130).contains(&c)), "{counts:?}");
        assert_eq!(owner(&[], "p0"), None);
    }
}
