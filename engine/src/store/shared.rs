//! Queries whose SQL is the same on both backends, written once: `backend_queries!` expands
//! to the filtered event query, statistics, checkpoints, API keys, alert storage and
//! listing, and the row decoders, for one concrete store type (placeholders come from sqlx's `QueryBuilder`, so
//! they are right for each database). Each backend file invokes it once.

/// Columns of `alerts`, in the order `alert_row` reads them.
macro_rules! alert_columns {
    () => {
        "id, rule, rule_version, rule_sha256, severity, title, dedup_key, status, count, first_seen, last_seen, \
         event_seqs, fields, actions, created_at, disposition, acked_by, acked_at, resolved_by, resolved_at, \
         silenced_by, notified_count, last_notified_at, receivers, escalation_policy"
    };
}

/// Columns written by an alert insert (all but `id`).
macro_rules! alert_insert_columns {
    () => {
        "rule, rule_version, rule_sha256, severity, title, dedup_key, status, count, first_seen, last_seen, \
         event_seqs, fields, actions, created_at, disposition, acked_by, acked_at, resolved_by, resolved_at, \
         silenced_by, notified_count, last_notified_at, receivers, escalation_policy"
    };
}

/// Columns of `checkpoints`, in the order `checkpoint_row` reads them.
macro_rules! checkpoint_columns {
    () => {
        "id, seq, hash, created_at, prev_id, signature, key_id"
    };
}

/// Columns of `notifications`, in the order `notification_row` reads them.
macro_rules! notification_columns {
    () => {
        "id, alert_id, receiver, kind, idempotency_key, payload, status, attempts, next_attempt_at, created_at, \
         updated_at, delivered_at, last_error"
    };
}

macro_rules! backend_queries {
    (
        $store:ty, $db:ty, $row:ty,
        reader: $reader:ident, writer: $writer:ident, greatest: $greatest:literal, fence: $fence:literal,
        postings: $postings:literal
    ) => {
        const SELECT_EVENTS: &str = "SELECT seq, event_id, ts, category, action, severity, outcome, organization_id, \
                                     user_id, ip, request_id, canon, prev_hash, hash FROM events";

        impl $store {
            pub(super) async fn seq_bounds(
                &self,
                since: Option<i64>,
                until: Option<i64>,
            ) -> Result<Option<(i64, i64)>, StoreError> {
                // The subquery, fenced on PostgreSQL with OFFSET 0, makes the planner read the
                // window from the `ts` index; a bare MIN(seq) lets PostgreSQL walk the primary
                // key from seq 1 until the first row in the window (400 ms at 1M events).
                let mut qb = QueryBuilder::<$db>::new("SELECT MIN(seq), MAX(seq) FROM (SELECT seq FROM events WHERE 1=1");
                query::push_time_range(&mut qb, since, until);
                qb.push(concat!($fence, ") w"));
                let row = qb.build().fetch_one(&self.$reader).await?;
                Ok(row.get::<Option<i64>, _>(0).zip(row.get::<Option<i64>, _>(1)))
            }

            pub(super) async fn query(&self, filter: &EventFilter) -> Result<Vec<StoredRow>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(SELECT_EVENTS);
                query::push_event_filter(&mut qb, filter, $postings);
                qb.push(" ORDER BY seq DESC LIMIT ").push_bind(filter.limit);
                // Not cached: see `scan` (a tampered column type must not fail the query).
                let rows = qb.build().persistent(false).fetch_all(&self.$reader).await?;
                Ok(rows.iter().map(stored_row).collect())
            }

            pub(super) async fn stats(&self, f: &StatsFilter) -> Result<Stats, StoreError> {
                let mut stats = Stats::default();
                let counts = |column: &str, limit: Option<i64>| {
                    let mut qb = QueryBuilder::<$db>::new(format!("SELECT {column}, COUNT(*) AS n FROM events"));
                    query::push_stats_filter(&mut qb, f, $postings);
                    qb.push(format_args!(" AND {column} IS NOT NULL GROUP BY {column} ORDER BY n DESC, {column}"));
                    if let Some(limit) = limit {
                        qb.push(" LIMIT ").push_bind(limit);
                    }
                    qb
                };
                let mut grouped = Vec::new();
                for column in query::GROUPED_COLUMNS {
                    grouped.push(self.fetch_counts(counts(column, None)).await?);
                }
                let [by_category, by_severity, by_outcome, by_action]: [Vec<Count>; 4] =
                    grouped.try_into().expect("four grouped columns");
                (stats.by_category, stats.by_severity, stats.by_outcome, stats.by_action) =
                    (by_category, by_severity, by_outcome, by_action);
                stats.top_ips = self.fetch_counts(counts("ip", Some(f.top))).await?;
                stats.top_users = self.fetch_counts(counts("user_id", Some(f.top))).await?;
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT COUNT(*), \
                     CAST(COALESCE(SUM(CASE WHEN outcome = 'failure' THEN 1 ELSE 0 END), 0) AS BIGINT), \
                     CAST(COALESCE(SUM(CASE WHEN severity IN ('high', 'critical') THEN 1 ELSE 0 END), 0) AS BIGINT) \
                     FROM events",
                );
                query::push_stats_filter(&mut qb, f, $postings);
                let row = qb.build().fetch_one(&self.$reader).await?;
                let failures: i64 = row.get(1);
                stats.total = row.get(0);
                stats.high_risk = row.get(2);
                stats.failure_rate = if stats.total > 0 { failures as f64 / stats.total as f64 } else { 0.0 };
                let mut qb = QueryBuilder::<$db>::new("SELECT (ts / ");
                qb.push_bind(f.bucket_ms).push(") * ").push_bind(f.bucket_ms).push(" AS b, COUNT(*) FROM events");
                query::push_stats_filter(&mut qb, f, $postings);
                qb.push(" GROUP BY b ORDER BY b LIMIT 10000");
                stats.buckets = qb
                    .build()
                    .fetch_all(&self.$reader)
                    .await?
                    .iter()
                    .map(|r| query::Bucket { start: crate::event::format_rfc3339_ms(r.get(0)), count: r.get(1) })
                    .collect();
                Ok(stats)
            }

            async fn fetch_counts(&self, mut qb: QueryBuilder<$db>) -> Result<Vec<Count>, StoreError> {
                let rows = qb.build().fetch_all(&self.$reader).await?;
                Ok(rows.iter().map(|r| Count { value: r.get(0), count: r.get(1) }).collect())
            }

            pub(super) async fn checkpoints(&self, from: i64, to: i64) -> Result<Vec<Checkpoint>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(concat!("SELECT ", checkpoint_columns!(), " FROM checkpoints WHERE seq >= "));
                qb.push_bind(from).push(" AND seq <= ").push_bind(to).push(" ORDER BY id");
                Ok(qb.build().fetch_all(&self.$reader).await?.iter().map(checkpoint_row).collect())
            }

            pub(super) async fn last_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(
                    concat!("SELECT ", checkpoint_columns!(), " FROM checkpoints ORDER BY id DESC LIMIT 1"),
                );
                Ok(qb.build().fetch_optional(&self.$writer).await?.as_ref().map(checkpoint_row))
            }

            pub(super) async fn checkpoint_where(
                &self,
                condition: &'static str,
                value: i64,
                order: &'static str,
            ) -> Result<Option<Checkpoint>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(concat!("SELECT ", checkpoint_columns!(), " FROM checkpoints WHERE "));
                qb.push(condition).push_bind(value).push(order).push(" LIMIT 1");
                Ok(qb.build().fetch_optional(&self.$writer).await?.as_ref().map(checkpoint_row))
            }

            pub(super) async fn list_checkpoints(&self, before_id: i64, limit: i64) -> Result<Vec<Checkpoint>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(concat!("SELECT ", checkpoint_columns!(), " FROM checkpoints WHERE id < "));
                qb.push_bind(before_id).push(" ORDER BY id DESC LIMIT ").push_bind(limit);
                Ok(qb.build().fetch_all(&self.$reader).await?.iter().map(checkpoint_row).collect())
            }

            pub(super) async fn retention_floor(&self) -> Result<i64, StoreError> {
                let floor: Option<i64> = sqlx::query_scalar("SELECT floor FROM retention_floor WHERE id = 1")
                    .fetch_optional(&self.$writer)
                    .await?;
                Ok(floor.unwrap_or(0))
            }

            pub(super) async fn insert_key(&self, key: &ApiKeyRow) -> Result<(), StoreError> {
                let mut qb = QueryBuilder::<$db>::new(
                    "INSERT INTO api_keys (id, name, role, key_hash, created_at, revoked_at) ",
                );
                qb.push_values([key], |mut b, k| {
                    b.push_bind(k.id.clone())
                        .push_bind(k.name.clone())
                        .push_bind(k.role.clone())
                        .push_bind(k.key_hash.clone())
                        .push_bind(k.created_at)
                        .push_bind(k.revoked_at);
                });
                qb.build().execute(&self.$writer).await?;
                Ok(())
            }

            pub(super) async fn list_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT id, name, role, key_hash, created_at, revoked_at FROM api_keys ORDER BY created_at, id",
                );
                Ok(qb.build().fetch_all(&self.$writer).await?.iter().map(key_row).collect())
            }

            pub(super) async fn revoke_key(&self, id: &str, at: i64) -> Result<bool, StoreError> {
                let mut qb = QueryBuilder::<$db>::new("UPDATE api_keys SET revoked_at = ");
                qb.push_bind(at).push(" WHERE id = ").push_bind(id.to_owned()).push(" AND revoked_at IS NULL");
                Ok(qb.build().execute(&self.$writer).await?.rows_affected() == 1)
            }

            pub(super) async fn save_rule(&self, r: &StoredRule) -> Result<(), StoreError> {
                let mut qb = QueryBuilder::<$db>::new(
                    "INSERT INTO rules (name, sha256, module, config, source, actor, deployed_at, status, reason, status_at) ",
                );
                qb.push_values([r], |mut b, r| {
                    b.push_bind(r.name.clone())
                        .push_bind(r.sha256.clone())
                        .push_bind(r.module.clone())
                        .push_bind(r.config.clone())
                        .push_bind(r.source.clone())
                        .push_bind(r.actor.clone())
                        .push_bind(r.deployed_at)
                        .push_bind(r.status.clone())
                        .push_bind(r.reason.clone())
                        .push_bind(r.status_at);
                });
                qb.push(
                    " ON CONFLICT (name) DO UPDATE SET sha256 = excluded.sha256, module = excluded.module, \
                     config = excluded.config, source = excluded.source, actor = excluded.actor, \
                     deployed_at = excluded.deployed_at, status = excluded.status, reason = excluded.reason, \
                     status_at = excluded.status_at",
                );
                qb.build().execute(&self.$writer).await?;
                Ok(())
            }

            pub(super) async fn set_rule_status(
                &self,
                name: &str,
                sha256: &str,
                status: &str,
                reason: Option<&str>,
                at: i64,
            ) -> Result<bool, StoreError> {
                let mut qb = QueryBuilder::<$db>::new("UPDATE rules SET status = ");
                qb.push_bind(status.to_owned())
                    .push(", reason = ")
                    .push_bind(reason.map(str::to_owned))
                    .push(", status_at = ")
                    .push_bind(at)
                    .push(" WHERE name = ")
                    .push_bind(name.to_owned())
                    .push(" AND sha256 = ")
                    .push_bind(sha256.to_owned());
                Ok(qb.build().execute(&self.$writer).await?.rows_affected() == 1)
            }

            pub(super) async fn delete_rule(&self, name: &str) -> Result<bool, StoreError> {
                let mut qb = QueryBuilder::<$db>::new("DELETE FROM rules WHERE name = ");
                qb.push_bind(name.to_owned());
                Ok(qb.build().execute(&self.$writer).await?.rows_affected() == 1)
            }

            pub(super) async fn load_rules(&self) -> Result<Vec<StoredRule>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT name, sha256, module, config, source, actor, deployed_at, status, reason, status_at \
                     FROM rules ORDER BY name",
                );
                let rows = qb.build().fetch_all(&self.$writer).await?;
                Ok(rows
                    .iter()
                    .map(|r| StoredRule {
                        name: r.get(0),
                        sha256: r.get(1),
                        module: r.get(2),
                        config: r.get(3),
                        source: r.get(4),
                        actor: r.get(5),
                        deployed_at: r.get(6),
                        status: r.get(7),
                        reason: r.get(8),
                        status_at: r.get(9),
                    })
                    .collect())
            }

            pub(super) async fn list_alerts(&self, f: &AlertFilter) -> Result<Vec<AlertRow>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(concat!("SELECT ", alert_columns!(), " FROM alerts"));
                alerting::push_alert_filter(&mut qb, f);
                qb.push(" ORDER BY id DESC LIMIT ").push_bind(f.limit);
                let rows = qb.build().fetch_all(&self.$writer).await?;
                Ok(rows.iter().map(alert_row).collect())
            }

            pub(super) async fn find_open_alert(
                &self,
                rule: &str,
                severity: &str,
                dedup_key: &str,
                last_seen_since: i64,
            ) -> Result<Option<AlertRow>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(concat!("SELECT ", alert_columns!(), " FROM alerts WHERE rule = "));
                qb.push_bind(rule.to_owned())
                    .push(" AND severity = ")
                    .push_bind(severity.to_owned())
                    .push(" AND dedup_key = ")
                    .push_bind(dedup_key.to_owned())
                    .push(" AND status <> 'resolved' AND last_seen >= ")
                    .push_bind(last_seen_since)
                    .push(" ORDER BY id DESC LIMIT 1");
                Ok(qb.build().fetch_optional(&self.$writer).await?.as_ref().map(alert_row))
            }

            pub(super) async fn commit_alert_writes(&self, writes: &mut [AlertWrite]) -> Result<(), StoreError> {
                let mut tx = self.$writer.begin().await?;
                for w in writes.iter_mut() {
                    let a = &w.alert;
                    if a.id == 0 {
                        let mut qb = QueryBuilder::<$db>::new(concat!("INSERT INTO alerts (", alert_insert_columns!(), ") "));
                        qb.push_values([a], |mut b, a| {
                            b.push_bind(a.rule.clone())
                                .push_bind(a.rule_version.clone())
                                .push_bind(a.rule_sha256.clone())
                                .push_bind(a.severity.clone())
                                .push_bind(a.title.clone())
                                .push_bind(a.dedup_key.clone())
                                .push_bind(a.status.clone())
                                .push_bind(a.count)
                                .push_bind(a.first_seen)
                                .push_bind(a.last_seen)
                                .push_bind(a.event_seqs.clone())
                                .push_bind(a.fields.clone())
                                .push_bind(a.actions.clone())
                                .push_bind(a.created_at)
                                .push_bind(a.disposition.clone())
                                .push_bind(a.acked_by.clone())
                                .push_bind(a.acked_at)
                                .push_bind(a.resolved_by.clone())
                                .push_bind(a.resolved_at)
                                .push_bind(a.silenced_by.clone())
                                .push_bind(a.notified_count)
                                .push_bind(a.last_notified_at)
                                .push_bind(a.receivers.clone())
                                .push_bind(a.escalation_policy.clone());
                        });
                        qb.push(" RETURNING id");
                        w.alert.id = qb.build_query_scalar().fetch_one(&mut *tx).await?;
                    } else {
                        let mut qb = QueryBuilder::<$db>::new("UPDATE alerts SET status = ");
                        qb.push_bind(a.status.clone())
                            .push(", count = ")
                            .push_bind(a.count)
                            .push(", last_seen = ")
                            .push_bind(a.last_seen)
                            .push(", event_seqs = ")
                            .push_bind(a.event_seqs.clone())
                            .push(", disposition = ")
                            .push_bind(a.disposition.clone())
                            .push(", acked_by = ")
                            .push_bind(a.acked_by.clone())
                            .push(", acked_at = ")
                            .push_bind(a.acked_at)
                            .push(", resolved_by = ")
                            .push_bind(a.resolved_by.clone())
                            .push(", resolved_at = ")
                            .push_bind(a.resolved_at)
                            .push(", silenced_by = ")
                            .push_bind(a.silenced_by.clone())
                            .push(", notified_count = ")
                            .push_bind(a.notified_count)
                            .push(", last_notified_at = ")
                            .push_bind(a.last_notified_at)
                            .push(", receivers = ")
                            .push_bind(a.receivers.clone())
                            .push(", escalation_policy = ")
                            .push_bind(a.escalation_policy.clone())
                            .push(" WHERE id = ")
                            .push_bind(a.id);
                        qb.build().execute(&mut *tx).await?;
                    }
                    let alert_id = w.alert.id;
                    w.change.alert_id = alert_id;
                    let c = &w.change;
                    let mut qb = QueryBuilder::<$db>::new("INSERT INTO alert_changes (alert_id, action, actor, at, details) ");
                    qb.push_values([c], |mut b, c| {
                        b.push_bind(c.alert_id)
                            .push_bind(c.action.clone())
                            .push_bind(c.actor.clone())
                            .push_bind(c.at)
                            .push_bind(c.details.clone());
                    });
                    qb.push(" RETURNING id");
                    w.change.id = qb.build_query_scalar().fetch_one(&mut *tx).await?;
                    let change_id = w.change.id;
                    if w.cancel_escalations {
                        let mut qb = QueryBuilder::<$db>::new("UPDATE escalations SET status = 'cancelled' WHERE alert_id = ");
                        qb.push_bind(alert_id).push(" AND status = 'pending'");
                        qb.build().execute(&mut *tx).await?;
                    }
                    if let Some(done) = w.finished_escalation {
                        let mut qb = QueryBuilder::<$db>::new("UPDATE escalations SET status = 'done' WHERE id = ");
                        qb.push_bind(done);
                        qb.build().execute(&mut *tx).await?;
                    }
                    for e in w.escalations.iter_mut() {
                        e.alert_id = alert_id;
                        let mut qb = QueryBuilder::<$db>::new("INSERT INTO escalations (alert_id, policy, level, round, due_at, status) ");
                        qb.push_values([&*e], |mut b, e| {
                            b.push_bind(e.alert_id)
                                .push_bind(e.policy.clone())
                                .push_bind(e.level)
                                .push_bind(e.round)
                                .push_bind(e.due_at)
                                .push_bind(e.status.clone());
                        });
                        qb.push(" RETURNING id");
                        e.id = qb.build_query_scalar().fetch_one(&mut *tx).await?;
                    }
                    let mut per_receiver: HashMap<String, usize> = HashMap::new();
                    for n in w.notifications.iter_mut() {
                        n.alert_id = Some(alert_id);
                        let k = per_receiver.entry(n.receiver.clone()).or_default();
                        if n.idempotency_key.is_empty() {
                            // A second message to one receiver in one change gets a suffix.
                            n.idempotency_key = match *k {
                                0 => format!("n{change_id}-{}", n.receiver),
                                k => format!("n{change_id}-{}-{k}", n.receiver),
                            };
                        }
                        *k += 1;
                    }
                    insert_notifications(&mut tx, &mut w.notifications).await?;
                    if let Some(silence) = &w.silence_hit {
                        let mut qb = QueryBuilder::<$db>::new("UPDATE silences SET matched = matched + 1 WHERE id = ");
                        qb.push_bind(silence.clone());
                        qb.build().execute(&mut *tx).await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            pub(super) async fn insert_notifications(&self, rows: &mut [NotificationRow]) -> Result<(), StoreError> {
                let mut tx = self.$writer.begin().await?;
                insert_notifications(&mut tx, rows).await?;
                tx.commit().await?;
                Ok(())
            }

            pub(super) async fn replace_notifications(
                &self,
                rows: &mut [NotificationRow],
                ids: &[i64],
                status: &str,
                at: i64,
            ) -> Result<(), StoreError> {
                let mut tx = self.$writer.begin().await?;
                insert_notifications(&mut tx, rows).await?;
                if !ids.is_empty() {
                    let mut qb = QueryBuilder::<$db>::new("UPDATE notifications SET status = ");
                    qb.push_bind(status.to_owned()).push(", updated_at = ").push_bind(at).push(" WHERE id IN (");
                    let mut sep = qb.separated(", ");
                    for id in ids {
                        sep.push_bind(*id);
                    }
                    qb.push(")");
                    qb.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            pub(super) async fn touch_notified(&self, ids: &[i64], at: i64) -> Result<(), StoreError> {
                let mut qb = QueryBuilder::<$db>::new("UPDATE alerts SET last_notified_at = ");
                qb.push_bind(at).push(" WHERE id IN (");
                let mut sep = qb.separated(", ");
                for id in ids {
                    sep.push_bind(*id);
                }
                qb.push(")");
                qb.build().execute(&self.$writer).await?;
                Ok(())
            }

            pub(super) async fn set_change_seqs(&self, seqs: &[(i64, i64)]) -> Result<(), StoreError> {
                let mut tx = self.$writer.begin().await?;
                for (id, seq) in seqs {
                    let mut qb = QueryBuilder::<$db>::new("UPDATE alert_changes SET chain_seq = ");
                    qb.push_bind(*seq).push(" WHERE id = ").push_bind(*id);
                    qb.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            pub(super) async fn alert_changes(&self, alert_id: Option<i64>, unchained: bool, limit: i64) -> Result<Vec<AlertChange>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new("SELECT id, alert_id, action, actor, at, details, chain_seq FROM alert_changes WHERE 1=1");
                if let Some(a) = alert_id {
                    qb.push(" AND alert_id = ").push_bind(a);
                }
                if unchained {
                    qb.push(" AND chain_seq IS NULL");
                }
                // One alert's history: the newest `limit` entries; the unchained backlog:
                // the oldest.
                qb.push(if alert_id.is_some() { " ORDER BY id DESC LIMIT " } else { " ORDER BY id LIMIT " })
                    .push_bind(limit);
                let mut rows = qb.build().fetch_all(&self.$writer).await?;
                if alert_id.is_some() {
                    rows.reverse();
                }
                Ok(rows
                    .iter()
                    .map(|r| AlertChange {
                        id: r.get(0),
                        alert_id: r.get(1),
                        action: r.get(2),
                        actor: r.get(3),
                        at: r.get(4),
                        details: r.get(5),
                        chain_seq: r.get(6),
                    })
                    .collect())
            }

            pub(super) async fn list_notifications(&self, f: &NotificationFilter, due_before: Option<i64>) -> Result<Vec<NotificationRow>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(concat!("SELECT ", notification_columns!(), " FROM notifications WHERE 1=1"));
                if let Some(s) = &f.status {
                    qb.push(" AND status = ").push_bind(s.clone());
                }
                if let Some(r) = &f.receiver {
                    qb.push(" AND receiver = ").push_bind(r.clone());
                }
                if let Some(a) = f.alert_id {
                    qb.push(" AND alert_id = ").push_bind(a);
                }
                if let Some(b) = f.before_id {
                    qb.push(" AND id < ").push_bind(b);
                }
                if let Some(k) = &f.idempotency_key {
                    qb.push(" AND idempotency_key = ").push_bind(k.clone());
                }
                if let Some(due) = due_before {
                    qb.push(" AND next_attempt_at <= ").push_bind(due).push(" ORDER BY id ASC LIMIT ");
                } else {
                    qb.push(" ORDER BY id DESC LIMIT ");
                }
                qb.push_bind(f.limit);
                let rows = qb.build().fetch_all(&self.$writer).await?;
                Ok(rows.iter().map(notification_row).collect())
            }

            pub(super) async fn update_notification(&self, n: &NotificationRow) -> Result<(), StoreError> {
                let mut qb = QueryBuilder::<$db>::new("UPDATE notifications SET status = ");
                qb.push_bind(n.status.clone())
                    .push(", attempts = ")
                    .push_bind(n.attempts)
                    .push(", next_attempt_at = ")
                    .push_bind(n.next_attempt_at)
                    .push(", updated_at = ")
                    .push_bind(n.updated_at)
                    .push(", created_at = ")
                    .push_bind(n.created_at)
                    .push(", delivered_at = ")
                    .push_bind(n.delivered_at)
                    .push(", last_error = ")
                    .push_bind(n.last_error.clone())
                    .push(" WHERE id = ")
                    .push_bind(n.id);
                qb.build().execute(&self.$writer).await?;
                Ok(())
            }

            pub(super) async fn set_notification_status(&self, ids: &[i64], status: &str, at: i64) -> Result<(), StoreError> {
                if ids.is_empty() {
                    return Ok(());
                }
                let mut qb = QueryBuilder::<$db>::new("UPDATE notifications SET status = ");
                qb.push_bind(status.to_owned()).push(", updated_at = ").push_bind(at).push(" WHERE id IN (");
                let mut sep = qb.separated(", ");
                for id in ids {
                    sep.push_bind(*id);
                }
                qb.push(")");
                qb.build().execute(&self.$writer).await?;
                Ok(())
            }

            pub(super) async fn last_notification_at(&self, receiver: &str, kind: &str) -> Result<Option<i64>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new("SELECT MAX(created_at) FROM notifications WHERE receiver = ");
                qb.push_bind(receiver.to_owned()).push(" AND kind = ").push_bind(kind.to_owned());
                Ok(qb.build_query_scalar::<Option<i64>>().fetch_one(&self.$writer).await?)
            }

            pub(super) async fn insert_silence(&self, s: &SilenceRow) -> Result<(), StoreError> {
                let mut qb = QueryBuilder::<$db>::new(
                    "INSERT INTO silences (id, matchers, starts_at, ends_at, created_by, comment, created_at, expired_at, matched) ",
                );
                qb.push_values([s], |mut b, s| {
                    b.push_bind(s.id.clone())
                        .push_bind(s.matchers.clone())
                        .push_bind(s.starts_at)
                        .push_bind(s.ends_at)
                        .push_bind(s.created_by.clone())
                        .push_bind(s.comment.clone())
                        .push_bind(s.created_at)
                        .push_bind(s.expired_at)
                        .push_bind(s.matched);
                });
                qb.build().execute(&self.$writer).await?;
                Ok(())
            }

            pub(super) async fn list_silences(
                &self,
                live_at: Option<i64>,
                id: Option<&str>,
            ) -> Result<Vec<SilenceRow>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT id, matchers, starts_at, ends_at, created_by, comment, created_at, expired_at, matched \
                     FROM silences WHERE 1=1",
                );
                if let Some(now) = live_at {
                    qb.push(" AND expired_at IS NULL AND ends_at > ").push_bind(now);
                }
                if let Some(id) = id {
                    qb.push(" AND id = ").push_bind(id.to_owned());
                }
                qb.push(" ORDER BY created_at DESC, id LIMIT 10000");
                let rows = qb.build().fetch_all(&self.$writer).await?;
                Ok(rows
                    .iter()
                    .map(|r| SilenceRow {
                        id: r.get(0),
                        matchers: r.get(1),
                        starts_at: r.get(2),
                        ends_at: r.get(3),
                        created_by: r.get(4),
                        comment: r.get(5),
                        created_at: r.get(6),
                        expired_at: r.get(7),
                        matched: r.get(8),
                    })
                    .collect())
            }

            pub(super) async fn expire_silence(&self, id: &str, at: i64) -> Result<bool, StoreError> {
                let mut qb = QueryBuilder::<$db>::new("UPDATE silences SET expired_at = ");
                qb.push_bind(at).push(" WHERE id = ").push_bind(id.to_owned()).push(" AND expired_at IS NULL");
                Ok(qb.build().execute(&self.$writer).await?.rows_affected() == 1)
            }

            pub(super) async fn due_escalations(&self, now: i64, limit: i64) -> Result<Vec<EscalationRow>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT id, alert_id, policy, level, round, due_at, status FROM escalations WHERE status = 'pending' AND due_at <= ",
                );
                qb.push_bind(now).push(" ORDER BY due_at, id LIMIT ").push_bind(limit);
                let rows = qb.build().fetch_all(&self.$writer).await?;
                Ok(rows.iter().map(escalation_row).collect())
            }

            pub(super) async fn escalations_of(&self, alert_id: i64) -> Result<Vec<EscalationRow>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT id, alert_id, policy, level, round, due_at, status FROM escalations WHERE alert_id = ",
                );
                qb.push_bind(alert_id).push(" ORDER BY id");
                let rows = qb.build().fetch_all(&self.$writer).await?;
                Ok(rows.iter().map(escalation_row).collect())
            }

            pub(super) async fn notification_counts(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
                let rows = QueryBuilder::<$db>::new(
                    "SELECT receiver, status, COUNT(*) FROM notifications GROUP BY receiver, status ORDER BY receiver, status",
                )
                .build()
                .fetch_all(&self.$writer)
                .await?;
                Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
            }

            pub(super) async fn alert_stats(&self, since: Option<i64>) -> Result<AlertStats, StoreError> {
                let since = since.unwrap_or(i64::MIN);
                let mut stats = AlertStats::default();
                for (column, out) in [("status", &mut stats.by_status), ("severity", &mut stats.by_severity)] {
                    let mut qb = QueryBuilder::<$db>::new(format!("SELECT {column}, COUNT(*) FROM alerts WHERE created_at >= "));
                    qb.push_bind(since).push(format_args!(" GROUP BY {column} ORDER BY {column}"));
                    *out = qb.build().fetch_all(&self.$writer).await?.iter().map(|r| (r.get(0), r.get(1))).collect();
                }
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT rule, COUNT(*), \
                     CAST(COALESCE(SUM(CASE WHEN acked_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT), \
                     CAST(COALESCE(SUM(CASE WHEN acked_at IS NOT NULL THEN acked_at - created_at ELSE 0 END), 0) AS BIGINT), \
                     CAST(COALESCE(SUM(CASE WHEN resolved_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT), \
                     CAST(COALESCE(SUM(CASE WHEN resolved_at IS NOT NULL THEN resolved_at - created_at ELSE 0 END), 0) AS BIGINT), \
                     CAST(COALESCE(SUM(CASE WHEN disposition IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT), \
                     CAST(COALESCE(SUM(CASE WHEN disposition = 'false_positive' THEN 1 ELSE 0 END), 0) AS BIGINT) \
                     FROM alerts WHERE created_at >= ",
                );
                qb.push_bind(since).push(" GROUP BY rule ORDER BY rule");
                stats.by_rule = qb
                    .build()
                    .fetch_all(&self.$writer)
                    .await?
                    .iter()
                    .map(|r| RuleAlertStats {
                        rule: r.get(0),
                        alerts: r.get(1),
                        acked: r.get(2),
                        ack_ms: r.get(3),
                        resolved: r.get(4),
                        resolve_ms: r.get(5),
                        dispositions: r.get(6),
                        false_positives: r.get(7),
                    })
                    .collect();
                Ok(stats)
            }
        }

        /// Reads an events row without trusting its types: a column holding a value of the
        /// wrong type (a tampered row) is recorded in `unreadable`, never a panic.
        fn stored_row(r: &$row) -> StoredRow {
            let mut bad = Vec::new();
            let mut text = |i: usize, name: &'static str| -> Option<String> {
                match r.try_get::<Option<String>, _>(i) {
                    Ok(v) => v,
                    Err(_) => {
                        let shown = r.try_get::<Option<i64>, _>(i).ok().flatten().map(|n| n.to_string())
                            .or_else(|| r.try_get::<Option<Vec<u8>>, _>(i).ok().flatten()
                                .map(|b| String::from_utf8_lossy(&b).chars().take(64).collect()))
                            .unwrap_or_default();
                        bad.push((name, format!("not text ({shown:?})")));
                        Some(shown)
                    }
                }
            };
            let event_id = text(1, "event_id").unwrap_or_default();
            let category = text(3, "category").unwrap_or_default();
            let action = text(4, "action").unwrap_or_default();
            let severity = text(5, "severity").unwrap_or_default();
            let outcome = text(6, "outcome").unwrap_or_default();
            let organization_id = text(7, "organization_id");
            let user_id = text(8, "user_id");
            let ip = text(9, "ip");
            let request_id = text(10, "request_id");
            let ts = match r.try_get::<i64, _>(2) {
                Ok(v) => v,
                Err(_) => {
                    let shown = r.try_get::<Option<String>, _>(2).ok().flatten().unwrap_or_default();
                    bad.push(("timestamp", format!("not an integer ({:?})", shown.chars().take(64).collect::<String>())));
                    i64::MIN
                }
            };
            let mut bytes = |i: usize, name: &'static str| -> Vec<u8> {
                match r.try_get::<Vec<u8>, _>(i) {
                    Ok(v) => v,
                    Err(_) => match r.try_get::<String, _>(i) {
                        Ok(s) => s.into_bytes(),
                        Err(_) => {
                            bad.push((name, "not bytes".to_owned()));
                            Vec::new()
                        }
                    },
                }
            };
            let canon = bytes(11, "canon");
            let prev_hash = bytes(12, "prev_hash");
            let hash = bytes(13, "hash");
            StoredRow {
                seq: r.try_get(0).unwrap_or(i64::MIN),
                columns: IndexedColumns {
                    event_id,
                    ts,
                    category,
                    action,
                    severity,
                    outcome,
                    organization_id,
                    user_id,
                    ip,
                    request_id,
                },
                canon,
                prev_hash,
                hash,
                unreadable: bad,
            }
        }

        fn checkpoint_row(r: &$row) -> Checkpoint {
            Checkpoint {
                id: r.try_get(0).unwrap_or_default(),
                seq: r.try_get(1).unwrap_or_default(),
                hash: r.try_get(2).unwrap_or_default(),
                created_at: r.try_get(3).unwrap_or_default(),
                prev_id: r.try_get(4).unwrap_or_default(),
                signature: r.try_get(5).unwrap_or_default(),
                key_id: r.try_get(6).unwrap_or_default(),
            }
        }

        fn key_row(r: &$row) -> ApiKeyRow {
            ApiKeyRow {
                id: r.get(0),
                name: r.get(1),
                role: r.get(2),
                key_hash: r.get(3),
                created_at: r.get(4),
                revoked_at: r.get(5),
            }
        }

        async fn insert_notifications(
            tx: &mut sqlx::Transaction<'_, $db>,
            rows: &mut [NotificationRow],
        ) -> Result<(), StoreError> {
            for n in rows.iter_mut() {
                let mut qb = QueryBuilder::<$db>::new(
                    "INSERT INTO notifications (alert_id, receiver, kind, idempotency_key, payload, status, attempts, \
                     next_attempt_at, created_at, updated_at, delivered_at, last_error) ",
                );
                qb.push_values([&*n], |mut b, n| {
                    b.push_bind(n.alert_id)
                        .push_bind(n.receiver.clone())
                        .push_bind(n.kind.clone())
                        .push_bind(n.idempotency_key.clone())
                        .push_bind(n.payload.clone())
                        .push_bind(n.status.clone())
                        .push_bind(n.attempts)
                        .push_bind(n.next_attempt_at)
                        .push_bind(n.created_at)
                        .push_bind(n.updated_at)
                        .push_bind(n.delivered_at)
                        .push_bind(n.last_error.clone());
                });
                qb.push(" RETURNING id");
                n.id = qb.build_query_scalar().fetch_one(&mut **tx).await?;
            }
            Ok(())
        }

        fn alert_row(r: &$row) -> AlertRow {
            AlertRow {
                id: r.get(0),
                rule: r.get(1),
                rule_version: r.get(2),
                rule_sha256: r.get(3),
                severity: r.get(4),
                title: r.get(5),
                dedup_key: r.get(6),
                status: r.get(7),
                count: r.get(8),
                first_seen: r.get(9),
                last_seen: r.get(10),
                event_seqs: r.get(11),
                fields: r.get(12),
                actions: r.get(13),
                created_at: r.get(14),
                disposition: r.get(15),
                acked_by: r.get(16),
                acked_at: r.get(17),
                resolved_by: r.get(18),
                resolved_at: r.get(19),
                silenced_by: r.get(20),
                notified_count: r.get(21),
                last_notified_at: r.get(22),
                receivers: r.get(23),
                escalation_policy: r.get(24),
            }
        }

        fn notification_row(r: &$row) -> NotificationRow {
            NotificationRow {
                id: r.get(0),
                alert_id: r.get(1),
                receiver: r.get(2),
                kind: r.get(3),
                idempotency_key: r.get(4),
                payload: r.get(5),
                status: r.get(6),
                attempts: r.get(7),
                next_attempt_at: r.get(8),
                created_at: r.get(9),
                updated_at: r.get(10),
                delivered_at: r.get(11),
                last_error: r.get(12),
            }
        }

        fn escalation_row(r: &$row) -> EscalationRow {
            EscalationRow {
                id: r.get(0),
                alert_id: r.get(1),
                policy: r.get(2),
                level: r.get(3),
                round: r.get(4),
                due_at: r.get(5),
                status: r.get(6),
            }
        }
    };
}

pub(crate) use {alert_columns, alert_insert_columns, backend_queries, checkpoint_columns, notification_columns};
