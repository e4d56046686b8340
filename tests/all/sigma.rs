//! Sigma rules end to end on both backends: deployed over the API (`application/yaml`),
//! listed as `source: sigma`, alerting with their titles and levels, counted in the rule's
//! stats; refused with a 400 naming the rule and the line, nothing half-deployed; their
//! correlation state kept across a hot reload and a restart; deployed from the watched
//! rules directory (`*.yml`); the shipped content of `rules/sigma/` alerting on the seed
//! patterns while ignoring their near misses; and, on the equivalence corpus, every
//! deployment matching the events rsigma 0.23 matches and firing for the same groups
//! (`tests/fixtures/sigma/expected.json`, see `scripts/sigma-equivalence.sh`); a temporal
//! correlation whose condition counts rules with `1 of`.

use serde_json::{Value, json};
use vigil_tests::{Backend, TestApp, both_backends, repo_root, spawn_app, spawn_app_with};

both_backends!(
    sigma_rules_deploy_over_the_api_and_alert,
    a_refused_sigma_text_is_a_400_naming_the_rule_and_line_and_nothing_changes,
    sigma_correlation_state_survives_a_hot_reload_and_a_restart,
    the_rules_directory_deploys_sigma_files,
    the_shipped_sigma_rules_alert_on_the_seed_patterns_and_not_on_near_misses,
    a_server_matches_what_rsigma_matches_on_the_corpus,
    a_temporal_condition_counts_rules_with_1_of_per_group,
    vigil_dedup_by_gives_each_ip_its_own_alert,
);

const T0: i64 = 1_767_610_800_000; // 2026-01-05T11:00:00Z

/// The peer's seven rules as one deployment (the correlations name the detections).
pub fn peer_rules() -> String {
    let dir = repo_root().join("tests/fixtures/sigma/peer");
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect::<Vec<_>>().join("\n---\n")
}

pub async fn put_sigma(app: &TestApp, name: &str, text: &str) -> anyhow::Result<(u16, Value)> {
    let req = app
        .client
        .put(app.url(&format!("/v1/rules/{name}")))
        .header("content-type", "application/yaml")
        .body(text.to_owned());
    app.send(req, &app.admin_key).await
}

fn ev(category: &str, action: &str, t: i64) -> Value {
    json!({"category": category, "action": action, "timestamp": t})
}

fn with(mut event: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().unwrap() {
        event[k] = v.clone();
    }
    event
}

fn alerts_of(body: &Value) -> Vec<Value> {
    body["alerts"].as_array().cloned().unwrap_or_default()
}

async fn post_ok(app: &TestApp, body: Value) -> anyhow::Result<()> {
    let (status, resp) = app.post_events(&body).await?;
    anyhow::ensure!(status == 201, "ingest answered {status}: {resp}");
    Ok(())
}

fn failed_logins(ip: &str, range: std::ops::Range<i64>) -> Value {
    json!(
        range
            .map(|i| with(
                ev("authentication", "login_failed", T0 + i * 1000),
                json!({"ip": ip, "user_id": format!("u{i}")})
            ))
            .collect::<Vec<_>>()
    )
}

async fn sigma_rules_deploy_over_the_api_and_alert(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let (status, deployed) = put_sigma(&app, "peer", &peer_rules()).await?;
    assert_eq!(status, 201, "{deployed}");
    assert_eq!(deployed["format"], "sigma");
    let sha = deployed["sha256"].as_str().unwrap().to_owned();
    assert_eq!(sha.len(), 64);
    assert!(deployed["version"].as_str().unwrap().starts_with("sigma-"), "{deployed}");
    let (_, rule) = app.get("/v1/rules/peer").await?;
    assert_eq!(
        (rule["source"].as_str(), rule["origin"].as_str(), rule["format"].as_str()),
        (Some("sigma"), Some("api"), Some("sigma")),
        "{rule}"
    );
    assert_eq!(rule["severity"], "P1", "the highest level (critical) is the default severity");
    assert_eq!(rule["status"], "active");
    assert_eq!(rule["sha256"], sha.as_str());

    let mut events = failed_logins("203.0.113.9", 0..6).as_array().unwrap().clone();
    events.extend([
        with(ev("data_access", "record_read", T0 + 10_000), json!({"resource": "/items?id=1' OR 1=1 --"})),
        with(ev("data_access", "record_read", T0 + 11_000), json!({"resource": "/items?id=1 OR 2"})),
        with(ev("authorization", "permission_denied", T0 + 12_000), json!({"resource": "/admin/users"})),
        with(ev("authorization", "permission_denied", T0 + 13_000), json!({"resource": "/api/admin"})),
        with(ev("data_access", "record_read", T0 + 14_000), json!({"details": {"sensitive": true}})),
        with(ev("data_access", "record_read", T0 + 15_000), json!({"details": {"sensitive": false}})),
        // Another category: never offered to the rule.
        ev("payment", "payment_failed", T0 + 16_000),
    ]);
    post_ok(&app, json!(events)).await?;
    let body = app.wait_for("/v1/alerts?rule=peer", 15, |b| alerts_of(b).len() >= 4).await?;
    app.detection_idle().await?;
    let (_, body2) = app.get("/v1/alerts?rule=peer").await?;
    let mut got: Vec<(String, String)> = alerts_of(&body2)
        .iter()
        .map(|a| (a["title"].as_str().unwrap().to_owned(), a["severity"].as_str().unwrap().to_owned()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("Admin resource denied", "P2"),
            ("Brute force from one IP", "P2"),
            ("SQL injection probe", "P1"),
            ("Sensitive data access", "P3"),
        ]
        .map(|(t, s)| (t.to_owned(), s.to_owned())),
        "{body}"
    );
    let brute = alerts_of(&body2).into_iter().find(|a| a["title"] == "Brute force from one IP").unwrap();
    assert_eq!(
        brute["dedup_key"], "sigma:5b0a1f8e-0c41-4b9a-9a51-0f1c2a7d0002:203.0.113.9",
        "group-by values are the dedup key"
    );
    // Stats: every matching event counts (6 failed logins feeding the correlation + 3).
    let (_, stats) = app.get("/v1/rules/peer/stats").await?;
    assert_eq!(stats["stats"]["matches"], 9, "{stats}");
    assert_eq!(stats["stats"]["events"], 12, "the payment event was not offered: {stats}");

    // A new text replaces the version; the chain names both.
    let (status, replaced) = put_sigma(&app, "peer", &format!("# v2\n{}", peer_rules())).await?;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["replaced"], sha.as_str());
    let (_, chain) = app.get("/v1/events?action=rule_deployed").await?;
    let formats: Vec<&Value> = chain["events"].as_array().unwrap().iter().map(|e| &e["details"]["format"]).collect();
    assert_eq!(formats, [&json!("sigma"), &json!("sigma")], "{chain}");
    let (status, _) = app.send(app.client.delete(app.url("/v1/rules/peer")), &app.admin_key).await?;
    assert_eq!(status, 200);
    let (status, _) = app.get("/v1/rules/peer").await?;
    assert_eq!(status, 404);
    Ok(())
}

async fn a_refused_sigma_text_is_a_400_naming_the_rule_and_line_and_nothing_changes(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let bad_field = "title: Windows process\nlogsource:\n  product: app\ndetection:\n  sel:\n    CommandLine|contains: mimikatz\n  condition: sel\n";
    let (status, body) = put_sigma(&app, "winproc", bad_field).await?;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_rule");
    let message = body["error"]["message"].as_str().unwrap();
    for part in ["winproc", "\"Windows process\"", "line 6", "CommandLine"] {
        assert!(message.contains(part), "{part:?} missing from {message}");
    }
    let (status, _) = app.get("/v1/rules/winproc").await?;
    assert_eq!(status, 404, "nothing was deployed");

    // A running version stays when its replacement is refused (an unsupported correlation
    // type in the second document).
    let (status, ok) = put_sigma(&app, "peer", &peer_rules()).await?;
    assert_eq!(status, 201, "{ok}");
    let unsupported = format!(
        "{}\n---\ntitle: Sum of records\ncorrelation:\n  type: value_sum\n  rules: [failed_login]\n  timespan: 5m\n  condition:\n    gte: 5\n    field: details.n\n",
        peer_rules()
    );
    let (status, body) = put_sigma(&app, "peer", &unsupported).await?;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("Sum of records") && message.contains("value_sum") && message.contains("line "),
        "{message}"
    );
    let (_, rule) = app.get("/v1/rules/peer").await?;
    assert_eq!(rule["sha256"], ok["sha256"], "the running version is untouched");
    let (_, chain) = app.get("/v1/events?action=rule_deployed").await?;
    assert_eq!(chain["events"].as_array().unwrap().len(), 1, "a refusal is not a deploy");

    // A YAML syntax error names its line; a text that is not UTF-8 and a YAML body sent as
    // wasm are refused too.
    let (status, body) = put_sigma(&app, "broken", "title: x\ndetection:\n  sel: [\n").await?;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("line"), "{body}");
    let req = app
        .client
        .put(app.url("/v1/rules/bin"))
        .header("content-type", "application/yaml")
        .body(vec![0xff, 0xfe, 0x00]);
    let (status, body) = app.send(req, &app.admin_key).await?;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("UTF-8"), "{body}");
    let (status, body) = app.put_rule("yaml_as_wasm", peer_rules().into_bytes()).await?;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("WebAssembly"), "{body}");
    // Sigma deploys need the admin role like every rule deploy.
    let reader = app.create_key("read").await?;
    let req = app.client.put(app.url("/v1/rules/peer2")).header("content-type", "application/yaml").body(peer_rules());
    let (status, _) = app.send(req, &reader).await?;
    assert_eq!(status, 403);
    Ok(())
}

async fn sigma_correlation_state_survives_a_hot_reload_and_a_restart(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let (status, body) = put_sigma(&app, "peer", &peer_rules()).await?;
    assert_eq!(status, 201, "{body}");
    post_ok(&app, failed_logins("198.51.100.7", 0..4)).await?;
    app.detection_idle().await?;
    // Hot reload: a new version of the text (same rules) keeps the windows.
    let (status, body) = put_sigma(&app, "peer", &format!("# reloaded\n{}", peer_rules())).await?;
    assert_eq!(status, 200, "{body}");
    post_ok(&app, failed_logins("198.51.100.7", 4..5)).await?;
    app.detection_idle().await?;
    let (_, none) = app.get("/v1/alerts?rule=peer").await?;
    assert!(alerts_of(&none).is_empty(), "5 failures do not reach gte 6: {none}");
    // Restart: the Sigma rule comes back from the store with its SHA-256, and replay
    // rebuilds its 5-minute window, so the 6th failure fires.
    let app = app.restart().await?;
    let (_, rule) = app.get("/v1/rules/peer").await?;
    assert_eq!((rule["status"].as_str(), rule["source"].as_str()), (Some("active"), Some("sigma")), "{rule}");
    assert_eq!(rule["sha256"], body["sha256"]);
    post_ok(&app, failed_logins("198.51.100.7", 5..6)).await?;
    let fired = app.wait_for("/v1/alerts?rule=peer", 15, |b| !alerts_of(b).is_empty()).await?;
    let alerts = alerts_of(&fired);
    assert_eq!(alerts.len(), 1, "{fired}");
    assert_eq!(alerts[0]["title"], "Brute force from one IP");
    Ok(())
}

async fn the_rules_directory_deploys_sigma_files(backend: Backend) -> anyhow::Result<()> {
    let watched = std::env::temp_dir().join(format!("vigil-sigma-dir-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&watched)?;
    let dir = watched.clone();
    let app = spawn_app_with(backend, |c| c.rules_dir = Some(dir)).await?;
    let sql = std::fs::read_to_string(repo_root().join("tests/fixtures/sigma/peer/sql_injection.yml"))?;
    std::fs::write(watched.join("SQL-Probe.yml.part"), &sql)?;
    std::fs::rename(watched.join("SQL-Probe.yml.part"), watched.join("SQL-Probe.yml"))?;
    let body = app.wait_for("/v1/rules", 20, |b| b["rules"].as_array().is_some_and(|r| r.len() == 1)).await?;
    let rule = &body["rules"][0];
    assert_eq!((rule["name"].as_str(), rule["source"].as_str()), (Some("sql_probe"), Some("sigma")), "{body}");
    assert!(rule["origin"].as_str().unwrap().ends_with("SQL-Probe.yml"), "{rule}");
    post_ok(&app, json!([with(ev("data_access", "search", T0), json!({"details": {"q": "1 UNION SELECT 2"}}))]))
        .await?;
    let alerts = app.wait_for("/v1/alerts?rule=sql_probe", 15, |b| !alerts_of(b).is_empty()).await?;
    assert_eq!(alerts_of(&alerts)[0]["severity"], "P1");
    // A broken file is refused and recorded; the running version stays.
    std::fs::write(
        watched.join("SQL-Probe.yml"),
        "title: Broken\ndetection:\n  sel: {ip|nope: x}\n  condition: sel\n",
    )?;
    let refused = app
        .wait_for("/v1/events?action=rule_refused", 20, |b| b["events"].as_array().is_some_and(|e| !e.is_empty()))
        .await?;
    let reason = refused["events"][0]["details"]["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("Broken") && reason.contains("line"), "{refused}");
    let (_, still) = app.get("/v1/rules/sql_probe").await?;
    assert_eq!(still["sha256"], rule["sha256"]);
    std::fs::remove_file(watched.join("SQL-Probe.yml"))?;
    let gone = app.wait_for("/v1/rules", 10, |b| b["rules"] == json!([])).await?;
    assert_eq!(gone["rules"], json!([]));
    let _ = std::fs::remove_dir_all(&watched);
    Ok(())
}

/// Each shipped rule: events that must alert (with the alert title) and near misses.
async fn the_shipped_sigma_rules_alert_on_the_seed_patterns_and_not_on_near_misses(
    backend: Backend,
) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let dir = repo_root().join("rules/sigma");
    let mut files: Vec<_> = std::fs::read_dir(&dir)?.map(|e| e.unwrap().path()).collect();
    files.sort();
    for f in &files {
        let name = f.file_stem().unwrap().to_string_lossy().into_owned();
        let (status, body) = put_sigma(&app, &name, &std::fs::read_to_string(f)?).await?;
        assert_eq!(status, 201, "{name}: {body}");
    }
    let t = |s: i64| T0 + s * 1000;
    let mut events = Vec::new();
    let mut push = |e: Value| events.push(e);
    // failed_admin_logins: 4 failed admin logins for one account (> 3); 3 for another, and
    // 5 failed non-admin logins: near misses.
    for i in 0..4 {
        push(with(
            ev("authentication", "login_failed", t(i)),
            json!({"user_id": "root", "details": {"user_role": "admin"}}),
        ));
    }
    for i in 0..3 {
        push(with(ev("authentication", "login_failed", t(i)), json!({"user_id": "ops", "resource": "/admin/login"})));
    }
    for i in 0..5 {
        push(with(
            ev("authentication", "login_failed", t(i)),
            json!({"user_id": "bob", "details": {"user_role": "user"}}),
        ));
    }
    // api_key_request_rate: 101 uses of one key in a minute; 100 of another.
    for i in 0..101 {
        push(with(ev("api", "api_key_used", T0 + i * 100), json!({"api_key_id": "key-hot"})));
    }
    for i in 0..100 {
        push(with(ev("api", "api_key_used", T0 + i * 100), json!({"api_key_id": "key-busy"})));
    }
    // api_key_validation_failures: 5 from one IP; 4 from another.
    for i in 0..5 {
        push(with(ev("api", "api_key_validation_failed", t(i)), json!({"ip": "192.0.2.50"})));
    }
    for i in 0..4 {
        push(with(ev("api", "api_key_validation_failed", t(i)), json!({"ip": "192.0.2.51"})));
    }
    // high_severity_event: one critical; a medium one.
    push(with(ev("system", "disk_failure", t(1)), json!({"severity": "critical"})));
    push(with(ev("system", "disk_warning", t(1)), json!({"severity": "medium"})));
    // deleted_record_access: read of a deleted record; a refused one; a live one.
    push(with(ev("data_access", "record_read", t(2)), json!({"details": {"record_status": "deleted"}})));
    push(with(ev("data_access", "record_read", t(2)), json!({"outcome": "failure", "details": {"deleted": true}})));
    push(with(ev("data_access", "record_read", t(2)), json!({"details": {"record_status": "active"}})));
    // unauthorized_deployment: not approved; approved.
    push(with(ev("deployment", "deploy_started", t(3)), json!({"details": {"approved": false}})));
    push(with(ev("deployment", "deploy_started", t(3)), json!({"details": {"approved": true}})));
    // webhook_signature_failure: a signature failure; a timeout.
    push(with(ev("webhook", "webhook_received", t(4)), json!({"outcome": "failure", "reason": "bad signature"})));
    push(with(ev("webhook", "webhook_received", t(4)), json!({"outcome": "failure", "reason": "timeout"})));
    // slow_query: 6 s; 4.9 s.
    push(with(ev("database", "query", t(5)), json!({"details": {"duration_ms": 6000}})));
    push(with(ev("database", "query", t(5)), json!({"details": {"duration_ms": 4900}})));
    // external_api_errors: 21 failures of one API in 5 minutes; 20 of another.
    for i in 0..21 {
        push(with(ev("external_api", "call", t(i)), json!({"source": "stripe", "outcome": "failure"})));
    }
    for i in 0..20 {
        push(with(ev("external_api", "call", t(i)), json!({"source": "github", "outcome": "failure"})));
    }
    // payment_failure_then_success: failure then success for one user; success then
    // failure for another.
    push(with(ev("payment", "payment_failed", t(10)), json!({"user_id": "carder", "ip": "198.51.100.1"})));
    push(with(ev("payment", "payment_succeeded", t(20)), json!({"user_id": "carder", "ip": "198.51.100.2"})));
    push(with(ev("payment", "payment_succeeded", t(10)), json!({"user_id": "honest"})));
    push(with(ev("payment", "payment_failed", t(20)), json!({"user_id": "honest"})));
    for chunk in events.chunks(500) {
        post_ok(&app, json!(chunk)).await?;
    }
    app.detection_idle().await?;
    let expected = [
        ("api_key_request_rate", "More than 100 requests with one API key in a minute", "key-hot"),
        ("api_key_validation_failures", "5 or more API key validation failures from one IP in 5 minutes", "192.0.2.50"),
        ("deleted_record_access", "Access to a deleted record", ""),
        ("external_api_errors", "More than 20 failed calls to one external API in 5 minutes", "stripe"),
        ("failed_admin_logins", "More than 3 failed admin logins for one account in 10 minutes", "root"),
        ("high_severity_event", "High or critical severity event", ""),
        ("payment_failure_then_success", "Failed payment followed by a success within 30 minutes", "carder"),
        ("slow_query", "Slow database query", ""),
        ("unauthorized_deployment", "Unauthorized deployment", ""),
        ("webhook_signature_failure", "Webhook signature verification failed", ""),
    ];
    for (rule, title, group) in expected {
        let body = app.wait_for(&format!("/v1/alerts?rule={rule}"), 10, |b| !alerts_of(b).is_empty()).await?;
        let alerts = alerts_of(&body);
        assert_eq!(alerts.len(), 1, "{rule}: exactly one alert (the near misses raise none): {body}");
        assert_eq!(alerts[0]["title"], title, "{rule}: {body}");
        assert!(alerts[0]["dedup_key"].as_str().unwrap().ends_with(group), "{rule}: {body}");
        assert_eq!(alerts[0]["count"], 1, "{rule}: a single match: {body}");
    }
    Ok(())
}

/// The server's side of the equivalence check (the evaluator's own test compares rule by
/// rule): each deployment's match count is the number of corpus events rsigma matches with
/// any of its rules, and its correlation alerts are for exactly rsigma's groups.
async fn a_server_matches_what_rsigma_matches_on_the_corpus(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("tests/fixtures/sigma/expected.json"))?)?;
    let deployments = expected["deployments"].as_object().unwrap();
    for name in deployments.keys() {
        let text = if name == "peer" {
            peer_rules()
        } else {
            std::fs::read_to_string(repo_root().join(format!("rules/sigma/{name}.yml")))?
        };
        let (status, body) = put_sigma(&app, name, &text).await?;
        assert_eq!(status, 201, "{name}: {body}");
    }
    let corpus: Vec<Value> = std::fs::read_to_string(repo_root().join("tests/fixtures/sigma/corpus.ndjson"))?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    for chunk in corpus.chunks(500) {
        let (status, resp) = app.post_events(&json!(chunk)).await?;
        assert_eq!(status, 201, "{resp}");
        assert!(resp["failures"].as_array().is_none_or(|f| f.is_empty()), "the corpus is valid as is: {resp}");
    }
    app.detection_idle().await?;
    for (name, want) in deployments {
        let mut matched = std::collections::BTreeSet::new();
        for events in want["detections"].as_object().unwrap().values() {
            matched.extend(events.as_array().unwrap().iter().map(|i| i.as_u64().unwrap()));
        }
        let (_, stats) = app.get(&format!("/v1/rules/{name}/stats")).await?;
        assert_eq!(stats["stats"]["matches"], matched.len(), "{name}: {stats}");
        assert_eq!(stats["stats"]["faults"], 0, "{name}: {stats}");
        let correlations = want["correlations"].as_object().unwrap();
        let groups_of = |body: &Value| {
            let mut got: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> = Default::default();
            for a in alerts_of(body) {
                let title = a["title"].as_str().unwrap_or_default();
                if correlations.contains_key(title) {
                    let group = a["dedup_key"].as_str().unwrap().splitn(3, ':').nth(2).unwrap_or_default().to_owned();
                    got.entry(title.to_owned()).or_default().insert(group);
                }
            }
            got
        };
        let wanted: usize = correlations.values().map(|g| g.as_array().unwrap().len()).sum();
        // Alerts are stored just after detection: wait for as many groups as rsigma has.
        let body = app
            .wait_for(&format!("/v1/alerts?rule={name}&limit=500"), 15, |b| {
                groups_of(b).values().map(|g| g.len()).sum::<usize>() >= wanted
            })
            .await?;
        let mut got = groups_of(&body);
        for (title, groups) in correlations {
            let want: std::collections::BTreeSet<String> = serde_json::from_value(groups.clone())?;
            assert_eq!(got.remove(title).unwrap_or_default(), want, "{name} / {title}");
        }
    }
    Ok(())
}

/// `vigil rules sigma check|deploy` and `vigil rules backtest` of a Sigma file (what the
/// commands run).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sigma_commands_check_deploy_and_backtest() -> anyhow::Result<()> {
    let app = spawn_app(Backend::Sqlite).await?;
    let peer_dir = repo_root().join("tests/fixtures/sigma/peer");
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&peer_dir)?.map(|e| e.unwrap().path()).collect();
    files.sort();
    let (results, ok) = tokio::task::block_in_place(|| vigil::cli::sigma_check(&files, Some("peer")))?;
    assert!(ok, "{results:?}");
    assert_eq!(results[0]["manifest"]["name"], "peer");
    // Alone, a correlation file names a rule that is not in its deployment.
    let lone = [peer_dir.join("brute_force.yml")];
    let (results, ok) = tokio::task::block_in_place(|| vigil::cli::sigma_check(&lone, None))?;
    assert!(!ok);
    let error = results[0]["error"].as_str().unwrap();
    assert!(error.contains("brute_force") && error.contains("failed_login") && error.contains("line 7"), "{error}");

    // Backtest a Sigma file over stored events: alerts reported, nothing written.
    let events: Vec<Value> = failed_logins("203.0.113.77", 0..7).as_array().unwrap().clone();
    let (status, _) = app.post_events(&json!(events)).await?;
    assert_eq!(status, 201);
    let head_before = app.get("/v1/integrity/head").await?.1;
    let (_, stored_before) = app.get("/v1/alerts").await?;
    let file = std::env::temp_dir().join(format!("vigil-sigma-{}.yml", uuid::Uuid::now_v7().simple()));
    std::fs::write(&file, peer_rules())?;
    let (seen, alerts) = vigil::cli::backtest(&file, T0, Some(T0 + 86_400_000), app.config.clone()).await?;
    assert_eq!(seen, 7);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["title"], "Brute force from one IP");
    assert_eq!(alerts[0]["rule"], file.file_stem().unwrap().to_string_lossy().replace('-', "_"));
    assert_eq!(app.get("/v1/alerts").await?.1, stored_before, "backtest writes no alert");
    assert_eq!(app.get("/v1/integrity/head").await?.1, head_before, "and no event");
    let _ = std::fs::remove_file(&file);

    vigil::cli::sigma_deploy(&files, Some("peer"), &app.base, &app.admin_key).await?;
    let (_, rule) = app.get("/v1/rules/peer").await?;
    assert_eq!(rule["source"], "sigma", "{rule}");
    Ok(())
}

/// Two intrusion stages and an exfiltration per IP within 5 minutes: `1 of stage_* and
/// exfil` fires for the IP that did both, not for the one that only exported; a condition
/// naming no rule of the correlation is a 400 with its line.
async fn a_temporal_condition_counts_rules_with_1_of_per_group(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let detection = |name: &str, action: &str| {
        format!(
            "title: {name}\nname: {name}\nlogsource: {{category: network}}\ndetection:\n  sel: {{action: {action}}}\n  condition: sel\n---\n"
        )
    };
    let text = |condition: &str| {
        format!(
            "{}{}{}title: Intrusion\ncorrelation:\n  type: temporal\n  rules: [stage_recon, stage_exploit, exfil]\n  group-by: [ip]\n  timespan: 5m\n  condition: {condition}\nlevel: high\n",
            detection("stage_recon", "port_scan"),
            detection("stage_exploit", "exploit_attempt"),
            detection("exfil", "bulk_export")
        )
    };
    let (status, body) = put_sigma(&app, "intrusion", &text("1 of lateral_* and exfil")).await?;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("line 28") && message.contains("`1 of lateral_*`"), "{message}");
    let (status, body) = put_sigma(&app, "intrusion", &text("1 of stage_* and exfil")).await?;
    assert_eq!(status, 201, "{body}");
    let at = |action: &str, ip: &str, t: i64| with(ev("network", action, T0 + t * 1000), json!({"ip": ip}));
    post_ok(
        &app,
        json!([
            at("bulk_export", "198.51.100.1", 0),
            at("bulk_export", "198.51.100.2", 1),
            at("exploit_attempt", "198.51.100.2", 2),
            at("port_scan", "198.51.100.3", 3)
        ]),
    )
    .await?;
    let body = app.wait_for("/v1/alerts?rule=intrusion", 15, |b| !alerts_of(b).is_empty()).await?;
    let alerts = alerts_of(&body);
    assert_eq!(alerts.len(), 1, "{body}");
    assert_eq!(alerts[0]["dedup_key"], "sigma:Intrusion:198.51.100.2");
    assert_eq!(alerts[0]["severity"], "P2");
    let (_, stats) = app.get("/v1/rules/intrusion/stats").await?;
    assert_eq!(stats["stats"]["alerts"], 1, "only the IP with a stage and the export: {stats}");
    Ok(())
}

/// `vigil.dedup_by: ip`: matches from two IPs are two alerts, a repeat folds into its IP's.
async fn vigil_dedup_by_gives_each_ip_its_own_alert(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let text = "title: Webhook signature failure\nname: webhook_sig\nlogsource: {category: webhook}\nvigil.dedup_by: ip\ndetection:\n  sel: {action: signature_failed}\n  condition: sel\nlevel: high\n";
    let (status, body) = put_sigma(&app, "webhook_sig", text).await?;
    assert_eq!(status, 201, "{body}");
    let at = |ip: &str, t: i64| with(ev("webhook", "signature_failed", T0 + t * 1000), json!({"ip": ip}));
    post_ok(&app, json!([at("198.51.100.7", 0), at("198.51.100.8", 1), at("198.51.100.7", 2)])).await?;
    let body = app.wait_for("/v1/alerts?rule=webhook_sig", 15, |b| alerts_of(b).len() >= 2).await?;
    let mut keys: Vec<String> =
        alerts_of(&body).iter().map(|a| a["dedup_key"].as_str().unwrap_or_default().to_owned()).collect();
    keys.sort();
    assert_eq!(keys, ["sigma:webhook_sig:198.51.100.7", "sigma:webhook_sig:198.51.100.8"], "{body}");
    let (status, body) = put_sigma(&app, "typo", &text.replace("vigil.dedup_by", "vigil.dedupby")).await?;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("line 4"), "{body}");
    Ok(())
}
