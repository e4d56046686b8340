//! Following the stored rules (cluster mode, docs/cluster.md "Rules"): every node polls the
//! shared `rules` table and applies to its own registry the deploys, deletes and
//! quarantines made on other nodes, so the node holding a rule's detection slot runs a rule
//! deployed through any node's API (or rules directory) within about a second, and stops
//! running a deleted one. The poll reads the rows without their modules; a module is read
//! (and compiled) only when its row changed. Changes go through the same swap as a local
//! deploy (`RuleRegistry::activate` / `delete` / `restore_quarantine`), which the detection
//! loop picks up between batches: no event is dropped. This node's own changes are seen
//! too: the registry already has that version, so nothing is compiled again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::{RuleJournal, prepare_off_runtime};
use crate::rules::RuleRegistry;
use crate::rules::registry::Quarantine;
use crate::store::StoredRule;

/// What a row said when it was last applied: SHA-256, deployed at, status.
type Seen = (String, i64, String);

fn seen_of(row: &StoredRule) -> Seen {
    (row.sha256.clone(), row.deployed_at, row.status.clone())
}

/// Follows the stored rules into one registry.
pub struct RuleFollower {
    journal: RuleJournal,
    registry: Arc<RuleRegistry>,
    seen: HashMap<String, Seen>,
}

impl RuleFollower {
    /// A follower of the rows as they are now (the registry was restored from them).
    pub async fn new(journal: RuleJournal, registry: Arc<RuleRegistry>) -> Self {
        let seen = match journal.store.load_rule_heads().await {
            // Only the rows the registry holds as stored: a change made by another node
            // between the restore and now is applied at the first poll.
            Ok(rows) => rows
                .iter()
                .filter(|r| registry.sha_of(&r.name).as_deref() == Some(r.sha256.as_str()))
                .map(|r| (r.name.clone(), seen_of(r)))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "Could not read the stored rules; the first poll applies them all");
                HashMap::new()
            }
        };
        Self { journal, registry, seen }
    }

    /// Polls every `every` until the runtime stops.
    pub fn spawn(mut self, every: Duration) {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                self.poll().await;
            }
        });
    }

    /// One poll: applies every row that changed since it was last seen, and deletes the
    /// rules whose rows are gone. Returns the number of changes applied.
    pub async fn poll(&mut self) -> usize {
        if !self.differs(&self.heads().await) {
            return 0;
        }
        // One change at a time with this node's own deploys, and the rows read again under
        // it, so a local deploy or delete (stored, then applied) is never half seen.
        let _one_at_a_time = self.journal.changes.lock().await;
        let Some(heads) = self.heads().await else { return 0 };
        let changed: Vec<&StoredRule> = heads.iter().filter(|h| self.seen.get(&h.name) != Some(&seen_of(h))).collect();
        let gone: Vec<String> = self.seen.keys().filter(|n| !heads.iter().any(|h| &h.name == *n)).cloned().collect();
        let mut applied = 0;
        for name in gone {
            self.seen.remove(&name);
            if self.registry.sha_of(&name).is_some() && self.registry.delete(&name).is_ok() {
                tracing::info!(rule = %name, "Rule deleted on another node; removed here");
                applied += 1;
            }
        }
        let mut modules: Option<HashMap<String, StoredRule>> = None;
        for head in changed {
            let active_here =
                self.registry.current().all().any(|r| r.name() == head.name && r.sha256_hex() == head.sha256);
            if head.status == "active" && active_here {
                // This node's own deploy, or one it already runs.
                self.seen.insert(head.name.clone(), seen_of(head));
                continue;
            }
            if head.status != "active" {
                if active_here || self.registry.sha_of(&head.name).as_deref() != Some(head.sha256.as_str()) {
                    self.registry
                        .restore_quarantine(&head.name, quarantine(head, head.reason.clone().unwrap_or_default()));
                    tracing::warn!(rule = %head.name, "Rule quarantined on another node; quarantined here");
                    applied += 1;
                }
                self.seen.insert(head.name.clone(), seen_of(head));
                continue;
            }
            if modules.is_none() {
                match self.journal.store.load_rules().await {
                    Ok(rows) => modules = Some(rows.into_iter().map(|r| (r.name.clone(), r)).collect()),
                    Err(e) => {
                        tracing::warn!(error = %e, "Could not read the stored rule modules; retrying");
                        return applied;
                    }
                }
            }
            let Some(row) = modules.as_ref().and_then(|m| m.get(&head.name)) else {
                continue; // deleted since the heads were read: the next poll sees it gone
            };
            if seen_of(row) != seen_of(head) {
                continue; // changed again since: the next poll applies the newer row
            }
            match prepare_off_runtime(&self.registry, row.module.clone(), Some(row.name.clone()), None, None).await {
                Ok(Ok(p)) if p.sha256_hex() == row.sha256 => {
                    let deployed = self.registry.activate(p, &row.source, row.deployed_at);
                    tracing::info!(rule = %row.name, sha256 = %deployed.sha256, "Rule deployed on another node; active here");
                }
                Ok(Ok(p)) => {
                    tracing::error!(rule = %row.name, "Stored rule module does not match its SHA-256; held quarantined");
                    let reason = format!("stored module hashes to {}, not the recorded SHA-256", p.sha256_hex());
                    self.registry.restore_quarantine(&row.name, quarantine(row, reason));
                }
                Ok(Err(e)) => {
                    tracing::error!(rule = %row.name, error = %e, "Stored rule could not be loaded; held quarantined");
                    self.registry.restore_quarantine(&row.name, quarantine(row, format!("could not be loaded: {e}")));
                }
                Err(e) => {
                    tracing::warn!(rule = %row.name, error = %e, "Could not compile a stored rule; retrying");
                    continue;
                }
            }
            self.seen.insert(row.name.clone(), seen_of(row));
            applied += 1;
        }
        applied
    }
}

impl RuleFollower {
    /// The stored rows without modules (none when they cannot be read: nothing changes).
    async fn heads(&self) -> Option<Vec<StoredRule>> {
        match self.journal.store.load_rule_heads().await {
            Ok(heads) => Some(heads),
            Err(e) => {
                tracing::warn!(error = %e, "Could not read the stored rules of other nodes");
                None
            }
        }
    }

    /// Whether `heads` differ from what was last applied.
    fn differs(&self, heads: &Option<Vec<StoredRule>>) -> bool {
        let Some(heads) = heads else { return false };
        heads.len() != self.seen.len() || heads.iter().any(|h| self.seen.get(&h.name) != Some(&seen_of(h)))
    }
}

fn quarantine(row: &StoredRule, reason: String) -> Quarantine {
    Quarantine { sha256: row.sha256.clone(), reason, at: row.status_at, source: row.source.clone() }
}
