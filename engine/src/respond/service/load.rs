//! Loading the active set and the allowlist's API entries at start: rebuilt from the
//! decision and allowlist events of the chain and compared with the `decisions` and
//! `allowlist` tables of the store; any difference is logged and raised as a P1 alert
//! through `alerts`, and the chain is enforced.

use std::collections::HashMap;

use serde_json::{Value, json};
use vigil_sdk::{DecisionKind, Scope, Severity};

use super::allowlist::AllowChain;
use super::{DecisionError, DecisionService};
use crate::store::StoreError;
use crate::store::decisions::{DecisionFilter, DecisionRow, DecisionStatus};

impl DecisionService {
    /// Rebuilds the active set at start from the **chain**, the tamper-evident record, and
    /// compares it with the `decisions` table; returns how many apply. A decision the chain
    /// says is active but the table lost, lifted or changed is enforced as the chain says; a
    /// row active in the table with no issue event in the chain is not enforced (unless
    /// retention purged old events, when the chain cannot speak for it). Any difference is
    /// logged and raised as a P1 alert. Write pending chain events first
    /// ([`Self::chain_pending`]), so a crash between a commit and its chain write is no
    /// difference. The allowlist's API entries are loaded the same way (an entry planted in
    /// the table would otherwise lift decisions): see `allowlist.rs`.
    pub async fn load(&self) -> Result<usize, DecisionError> {
        let _one = self.inner.lock.lock().await;
        let last = self.inner.store.last_decision_change().await?;
        let mut table: HashMap<i64, DecisionRow> = HashMap::new();
        // Active rows that cannot be read (a tampered scope, kind...): id -> why.
        let mut unreadable: HashMap<i64, String> = HashMap::new();
        let mut before = None;
        loop {
            let page = self
                .inner
                .store
                .read_decisions(&DecisionFilter {
                    status: Some(DecisionStatus::Active),
                    before_id: before,
                    limit: 5000,
                    ..Default::default()
                })
                .await?;
            let full = page.len() == 5000;
            for row in page {
                match row {
                    Ok(d) => {
                        before = Some(d.id);
                        table.insert(d.id, d);
                    }
                    Err(StoreError::Corrupt { seq: id, problem }) => {
                        // (0: not even its id could be read.)
                        before = if id > 0 { Some(id) } else { before };
                        unreadable.insert(id, problem);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if !full {
                break;
            }
        }
        let (chain, allow_chain) = self.active_from_chain().await?;
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
                None if unreadable.contains_key(id) => {
                    differences.push(json!({"decision_id": id,
                        "problem": "the row cannot be read (enforced as the chain says)",
                        "row_problem": unreadable[id], "chain": from_chain.to_api_json()}));
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
        for (id, why) in &unreadable {
            if !chain.contains_key(id) {
                differences.push(json!({"decision_id": id,
                    "problem": "active in the table, but the row cannot be read (not enforced)", "row_problem": why}));
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
        self.load_allowlist(allow_chain, purged, &mut differences).await?;
        if !differences.is_empty() {
            tracing::error!(differences = differences.len(), first = %differences[0], "The decisions table differs from the chain; the chain is enforced");
            self.raise_mismatch(differences).await;
        }
        Ok(n)
    }

    /// The decisions the chain's events say are active (issued, neither expired nor lifted),
    /// and the allowlist events it holds (one pass over the `response` events).
    async fn active_from_chain(&self) -> Result<(HashMap<i64, DecisionRow>, AllowChain), DecisionError> {
        let mut issued: HashMap<i64, DecisionRow> = HashMap::new();
        let mut ended = std::collections::HashSet::new();
        let mut allow = AllowChain::default();
        let mut before = None;
        let prefix = format!("{}decision:", crate::event::RESERVED_ID_PREFIX);
        let allow_prefix = format!("{}allowlist:", crate::event::RESERVED_ID_PREFIX);
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
                if ev["event_id"].as_str().is_some_and(|id| id.starts_with(&allow_prefix)) {
                    allow.read(&ev);
                    continue;
                }
                if !ev["event_id"].as_str().is_some_and(|id| id.starts_with(&prefix)) {
                    continue;
                }
                let d = &ev["details"];
                let Some(id) = d["decision_id"].as_i64() else { continue };
                match ev["action"].as_str() {
                    Some("decision_issued") => match row_from_chain(d) {
                        Some(row) => {
                            issued.insert(id, row);
                        }
                        None => tracing::warn!(
                            seq = row.seq,
                            "A decision_issued event names no scope or kind the server knows; not enforced"
                        ),
                    },
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
        Ok((issued, allow))
    }

    /// The P1 alert of a decisions (or allowlist) table that differs from the chain.
    async fn raise_mismatch(&self, differences: Vec<Value>) {
        let raised = crate::finding::RaisedAlert::by_vigil(
            String::new(),
            crate::finding::EmittedAlert {
                title: format!("The decisions table differs from the chain ({} differences)", differences.len()),
                severity: Severity::P1,
                dedup_key: crate::finding::DECISIONS_MISMATCH_DEDUP_KEY.into(),
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
}

/// Whether a stored row says what its chain event says (the fields enforcement reads).
fn same_decision(t: &DecisionRow, c: &DecisionRow) -> bool {
    (&t.scope, &t.value, &t.kind, t.expires_at, t.alert_id, &t.rule_sha256)
        == (&c.scope, &c.value, &c.kind, c.expires_at, c.alert_id, &c.rule_sha256)
}

/// A decision as its `decision_issued` chain event records it (none: its scope or kind is
/// not one the host writes, so it cannot be enforced).
fn row_from_chain(d: &Value) -> Option<DecisionRow> {
    let text = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
    let opt = |k: &str| d[k].as_str().map(str::to_owned);
    Some(DecisionRow {
        id: d["decision_id"].as_i64().unwrap_or_default(),
        scope: Scope::parse(d["scope"].as_str()?)?,
        value: text("value"),
        kind: DecisionKind::parse(d["kind"].as_str()?)?,
        reason: text("decision_reason"),
        origin: text("origin"),
        actor: text("issued_by"),
        rule: opt("rule"),
        rule_sha256: opt("rule_sha256"),
        alert_id: d["alert_id"].as_i64(),
        event_seqs: d["event_seqs"].to_string(),
        created_at: d["created_at"].as_i64().unwrap_or_default(),
        expires_at: d["expires_at"].as_i64().unwrap_or_default(),
        status: DecisionStatus::Active,
        ..DecisionRow::default()
    })
}
