//! Reads of the log are audited (PCI DSS 10.2.1): queries, stats, exports and verifications
//! by a key become `audit` / `log_accessed` chain events naming the key id and what it
//! read, aggregated to one event per key per window (reading the audit events back
//! included), written by a background task, and at graceful shutdown.

use serde_json::{Value, json};
use vigil::store::EventFilter;
use vigil_tests::{Backend, TestApp, both_backends, seed, spawn_app, spawn_app_with};

both_backends!(
    reads_by_a_key_become_one_log_accessed_event_naming_the_key,
    open_windows_are_written_at_graceful_shutdown,
);

async fn key_id(app: &TestApp, key: &str) -> anyhow::Result<String> {
    let (status, who) = app.send(app.client.get(app.url("/v1/whoami")), key).await?;
    anyhow::ensure!(status == 200, "{who}");
    Ok(who["key_id"].as_str().unwrap_or_default().to_owned())
}

/// The `log_accessed` events of `key_id`, read from the store directly (not a read a key
/// makes, so not itself audited).
async fn access_events(app: &TestApp, key_id: &str) -> anyhow::Result<Vec<Value>> {
    let filter = EventFilter {
        category: Some("audit".into()),
        action: Some("log_accessed".into()),
        user_id: Some(key_id.into()),
        limit: 1000,
        ..EventFilter::default()
    };
    let rows = app.server.state.store.query(&filter).await?;
    Ok(rows.iter().map(|r| r.to_api_json_marked()).collect())
}

async fn read(app: &TestApp, key: &str, path: &str) -> anyhow::Result<()> {
    let resp = app.client.get(app.url(path)).bearer_auth(key).send().await?;
    anyhow::ensure!(resp.status().as_u16() == 200, "{path}: {}", resp.status());
    resp.bytes().await?;
    Ok(())
}

async fn reads_by_a_key_become_one_log_accessed_event_naming_the_key(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    seed(&app, 20).await?;
    let reader = app.create_key("read").await?;
    let reader_id = key_id(&app, &reader).await?;
    for q in ["?user_id=alice", "?user_id=bob&limit=5", "?user_id=alice", "", "?category=authentication"] {
        read(&app, &reader, &format!("/v1/events{q}")).await?;
    }
    read(&app, &reader, "/v1/events/stats?bucket=day").await?;
    read(&app, &reader, "/v1/events/stats").await?;
    read(&app, &reader, "/v1/events/export?format=csv").await?;
    read(&app, &reader, "/v1/integrity/verify").await?;
    // Refused requests read nothing and are not recorded.
    assert_eq!(app.client.get(app.url("/v1/events")).send().await?.status().as_u16(), 401);
    let (status, _) = app.send(app.client.get(app.url("/v1/events?colour=red")), &reader).await?;
    assert_eq!(status, 400);
    let other = app.create_key("read").await?;
    let other_id = key_id(&app, &other).await?;
    read(&app, &other, "/v1/events?limit=1").await?;
    assert!(access_events(&app, &reader_id).await?.is_empty(), "the window is still open");

    assert_eq!(app.server.state.access.flush_all().await?, 2, "one event per key that read");
    let events = access_events(&app, &reader_id).await?;
    assert_eq!(events.len(), 1, "{events:?}");
    let ev = &events[0];
    assert_eq!(
        (&ev["category"], &ev["action"], &ev["user_id"]),
        (&json!("audit"), &json!("log_accessed"), &json!(reader_id))
    );
    assert_eq!(ev["severity"], "low");
    let d = &ev["details"];
    assert_eq!(d["reads"], json!({"events.query": 5, "events.stats": 2, "events.export": 1, "integrity.verify": 1}));
    let filters: Vec<&str> = d["filters"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(filters.iter().filter(|f| **f == "events.query?user_id=alice").count(), 1, "distinct: {filters:?}");
    for f in ["events.query?user_id=bob&limit=5", "events.export?format=csv", "integrity.verify", "events.stats"] {
        assert!(filters.contains(&f), "{f} in {filters:?}");
    }
    assert!(d["window_start"].is_string() && d["window_end"].is_string(), "{d}");
    let others = access_events(&app, &other_id).await?;
    assert_eq!(others.len(), 1);
    assert_eq!(others[0]["details"]["reads"], json!({"events.query": 1}));

    // Reading the audit events back is itself one more event per window, however often:
    // no feedback loop.
    for _ in 0..30 {
        read(&app, &reader, &format!("/v1/events?category=audit&action=log_accessed&user_id={reader_id}")).await?;
    }
    assert_eq!(app.server.state.access.flush_all().await?, 1);
    let events = access_events(&app, &reader_id).await?;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["details"]["reads"], json!({"events.query": 30}), "newest first");
    assert_eq!(app.server.state.access.flush_all().await?, 0, "nothing was read since");
    assert_eq!(app.verify().await?["status"], "ok", "the records are in the chain");
    Ok(())
}

async fn open_windows_are_written_at_graceful_shutdown(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    seed(&app, 5).await?;
    let reader = app.create_key("read").await?;
    let reader_id = key_id(&app, &reader).await?;
    read(&app, &reader, "/v1/events?user_id=carol").await?;
    read(&app, &reader, "/v1/events/export").await?;
    assert!(access_events(&app, &reader_id).await?.is_empty());
    let app = app.restart().await?;
    let events = access_events(&app, &reader_id).await?;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["details"]["reads"], json!({"events.query": 1, "events.export": 1}));
    Ok(())
}

/// Without anyone asking: the background task writes a key's reads once its window closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_reach_the_chain_by_themselves_once_the_window_closes() -> anyhow::Result<()> {
    let app = spawn_app_with(Backend::Sqlite, |c| {
        c.audit.access_window_secs = 1;
        c.audit.access_flush_ms = 100;
    })
    .await?;
    let reader = app.create_key("read").await?;
    let reader_id = key_id(&app, &reader).await?;
    for path in ["/v1/events", "/v1/events/stats", "/v1/integrity/verify"] {
        read(&app, &reader, path).await?;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let reads = loop {
        let events = access_events(&app, &reader_id).await?;
        let reads: u64 = events
            .iter()
            .flat_map(|e| e["details"]["reads"].as_object().cloned().unwrap_or_default())
            .map(|(_, n)| n.as_u64().unwrap_or(0))
            .sum();
        if reads >= 3 || std::time::Instant::now() > deadline {
            break reads;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(reads, 3, "every read is recorded, once");
    assert_eq!(app.metric("vigil_log_access_open_windows").await?, Some(0));
    assert!(app.metric("vigil_log_access_events_total").await?.unwrap_or(0) >= 1);
    Ok(())
}
