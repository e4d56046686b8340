//! Queries whose SQL is the same on both backends, written once: `backend_queries!` expands
//! to the filtered event query, statistics, checkpoints, API keys, alert storage and
//! listing, and the row decoders, for one concrete store type (placeholders come from sqlx's `QueryBuilder`, so
//! they are right for each database). Each backend file invokes it once.

macro_rules! backend_queries {
    (
        $store:ty, $db:ty, $row:ty,
        reader: $reader:ident, writer: $writer:ident, greatest: $greatest:literal, fence: $fence:literal
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
                query::push_event_filter(&mut qb, filter);
                qb.push(" ORDER BY seq DESC LIMIT ").push_bind(filter.limit);
                let rows = qb.build().fetch_all(&self.$reader).await?;
                Ok(rows.iter().map(stored_row).collect())
            }

            pub(super) async fn stats(&self, f: &StatsFilter) -> Result<Stats, StoreError> {
                let mut stats = Stats::default();
                let counts = |column: &str, limit: Option<i64>| {
                    let mut qb = QueryBuilder::<$db>::new(format!("SELECT {column}, COUNT(*) AS n FROM events"));
                    query::push_stats_filter(&mut qb, f);
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
                query::push_stats_filter(&mut qb, f);
                let row = qb.build().fetch_one(&self.$reader).await?;
                let failures: i64 = row.get(1);
                stats.total = row.get(0);
                stats.high_risk = row.get(2);
                stats.failure_rate = if stats.total > 0 { failures as f64 / stats.total as f64 } else { 0.0 };
                let mut qb = QueryBuilder::<$db>::new("SELECT (ts / ");
                qb.push_bind(f.bucket_ms).push(") * ").push_bind(f.bucket_ms).push(" AS b, COUNT(*) FROM events");
                query::push_stats_filter(&mut qb, f);
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

            pub(super) async fn record_alerts(&self, alerts: &[AlertRow], window_ms: i64) -> Result<Vec<i64>, StoreError> {
                let mut tx = self.$writer.begin().await?;
                let mut ids = Vec::with_capacity(alerts.len());
                for a in alerts {
                let mut qb = QueryBuilder::<$db>::new("SELECT id, event_seqs FROM alerts WHERE rule = ");
                qb.push_bind(a.rule.clone())
                    .push(" AND severity = ")
                    .push_bind(a.severity.clone())
                    .push(" AND dedup_key = ")
                    .push_bind(a.dedup_key.clone())
                    .push(" AND status = 'open' AND last_seen >= ")
                    .push_bind(a.first_seen - window_ms)
                    .push(" ORDER BY id DESC LIMIT 1");
                let open: Option<(i64, String)> = qb.build_query_as().fetch_optional(&mut *tx).await?;
                let id = match open {
                    Some((id, seqs)) => {
                        let mut qb = QueryBuilder::<$db>::new(concat!(
                            "UPDATE alerts SET count = count + 1, last_seen = ",
                            $greatest,
                            "(last_seen, "
                        ));
                        qb.push_bind(a.last_seen)
                            .push("), event_seqs = ")
                            .push_bind(crate::alerts::merge_seqs(&seqs, &a.event_seqs))
                            .push(" WHERE id = ")
                            .push_bind(id);
                        qb.build().execute(&mut *tx).await?;
                        id
                    }
                    None => {
                        let mut qb = QueryBuilder::<$db>::new(
                            "INSERT INTO alerts (rule, rule_version, rule_sha256, severity, title, dedup_key, status, \
                             count, first_seen, last_seen, event_seqs, fields, actions, created_at) ",
                        );
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
                                .push_bind(a.created_at);
                        });
                        qb.push(" RETURNING id");
                        qb.build_query_scalar().fetch_one(&mut *tx).await?
                    }
                };
                ids.push(id);
                }
                tx.commit().await?;
                Ok(ids)
            }

            pub(super) async fn checkpoints(&self, from: i64, to: i64) -> Result<Vec<Checkpoint>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT id, seq, hash, created_at, prev_id, signature FROM checkpoints WHERE seq >= ",
                );
                qb.push_bind(from).push(" AND seq <= ").push_bind(to).push(" ORDER BY id");
                Ok(qb.build().fetch_all(&self.$reader).await?.iter().map(checkpoint_row).collect())
            }

            pub(super) async fn last_checkpoint(&self) -> Result<Option<Checkpoint>, StoreError> {
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT id, seq, hash, created_at, prev_id, signature FROM checkpoints ORDER BY id DESC LIMIT 1",
                );
                Ok(qb.build().fetch_optional(&self.$writer).await?.as_ref().map(checkpoint_row))
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
                let mut qb = QueryBuilder::<$db>::new(
                    "SELECT id, rule, rule_version, rule_sha256, severity, title, dedup_key, status, count, first_seen, \
                     last_seen, event_seqs, fields, actions, created_at FROM alerts",
                );
                crate::alerts::push_alert_filter(&mut qb, f);
                qb.push(" ORDER BY id DESC LIMIT ").push_bind(f.limit);
                let rows = qb.build().fetch_all(&self.$reader).await?;
                Ok(rows.iter().map(alert_row).collect())
            }
        }

        fn stored_row(r: &$row) -> StoredRow {
            StoredRow {
                seq: r.get(0),
                columns: IndexedColumns {
                    event_id: r.get(1),
                    ts: r.get(2),
                    category: r.get(3),
                    action: r.get(4),
                    severity: r.get(5),
                    outcome: r.get(6),
                    organization_id: r.get(7),
                    user_id: r.get(8),
                    ip: r.get(9),
                    request_id: r.get(10),
                },
                canon: r.get(11),
                prev_hash: r.get(12),
                hash: r.get(13),
            }
        }

        fn checkpoint_row(r: &$row) -> Checkpoint {
            Checkpoint {
                id: r.get(0),
                seq: r.get(1),
                hash: r.get(2),
                created_at: r.get(3),
                prev_id: r.get(4),
                signature: r.get(5),
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
            }
        }
    };
}

pub(crate) use backend_queries;
