//! Cluster mode reads and checks every partition (docs/cluster.md, "Reads and integrity
//! across partitions"): one in-process `vigil` node in cluster mode (4 partitions, a
//! private single-server NATS JetStream on a free port, a fresh schema of the test
//! PostgreSQL). Events posted through it land in several partitions; `GET /v1/events`
//! pages over all of them (each exactly once), stats and the security report count them
//! all, verify without `partition` reports each partition and locates a tampered row in
//! partition p naming p, and an export holds a section per partition that `vigil verify
//! --file` checks offline (an edited line, a deleted section, a cut section located in
//! their partition). A checkpoint signed for one partition and copied into another is a
//! bad checkpoint there, online and offline.

use std::collections::BTreeSet;
use std::process::{Child, Command};
use std::sync::Arc;

use anyhow::Context;
use serde_json::{Value, json};
use vigil::ledger::export::{ExportReport, verify_export};
use vigil::ledger::handoff::Handoff;
use vigil::ledger::keys::{Verifier, parse_public_key};
use vigil::ledger::sequencer::Sequencer;
use vigil::store::Store;
use vigil::store::postgres::PgStore;
use vigil_tests::{TestApp, connect_pg, pg_base_url, spawn_app_on_pg};

use super::{Schema, events, keys, sequencer_config};

const PARTITIONS: u32 = 4;

/// One nats-server with JetStream on a free port, killed on drop.
struct Nats {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Nats {
    fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = std::env::temp_dir().join(format!("vigil-nats-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir)?;
        let log = std::fs::File::create(dir.join("nats.log"))?;
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(&dir)
            .stdout(std::process::Stdio::from(log.try_clone()?))
            .stderr(std::process::Stdio::from(log))
            .spawn()
            .context("nats-server (scripts/setup.sh installs it)")?;
        Ok(Self { child, port, dir })
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Drops the partition schemas and the views' schema of a test app's base schema (the
/// app drops its base schema itself).
async fn drop_partition_schemas(app: &TestApp) -> anyhow::Result<()> {
    let base = app.database_url.rsplit('=').next().context("search_path in the URL")?.to_owned();
    let mut conn = connect_pg(&pg_base_url()).await?;
    let schemas: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE $1 || '\\_p%'")
            .bind(&base)
            .fetch_all(&mut conn)
            .await?;
    for s in schemas {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {s} CASCADE"))).execute(&mut conn).await?;
    }
    Ok(())
}

async fn get_text(app: &TestApp, path: &str) -> anyhow::Result<(u16, String)> {
    let resp = app.client.get(app.url(path)).bearer_auth(&app.admin_key).send().await?;
    Ok((resp.status().as_u16(), resp.text().await?))
}

/// Every page of `GET /v1/events` with `query` (and `limit`), as (partition, seq) pairs in
/// the order listed.
async fn all_pages(app: &TestApp, query: &str) -> anyhow::Result<Vec<(i64, i64)>> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..200 {
        let path = match &cursor {
            Some(c) => format!("/v1/events?{query}&cursor={c}"),
            None => format!("/v1/events?{query}"),
        };
        let (status, page) = app.get(&path).await?;
        anyhow::ensure!(status == 200, "{path}: {status} {page}");
        for e in page["events"].as_array().context("events")? {
            seen.push((e["partition"].as_i64().context("partition")?, e["seq"].as_i64().context("seq")?));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Ok(seen),
        }
    }
    anyhow::bail!("paging never ended")
}

/// The section of partition `p` in an export: (first line index, end line index).
fn section(lines: &[String], p: u64) -> (usize, usize) {
    let start = lines
        .iter()
        .position(|l| l.starts_with(r#"{"type":"header""#) && l.contains(&format!(r#""partition":{p},"#)))
        .expect("a section per partition");
    let end = start + lines[start..].iter().position(|l| l.starts_with(r#"{"type":"end""#)).expect("an end line");
    (start, end)
}

fn partitioned(report: ExportReport) -> vigil::ledger::export::PartitionedReport {
    match report {
        ExportReport::Partitioned(r) => r,
        ExportReport::Log(r) => panic!("a cluster export is partitioned: {r:?}"),
    }
}

fn check(text: &str, keys: &Verifier) -> anyhow::Result<vigil::ledger::export::PartitionedReport> {
    Ok(partitioned(verify_export(text.as_bytes(), keys.clone(), |_, _| {})?))
}

#[tokio::test]
async fn reads_stats_reports_verify_and_export_cover_every_partition() -> anyhow::Result<()> {
    let nats = Nats::start()?;
    let url = format!("nats://127.0.0.1:{}", nats.port);
    let app = spawn_app_on_pg(&pg_base_url(), |c| {
        c.cluster.nats_url = url;
        c.cluster.partitions = PARTITIONS;
        c.cluster.node_id = "solo".into();
        c.cluster.lease_ms = 3000;
        c.cluster.heartbeat_ms = 500;
        c.store.checkpoint_every_events = 5;
    })
    .await?;
    let result = exercise(&app).await;
    drop_partition_schemas(&app).await?;
    result
}

async fn exercise(app: &TestApp) -> anyhow::Result<()> {
    // 40 failed logins: the partition is a hash of (key, event_id), so they spread.
    let batch: Vec<Value> = (0..40)
        .map(|i| {
            json!({"event_id": format!("spread-{i}"), "category": "authentication", "action": "login_failed",
            "outcome": "failure", "user_id": format!("u{i}"), "ip": "198.51.100.7"})
        })
        .collect();
    let (status, body) = app.post_events(&Value::Array(batch)).await?;
    assert_eq!(status, 201, "{body}");
    let acked: BTreeSet<(i64, i64)> = body["events"]
        .as_array()
        .context("events")?
        .iter()
        .map(|e| (e["partition"].as_i64().unwrap_or(-1), e["seq"].as_i64().unwrap_or(-1)))
        .collect();
    assert_eq!(acked.len(), 40);
    let used: BTreeSet<i64> = acked.iter().map(|a| a.0).collect();
    assert!(used.len() >= 3, "40 events spread over the partitions: {used:?}");

    // Listing: every partition's events, each exactly once over pages of 7.
    let listed = all_pages(app, "category=authentication&limit=7").await?;
    let unique: BTreeSet<(i64, i64)> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "no event listed twice: {listed:?}");
    assert_eq!(unique, acked, "every stored event listed");
    // Without a filter too (the server's own events of partition 0 among them), and a
    // cluster cursor that is not one is refused.
    let everything = all_pages(app, "limit=5").await?;
    assert_eq!(everything.iter().collect::<BTreeSet<_>>().len(), everything.len());
    assert!(acked.iter().all(|a| everything.contains(a)));
    let (status, body) = app.get("/v1/events?cursor=12").await?;
    assert_eq!(status, 400, "{body}");

    // Stats and the report count every partition.
    let (status, stats) = app.get("/v1/events/stats?category=authentication").await?;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["total"], 40, "{stats}");
    assert_eq!(stats["failure_rate"], 1.0);
    assert_eq!(stats["top_ips"][0], json!({"value": "198.51.100.7", "count": 40}));
    let (status, report) = app.get("/v1/reports/security?period=day").await?;
    assert_eq!(status, 200, "{report}");
    let by_category = &report["events"]["by_category"];
    let auth = by_category.as_array().context("by_category")?.iter().find(|c| c["value"] == "authentication");
    assert_eq!(auth.map(|c| c["count"].clone()), Some(json!(40)), "{by_category}");

    // Verify without partition: each partition reported, all intact.
    let report = app.verify().await?;
    assert_eq!(report["status"], "ok", "{report}");
    let parts = report["partitions"].as_array().context("partitions")?;
    assert_eq!(parts.iter().map(|p| p["partition"].as_i64()).collect::<Vec<_>>(), (0..4).map(Some).collect::<Vec<_>>());
    assert!(parts.iter().all(|p| p["status"] == "ok"), "{report}");
    assert!(report["verified"].as_u64() >= Some(40));

    // The export: a section per partition, checked offline with the public key only.
    let (status, public) = get_text(app, "/v1/integrity/public-key").await?;
    assert_eq!(status, 200);
    let keys = Verifier::new(parse_public_key(&public).map_err(anyhow::Error::msg)?);
    let (status, export) = get_text(app, "/v1/events/export").await?;
    assert_eq!(status, 200, "{export}");
    let clean = check(&export, &keys)?;
    assert_ne!(clean.status, "failed", "{clean:?}");
    assert_eq!(clean.partitions_declared, Some(PARTITIONS));
    assert_eq!(clean.partitions.iter().map(|s| s.partition).collect::<Vec<_>>(), (0..4).map(Some).collect::<Vec<_>>());
    assert!(clean.verified >= 40);
    let lines: Vec<String> = export.lines().map(str::to_owned).collect();
    // A partition (not 0) holding events of the batch.
    let p = *used.iter().find(|p| **p > 0).context("a partition past 0")? as u64;
    let (start, end) = section(&lines, p);
    let event_at =
        start + lines[start..end].iter().position(|l| l.starts_with(r#"{"type":"event""#)).context("event")?;
    let seq = serde_json::from_str::<Value>(&lines[event_at])?["seq"].as_i64().context("seq")?;
    // An edited line in partition p: located at its seq, in partition p only.
    let mut edited = lines.clone();
    edited[event_at] = edited[event_at].replace("login_failed", "login_success");
    let r = check(&(edited.join("\n") + "\n"), &keys)?;
    assert_eq!(r.status, "failed");
    assert!(r.failures.iter().all(|f| f.partition == Some(p as u32)), "{:?}", r.failures);
    assert!(r.failures.iter().any(|f| f.failure.seq == seq), "{:?}", r.failures);
    // Partition p's section deleted: named absent.
    let mut deleted = lines.clone();
    deleted.drain(start..=end);
    let r = check(&(deleted.join("\n") + "\n"), &keys)?;
    assert_eq!(r.status, "failed");
    assert!(
        r.failures.iter().any(|f| f.partition == Some(p as u32) && f.failure.actual == "absent"),
        "{:?}",
        r.failures
    );
    // Partition p's section cut short (its last event and end line gone): truncated in p.
    let mut cut = lines.clone();
    cut.drain(end - 1..=end);
    let r = check(&(cut.join("\n") + "\n"), &keys)?;
    assert!(
        r.failures
            .iter()
            .any(|f| f.partition == Some(p as u32) && f.failure.kind == vigil::ledger::chain::FailureKind::Truncated),
        "{:?}",
        r.failures
    );
    // One partition alone, by `partition=`.
    let (status, one) = get_text(app, &format!("/v1/events/export?partition={p}")).await?;
    assert_eq!(status, 200);
    let r = check(&one, &keys)?;
    assert_eq!(r.partitions.len(), 1);
    assert_eq!(r.partitions[0].partition, Some(p as u32));
    assert_ne!(r.status, "failed", "{r:?}");
    let (status, body) = app.get("/v1/events/export?from=1&to=3").await?;
    assert_eq!(status, 400, "from/to need a partition: {body}");

    // A row of partition p rewritten in the database: verify names partition p and the seq.
    let base = app.database_url.rsplit('=').next().context("schema")?.to_owned();
    let table = format!("{base}_p{p}.events");
    let mut conn = connect_pg(&pg_base_url()).await?;
    for sql in [
        format!("ALTER TABLE {table} DISABLE TRIGGER events_no_update"),
        format!(
            "UPDATE {table} SET canon = convert_to(replace(convert_from(canon, 'UTF8'), 'login_failed', \
             'login_success'), 'UTF8') WHERE seq = {seq}"
        ),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await?;
    }
    let report = app.verify().await?;
    assert_eq!(report["status"], "failed", "{report}");
    let failures = report["failures"].as_array().context("failures")?;
    assert!(!failures.is_empty());
    assert!(failures.iter().all(|f| f["partition"] == json!(p)), "{failures:?}");
    assert!(failures.iter().any(|f| f["seq"] == json!(seq)), "{failures:?}");
    for part in report["partitions"].as_array().context("partitions")? {
        let want = if part["partition"] == json!(p) { "failed" } else { "ok" };
        assert_eq!(part["status"], want, "{part}");
    }
    let (status, one) = app.get(&format!("/v1/integrity/verify?partition={p}")).await?;
    assert_eq!(status, 200);
    assert_eq!(one["status"], "failed");
    assert_eq!(one["partition"], json!(p));

    // Anchors: partition q's newest checkpoint is anchored outside PostgreSQL, so its log
    // emptied together with its checkpoints (which verifies on its own) is truncated.
    let q = *used.iter().find(|q| **q > 0 && **q as u64 != p).context("a third partition")? as u64;
    let mut anchored = false;
    for _ in 0..100 {
        let (_, status) = app.get("/v1/integrity/status").await?;
        let part = &status["partitions"][q as usize];
        if !part["anchor"].is_null() && part["anchor"]["id"] == part["last_checkpoint"]["id"] {
            anchored = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(anchored, "partition {q}'s newest checkpoint is anchored");
    let schema_q = format!("{base}_p{q}");
    for sql in [
        format!("ALTER TABLE {schema_q}.events DISABLE TRIGGER events_no_delete"),
        format!("ALTER TABLE {schema_q}.checkpoints DISABLE TRIGGER checkpoints_no_update"),
        format!("DELETE FROM {schema_q}.events"),
        format!("DELETE FROM {schema_q}.checkpoints"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await?;
    }
    let (status, cut) = app.get(&format!("/v1/integrity/verify?partition={q}")).await?;
    assert_eq!(status, 200);
    assert_eq!(cut["status"], "failed", "{cut}");
    let failures = cut["failures"].as_array().context("failures")?;
    assert!(
        failures.iter().any(|f| f["kind"] == "truncated" && f["expected"].as_str().unwrap_or("").contains("anchor")),
        "{failures:?}"
    );
    let all = app.verify().await?;
    assert!(all["failures"].as_array().context("failures")?.iter().any(|f| f["partition"] == json!(q)));
    Ok(())
}

#[tokio::test]
async fn a_checkpoint_signed_for_one_partition_is_a_bad_checkpoint_in_another() -> anyhow::Result<()> {
    let schema = Schema::new().await?;
    let base = Store::open(&schema.url).await?;
    PgStore::init_cluster(&schema.url, 3).await?;
    let keys = keys();
    let mut stores = Vec::new();
    for p in 1..3u32 {
        let fence = base.acquire_lease(p as i32, "n", 60_000).await?.context("free")?;
        let store = Store::Postgres(PgStore::open_partition(&schema.url, p, Some(fence)).await?);
        let writer =
            Sequencer::start(store.clone(), sequencer_config(&keys), None, Arc::new(Handoff::new(0, 0))).await?;
        let ids: Vec<String> = (0..3).map(|i| format!("p{p}-{i}")).collect();
        writer.submit_client(events("k", &ids)).await?;
        let cp = writer.checkpoint_now().await?.context("signed")?;
        assert_eq!(cp.seq, 3);
        writer.halt().await;
        stores.push(store);
    }
    // Each partition verifies with its own checkpoints (signed for it).
    for s in &stores {
        let report = vigil::ledger::verify::verify(s, None, None, keys.verifier(), None).await?;
        assert_eq!(report.status, "ok", "{:?}", report.failures);
    }
    // A checkpoint that signs partition 2's very head (same id, seq, hash, prev), but signed
    // for partition 1, inserted into partition 2: its signature does not hold there.
    let head2 = stores[1].head().await?;
    let last2 = stores[1].last_checkpoint().await?.context("a checkpoint")?;
    let forged = keys.sign_in(1, last2.id + 1, head2.seq, head2.hash, last2.created_at + 1, last2.id);
    assert!(keys.verifier().check_in(&forged, 1).is_ok());
    assert!(keys.verifier().check_in(&forged, 2).is_err());
    let mut conn = connect_pg(&pg_base_url()).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {}_p2.checkpoints (id, seq, hash, created_at, prev_id, signature, key_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        schema.name
    )))
    .bind(forged.id)
    .bind(forged.seq)
    .bind(&forged.hash)
    .bind(forged.created_at)
    .bind(forged.prev_id)
    .bind(&forged.signature)
    .bind(&forged.key_id)
    .execute(&mut conn)
    .await?;
    let report = vigil::ledger::verify::verify(&stores[1], None, None, keys.verifier(), None).await?;
    assert_eq!(report.status, "failed");
    assert!(
        report
            .failures
            .iter()
            .any(|f| f.kind == vigil::ledger::chain::FailureKind::BadCheckpoint && f.actual.contains("partition 2")),
        "{:?}",
        report.failures
    );
    // Offline: partition 2's section of an export with that checkpoint fails the same way.
    let mut sink = Collect(Vec::new());
    let section = vigil::ledger::export::Section { partition: 2, partitions: Some(3) };
    vigil::ledger::export::write_ndjson(&stores[1], (1, 3), 0, 1, Some(section), &mut sink).await?;
    let text = String::from_utf8(sink.0)?;
    let r = partitioned(verify_export(text.as_bytes(), keys.verifier().clone(), |_, _| {})?);
    assert!(
        r.failures
            .iter()
            .any(|f| f.partition == Some(2) && f.failure.kind == vigil::ledger::chain::FailureKind::BadCheckpoint),
        "{:?}",
        r.failures
    );
    schema.drop_all().await
}

/// Collects an export in memory.
struct Collect(Vec<u8>);

impl vigil::ledger::export::ExportSink for Collect {
    async fn take(&mut self, bytes: Vec<u8>) -> bool {
        self.0.extend(bytes);
        true
    }
}
