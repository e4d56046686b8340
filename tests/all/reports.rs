//! The security report (`GET /v1/reports/security`, `vigil report`) on both backends under
//! a manual clock: event figures and failure rates, new IPs and countries of a privileged
//! user, alerts by rule and disposition, MTTD/MTTA and SLA attainment per severity,
//! decisions issued and lifted, the HTML page with hostile text escaped, clear 400s, and
//! the security counters of `/metrics` for the same traffic.

use serde_json::{Value, json};
use vigil::clock::Clock;
use vigil_tests::{Backend, TestApp, both_backends, example_rules, spawn_app_with};

mod schedule;

both_backends!(
    a_day_report_counts_what_happened_and_its_html_escapes_attacker_text,
    compliance_evidence_names_who_read_the_log_and_which_rules_changed,
    the_first_and_last_dates_give_reports_and_out_of_range_ones_400s
);

/// 2026-01-05T07:00:00Z, a Monday: the manual clock's start.
const T0: i64 = 1_767_596_400_000;
const MIN: i64 = 60_000;
const DAY: i64 = 86_400_000;
const HOSTILE: &str = "<script>alert(1)</script>";

fn ev(category: &str, action: &str, outcome: &str, user: &str, ip: &str, at: i64, country: &str) -> Value {
    json!({"category": category, "action": action, "outcome": outcome, "user_id": user, "ip": ip,
        "timestamp": at, "geo": {"country": country}})
}

async fn post(app: &TestApp, key: &str, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
    app.send(app.client.post(app.url(path)).json(&body), key).await
}

async fn report(app: &TestApp, query: &str) -> anyhow::Result<Value> {
    let (status, body) = app.get(&format!("/v1/reports/security?{query}")).await?;
    anyhow::ensure!(status == 200, "report {query}: {status} {body}");
    Ok(body)
}

fn severity<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["response"]["by_severity"].as_array().unwrap().iter().find(|s| s["severity"] == name).unwrap()
}

fn count_of(list: &Value, value: &str) -> Option<i64> {
    list.as_array()?.iter().find(|c| c["value"] == value).and_then(|c| c["count"].as_i64())
}

// Long by design: one day of activity, then every section of its report checked.
async fn a_day_report_counts_what_happened_and_its_html_escapes_attacker_text(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app_with(backend, |c| {
        c.clock = Clock::manual(T0);
        c.reports.privileged_users = vec!["root-admin".into()];
    })
    .await?;
    let clock = app.server.state.alerts.clock();
    let wasm = std::fs::read(example_rules()?.join("brute_force.wasm"))?;
    let (status, body) = app.put_rule("brute_force", wasm).await?;
    anyhow::ensure!(status == 200 || status == 201, "deploy: {status} {body}");
    let responder = app.create_key("respond").await?;

    // The privileged user's baseline (four days before) and the day's own sightings.
    let mut batch = vec![ev("admin", "config_changed", "success", "root-admin", "10.0.0.1", T0 - 4 * DAY, "CH")];
    batch.push(ev("admin", "config_changed", "success", "root-admin", "10.0.0.1", T0 - 2 * MIN, "CH"));
    batch.push(ev("admin", "user_deleted", "success", "root-admin", "198.51.100.4", T0 - MIN, "FR"));
    batch.push(ev("data_access", "record_read", "success", HOSTILE, "192.0.2.9", T0 - MIN, "DE"));
    let (status, posted) = app.post_events(&json!(batch)).await?;
    assert_eq!(status, 201, "{posted}");
    // Six failed logins five minutes before the clock: the brute-force rule alerts (P2).
    let e0 = T0 - 5 * MIN;
    let failures: Vec<Value> = (0..6)
        .map(|i| {
            ev("authentication", "login_failed", "failure", &format!("victim{i}"), "203.0.113.7", e0 + i * 1000, "NL")
        })
        .collect();
    let (status, posted) = app.post_events(&json!(failures)).await?;
    assert_eq!(status, 201, "{posted}");
    let alerts = app
        .wait_for("/v1/alerts?rule=brute_force", 20, |b| b["alerts"].as_array().is_some_and(|a| !a.is_empty()))
        .await?;
    let brute = alerts["alerts"][0]["id"].as_i64().unwrap();
    assert_eq!(alerts["alerts"][0]["severity"], "P2");

    // P2 acknowledged after 30 min (SLA 1 h: met); a manual P1 acknowledged after 20 min
    // (SLA 15 min: missed) and resolved as a false positive; a P3 still open within its SLA.
    clock.advance(30 * MIN);
    let (status, body) = post(&app, &responder, &format!("/v1/alerts/{brute}/ack"), json!({})).await?;
    assert_eq!(status, 200, "{body}");
    let (status, p1) = post(&app, &app.admin_key, "/v1/alerts", json!({"title": "db down", "severity": "P1"})).await?;
    assert_eq!(status, 201, "{p1}");
    let (status, p3) = post(&app, &app.admin_key, "/v1/alerts", json!({"title": "odd", "severity": "P3"})).await?;
    assert_eq!(status, 201, "{p3}");
    clock.advance(20 * MIN);
    let p1 = p1["id"].as_i64().unwrap();
    let (status, body) = post(&app, &responder, &format!("/v1/alerts/{p1}/ack"), json!({})).await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        post(&app, &responder, &format!("/v1/alerts/{p1}/resolve"), json!({"disposition": "false_positive"})).await?;
    assert_eq!(status, 200, "{body}");
    // A decision issued and lifted.
    let (status, decision) = post(
        &app,
        &responder,
        "/v1/decisions",
        json!({"scope": "ip", "value": "192.0.2.50", "kind": "block", "duration_secs": 3600, "reason": "burst"}),
    )
    .await?;
    assert_eq!(status, 201, "{decision}");
    let id = decision["id"].as_i64().unwrap();
    let (status, body) = app
        .send(app.client.delete(app.url(&format!("/v1/decisions/{id}"))).json(&json!({"reason": "done"})), &responder)
        .await?;
    assert_eq!(status, 200, "{body}");

    let day = report(&app, "period=day&date=2026-01-05").await?;
    assert_eq!((day["period"].as_str(), day["date"].as_str()), (Some("day"), Some("2026-01-05")));
    assert_eq!(day["from"], "2026-01-05T00:00:00.000Z");
    assert_eq!(day["to"], "2026-01-06T00:00:00.000Z");
    // Events: the six failures, the admin's two and the hostile user's one (the baseline
    // event is four days earlier), besides the server's own events of the day.
    let events = &day["events"];
    assert_eq!(count_of(&events["by_category"], "authentication"), Some(6));
    assert_eq!(count_of(&events["by_category"], "admin"), Some(2));
    assert_eq!(count_of(&events["top_ips"], "203.0.113.7"), Some(6));
    assert_eq!(count_of(&events["top_users"], HOSTILE), Some(1));
    assert_eq!(count_of(&events["top_actions"], "login_failed"), Some(6));
    let auth = events["failure_rates"].as_array().unwrap().iter().find(|r| r["category"] == "authentication").unwrap();
    assert_eq!(
        (auth["events"].as_i64(), auth["failures"].as_i64(), auth["failure_rate"].as_f64()),
        (Some(6), Some(6), Some(1.0))
    );
    // The privileged user's new IP and country (10.0.0.1 and CH were seen in the baseline).
    assert_eq!(
        day["privileged_users"],
        json!([{"user_id": "root-admin", "new_ips": ["198.51.100.4"], "new_countries": ["FR"], "ips": 2}])
    );
    // Alerts.
    let alerts = &day["alerts"];
    assert_eq!(alerts["total"], 3);
    assert_eq!(alerts["by_severity"], json!({"P1": 1, "P2": 1, "P3": 1}));
    assert_eq!(alerts["by_disposition"]["false_positive"], 1);
    let manual = alerts["by_rule"].as_array().unwrap().iter().find(|r| r["rule"] == "manual").unwrap();
    assert_eq!((manual["alerts"].as_i64(), manual["false_positive_rate"].as_f64()), (Some(2), Some(1.0)));
    let (p1, p2, p3) = (severity(&day, "P1"), severity(&day, "P2"), severity(&day, "P3"));
    assert_eq!(
        (p1["sla_seconds"].as_i64(), p1["sla_met"].as_i64(), p1["sla_missed"].as_i64()),
        (Some(900), Some(0), Some(1))
    );
    assert_eq!((p1["mtta_seconds"].as_f64(), p1["sla_attainment"].as_f64()), (Some(1200.0), Some(0.0)));
    assert_eq!((p2["mtta_seconds"].as_f64(), p2["sla_attainment"].as_f64()), (Some(1800.0), Some(1.0)));
    // Detection: from the triggering event (the burst's last, 4:55 before the clock) to the alert.
    let mttd = p2["mttd_seconds"].as_f64().unwrap();
    assert!((294.0..=300.0).contains(&mttd), "MTTD {mttd}");
    assert_eq!((p3["alerts"].as_i64(), p3["sla_attainment"].as_f64()), (Some(1), None), "still within its SLA");
    assert_eq!(day["response"]["sla_attainment"].as_f64(), Some(0.5));
    // Decisions and integrity.
    // The rule blocks the burst's IP as well as the person's block: every issued one is a block.
    let decisions = &day["decisions"];
    assert_eq!(decisions["lifted"], 1);
    assert!(decisions["issued"].as_i64().unwrap() >= 1);
    assert_eq!(decisions["issued_by_kind"], json!({"block": decisions["issued"]}));
    assert_eq!(day["integrity"]["status"], "ok");

    // The security counters of /metrics saw the same traffic (the label sets are bounded:
    // `admin` is not a known category, so it counts as `other`).
    let app = &app;
    let metric = |labels: &str| {
        let name = format!("vigil_security_events_total{{{labels}}}");
        async move { app.metric(&name).await }
    };
    assert_eq!(metric("category=\"authentication\",outcome=\"failure\",severity=\"low\"").await?, Some(6));
    assert_eq!(metric("category=\"other\",outcome=\"success\",severity=\"low\"").await?, Some(3));
    assert_eq!(metric("category=\"data_access\",outcome=\"success\",severity=\"low\"").await?, Some(1));
    assert_eq!(app.metric("vigil_alerts_raised_total{rule=\"manual\",severity=\"P1\"}").await?, Some(1));
    assert_eq!(app.metric("vigil_alerts_raised_total{rule=\"brute_force\",severity=\"P2\"}").await?, Some(1));
    assert_eq!(app.metric("vigil_decisions_issued_by_kind_total{kind=\"block\"}").await?, decisions["issued"].as_i64());

    // The week holds the same alerts; the day before holds none of them.
    let week = report(app, "period=week&date=2026-01-08").await?;
    assert_eq!((week["date"].as_str(), week["alerts"]["total"].as_i64()), (Some("2026-01-05"), Some(3)));
    let before = report(app, "period=day&date=2026-01-04").await?;
    assert_eq!(
        (before["alerts"]["total"].as_i64(), count_of(&before["events"]["by_category"], "authentication")),
        (Some(0), None)
    );
    assert_eq!((before["decisions"]["issued"].as_i64(), before["decisions"]["lifted"].as_i64()), (Some(0), Some(0)));
    let month = report(app, "period=month&date=2026-01-31").await?;
    assert_eq!(count_of(&month["events"]["by_category"], "admin"), Some(3), "the month holds the baseline day too");

    // The printable page: charts inline, the hostile user id escaped, no script, no asset.
    let resp = app
        .client
        .get(app.url("/v1/reports/security?date=2026-01-05&format=html"))
        .bearer_auth(&app.admin_key)
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str()?.starts_with("text/html"));
    let page = resp.text().await?;
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "escaped user id");
    assert!(!page.contains("<script") && !page.contains("src=") && !page.contains("href="));
    assert!(page.contains("<svg") && page.contains("198.51.100.4"));

    // Bad parameters are 400s that say what was wrong; the ingest role may not read it.
    for (query, says) in [
        ("period=year", "period"),
        ("date=2026-02-30", "date"),
        ("date=05/01/2026", "date"),
        ("format=pdf", "format"),
        ("colour=red", "colour"),
    ] {
        let (status, body) = app.get(&format!("/v1/reports/security?{query}")).await?;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["error"]["message"].as_str().unwrap_or("").contains(says), "{query}: {body}");
    }
    let (status, _) = app.send(app.client.get(app.url("/v1/reports/security")), "").await?;
    assert_eq!(status, 401);
    let ingest = app.create_key("ingest").await?;
    let (status, _) = app.send(app.client.get(app.url("/v1/reports/security")), &ingest).await?;
    assert_eq!(status, 403);

    // `vigil report` asks the same server.
    let (base, key) = (app.base.clone(), app.admin_key.clone());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["report", "--period", "week", "--date", "2026-01-05", "--url", &base, "--key", &key])
            .output()
    })
    .await??;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!((cli["period"].as_str(), cli["alerts"]["total"].as_i64()), (Some("week"), Some(3)));
    Ok(())
}

async fn compliance_evidence_names_who_read_the_log_and_which_rules_changed(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app_with(backend, |c| {
        c.audit.access_window_secs = 1;
        c.audit.access_flush_ms = 100;
    })
    .await?;
    let wasm = std::fs::read(example_rules()?.join("brute_force.wasm"))?;
    let (status, body) = app.put_rule("brute_force", wasm).await?;
    anyhow::ensure!(status == 200 || status == 201, "deploy: {status} {body}");
    let now = vigil::event::now_ms();
    let batch: Vec<Value> =
        (0..3).map(|i| ev("authentication", "login_success", "success", "alice", "10.1.1.1", now - i, "CH")).collect();
    let (status, posted) = app.post_events(&json!(batch)).await?;
    assert_eq!(status, 201, "{posted}");
    // A client's forged audit record is stored like any event, but is no evidence.
    let forged = json!([{"category": "audit", "action": "log_accessed", "user_id": "k_forged", "source": "vigil"}]);
    let (status, posted) = app.post_events(&forged).await?;
    assert_eq!(status, 201, "{posted}");
    // An auditor's key reads the log; the read is written to the chain after its window.
    let auditor = app.create_key("read").await?;
    let (_, who) = app.send(app.client.get(app.url("/v1/whoami")), &auditor).await?;
    let auditor_id = who["key_id"].as_str().unwrap().to_owned();
    let (status, _) = app.send(app.client.get(app.url("/v1/events?limit=5")), &auditor).await?;
    assert_eq!(status, 200);
    app.server.state.sequencer.checkpoint_now().await?;

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let report = loop {
        let (status, body) = app.get("/v1/reports/compliance?framework=pci-dss").await?;
        assert_eq!(status, 200, "{body}");
        let read = body["evidence"]["log_access"].as_array().unwrap().iter().any(|e| e["actor"] == auditor_id.as_str());
        if read || std::time::Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let ids: Vec<&str> = report["controls"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["10.2", "10.3", "10.4", "10.5", "10.7"]);
    let evidence = &report["evidence"];
    let access = evidence["log_access"].as_array().unwrap();
    let auditor_read =
        access.iter().find(|e| e["actor"] == auditor_id.as_str()).expect("the auditor's read is evidence");
    assert_eq!(auditor_read["action"], "log_accessed");
    assert!(auditor_read["details"].to_string().contains("events.query"), "{auditor_read}");
    assert!(access.iter().all(|e| e["actor"] != "k_forged"), "a client's audit event is not evidence: {access:?}");
    let changes = evidence["rule_changes"].as_array().unwrap();
    assert!(
        changes.iter().any(|c| c["action"] == "rule_deployed" && c["details"].to_string().contains("brute_force")),
        "{changes:?}"
    );
    assert_eq!(count_of(&evidence["logged"]["by_category"], "authentication"), Some(3));
    assert!(!evidence["checkpoints"].as_array().unwrap().is_empty(), "the checkpoint signing the day");
    assert_eq!(evidence["integrity"]["status"], "ok");
    assert_eq!(evidence["retention"]["retention_days"], app.config.hot_days());
    assert!(evidence["retention"]["archive"].is_null(), "no archive configured: {}", evidence["retention"]);

    let (_, soc2) = app.get("/v1/reports/compliance?framework=soc2&period=week").await?;
    assert_eq!(soc2["controls"].as_array().map(Vec::len), Some(2));
    for query in ["", "framework=hipaa", "framework=gdpr&period=year", "framework=gdpr&extra=1"] {
        let (status, body) = app.get(&format!("/v1/reports/compliance?{query}")).await?;
        assert_eq!(status, 400, "{query}: {body}");
    }
    Ok(())
}

/// The Reports page of the dashboard and the printable report in headless Chromium
/// (`tests/browser/reports.py`, Playwright with Debian's Chromium, as the dashboard test):
/// a seeded day's totals and chart columns carry the right numbers, attacker text stays
/// text, nothing is fetched from anywhere but the server; screenshots go to
/// `test-artefacts/reports/`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reports_page_and_the_printable_report_render_in_chromium() -> anyhow::Result<()> {
    let app = spawn_app_with(Backend::Sqlite, |c| c.clock = Clock::manual(T0)).await?;
    let hostile = "<img src=x onerror=alert(1)>";
    let hour = 3_600_000;
    let day = T0 - 7 * hour;
    let mut batch: Vec<Value> = (0..6)
        .map(|i| {
            ev("authentication", "login_failed", "failure", &format!("victim{i}"), "203.0.113.7", day + hour + i, "NL")
        })
        .collect();
    batch.extend(
        (0..3).map(|i| {
            ev("authentication", "login_success", "success", "alice", "198.51.100.2", day + 3 * hour + i, "FR")
        }),
    );
    batch.push(ev("authorization", "permission_denied", "failure", hostile, "192.0.2.9", day + 5 * hour, "DE"));
    let (status, body) = app.post_events(&json!(batch)).await?;
    assert_eq!(status, 201, "{body}");
    let (status, body) =
        post(&app, &app.admin_key, "/v1/alerts", json!({"title": "manual check", "severity": "P1"})).await?;
    assert_eq!(status, 201, "{body}");
    let reader = app.create_key("read").await?;
    // The page must show what the API reports: the seeded events (checked here) and the
    // server's own events of the day, if any (the alert's creation).
    let api = report(&app, "period=day&date=2026-01-05").await?;
    assert_eq!(count_of(&api["events"]["by_category"], "authentication"), Some(9), "{api}");
    assert_eq!(count_of(&api["events"]["by_category"], "authorization"), Some(1), "{api}");
    assert_eq!(api["alerts"]["total"], 1);
    let total = api["events"]["total"].as_i64().unwrap_or(-1);
    let rate = api["events"]["failure_rate"].as_f64().unwrap_or(-1.0);
    let expected = json!({"date": "2026-01-05", "total": total, "failure_rate": format!("{:.1}%", rate * 100.0),
        "alerts": 1, "hours": {"01": 6, "03": 3, "05": 1}, "hostile": hostile});

    let out = vigil_tests::artefact_dir("reports")?;
    let script = vigil_tests::repo_root().join("tests/browser/reports.py");
    let (base, dir) = (app.base.clone(), out.clone());
    let result = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(&script)
            .args([&base, &reader])
            .arg(&dir)
            .arg(expected.to_string())
            .output()
    })
    .await?
    .map_err(|e| anyhow::anyhow!("python3 did not start ({e})"))?;
    let said = format!("{}{}", String::from_utf8_lossy(&result.stdout), String::from_utf8_lossy(&result.stderr));
    std::fs::write(out.join("run.txt"), &said)?;
    assert!(
        result.status.success(),
        "the browser test failed (screenshots so far in {}; run scripts/setup.sh --postgres if Playwright or \
         Chromium is missing):\n{said}",
        out.display()
    );
    for name in ["reports-day", "reports-week", "reports-month", "reports-compliance-soc2", "report-day", "report-week"]
    {
        let shot = out.join(format!("{name}.png"));
        let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
        assert!(size > 1000, "screenshot {} missing or empty", shot.display());
    }
    Ok(())
}

/// `date` accepts 1970-01-01 through 9999-12-31: the day, week and month holding the last
/// date end past the largest calendar date the server computes with (this was a panic, so
/// no answer at all); an empty period is an empty report, and anything beyond is a 400.
async fn the_first_and_last_dates_give_reports_and_out_of_range_ones_400s(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app_with(backend, |c| c.clock = Clock::manual(T0)).await?;
    for date in ["9999-12-31", "9999-12-01", "1970-01-01"] {
        for period in ["day", "week", "month"] {
            let query = format!("period={period}&date={date}");
            let body = report(&app, &query).await?;
            assert_eq!(body["events"]["total"].as_i64(), Some(0), "{query}: {body}");
            let resp = app
                .client
                .get(app.url(&format!("/v1/reports/security?{query}&format=html")))
                .bearer_auth(&app.admin_key)
                .send()
                .await?;
            assert_eq!(resp.status(), 200, "{query} html");
            for framework in ["pci-dss", "soc2", "iso27001", "gdpr"] {
                let (status, body) = app.get(&format!("/v1/reports/compliance?framework={framework}&{query}")).await?;
                assert_eq!(status, 200, "{framework} {query}: {body}");
            }
        }
    }
    let long = "9".repeat(10_000);
    for (query, says) in [
        ("date=10000-01-01".to_owned(), "date"),
        ("date=0000-01-01".to_owned(), "date"),
        (format!("date={long}"), "date"),
        (format!("period={long}"), "period"),
        ("date=9999-12-32".to_owned(), "date"),
    ] {
        let (status, body) = app.get(&format!("/v1/reports/security?{query}")).await?;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["error"]["message"].as_str().unwrap_or("").contains(says), "{query}: {body}");
    }
    Ok(())
}
