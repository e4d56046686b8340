//! Allowlist changes through the API: an entry added (a chain event, then a row of
//! `allowlist`, then in force, then the active decisions it covers are lifted with it as the
//! reason, so bouncers' streams see them end) or removed (a chain event, then the row
//! marked). Entries are loaded from the store at start.

use std::sync::Arc;

use serde_json::json;

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
    /// Loads the API entries in force from the store (at start); returns how many.
    pub async fn load_allowlist(&self) -> Result<usize, DecisionError> {
        let now = self.now();
        let rows = self.inner.store.list_allow_entries(Some(now), MAX_API_ENTRIES as i64).await?;
        let mut entries = Vec::with_capacity(rows.len());
        for row in rows {
            match row.map_err(|e| e.to_string()).and_then(|r| AllowEntry::from_row(&r)) {
                Ok(e) => entries.push(Arc::new(e)),
                Err(why) => {
                    tracing::error!(problem = %why, "An allowlist entry of the store cannot be read; not applied")
                }
            }
        }
        // Oldest first, as they were added.
        entries.reverse();
        let n = entries.len();
        self.inner.allowlist.reset_api(entries);
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
        self.inner.store.insert_allow_entry(&entry.to_row()).await?;
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
        self.inner.store.remove_allow_entry(id, now, actor).await?;
        self.inner.allowlist.remove(id);
        entry.removed = Some((now, actor.to_owned()));
        tracing::info!(id, actor, "Allowlist entry removed");
        Ok(entry)
    }
}
