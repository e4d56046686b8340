//! The one writer of decisions: issue (from rules and people), lift, expire; each change
//! is written to the store with its history row, applied to the [`ActiveSet`], then
//! written to the chain (event id `vigil:decision:<change id>`, category `response`) and,
//! for a decision that goes with an alert, noted in the alert's history.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::{ActiveSet, Kind, MIN_DURATION_MS, Scope};
use crate::alerts::AlertService;
use crate::clock::Clock;
use crate::config::DecisionsConfig;
use crate::event::{NewEvent, system_event_with_id};
use crate::ledger::sequencer::SequencerHandle;
use crate::store::decisions::{DecisionChange, DecisionEnd, DecisionFilter, DecisionRow};
use crate::store::{AlertFilter, Store, StoreError};

pub use crate::finding::RaisedDecision;

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
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A decision to issue.
#[derive(Debug, Clone)]
pub struct NewDecision {
    /// Scope.
    pub scope: Scope,
    /// Value.
    pub value: String,
    /// Kind.
    pub kind: Kind,
    /// How long, ms.
    pub duration_ms: i64,
    /// Why.
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
    alerts: AlertService,
    /// One change at a time: the store, the set and the cursor move together.
    lock: tokio::sync::Mutex<()>,
}

/// Most changes one stream response carries.
pub const STREAM_PAGE: i64 = 1000;

/// One stream response.
#[derive(Debug, Default)]
pub struct StreamPage {
    /// Whether `added` is the whole active set (the bouncer replaces its copy).
    pub snapshot: bool,
    /// Decisions that apply.
    pub added: Vec<DecisionRow>,
    /// Decisions that ended.
    pub deleted: Vec<DecisionRow>,
    /// The cursor to pass next.
    pub cursor: i64,
    /// More changes are waiting: call again at once.
    pub more: bool,
}

impl DecisionService {
    /// The service over `set` (shared with the rules' gate).
    pub fn new(
        store: Store,
        sequencer: SequencerHandle,
        clock: Clock,
        config: DecisionsConfig,
        set: Arc<ActiveSet>,
        alerts: AlertService,
    ) -> Self {
        Self { inner: Arc::new(Inner { store, sequencer, clock, config, set, alerts, lock: Default::default() }) }
    }

    /// The active set.
    pub fn set(&self) -> &Arc<ActiveSet> {
        &self.inner.set
    }

    /// The policy.
    pub fn config(&self) -> &DecisionsConfig {
        &self.inner.config
    }

    /// Now, by the server clock.
    pub fn now(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// Rebuilds the active set at start from the **chain**, the tamper-evident record, and
    /// compares it with the `decisions` table; returns how many apply. A decision the chain
    /// says is active but the table lost, lifted or changed is enforced as the chain says; a
    /// row active in the table with no issue event in the chain is not enforced (unless
    /// retention purged old events, when the chain cannot speak for it). Any difference is
    /// logged and raised as a P1 alert. Write pending chain events first
    /// ([`Self::chain_pending`]), so a crash between a commit and its chain write is no
    /// difference.
    pub async fn load(&self) -> Result<usize, DecisionError> {
        let _one = self.inner.lock.lock().await;
        let last = self.inner.store.last_decision_change().await?;
        let mut table: HashMap<i64, DecisionRow> = HashMap::new();
        let mut before = None;
        loop {
            let page = self
                .inner
                .store
                .list_decisions(&DecisionFilter {
                    status: Some("active".into()),
                    before_id: before,
                    limit: 5000,
                    ..Default::default()
                })
                .await?;
            let full = page.len() == 5000;
            before = page.last().map(|d| d.id);
            table.extend(page.into_iter().map(|d| (d.id, d)));
            if !full {
                break;
            }
        }
        let chain = self.active_from_chain().await?;
        let purged = self.inner.store.retention_floor().await? > 0;
        let mut differences = Vec::new();
        let mut rows = Vec::with_capacity(chain.len());
        for (id, from_chain) in &chain {
            match table.get(id) {
                Some(t) if same_decision(t, from_chain) => rows.push(t.clone()),
                Some(t) => {
                    differences.push(json!({"decision_id": id, "problem": "the row differs from its chain event",
                        "row": t.to_api_json(), "chain": from_chain.to_api_json()}));
                    rows.push(from_chain.clone());
                }
                None => {
                    differences.push(json!({"decision_id": id,
                        "problem": "active in the chain, missing or not active in the table (enforced as the chain says)",
                        "chain": from_chain.to_api_json()}));
                    rows.push(from_chain.clone());
                }
            }
        }
        for (id, t) in &table {
            if chain.contains_key(id) {
                continue;
            }
            if purged {
                // Its issue event may be older than the retention floor.
                rows.push(t.clone());
            } else {
                differences.push(json!({"decision_id": id,
                    "problem": "active in the table with no issue event in the chain (not enforced)", "row": t.to_api_json()}));
            }
        }
        let n = rows.len();
        self.inner.set.reset(rows, last);
        drop(_one);
        if !differences.is_empty() {
            tracing::error!(differences = differences.len(), first = %differences[0], "The decisions table differs from the chain; the chain is enforced");
            self.raise_mismatch(differences).await;
        }
        Ok(n)
    }

    /// The decisions the chain's events say are active (issued, neither expired nor lifted).
    async fn active_from_chain(&self) -> Result<HashMap<i64, DecisionRow>, DecisionError> {
        let mut issued: HashMap<i64, DecisionRow> = HashMap::new();
        let mut ended = std::collections::HashSet::new();
        let mut before = None;
        let prefix = format!("{}decision:", crate::event::RESERVED_ID_PREFIX);
        loop {
            let filter = crate::store::EventFilter {
                category: Some("response".into()),
                before_seq: before,
                limit: 1000,
                ..Default::default()
            };
            let page = self.inner.store.query(&filter).await?;
            for row in &page {
                // An unreadable row is verify's to report; it proves nothing here.
                let Ok(ev) = row.to_api_json() else { continue };
                if !ev["event_id"].as_str().is_some_and(|id| id.starts_with(&prefix)) {
                    continue;
                }
                let d = &ev["details"];
                let Some(id) = d["decision_id"].as_i64() else { continue };
                match ev["action"].as_str() {
                    Some("decision_issued") => {
                        issued.insert(id, row_from_chain(d));
                    }
                    Some("decision_expired" | "decision_lifted") => {
                        ended.insert(id);
                    }
                    _ => {}
                }
            }
            if page.len() < 1000 {
                break;
            }
            before = page.last().map(|r| r.seq);
        }
        issued.retain(|id, _| !ended.contains(id));
        Ok(issued)
    }

    /// The P1 alert of a decisions table that differs from the chain.
    async fn raise_mismatch(&self, differences: Vec<Value>) {
        let raised = crate::finding::RaisedAlert::by_vigil(
            String::new(),
            crate::finding::EmittedAlert {
                title: format!("The decisions table differs from the chain ({} decisions)", differences.len()),
                severity: "P1".into(),
                dedup_key: "decisions:chain_mismatch".into(),
                fields: json!({"differences": differences.iter().take(20).collect::<Vec<_>>(), "count": differences.len()}),
                event_seqs: vec![],
                actions: vec![
                    "The database was changed outside the server: GET /v1/integrity/verify, and compare GET /v1/decisions with GET /v1/events?category=response".into(),
                    "Decisions are enforced as the chain records them until this is resolved".into(),
                ],
            },
            self.now(),
        );
        if let Err(e) = self.inner.alerts.record_detected(std::slice::from_ref(&raised)).await {
            tracing::error!(error = %e, "Could not raise the decisions-mismatch alert");
        }
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

    /// Issues a decision. A rule's decision is refused past the rule's and the server's
    /// caps, and is not issued again while an active one of the same scope, value and kind
    /// lasts at least as long (then that one is returned, with `false`).
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
        let expires_at = now.saturating_add(new.duration_ms);
        if let Some((rule, _)) = &new.rule {
            if let Some(existing) = set.covering(new.scope, &new.value, new.kind.as_str(), expires_at) {
                set.counters.duplicates.fetch_add(1, Ordering::Relaxed);
                return Ok(((*existing).clone(), false));
            }
            if set.rule_count(rule) >= self.inner.config.max_active_per_rule {
                set.counters.refused.fetch_add(1, Ordering::Relaxed);
                return Err(DecisionError::Conflict(format!(
                    "rule {rule} holds {} active decisions ([decisions] max_active_per_rule)",
                    self.inner.config.max_active_per_rule
                )));
            }
        }
        if set.len() >= self.inner.config.max_active {
            set.counters.refused.fetch_add(1, Ordering::Relaxed);
            return Err(DecisionError::Conflict(format!(
                "{} decisions are active ([decisions] max_active); lift some first",
                set.len()
            )));
        }
        let (origin, rule, rule_sha256) = match &new.rule {
            Some((r, sha)) => ("rule", Some(r.clone()), Some(sha.clone())),
            None => ("manual", None, None),
        };
        let seqs: Vec<i64> = new.event_seqs.iter().copied().take(100).collect();
        let mut row = DecisionRow {
            scope: new.scope.as_str().into(),
            value: new.value.clone(),
            kind: new.kind.as_str().into(),
            reason: new.reason.clone(),
            origin: origin.into(),
            actor: new.actor.clone(),
            rule,
            rule_sha256,
            alert_id: new.alert_id,
            event_seqs: serde_json::to_string(&seqs).unwrap_or_else(|_| "[]".into()),
            created_at: now,
            expires_at,
            status: "active".into(),
            ..DecisionRow::default()
        };
        let change = self.inner.store.insert_decision(&mut row).await?;
        set.insert(row.clone(), change.id);
        set.counters.issued.fetch_add(1, Ordering::Relaxed);
        tracing::info!(id = row.id, scope = %row.scope, kind = %row.kind, actor = %row.actor, expires_at = row.expires_at, "Decision issued");
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
        let current = self.get(id).await?;
        if current.status != "active" {
            return Err(DecisionError::Conflict(format!(
                "decision {id} is {}, only an active one can be lifted",
                current.status
            )));
        }
        let now = self.now();
        let end = DecisionEnd { id, status: "lifted", at: now, by: actor.into(), reason: Some(reason.into()) };
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

    /// Ends every decision past its expiry; returns how many.
    pub async fn expire_due(&self) -> Result<usize, DecisionError> {
        let now = self.now();
        if self.inner.set.due(now).is_empty() {
            return Ok(0);
        }
        let _one = self.inner.lock.lock().await;
        let due = self.inner.set.due(now);
        let ends: Vec<DecisionEnd> = due
            .iter()
            .map(|&id| DecisionEnd { id, status: "expired", at: now, by: "vigil".into(), reason: None })
            .collect();
        let changes = self.inner.store.end_decisions(&ends).await?;
        let mut pairs = Vec::with_capacity(changes.len());
        for change in changes {
            self.inner.set.remove(change.decision_id, change.id);
            if let Ok(row) = self.get(change.decision_id).await {
                pairs.push((change, row));
            }
        }
        // Any not ended by this call had ended already: they are not active either.
        for id in due {
            self.inner.set.remove(id, 0);
        }
        self.inner.set.counters.expired.fetch_add(pairs.len() as u64, Ordering::Relaxed);
        let n = pairs.len();
        self.after(&pairs).await;
        Ok(n)
    }

    /// Expires due decisions every `every` until the process ends, and now and then writes
    /// changes whose chain write failed (the database was down) to the chain.
    pub fn spawn_expiry(self, every: std::time::Duration) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut ticks: u64 = 0;
            loop {
                tick.tick().await;
                ticks += 1;
                if let Err(e) = self.expire_due().await {
                    tracing::warn!(error = %e, "Could not expire decisions; retried");
                }
                if ticks.is_multiple_of(120)
                    && let Err(e) = self.chain_pending().await
                {
                    tracing::warn!(error = %e, "Could not write pending decision changes to the chain; retried");
                }
            }
        });
    }

    /// What changed since `since` (see `GET /v1/decisions/stream`).
    pub async fn stream(&self, since: Option<i64>) -> Result<StreamPage, DecisionError> {
        let set = &self.inner.set;
        set.counters.stream_requests.fetch_add(1, Ordering::Relaxed);
        let now = self.now();
        let last = set.last_change();
        match since {
            Some(s) if s > 0 && s <= last => {}
            // No cursor, or one from another history (a restored database): the whole set.
            _ => {
                let (rows, cursor) = set.snapshot(now, |_| true);
                return Ok(StreamPage {
                    snapshot: true,
                    added: rows.iter().map(|d| (**d).clone()).collect(),
                    cursor,
                    ..StreamPage::default()
                });
            }
        }
        let since = since.unwrap_or(0);
        if since == last {
            return Ok(StreamPage { cursor: since, ..StreamPage::default() });
        }
        let rows = self.inner.store.decision_changes(since, false, None, STREAM_PAGE + 1).await?;
        let more = rows.len() as i64 > STREAM_PAGE;
        let mut page = StreamPage { more, cursor: since, ..StreamPage::default() };
        let mut added: Vec<DecisionRow> = Vec::new();
        let mut deleted: Vec<DecisionRow> = Vec::new();
        for (change, row) in rows.into_iter().take(STREAM_PAGE as usize) {
            page.cursor = change.id;
            if change.action == "issued" && row.applies_at(now) {
                if !added.iter().any(|d| d.id == row.id) {
                    added.push(row);
                }
            } else {
                added.retain(|d| d.id != row.id);
                if !deleted.iter().any(|d| d.id == row.id) {
                    deleted.push(row);
                }
            }
        }
        page.added = added;
        page.deleted = deleted;
        Ok(page)
    }

    /// Writes any changes not yet in the chain (after a crash or a failed write).
    pub async fn chain_pending(&self) -> Result<usize, DecisionError> {
        let mut total = 0;
        loop {
            let pending = self.inner.store.decision_changes(0, true, None, 500).await?;
            if pending.is_empty() {
                return Ok(total);
            }
            let first = pending[0].0.id;
            total += pending.len();
            self.chain(&pending).await;
            if self.inner.store.decision_changes(0, true, None, 1).await?.first().map(|c| c.0.id) == Some(first) {
                return Ok(total);
            }
        }
    }

    /// Chain events, then the alert notes, of changes just made.
    async fn after(&self, pairs: &[(DecisionChange, DecisionRow)]) {
        if pairs.is_empty() {
            return;
        }
        self.chain(pairs).await;
        for (c, d) in pairs {
            let Some(alert_id) = d.alert_id else { continue };
            let details = json!({"decision_id": d.id, "decision_change_id": c.id, "scope": d.scope, "value": d.value,
                "kind": d.kind, "expires_at": d.expires_at, "reason": c.reason});
            let action = format!("decision_{}", c.action);
            if let Err(e) = self.inner.alerts.note(alert_id, &action, &c.actor, details).await {
                tracing::warn!(alert_id, error = %e, "Could not note a decision in its alert's history");
            }
        }
    }

    async fn chain(&self, pairs: &[(DecisionChange, DecisionRow)]) {
        let events: Vec<NewEvent> = pairs.iter().map(|(c, d)| chain_event(c, d)).collect();
        match self.inner.sequencer.submit(events).await {
            Ok(acks) => {
                let seqs: Vec<(i64, i64)> = pairs.iter().zip(acks).map(|((c, _), ack)| (c.id, ack.seq)).collect();
                if let Err(e) = self.inner.store.set_decision_change_seqs(&seqs).await {
                    tracing::warn!(error = %e, "Could not record the chain seqs of decision changes; retried later");
                }
            }
            Err(e) => tracing::warn!(error = %e, "Could not write decision changes to the chain; retried later"),
        }
    }
}

/// Whether a stored row says what its chain event says (the fields enforcement reads).
fn same_decision(t: &DecisionRow, c: &DecisionRow) -> bool {
    (&t.scope, &t.value, &t.kind, t.expires_at, t.alert_id, &t.rule_sha256)
        == (&c.scope, &c.value, &c.kind, c.expires_at, c.alert_id, &c.rule_sha256)
}

/// A decision as its `decision_issued` chain event records it.
fn row_from_chain(d: &Value) -> DecisionRow {
    let text = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
    let opt = |k: &str| d[k].as_str().map(str::to_owned);
    DecisionRow {
        id: d["decision_id"].as_i64().unwrap_or_default(),
        scope: text("scope"),
        value: text("value"),
        kind: text("kind"),
        reason: text("decision_reason"),
        origin: text("origin"),
        actor: text("issued_by"),
        rule: opt("rule"),
        rule_sha256: opt("rule_sha256"),
        alert_id: d["alert_id"].as_i64(),
        event_seqs: d["event_seqs"].to_string(),
        created_at: d["created_at"].as_i64().unwrap_or_default(),
        expires_at: d["expires_at"].as_i64().unwrap_or_default(),
        status: "active".into(),
        ..DecisionRow::default()
    }
}

/// The chain event of one decision change: who, why, and the decision as it then was.
fn chain_event(c: &DecisionChange, d: &DecisionRow) -> NewEvent {
    let seqs: Value = serde_json::from_str(&d.event_seqs).unwrap_or_else(|_| json!([]));
    let details = json!({
        "decision_id": d.id, "change_id": c.id, "scope": d.scope, "value": d.value, "kind": d.kind,
        "origin": d.origin, "issued_by": d.actor, "rule": d.rule, "rule_sha256": d.rule_sha256,
        "alert_id": d.alert_id, "event_seqs": seqs, "created_at": d.created_at, "expires_at": d.expires_at,
        "reason": c.reason, "decision_reason": d.reason,
    });
    system_event_with_id(c.chain_event_id(), "response", &format!("decision_{}", c.action), &c.actor, details, c.at)
}
