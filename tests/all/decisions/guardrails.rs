//! Guardrails on automated response (issue 21): the allowlist. Each test an attack that
//! worked before:
//! - an ingest key (anyone who can get events in) posting 21 failed logins "from" an
//!   address the operator allowed (config CIDR, API entry given in IPv4-mapped form,
//!   loopback, an IPv4-mapped event address) gets no block: the rule's decision is refused
//!   as `allowlisted`, counted, and the alert still raised says so;
//! - a person's `POST /v1/decisions` on an allowed value (any spelling: mapped, upper-case
//!   IPv6, a covering range) is 409 naming the entry;
//! - adding an entry lifts the active decisions it covers (and the bouncer lets them in);
//!   a config entry added since the last start lifts them at start; entries expire;
//! - only admin keys change the allowlist; changes are chain events; a row planted in (or
//!   deleted from) the `allowlist` table changes nothing: the chain decides at start.
//!
//! Simulate mode and durations are in `issuing.rs`, what a bouncer key sees in
//! `bouncer_view.rs`.

use vigil::config::AllowConfig;

use super::*;

both_backends!(
    an_ingest_key_cannot_get_an_allowlisted_address_blocked,
    a_person_cannot_decide_on_an_allowlisted_value_in_any_spelling,
    adding_an_entry_lifts_the_decisions_it_covers_and_the_bouncer_lets_them_in,
    an_allowlist_entry_stops_applying_at_its_expiry,
    only_admin_keys_change_the_allowlist,
    the_chain_not_the_table_decides_which_allowlist_entries_apply,
);

fn allow(scope: &str, value: &str, reason: &str) -> AllowConfig {
    AllowConfig { scope: scope.into(), value: value.into(), reason: reason.into() }
}

const OFFICE: &str = "198.51.100.0/24";

/// A server with the office NAT and a partner's scanner account allowlisted in the config.
async fn guarded(backend: Backend, adjust: impl FnOnce(&mut Config)) -> anyhow::Result<(TestApp, Clock)> {
    app(backend, |c| {
        c.decisions.allow =
            vec![allow("ip", OFFICE, "office NAT"), allow("user", "svc-scanner", "partner's vulnerability scanner")];
        adjust(c);
    })
    .await
}

async fn add_entry(app: &TestApp, key: &str, body: Value) -> anyhow::Result<(u16, Value)> {
    app.send(app.client.post(app.url("/v1/allowlist")).json(&body), key).await
}

async fn remove_entry(app: &TestApp, key: &str, id: &str) -> anyhow::Result<(u16, Value)> {
    app.send(app.client.delete(app.url(&format!("/v1/allowlist/{id}"))), key).await
}

/// The value of a labelled counter in `/metrics` (0 when absent).
async fn labelled(app: &TestApp, series: &str) -> anyhow::Result<i64> {
    let text = app.client.get(app.url("/metrics")).send().await?.text().await?;
    let prefix = format!("{series} ");
    Ok(text.lines().find_map(|l| l.strip_prefix(prefix.as_str())).and_then(|v| v.trim().parse().ok()).unwrap_or(0))
}

/// Every stored decision on `value` (any status).
pub(super) async fn stored_on(app: &TestApp, value: &str) -> anyhow::Result<Vec<Value>> {
    let (_, all) = app.get("/v1/decisions?status=all&limit=1000").await?;
    Ok(all["decisions"].as_array().into_iter().flatten().filter(|d| d["value"] == value).cloned().collect())
}

/// The P1 alert of `brute_force` about `ip`, once its history notes the refused decision.
async fn refused_alert(app: &TestApp, ip: &str) -> anyhow::Result<Value> {
    eventually(&format!("the P1 alert of {ip} noting the refusal"), || async {
        let (_, alerts) = app.get("/v1/alerts?rule=brute_force&severity=P1&limit=100").await?;
        let Some(alert) =
            alerts["alerts"].as_array().into_iter().flatten().find(|a| a["dedup_key"] == format!("ip:{ip}:1h"))
        else {
            return Ok(None);
        };
        let (_, detail) = app.get(&format!("/v1/alerts/{}", alert["id"])).await?;
        let noted = detail["history"].as_array().into_iter().flatten().any(|h| h["action"] == "decision_refused");
        Ok(noted.then_some(detail))
    })
    .await
}

// Long by design: one attack, tried through every kind of entry, then a control.
async fn an_ingest_key_cannot_get_an_allowlisted_address_blocked(backend: Backend) -> anyhow::Result<()> {
    let (app, clock) = guarded(backend, |_| {}).await?;
    deploy_example(&app, "brute_force").await?;
    let ingest = app.create_key("ingest").await?;
    // An API entry, given as an IPv4-mapped IPv6 network: stored as the IPv4 one.
    let (status, partner) =
        add_entry(&app, &app.admin_key, json!({"scope": "ip", "value": "::FFFF:203.0.113.0/120", "reason": "partner"}))
            .await?;
    assert_eq!(status, 201, "{partner}");
    assert_eq!(partner["value"], "203.0.113.0/24", "normalised: {partner}");
    let partner_id = partner["id"].as_str().unwrap().to_owned();
    let now = clock.now_ms();
    // (source address in the events, the entry that must refuse the block)
    let attacks = [
        ("198.51.100.7", "config-1".to_owned()),
        ("203.0.113.50", partner_id.clone()),
        ("127.0.0.1", "builtin-loopback-ipv4".to_owned()),
        ("::1", "builtin-loopback-ipv6".to_owned()),
        ("::ffff:198.51.100.9", "config-1".to_owned()),
    ];
    for (ip, _) in &attacks {
        let (status, body) =
            app.send(app.client.post(app.url("/v1/events")).json(&failures(ip, now - 30 * MIN, 21)), &ingest).await?;
        assert_eq!(status, 201, "{ip}: {body}");
    }
    // A control, posted last: the same attack on an address nobody allowed is blocked.
    let (status, _) = app
        .send(app.client.post(app.url("/v1/events")).json(&failures("192.0.2.99", now - 30 * MIN, 21)), &ingest)
        .await?;
    assert_eq!(status, 201);
    eventually("the control's block", || async {
        Ok(check(&app, &app.admin_key, "ip", "192.0.2.99").await?.into_iter().next())
    })
    .await?;
    for (ip, entry) in &attacks {
        let canonical = ip.strip_prefix("::ffff:").unwrap_or(ip);
        assert!(check(&app, &app.admin_key, "ip", ip).await?.is_empty(), "{ip} must not be blocked");
        assert!(stored_on(&app, canonical).await?.is_empty(), "no decision stored on {ip}");
        assert!(stored_on(&app, ip).await?.is_empty(), "no decision stored on {ip}");
        // The alert (keyed by the address as the event gave it) is raised, and says the
        // block was refused and by which entry.
        let detail = refused_alert(&app, ip).await?;
        let note = detail["history"].as_array().unwrap().iter().find(|h| h["action"] == "decision_refused").unwrap();
        assert_eq!(note["details"]["refused"], "allowlisted", "{ip}: {note}");
        assert_eq!(note["details"]["allowlist_entry"]["id"], entry.as_str(), "{ip}: {note}");
        let fields = &detail["fields"]["decisions_refused"][0];
        assert_eq!(fields["refused"], "allowlisted", "{ip}: the alert's own fields say so: {detail}");
        assert_eq!(fields["allowlist_entry"]["id"], entry.as_str(), "{ip}: {detail}");
        assert_eq!(fields["kind"], "block");
    }
    let refused = labelled(&app, "vigil_decisions_refused_by_reason_total{reason=\"allowlisted\"}").await?;
    assert_eq!(refused, attacks.len() as i64, "each refusal is counted as allowlisted");
    assert_eq!(app.metric("vigil_decisions_refused_total").await?, Some(attacks.len() as i64));
    let (_, stats) = app.get("/v1/rules/brute_force/stats").await?;
    assert_eq!(stats["stats"]["decisions_refused"], attacks.len() as i64, "{stats}");
    let (_, flood) = app.get("/v1/alerts?rule=vigil").await?;
    assert_eq!(flood["alerts"], json!([]), "an allowlisted value is the policy working, not a decision flood: {flood}");
    Ok(())
}

// Long by design: every spelling of every kind of entry.
async fn a_person_cannot_decide_on_an_allowlisted_value_in_any_spelling(backend: Backend) -> anyhow::Result<()> {
    let (app, _clock) = guarded(backend, |_| {}).await?;
    let responder = app.create_key("respond").await?;
    for (scope, value, entry) in [
        ("ip", "198.51.100.7", "config-1"),
        ("ip", "::ffff:198.51.100.7", "config-1"),
        ("ip", "::FFFF:C633:6407", "config-1"),
        ("ip", "198.51.0.0/16", "config-1"),
        ("ip", "198.51.100.128/25", "config-1"),
        ("ip", "0.0.0.0/0", "builtin-loopback-ipv4"),
        ("ip", "127.0.0.1", "builtin-loopback-ipv4"),
        ("ip", "127.255.255.254", "builtin-loopback-ipv4"),
        ("ip", "::1", "builtin-loopback-ipv6"),
        ("ip", "0:0:0:0:0:0:0:1", "builtin-loopback-ipv6"),
        ("ip", "::ffff:127.0.0.1", "builtin-loopback-ipv4"),
        ("user", "svc-scanner", "config-2"),
    ] {
        let (status, body) = issue(
            &app,
            &responder,
            json!({"scope": scope, "value": value, "kind": "block", "duration": "30m", "reason": "mistake"}),
        )
        .await?;
        assert_eq!(status, 409, "{scope} {value}: {body}");
        assert_eq!(body["error"]["code"], "allowlisted", "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(entry), "{value}: the message names the entry: {message}");
        assert_eq!(body["error"]["details"]["id"], entry, "{body}");
        assert!(body["error"]["details"]["reason"].is_string(), "{body}");
    }
    let config_entry = issue(
        &app,
        &responder,
        json!({"scope": "ip", "value": "198.51.100.1", "kind": "throttle", "duration_secs": 60, "reason": "x"}),
    )
    .await?
    .1;
    assert!(
        config_entry["error"]["message"].as_str().unwrap().contains("office NAT"),
        "and its reason: {config_entry}"
    );
    // Exactly: other users, other scopes and other addresses are not allowed.
    for (scope, value) in
        [("user", "SVC-scanner"), ("session", "svc-scanner"), ("ip", "198.51.101.1"), ("ip", "128.0.0.1")]
    {
        let (status, body) = issue(
            &app,
            &responder,
            json!({"scope": scope, "value": value, "kind": "block", "duration": "30m", "reason": "r"}),
        )
        .await?;
        assert_eq!(status, 201, "{scope} {value} is not allowlisted: {body}");
    }
    let (_, all) = app.get("/v1/decisions?status=all").await?;
    assert_eq!(ids(&all["decisions"]).len(), 4, "nothing on an allowed value was stored: {all}");
    Ok(())
}

// Long by design: add, lift, refuse, chain, remove, restart.
async fn adding_an_entry_lifts_the_decisions_it_covers_and_the_bouncer_lets_them_in(
    backend: Backend,
) -> anyhow::Result<()> {
    let (app, _clock) = guarded(backend, |_| {}).await?;
    let bouncer_key = app.create_key("bouncer").await?;
    let mut made = Vec::new();
    for (scope, value) in [("ip", "192.0.2.10"), ("ip", "192.0.2.11"), ("user", "carol"), ("ip", "192.0.2.200")] {
        let (status, body) = issue(
            &app,
            &app.admin_key,
            json!({"scope": scope, "value": value, "kind": "block", "duration": "4h", "reason": "r"}),
        )
        .await?;
        anyhow::ensure!(status == 201, "{body}");
        made.push(body["id"].as_i64().unwrap());
    }
    let (site, _bouncer, site_handle) = protected_app(&app, &bouncer_key, vigil_bouncer::FailMode::Closed).await?;
    eventually("the bouncer to block 192.0.2.10", || async {
        Ok((through_bouncer(&site, "192.0.2.10", None).await? == 403).then_some(()))
    })
    .await?;
    let snapshot = stream(&app, &bouncer_key, None).await?;
    let cursor = snapshot["cursor"].as_str().unwrap().to_owned();

    let (status, entry) = add_entry(
        &app,
        &app.admin_key,
        json!({"scope": "ip", "value": "192.0.2.0/28", "reason": "the test lab", "duration": "7d"}),
    )
    .await?;
    assert_eq!(status, 201, "{entry}");
    let entry_id = entry["id"].as_str().unwrap().to_owned();
    assert_eq!((entry["source"].as_str(), entry["status"].as_str()), (Some("api"), Some("active")), "{entry}");
    let mut lifted: Vec<i64> = entry["decisions_lifted"].as_array().unwrap().iter().filter_map(Value::as_i64).collect();
    lifted.sort_unstable();
    assert_eq!(lifted, vec![made[0], made[1]], "the two addresses in the range, not the user nor .200: {entry}");
    let (_, one) = app.get(&format!("/v1/decisions/{}", made[0])).await?;
    assert_eq!(one["status"], "lifted");
    assert_eq!(one["end_reason"], format!("allowlisted by entry {entry_id}: the test lab"), "{one}");
    assert!(one["ended_by"].as_str().is_some_and(|k| k.starts_with("k_")), "the admin key: {one}");
    assert_eq!(check(&app, &app.admin_key, "user", "carol").await?.len(), 1, "other decisions stay");
    assert_eq!(check(&app, &app.admin_key, "ip", "192.0.2.200").await?.len(), 1);
    // The bouncers see them go, through the stream, as deletions.
    let delta = stream(&app, &bouncer_key, Some(&cursor)).await?;
    let mut deleted = ids(&delta["deleted"]);
    deleted.sort_unstable();
    assert_eq!(deleted, vec![made[0], made[1]], "{delta}");
    eventually("the bouncer to let 192.0.2.10 in", || async {
        Ok((through_bouncer(&site, "192.0.2.10", None).await? == 200).then_some(()))
    })
    .await?;
    // From now on nothing may apply to the range.
    let (status, body) = issue(
        &app,
        &app.admin_key,
        json!({"scope": "ip", "value": "192.0.2.5", "kind": "lock", "duration": "1h", "reason": "r"}),
    )
    .await?;
    assert_eq!((status, body["error"]["details"]["id"].as_str()), (409, Some(entry_id.as_str())), "{body}");
    // The change is in the chain, with who made it.
    let (_, added) = app.get("/v1/events?category=response&action=allowlist_added").await?;
    let ev = &added["events"][0];
    assert_eq!(ev["details"]["id"], entry_id.as_str(), "{added}");
    assert_eq!(ev["details"]["value"], "192.0.2.0/28");
    assert!(ev["user_id"].as_str().is_some_and(|k| k.starts_with("k_")), "{ev}");
    let (_, listed) = app.get("/v1/allowlist").await?;
    let listed_ids: Vec<&str> = listed["entries"].as_array().unwrap().iter().filter_map(|e| e["id"].as_str()).collect();
    assert_eq!(
        listed_ids,
        ["builtin-loopback-ipv4", "builtin-loopback-ipv6", "config-1", "config-2", entry_id.as_str()],
        "{listed}"
    );

    // Config and built-in entries are not removed through the API.
    for (id, why) in [("config-1", "config"), ("builtin-loopback-ipv4", "built in")] {
        let (status, body) = remove_entry(&app, &app.admin_key, id).await?;
        assert_eq!(status, 409, "{id}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(why), "{body}");
    }
    let (status, _) = remove_entry(&app, &app.admin_key, "no-such-entry").await?;
    assert_eq!(status, 404);

    // An entry survives a restart; a config entry added meanwhile lifts what it covers.
    let mut app = app;
    app.config.decisions.allow.push(allow("ip", "192.0.2.200", "added to the config"));
    site_handle.stop(true).await;
    let app = app.restart().await?;
    assert!(check(&app, &app.admin_key, "ip", "192.0.2.200").await?.is_empty(), "lifted at start");
    let (_, at_start) = app.get(&format!("/v1/decisions/{}", made[3])).await?;
    assert_eq!(at_start["end_reason"], "allowlisted by entry config-3: added to the config", "{at_start}");
    assert_eq!(at_start["ended_by"], "vigil");
    let (status, _) = issue(
        &app,
        &app.admin_key,
        json!({"scope": "ip", "value": "192.0.2.6", "kind": "block", "duration": "1h", "reason": "r"}),
    )
    .await?;
    assert_eq!(status, 409, "the API entry is back after a restart");

    // Removing it is a chain event too, and values in it can be decided on again.
    let (status, removed) = remove_entry(&app, &app.admin_key, &entry_id).await?;
    assert_eq!(status, 200, "{removed}");
    assert_eq!(removed["status"], "removed");
    let (status, _) = remove_entry(&app, &app.admin_key, &entry_id).await?;
    assert_eq!(status, 409, "removed already");
    let (status, body) = issue(
        &app,
        &app.admin_key,
        json!({"scope": "ip", "value": "192.0.2.6", "kind": "block", "duration": "1h", "reason": "r"}),
    )
    .await?;
    assert_eq!(status, 201, "{body}");
    let (_, gone) = app.get("/v1/events?category=response&action=allowlist_removed").await?;
    assert_eq!(gone["events"][0]["details"]["id"], entry_id.as_str(), "{gone}");
    let (_, all) = app.get("/v1/allowlist?status=all").await?;
    let kept = all["entries"].as_array().unwrap().iter().find(|e| e["id"] == entry_id.as_str()).cloned();
    assert_eq!(kept.map(|e| e["status"].clone()), Some(json!("removed")), "it stays on record: {all}");
    let report = app.verify().await?;
    assert_eq!(report["status"], "ok", "{report}");
    Ok(())
}

async fn an_allowlist_entry_stops_applying_at_its_expiry(backend: Backend) -> anyhow::Result<()> {
    let (app, clock) = guarded(backend, |_| {}).await?;
    let (status, entry) = add_entry(
        &app,
        &app.admin_key,
        json!({"scope": "user", "value": "dave", "reason": "on call", "duration": "30m"}),
    )
    .await?;
    assert_eq!(status, 201, "{entry}");
    let created = vigil::event::parse_time(entry["created_at"].as_str().unwrap()).unwrap();
    let expires = vigil::event::parse_time(entry["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires - created, 30 * MIN);
    let body = json!({"scope": "user", "value": "dave", "kind": "lock", "duration": "1h", "reason": "r"});
    assert_eq!(issue(&app, &app.admin_key, body.clone()).await?.0, 409);
    clock.advance(30 * MIN - 1000);
    assert_eq!(issue(&app, &app.admin_key, body.clone()).await?.0, 409, "still allowed a second before its expiry");
    clock.advance(1000);
    let (status, issued) = issue(&app, &app.admin_key, body).await?;
    assert_eq!(status, 201, "allowed no longer at its expiry: {issued}");
    let (_, listed) = app.get("/v1/allowlist").await?;
    assert!(!listed.to_string().contains("dave"), "no longer listed as in force: {listed}");
    let (_, all) = app.get("/v1/allowlist?status=all").await?;
    let e = all["entries"].as_array().unwrap().iter().find(|e| e["value"] == "dave").cloned().unwrap_or_default();
    assert_eq!(e["status"], "expired", "{all}");
    for (bad, why) in [
        (json!({"scope": "user", "value": "x", "reason": "r", "expires_at": clock.now_ms() - 1}), "future"),
        (
            json!({"scope": "user", "value": "x", "reason": "r", "duration": "1h", "expires_at": clock.now_ms() + MIN}),
            "at most one",
        ),
        (json!({"scope": "user", "value": "x", "reason": "r", "duration": "1h", "duration_secs": 60}), "not both"),
        (json!({"scope": "user", "value": "x", "reason": "r", "duration": "0h"}), "more than zero"),
        (json!({"scope": "ip", "value": "10.0.0.0/33", "reason": "r"}), "prefix"),
        (json!({"scope": "ip", "value": "office", "reason": "r"}), "not an IP"),
        (json!({"scope": "user", "value": "x", "reason": ""}), "reason"),
        (json!({"scope": "galaxy", "value": "x", "reason": "r"}), "scope"),
        (json!({"scope": "user", "value": "x", "reason": "r", "extra": 1}), "extra"),
    ] {
        let (status, body) = add_entry(&app, &app.admin_key, bad.clone()).await?;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"]["message"].as_str().unwrap_or_default().contains(why), "{bad}: {body}");
    }
    Ok(())
}

async fn only_admin_keys_change_the_allowlist(backend: Backend) -> anyhow::Result<()> {
    let (app, _clock) = app(backend, |_| {}).await?;
    let entry = json!({"scope": "user", "value": "svc", "reason": "r"});
    let (status, made) = add_entry(&app, &app.admin_key, entry.clone()).await?;
    assert_eq!(status, 201, "{made}");
    let id = made["id"].as_str().unwrap().to_owned();
    for role in ["ingest", "bouncer", "read", "respond"] {
        let key = app.create_key(role).await?;
        let (status, _) = add_entry(&app, &key, json!({"scope": "user", "value": "mallory", "reason": "me"})).await?;
        assert_eq!(status, 403, "{role} must not add entries");
        let (status, _) = remove_entry(&app, &key, &id).await?;
        assert_eq!(status, 403, "{role} must not remove entries");
        let (status, _) = app.send(app.client.get(app.url("/v1/allowlist")), &key).await?;
        let may_read = matches!(role, "read" | "respond");
        assert_eq!(status, if may_read { 200 } else { 403 }, "{role} reading the allowlist");
    }
    // No key, or a wrong one: 401, before the body is read (a broken body is not a 400).
    for key in [None, Some("vgl_not_a_key")] {
        let mut post = app.client.post(app.url("/v1/allowlist")).header("content-type", "application/json").body("{");
        let mut delete = app.client.delete(app.url(&format!("/v1/allowlist/{id}")));
        let mut get = app.client.get(app.url("/v1/allowlist"));
        if let Some(k) = key {
            post = post.bearer_auth(k);
            delete = delete.bearer_auth(k);
            get = get.bearer_auth(k);
        }
        for req in [post, delete, get] {
            let resp = req.send().await?;
            assert_eq!(resp.status().as_u16(), 401, "{key:?}");
        }
    }
    let (_, listed) = app.get("/v1/allowlist").await?;
    let users: Vec<&Value> = listed["entries"].as_array().unwrap().iter().filter(|e| e["scope"] == "user").collect();
    assert_eq!(users.len(), 1, "only the admin's entry: {listed}");
    let (_, added) = app.get("/v1/events?category=response&action=allowlist_added").await?;
    assert_eq!(added["events"].as_array().map(Vec::len), Some(1), "one change, one chain event: {added}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_allowlist_entry_stops_the_start_with_a_message() -> anyhow::Result<()> {
    let err = match spawn_app_with(Backend::Sqlite, |c| c.decisions.allow = vec![allow("ip", "10.0.0.0/40", "x")]).await
    {
        Ok(_) => anyhow::bail!("the server started with an invalid allowlist entry"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("decisions.allow") && err.contains("10.0.0.0/40"), "{err}");
    Ok(())
}

/// Someone with write access to the database (not to the server) plants an allowlist row
/// to unblock themselves, and deletes a real one: after a restart the planted row neither
/// applies nor lifts anything, the deleted one still applies, and both are raised.
async fn the_chain_not_the_table_decides_which_allowlist_entries_apply(backend: Backend) -> anyhow::Result<()> {
    let (app, _clock) = app(backend, |_| {}).await?;
    let (status, blocked) = issue(
        &app,
        &app.admin_key,
        json!({"scope": "ip", "value": "10.7.0.1", "kind": "block", "duration": "4h", "reason": "attacker"}),
    )
    .await?;
    anyhow::ensure!(status == 201, "{blocked}");
    let (status, real) =
        add_entry(&app, &app.admin_key, json!({"scope": "user", "value": "ops-bot", "reason": "our automation"}))
            .await?;
    anyhow::ensure!(status == 201, "{real}");
    let real_id = real["id"].as_str().unwrap().to_owned();
    app.exec_sql(
        "INSERT INTO allowlist (id, scope, value, reason, expires_at, created_at, created_by) \
         VALUES ('planted', 'ip', '10.7.0.0/16', 'trust me', NULL, 1, 'k_nobody')",
    )
    .await?;
    app.exec_sql(&format!("DELETE FROM allowlist WHERE id = '{real_id}'")).await?;
    let app = app.restart().await?;
    assert_eq!(check(&app, &app.admin_key, "ip", "10.7.0.1").await?.len(), 1, "the block stands");
    let (status, body) = issue(
        &app,
        &app.admin_key,
        json!({"scope": "ip", "value": "10.7.0.2", "kind": "block", "duration": "1h", "reason": "r"}),
    )
    .await?;
    assert_eq!(status, 201, "the planted row does not apply: {body}");
    let (status, body) = issue(
        &app,
        &app.admin_key,
        json!({"scope": "user", "value": "ops-bot", "kind": "lock", "duration": "1h", "reason": "r"}),
    )
    .await?;
    assert_eq!((status, body["error"]["details"]["id"].as_str()), (409, Some(real_id.as_str())), "{body}");
    let (_, listed) = app.get("/v1/allowlist").await?;
    assert!(!listed.to_string().contains("planted"), "{listed}");
    let alerts = app.wait_for("/v1/alerts?rule=vigil", 10, |b| b["alerts"][0].is_object()).await?;
    let alert = alerts["alerts"].as_array().unwrap().iter().find(|a| a["dedup_key"] == "decisions:chain_mismatch");
    let alert = alert.ok_or_else(|| anyhow::anyhow!("no mismatch alert: {alerts}"))?;
    assert_eq!(alert["severity"], "P1");
    let differences = alert["fields"]["differences"].to_string();
    assert!(differences.contains("planted") && differences.contains(&real_id), "both are named: {differences}");
    Ok(())
}
