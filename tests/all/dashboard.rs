//! The dashboard in a real browser: headless Chromium (Debian's package) driven by Playwright
//! (`tests/browser/dashboard.py`; both installed by `scripts/setup.sh --postgres`) against a
//! real server holding a brute-force alert raised by posted events. It logs in by keyboard,
//! sees the alert, acknowledges it and sees the status change, filters events and verifies
//! one, sees a rule's stats, drives a receiver's circuit, and checks that a read-only key
//! sees no action buttons; event fields holding HTML and script show as text and never run.
//! Issue 22: the login page shows no navigation, the "lift decisions" box sends what it shows
//! for every disposition, the alert page (long values, a long comment) fits a 1280 and an
//! 800 px window, history rows are readable, the overview counts application events, rules
//! show their manifest, owners and actors show key names to an admin only, no 404s.
//! Screenshots of every page go to `test-artefacts/dashboard/`.

use serde_json::{Value, json};
use vigil::config::ReceiverConfig;
use vigil_tests::receiver::Recorder;
use vigil_tests::{Backend, spawn_app_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_chromium() -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    let chat = ReceiverConfig {
        name: "chat".into(),
        kind: "slack".into(),
        url: Some(rec.url("/slack")),
        ..Default::default()
    };
    let app = spawn_app_with(Backend::Sqlite, |c| c.receivers = vec![chat]).await?;
    let rules = vigil_tests::example_rules()?;
    for name in ["brute_force", "default_router"] {
        let (status, body) = app.put_rule(name, std::fs::read(rules.join(format!("{name}.wasm")))?).await?;
        assert!(status == 200 || status == 201, "deploy {name}: {status} {body}");
    }
    vigil_tests::seed(&app, 30).await?;
    // Long values without spaces (a user id, a resource path) must not widen the alert page.
    let long_user = format!("victim-{}", "x".repeat(200));
    let long_resource = format!("/api/v1/accounts/{}/profile", "0123456789".repeat(30));
    let burst: Vec<Value> = (0..6)
        .map(|i| {
            let user = if i == 0 { long_user.clone() } else { format!("victim{i}") };
            json!({"category": "authentication", "action": "login_failed", "outcome": "failure",
                "ip": "203.0.113.7", "user_id": user, "severity": "medium", "resource": long_resource})
        })
        .collect();
    let (status, body) = app.post_events(&json!(burst)).await?;
    assert_eq!(status, 201, "{body}");
    // Attacker-controlled strings must show as text, never run (the page checks).
    let hostile = json!({"category": "authorization", "action": "permission_denied",
        "user_id": "<img src=x onerror=alert(1)>", "resource": "<script>alert(2)</script>"});
    let (status, body) = app.post_events(&hostile).await?;
    assert_eq!(status, 201, "{body}");
    let alerts = app
        .wait_for("/v1/alerts?rule=brute_force", 20, |b| b["alerts"].as_array().is_some_and(|a| !a.is_empty()))
        .await?;
    // A decision tied to the alert, with a reason holding markup (shown as text, lifted in the UI).
    let decision = json!({"scope": "ip", "value": "203.0.113.7", "kind": "block", "duration_secs": 1800,
        "reason": "<b>confirmed</b> brute force", "alert_id": alerts["alerts"][0]["id"]});
    let (status, body) = app.send(app.client.post(app.url("/v1/decisions")).json(&decision), &app.admin_key).await?;
    assert_eq!(status, 201, "{body}");
    app.server.state.sequencer.checkpoint_now().await?;
    let reader = app.create_key("read").await?;

    let out = vigil_tests::artefact_dir("dashboard")?;
    let script = vigil_tests::repo_root().join("tests/browser/dashboard.py");
    let (base, admin, dir) = (app.base.clone(), app.admin_key.clone(), out.clone());
    let result = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3").arg(&script).args([&base, &admin, &reader]).arg(&dir).output()
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
    for page in [
        "login",
        "alerts",
        "alert",
        "alert-800",
        "events",
        "overview",
        "rules",
        "integrity",
        "receivers",
        "alerts-read-only",
    ] {
        let shot = out.join(format!("{page}.png"));
        let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
        assert!(size > 1000, "screenshot {} missing or empty", shot.display());
    }
    // The browser's acknowledgement reached the server.
    let (_, alerts) = app.get("/v1/alerts?rule=brute_force&status=acknowledged").await?;
    assert!(!alerts["alerts"].as_array().unwrap().is_empty(), "{alerts}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_served_with_a_strict_policy_and_no_key() -> anyhow::Result<()> {
    let app = spawn_app_with(Backend::Sqlite, |_| {}).await?;
    for (path, kind) in [
        ("/", "text/html"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/pages.js", "text/javascript"),
        ("/assets/reports.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
        ("/assets/favicon.svg", "image/svg+xml"),
        ("/favicon.ico", "image/svg+xml"),
    ] {
        let res = app.client.get(app.url(path)).send().await?;
        assert_eq!(res.status(), 200, "{path}");
        let h = res.headers();
        assert!(h["content-type"].to_str()?.starts_with(kind), "{path}: {:?}", h["content-type"]);
        let csp = h["content-security-policy"].to_str()?;
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe-inline") && !csp.contains("http"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        // (The SVG namespace is a name, not a place anything is fetched from.)
        let text = res.text().await?.replace("http://www.w3.org/2000/svg", "");
        assert!(!text.contains("http://") && !text.contains("https://"), "{path} refers to another origin");
    }
    // The page itself holds no data: everything behind it needs a key.
    let res = app.client.get(app.url("/v1/whoami")).send().await?;
    assert_eq!(res.status(), 401);
    let reader = app.create_key("read").await?;
    let (status, me) = app.send(app.client.get(app.url("/v1/whoami")), &reader).await?;
    assert_eq!(status, 200);
    assert_eq!(me["role"], "read");
    assert_eq!(me["allows"], json!({"ingest": false, "read": true, "respond": false, "admin": false, "bouncer": true}));
    Ok(())
}
