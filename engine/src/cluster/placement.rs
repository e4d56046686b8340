//! Where partitions and detection slots go: rendezvous (highest random weight) hashing over
//! the live nodes. Every node computes the same answer from the same list of live nodes, a
//! node joining takes about 1/n of them and a node leaving gives only its own away. Which
//! slot a rule belongs to: a hash of its name ([`rule_slot`]).

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

/// The node that should hold `item` (a partition `p<n>` or a detection slot `d<n>`) among
/// `nodes` (None when there is none). Ties (never in practice) go to the smaller node id.
pub fn owner<'a>(nodes: &'a [String], item: &str) -> Option<&'a str> {
    nodes.iter().map(|n| (weight(n, item), std::cmp::Reverse(n.as_str()))).max().map(|(_, std::cmp::Reverse(n))| n)
}

/// The placement key of partition `p`.
pub fn partition_key(p: u32) -> String {
    format!("p{p}")
}

/// The placement key of detection slot `slot`.
pub fn slot_key(slot: u32) -> String {
    format!("d{slot}")
}

/// The detection slot of the rule named `name` among `slots`:
/// `SHA-256("vigil-rule-slot-v1" || 0 || name)` modulo `slots`. Stable (every node, every
/// version of the rule), so a rule deployed later lands in its slot wherever that runs.
pub fn rule_slot(name: &str, slots: u32) -> u32 {
    let mut h = Sha256::new();
    h.update(b"vigil-rule-slot-v1\0");
    h.update(name.as_bytes());
    let d = h.finalize();
    (u64::from_be_bytes(d[..8].try_into().expect("8 bytes")) % u64::from(slots.max(1))) as u32
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

    #[test]
    fn a_rule_always_has_the_same_slot_and_names_spread() {
        assert_eq!(rule_slot("brute_force", 8), rule_slot("brute_force", 8));
        assert_eq!(rule_slot("anything", 1), 0);
        let mut counts = [0u32; 8];
        for i in 0..8000 {
            counts[rule_slot(&format!("rule_{i}"), 8) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (800..1200).contains(&c)), "{counts:?}");
        // Slots and partitions are placed independently (different keys).
        assert_ne!(slot_key(3), partition_key(3));
    }
}
