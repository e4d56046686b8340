//! Allowlist changes through the API: an entry added (a chain event, then a row of
//! `allowlist`, then in force, then the active decisions it covers are lifted with it as the
//! reason, so bouncers' streams see them end) or removed (a chain event, then the row
//! marked). At start the API entries are loaded as the chain records them (`load.rs` reads
//! the events), compared with the table.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_json::{Value, json};

use super::{DecisionError, DecisionService};
use crate::event::system_event_with_id;
use crate::respond::allowlist::{AllowEntry, MAX_API_ENTRIES, Source};

/// An entry to add (`POST /v1/allowlist`).
#[derive(Debug, Clone)]
pub struct NewAllowEntry {
    pub scope: String,
    pub value: String,
    pub reason: String,
    /// Epoch ms (`None`: until removed).
    pub expires_at: Option<i64>,
}

impl DecisionService {
    /// Loads the API entries in force at start, as the chain records them (`chain`, read
    /// with the decision events), compared with the `allowlist` table: an entry the chain
    /// says is in force applies as the chain says even if the table lost or changed it; a
    /// table row with no `allowlist_added` event (a planted row) does not apply, unless
    /// retention purged old events (`purged`), when the chain cannot speak for it. Each
    /// difference is added to `differences` (raised with those of decisions). Returns how
    /// many apply.
    pub(super) async fn load_allowlist(
        &self,
        chain: AllowChain,
        purged: bool,
        differences: &mut Vec<Value>,
    ) -> Result<usize, DecisionError> {
        let now = self.now();
        let mut table: HashMap<String, AllowEntry> = HashMap::new();
        for row in self.inner.store.list_allow_entries(Some(now), MAX_API_ENTRIES as i64).await? {
            match row
                .map_err(|e| e.to_string())
                .and_then(|r| AllowEntry::from_row(&r).map_err(|e| format!("{}: {e}", r.id)))
            {
                Ok(e) => {
                    table.insert(e.id.clone(), e);
                }
                Err(why) => differences.push(json!({"allowlist_entry": null,
                    "problem": "an allowlist row cannot be read (not applied)", "row_problem": why})),
            }
        }
        let mut entries = Vec::new();
        for (id, details) in &chain.added {
            if chain.removed.contains(id) {
                continue;
            }
            let Some(from_chain) = entry_from_chain(details) else {
                tracing::warn!(id, "An allowlist_added event names no entry the server can read; not applied");
                continue;
            };
            if !from_chain.applies_at(now) {
                continue;
            }
            match table.remove(id) {
                Some(t) if same_entry(&t, &from_chain) => entries.push(t),
                Some(t) => {
                    differences.push(json!({"allowlist_entry": id, "problem": "the row differs from its chain event (applied as the chain says)",
                        "row": t.to_api_json(now), "chain": details}));
                    entries.push(from_chain);
                }
                None => {
                    differences.push(json!({"allowlist_entry": id,
                        "problem": "in force in the chain, missing or removed in the table (applied as the chain says)",
                        "chain": details}));
                    entries.push(from_chain);
                }
            }
        }
        for (id, t) in table {
            if chain.removed.contains(&id) {
                differences.push(json!({"allowlist_entry": id,
                    "problem": "removed in the chain, in force in the table (not applied)", "row": t.to_api_json(now)}));
            } else if purged {
                entries.push(t);
            } else {
                differences.push(json!({"allowlist_entry": id,
                    "problem": "in force in the table with no allowlist_added event in the chain (not applied)",
                    "row": t.to_api_json(now)}));
            }
        }
        // Oldest first, as they were added.
        entries.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        let n = entries.len();
        self.inner.allowlist.reset_api(entries.into_iter().map(Arc::new).collect());
        tracing::info!(api_entries = n, "Allowlist loaded");
        Ok(n)
    }

    /// Lifts the active decisions the built-in and config entries cover (at start: an entry
    /// added to the config since the last start lifts what it covers, as an API entry does);
    /// returns how many. The actor is `vigil`.
    pub async fn lift_allowlisted(&self) -> Result<usize, DecisionError> {
        let mut n = 0;
        for entry in self.inner.allowlist.in_force(self.now()) {
            n += self.lift_covered(&entry, "vigil").await?.len();
        }
        Ok(n)
    }

    /// Adds an entry (`actor`: the key id): a chain event first, then the row, then it is
    /// in force; then the active decisions it covers are lifted ("allowlisted by entry <id>:
    /// <reason>"). Returns the entry and the ids of the decisions lifted.
    pub async fn add_allow_entry(
        &self,
        new: NewAllowEntry,
        actor: &str,
    ) -> Result<(Arc<AllowEntry>, Vec<i64>), DecisionError> {
        let _changes = self.inner.allow_lock.lock().await;
        let now = self.now();
        if new.expires_at.is_some_and(|e| e <= now) {
            return Err(DecisionError::Invalid("`expires_at` must be in the future".into()));
        }
        let id = uuid::Uuid::now_v7().to_string();
        let entry = AllowEntry::api(id, &new.scope, &new.value, &new.reason, new.expires_at, now, actor)
            .map_err(DecisionError::Invalid)?;
        let allowlist = &self.inner.allowlist;
        if allowlist.api_count(now) >= MAX_API_ENTRIES {
            return Err(DecisionError::Conflict(format!(
                "{MAX_API_ENTRIES} allowlist entries are in force (the most); remove some first"
            )));
        }
        // The evidence first: an entry never applies without its chain event.
        let ev = system_event_with_id(
            format!("vigil:allowlist:{}:added", entry.id),
            "response",
            "allowlist_added",
            actor,
            entry.to_api_json(now),
            now,
        );
        self.inner.sequencer.submit(vec![ev]).await?;
        if let Err(e) = self.inner.store.insert_allow_entry(&entry.to_row()).await {
            // The chain says it was added: say it was not, so a restart does not apply it.
            let undo = system_event_with_id(
                format!("vigil:allowlist:{}:removed", entry.id),
                "response",
                "allowlist_removed",
                "vigil",
                json!({"id": entry.id, "why": "the entry could not be stored"}),
                now,
            );
            if let Err(e) = self.inner.sequencer.submit(vec![undo]).await {
                tracing::error!(id = %entry.id, error = %e, "An allowlist entry was not stored and its chain event could not be undone; it applies after a restart");
            }
            return Err(e.into());
        }
        let entry = Arc::new(entry);
        allowlist.insert(entry.clone(), now);
        tracing::info!(id = %entry.id, scope = %entry.scope, actor, "Allowlist entry added");
        let lifted = self.lift_covered(&entry, actor).await?;
        Ok((entry, lifted))
    }

    /// Lifts the active decisions `entry` covers, with it as the reason; their ids.
    async fn lift_covered(&self, entry: &AllowEntry, actor: &str) -> Result<Vec<i64>, DecisionError> {
        // Under the decisions lock: a decision issued before the entry was in force is in
        // the set by now, and one issued after is refused.
        let _one = self.inner.lock.lock().await;
        let now = self.now();
        let (covered, _) = self.inner.set.snapshot(now, |d| entry.covers(d.scope, &d.value));
        let reason: String = entry.because().chars().take(vigil_sdk::decision::MAX_REASON_CHARS).collect();
        let mut lifted = Vec::with_capacity(covered.len());
        for d in covered {
            match self.lift_locked(d.id, actor, &reason).await {
                Ok(_) => lifted.push(d.id),
                // Ended meanwhile (expired): nothing to lift.
                Err(DecisionError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if !lifted.is_empty() {
            tracing::info!(entry = %entry.id, lifted = lifted.len(), "Active decisions lifted by an allowlist entry");
        }
        Ok(lifted)
    }

    /// Removes an API entry (a chain event, then the row marked); config and built-in
    /// entries cannot be removed this way (409).
    pub async fn remove_allow_entry(&self, id: &str, actor: &str) -> Result<AllowEntry, DecisionError> {
        let _changes = self.inner.allow_lock.lock().await;
        let now = self.now();
        if let Some(e) = self.inner.allowlist.get(id) {
            match e.source {
                Source::Config => {
                    return Err(DecisionError::Conflict(format!(
                        "allowlist entry {id} comes from the config file ([[decisions.allow]]): it cannot be \
                         deleted through the API; remove it from the config and restart"
                    )));
                }
                Source::Builtin => {
                    return Err(DecisionError::Conflict(format!(
                        "allowlist entry {id} is built in (loopback is always allowed): it cannot be deleted"
                    )));
                }
                Source::Api => {}
            }
        }
        let row = self.inner.store.allow_entry(id).await?.ok_or_else(|| DecisionError::NoAllowEntry(id.into()))?;
        if row.removed_at.is_some() {
            return Err(DecisionError::Conflict(format!("allowlist entry {id} was removed already")));
        }
        let mut entry = AllowEntry::from_row(&row).map_err(DecisionError::Invalid)?;
        let ev = system_event_with_id(
            format!("vigil:allowlist:{id}:removed"),
            "response",
            "allowlist_removed",
            actor,
            json!({"id": id, "entry": entry.to_api_json(now)}),
            now,
        );
        self.inner.sequencer.submit(vec![ev]).await?;
        // The chain says it is removed: it no longer applies, whatever the table says.
        self.inner.allowlist.remove(id);
        self.inner.store.remove_allow_entry(id, now, actor).await?;
        entry.removed = Some((now, actor.to_owned()));
        tracing::info!(id, actor, "Allowlist entry removed");
        Ok(entry)
    }
}

/// The allowlist events of the chain: `allowlist_added` details by entry id, and the ids of
/// `allowlist_removed` ones.
#[derive(Debug, Default)]
pub(super) struct AllowChain {
    added: HashMap<String, Value>,
    removed: HashSet<String>,
}

impl AllowChain {
    /// Takes in one event (its API form) with a `vigil:allowlist:` id.
    pub(super) fn read(&mut self, ev: &Value) {
        let d = &ev["details"];
        match (ev["action"].as_str(), d["id"].as_str()) {
            (Some("allowlist_added"), Some(id)) => {
                self.added.insert(id.to_owned(), d.clone());
            }
            (Some("allowlist_removed"), Some(id)) => {
                self.removed.insert(id.to_owned());
            }
            _ => {}
        }
    }
}

/// An API entry as its `allowlist_added` event records it (none: unreadable).
fn entry_from_chain(d: &Value) -> Option<AllowEntry> {
    let time = |k: &str| d[k].as_str().and_then(crate::event::parse_time);
    let row = crate::store::allowlist::AllowRow {
        id: d["id"].as_str()?.to_owned(),
        scope: vigil_sdk::Scope::parse(d["scope"].as_str()?)?,
        value: d["value"].as_str()?.to_owned(),
        reason: d["reason"].as_str()?.to_owned(),
        expires_at: match &d["expires_at"] {
            Value::Null => None,
            _ => Some(time("expires_at")?),
        },
        created_at: time("created_at")?,
        created_by: d["created_by"].as_str().unwrap_or_default().to_owned(),
        removed_at: None,
        removed_by: None,
    };
    AllowEntry::from_row(&row).ok()
}

/// Whether a stored entry says what its chain event says (what matching reads).
fn same_entry(t: &AllowEntry, c: &AllowEntry) -> bool {
    (t.scope, &t.value, t.expires_at) == (c.scope, &c.value, c.expires_at)
}
