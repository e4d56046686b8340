//! API keys and roles over HTTP on both backends: every endpoint but health/metrics needs a
//! key, roles are least-privilege, revocation takes effect at once, and key creation and
//! revocation are events in the chain.

use serde_json::json;
use vigil_tests::{Backend, both_backends, sample_event, spawn_app};

both_backends!(
    endpoints_require_a_key_and_roles_are_enforced,
    key_lifecycle_is_recorded_in_the_chain,
    a_revoked_bootstrap_key_stays_revoked_across_restarts
);

/// `VIGIL_ADMIN_KEY` bootstraps an admin once; after an operator revokes that key, a restart
/// with the variable still set starts (no duplicate key, no crash) and does not bring the
/// revoked key back.
async fn a_revoked_bootstrap_key_stays_revoked_across_restarts(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let other = app.create_key("admin").await?;
    let (_, keys) = app.send(app.client.get(app.url("/v1/keys")), &other).await?;
    let bootstrap = keys["keys"].as_array().unwrap().iter().find(|k| k["name"] == "bootstrap admin").unwrap().clone();
    let id = bootstrap["id"].as_str().unwrap();
    let (status, body) = app.send(app.client.delete(app.url(&format!("/v1/keys/{id}"))), &other).await?;
    assert_eq!(status, 200, "{body}");
    let app = app.restart().await?;
    let (status, _) = app.get("/v1/keys").await?;
    assert_eq!(status, 401, "the revoked bootstrap key must stay revoked");
    let (status, keys) = app.send(app.client.get(app.url("/v1/keys")), &other).await?;
    assert_eq!(status, 200);
    let bootstraps = keys["keys"].as_array().unwrap().iter().filter(|k| k["name"] == "bootstrap admin").count();
    assert_eq!(bootstraps, 1, "{keys}");
    let (_, report) = app.send(app.client.get(app.url("/v1/integrity/verify")), &other).await?;
    assert_eq!(report["status"], "ok", "{report}");
    Ok(())
}

async fn endpoints_require_a_key_and_roles_are_enforced(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let status = app.client.get(app.url(path)).send().await?.status().as_u16();
        assert_eq!(status, 200, "{path} is open");
    }
    for path in ["/v1/events", "/v1/events/stats", "/v1/integrity/verify", "/v1/integrity/head", "/v1/keys"] {
        let resp = app.client.get(app.url(path)).send().await?;
        assert_eq!(resp.status().as_u16(), 401, "{path} without a key");
        let (status, _) = app.send(app.client.get(app.url(path)), "vgl_wrong").await?;
        assert_eq!(status, 401, "{path} with an unknown key");
    }
    let ingest = app.create_key("ingest").await?;
    let read = app.create_key("read").await?;
    let post = || app.client.post(app.url("/v1/events")).json(&sample_event(1));
    assert_eq!(app.send(post(), &ingest).await?.0, 201, "ingest key may post");
    let (status, body) = app.send(post(), &read).await?;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "read key may not post");
    assert_eq!(app.send(app.client.get(app.url("/v1/events")), &ingest).await?.0, 403, "ingest key may not read");
    assert_eq!(app.send(app.client.get(app.url("/v1/events")), &read).await?.0, 200, "read key may read");
    let new_key = app.client.post(app.url("/v1/keys")).json(&json!({"name": "x", "role": "admin"}));
    assert_eq!(app.send(new_key, &read).await?.0, 403, "read key may not create keys");
    let (status, body) = app
        .send(app.client.post(app.url("/v1/keys")).json(&json!({"name": "x", "role": "root"})), &app.admin_key)
        .await?;
    assert_eq!(status, 400, "{body}");
    Ok(())
}

async fn key_lifecycle_is_recorded_in_the_chain(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let key = app.create_key("read").await?;
    let (_, listed) = app.get("/v1/keys").await?;
    let entry = listed["keys"].as_array().unwrap().iter().find(|k| k["role"] == "read").unwrap().clone();
    assert!(entry.get("key").is_none() && entry.get("key_hash").is_none(), "secrets are never listed: {entry}");
    let id = entry["id"].as_str().unwrap().to_owned();
    assert_eq!(app.send(app.client.get(app.url("/v1/events")), &key).await?.0, 200);

    let (status, body) = app.send(app.client.delete(app.url(&format!("/v1/keys/{id}"))), &app.admin_key).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.send(app.client.get(app.url("/v1/events")), &key).await?.0, 401, "revoked at once");
    let (status, _) = app.send(app.client.delete(app.url(&format!("/v1/keys/{id}"))), &app.admin_key).await?;
    assert_eq!(status, 404, "revoking twice");

    let (_, events) = app.get("/v1/events?category=api_key_management").await?;
    let actions: Vec<(&str, &str)> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["details"]["key_id"].as_str().unwrap()))
        .collect();
    assert!(actions.contains(&("api_key_created", id.as_str())), "{actions:?}");
    assert!(actions.contains(&("api_key_revoked", id.as_str())), "{actions:?}");
    let stored = events.to_string();
    assert!(!stored.contains(&key), "the key secret is never in the chain");
    assert_eq!(app.verify().await?["status"], "ok");
    Ok(())
}
