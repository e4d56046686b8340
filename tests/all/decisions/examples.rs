//! The example rules' responses (issue 25), as deployed on a server: `impossible_travel`
//! and `new_country_login` require MFA from the user and `api_key_anomaly` throttles the
//! key by default; `sql_injection_probe` blocks the user only when configured. Each
//! decision is tied to the alert it goes with, with the scope, kind and duration the
//! rule's configuration gives; a switch set to "off" leaves the alerts as they were and
//! decides nothing; the allowlist and simulate mode apply as for every rule.

use vigil::config::{DecisionMode, RuleDecisionsConfig};

use super::guardrails::stored_on;
use super::*;

both_backends!(
    the_example_rules_decide_by_default_tied_to_their_alerts,
    a_configured_sql_injection_probe_blocks_the_user_for_a_while,
    switched_off_the_example_rules_raise_the_same_alerts_and_decide_nothing,
    the_allowlist_and_simulate_mode_apply_to_the_example_rules,
);

const NEW_YORK: (f64, f64) = (40.7128, -74.006);
const LONDON: (f64, f64) = (51.5074, -0.1278);

/// A rule's configuration table, as `[rules.config.<rule>]` would give it.
fn configure(c: &mut Config, rule: &str, toml_text: &str) {
    c.rules.config.insert(rule.to_owned(), toml_text.parse().expect("test TOML"));
}

fn login(user: &str, (lat, lon): (f64, f64), country: &str, at: i64) -> Value {
    json!({"category": "authentication", "action": "login_success", "outcome": "success", "user_id": user,
        "ip": "192.0.2.10", "geo": {"lat": lat, "lon": lon, "country": country}, "timestamp": at})
}

/// A key's requests: `counts[m]` in minute `m` from `start` (minute-aligned), then `spike`.
fn key_requests(key: &str, start: i64, counts: &[i64], spike: i64) -> Value {
    let minutes = counts.iter().copied().chain([spike]).enumerate();
    let events = minutes.flat_map(|(m, n)| {
        (0..n).map(move |i| {
            json!({"category": "api", "action": "api_key_used", "api_key_id": key, "ip": "192.0.2.20",
                "timestamp": start + m as i64 * MIN + i * 1000})
        })
    });
    Value::Array(events.collect())
}

const HISTORY: [i64; 10] = [5, 6, 5, 4, 5, 6, 5, 4, 5, 6];

/// The minute-aligned start of a key's eleven minutes, ending before `now`.
fn minutes_before(now: i64) -> i64 {
    (now - 20 * MIN).div_euclid(MIN) * MIN
}

async fn post(app: &TestApp, events: &Value) -> anyhow::Result<()> {
    let (status, body) = app.post_events(events).await?;
    anyhow::ensure!(status == 201, "{status} {body}");
    Ok(())
}

/// The decision `rule` stored on `value` (any status), once there.
async fn decision_of(app: &TestApp, rule: &str, value: &str) -> anyhow::Result<Value> {
    eventually(&format!("{rule}'s decision on {value}"), || async {
        Ok(stored_on(app, value).await?.into_iter().find(|d| d["rule"] == rule))
    })
    .await
}

/// The alert of `rule` with `dedup_key`, once stored, with its detail.
async fn alert_of(app: &TestApp, rule: &str, dedup_key: &str) -> anyhow::Result<Value> {
    let found = eventually(&format!("{rule}'s alert {dedup_key}"), || async {
        let (_, alerts) = app.get(&format!("/v1/alerts?rule={rule}&limit=100")).await?;
        Ok(alerts["alerts"].as_array().into_iter().flatten().find(|a| a["dedup_key"] == dedup_key).cloned())
    })
    .await?;
    let (status, detail) = app.get(&format!("/v1/alerts/{}", found["id"])).await?;
    anyhow::ensure!(status == 200, "{detail}");
    Ok(detail)
}

/// Checks `d` is `rule`'s active `kind` decision on `scope`, lasting `minutes`, tied to
/// `alert` (by id, and listed in the alert's detail).
fn assert_tied(d: &Value, alert: &Value, (rule, scope, kind, minutes): (&str, &str, &str, i64)) {
    assert_eq!((d["rule"].as_str(), d["origin"].as_str()), (Some(rule), Some("rule")), "{d}");
    assert_eq!(
        (d["scope"].as_str(), d["kind"].as_str(), d["status"].as_str()),
        (Some(scope), Some(kind), Some("active"))
    );
    let created = vigil::event::parse_time(d["created_at"].as_str().unwrap()).unwrap();
    let expires = vigil::event::parse_time(d["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires - created, minutes * MIN, "{rule}: {d}");
    assert_eq!(d["alert_id"], alert["id"], "{rule}: tied to its alert: {d}");
    let reason = d["reason"].as_str().unwrap_or_default();
    assert!(!reason.is_empty() && reason.starts_with(alert["title"].as_str().unwrap_or("?")), "{reason} / {alert}");
}

// Long by design: three rules' default responses on one server.
async fn the_example_rules_decide_by_default_tied_to_their_alerts(backend: Backend) -> anyhow::Result<()> {
    let (app, clock) = app(backend, |c| configure(c, "new_country_login", "learning_days = 0")).await?;
    for rule in ["impossible_travel", "new_country_login", "api_key_anomaly"] {
        deploy_example(&app, rule).await?;
    }
    let now = clock.now_ms();
    // New York, then London an hour later: impossible travel (and a new country).
    post(&app, &json!([login("alice", NEW_YORK, "US", now - 90 * MIN), login("alice", LONDON, "GB", now - 30 * MIN)]))
        .await?;
    let alert = alert_of(&app, "impossible_travel", "user:alice").await?;
    let d = decision_of(&app, "impossible_travel", "alice").await?;
    assert_tied(&d, &alert, ("impossible_travel", "user", "require_mfa", 60));
    assert_eq!(d["event_seqs"].as_array().map(Vec::len), Some(2), "both logins: {d}");
    // A new country (same place, so no impossible travel): new_country_login decides.
    post(&app, &json!([login("bob", NEW_YORK, "US", now - 50 * MIN), login("bob", NEW_YORK, "BR", now - 10 * MIN)]))
        .await?;
    let alert = alert_of(&app, "new_country_login", "user:bob:country:BR").await?;
    let d = decision_of(&app, "new_country_login", "bob").await?;
    assert_tied(&d, &alert, ("new_country_login", "user", "require_mfa", 60));
    // An API key far above its usual minute: throttled for 30 minutes.
    post(&app, &key_requests("key-7", minutes_before(now), &HISTORY, 30)).await?;
    let alert = alert_of(&app, "api_key_anomaly", "api_key:key-7").await?;
    let d = decision_of(&app, "api_key_anomaly", "key-7").await?;
    assert_tied(&d, &alert, ("api_key_anomaly", "api_key", "throttle", 30));
    assert_eq!(d["event_seqs"], alert["event_seqs"], "the request that crossed the limit: {d}");
    // A bouncer sees what to enforce.
    let bouncer = app.create_key("bouncer").await?;
    assert_eq!(check(&app, &bouncer, "api_key", "key-7").await?.len(), 1);
    assert_eq!(check(&app, &bouncer, "user", "alice").await?[0]["kind"], "require_mfa");
    Ok(())
}

async fn a_configured_sql_injection_probe_blocks_the_user_for_a_while(backend: Backend) -> anyhow::Result<()> {
    let toml = "user_decision = \"block\"\nuser_decision_minutes = 45";
    let (app, clock) = app(backend, |c| configure(c, "sql_injection_probe", toml)).await?;
    deploy_example(&app, "sql_injection_probe").await?;
    let probe = |at: i64| {
        json!({"category": "data_access", "action": "read", "user_id": "mallory", "ip": "192.0.2.66",
            "resource": "/items?id=1' OR 1=1 --", "timestamp": at})
    };
    let now = clock.now_ms();
    post(&app, &json!([probe(now - 2 * MIN), probe(now - MIN)])).await?;
    let alert = alert_of(&app, "sql_injection_probe", "ip:192.0.2.66").await?;
    let d = decision_of(&app, "sql_injection_probe", "mallory").await?;
    assert_tied(&d, &alert, ("sql_injection_probe", "user", "block", 45));
    assert_eq!(stored_on(&app, "mallory").await?.len(), 1, "one block while it stands");
    assert_eq!(check(&app, &app.admin_key, "user", "mallory").await?.len(), 1, "enforced");
    Ok(())
}

/// `rule`'s stats once it raised `alerts` alerts.
async fn stats_after(app: &TestApp, rule: &str, alerts: i64) -> anyhow::Result<Value> {
    eventually(&format!("{alerts} alerts of {rule}"), || async {
        let (_, stats) = app.get(&format!("/v1/rules/{rule}/stats")).await?;
        Ok((stats["stats"]["alerts"].as_i64() >= Some(alerts)).then_some(stats))
    })
    .await
}

async fn switched_off_the_example_rules_raise_the_same_alerts_and_decide_nothing(
    backend: Backend,
) -> anyhow::Result<()> {
    let (app, clock) = app(backend, |c| {
        configure(c, "impossible_travel", "user_decision = \"off\"");
        configure(c, "new_country_login", "user_decision = \"off\"\nlearning_days = 0");
        configure(c, "api_key_anomaly", "key_decision = \"off\"");
        // sql_injection_probe: off by default.
    })
    .await?;
    let rules = ["impossible_travel", "new_country_login", "api_key_anomaly", "sql_injection_probe"];
    for rule in rules {
        deploy_example(&app, rule).await?;
    }
    let now = clock.now_ms();
    let mut events = vec![login("carol", NEW_YORK, "US", now - 90 * MIN), login("carol", LONDON, "GB", now - 30 * MIN)];
    events.push(json!({"category": "data_access", "action": "read", "user_id": "carol", "ip": "192.0.2.67",
        "resource": "/items?id=1 UNION SELECT password FROM users", "timestamp": now - MIN}));
    post(&app, &Value::Array(events)).await?;
    post(&app, &key_requests("key-8", minutes_before(now), &HISTORY, 30)).await?;
    alert_of(&app, "impossible_travel", "user:carol").await?;
    alert_of(&app, "new_country_login", "user:carol:country:GB").await?;
    alert_of(&app, "sql_injection_probe", "ip:192.0.2.67").await?;
    alert_of(&app, "api_key_anomaly", "api_key:key-8").await?;
    for rule in rules {
        let stats = stats_after(&app, rule, 1).await?;
        assert_eq!(stats["stats"]["decisions"], 0, "{rule}: {stats}");
    }
    for value in ["carol", "key-8"] {
        assert_eq!(stored_on(&app, value).await?, Vec::<Value>::new(), "nothing decided on {value}");
    }
    Ok(())
}

async fn the_allowlist_and_simulate_mode_apply_to_the_example_rules(backend: Backend) -> anyhow::Result<()> {
    let (app, clock) = app(backend, |c| {
        c.decisions.allow = vec![vigil::config::AllowConfig {
            scope: "user".into(),
            value: "road-warrior".into(),
            reason: "travels with a VPN".into(),
        }];
        c.decisions.rules =
            [("api_key_anomaly".to_owned(), RuleDecisionsConfig { mode: DecisionMode::Simulate })].into();
    })
    .await?;
    deploy_example(&app, "impossible_travel").await?;
    deploy_example(&app, "api_key_anomaly").await?;
    let now = clock.now_ms();
    post(
        &app,
        &json!([
            login("road-warrior", NEW_YORK, "US", now - 90 * MIN),
            login("road-warrior", LONDON, "GB", now - 30 * MIN)
        ]),
    )
    .await?;
    post(&app, &key_requests("key-9", minutes_before(now), &HISTORY, 30)).await?;
    // Allowlisted: the alert is raised, the MFA requirement refused as allowlisted.
    alert_of(&app, "impossible_travel", "user:road-warrior").await?;
    let stats = eventually("the refusal", || async {
        let (_, stats) = app.get("/v1/rules/impossible_travel/stats").await?;
        Ok((stats["stats"]["decisions_refused"] == 1).then_some(stats))
    })
    .await?;
    assert_eq!(stats["stats"]["alerts"], 1, "{stats}");
    assert!(check(&app, &app.admin_key, "user", "road-warrior").await?.is_empty());
    // Simulated for api_key_anomaly: recorded, tied to the alert, never enforced.
    let alert = alert_of(&app, "api_key_anomaly", "api_key:key-9").await?;
    let d = decision_of(&app, "api_key_anomaly", "key-9").await?;
    assert_eq!((d["status"].as_str(), d["kind"].as_str()), (Some("simulated"), Some("throttle")), "{d}");
    assert_eq!(d["alert_id"], alert["id"]);
    assert!(check(&app, &app.admin_key, "api_key", "key-9").await?.is_empty(), "not enforced");
    Ok(())
}
