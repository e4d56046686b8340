//! Lookups by a posting field over a log of several full blocks, on both backends: the
//! per-block filters (engine/src/store/block_filters.rs) written when a block fills, what
//! lookups return through them (rare, frequent and absent values, pagination, time
//! ranges), the filters' guards, what a damaged or forged filter can and cannot do, what
//! verify names, and the migration that fills the filters of an older log.

use serde_json::{Value, json};
use vigil_tests::{Backend, TestApp, both_backends, failures, spawn_app};

both_backends!(
    lookups_through_block_filters_find_exactly_the_matching_events,
    span_filters_cover_sixteen_blocks_and_verify_checks_them
);

/// Events sent: 9,000 (with the server's own events, blocks 0 and 1 fill and block 2 is
/// open).
const EVENTS: usize = 9_000;
/// The two events of the rare user: one in block 0, one in the open block.
const RARE: [usize; 2] = [7, 8_500];

fn event(i: usize) -> Value {
    let user = if RARE.contains(&i) { "rare-user".to_string() } else { format!("u-{}", i % 500) };
    json!({
        "category": "authentication", "action": "login_failed", "outcome": "failure", "severity": "low",
        "user_id": user, "ip": format!("10.{}.{}.{}", i % 3, (i / 250) % 250, i % 250),
        "organization_id": "org-common", "request_id": format!("r-{i}"),
        "timestamp": 1_767_225_600_000_i64 + i as i64 * 1000,
    })
}

/// The seqs a lookup returns, following `next_cursor` pages of `limit`.
async fn lookup(app: &TestApp, query: &str, limit: usize) -> anyhow::Result<Vec<i64>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/events?{query}&limit={limit}&cursor={c}"),
            None => format!("/v1/events?{query}&limit={limit}"),
        };
        let (status, body) = app.get(&path).await?;
        anyhow::ensure!(status == 200, "{path}: {body}");
        out.extend(body["events"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()));
        match body["next_cursor"].as_str() {
            Some(c) if out.len() < 10_000 => cursor = Some(c.to_string()),
            _ => return Ok(out),
        }
    }
}

/// Every lookup gives exactly the events sent that match, newest first.
async fn check(app: &TestApp, seq_of: &[i64]) -> anyhow::Result<()> {
    let newest_first = |pred: &dyn Fn(usize) -> bool| -> Vec<i64> {
        (0..EVENTS).rev().filter(|&i| pred(i)).map(|i| seq_of[i]).collect()
    };
    let u3 = newest_first(&|i| i % 500 == 3 && !RARE.contains(&i));
    assert_eq!(lookup(app, "user_id=rare-user", 100).await?, newest_first(&|i| RARE.contains(&i)));
    assert_eq!(lookup(app, "user_id=u-3", 1000).await?, u3);
    // Pages of 4 walk the same events across the windows of blocks.
    assert_eq!(lookup(app, "user_id=u-3", 4).await?, u3);
    assert_eq!(lookup(app, "request_id=r-5000", 10).await?, vec![seq_of[5_000]]);
    let ip = event(1_004)["ip"].as_str().unwrap().to_string();
    let with_ip = newest_first(&|i| event(i)["ip"] == ip.as_str());
    assert!(!with_ip.is_empty());
    assert_eq!(lookup(app, &format!("ip={ip}"), 100).await?, with_ip);
    let (_, body) = app.get("/v1/events?organization_id=org-common&limit=100").await?;
    let got: Vec<i64> = body["events"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(got, newest_first(&|_| true)[..100].to_vec());
    assert!(lookup(app, "user_id=nobody-at-all", 100).await?.is_empty());
    // A time range narrows a lookup to its blocks (events 3,503 and 4,003 of u-3).
    let within = lookup(app, "user_id=u-3&since=2026-01-01T00:58:00Z&until=2026-01-01T01:07:00Z", 100).await?;
    assert_eq!(within, vec![seq_of[4_003], seq_of[3_503]]);
    Ok(())
}

async fn lookups_through_block_filters_find_exactly_the_matching_events(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let mut seq_of = Vec::with_capacity(EVENTS);
    for chunk in (0..EVENTS).collect::<Vec<_>>().chunks(500) {
        let batch: Vec<Value> = chunk.iter().map(|&i| event(i)).collect();
        let (status, body) = app.post_events(&json!(batch)).await?;
        anyhow::ensure!(status == 201, "{body}");
        seq_of.extend(body["events"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()));
    }
    let head = app.sql_i64("SELECT MAX(seq) FROM events").await?;
    assert!((8_191..12_287).contains(&head), "two full blocks and an open one: head {head}");
    assert!(seq_of[RARE[0]] < 4_096 && seq_of[RARE[1]] >= 8_192, "{:?}", RARE.map(|i| seq_of[i]));
    // The appends that filled blocks 0 and 1 wrote their filters: a row per bucket each.
    assert_eq!(app.sql_i64("SELECT COUNT(*) FROM posting_filters").await?, 2 * 256);
    assert_eq!(app.sql_i64("SELECT COUNT(DISTINCT block) FROM posting_filters").await?, 2);

    check(&app, &seq_of).await?;
    let report = app.verify().await?;
    assert_eq!(report["status"], "ok", "{report}");

    // A log from before migration 0020 gets the filters of its full blocks at start.
    let undo = match backend {
        Backend::Sqlite => "DROP TABLE posting_filters; DELETE FROM _vigil_migrations WHERE version = 20;",
        Backend::Postgres => {
            "DROP TABLE posting_filters; DROP FUNCTION vigil_posting_filters_guard_delete(); \
             DROP FUNCTION vigil_partition_posting_filters(TEXT); DROP FUNCTION vigil_partition_postings(TEXT); \
             ALTER FUNCTION vigil_partition_postings_0019(TEXT) RENAME TO vigil_partition_postings; \
             DELETE FROM _vigil_migrations WHERE version = 20;"
        }
    };
    app.exec_sql(undo).await?;
    let app = app.restart().await?;
    assert_eq!(app.sql_i64("SELECT COUNT(*) FROM posting_filters").await?, 2 * 256);
    check(&app, &seq_of).await?;
    assert_eq!(app.verify().await?["status"], "ok");

    // The filters refuse edits like the log they index.
    for edit in ["UPDATE posting_filters SET fps = fps", "DELETE FROM posting_filters WHERE block = 0"] {
        let refused = app.exec_sql(edit).await;
        assert!(refused.is_err_and(|e| e.to_string().contains("append-only")), "{edit} is refused");
    }
    let (drop_update, drop_delete) = match backend {
        Backend::Sqlite => ("DROP TRIGGER posting_filters_no_update", "DROP TRIGGER posting_filters_no_delete"),
        Backend::Postgres => (
            "DROP TRIGGER posting_filters_no_update ON posting_filters",
            "DROP TRIGGER posting_filters_no_delete ON posting_filters",
        ),
    };
    // Deleted filter rows hide nothing (the block is probed) and are not a failure.
    app.exec_sql(&format!("{drop_delete}; DELETE FROM posting_filters WHERE block = 1")).await?;
    check(&app, &seq_of).await?;
    assert_eq!(app.verify().await?["status"], "ok");
    // A forged filter that leaves the rare user out of block 0 hides that event from
    // lookups (this is what the filters skip)... and verify names the block.
    let empty = match backend {
        Backend::Sqlite => "X''",
        Backend::Postgres => "'\\x'::bytea",
    };
    app.exec_sql(&format!("{drop_update}; UPDATE posting_filters SET fps = {empty} WHERE block = 0")).await?;
    assert_eq!(lookup(&app, "user_id=rare-user", 100).await?, vec![seq_of[RARE[1]]]);
    let report = app.verify().await?;
    assert_eq!(report["status"], "failed", "{report}");
    assert_eq!(failures(&report), vec![(1, "column_mismatch".to_string())], "{report}");
    // A filter row for the open block (not full) is ignored by lookups and named by verify.
    app.exec_sql(&format!("INSERT INTO posting_filters (bucket, block, fps) SELECT bucket, 2, {empty} FROM posting_filters WHERE block = 0"))
        .await?;
    assert_eq!(lookup(&app, "user_id=rare-user", 100).await?, vec![seq_of[RARE[1]]]);
    let found = failures(&app.verify().await?);
    assert!(found.contains(&(8_192, "column_mismatch".to_string())), "{found:?}");
    Ok(())
}

/// Events of the span test: blocks 0..=15 (span 0) fill, block 16 is open.
const SPAN_EVENTS: usize = 66_000;
/// The rare user of the span test: in block 3 (inside span 0) and in the open block.
const SPAN_RARE: [usize; 2] = [13_000, 65_900];

async fn span_lookup(app: &TestApp, seq_of: &[i64]) -> anyhow::Result<()> {
    let rare: Vec<i64> = SPAN_RARE.iter().rev().map(|&i| seq_of[i]).collect();
    assert_eq!(lookup(app, "user_id=rare-user", 100).await?, rare);
    assert!(lookup(app, "user_id=nobody-at-all", 100).await?.is_empty());
    let u7: Vec<i64> =
        (0..SPAN_EVENTS).rev().filter(|&i| i % 500 == 7 && !SPAN_RARE.contains(&i)).map(|i| seq_of[i]).collect();
    assert_eq!(lookup(app, "user_id=u-7", 1000).await?, u7);
    assert_eq!(lookup(app, "request_id=r-20000", 10).await?, vec![seq_of[20_000]]);
    Ok(())
}

/// A span of 16 full blocks gets its span filter (4,096 rows at its last block, built from
/// the blocks' rows); lookups read it before the blocks' rows, so a forged span row hides
/// the span's events from them, and verify names the span; a log from before migration
/// 0021 gets its span filters at start.
async fn span_filters_cover_sixteen_blocks_and_verify_checks_them(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let span_event = |i: usize| {
        let mut e = event(i);
        e["user_id"] = json!(if SPAN_RARE.contains(&i) { "rare-user".to_string() } else { format!("u-{}", i % 500) });
        e
    };
    let mut seq_of = Vec::with_capacity(SPAN_EVENTS);
    for chunk in (0..SPAN_EVENTS).collect::<Vec<_>>().chunks(1000) {
        let batch: Vec<Value> = chunk.iter().map(|&i| span_event(i)).collect();
        let (status, body) = app.post_events(&json!(batch)).await?;
        anyhow::ensure!(status == 201, "{body}");
        seq_of.extend(body["events"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()));
    }
    let head = app.sql_i64("SELECT MAX(seq) FROM events").await?;
    assert!((65_535..69_631).contains(&head), "span 0 full, block 16 open: head {head}");
    assert!((12_288..16_384).contains(&seq_of[SPAN_RARE[0]]), "block 3: {}", seq_of[SPAN_RARE[0]]);
    let span_rows = "SELECT COUNT(*) FROM posting_filters WHERE bucket >= 256";
    assert_eq!(app.sql_i64(span_rows).await?, 4096);
    assert_eq!(app.sql_i64("SELECT COUNT(DISTINCT block) FROM posting_filters WHERE bucket >= 256").await?, 1);
    assert_eq!(app.sql_i64("SELECT MIN(block) FROM posting_filters WHERE bucket >= 256").await?, 15);
    span_lookup(&app, &seq_of).await?;
    assert_eq!(app.verify().await?["status"], "ok");

    // A log from before migration 0021 gets the span filters of its full spans at start.
    let (drop_delete, drop_update) = match backend {
        Backend::Sqlite => ("DROP TRIGGER posting_filters_no_delete", "DROP TRIGGER posting_filters_no_update"),
        Backend::Postgres => (
            "DROP TRIGGER posting_filters_no_delete ON posting_filters",
            "DROP TRIGGER posting_filters_no_update ON posting_filters",
        ),
    };
    app.exec_sql(&format!(
        "{drop_delete}; DELETE FROM posting_filters WHERE bucket >= 256; DELETE FROM _vigil_migrations WHERE version = 21"
    ))
    .await?;
    // Without span rows a lookup reads every block's row: the same answers.
    span_lookup(&app, &seq_of).await?;
    let app = app.restart().await?;
    assert_eq!(app.sql_i64(span_rows).await?, 4096);
    span_lookup(&app, &seq_of).await?;
    assert_eq!(app.verify().await?["status"], "ok");

    // Emptied span rows hide the rare user's block-3 event from lookups (they are read
    // first)... and verify names the span at its first seq.
    let empty = match backend {
        Backend::Sqlite => "X''",
        Backend::Postgres => "'\\x'::bytea",
    };
    app.exec_sql(&format!("{drop_update}; UPDATE posting_filters SET fps = {empty} WHERE bucket >= 256")).await?;
    assert_eq!(lookup(&app, "user_id=rare-user", 100).await?, vec![seq_of[SPAN_RARE[1]]]);
    let report = app.verify().await?;
    assert_eq!(failures(&report), vec![(1, "column_mismatch".to_string())], "{report}");
    // Without its span rows a span's blocks are read one by one (nothing hidden); span rows
    // at a block that does not end a span are named there.
    app.exec_sql("DELETE FROM posting_filters WHERE bucket >= 256").await?;
    app.exec_sql(&format!("INSERT INTO posting_filters (bucket, block, fps) VALUES (300, 7, {empty})")).await?;
    span_lookup(&app, &seq_of).await?;
    let found = failures(&app.verify().await?);
    assert_eq!(found, vec![(7 * 4096, "column_mismatch".to_string())], "{found:?}");
    Ok(())
}
