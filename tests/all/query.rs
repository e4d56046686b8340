//! Query and statistics over HTTP on both backends: every filter, cursor pagination, and
//! the stats aggregates.

use serde_json::{Value, json};
use vigil_tests::{Backend, both_backends, spawn_app};

both_backends!(
    filters_and_cursor_pagination_return_exactly_the_matching_events,
    stats_count_what_was_stored,
    stats_separate_the_applications_events_from_the_servers_own
);

fn ev(i: i64, category: &str, action: &str, outcome: &str, severity: &str, user: &str, ip: &str) -> Value {
    json!({
        "category": category, "action": action, "outcome": outcome, "severity": severity,
        "user_id": user, "ip": ip, "organization_id": if i % 2 == 0 { "org-a" } else { "org-b" },
        "request_id": format!("req-{i}"),
        "timestamp": 1_767_225_600_000_i64 + i * 60_000,
    })
}

fn seqs(body: &Value) -> Vec<i64> {
    body["events"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect()
}

async fn filters_and_cursor_pagination_return_exactly_the_matching_events(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let mut batch = Vec::new();
    for i in 0..30 {
        let (action, outcome) = if i % 3 == 0 { ("login_failed", "failure") } else { ("login_success", "success") };
        batch.push(ev(
            i,
            "authentication",
            action,
            outcome,
            "medium",
            &format!("u{}", i % 4),
            &format!("10.0.0.{}", i % 5),
        ));
    }
    batch.push(ev(30, "data_access", "record_read", "success", "high", "u1", "192.0.2.7"));
    let (status, posted) = app.post_events(&json!(batch)).await?;
    assert_eq!(status, 201, "{posted}");
    let all: Vec<i64> = posted["events"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect();

    let (_, body) = app.get("/v1/events?action=login_failed&limit=1000").await?;
    assert_eq!(seqs(&body).len(), 10);
    assert!(body["events"].as_array().unwrap().iter().all(|e| e["action"] == "login_failed"));

    let (_, body) = app.get("/v1/events?user_id=u1&ip=192.0.2.7").await?;
    assert_eq!(seqs(&body), vec![all[30]]);
    let (_, body) = app.get("/v1/events?severity=high").await?;
    assert_eq!(seqs(&body), vec![all[30]]);
    let (_, body) = app.get("/v1/events?request_id=req-7").await?;
    assert_eq!(seqs(&body), vec![all[7]]);
    let (_, body) = app.get("/v1/events?organization_id=org-a&category=authentication&outcome=failure").await?;
    assert_eq!(seqs(&body), vec![all[24], all[18], all[12], all[6], all[0]]);
    // since/until on the event timestamp (minutes 10..12 inclusive of since, exclusive of until).
    let (_, body) = app.get("/v1/events?since=2026-01-01T00:10:00Z&until=1767226380000").await?;
    assert_eq!(seqs(&body), vec![all[12], all[11], all[10]]);

    // Pagination: newest first, pages of 7, no overlap, nothing missed.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/events?category=authentication&limit=7&cursor={c}"),
            None => "/v1/events?category=authentication&limit=7".to_owned(),
        };
        let (status, page) = app.get(&path).await?;
        assert_eq!(status, 200, "{page}");
        seen.extend(seqs(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut expected: Vec<i64> = all[..30].to_vec();
    expected.reverse();
    assert_eq!(seen, expected);

    for bad in [
        "/v1/events?limit=0",
        "/v1/events?limit=5000",
        "/v1/events?cursor=abc",
        "/v1/events?since=tomorrow",
        "/v1/events?colour=red",
    ] {
        let (status, body) = app.get(bad).await?;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"]["message"].as_str().is_some(), "{body}");
    }
    Ok(())
}

async fn stats_count_what_was_stored(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let mut batch = Vec::new();
    for i in 0..20 {
        let (action, outcome) = if i < 5 { ("login_failed", "failure") } else { ("login_success", "success") };
        let severity = if i < 2 { "critical" } else { "low" };
        batch.push(ev(
            i,
            "authentication",
            action,
            outcome,
            severity,
            &format!("u{}", i % 3),
            if i < 8 { "10.9.9.9" } else { "10.1.1.1" },
        ));
    }
    app.post_events(&json!(batch)).await?;
    // Only the events posted above fall in this window (system events carry the current time).
    let (status, stats) =
        app.get("/v1/events/stats?since=2026-01-01T00:00:00Z&until=2026-01-02T00:00:00Z&bucket=minute&top=2").await?;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["total"], 20);
    assert_eq!(stats["high_risk"], 2);
    assert!((stats["failure_rate"].as_f64().unwrap() - 0.25).abs() < 1e-9);
    assert_eq!(stats["by_outcome"], json!([{"value": "success", "count": 15}, {"value": "failure", "count": 5}]));
    assert_eq!(stats["by_action"][0], json!({"value": "login_success", "count": 15}));
    assert_eq!(stats["by_category"], json!([{"value": "authentication", "count": 20}]));
    assert_eq!(stats["top_ips"], json!([{"value": "10.1.1.1", "count": 12}, {"value": "10.9.9.9", "count": 8}]));
    assert_eq!(stats["top_users"].as_array().unwrap().len(), 2);
    assert_eq!(stats["buckets"].as_array().unwrap().len(), 20, "one event per minute");
    assert_eq!(stats["buckets"][0], json!({"start": "2026-01-01T00:00:00.000Z", "count": 1}));
    let (status, _) = app.get("/v1/events/stats?bucket=week").await?;
    assert_eq!(status, 400);
    Ok(())
}

/// `origin=app` counts only what clients sent (a client's `source: "vigil"` included: a
/// client cannot hide its events from the analyst's view by claiming to be the server);
/// `origin=vigil` only the server's own (configuration, audit, ...); `all` (the default)
/// both, as before.
async fn stats_separate_the_applications_events_from_the_servers_own(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let mut batch: Vec<Value> =
        (0..6).map(|i| ev(i, "authentication", "login_failed", "failure", "low", "alice", "10.2.2.2")).collect();
    batch.push(json!({"category": "system", "action": "claims_to_be_vigil", "source": "vigil", "user_id": "mallory"}));
    let (status, body) = app.post_events(&json!(batch)).await?;
    assert_eq!(status, 201, "{body}");
    // The server's own events: a key created (audit/configuration events), a rule deployed.
    app.create_key("read").await?;
    let (_, all) = app.get("/v1/events/stats?top=100").await?;
    let (status, apps) = app.get("/v1/events/stats?origin=app&top=100").await?;
    assert_eq!(status, 200, "{apps}");
    let (status, own) = app.get("/v1/events/stats?origin=vigil&top=100").await?;
    assert_eq!(status, 200, "{own}");
    assert_eq!(apps["total"], 7, "{apps}");
    assert!(own["total"].as_i64().unwrap() > 0, "the server wrote events of its own: {own}");
    assert_eq!(all["total"].as_i64().unwrap(), 7 + own["total"].as_i64().unwrap(), "{all}");
    let users = |s: &Value| -> Vec<String> {
        s["top_users"].as_array().unwrap().iter().map(|c| c["value"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(users(&apps), vec!["alice", "mallory"], "{apps}");
    assert!(!users(&own).iter().any(|u| u == "alice" || u == "mallory"), "{own}");
    let cats: Vec<&str> =
        apps["by_category"].as_array().unwrap().iter().map(|c| c["value"].as_str().unwrap()).collect();
    assert_eq!(cats, vec!["authentication", "system"], "{apps}");
    assert!((apps["failure_rate"].as_f64().unwrap() - 6.0 / 7.0).abs() < 1e-9, "{apps}");
    let (status, body) = app.get("/v1/events/stats?origin=mine").await?;
    assert_eq!(status, 400, "{body}");
    Ok(())
}

/// A SQLite database from before migration 0009 (per-column indexes, no posting table) is
/// converted at start: the postings of its rows are filled in, lookups find them, and
/// verify (which checks the postings against the columns) is ok.
#[tokio::test]
async fn sqlite_postings_are_backfilled_for_an_older_database() -> anyhow::Result<()> {
    let app = vigil_tests::spawn_app(Backend::Sqlite).await?;
    let seqs = vigil_tests::seed(&app, 30).await?;
    // What the schema looked like before 0009.
    app.exec_sql(
        "DROP TRIGGER postings_no_delete; DROP TRIGGER postings_no_update; DROP TABLE postings; \
         CREATE INDEX events_user ON events (user_id, seq) WHERE user_id IS NOT NULL; \
         CREATE INDEX events_ip ON events (ip, seq) WHERE ip IS NOT NULL; \
         CREATE INDEX events_org ON events (organization_id, seq) WHERE organization_id IS NOT NULL; \
         CREATE INDEX events_request ON events (request_id, seq) WHERE request_id IS NOT NULL; \
         DELETE FROM _vigil_migrations WHERE version BETWEEN 9 AND 12;",
    )
    .await?;
    let app = app.restart().await?;
    let (_, found) = app.get("/v1/events?user_id=user-3&limit=100").await?;
    let got: Vec<i64> = found["events"].as_array().unwrap().iter().filter_map(|e| e["seq"].as_i64()).collect();
    // sample_event(i) has user-(i % 7): i = 3, 10, 17, 24, newest first.
    assert_eq!(got, vec![seqs[24], seqs[17], seqs[10], seqs[3]], "{found}");
    let report = app.verify().await?;
    assert_eq!(report["status"], "ok", "{report}");
    Ok(())
}

/// A PostgreSQL log from before migration 0019 (per-column B-trees, no posting table) is
/// converted at start: the postings of its rows are filled in by the migration's
/// transaction, lookups by every posting field find the same events, and verify (which
/// now checks PostgreSQL's postings against the columns too) is ok.
#[tokio::test]
async fn postgres_postings_are_backfilled_for_an_older_database() -> anyhow::Result<()> {
    let app = vigil_tests::spawn_app(Backend::Postgres).await?;
    let seqs = vigil_tests::seed(&app, 30).await?;
    let lookups = [
        "/v1/events?user_id=user-3&limit=100",
        "/v1/events?ip=10.0.2.2&limit=100",
        "/v1/events?user_id=user-3&limit=2",
    ];
    let mut before = Vec::new();
    for path in lookups {
        let (_, found) = app.get(path).await?;
        before.push(found["events"].as_array().unwrap().iter().filter_map(|e| e["seq"].as_i64()).collect::<Vec<_>>());
    }
    // What the schema looked like before 0019.
    app.exec_sql(
        "DROP TABLE postings; DROP FUNCTION vigil_postings_guard_delete(); \
         DROP FUNCTION vigil_partition_postings(TEXT); \
         CREATE INDEX events_user ON events (user_id, seq) WHERE user_id IS NOT NULL; \
         CREATE INDEX events_ip ON events (ip, seq) WHERE ip IS NOT NULL; \
         CREATE INDEX events_org ON events (organization_id, seq) WHERE organization_id IS NOT NULL; \
         CREATE INDEX events_request ON events (request_id, seq) WHERE request_id IS NOT NULL; \
         CREATE INDEX events_ingest_key ON events (ingest_key, seq) WHERE ingest_key IS NOT NULL; \
         DELETE FROM _vigil_migrations WHERE version = 19;",
    )
    .await?;
    let app = app.restart().await?;
    // sample_event(i) has user-(i % 7): i = 3, 10, 17, 24, newest first.
    assert_eq!(before[0], vec![seqs[24], seqs[17], seqs[10], seqs[3]]);
    for (path, want) in lookups.iter().zip(&before) {
        let (_, found) = app.get(path).await?;
        let got: Vec<i64> = found["events"].as_array().unwrap().iter().filter_map(|e| e["seq"].as_i64()).collect();
        assert_eq!(&got, want, "{path}: {found}");
    }
    assert_eq!((before[1].clone(), before[2].clone()), (vec![seqs[2]], vec![seqs[24], seqs[17]]));
    let report = app.verify().await?;
    assert_eq!(report["status"], "ok", "{report}");
    Ok(())
}
