//! Decision rows (`decisions`, `decision_changes`, migration 0011), the `Store` methods over
//! them, and their queries, generated for both backends by [`decision_queries!`] (invoked in
//! `sqlite.rs` and `postgres.rs`). The lifecycle itself lives in `crate::respond`.

use serde_json::{Value, json};
use vigil_sdk::{DecisionKind, Scope};

use super::{Store, StoreError, dispatch};
use crate::event::format_rfc3339_ms;

text_enum! {
    /// Whether a decision still stands (`decisions.status`).
    pub enum DecisionStatus {
        /// It applies until its expiry.
        Active = "active",
        /// It reached its expiry.
        Expired = "expired",
        /// Someone lifted it early.
        Lifted = "lifted",
        /// Recorded in simulate mode (`[decisions] mode = "simulate"`): never enforced.
        Simulated = "simulated",
    }
}

/// One decision as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionRow {
    /// Id (0 before the first write).
    pub id: i64,
    /// What kind of thing it applies to.
    pub scope: Scope,
    /// What it applies to (an address, a user id...).
    pub value: String,
    /// What the app should do.
    pub kind: DecisionKind,
    /// Why (required).
    pub reason: String,
    /// `rule` or `manual`.
    pub origin: String,
    /// `rule:<name>` or `key:<key id>`.
    pub actor: String,
    /// Rule that issued it (rule origin).
    pub rule: Option<String>,
    /// Its module's SHA-256 (rule origin).
    pub rule_sha256: Option<String>,
    /// The alert it goes with.
    pub alert_id: Option<i64>,
    /// JSON array of the triggering event seqs.
    pub event_seqs: String,
    /// Epoch ms.
    pub created_at: i64,
    /// Epoch ms; it no longer applies from then on.
    pub expires_at: i64,
    pub status: DecisionStatus,
    /// When it expired or was lifted.
    pub ended_at: Option<i64>,
    /// Who lifted it (`key:<id>`), or `vigil` for an expiry.
    pub ended_by: Option<String>,
    /// Why it was lifted.
    pub end_reason: Option<String>,
}

impl Default for DecisionRow {
    /// An empty active block of an ip, to be filled in.
    fn default() -> Self {
        Self {
            id: 0,
            scope: Scope::Ip,
            value: String::new(),
            kind: DecisionKind::Block,
            reason: String::new(),
            origin: String::new(),
            actor: String::new(),
            rule: None,
            rule_sha256: None,
            alert_id: None,
            event_seqs: String::new(),
            created_at: 0,
            expires_at: 0,
            status: DecisionStatus::Active,
            ended_at: None,
            ended_by: None,
            end_reason: None,
        }
    }
}

impl DecisionRow {
    /// Whether it applies at `now` (active and not past its expiry).
    pub fn applies_at(&self, now: i64) -> bool {
        self.status == DecisionStatus::Active && self.expires_at > now
    }

    /// The API shape (`GET /v1/decisions...`).
    pub fn to_api_json(&self) -> Value {
        json!({
            "id": self.id, "scope": self.scope.as_str(), "value": self.value, "kind": self.kind.as_str(),
            "reason": self.reason, "origin": self.origin, "actor": self.actor,
            "rule": self.rule, "rule_sha256": self.rule_sha256, "alert_id": self.alert_id,
            "event_seqs": serde_json::from_str::<Value>(&self.event_seqs).unwrap_or_else(|_| json!([])),
            "created_at": format_rfc3339_ms(self.created_at), "expires_at": format_rfc3339_ms(self.expires_at),
            "status": self.status.as_str(), "ended_at": self.ended_at.map(format_rfc3339_ms),
            "ended_by": self.ended_by, "end_reason": self.end_reason,
        })
    }

    /// What a bouncer sees: what enforcement needs and nothing else (no reason, actor, rule,
    /// alert or history): `id`, `scope`, `value`, `kind`, `expires_at`.
    pub fn to_bouncer_json(&self) -> Value {
        json!({
            "id": self.id, "scope": self.scope.as_str(), "value": self.value, "kind": self.kind.as_str(),
            "expires_at": format_rfc3339_ms(self.expires_at),
        })
    }
}

/// One entry of a decision's history (and of the stream).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecisionChange {
    /// Id: the stream cursor.
    pub id: i64,
    pub decision_id: i64,
    /// `issued`, `expired`, `lifted`, `simulated`.
    pub action: String,
    /// `rule:<name>`, `key:<id>` or `vigil`.
    pub actor: String,
    /// Why (the decision's reason when issued; the lift's reason).
    pub reason: Option<String>,
    /// Epoch ms.
    pub at: i64,
    /// Seq of its chain event once written.
    pub chain_seq: Option<i64>,
}

impl DecisionChange {
    /// The id of its chain event (a second write of it is a no-op).
    pub fn chain_event_id(&self) -> String {
        format!("{}decision:{}", crate::event::RESERVED_ID_PREFIX, self.id)
    }

    /// The API shape.
    pub fn to_api_json(&self) -> Value {
        json!({"id": self.id, "action": self.action, "actor": self.actor, "reason": self.reason,
            "at": format_rfc3339_ms(self.at), "chain_seq": self.chain_seq})
    }
}

/// How a decision ends.
#[derive(Debug, Clone)]
pub struct DecisionEnd {
    /// Which.
    pub id: i64,
    /// `Expired` or `Lifted`.
    pub status: DecisionStatus,
    /// Epoch ms.
    pub at: i64,
    /// `vigil` or `key:<id>`.
    pub by: String,
    /// Why (lifts).
    pub reason: Option<String>,
}

/// Filters of the stored listing (`GET /v1/decisions?status=...`).
#[derive(Debug, Clone, Default)]
pub struct DecisionFilter {
    pub scope: Option<Scope>,
    pub value: Option<String>,
    pub kind: Option<DecisionKind>,
    pub status: Option<DecisionStatus>,
    pub alert_id: Option<i64>,
    /// Exactly this id.
    pub id: Option<i64>,
    /// Ids below this (paging, newest first).
    pub before_id: Option<i64>,
    /// Most rows.
    pub limit: i64,
}

impl Store {
    /// Inserts a decision (its id is set) and its `issued` change (`simulated` for a
    /// simulated one), in one transaction.
    pub async fn insert_decision(&self, d: &mut DecisionRow) -> Result<DecisionChange, StoreError> {
        dispatch!(self, s => s.insert_decision(d).await)
    }

    /// Ends active decisions in one transaction; returns the changes written.
    pub async fn end_decisions(&self, ends: &[DecisionEnd]) -> Result<Vec<DecisionChange>, StoreError> {
        if ends.is_empty() {
            return Ok(Vec::new());
        }
        dispatch!(self, s => s.end_decisions(ends).await)
    }

    /// Stored decisions matching a filter, newest first (a row that cannot be read fails the
    /// listing: [`StoreError::Corrupt`]).
    pub async fn list_decisions(&self, f: &DecisionFilter) -> Result<Vec<DecisionRow>, StoreError> {
        self.read_decisions(f).await?.into_iter().collect()
    }

    /// [`Self::list_decisions`] with each row read on its own: one that cannot be read (a
    /// tampered database) is its own [`StoreError::Corrupt`] and the others still come back.
    pub async fn read_decisions(&self, f: &DecisionFilter) -> Result<Vec<Result<DecisionRow, StoreError>>, StoreError> {
        dispatch!(self, s => s.list_decisions(f).await)
    }

    /// Decision changes after `since` (ascending), each with its decision; `unchained`:
    /// only those not yet in the chain (a row that cannot be read fails the listing).
    pub async fn decision_changes(
        &self,
        since: i64,
        unchained: bool,
        decision_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<(DecisionChange, DecisionRow)>, StoreError> {
        self.read_decision_changes(since, unchained, decision_id, limit).await?.into_iter().collect()
    }

    /// [`Self::decision_changes`] with each row read on its own.
    pub async fn read_decision_changes(
        &self,
        since: i64,
        unchained: bool,
        decision_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Result<(DecisionChange, DecisionRow), StoreError>>, StoreError> {
        dispatch!(self, s => s.decision_changes(since, unchained, decision_id, limit).await)
    }

    /// The newest decision change id (0: none).
    pub async fn last_decision_change(&self) -> Result<i64, StoreError> {
        dispatch!(self, s => s.last_decision_change().await)
    }

    /// Records the chain seqs of decision changes: `(change id, seq)`.
    pub async fn set_decision_change_seqs(&self, seqs: &[(i64, i64)]) -> Result<(), StoreError> {
        if seqs.is_empty() {
            return Ok(());
        }
        dispatch!(self, s => s.set_decision_change_seqs(seqs).await)
    }
}

/// Columns of `decisions` d (`decision_row` reads them by name).
macro_rules! decision_columns {
    () => {
        "d.id, d.scope, d.value, d.kind, d.reason, d.origin, d.actor, d.rule, d.rule_sha256, d.alert_id, \
         d.event_seqs, d.created_at, d.expires_at, d.status, d.ended_at, d.ended_by, d.end_reason"
    };
}

macro_rules! decision_queries {
    ($store:ty, $db:ty, $row:ty, writer: $writer:ident) => {
        impl $store {
            /// Inserts a decision and its `issued` change in one transaction; returns the change.
            pub(super) async fn insert_decision(&self, d: &mut DecisionRow) -> Result<DecisionChange, StoreError> {
                let mut tx = self.$writer.begin().await?;
                let mut qb = QueryBuilder::<$db>::new(
                    "INSERT INTO decisions (scope, value, kind, reason, origin, actor, rule, rule_sha256, alert_id, \
                     event_seqs, created_at, expires_at, status) ",
                );
                qb.push_values([&*d], |mut b, d| {
                    b.push_bind(d.scope.as_str())
                        .push_bind(d.value.clone())
                        .push_bind(d.kind.as_str())
                        .push_bind(d.reason.clone())
                        .push_bind(d.origin.clone())
                        .push_bind(d.actor.clone())
                        .push_bind(d.rule.clone())
                        .push_bind(d.rule_sha256.clone())
                        .push_bind(d.alert_id)
                        .push_bind(d.event_seqs.clone())
                        .push_bind(d.created_at)
                        .push_bind(d.expires_at)
                        .push_bind(d.status.as_str());
                });
                qb.push(" RETURNING id");
                d.id = qb.build_query_scalar().fetch_one(&mut *tx).await?;
                let action = if d.status == DecisionStatus::Simulated { "simulated" } else { "issued" };
                let mut change = DecisionChange {
                    decision_id: d.id,
                    action: action.into(),
                    actor: d.actor.clone(),
                    reason: Some(d.reason.clone()),
                    at: d.created_at,
                    ..DecisionChange::default()
                };
                change.id = insert_decision_change(&mut tx, &change).await?;
                tx.commit().await?;
                Ok(change)
            }

            /// Ends active decisions (one transaction); returns the changes written (a
            /// decision no longer active is left alone).
            pub(super) async fn end_decisions(&self, ends: &[DecisionEnd]) -> Result<Vec<DecisionChange>, StoreError> {
                let mut tx = self.$writer.begin().await?;
                let mut changes = Vec::new();
                for e in ends {
                    let mut qb = QueryBuilder::<$db>::new("UPDATE decisions SET status = ");
                    qb.push_bind(e.status.as_str())
                        .push(", ended_at = ")
                        .push_bind(e.at)
                        .push(", ended_by = ")
                        .push_bind(e.by.clone())
                        .push(", end_reason = ")
                        .push_bind(e.reason.clone())
                        .push(" WHERE status = ")
                        .push_bind(DecisionStatus::Active.as_str())
                        .push(" AND id = ")
                        .push_bind(e.id);
                    if qb.build().execute(&mut *tx).await?.rows_affected() != 1 {
                        continue;
                    }
                    let mut change = DecisionChange {
                        decision_id: e.id,
                        action: e.status.as_str().into(),
                        actor: e.by.clone(),
                        reason: e.reason.clone(),
                        at: e.at,
                        ..DecisionChange::default()
                    };
                    change.id = insert_decision_change(&mut tx, &change).await?;
                    changes.push(change);
                }
                tx.commit().await?;
                Ok(changes)
            }

            /// Decisions matching a filter, newest first, each read on its own.
            pub(super) async fn list_decisions(
                &self,
                f: &DecisionFilter,
            ) -> Result<Vec<Result<DecisionRow, StoreError>>, StoreError> {
                let mut qb =
                    QueryBuilder::<$db>::new(concat!("SELECT ", decision_columns!(), " FROM decisions d WHERE 1=1"));
                for (column, value) in [
                    (" AND d.scope = ", f.scope.map(Scope::as_str)),
                    (" AND d.value = ", f.value.as_deref()),
                    (" AND d.kind = ", f.kind.map(DecisionKind::as_str)),
                    (" AND d.status = ", f.status.map(DecisionStatus::as_str)),
                ] {
                    if let Some(v) = value {
                        qb.push(column).push_bind(v.to_owned());
                    }
                }
                if let Some(a) = f.alert_id {
                    qb.push(" AND d.alert_id = ").push_bind(a);
                }
                if let Some(i) = f.id {
                    qb.push(" AND d.id = ").push_bind(i);
                }
                if let Some(b) = f.before_id {
                    qb.push(" AND d.id < ").push_bind(b);
                }
                qb.push(" ORDER BY d.id DESC LIMIT ").push_bind(f.limit);
                Ok(qb.build().fetch_all(&self.$writer).await?.iter().map(decision_row).collect())
            }

            /// Changes after `since` (ascending), each with its decision as it is now.
            pub(super) async fn decision_changes(
                &self,
                since: i64,
                unchained: bool,
                decision_id: Option<i64>,
                limit: i64,
            ) -> Result<Vec<Result<(DecisionChange, DecisionRow), StoreError>>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(concat!(
                    "SELECT c.id AS change_id, c.decision_id, c.action, c.actor AS change_actor, \
                     c.reason AS change_reason, c.at, c.chain_seq, ",
                    decision_columns!(),
                    " FROM decision_changes c JOIN decisions d ON d.id = c.decision_id WHERE c.id > "
                ));
                qb.push_bind(since);
                if unchained {
                    qb.push(" AND c.chain_seq IS NULL");
                }
                if let Some(d) = decision_id {
                    qb.push(" AND c.decision_id = ").push_bind(d);
                }
                qb.push(" ORDER BY c.id LIMIT ").push_bind(limit);
                Ok(qb
                    .build()
                    .fetch_all(&self.$writer)
                    .await?
                    .iter()
                    .map(|r| {
                        let c = Columns::keyed(r, "decision_changes", "change_id")?;
                        let change = DecisionChange {
                            id: c.id(),
                            decision_id: c.get("decision_id")?,
                            action: c.get("action")?,
                            actor: c.get("change_actor")?,
                            reason: c.get("change_reason")?,
                            at: c.get("at")?,
                            chain_seq: c.get("chain_seq")?,
                        };
                        Ok((change, decision_row(r)?))
                    })
                    .collect())
            }

            /// The newest change id (0: none).
            pub(super) async fn last_decision_change(&self) -> Result<i64, StoreError> {
                let n: Option<i64> =
                    sqlx::query_scalar("SELECT MAX(id) FROM decision_changes").fetch_one(&self.$writer).await?;
                Ok(n.unwrap_or(0))
            }

            /// Records the chain seqs of changes.
            pub(super) async fn set_decision_change_seqs(&self, seqs: &[(i64, i64)]) -> Result<(), StoreError> {
                let mut tx = self.$writer.begin().await?;
                for (id, seq) in seqs {
                    let mut qb = QueryBuilder::<$db>::new("UPDATE decision_changes SET chain_seq = ");
                    qb.push_bind(*seq).push(" WHERE id = ").push_bind(*id);
                    qb.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }
        }

        async fn insert_decision_change(
            tx: &mut sqlx::Transaction<'_, $db>,
            c: &DecisionChange,
        ) -> Result<i64, StoreError> {
            let mut qb =
                QueryBuilder::<$db>::new("INSERT INTO decision_changes (decision_id, action, actor, reason, at) ");
            qb.push_values([c], |mut b, c| {
                b.push_bind(c.decision_id)
                    .push_bind(c.action.clone())
                    .push_bind(c.actor.clone())
                    .push_bind(c.reason.clone())
                    .push_bind(c.at);
            });
            qb.push(" RETURNING id");
            Ok(qb.build_query_scalar().fetch_one(&mut **tx).await?)
        }

        fn decision_row(r: &$row) -> Result<DecisionRow, StoreError> {
            let c = Columns::new(r, "decisions")?;
            Ok(DecisionRow {
                id: c.id(),
                scope: c.parse("scope", Scope::parse, Scope::ALL.map(Scope::as_str))?,
                value: c.get("value")?,
                kind: c.parse("kind", DecisionKind::parse, DecisionKind::ALL.map(DecisionKind::as_str))?,
                reason: c.get("reason")?,
                origin: c.get("origin")?,
                actor: c.get("actor")?,
                rule: c.get("rule")?,
                rule_sha256: c.get("rule_sha256")?,
                alert_id: c.get("alert_id")?,
                event_seqs: c.get("event_seqs")?,
                created_at: c.get("created_at")?,
                expires_at: c.get("expires_at")?,
                status: c.parse("status", DecisionStatus::parse, DecisionStatus::names())?,
                ended_at: c.get("ended_at")?,
                ended_by: c.get("ended_by")?,
                end_reason: c.get("end_reason")?,
            })
        }
    };
}

pub(crate) use {decision_columns, decision_queries};
