//! Attacker text in every receiver format, received by real receivers: an event whose
//! `user_id` carries Slack markup (`<!channel>`, a masked phishing link, backticks that
//! would close the inline code of a field), titles with line breaks that would forge list items,
//! mail headers or body lines, and summaries that would outgrow PagerDuty's event limit.
//! Then SMTP: credentials never cross the network in the clear, whatever the server offers.

use super::*;
use vigil_tests::receiver::{AuthSmtp, SMTP_PASSWORD, SMTP_USER, parse_mail};

/// A `user_id` as an attacker who can get events in writes it: a channel-wide ping, a
/// masked link to a phishing page, and backticks to leave the inline code a field value is
/// shown in, then Slack formatting.
const HOSTILE_USER: &str = "mallory```\n<!channel> <https://evil.example/reset|Reset your password> & `*now*`";

/// A title that tries to forge a second line (a list item, a mail header, a body line).
fn forged_title(i: usize) -> String {
    format!("innocent {i}\r\n• [P1] All clear <!here> <https://evil.example|details>\r\nBcc: victim@evil.example")
}

fn lockout_event(user: &str) -> Value {
    json!([{"category": "authentication", "action": "account_locked", "outcome": "success", "user_id": user,
        "ip": "198.51.100.23", "timestamp": 1_767_600_000_000i64}])
}

/// Starts a server with `receivers` and the `account_lockout` rule, and raises the alert of
/// one lockout of [`HOSTILE_USER`] (from an event, as anyone with an ingest key can).
async fn hostile_lockout(receivers: Vec<ReceiverConfig>) -> anyhow::Result<TestApp> {
    let app = app(Backend::Sqlite, |c| c.receivers = receivers).await?;
    deploy_examples(&app, &["account_lockout"]).await?;
    let ingest = app.create_key("ingest").await?;
    let (status, body) =
        app.send(app.client.post(app.url("/v1/events")).json(&lockout_event(HOSTILE_USER)), &ingest).await?;
    anyhow::ensure!(status == 201, "{body}");
    Ok(app)
}

/// Every string in a JSON value, with the key it sits under.
fn strings<'a>(v: &'a Value, key: &'a str, out: &mut Vec<(&'a str, &'a str)>) {
    match v {
        Value::String(s) => out.push((key, s)),
        Value::Array(a) => a.iter().for_each(|x| strings(x, key, out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| strings(x, k, out)),
        _ => {}
    }
}

/// Every object of a JSON value with `"type": kind`.
fn objects_of_type<'a>(v: &'a Value, kind: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| objects_of_type(x, kind, out)),
        Value::Object(o) => {
            if o.get("type").and_then(Value::as_str) == Some(kind) {
                out.push(v);
            }
            o.values().for_each(|x| objects_of_type(x, kind, out));
        }
        _ => {}
    }
}

/// Slack's control characters never reach Slack raw: no text of the message holds `<` or
/// `>`, every mrkdwn text is verbatim, and nothing auto-unfurls.
pub(super) fn assert_slack_safe(msg: &Value) {
    let mut all = Vec::new();
    strings(msg, "", &mut all);
    for (key, s) in &all {
        assert!(!s.contains('<') && !s.contains('>'), "raw Slack control characters in `{key}`: {s:?}");
    }
    let mut mrkdwn = Vec::new();
    objects_of_type(msg, "mrkdwn", &mut mrkdwn);
    assert!(!mrkdwn.is_empty());
    for m in mrkdwn {
        assert_eq!(m["verbatim"], true, "no automatic mention or link parsing: {m}");
    }
    assert_eq!((msg["unfurl_links"].as_bool(), msg["unfurl_media"].as_bool()), (Some(false), Some(false)));
    assert!(!msg["text"].as_str().unwrap().contains('\n'), "the fallback is one line");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_markup_in_an_event_is_escaped_and_cannot_leave_its_field() -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    let app = hostile_lockout(vec![slack(&rec)]).await?;
    let got = rec.wait_for("/slack", 20, |r| !r.is_empty()).await;
    assert_eq!(got.len(), 1, "{:?}", notifications(&app, "").await?);
    let msg = got[0].json();
    assert_slack_safe(&msg);
    // Shown, not parsed: the ping and the masked link arrive as escaped text.
    let text = msg["text"].as_str().unwrap();
    assert!(text.contains("&lt;!channel&gt; &lt;https://evil.example/reset|Reset your password&gt; &amp;"), "{text}");
    assert_eq!(msg["blocks"][0]["text"]["text"].as_str(), Some(text), "the header is the same escaped line");
    // The alert's fields are Slack fields, each value in inline code opened and closed by
    // the server's backticks only: the user's are look-alikes that cannot close it, and
    // the value stays one line (its line break cannot start a new field or paragraph).
    let fields = msg["attachments"][0]["blocks"][1]["fields"].as_array().expect("the alert's fields");
    let user = fields.iter().filter_map(|f| f["text"].as_str()).find(|t| t.starts_with("*user_id*\n"));
    let user = user.expect("a user_id field");
    let value = user.strip_prefix("*user_id*\n").unwrap();
    assert!(value.starts_with('`') && value.ends_with('`'), "{value}");
    assert_eq!(value.matches('`').count(), 2, "only the server's two: {value}");
    assert!(!value.contains('\n'), "{value}");
    assert!(value.contains("mallory\u{02CB}\u{02CB}\u{02CB}") && value.contains("\u{02CB}*now*\u{02CB}"), "{value}");
    assert!(value.contains("&lt;!channel&gt; &lt;https://evil.example/reset|Reset your password&gt; &amp;"), "{value}");
    let attachment = msg["attachments"].to_string();
    assert!(!attachment.contains("```"), "no code block to break out of: {attachment}");
    // The rule and the other fields are escaped too.
    let fields = msg["attachments"][0]["blocks"][0]["fields"].as_array().unwrap();
    assert!(fields.iter().any(|f| f["text"] == "*Rule*\naccount_lockout"), "{fields:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_summaries_list_each_alert_on_one_line_and_stay_within_pagerdutys_limit() -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    let (chat, pd) = (slack(&rec), pager(&rec));
    let app = app(Backend::Sqlite, |c| {
        c.receivers = vec![chat, pd];
        c.outbox.storm_threshold = 1;
    })
    .await?;
    // Both circuits held open while the storm builds, so it folds at once when they close.
    for name in ["chat", "pager"] {
        let (status, body) =
            post(&app, &app.admin_key, &format!("/v1/receivers/{name}/circuit"), json!({"action": "force_open"}))
                .await?;
        anyhow::ensure!(status == 200, "{body}");
    }
    const ALERTS: usize = 40;
    // 15 KiB of fields each: 40 of them in one summary would be over 600 KB.
    let blob = "x".repeat(15 * 1024);
    for i in 0..ALERTS {
        let (status, body) = post(
            &app,
            &app.admin_key,
            "/v1/alerts",
            json!({"title": forged_title(i), "severity": "P3", "fields": {"blob": blob}}),
        )
        .await?;
        anyhow::ensure!(status == 201, "{body}");
    }
    app.wait_for("/v1/notifications?status=pending&limit=1000", 20, |b| {
        b["notifications"].as_array().is_some_and(|n| n.len() == 2 * ALERTS)
    })
    .await?;
    for name in ["chat", "pager"] {
        post(&app, &app.admin_key, &format!("/v1/receivers/{name}/circuit"), json!({"action": "reset"})).await?;
    }
    let is_summary = |m: &vigil_tests::receiver::Recorded| m.body.contains("folded into this summary");
    let chat = rec.wait_for("/slack", 30, |r| r.iter().any(is_summary)).await;
    let pd = rec.wait_for("/pd", 30, |r| r.iter().any(is_summary)).await;

    // Slack: one line per listed alert, each starting as the server writes it.
    let summary = chat.iter().find(|m| is_summary(m)).expect("a Slack summary").json();
    assert_slack_safe(&summary);
    let list = summary["blocks"][1]["text"]["text"].as_str().unwrap();
    let lines: Vec<&str> = list.lines().collect();
    let listed = lines.iter().filter(|l| l.starts_with("• [P3] innocent ")).count();
    assert_eq!(listed, 20, "20 alerts listed, one line each: {list}");
    assert!(
        lines.iter().all(|l| l.starts_with("• [P3] innocent ") || l.starts_with("… and ")),
        "no forged item: {list}"
    );

    // PagerDuty: one event well within its 512 KB, short items, the full count.
    let summary = pd.iter().find(|m| is_summary(m)).expect("a PagerDuty summary");
    assert!(summary.body.len() < 100 * 1024, "{} bytes", summary.body.len());
    let event = summary.json();
    let details = &event["payload"]["custom_details"];
    let folded = details["items_total"].as_u64().unwrap() as usize;
    assert!(folded >= 30, "most of the storm folded into the one summary: {folded}");
    assert_eq!(details["items"].as_array().unwrap().len(), 20, "{details}");
    assert!(details["items"][0].get("blob").is_none() && details["items"][0]["title"].is_string());
    assert!(!event["payload"]["summary"].as_str().unwrap().contains('\n'));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagerduty_and_webhooks_carry_hostile_text_as_data() -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    let receivers =
        vec![pager(&rec), webhook("hook", &rec, "/hook", None), webhook("am", &rec, "/am", Some("alertmanager"))];
    let app = hostile_lockout(receivers).await?;
    let pd = rec.wait_for("/pd", 20, |r| !r.is_empty()).await;
    let hook = rec.wait_for("/hook", 20, |r| !r.is_empty()).await;
    let am = rec.wait_for("/am", 20, |r| !r.is_empty()).await;
    assert_eq!((pd.len(), hook.len(), am.len()), (1, 1, 1), "{:?}", notifications(&app, "").await?);
    // PagerDuty: the summary is one line within its limit; the details keep the text as data.
    let event = pd[0].json();
    let summary = event["payload"]["summary"].as_str().unwrap();
    assert!(!summary.contains('\n') && summary.len() <= 1024, "{summary:?}");
    assert!(summary.contains("mallory```"), "{summary}");
    assert_eq!(event["payload"]["custom_details"]["fields"]["user_id"], HOSTILE_USER);
    // Webhooks: JSON strings, byte for byte, signed.
    let data = hook[0].json();
    assert!(signature_ok(&hook[0]));
    assert_eq!(data["data"]["alert"]["fields"]["user_id"], HOSTILE_USER);
    assert_eq!(data["data"]["alert"]["title"], format!("Account locked: {HOSTILE_USER}"));
    assert!(!data["data"]["summary"].as_str().unwrap().contains('\n'), "the one-line summary");
    let v4 = am[0].json();
    assert_eq!(v4["alerts"][0]["annotations"]["summary"], format!("Account locked: {HOSTILE_USER}"));
    let description: Value = serde_json::from_str(v4["alerts"][0]["annotations"]["description"].as_str().unwrap())?;
    assert_eq!(description["user_id"], HOSTILE_USER);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_headers_and_bodies_take_no_lines_from_attacker_text() -> anyhow::Result<()> {
    let smtp = Smtp::start().await?;
    let app = hostile_lockout(vec![email(&smtp)]).await?;
    let (status, body) = post(
        &app,
        &app.admin_key,
        "/v1/alerts",
        json!({"title": forged_title(1), "severity": "P2",
            "actions": ["check\nAcknowledge: https://evil.example/ack", "<script>alert(1)</script>"]}),
    )
    .await?;
    anyhow::ensure!(status == 201, "{body}");
    let got = smtp.wait_for(2, 20).await;
    assert_eq!(got.len(), 2, "{:?}", notifications(&app, "").await?);
    for raw in &got {
        let mail = parse_mail(raw)?;
        let names: Vec<String> =
            mail["headers"].as_array().unwrap().iter().map(|h| h[0].as_str().unwrap().to_ascii_lowercase()).collect();
        assert!(!names.iter().any(|n| n == "bcc"), "no injected header: {names:?}");
        assert_eq!(names.iter().filter(|n| *n == "subject").count(), 1);
        let subject = mail["subject"].as_str().unwrap();
        assert!(!subject.contains(['\r', '\n']), "the subject as a client shows it is one line: {subject:?}");
        let text = mail["text"].as_str().unwrap();
        let html = mail["html"].as_str().unwrap();
        assert!(!text.lines().any(|l| l.starts_with("Bcc:") || l.starts_with("• [P1]")), "{text}");
        let acks: Vec<&str> = text.lines().filter(|l| l.starts_with("Acknowledge:")).collect();
        assert_eq!(acks.len(), 1, "only the server's own link: {text}");
        assert!(acks[0].starts_with("Acknowledge: http://127.0.0.1:8080/#/alerts/"), "{text}");
        assert!(!html.contains("<script") && !html.contains("<!channel>") && !html.contains("<https"), "{html}");
    }
    let lockout = got
        .iter()
        .map(|raw| parse_mail(raw))
        .find(|m| m.as_ref().is_ok_and(|m| m["subject"].as_str().unwrap_or_default().contains("Account locked")));
    let lockout = lockout.expect("the lockout mail")?;
    assert!(lockout["html"].as_str().unwrap().contains("&lt;!channel&gt;"), "escaped in HTML");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_digest_lists_each_alert_on_one_line() -> anyhow::Result<()> {
    let smtp = Smtp::start().await?;
    let receivers = vec![
        email(&smtp),
        ReceiverConfig {
            name: "digest".into(),
            kind: "digest".into(),
            via: Some("email".into()),
            at: Some("08:00".into()),
            ..Default::default()
        },
    ];
    let app = app(Backend::Sqlite, |c| c.receivers = receivers).await?;
    deploy_examples(&app, &["default_router"]).await?;
    for i in 0..2 {
        manual(&app, &forged_title(i), "P4").await?;
    }
    app.wait_for("/v1/notifications?status=digest", 20, |b| {
        b["notifications"].as_array().is_some_and(|a| a.len() == 2)
    })
    .await?;
    app.server.state.alerts.clock().advance(61 * MIN);
    let got = smtp.wait_for(1, 20).await;
    assert_eq!(got.len(), 1);
    let mail = parse_mail(&got[0])?;
    assert!(mail["subject"].as_str().unwrap().starts_with("Vigil daily digest"), "{mail}");
    let text = mail["text"].as_str().unwrap();
    let items: Vec<&str> = text.lines().filter(|l| l.starts_with("- [")).collect();
    assert_eq!(items.len(), 2, "one line per alert: {text}");
    assert!(items.iter().all(|l| l.starts_with("- [P4] innocent ")), "{items:?}");
    assert!(!text.lines().any(|l| l.starts_with("Bcc:") || l.starts_with("• [P1]")), "{text}");
    assert!(!mail["html"].as_str().unwrap().contains("<!here>"), "escaped in HTML");
    Ok(())
}

/// An email receiver with credentials in its URL (as `smtp://user:password@host`).
fn mailer(name: &str, port: u16) -> ReceiverConfig {
    ReceiverConfig {
        name: name.into(),
        kind: "email".into(),
        smtp_url: Some(format!("smtp://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{port}")),
        from: Some("vigil@example.org".into()),
        to: vec!["secops@example.org".into()],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_credentials_are_never_sent_to_a_server_without_starttls() -> anyhow::Result<()> {
    // A server that offers AUTH but no STARTTLS (as a man in the middle who strips it does).
    let smtp = AuthSmtp::start(false).await?;
    let app = app(Backend::Sqlite, |c| c.receivers = vec![mailer("mail", smtp.port)]).await?;
    manual(&app, "Credentials stay secret", "P2").await?;
    let first = app
        .wait_for("/v1/notifications?receiver=mail", 20, |b| b["notifications"][0]["attempts"].as_i64() >= Some(1))
        .await?;
    let n = &first["notifications"][0];
    assert_eq!(n["status"], "pending", "failed clearly and kept for a retry: {n}");
    assert!(n["last_error"].as_str().unwrap().contains("STARTTLS"), "says why: {n}");
    // Retried per the outbox rules: still nothing sent in the clear.
    app.server.state.alerts.clock().advance(10 * MIN);
    let again = app
        .wait_for("/v1/notifications?receiver=mail", 20, |b| b["notifications"][0]["attempts"].as_i64() >= Some(2))
        .await?;
    assert!(again["notifications"][0]["attempts"].as_i64() >= Some(2), "{again}");
    assert_eq!(smtp.auth_log(), Vec::<String>::new(), "no AUTH command, no credentials");
    assert!(smtp.messages().is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_credentials_go_only_over_starttls() -> anyhow::Result<()> {
    let smtp = AuthSmtp::start(true).await?;
    let receiver = ReceiverConfig { smtp_accept_invalid_certs: true, ..mailer("mail", smtp.port) };
    let app = app(Backend::Sqlite, |c| c.receivers = vec![receiver]).await?;
    manual(&app, "Over TLS with credentials", "P2").await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while smtp.messages().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(smtp.messages().len(), 1, "{:?}", notifications(&app, "").await?);
    let log = smtp.auth_log();
    assert!(log.iter().any(|l| l.starts_with("CREDENTIALS") && l.contains(SMTP_USER)), "{log:?}");
    assert!(log.iter().all(|l| l.ends_with("encrypted=True")), "only after STARTTLS: {log:?}");
    Ok(())
}

#[test]
fn config_check_refuses_smtp_credentials_without_tls() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("vigil-smtp-config-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    let check = |name: &str, receiver: &str| -> anyhow::Result<std::process::Output> {
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!(
                "[[receivers]]\nname = \"mail\"\nkind = \"email\"\nfrom = \"vigil@example.org\"\nto = [\"secops@example.org\"]\n{receiver}\n"
            ),
        )?;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("VIGIL_")) {
            cmd.env_remove(k);
        }
        Ok(cmd.args(["config", "check", "--config"]).arg(&path).output()?)
    };
    let text = |o: &std::process::Output| {
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    };
    let refused = check(
        "opportunistic.toml",
        "smtp_url = \"smtp://relay.example.org:587\"\nusername_env = \"SMTP_USER\"\npassword_env = \"SMTP_PASSWORD\"\nstarttls = \"opportunistic\"",
    )?;
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("credentials need TLS") && text(&refused).contains("`mail`"), "{}", text(&refused));
    let in_url = check("url.toml", "smtp_url = \"smtp://u:p@relay.example.org\"\nstarttls = \"opportunistic\"")?;
    assert_eq!(in_url.status.code(), Some(2), "{}", text(&in_url));
    assert!(!text(&in_url).contains("u:p@"), "the password is not echoed: {}", text(&in_url));
    // Without credentials, opportunistic STARTTLS is allowed when asked for.
    let relay = check("relay.toml", "smtp_url = \"smtp://relay.internal:25\"\nstarttls = \"opportunistic\"")?;
    assert!(relay.status.success(), "{}", text(&relay));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
