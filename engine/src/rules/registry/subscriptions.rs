//! The subscription index: which rules an event of a given category, action and outcome is
//! offered to, cached per triple.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::LoadedRule;
use crate::rules::Clause;

/// One subscription clause with its lists as sets (`None`: the list is empty, any value).
struct ClauseSet {
    categories: Option<HashSet<Box<str>>>,
    actions: Option<HashSet<Box<str>>>,
    outcomes: Option<HashSet<Box<str>>>,
}

impl ClauseSet {
    fn new(c: &Clause) -> Self {
        let set = |list: &[String]| (!list.is_empty()).then(|| list.iter().map(|v| v.as_str().into()).collect());
        Self { categories: set(&c.categories), actions: set(&c.actions), outcomes: set(&c.outcomes) }
    }

    fn matches(&self, category: &str, action: &str, outcome: &str) -> bool {
        let ok = |set: &Option<HashSet<Box<str>>>, v: &str| set.as_ref().is_none_or(|s| s.contains(v));
        ok(&self.categories, category) && ok(&self.actions, action) && ok(&self.outcomes, outcome)
    }
}

/// Which detection rules want an event, decided from its (category, action, outcome). The
/// answer for a triple is computed once (every clause of every rule checked with set
/// lookups, a cost bounded by the manifest caps) and then memoised, so the per-event cost
/// does not depend on how many clauses the rules declare. The memo is bounded.
pub struct SubscriptionIndex {
    rules: Vec<Vec<ClauseSet>>,
    memo: HashMap<Box<str>, Arc<[u32]>, foldhash::fast::RandomState>,
    key: String,
}

/// Most (category, action, outcome) triples memoised; past it the memo starts over.
const MEMO_ENTRIES: usize = 4096;

impl SubscriptionIndex {
    /// The index of the detection rules of a set (in the set's order).
    pub fn build(rules: &[Arc<LoadedRule>]) -> Self {
        let rules = rules.iter().map(|r| r.compiled.manifest.subscribe.iter().map(ClauseSet::new).collect()).collect();
        Self { rules, memo: HashMap::default(), key: String::new() }
    }

    /// The (ascending) indexes of the rules that want this event.
    pub fn lookup(&mut self, category: &str, action: &str, outcome: &str) -> Arc<[u32]> {
        // Categories, actions and outcomes never contain NUL (ingest validates them).
        self.key.clear();
        for part in [category, action, outcome] {
            self.key.push_str(part);
            self.key.push('\0');
        }
        if let Some(hit) = self.memo.get(self.key.as_str()) {
            return hit.clone();
        }
        let wanted: Arc<[u32]> = self
            .rules
            .iter()
            .enumerate()
            .filter(|(_, clauses)| clauses.iter().any(|c| c.matches(category, action, outcome)))
            .map(|(i, _)| i as u32)
            .collect();
        if self.memo.len() >= MEMO_ENTRIES {
            self.memo.clear();
        }
        self.memo.insert(self.key.as_str().into(), wanted.clone());
        wanted
    }
}
