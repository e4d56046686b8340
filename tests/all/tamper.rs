//! Attacks on the stored log by someone with write access to the database (but not to the
//! server's key files), on both backends: truncation, consistent rewrites, a rewritten
//! middle row, wrong value types, deleted checkpoints, a second writer; and the defences:
//! signed checkpoints on a timer, the anchor and the hold, export with offline verify, and
//! retention under a controllable clock.

use serde_json::{Value, json};
use vigil::clock::Clock;
use vigil::ledger::chain::{chain_hash, to_hash};
use vigil_tests::{Backend, TestApp, both_backends, failures, sample_event, seed, spawn_app, spawn_app_with};

both_backends!(
    deleting_the_newest_rows_is_truncation_at_runtime_and_at_restart,
    a_consistent_rewrite_of_a_signed_range_is_a_bad_checkpoint,
    a_rewritten_row_is_named_at_its_own_seq,
    wrong_value_types_are_located_failures_and_queries_still_answer,
    deleted_checkpoints_are_reported,
    a_second_server_on_the_same_log_refuses_to_start,
    an_idle_tail_is_signed_by_the_timer_and_the_head_at_shutdown,
    an_export_verifies_offline_and_every_edit_is_located,
    retention_purges_whole_signed_ranges_and_verify_stays_ok,
    postings_that_disagree_with_the_columns_are_named,
);

fn bytes_literal(backend: Backend, bytes: &[u8]) -> String {
    match backend {
        Backend::Sqlite => format!("X'{}'", hex::encode(bytes)),
        Backend::Postgres => format!("'\\x{}'::bytea", hex::encode(bytes)),
    }
}

/// Signs the head now (what an export does first) and returns the checkpoint list.
async fn sign_now(app: &TestApp) -> anyhow::Result<Value> {
    app.server.state.sequencer.checkpoint_now().await?;
    let (status, body) = app.get("/v1/integrity/checkpoints").await?;
    anyhow::ensure!(status == 200, "{body}");
    Ok(body)
}

async fn deleting_the_newest_rows_is_truncation_at_runtime_and_at_restart(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    seed(&app, 20).await?;
    sign_now(&app).await?;
    let head = app.get("/v1/integrity/head").await?.1["seq"].as_i64().unwrap();
    app.drop_append_only_guards().await?;
    // The attacker deletes the newest rows and every checkpoint above what is left.
    app.exec_sql(&format!("DELETE FROM events WHERE seq > {}", head - 8)).await?;
    app.exec_sql(&format!("DELETE FROM checkpoints WHERE seq > {}", head - 8)).await?;
    let report = app.verify().await?;
    assert_eq!(report["status"], "failed", "{report}");
    assert!(failures(&report).contains(&(head - 7, "truncated".into())), "{report}");
    // Restart: the database is behind the anchor; the log refuses writes and says why.
    let app = app.restart().await?;
    let (status, body) = app.post_events(&json!([sample_event(99)])).await?;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("integrity_hold")), "{body}");
    let (ready, _) = app.get("/readyz").await?;
    assert_eq!(ready, 503);
    let report = app.verify().await?;
    assert!(report["hold"]["failures"].as_array().is_some_and(|f| !f.is_empty()), "{report}");
    assert!(failures(&report).iter().any(|(s, k)| *s == head - 7 && k == "truncated"), "{report}");
    // A P1 alert was raised and the failure is in the chain.
    let alerts = app.wait_for("/v1/alerts?severity=P1", 10, |b| !b["alerts"].as_array().unwrap().is_empty()).await?;
    assert!(alerts["alerts"][0]["title"].as_str().unwrap().contains("truncated"), "{alerts}");
    let (_, events) = app.get("/v1/events?action=integrity_failure").await?;
    assert_eq!(events["events"].as_array().unwrap().len(), 1, "{events}");
    // The operator decides; that is in the chain too, and writes resume.
    let resp = app
        .client
        .post(app.url("/v1/integrity/accept"))
        .bearer_auth(&app.admin_key)
        .json(&json!({"reason": "restored from backup after disk failure"}))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await?);
    let (status, _) = app.post_events(&json!([sample_event(100)])).await?;
    assert_eq!(status, 201);
    let (_, accepted) = app.get("/v1/events?action=integrity_accepted").await?;
    assert_eq!(accepted["events"][0]["details"]["reason"], "restored from backup after disk failure");
    let report = app.verify().await?;
    assert_eq!(report["status"], "ok", "{report}");
    Ok(())
}

/// Rewrites `canon` of every row from `from` on (replacing `find` by `with`) and recomputes
/// the whole chain from there, as someone without the signing key can.
async fn rewrite_consistently(app: &TestApp, from: i64, find: &str, with: &str) -> anyhow::Result<()> {
    let store = &app.server.state.store;
    let head = store.head().await?.seq;
    let rows = store.scan(from, head, 100_000).await?;
    let mut prev = to_hash(&rows[0].prev_hash).unwrap();
    let mut sql = String::new();
    for row in rows {
        let canon = String::from_utf8(row.canon.clone())?.replace(find, with);
        let hash = chain_hash(&prev, canon.as_bytes());
        sql.push_str(&format!(
            "UPDATE events SET canon = {}, prev_hash = {}, hash = {} WHERE seq = {};",
            bytes_literal(app.backend, canon.as_bytes()),
            bytes_literal(app.backend, &prev),
            bytes_literal(app.backend, &hash),
            row.seq
        ));
        prev = hash;
    }
    app.exec_sql(&sql).await?;
    Ok(())
}

async fn a_consistent_rewrite_of_a_signed_range_is_a_bad_checkpoint(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    seed(&app, 10).await?;
    let signed = sign_now(&app).await?["checkpoints"][0]["seq"].as_i64().unwrap();
    app.drop_append_only_guards().await?;
    rewrite_consistently(&app, 4, "\"medium\"", "\"low\"").await?;
    let report = app.verify().await?;
    let found = failures(&report);
    assert_eq!(report["status"], "failed", "{report}");
    assert!(found.contains(&(signed, "bad_checkpoint".into())), "{found:?}");
    assert!(
        !found.iter().any(|(_, k)| k == "hash_mismatch" || k == "chain_break"),
        "the chain itself is consistent: {found:?}"
    );
    Ok(())
}

async fn a_rewritten_row_is_named_at_its_own_seq(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    seed(&app, 10).await?;
    app.drop_append_only_guards().await?;
    let row = app.server.state.store.row(5).await?.unwrap();
    let canon = String::from_utf8(row.canon.clone())?.replace("\"medium\"", "\"low\"");
    let hash = chain_hash(&to_hash(&row.prev_hash).unwrap(), canon.as_bytes());
    app.exec_sql(&format!(
        "UPDATE events SET canon = {}, hash = {} WHERE seq = 5",
        bytes_literal(backend, canon.as_bytes()),
        bytes_literal(backend, &hash)
    ))
    .await?;
    let found = failures(&app.verify().await?);
    assert!(found.contains(&(5, "chain_break".into())), "the rewritten row is named: {found:?}");
    assert!(found.contains(&(6, "chain_break".into())), "and the other end of the link: {found:?}");
    assert!(found.iter().all(|(s, _)| *s == 5 || *s == 6), "{found:?}");
    Ok(())
}

async fn wrong_value_types_are_located_failures_and_queries_still_answer(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    seed(&app, 10).await?;
    app.drop_append_only_guards().await?;
    match backend {
        Backend::Sqlite => {
            app.exec_sql("UPDATE events SET ts = 'not a number' WHERE seq = 4").await?;
            app.exec_sql("UPDATE events SET user_id = X'00FF' WHERE seq = 5").await?;
            app.exec_sql("UPDATE events SET canon = 'plain text, not bytes' WHERE seq = 6").await?;
            app.exec_sql("UPDATE events SET hash = 42 WHERE seq = 7").await?;
        }
        Backend::Postgres => {
            app.exec_sql("ALTER TABLE events ALTER COLUMN ts TYPE text USING ts::text").await?;
            app.exec_sql("UPDATE events SET ts = 'not a number' WHERE seq = 4").await?;
            app.exec_sql("UPDATE events SET canon = '\\xfffe'::bytea WHERE seq = 6").await?;
            app.exec_sql("ALTER TABLE events ALTER COLUMN hash TYPE text USING encode(hash, 'hex')").await?;
        }
    }
    let (status, report) = app.get("/v1/integrity/verify").await?;
    assert_eq!(status, 200, "verify answers: {report}");
    let found = failures(&report);
    assert!(found.contains(&(4, "column_mismatch".into())), "{found:?}");
    assert!(found.iter().any(|(s, k)| *s == 6 && k == "hash_mismatch"), "{found:?}");
    if backend == Backend::Sqlite {
        assert!(found.contains(&(5, "column_mismatch".into())), "{found:?}");
        assert!(found.iter().any(|(s, _)| *s == 7), "{found:?}");
    }
    let (status, events) = app.get("/v1/events?limit=20").await?;
    assert_eq!(status, 200, "the query answers over damaged rows: {events}");
    let list = events["events"].as_array().unwrap();
    assert_eq!(list.len(), 10 + 1, "{events}");
    let damaged: Vec<i64> =
        list.iter().filter(|e| e.get("damaged").is_some()).map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(damaged.contains(&4) && damaged.contains(&6), "damaged rows are marked: {damaged:?}");
    // The export streams past them too.
    let resp = app.client.get(app.url("/v1/events/export?format=csv")).bearer_auth(&app.admin_key).send().await?;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.text().await?.contains("DAMAGED ROW"));
    Ok(())
}

async fn deleted_checkpoints_are_reported(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app_with(backend, |c| c.store.checkpoint_every_events = 3).await?;
    for _ in 0..4 {
        seed(&app, 3).await?;
    }
    sign_now(&app).await?;
    let report = app.verify().await?;
    assert_eq!(report["status"], "ok", "{report}");
    let n = report["checkpoints_checked"].as_i64().unwrap();
    assert!(n >= 4, "{report}");
    app.drop_append_only_guards().await?;
    // A middle checkpoint: the links of the next one no longer hold.
    app.exec_sql("DELETE FROM checkpoints WHERE id = 2").await?;
    let found = failures(&app.verify().await?);
    assert!(found.iter().any(|(_, k)| k == "bad_checkpoint"), "{found:?}");
    // The newest one: this server signed it, so the database is behind it.
    app.exec_sql(&format!("DELETE FROM checkpoints WHERE id = {n}")).await?;
    let found = failures(&app.verify().await?);
    assert!(found.iter().any(|(_, k)| k == "truncated"), "{found:?}");
    Ok(())
}

async fn a_second_server_on_the_same_log_refuses_to_start(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    seed(&app, 2).await?;
    let mut config = app.config.clone();
    config.listen = "127.0.0.1:0".parse()?;
    let err = match vigil::app::start(config.clone()).await {
        Ok(_) => anyhow::bail!("a second writer started on the same log"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("another server is writing this log") && err.contains("pid"), "{err}");
    // Once the first one is gone, the next one starts.
    app.server.shutdown().await;
    let second = vigil::app::start(config).await?;
    second.shutdown().await;
    Ok(())
}

async fn an_idle_tail_is_signed_by_the_timer_and_the_head_at_shutdown(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app_with(backend, |c| {
        c.store.checkpoint_every_secs = 1;
        c.store.checkpoint_every_events = 1_000_000;
    })
    .await?;
    let seqs = seed(&app, 5).await?;
    // Nothing else is written, yet the tail gets signed within the period.
    let signed = app
        .wait_for("/v1/integrity/checkpoints", 10, |b| b["checkpoints"][0]["seq"].as_i64() >= seqs.last().copied())
        .await?;
    let cp = &signed["checkpoints"][0];
    assert!(cp["key_id"].as_str().unwrap().starts_with("ed25519:"), "{cp}");
    // Anyone with the public key can check it.
    let (_, pk) = app.get("/v1/integrity/public-key").await?;
    let keys = vigil::ledger::keys::parse_public_key(&pk.to_string()).map_err(anyhow::Error::msg)?;
    let checkpoint: vigil::ledger::CheckpointJson = serde_json::from_value(cp.clone())?;
    vigil::ledger::keys::Verifier::new(keys).check(&checkpoint.to_checkpoint()).map_err(anyhow::Error::msg)?;
    let report = app.verify().await?;
    assert!(report["unsigned"].is_null(), "{report}");
    // The anchor file holds the newest checkpoint.
    let anchor: Value = serde_json::from_slice(&std::fs::read(app.dir.join("anchor.json"))?)?;
    assert_eq!(anchor["checkpoint"]["seq"], cp["seq"]);
    // A graceful stop signs what arrived after the last timer tick.
    let app = spawn_app_with(backend, |c| c.store.checkpoint_every_secs = 3600).await?;
    let seqs = seed(&app, 3).await?;
    app.server.shutdown().await;
    let last = app.server.state.store.last_checkpoint().await?.expect("a checkpoint at shutdown");
    assert_eq!(last.seq, *seqs.last().unwrap());
    Ok(())
}

async fn export_text(app: &TestApp, query: &str) -> anyhow::Result<String> {
    let resp =
        app.client.get(app.url(&format!("/v1/events/export?{query}"))).bearer_auth(&app.admin_key).send().await?;
    anyhow::ensure!(resp.status().is_success(), "export: {}", resp.status());
    Ok(resp.text().await?)
}

async fn an_export_verifies_offline_and_every_edit_is_located(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app_with(backend, |c| c.store.checkpoint_every_events = 7).await?;
    for _ in 0..5 {
        seed(&app, 6).await?;
    }
    let (_, pk) = app.get("/v1/integrity/public-key").await?;
    let keys = vigil::ledger::keys::Verifier::new(
        vigil::ledger::keys::parse_public_key(pk["public_key"].as_str().unwrap()).map_err(anyhow::Error::msg)?,
    );
    let text = export_text(&app, "format=ndjson").await?;
    let check = |t: &str| vigil::ledger::export::verify_reader(t.as_bytes(), keys.clone(), |_, _| {}).unwrap();
    let report = check(&text);
    assert_eq!(report.status, "ok", "{report:?}");
    assert_eq!(report.verified as i64, app.get("/v1/integrity/head").await?.1["seq"].as_i64().unwrap());
    let lines: Vec<&str> = text.lines().collect();
    let line_of = |seq: i64| {
        lines.iter().position(|l| l.contains("\"type\":\"event\"") && l.contains(&format!("\"seq\":{seq},"))).unwrap()
    };
    // An edited line.
    let mut edited = lines.clone();
    let changed = edited[line_of(9)].replacen("medium", "low", 1);
    edited[line_of(9)] = &changed;
    let r = check(&edited.join("\n"));
    assert!(r.failures.iter().any(|f| f.seq == 9), "{r:?}");
    // A deleted line.
    let mut deleted = lines.clone();
    deleted.remove(line_of(12));
    assert!(check(&deleted.join("\n")).failures.iter().any(|f| f.seq == 12 && format!("{:?}", f.kind) == "MissingSeq"));
    // A tail past the last checkpoint (an export cut short and its end line rewritten).
    let cut = line_of(30);
    let mut tail: Vec<String> = lines[..cut]
        .iter()
        .map(|s| s.to_string())
        .filter(|l| !l.contains("\"type\":\"checkpoint\"") || !l.contains("\"seq\":29"))
        .collect();
    tail.push(lines[cut].to_string());
    tail.push(r#"{"type":"end","events":30,"last_seq":30}"#.into());
    let r = check(&tail.join("\n"));
    assert!(r.status == "unsigned" || r.status == "failed", "{r:?}");
    // A time-bounded export and CSV.
    let csv = export_text(&app, "format=csv").await?;
    assert_eq!(csv.lines().count() as u64, report.verified + 1, "header + one line per event");
    assert!(csv.starts_with("seq,event_id,timestamp"));
    let ranged = export_text(&app, "format=ndjson&from=5&to=20").await?;
    let r = check(&ranged);
    assert_eq!((r.from, r.to, r.verified, r.failure_count), (5, 20, 16, 0), "{r:?}");
    // Rows after the last checkpoint inside the range are reported as unsigned, not ok.
    assert!(r.status == "ok" || r.unsigned.is_some_and(|u| u.to == 20), "{r:?}");
    Ok(())
}

async fn retention_purges_whole_signed_ranges_and_verify_stays_ok(backend: Backend) -> anyhow::Result<()> {
    let clock = Clock::manual(vigil::event::now_ms());
    let app = spawn_app_with(backend, |c| {
        c.clock = clock.clone();
        c.retention_days = 30;
    })
    .await?;
    seed(&app, 12).await?;
    let old_head = sign_now(&app).await?["checkpoints"][0]["seq"].as_i64().unwrap();
    assert_eq!(app.server.state.retention.run_once().await?, None, "nothing is old enough yet");
    clock.advance(31 * 86_400_000);
    seed(&app, 5).await?;
    // The job also wakes when the clock moves, so it may have purged already.
    if let Some(purge) = app.server.state.retention.run_once().await? {
        assert_eq!((purge.floor, purge.deleted as i64), (old_head, old_head));
    }
    let report = app.verify().await?;
    assert_eq!(report["status"], "ok", "{report}");
    assert_eq!(report["from"].as_i64(), Some(old_head + 1));
    assert_eq!(report["retention_floor"].as_i64(), Some(old_head));
    let (_, events) = app.get("/v1/events?limit=1000").await?;
    assert!(events["events"].as_array().unwrap().iter().all(|e| e["seq"].as_i64().unwrap() > old_head));
    let (_, purges) = app.get("/v1/events?action=retention_purge").await?;
    assert_eq!(purges["events"][0]["details"]["floor"].as_i64(), Some(old_head), "{purges}");
    // A second run has nothing to do; the export starts at the floor's checkpoint.
    assert_eq!(app.server.state.retention.run_once().await?, None);
    let (_, pk) = app.get("/v1/integrity/public-key").await?;
    let keys = vigil::ledger::keys::Verifier::new(
        vigil::ledger::keys::parse_public_key(pk["public_key"].as_str().unwrap()).map_err(anyhow::Error::msg)?,
    );
    let text = export_text(&app, "format=ndjson").await?;
    let r = vigil::ledger::export::verify_reader(text.as_bytes(), keys, |_, _| {}).unwrap();
    assert_eq!((r.status, r.from), ("ok", old_head + 1), "{r:?}");
    // Raising the floor without a purge record (deleting old rows quietly) is reported.
    if backend == Backend::Sqlite {
        let later = sign_now(&app).await?["checkpoints"][0]["seq"].as_i64().unwrap();
        app.exec_sql(&format!("UPDATE retention_floor SET floor = {later}; DELETE FROM events WHERE seq <= {later}"))
            .await?;
        let found = failures(&app.verify().await?);
        assert!(found.contains(&(later, "missing_seq".into())), "{found:?}");
    }
    Ok(())
}

/// Both backends serve user/ip/organization/request-id/ingest-key lookups from a posting
/// table (PostgreSQL since migration 0019): it refuses edits like the log, a forged posting
/// cannot put a wrong event in a result, and verify names the seq of every posting deleted
/// or forged.
async fn postings_that_disagree_with_the_columns_are_named(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let seqs = seed(&app, 10).await?;
    let (of_user_2, of_user_3, victim) = (seqs[2], seqs[3], seqs[5]);
    let lookup = |user: &'static str| {
        let app = &app;
        async move {
            let (_, found) = app.get(&format!("/v1/events?user_id={user}")).await?;
            anyhow::Ok(found["events"].as_array().unwrap().iter().filter_map(|e| e["seq"].as_i64()).collect::<Vec<_>>())
        }
    };
    assert_eq!(lookup("user-3").await?, vec![of_user_3]);
    let refused = app.exec_sql(&format!("DELETE FROM postings WHERE seq = {of_user_3}")).await;
    assert!(refused.is_err_and(|e| e.to_string().contains("append-only")), "the trigger refuses the delete");
    let (drop_guard, forge) = match backend {
        Backend::Sqlite => ("DROP TRIGGER postings_no_delete", "INSERT OR IGNORE INTO postings"),
        Backend::Postgres => ("DROP TRIGGER postings_no_delete ON postings", "INSERT INTO postings"),
    };
    let ignore = if backend == Backend::Postgres { " ON CONFLICT DO NOTHING" } else { "" };
    app.exec_sql(&format!("{drop_guard}; DELETE FROM postings WHERE seq = {of_user_3}")).await?;
    app.exec_sql(&format!("{forge} SELECT block, term, {victim} FROM postings WHERE seq = {of_user_2}{ignore}"))
        .await?;
    // The forged posting does not make the victim a match for user-2 (events 2 and 9 are).
    assert_eq!(lookup("user-2").await?, vec![seqs[9], of_user_2]);
    let report = app.verify().await?;
    assert_eq!(report["status"], "failed", "{report}");
    let found = failures(&report);
    assert!(found.contains(&(of_user_3, "column_mismatch".into())), "the deleted postings are named: {found:?}");
    assert!(found.contains(&(victim, "column_mismatch".into())), "the forged posting is named: {found:?}");
    assert!(found.iter().all(|(s, _)| *s == of_user_3 || *s == victim), "{found:?}");
    Ok(())
}
