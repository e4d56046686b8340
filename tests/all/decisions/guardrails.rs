//! Guardrails on automated response (issue 21), each test an attack that worked before:
//! - an ingest key (anyone who can get events in) posting 21 failed logins "from" an
//!   address the operator allowed (config CIDR, API entry given in IPv4-mapped form,
//!   loopback, an IPv4-mapped event address) gets no block: the rule's decision is refused
//!   as `allowlisted`, counted, and the alert still raised says so;
//! - a person's `POST /v1/decisions` on an allowed value (any spelling: mapped, upper-case
//!   IPv6, a covering range) is 409 naming the entry;
//! - adding an entry lifts the active decisions it covers (and the bouncer lets them in);
//!   a config entry added since the last start lifts them at start; entries expire;
//! - simulate mode (global and per rule) records decisions without enforcing them;
//! - durations as text;
//! - a bouncer key reads active decisions with five fields and nothing else;
//! - only admin keys change the allowlist; changes are chain events; a row planted in (or
//!   deleted from) the `allowlist` table changes nothing: the chain decides at start;
//! - a stream snapshot larger than one page is streamed whole.

use std::collections::BTreeSet;

use vigil::config::{AllowConfig, DecisionMode, RuleDecisionsConfig};

use super::*;

both_backends!(
    an_ingest_key_cannot_get_an_allowlisted_address_blocked,
    a_person_cannot_decide_on_an_allowlisted_value_in_any_spelling,
    adding_an_entry_lifts_the_decisions_it_covers_and_the_bouncer_lets_them_in,
    an_allowlist_entry_stops_applying_at_its_expiry,
    simulate_mode_records_decisions_that_are_never_enforced,
    simulate_mode_per_rule_overrides_the_global_mode,
    a_bouncer_key_sees_active_decisions_with_five_fields_and_nothing_else,
    only_admin_keys_change_the_allowlist,
    a_stream_snapshot_larger_than_a_page_delivers_every_decision,
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
async fn stored_on(app: &TestApp, value: &str) -> anyhow::Result<Vec<Value>> {
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

fn keys_of(v: &Value) -> BTreeSet<String> {
    v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

fn bouncer_fields() -> BTreeSet<String> {
    ["id", "scope", "value", "kind", "expires_at"].into_iter().map(String::from).collect()
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

/// 21 failures from `ip`, and the P1 alert's decision once recorded (any status).
async fn burst_and_decision(app: &TestApp, clock: &Clock, ip: &str) -> anyhow::Result<Value> {
    let (status, body) = app.post_events(&failures(ip, clock.now_ms() - 30 * MIN, 21)).await?;
    anyhow::ensure!(status == 201, "{body}");
    eventually(&format!("the decision on {ip}"), || async { Ok(stored_on(app, ip).await?.into_iter().next()) }).await
}

// Long by design: the simulated decision is followed everywhere a decision shows.
async fn simulate_mode_records_decisions_that_are_never_enforced(backend: Backend) -> anyhow::Result<()> {
    let (app, clock) = app(backend, |c| c.decisions.mode = DecisionMode::Simulate).await?;
    deploy_example(&app, "brute_force").await?;
    let bouncer_key = app.create_key("bouncer").await?;
    let reader = app.create_key("read").await?;
    let start = stream(&app, &bouncer_key, None).await?;
    let cursor = start["cursor"].as_str().unwrap().to_owned();
    let d = burst_and_decision(&app, &clock, "192.0.2.77").await?;
    assert_eq!(d["status"], "simulated", "{d}");
    assert_eq!(d["rule"], "brute_force");
    assert!(d["alert_id"].is_i64(), "tied to its alert: {d}");
    // Not enforced: no check, stream or bouncer sees it.
    assert!(check(&app, &bouncer_key, "ip", "192.0.2.77").await?.is_empty());
    let (_, active) = app.get("/v1/decisions").await?;
    assert_eq!(active["decisions"], json!([]), "{active}");
    let snapshot = stream(&app, &bouncer_key, None).await?;
    assert_eq!(snapshot["added"], json!([]), "{snapshot}");
    let delta = stream(&app, &bouncer_key, Some(&cursor)).await?;
    assert_eq!((delta["added"].clone(), delta["deleted"].clone()), (json!([]), json!([])), "{delta}");
    // Visible to people, with the reason, under status=simulated; a bouncer key may not ask.
    let (status, simulated) = app.send(app.client.get(app.url("/v1/decisions?status=simulated")), &reader).await?;
    assert_eq!(status, 200);
    assert_eq!(ids(&simulated["decisions"]), vec![d["id"].as_i64().unwrap()], "{simulated}");
    assert!(simulated["decisions"][0]["reason"].as_str().unwrap().contains("Brute force"));
    let (status, _) = app.send(app.client.get(app.url("/v1/decisions?status=simulated")), &bouncer_key).await?;
    assert_eq!(status, 403);
    // Recorded in the chain and in the alert's history; lifting it makes no sense.
    let events = app
        .wait_for("/v1/events?category=response&action=decision_simulated", 15, |b| b["events"][0].is_object())
        .await?;
    assert_eq!(events["events"][0]["details"]["decision_id"], d["id"], "{events}");
    let alert_path = format!("/v1/alerts/{}", d["alert_id"]);
    let detail = app
        .wait_for(&alert_path, 15, |b| {
            b["history"].as_array().is_some_and(|h| h.iter().any(|h| h["action"] == "decision_simulated"))
        })
        .await?;
    assert!(detail["history"].as_array().unwrap().iter().any(|h| h["action"] == "decision_simulated"), "{detail}");
    let (status, _) = lift(&app, &app.admin_key, d["id"].as_i64().unwrap(), Some(json!({"reason": "x"}))).await?;
    assert_eq!(status, 409, "only an active decision can be lifted");
    assert_eq!(app.metric("vigil_decisions_simulated_total").await?, Some(1));
    assert_eq!(app.metric("vigil_decisions_issued_total").await?, Some(0));
    // A person's decision is enforced in simulate mode: the mode is about rules.
    let (status, manual) = issue(
        &app,
        &app.admin_key,
        json!({"scope": "ip", "value": "192.0.2.78", "kind": "block", "duration": "1h", "reason": "r"}),
    )
    .await?;
    assert_eq!((status, manual["status"].as_str()), (201, Some("active")), "{manual}");
    // A restart does not turn a simulated decision into an enforced one.
    let app = app.restart().await?;
    assert!(check(&app, &app.admin_key, "ip", "192.0.2.77").await?.is_empty());
    let (_, alerts) = app.get("/v1/alerts?rule=vigil").await?;
    assert_eq!(alerts["alerts"], json!([]), "the table agrees with the chain: {alerts}");
    let report = app.verify().await?;
    assert_eq!(report["status"], "ok", "{report}");
    Ok(())
}

async fn simulate_mode_per_rule_overrides_the_global_mode(backend: Backend) -> anyhow::Result<()> {
    let per_rule = |mode| [("brute_force".to_owned(), RuleDecisionsConfig { mode })].into_iter().collect();
    // Enforced globally, simulated for the rule.
    let (first, clock) = app(backend, |c| c.decisions.rules = per_rule(DecisionMode::Simulate)).await?;
    deploy_example(&first, "brute_force").await?;
    let d = burst_and_decision(&first, &clock, "192.0.2.81").await?;
    assert_eq!(d["status"], "simulated", "{d}");
    assert!(check(&first, &first.admin_key, "ip", "192.0.2.81").await?.is_empty());
    drop(first);
    // Simulated globally, enforced for the rule.
    let (second, clock) = app(backend, |c| {
        c.decisions.mode = DecisionMode::Simulate;
        c.decisions.rules = per_rule(DecisionMode::Enforce);
    })
    .await?;
    deploy_example(&second, "brute_force").await?;
    let d = burst_and_decision(&second, &clock, "192.0.2.82").await?;
    assert_eq!(d["status"], "active", "{d}");
    assert_eq!(check(&second, &second.admin_key, "ip", "192.0.2.82").await?.len(), 1);
    Ok(())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durations_are_given_as_text_or_seconds_never_both() -> anyhow::Result<()> {
    let (app, _clock) = app(Backend::Sqlite, |_| {}).await?;
    for (duration, ms) in [("90s", 90_000), ("30m", 30 * MIN), ("4h", 240 * MIN), ("7d", 7 * 1440 * MIN)] {
        let (status, d) = issue(
            &app,
            &app.admin_key,
            json!({"scope": "user", "value": format!("u{duration}"), "kind": "block", "duration": duration, "reason": "r"}),
        )
        .await?;
        assert_eq!(status, 201, "{duration}: {d}");
        let created = vigil::event::parse_time(d["created_at"].as_str().unwrap()).unwrap();
        let expires = vigil::event::parse_time(d["expires_at"].as_str().unwrap()).unwrap();
        assert_eq!(expires - created, ms, "{duration}");
    }
    for (extra, why) in [
        (json!({"duration": "30m", "duration_secs": 1800}), "not both"),
        (json!({}), "duration is required"),
        (json!({"duration": "30"}), "no unit"),
        (json!({"duration": "30x"}), "unknown unit"),
        (json!({"duration": "1.5h"}), "unknown unit"),
        (json!({"duration": "0m"}), "more than zero"),
        (json!({"duration": "-5m"}), "not a duration"),
        (json!({"duration": "99999999999999999999d"}), "too large"),
        (json!({"duration": "999999999999999d"}), "too large"),
        (json!({"duration": "31d"}), "longer than"),
        (json!({"duration": 30}), "expected a string"),
        (json!({"duration_secs": 0}), "duration_secs"),
    ] {
        let mut body = json!({"scope": "user", "value": "x", "kind": "block", "reason": "r"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, answer) = issue(&app, &app.admin_key, body.clone()).await?;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap_or_default().contains(why), "{body}: {answer}");
    }
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
