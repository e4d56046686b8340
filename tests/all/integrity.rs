//! Integrity on both backends: verify on an intact log, append-only enforcement in the
//! database (each statement refused), and tampering that bypasses the triggers located by
//! verify at the exact seq and kind.

use serde_json::{Value, json};
use vigil_tests::{Backend, TestApp, both_backends, failures, sample_event, seed, spawn_app, spawn_app_with};

both_backends!(
    an_intact_log_verifies_and_head_matches,
    the_database_refuses_update_delete_replace_and_truncate,
    an_edited_canon_is_a_hash_mismatch_at_its_seq,
    an_edited_indexed_column_is_a_column_mismatch_at_its_seq,
    a_deleted_row_is_a_missing_seq,
    two_swapped_rows_are_both_named,
    a_forged_checkpoint_is_a_bad_checkpoint,
    verify_spans_many_chunks_and_still_names_the_seq,
    verify_beside_ingest_and_the_checkpoint_timer_never_reports_a_false_failure,
);

/// Verify in a loop while 4 clients ingest and checkpoints are signed every few events and
/// on a short timer: every report is `ok` (a head read before a checkpoint committed in
/// between once looked like a truncation). 16,000 events: appends fill three blocks and
/// write their posting filters while verify reads them.
async fn verify_beside_ingest_and_the_checkpoint_timer_never_reports_a_false_failure(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app_with(backend, |c| {
        c.store.checkpoint_every_events = 40;
        c.store.checkpoint_every_secs = 1;
    })
    .await?;
    seed(&app, 50).await?;
    let done = std::sync::atomic::AtomicBool::new(false);
    let ingest = async {
        let result = app
            .post_concurrently(4, 40, |client, batch| {
                Value::Array((0..100).map(|i| sample_event(client * 100_000 + batch * 100 + i)).collect())
            })
            .await;
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        result
    };
    let verifies = async {
        let mut reports = Vec::new();
        while !done.load(std::sync::atomic::Ordering::Relaxed) || reports.len() < 5 {
            let (status, report) = app.get("/v1/integrity/verify").await?;
            anyhow::ensure!(status == 200, "verify answered {status}: {report}");
            reports.push(report);
        }
        anyhow::Ok(reports)
    };
    let (ingested, reports) = tokio::join!(ingest, verifies);
    ingested?;
    let reports = reports?;
    for report in &reports {
        assert_eq!(report["status"], "ok", "a false failure under write load: {report}");
    }
    assert!(reports.len() >= 5, "{} verifies ran", reports.len());
    assert!(app.verify().await?["head"]["seq"].as_i64().unwrap() > 3 * 4096);
    Ok(())
}

async fn drop_guards(app: &TestApp) -> anyhow::Result<()> {
    let sql = match app.backend {
        Backend::Sqlite => {
            "DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete; DROP TRIGGER events_insert_next_only; \
             DROP TRIGGER checkpoints_no_update;"
        }
        Backend::Postgres => {
            "DROP TRIGGER events_no_update ON events; DROP TRIGGER events_no_delete ON events; \
             DROP TRIGGER checkpoints_no_update ON checkpoints;"
        }
    };
    app.exec_sql(sql).await?;
    Ok(())
}

async fn an_intact_log_verifies_and_head_matches(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let seqs = seed(&app, 25).await?;
    let report = app.verify().await?;
    assert_eq!(report["status"], "ok", "{report}");
    assert_eq!(report["verified"].as_i64().unwrap(), *seqs.last().unwrap());
    assert_eq!(report["from"], 1);
    let (_, head) = app.get("/v1/integrity/head").await?;
    assert_eq!(report["head"], head);
    assert_eq!(head["seq"].as_i64().unwrap(), *seqs.last().unwrap());
    let (_, partial) = app.get("/v1/integrity/verify?from=5&to=10").await?;
    assert_eq!((partial["status"].as_str(), partial["verified"].as_i64()), (Some("ok"), Some(6)), "{partial}");
    Ok(())
}

async fn the_database_refuses_update_delete_replace_and_truncate(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app_with(backend, |c| c.store.checkpoint_every_events = 2).await?;
    seed(&app, 5).await?;
    assert!(app.verify().await?["checkpoints_checked"].as_i64().unwrap() >= 1, "checkpoints exist to be attacked");
    let mut statements = vec![
        "UPDATE events SET user_id = 'mallory' WHERE seq = 2",
        "DELETE FROM events WHERE seq = 2",
        "UPDATE checkpoints SET seq = 1",
        "DELETE FROM api_keys",
    ];
    match backend {
        Backend::Sqlite => {
            statements.push("INSERT OR REPLACE INTO events SELECT * FROM events WHERE seq = 2");
            statements.push("REPLACE INTO events SELECT * FROM events WHERE seq = 3");
            statements.push("INSERT INTO events SELECT seq + 100, event_id || 'x', ts, category, action, severity, outcome, organization_id, user_id, ip, request_id, canon, prev_hash, hash, ingest_key FROM events WHERE seq = 2");
        }
        Backend::Postgres => {
            statements.push("TRUNCATE events");
            statements.push("TRUNCATE checkpoints");
            statements.push(
                "INSERT INTO events SELECT * FROM events WHERE seq = 2 ON CONFLICT (seq) DO UPDATE SET user_id = 'x'",
            );
            statements.push("SET session_replication_role = replica; DELETE FROM events WHERE seq = 2");
        }
    }
    for sql in statements {
        let err = app.exec_sql(sql).await.expect_err(sql).to_string();
        assert!(
            err.contains("append-only") || err.contains("only be revoked") || err.contains("never deleted"),
            "{sql}: {err}"
        );
    }
    if backend == Backend::Postgres {
        // The app role itself holds no UPDATE/DELETE/TRUNCATE privilege at all.
        for sql in
            ["UPDATE events SET user_id = 'x'", "DELETE FROM events", "TRUNCATE events", "DELETE FROM checkpoints"]
        {
            let err = app.exec_sql(&format!("SET ROLE vigil_app; {sql}")).await.expect_err(sql).to_string();
            assert!(err.contains("permission denied"), "{sql}: {err}");
        }
    }
    let report = app.verify().await?;
    assert_eq!(report["status"], "ok", "nothing changed: {report}");
    Ok(())
}

async fn an_edited_canon_is_a_hash_mismatch_at_its_seq(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let seqs = seed(&app, 10).await?;
    let target = seqs[4];
    drop_guards(&app).await?;
    let sql = match backend {
        Backend::Sqlite => format!(
            "UPDATE events SET canon = CAST(REPLACE(CAST(canon AS TEXT), '\"medium\"', '\"low\"') AS BLOB) WHERE seq = {target}"
        ),
        Backend::Postgres => format!(
            "UPDATE events SET canon = convert_to(replace(convert_from(canon, 'UTF8'), '\"medium\"', '\"low\"'), 'UTF8') WHERE seq = {target}"
        ),
    };
    app.exec_sql(&sql).await?;
    let report = app.verify().await?;
    assert_eq!(report["status"], "failed");
    let found = failures(&report);
    assert!(found.contains(&(target, "hash_mismatch".into())), "{found:?}");
    assert!(found.iter().all(|(s, _)| *s == target), "only the edited seq is named: {found:?}");
    Ok(())
}

async fn an_edited_indexed_column_is_a_column_mismatch_at_its_seq(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let seqs = seed(&app, 10).await?;
    let target = seqs[2];
    drop_guards(&app).await?;
    app.exec_sql(&format!("UPDATE events SET user_id = 'someone-else' WHERE seq = {target}")).await?;
    let report = app.verify().await?;
    assert_eq!(failures(&report), vec![(target, "column_mismatch".to_owned())], "{report}");
    assert!(report["failures"][0]["actual"].as_str().unwrap().contains("someone-else"));
    Ok(())
}

async fn a_deleted_row_is_a_missing_seq(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let seqs = seed(&app, 10).await?;
    let target = seqs[6];
    drop_guards(&app).await?;
    app.exec_sql(&format!("DELETE FROM events WHERE seq = {target}")).await?;
    let report = app.verify().await?;
    assert_eq!(failures(&report), vec![(target, "missing_seq".to_owned())], "{report}");
    Ok(())
}

async fn two_swapped_rows_are_both_named(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let seqs = seed(&app, 10).await?;
    let (a, b) = (seqs[1], seqs[5]);
    drop_guards(&app).await?;
    // Swap every column but seq between the two rows.
    let cols = "event_id, ts, category, action, severity, outcome, organization_id, user_id, ip, request_id, canon, prev_hash, hash";
    let sql = format!(
        "CREATE TABLE swap_tmp AS SELECT * FROM events WHERE seq IN ({a}, {b}); \
         DELETE FROM events WHERE seq IN ({a}, {b}); \
         INSERT INTO events (seq, {cols}) SELECT CASE WHEN seq = {a} THEN {b} ELSE {a} END, {cols} FROM swap_tmp;"
    );
    app.exec_sql(&sql).await?;
    let report = app.verify().await?;
    let found = failures(&report);
    for seq in [a, b] {
        assert!(found.iter().any(|(s, _)| *s == seq), "seq {seq} not named: {found:?}");
        assert!(found.contains(&(seq, "column_mismatch".into())), "{found:?}");
    }
    // Both ends of each broken link may be named too.
    assert!(found.iter().all(|(s, _)| (a - 1..=a + 1).contains(s) || (b - 1..=b + 1).contains(s)), "{found:?}");
    Ok(())
}

async fn a_forged_checkpoint_is_a_bad_checkpoint(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app_with(backend, |c| c.store.checkpoint_every_events = 5).await?;
    for i in 0..4 {
        seed(&app, 3 + i).await?;
    }
    let report = app.verify().await?;
    assert_eq!(report["status"], "ok", "{report}");
    assert!(report["checkpoints_checked"].as_i64().unwrap() >= 2, "{report}");
    drop_guards(&app).await?;
    app.exec_sql("UPDATE checkpoints SET created_at = created_at + 1 WHERE id = 1").await?;
    let report = app.verify().await?;
    let found = failures(&report);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].1, "bad_checkpoint");
    Ok(())
}

async fn verify_spans_many_chunks_and_still_names_the_seq(backend: Backend) -> anyhow::Result<()> {
    // More rows than one verify chunk (10,000), so chunk boundaries and prefetching are used.
    let app = spawn_app(backend).await?;
    for b in 0..50 {
        let batch: Vec<Value> = (0..500).map(|i| sample_event(b * 500 + i)).collect();
        let (status, _) = app.post_events(&json!(batch)).await?;
        anyhow::ensure!(status == 201);
    }
    let report = app.verify().await?;
    assert_eq!(report["status"], "ok", "{}", report["failures"]);
    assert_eq!(report["verified"].as_i64().unwrap(), report["head"]["seq"].as_i64().unwrap());
    drop_guards(&app).await?;
    app.exec_sql("UPDATE events SET ip = '192.0.2.250' WHERE seq = 15001").await?;
    app.exec_sql("DELETE FROM events WHERE seq = 20000").await?;
    let report = app.verify().await?;
    assert_eq!(failures(&report), vec![(15001, "column_mismatch".to_owned()), (20000, "missing_seq".to_owned())]);
    Ok(())
}
