//! The one writer of decisions: issue (from rules and people), lift, expire; each change
//! is written to the store with its history row, applied to the [`ActiveSet`], then
//! written to the chain (event id `vigil:decision:<change id>`, category `response`) and,
//! for a decision that goes with an alert, noted in the alert's history (`alerts`). This
//! file issues (refusing allowlisted values, recording simulated ones) and lifts; `load`,
//! `expiry`, `stream`, `chain` and `allowlist` (its entries added and removed) hold the rest.

mod allowlist;
mod chain;
mod expiry;
mod load;
mod stream;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{ActiveSet, AllowEntry, Allowlist, Guardrails, Kind, MIN_DURATION_MS, Refusal, Scope};
use crate::alerts::AlertService;
use crate::clock::Clock;
use crate::config::{DecisionMode, DecisionsConfig};
use crate::ledger::sequencer::SequencerHandle;
use crate::store::decisions::{DecisionChange, DecisionEnd, DecisionFilter, DecisionRow, DecisionStatus};
use crate::store::{AlertFilter, Store, StoreError};

pub use crate::finding::RaisedDecision;
pub use allowlist::NewAllowEntry;
pub use stream::{SNAPSHOT_PAGE, STREAM_PAGE, Snapshot, Stream, StreamPage};

/// Errors of decision operations (404 / 409 / 400 in the API).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecisionError {
    /// No such decision.
    #[error("no decision {0}")]
    NotFound(i64),
    /// Not possible in its current state (or a cap is reached).
    #[error("{0}")]
    Conflict(String),
    /// Bad input.
    #[error("{0}")]
    Invalid(String),
    /// The value is allowlisted: no decision may apply to it (409 `allowlisted`).
    #[error("{}", .0.because())]
    Allowlisted(Arc<AllowEntry>),
    /// No allowlist entry by that id.
    #[error("no allowlist entry {0}")]
    NoAllowEntry(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A decision to issue.
#[derive(Debug, Clone)]
pub struct NewDecision {
    pub scope: Scope,
    pub value: String,
    pub kind: Kind,
    /// How long, ms.
    pub duration_ms: i64,
    /// Why it is issued.
    pub reason: String,
    /// `rule:<name>` or `key:<id>`.
    pub actor: String,
    /// Issuing rule and its module SHA-256 (rule decisions).
    pub rule: Option<(String, String)>,
    /// The alert it goes with.
    pub alert_id: Option<i64>,
    /// Triggering events.
    pub event_seqs: Vec<i64>,
}

/// The decision lifecycle (clone freely).
#[derive(Clone)]
pub struct DecisionService {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    sequencer: SequencerHandle,
    clock: Clock,
    config: DecisionsConfig,
    set: Arc<ActiveSet>,
    allowlist: Arc<Allowlist>,
    alerts: AlertService,
    /// One change at a time: the store, the set and the cursor move together.
    lock: tokio::sync::Mutex<()>,
    /// One allowlist change at a time (taken before `lock`, never inside it).
    allow_lock: tokio::sync::Mutex<()>,
    /// Simulated decisions that would still apply: (scope, value, kind) -> expires_at, so a
    /// simulation records what enforcing would issue, without the duplicates it would not.
    simulated: std::sync::Mutex<HashMap<(Scope, String, Kind), i64>>,
    /// Cluster mode: called after each committed change (publishes a notice so every
    /// node's follower re-reads the change feed at once; expiry.rs).
    on_change: std::sync::OnceLock<ChangeHook>,
    /// Wakes this node's follower before its next poll (a notice came).
    follow_wake: tokio::sync::Notify,
}

/// What [`DecisionService::on_change`] calls.
type ChangeHook = Box<dyn Fn() + Send + Sync>;

impl DecisionService {
    /// The service over the active set and the allowlist (shared with the rules' gate).
    pub fn new(
        store: Store,
        sequencer: SequencerHandle,
        clock: Clock,
        config: DecisionsConfig,
        guardrails: Guardrails,
        alerts: AlertService,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                sequencer,
                clock,
                config,
                set: guardrails.set,
                allowlist: guardrails.allowlist,
                alerts,
                lock: Default::default(),
                allow_lock: Default::default(),
                simulated: Default::default(),
                on_change: std::sync::OnceLock::new(),
                follow_wake: tokio::sync::Notify::new(),
            }),
        }
    }

    /// The active set (shared with the rules' gate).
    pub fn set(&self) -> &Arc<ActiveSet> {
        &self.inner.set
    }

    /// The allowlist (shared with the rules' gate).
    pub fn allowlist(&self) -> &Arc<Allowlist> {
        &self.inner.allowlist
    }

    /// The `[decisions]` policy.
    pub fn config(&self) -> &DecisionsConfig {
        &self.inner.config
    }

    /// Now, by the server clock.
    pub fn now(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// One decision, any status.
    pub async fn get(&self, id: i64) -> Result<DecisionRow, DecisionError> {
        let rows =
            self.inner.store.list_decisions(&DecisionFilter { id: Some(id), limit: 1, ..Default::default() }).await?;
        rows.into_iter().next().ok_or(DecisionError::NotFound(id))
    }

    /// A decision's history.
    pub async fn history(&self, id: i64) -> Result<Vec<DecisionChange>, DecisionError> {
        Ok(self.inner.store.decision_changes(0, false, Some(id), 100).await?.into_iter().map(|(c, _)| c).collect())
    }

    /// Issues a decision. One on an allowlisted value is refused ([`DecisionError::Allowlisted`]).
    /// A rule's decision is refused past the rule's and the server's caps, and is not issued
    /// again while an active one of the same scope, value and kind lasts at least as long
    /// (then that one is returned, with `false`); in simulate mode (`[decisions] mode`, or
    /// the rule's own) it is recorded with status `simulated` and never enforced.
    pub async fn issue(&self, new: NewDecision) -> Result<(DecisionRow, bool), DecisionError> {
        super::check(new.scope, &new.value, new.kind, new.duration_ms.max(MIN_DURATION_MS), &new.reason)
            .map_err(DecisionError::Invalid)?;
        let mut new = new;
        new.value = super::canonical_value(new.scope, &new.value).into_owned();
        let max_ms = (self.inner.config.max_duration_secs as i64).saturating_mul(1000);
        if !(MIN_DURATION_MS..=max_ms).contains(&new.duration_ms) {
            return Err(DecisionError::Invalid(format!(
                "the duration must be between 1 second and {} seconds ([decisions] max_duration_secs)",
                self.inner.config.max_duration_secs
            )));
        }
        let _one = self.inner.lock.lock().await;
        let now = self.now();
        let set = &self.inner.set;
        // Under the lock: an entry added meanwhile lifts what was issued before it, and
        // refuses what comes after.
        if let Some(entry) = self.inner.allowlist.find(new.scope, &new.value, now) {
            if new.rule.is_some() {
                set.counters.refuse(Refusal::Allowlisted);
            }
            return Err(DecisionError::Allowlisted(entry));
        }
        let expires_at = now.saturating_add(new.duration_ms);
        let simulate =
            new.rule.as_ref().is_some_and(|(rule, _)| self.inner.config.mode_for(rule) == DecisionMode::Simulate);
        if simulate {
            return self.simulate(new, now, expires_at).await;
        }
        if let Some((rule, _)) = &new.rule {
            if let Some(existing) = set.covering(new.scope, &new.value, new.kind, expires_at) {
                set.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                return Ok(((*existing).clone(), false));
            }
            if set.rule_count(rule) >= self.inner.config.max_active_per_rule {
                set.counters.refuse(Refusal::RuleCap);
                return Err(DecisionError::Conflict(format!(
                    "rule {rule} holds {} active decisions ([decisions] max_active_per_rule)",
                    self.inner.config.max_active_per_rule
                )));
            }
        }
        if set.len() >= self.inner.config.max_active {
            set.counters.refuse(Refusal::TotalCap);
            return Err(DecisionError::Conflict(format!(
                "{} decisions are active ([decisions] max_active); lift some first",
                set.len()
            )));
        }
        let mut row = row_of(&new, now, expires_at, DecisionStatus::Active);
        let change = self.inner.store.insert_decision(&mut row).await?;
        set.insert(row.clone(), change.id);
        set.counters.issued.fetch_add(1, Ordering::Relaxed);
        if let Some(i) = vigil_sdk::DecisionKind::ALL.iter().position(|k| *k == row.kind) {
            set.counters.issued_by_kind[i].fetch_add(1, Ordering::Relaxed);
        }
        tracing::info!(id = row.id, scope = %row.scope, kind = %row.kind, actor = %row.actor, expires_at = row.expires_at, "Decision issued");
        self.after(&[(change, row.clone())]).await;
        Ok((row, true))
    }

    /// Records a rule's decision as simulated (the caller holds the lock): stored and in the
    /// chain, never in the active set; not recorded again while a simulated one of the same
    /// scope, value and kind would still apply as long.
    async fn simulate(
        &self,
        new: NewDecision,
        now: i64,
        expires_at: i64,
    ) -> Result<(DecisionRow, bool), DecisionError> {
        let key = (new.scope, new.value.clone(), new.kind);
        {
            let mut seen = self.inner.simulated.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            seen.retain(|_, until| *until > now);
            if seen.get(&key).is_some_and(|until| *until >= expires_at) {
                self.inner.set.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                let row = row_of(&new, now, expires_at, DecisionStatus::Simulated);
                return Ok((row, false));
            }
        }
        let mut row = row_of(&new, now, expires_at, DecisionStatus::Simulated);
        let change = self.inner.store.insert_decision(&mut row).await?;
        self.inner.simulated.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key, expires_at);
        self.inner.set.counters.simulated.fetch_add(1, Ordering::Relaxed);
        tracing::info!(id = row.id, scope = %row.scope, kind = %row.kind, actor = %row.actor, "Decision simulated (not enforced)");
        self.after(&[(change, row.clone())]).await;
        Ok((row, true))
    }

    /// Issues the decisions of one detection batch; `alerts` maps (rule, dedup key) to the
    /// alert raised in the same batch. Refusals are counted and logged, never fatal.
    pub async fn issue_from_rules(&self, raised: &[RaisedDecision], alerts: &HashMap<(String, String), i64>) {
        for r in raised {
            let d = &r.decision;
            let alert_id = match &d.dedup_key {
                None => None,
                Some(key) => match alerts.get(&(r.rule.clone(), key.clone())) {
                    Some(id) => Some(*id),
                    None => self.latest_alert(&r.rule, key).await,
                },
            };
            let new = NewDecision {
                scope: d.scope,
                value: d.value.clone(),
                kind: d.kind,
                duration_ms: d.duration_ms,
                reason: d.reason.clone(),
                actor: format!("rule:{}", r.rule),
                rule: Some((r.rule.clone(), r.rule_sha256.clone())),
                alert_id,
                event_seqs: d.event_seqs.clone(),
            };
            // Storage failing (database down, disk full) is retried with backoff for as long as
            // alerts are; a refusal is final.
            let deadline = std::time::Instant::now() + crate::alerts::ALERT_RETRY_FOR;
            let mut delay = std::time::Duration::from_millis(250);
            loop {
                match self.issue(new.clone()).await {
                    Ok(_) => break,
                    Err(DecisionError::Allowlisted(entry)) => {
                        tracing::info!(rule = %r.rule, entry = %entry.id, "Rule decision refused: the value is allowlisted");
                        if let Some(alert_id) = alert_id {
                            self.note_refusal(alert_id, r, "allowlisted", entry.to_api_json(self.now())).await;
                        }
                        break;
                    }
                    Err(DecisionError::Conflict(why)) => {
                        tracing::warn!(rule = %r.rule, %why, "Rule decision refused");
                        break;
                    }
                    Err(DecisionError::Store(e)) if std::time::Instant::now() < deadline => {
                        tracing::warn!(rule = %r.rule, error = %e, "Could not store a rule decision; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(std::time::Duration::from_secs(10));
                    }
                    Err(e) => {
                        tracing::error!(rule = %r.rule, error = %e, scope = d.scope.as_str(), "Could not issue a rule decision; given up");
                        break;
                    }
                }
            }
        }
    }

    /// Notes in their alerts' history the decisions the rules' gate refused with a note
    /// (allowlisted values): `decision_refused`, with the decision and the entry.
    pub async fn refused_from_rules(
        &self,
        refused: &[crate::finding::RefusedDecision],
        alerts: &HashMap<(String, String), i64>,
    ) {
        for r in refused {
            let Some(key) = &r.decision.dedup_key else { continue };
            let alert_id = match alerts.get(&(r.rule.clone(), key.clone())) {
                Some(id) => Some(*id),
                None => self.latest_alert(&r.rule, key).await,
            };
            if let Some(alert_id) = alert_id {
                let raised = RaisedDecision {
                    rule: r.rule.clone(),
                    rule_sha256: r.rule_sha256.clone(),
                    decision: r.decision.clone(),
                };
                self.note_refusal(alert_id, &raised, &r.reason, r.note.clone()).await;
            }
        }
    }

    async fn note_refusal(&self, alert_id: i64, r: &RaisedDecision, why: &str, entry: serde_json::Value) {
        let d = &r.decision;
        let details = serde_json::json!({"refused": why, "scope": d.scope.as_str(), "value": d.value,
            "kind": d.kind.as_str(), "duration_ms": d.duration_ms, "decision_reason": d.reason,
            "rule": r.rule, "allowlist_entry": entry,
            "note": format!("decision not issued: {} {} is allowlisted by entry {}", d.scope, d.value,
                entry["id"].as_str().unwrap_or("?"))});
        if let Err(e) = self.inner.alerts.note(alert_id, "decision_refused", "vigil", details).await {
            tracing::warn!(alert_id, error = %e, "Could not note a refused decision in its alert's history");
        }
    }

    async fn latest_alert(&self, rule: &str, dedup_key: &str) -> Option<i64> {
        let filter = AlertFilter {
            rule: Some(rule.into()),
            dedup_key: Some(dedup_key.into()),
            limit: 1,
            ..AlertFilter::default()
        };
        self.inner.store.list_alerts(&filter).await.ok()?.first().map(|a| a.id)
    }

    /// Lifts an active decision early.
    pub async fn lift(&self, id: i64, actor: &str, reason: &str) -> Result<DecisionRow, DecisionError> {
        vigil_sdk::decision::check_reason(reason).map_err(|e| DecisionError::Invalid(e.0))?;
        let _one = self.inner.lock.lock().await;
        self.lift_locked(id, actor, reason).await
    }

    /// [`Self::lift`], the caller holding the lock.
    async fn lift_locked(&self, id: i64, actor: &str, reason: &str) -> Result<DecisionRow, DecisionError> {
        let current = self.get(id).await?;
        if current.status != DecisionStatus::Active {
            return Err(DecisionError::Conflict(format!(
                "decision {id} is {}, only an active one can be lifted",
                current.status
            )));
        }
        let now = self.now();
        let end =
            DecisionEnd { id, status: DecisionStatus::Lifted, at: now, by: actor.into(), reason: Some(reason.into()) };
        let changes = self.inner.store.end_decisions(&[end]).await?;
        let Some(change) = changes.into_iter().next() else {
            return Err(DecisionError::Conflict(format!("decision {id} is no longer active")));
        };
        self.inner.set.remove(id, change.id);
        self.inner.set.counters.lifted.fetch_add(1, Ordering::Relaxed);
        let row = self.get(id).await?;
        tracing::info!(id, actor, "Decision lifted");
        self.after(&[(change, row.clone())]).await;
        Ok(row)
    }

    /// Lifts every active decision that goes with an alert; returns their ids.
    pub async fn lift_for_alert(&self, alert_id: i64, actor: &str, reason: &str) -> Result<Vec<i64>, DecisionError> {
        let mut lifted = Vec::new();
        for d in self.inner.set.for_alert(alert_id) {
            match self.lift(d.id, actor, reason).await {
                Ok(_) => lifted.push(d.id),
                // Expired or lifted meanwhile: nothing left to lift.
                Err(DecisionError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(lifted)
    }
}

/// The row of a decision to store.
fn row_of(new: &NewDecision, now: i64, expires_at: i64, status: DecisionStatus) -> DecisionRow {
    let (origin, rule, rule_sha256) = match &new.rule {
        Some((r, sha)) => ("rule", Some(r.clone()), Some(sha.clone())),
        None => ("manual", None, None),
    };
    let seqs: Vec<i64> = new.event_seqs.iter().copied().take(100).collect();
    DecisionRow {
        scope: new.scope,
        value: new.value.clone(),
        kind: new.kind,
        reason: new.reason.clone(),
        origin: origin.into(),
        actor: new.actor.clone(),
        rule,
        rule_sha256,
        alert_id: new.alert_id,
        event_seqs: serde_json::to_string(&seqs).unwrap_or_else(|_| "[]".into()),
        created_at: now,
        expires_at,
        status,
        ..DecisionRow::default()
    }
}
