//! The operations endpoints an attacker (or a careless client) could turn on the server:
//! a flood of unauthenticated `/metrics` scrapes beside ingest (one database read per cache
//! interval, never on the SQLite writer), labelled series and stats groupings that grow
//! with client-chosen values (capped at 100), and concurrent whole-log verifications (one
//! at a time, 429 for the rest, `vigil verify --url` waits).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};
use vigil::api::ops::RunningVerify;
use vigil_tests::{Backend, both_backends, seed, spawn_app, spawn_app_with};

both_backends!(
    a_metrics_flood_beside_ingest_reads_the_database_once_per_interval,
    stats_list_the_top_100_values_and_sum_the_rest_in_other,
    metrics_label_cardinality_is_capped,
    concurrent_whole_log_verifications_run_one_at_a_time,
);

/// The value of the series `name` (with its labels) in an exposition.
fn series(text: &str, name: &str) -> Option<f64> {
    let prefix = format!("{name} ");
    text.lines().find_map(|l| l.strip_prefix(prefix.as_str())).and_then(|v| v.trim().parse().ok())
}

fn events(client: usize, batch: usize, n: usize) -> Value {
    json!((0..n)
        .map(|i| json!({"category": "authentication", "action": "login_failed", "user_id": format!("u{client}-{batch}-{i}")}))
        .collect::<Vec<_>>())
}

async fn a_metrics_flood_beside_ingest_reads_the_database_once_per_interval(backend: Backend) -> anyhow::Result<()> {
    let app = Arc::new(spawn_app_with(backend, |c| c.metrics.cache_secs = 3600).await?);
    seed(&app, 10).await?;
    let reads = || app.server.state.ops.metrics.reads.load(Ordering::Relaxed);
    let first = app.client.get(app.url("/metrics")).send().await?.text().await?;
    assert_eq!(reads(), 1, "the first scrape reads the database");
    let p3_before = series(&first, "vigil_alerts_by_severity{severity=\"P3\"}").unwrap_or(0.0);

    // 200 concurrent scrapes beside 4 ingest clients: every scrape and every POST answers,
    // and the scrapes share the figures of that one read.
    let ingest = {
        let app = app.clone();
        tokio::spawn(async move { app.post_concurrently(4, 10, |c, b| events(c, b, 50)).await })
    };
    let scrapes: Vec<_> = (0..200)
        .map(|_| {
            let (client, url) = (app.client.clone(), app.url("/metrics"));
            tokio::spawn(async move {
                let resp = client.get(url).send().await?;
                let status = resp.status().as_u16();
                let text = resp.text().await?;
                anyhow::ensure!(status == 200 && text.contains("vigil_events_stored_total"), "scrape: {status}");
                anyhow::Ok(())
            })
        })
        .collect();
    for s in scrapes {
        s.await??;
    }
    ingest.await??;
    assert_eq!(reads(), 1, "200 scrapes within the interval made no other database read");

    // A new alert is not seen before the interval ends (the figures are cached); the head
    // is (it comes from the sequencer's memory, not the database).
    let (status, body) = app
        .send(
            app.client.post(app.url("/v1/alerts")).json(&json!({"title": "manual", "severity": "P3"})),
            &app.admin_key,
        )
        .await?;
    assert!(status == 200 || status == 201, "{status} {body}");
    let (_, stats) = app.get("/v1/alerts/stats").await?;
    assert_eq!(stats["by_severity"]["P3"].as_f64().unwrap_or(0.0), p3_before + 1.0, "{stats}");
    let text = app.client.get(app.url("/metrics")).send().await?.text().await?;
    assert_eq!(series(&text, "vigil_alerts_by_severity{severity=\"P3\"}").unwrap_or(0.0), p3_before, "cached");
    assert_eq!(series(&text, "vigil_metrics_db_reads_total"), Some(1.0));
    let head = app.get("/v1/integrity/head").await?.1["seq"].as_f64().unwrap();
    assert!(head >= 2010.0, "{head}");
    assert_eq!(series(&text, "vigil_log_head_seq"), Some(head), "the head is current");
    Ok(())
}

/// Another connection holds SQLite's write lock, so the server's one writer connection is
/// stuck in `BEGIN IMMEDIATE` with the next batch; `/metrics` must still answer (on the
/// read pool) before that batch is stored. Before, it read the head and the alert counts
/// on the writer connection, and waited until the POST failed with 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_answer_while_the_sqlite_writer_is_busy() -> anyhow::Result<()> {
    use sqlx::Connection;
    let app = Arc::new(spawn_app_with(Backend::Sqlite, |c| c.metrics.cache_secs = 0).await?);
    seed(&app, 10).await?;
    let mut lock = sqlx::SqliteConnection::connect(&app.database_url).await?;
    sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut lock).await?;
    let post = {
        let app = app.clone();
        tokio::spawn(async move { app.post_events(&events(0, 0, 5)).await })
    };
    // Let the sequencer take the batch to the writer (where it waits for the lock).
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let resp = app.client.get(app.url("/metrics")).send().await?;
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await?;
    assert!(
        text.contains("# TYPE vigil_alerts gauge"),
        "the alert counts are missing (their read waited for the writer and gave up): {text}"
    );
    assert!(!post.is_finished(), "/metrics answered only once the writer was free again");
    sqlx::raw_sql("ROLLBACK").execute(&mut lock).await?;
    let (status, body) = post.await??;
    assert_eq!(status, 201, "{body}");
    assert!(app.server.state.ops.metrics.reads.load(Ordering::Relaxed) >= 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_require_a_read_key_when_configured() -> anyhow::Result<()> {
    let app = spawn_app_with(Backend::Sqlite, |c| c.metrics.require_key = true).await?;
    let ingest = app.create_key("ingest").await?;
    let reader = app.create_key("read").await?;
    assert_eq!(app.client.get(app.url("/metrics")).send().await?.status().as_u16(), 401);
    let bad = app.client.get(app.url("/metrics")).bearer_auth("vgl_not_a_key").send().await?;
    assert_eq!(bad.status().as_u16(), 401);
    let (status, _) = app.send(app.client.get(app.url("/metrics")), &ingest).await?;
    assert_eq!(status, 403, "an ingest key may not scrape");
    let resp = app.client.get(app.url("/metrics")).bearer_auth(&reader).send().await?;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.text().await?.contains("vigil_events_stored_total"));
    Ok(())
}

async fn stats_list_the_top_100_values_and_sum_the_rest_in_other(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    // 2020, away from the server's own events (which carry today's time).
    const T0: i64 = 1_577_836_800_000;
    // 130 actions: a{i} is carried by 1 + i/10 events (a000..a009 once, a120..a129 13 times);
    // 125 categories round-robin.
    let mut batch = Vec::new();
    for i in 0..130 {
        for _ in 0..(1 + i / 10) {
            let k = batch.len();
            batch.push(json!({"category": format!("cat_{:03}", k % 125), "action": format!("a{i:03}"),
                "timestamp": T0 + k as i64 * 1000}));
        }
    }
    let total = batch.len() as i64;
    assert_eq!(total, 910);
    let (status, body) = app.post_events(&json!(batch)).await?;
    assert_eq!(status, 201, "{body}");
    let (status, stats) = app.get(&format!("/v1/events/stats?since={T0}&until={}", T0 + 3_600_000)).await?;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["total"], total);
    let counts = |member: &str| -> Vec<(String, i64)> {
        stats[member]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["value"].as_str().unwrap().to_owned(), c["count"].as_i64().unwrap()))
            .collect()
    };
    let actions = counts("by_action");
    assert_eq!(actions.len(), 100, "the 100 most frequent actions");
    assert_eq!(actions[0], ("a120".to_owned(), 13), "most frequent first, then by value");
    let listed: std::collections::BTreeSet<String> = actions.iter().map(|(v, _)| v.clone()).collect();
    let expected: std::collections::BTreeSet<String> = (30..130).map(|i| format!("a{i:03}")).collect();
    assert_eq!(listed, expected);
    assert_eq!(stats["other"]["by_action"], json!({"values": 30, "count": 60}), "a000..a029: 10 x (1 + 2 + 3)");
    let categories = counts("by_category");
    assert_eq!(categories.len(), 100);
    assert_eq!(stats["other"]["by_category"]["values"], 25);
    let listed_events: i64 = categories.iter().map(|(_, n)| n).sum();
    assert_eq!(listed_events + stats["other"]["by_category"]["count"].as_i64().unwrap(), total, "{stats}");
    assert_eq!(stats["other"]["by_severity"], json!({"values": 0, "count": 0}));
    assert_eq!(stats["other"]["by_outcome"], json!({"values": 0, "count": 0}));
    Ok(())
}

async fn metrics_label_cardinality_is_capped(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app_with(backend, |c| c.metrics.cache_secs = 0).await?;
    // 150 rules' alerts, as years of deploying and deleting rules would leave them.
    app.exec_sql(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 150) \
         INSERT INTO alerts (rule, rule_version, rule_sha256, severity, title, dedup_key, first_seen, last_seen, \
         event_seqs, fields, actions, created_at) \
         SELECT 'old_rule_' || i, '1', '', 'P3', 't', 'k' || i, 0, 0, '[]', '{}', '[]', 0 FROM n",
    )
    .await?;
    let text = app.client.get(app.url("/metrics")).send().await?.text().await?;
    let labelled = text.lines().filter(|l| l.starts_with("vigil_rule_alerts{")).count();
    assert_eq!(labelled, 100, "{text}");
    assert_eq!(series(&text, "vigil_rule_alerts_unlisted"), Some(50.0));
    assert_eq!(series(&text, "vigil_alerts{status=\"open\"}"), Some(150.0), "the totals still count every alert");
    Ok(())
}

async fn concurrent_whole_log_verifications_run_one_at_a_time(backend: Backend) -> anyhow::Result<()> {
    let app = Arc::new(spawn_app_with(backend, |c| c.integrity.exclusive_verify_events = 1000).await?);
    app.post_concurrently(4, 5, |c, b| events(c, b, 1000)).await?;
    let verifies: Vec<_> = (0..6)
        .map(|_| {
            let (client, url, key) = (app.client.clone(), app.url("/v1/integrity/verify"), app.admin_key.clone());
            tokio::spawn(async move {
                let resp = client.get(url).bearer_auth(key).send().await?;
                let status = resp.status().as_u16();
                let retry = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
                let body: Value = resp.json().await?;
                anyhow::Ok((status, retry, body))
            })
        })
        .collect();
    let mut answers = Vec::new();
    for v in verifies {
        answers.push(v.await??);
    }
    let ok = answers.iter().filter(|(s, _, b)| *s == 200 && b["status"] == "ok").count();
    let busy: Vec<_> = answers.iter().filter(|(s, _, _)| *s == 429).collect();
    assert_eq!(ok + busy.len(), 6, "only 200 ok or 429: {answers:?}");
    assert!(ok >= 1, "{answers:?}");
    assert!(!busy.is_empty(), "six whole-log verifications at once all ran: {answers:?}");
    for (_, retry, body) in &busy {
        assert_eq!(retry.as_deref(), Some("5"));
        assert_eq!(body["error"]["code"], "verify_busy", "{body}");
        assert!(body["error"]["details"]["running"]["key_id"].is_string(), "{body}");
    }
    // The gate is open again once they are done.
    assert_eq!(app.verify().await?["status"], "ok");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_verify_while_another_runs_is_429_and_small_ranges_still_pass() -> anyhow::Result<()> {
    let app = spawn_app_with(Backend::Sqlite, |c| c.integrity.exclusive_verify_events = 10).await?;
    seed(&app, 50).await?;
    let holder = RunningVerify { since: "2026-01-01T00:00:00.000Z".into(), key_id: "k_holder".into(), from: 1, to: 51 };
    let permit = app.server.state.ops.verify.try_enter(holder).expect("the gate is free");
    let resp = app.client.get(app.url("/v1/integrity/verify")).bearer_auth(&app.admin_key).send().await?;
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("5"));
    let body: Value = resp.json().await?;
    assert_eq!(body["error"]["code"], "verify_busy");
    assert_eq!(body["error"]["details"]["running"]["key_id"], "k_holder");
    let (status, body) = app.get("/v1/integrity/verify?from=1&to=40").await?;
    assert_eq!(status, 429, "40 events is past the limit of 10: {body}");
    let (status, body) = app.get("/v1/integrity/verify?from=20&to=29").await?;
    assert_eq!((status, &body["status"]), (200, &json!("ok")), "a small range is never refused: {body}");
    let (status, body) = app.get("/v1/integrity/verify?to=-9223372036854775808").await?;
    assert_eq!(status, 200, "an empty range at the edge of i64 is small, not an overflow: {body}");
    assert_eq!(app.metric("vigil_verify_busy_total").await?, Some(2));
    assert_eq!(app.metric("vigil_verify_running").await?, Some(1));
    drop(permit);
    assert_eq!(app.verify().await?["status"], "ok");
    assert_eq!(app.metric("vigil_verify_running").await?, Some(0));
    Ok(())
}

/// `vigil verify --url` against a server already running a large verification: it is told
/// 429, waits as `Retry-After` says, and succeeds once the other one is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vigil_verify_waits_for_a_running_verification() -> anyhow::Result<()> {
    let app = spawn_app_with(Backend::Sqlite, |c| c.integrity.exclusive_verify_events = 10).await?;
    seed(&app, 50).await?;
    let holder = RunningVerify { since: "2026-01-01T00:00:00.000Z".into(), key_id: "k_holder".into(), from: 1, to: 51 };
    let permit = app.server.state.ops.verify.try_enter(holder).expect("the gate is free");
    let (base, key) = (app.base.clone(), app.admin_key.clone());
    let cli = tokio::spawn(async move { vigil::cli::verify_server(&base, &key, None, None, true).await });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while app.metric("vigil_verify_busy_total").await?.unwrap_or(0) < 1 {
        anyhow::ensure!(std::time::Instant::now() < deadline, "the CLI never reached the server");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!cli.is_finished(), "the CLI waits instead of failing");
    drop(permit);
    assert_eq!(cli.await??, 0, "verified once the other verification ended");
    Ok(())
}
