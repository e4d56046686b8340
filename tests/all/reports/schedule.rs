//! Scheduled reports (`[[reports.schedule]]`) on real receivers (a recording HTTP server
//! for the webhook, Slack and PagerDuty receivers, aiosmtpd for email), on both backends,
//! under a manual server clock: each period's report reaches each receiver once, across a
//! graceful restart, days missed while the server was down and a crash; attacker text is
//! escaped in every format; a receiver that is down gets it later through the outbox.

use std::time::Duration;

use serde_json::{Value, json};
use vigil::clock::Clock;
use vigil::config::{ReceiverConfig, ReportSchedule};
use vigil_tests::receiver::{Mode, Recorder, Smtp, parse_mail};
use vigil_tests::{Backend, TestApp, both_backends, spawn_app_with};

both_backends!(
    scheduled_reports_reach_each_receiver_once_per_period_across_restarts_and_a_crash,
    a_scheduled_report_to_a_receiver_that_is_down_is_retried_through_the_outbox,
);

/// 2026-01-04T07:00:00Z, a Sunday.
const SUN_0700: i64 = 1_767_510_000_000;
const MIN: i64 = 60_000;
const DAY: i64 = 86_400_000;
const HOSTILE: &str = "<img src=x onerror=alert(1)>\r\nBcc: victim@evil.example <!channel>";

fn receivers(rec: &Recorder, smtp: &Smtp) -> Vec<ReceiverConfig> {
    vec![
        ReceiverConfig {
            name: "hook".into(),
            kind: "webhook".into(),
            url: Some(rec.url("/hook")),
            secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
            ..Default::default()
        },
        ReceiverConfig {
            name: "chat".into(),
            kind: "slack".into(),
            url: Some(rec.url("/slack")),
            ..Default::default()
        },
        ReceiverConfig {
            name: "pager".into(),
            kind: "pagerduty".into(),
            url: Some(rec.url("/pd")),
            routing_key: Some("R0UT1NGKEY".into()),
            ..Default::default()
        },
        ReceiverConfig {
            name: "mail".into(),
            kind: "email".into(),
            smtp_url: Some(format!("smtp://127.0.0.1:{}", smtp.port)),
            starttls: Some("opportunistic".into()),
            from: Some("vigil@example.org".into()),
            to: vec!["secops@example.org".into()],
            ..Default::default()
        },
    ]
}

fn schedule(period: &str, at: &str, receivers: &[&str]) -> ReportSchedule {
    ReportSchedule {
        period: period.into(),
        receivers: receivers.iter().map(|r| (*r).to_owned()).collect(),
        at: Some(at.into()),
        weekday: None,
    }
}

/// Report rows of the outbox (any status).
async fn report_rows(app: &TestApp) -> anyhow::Result<Vec<Value>> {
    let (status, body) = app.get("/v1/notifications?limit=1000").await?;
    anyhow::ensure!(status == 200, "{status} {body}");
    Ok(body["notifications"].as_array().into_iter().flatten().filter(|n| n["kind"] == "report").cloned().collect())
}

/// Gives the scheduler (1 s tick) and the outbox time to act, when a test checks that
/// nothing more happens.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(2500)).await;
}

/// (webhook, slack, pagerduty, email) deliveries so far.
fn counts(rec: &Recorder, smtp: &Smtp) -> [usize; 4] {
    [rec.delivered("/hook").len(), rec.delivered("/slack").len(), rec.delivered("/pd").len(), smtp.messages().len()]
}

async fn wait_counts(rec: &Recorder, smtp: &Smtp, want: [usize; 4]) -> [usize; 4] {
    rec.wait_for("/hook", 30, |r| r.len() >= want[0]).await;
    rec.wait_for("/slack", 30, |r| r.len() >= want[1]).await;
    rec.wait_for("/pd", 30, |r| r.len() >= want[2]).await;
    smtp.wait_for(want[3], 30).await;
    counts(rec, smtp)
}

/// The report dates the webhook received, in order, with their period.
fn hook_reports(rec: &Recorder) -> Vec<(String, String)> {
    rec.delivered("/hook")
        .iter()
        .map(|r| r.json())
        .map(|b| {
            (
                b["data"]["period"].as_str().unwrap_or("?").to_owned(),
                b["data"]["date"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect()
}

// Long by design: one schedule followed over four days, each step checking what it changed.
async fn scheduled_reports_reach_each_receiver_once_per_period_across_restarts_and_a_crash(
    backend: Backend,
) -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    let smtp = Smtp::start().await?;
    let receivers = receivers(&rec, &smtp);
    let app = spawn_app_with(backend, |c| {
        c.clock = Clock::manual(SUN_0700);
        c.receivers = receivers;
        c.reports.schedule = vec![
            schedule("day", "06:00", &["hook", "chat", "pager", "mail"]),
            schedule("week", "06:30", &["hook"]),
            schedule("month", "00:30", &["hook"]),
        ];
    })
    .await?;
    // At start (new schedules): the latest slot of each, Saturday's day report, the week
    // before last (the week holding Sunday is not over) and December.
    assert_eq!(wait_counts(&rec, &smtp, [3, 1, 1, 1]).await, [3, 1, 1, 1]);
    let mut first = hook_reports(&rec);
    first.sort();
    let expected = [("day", "2026-01-03"), ("month", "2025-12-01"), ("week", "2025-12-22")];
    assert_eq!(first, expected.map(|(p, d)| (p.to_owned(), d.to_owned())));

    // Sunday's traffic: six failed logins of a user id holding markup and a mail header,
    // two successes.
    let mut events: Vec<Value> = (0..6)
        .map(|i| {
            json!({"category": "authentication", "action": "login_failed", "outcome": "failure", "user_id": HOSTILE,
                "ip": "203.0.113.7", "timestamp": SUN_0700 - 60 * MIN + i * 1000})
        })
        .collect();
    for i in 0..2 {
        events.push(json!({"category": "authentication", "action": "login_success", "outcome": "success",
            "user_id": "alice", "ip": "198.51.100.2", "timestamp": SUN_0700 - 30 * MIN + i * 1000}));
    }
    let (status, body) = app.post_events(&json!(events)).await?;
    assert_eq!(status, 201, "{body}");

    // Monday 07:00: Sunday's report to the four receivers, the last week's to the webhook.
    app.server.state.alerts.clock().advance(DAY);
    assert_eq!(wait_counts(&rec, &smtp, [5, 2, 2, 2]).await, [5, 2, 2, 2]);
    let hook = rec.delivered("/hook");
    let sunday = hook.iter().find(|r| r.json()["data"]["date"] == "2026-01-04").expect("Sunday's report");
    let body = sunday.json();
    assert_eq!(body["type"], "report.security");
    assert_eq!(sunday.headers["webhook-id"], "report-security-day-2026-01-04-hook");
    assert!(sunday.headers["webhook-signature"].starts_with("v1,"), "signed");
    let report = &body["data"]["report"];
    // The same figures as the API's report of the day (the server's own events of the day,
    // if any, are in both).
    let (status, api) = app.get("/v1/reports/security?period=day&date=2026-01-04").await?;
    assert_eq!(status, 200, "{api}");
    let total = api["events"]["total"].as_i64().unwrap_or(-1);
    assert_eq!(report["events"]["total"], total, "{report}");
    let auth = report["events"]["failure_rates"].as_array().unwrap().iter().find(|c| c["category"] == "authentication");
    assert_eq!(auth.map(|c| (c["events"].clone(), c["failures"].clone())), Some((json!(8), json!(6))), "{report}");
    assert_eq!(report["events"]["top_users"][0]["value"], HOSTILE, "JSON carries the text as it is");
    let week =
        hook.iter().map(|r| r.json()).find(|b| b["data"]["period"] == "week" && b["data"]["date"] == "2025-12-29");
    let week = week.expect("the week's report");
    let week_auth = week["data"]["report"]["events"]["by_category"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["value"] == "authentication");
    assert_eq!(week_auth.map(|c| c["count"].clone()), Some(json!(8)), "{week}");

    let slack = rec.delivered("/slack")[1].json();
    let text = slack.to_string();
    assert_eq!(slack["blocks"][0]["text"]["text"], "Vigil security report: day of 2026-01-04");
    assert!(!text.contains("<img") && !text.contains("<!channel>"), "Slack text escaped: {text}");
    assert!(text.contains("&lt;img src=x onerror=alert(1)&gt;"), "{text}");
    assert!(text.contains(&format!("*Events*\\n{total}")), "{text}");

    let pd = rec.delivered("/pd")[1].json();
    assert_eq!((pd["event_action"].as_str(), pd["payload"]["severity"].as_str()), (Some("trigger"), Some("info")));
    assert_eq!(pd["payload"]["custom_details"]["Events"], total.to_string());
    assert_eq!(pd["dedup_key"], "vigil-report-security-day-2026-01-04-pager");

    let raw = smtp.messages().into_iter().find(|m| m.contains("day of 2026-01-04")).expect("Sunday's mail");
    let mail = parse_mail(&raw)?;
    assert_eq!(mail["subject"], "Vigil security report: day of 2026-01-04");
    let html = mail["html"].as_str().unwrap_or_default();
    assert!(html.contains("<svg") && html.contains(&format!("{total} events")), "the printable page: {html}");
    assert!(!html.contains("<img") && html.contains("&lt;img src=x onerror=alert(1)&gt;"), "{html}");
    let text = mail["text"].as_str().unwrap_or_default();
    assert!(text.contains(&format!("Events: {total}")), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("Bcc:")), "{text}");
    assert!(!mail["headers"].to_string().contains("victim@evil.example"), "no header from attacker text");
    assert!(raw.contains("vigil-security-report-day-2026-01-04.json"), "the JSON attachment");

    // A graceful restart sends nothing again.
    let app = app.restart().await?;
    settle().await;
    assert_eq!(counts(&rec, &smtp), [5, 2, 2, 2], "nothing sent twice after a restart");

    // Down from Monday to Wednesday 07:00: Monday's and Tuesday's reports, missed while
    // down, are sent at start, oldest first.
    let clock = app.server.state.alerts.clock().clone();
    let app = app.restart_after(|| clock.advance(2 * DAY)).await?;
    assert_eq!(wait_counts(&rec, &smtp, [7, 4, 4, 4]).await, [7, 4, 4, 4]);
    let days: Vec<String> = hook_reports(&rec)[5..].iter().map(|(_, d)| d.clone()).collect();
    assert_eq!(days, ["2026-01-05", "2026-01-06"]);

    // A crash (no shutdown at all) and a new process: nothing sent twice.
    let app = app.start_beside().await?;
    settle().await;
    assert_eq!(counts(&rec, &smtp), [7, 4, 4, 4], "nothing sent twice after a crash");
    let rows = report_rows(&app).await?;
    assert_eq!(rows.len(), 19, "4 days x 4 receivers + 2 weeks + 1 month: {rows:?}");
    assert!(rows.iter().all(|r| r["status"] == "delivered"), "{rows:?}");
    Ok(())
}

async fn a_scheduled_report_to_a_receiver_that_is_down_is_retried_through_the_outbox(
    backend: Backend,
) -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    rec.set_mode("/hook", Mode::Status(503));
    let smtp = Smtp::start().await?;
    let receivers = receivers(&rec, &smtp);
    let app = spawn_app_with(backend, |c| {
        c.clock = Clock::manual(SUN_0700);
        c.receivers = receivers;
        c.reports.schedule = vec![schedule("day", "06:00", &["hook"])];
    })
    .await?;
    let failing = app
        .wait_for("/v1/notifications?receiver=hook", 30, |b| {
            b["notifications"].as_array().is_some_and(|a| a.iter().any(|n| n["attempts"].as_i64() >= Some(1)))
        })
        .await?;
    let row = &failing["notifications"][0];
    assert_eq!((row["kind"].as_str(), row["status"].as_str()), (Some("report"), Some("pending")), "{row}");
    assert!(row["last_error"].as_str().unwrap_or_default().contains("503"), "{row}");
    assert!(rec.delivered("/hook").is_empty());

    // The receiver is back; its retry comes due.
    rec.set_mode("/hook", Mode::Ok);
    app.server.state.alerts.clock().advance(MIN);
    let got = rec.wait_for("/hook", 30, |r| !r.is_empty()).await;
    assert_eq!(got.len(), 1, "delivered once");
    let all = rec.requests("/hook");
    assert!(all.len() >= 2, "a failed try, then the delivery: {}", all.len());
    assert!(
        all.iter().all(|r| r.headers["webhook-id"] == "report-security-day-2026-01-03-hook"),
        "one webhook-id across retries"
    );
    let rows = report_rows(&app).await?;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["status"], "delivered");
    assert!(rows[0]["attempts"].as_i64() >= Some(2), "{rows:?}");
    Ok(())
}

/// The database stops while a report falls due: the scheduler logs and waits (the server
/// keeps answering), and queues the report once the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_due_while_postgresql_is_down_is_sent_when_it_is_back() -> anyhow::Result<()> {
    let pg = vigil_tests::pg::PrivatePostgres::start()?;
    let rec = Recorder::start()?;
    let smtp = Smtp::start().await?;
    let receivers = receivers(&rec, &smtp);
    let app = vigil_tests::spawn_app_on_pg(&pg.url(), |c| {
        c.clock = Clock::manual(SUN_0700);
        c.receivers = receivers;
        c.reports.schedule = vec![schedule("day", "06:00", &["hook"])];
    })
    .await?;
    assert_eq!(rec.wait_for("/hook", 30, |r| !r.is_empty()).await.len(), 1, "Saturday's report at start");
    pg.stop()?;
    let clock = app.server.state.alerts.clock().clone();
    // Sunday's slot passes with the database down.
    clock.advance(DAY);
    settle().await;
    assert_eq!(rec.requests("/hook").len(), 1, "nothing can be queued while the database is down");
    let health = app.client.get(app.url("/healthz")).send().await?;
    assert_eq!(health.status(), 200, "the server is still up");
    pg.resume()?;
    // The next check (a clock move wakes it) queues and sends Sunday's report, once.
    let mut got = Vec::new();
    for _ in 0..30 {
        clock.advance(1000);
        got = rec.wait_for("/hook", 1, |r| r.len() >= 2).await;
        if got.len() >= 2 {
            break;
        }
    }
    assert_eq!(got.len(), 2, "Sunday's report after the database came back");
    assert_eq!(got[1].json()["data"]["date"], "2026-01-04");
    settle().await;
    assert_eq!(rec.delivered("/hook").len(), 2);
    Ok(())
}
