//! What a bouncer key sees (issue 21): active decisions with five fields and nothing else,
//! and a stream snapshot larger than one page streamed whole.

use std::collections::BTreeSet;

use super::*;

both_backends!(
    a_bouncer_key_sees_active_decisions_with_five_fields_and_nothing_else,
    a_stream_snapshot_larger_than_a_page_delivers_every_decision,
);

fn keys_of(v: &Value) -> BTreeSet<String> {
    v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

fn bouncer_fields() -> BTreeSet<String> {
    ["id", "scope", "value", "kind", "expires_at"].into_iter().map(String::from).collect()
}

// Long by design: every way a bouncer key reads decisions.
async fn a_bouncer_key_sees_active_decisions_with_five_fields_and_nothing_else(backend: Backend) -> anyhow::Result<()> {
    let (app, _clock) = app(backend, |_| {}).await?;
    let bouncer_key = app.create_key("bouncer").await?;
    let reader = app.create_key("read").await?;
    let (status, alert) = app
        .send(app.client.post(app.url("/v1/alerts")).json(&json!({"title": "t", "severity": "P2"})), &app.admin_key)
        .await?;
    anyhow::ensure!(status == 201, "{alert}");
    let mut made = Vec::new();
    let mut cursor = String::new();
    for value in ["alice.smith", "bob.jones", "carol.white"] {
        if value == "bob.jones" {
            // The cursor of a bouncer that synced after the first decision.
            cursor = stream(&app, &bouncer_key, None).await?["cursor"].as_str().unwrap().to_owned();
        }
        let (status, body) = issue(
            &app,
            &app.admin_key,
            json!({"scope": "user", "value": value, "kind": "lock", "duration": "1h",
                "reason": format!("{value} is a confirmed insider"), "alert_id": alert["id"]}),
        )
        .await?;
        anyhow::ensure!(status == 201, "{body}");
        made.push(body["id"].as_i64().unwrap());
    }
    let (status, _) = lift(&app, &app.admin_key, made[1], Some(json!({"reason": "cleared by HR"}))).await?;
    assert_eq!(status, 200);

    // Every object a bouncer key gets has exactly the five fields.
    let mut seen = Vec::new();
    let (status, list) = app.send(app.client.get(app.url("/v1/decisions")), &bouncer_key).await?;
    assert_eq!(status, 200);
    assert_eq!(ids(&list["decisions"]), vec![made[2], made[0]], "active only: {list}");
    seen.extend(list["decisions"].as_array().unwrap().clone());
    seen.extend(check(&app, &bouncer_key, "user", "alice.smith").await?);
    let snapshot = stream(&app, &bouncer_key, None).await?;
    assert_eq!(ids(&snapshot["added"]), vec![made[2], made[0]], "{snapshot}");
    seen.extend(snapshot["added"].as_array().unwrap().clone());
    let delta = stream(&app, &bouncer_key, Some(&cursor)).await?;
    assert_eq!((ids(&delta["added"]), ids(&delta["deleted"])), (vec![made[2]], vec![made[1]]), "{delta}");
    seen.extend(delta["added"].as_array().unwrap().clone());
    seen.extend(delta["deleted"].as_array().unwrap().clone());
    assert_eq!(seen.len(), 7, "list, check, snapshot, delta added, delta deleted: {seen:?}");
    for d in &seen {
        assert_eq!(keys_of(d), bouncer_fields(), "{d}");
    }
    let text = format!("{list}{snapshot}{delta}");
    for secret in ["insider", "cleared by HR", "k_", "alert_id", "reason"] {
        assert!(!text.contains(secret), "a bouncer must not read {secret:?}: {text}");
    }
    // No history, no past or simulated lists, no alert links: 403.
    for path in [
        "/v1/decisions?status=all".to_owned(),
        "/v1/decisions?status=lifted".into(),
        "/v1/decisions?status=expired".into(),
        "/v1/decisions?status=simulated".into(),
        format!("/v1/decisions?alert_id={}", alert["id"]),
        format!("/v1/decisions/{}", made[0]),
        format!("/v1/decisions/{}", made[1]),
        "/v1/allowlist".into(),
    ] {
        let (status, body) = app.send(app.client.get(app.url(&path)), &bouncer_key).await?;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(!body.to_string().contains("insider"), "{body}");
    }
    let (status, active) = app.send(app.client.get(app.url("/v1/decisions?status=active")), &bouncer_key).await?;
    assert_eq!(
        (status, ids(&active["decisions"])),
        (200, vec![made[2], made[0]]),
        "status=active: what it gets anyway"
    );
    // Other roles keep the whole view.
    let (_, full) = app.send(app.client.get(app.url("/v1/decisions?status=all")), &reader).await?;
    assert!(full["decisions"][0]["reason"].is_string() && full["decisions"][0]["actor"].is_string(), "{full}");
    let (status, one) = app.send(app.client.get(app.url(&format!("/v1/decisions/{}", made[1]))), &reader).await?;
    assert_eq!((status, one["end_reason"].as_str()), (200, Some("cleared by HR")), "{one}");
    let (_, full_stream) =
        app.send(app.client.get(app.url(&format!("/v1/decisions/stream?since={cursor}"))), &reader).await?;
    assert!(full_stream["deleted"][0]["end_reason"].is_string(), "{full_stream}");
    let ingest = app.create_key("ingest").await?;
    let (status, _) = app.send(app.client.get(app.url("/v1/decisions")), &ingest).await?;
    assert_eq!(status, 403, "an ingest key reads no decisions");
    Ok(())
}

async fn a_stream_snapshot_larger_than_a_page_delivers_every_decision(backend: Backend) -> anyhow::Result<()> {
    let (app, _clock) = app(backend, |_| {}).await?;
    let bouncer_key = app.create_key("bouncer").await?;
    let total = vigil::respond::SNAPSHOT_PAGE * 2 + 37;
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let (client, url, key) = (app.client.clone(), app.url("/v1/decisions"), app.admin_key.clone());
        tasks.push(tokio::spawn(async move {
            for i in (worker..total).step_by(8) {
                let body = json!({"scope": "user", "value": format!("user-{i}"), "kind": "block",
                    "duration_secs": 3600, "reason": format!("reason {i}")});
                let resp = client.post(&url).bearer_auth(&key).json(&body).send().await?;
                anyhow::ensure!(resp.status().as_u16() == 201, "issue {i}: {}", resp.status());
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let resp = app.client.get(app.url("/v1/decisions/stream")).bearer_auth(&bouncer_key).send().await?;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers().get("content-length").is_none(), "streamed, not built whole: {:?}", resp.headers());
    let body: Value = resp.json().await?;
    assert_eq!(body["snapshot"], true);
    assert_eq!(body["more"], false);
    let added = body["added"].as_array().unwrap();
    assert_eq!(added.len(), total, "every decision, across pages");
    let unique: BTreeSet<i64> = added.iter().filter_map(|d| d["id"].as_i64()).collect();
    assert_eq!(unique.len(), total, "no decision twice");
    assert!(added.iter().all(|d| keys_of(d) == bouncer_fields()));
    let values: BTreeSet<&str> = added.iter().filter_map(|d| d["value"].as_str()).collect();
    assert!(values.contains("user-0") && values.contains(format!("user-{}", total - 1).as_str()));
    // The cursor of the snapshot continues it exactly.
    let cursor = body["cursor"].as_str().unwrap().to_owned();
    let nothing = stream(&app, &bouncer_key, Some(&cursor)).await?;
    assert_eq!((nothing["added"].clone(), nothing["deleted"].clone()), (json!([]), json!([])), "{nothing}");
    let full = stream(&app, &app.admin_key, None).await?;
    assert_eq!(full["added"].as_array().map(Vec::len), Some(total));
    assert!(full["added"][0]["reason"].is_string(), "an admin key gets the whole decision");
    Ok(())
}
