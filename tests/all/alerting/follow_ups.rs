//! Follow-ups on real receivers: an acknowledge, a resolve and a reopen reach the Slack
//! and webhook receivers the alert was sent to, as new messages naming the key that did
//! it and its comment (escaped for Slack); a receiver that first fails gets its follow-up
//! through the outbox's retries, across a restart; a receiver the alert never reached
//! gets none.

use super::hostile_text::assert_slack_safe;
use super::*;
use vigil_tests::receiver::Recorded;

both_backends!(
    acks_resolves_and_reopens_reach_slack_and_webhooks_naming_the_actor_and_comment,
    a_follow_up_the_receiver_first_refuses_is_retried_through_the_outbox_across_a_restart,
);

/// A comment as a hostile responder (or a pasted log line) writes it: a channel ping, a
/// masked link, backticks and a line break.
const HOSTILE_COMMENT: &str = "on it <!channel> <https://evil.example/reset|Reset> ```\n*done*` & more";

/// A `respond` key named `name`: (secret, key id).
async fn named_key(app: &TestApp, name: &str) -> anyhow::Result<(String, String)> {
    let (status, body) = post(app, &app.admin_key, "/v1/keys", json!({"name": name, "role": "respond"})).await?;
    anyhow::ensure!(status == 201, "{body}");
    Ok((body["key"].as_str().unwrap().to_owned(), body["id"].as_str().unwrap().to_owned()))
}

fn slack_named(name: &str, rec: &Recorder, path: &str) -> ReceiverConfig {
    ReceiverConfig { name: name.into(), kind: "slack".into(), url: Some(rec.url(path)), ..Default::default() }
}

fn texts(r: &[Recorded]) -> Vec<String> {
    r.iter().map(|m| m.json()["text"].as_str().unwrap_or_default().to_owned()).collect()
}

async fn acks_resolves_and_reopens_reach_slack_and_webhooks_naming_the_actor_and_comment(
    backend: Backend,
) -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    let receivers = vec![
        slack(&rec),
        webhook("hook", &rec, "/hook", None),
        // Configured, but the alert is routed elsewhere: it never hears of it.
        slack_named("elsewhere", &rec, "/elsewhere"),
        // Sent the alert, but refused it (a 4xx is not retried): no follow-up either.
        webhook("refusing", &rec, "/refusing", None),
    ];
    let app = app(backend, |c| {
        c.receivers = receivers;
        c.routing.default_receivers = Some(vec!["chat".into(), "hook".into(), "refusing".into()]);
    })
    .await?;
    rec.set_mode("/refusing", Mode::Status(400));
    let (alice, alice_id) = named_key(&app, "alice").await?;
    let a = manual(&app, "Suspicious wire transfer", "P2").await?;
    let id = a["id"].as_i64().unwrap();
    rec.wait_for("/slack", 20, |r| !r.is_empty()).await;
    rec.wait_for("/hook", 20, |r| !r.is_empty()).await;
    app.wait_for(&format!("/v1/notifications?receiver=refusing&alert_id={id}"), 20, |b| {
        b["notifications"][0]["status"] == "failed"
    })
    .await?;

    // Acknowledged with a hostile comment.
    let (status, body) =
        post(&app, &alice, &format!("/v1/alerts/{id}/ack"), json!({"comment": HOSTILE_COMMENT})).await?;
    assert_eq!(status, 200, "{body}");
    let chat = rec.wait_for("/slack", 20, |r| r.len() >= 2).await;
    assert_eq!(chat.len(), 2, "the trigger, then the acknowledge: {:?}", texts(&chat));
    let ack = chat[1].json();
    assert_slack_safe(&ack);
    let text = ack["text"].as_str().unwrap();
    assert!(text.starts_with("[P2] Acknowledged by alice: Suspicious wire transfer — on it "), "{text}");
    assert_eq!(ack["blocks"][0]["text"]["text"], "[P2] Acknowledged by alice: Suspicious wire transfer");
    let blocks = ack["attachments"][0]["blocks"].as_array().unwrap();
    let comment = blocks.iter().find_map(|b| b["text"]["text"].as_str().filter(|t| t.starts_with("*Comment*")));
    let comment = comment.expect("a comment section");
    assert_eq!(
        comment,
        "*Comment*\non it &lt;!channel&gt; &lt;https://evil.example/reset|Reset&gt; \u{02CB}\u{02CB}\u{02CB} *done*\u{02CB} &amp; more",
        "escaped, one line, no backtick to open code with"
    );
    let status_field = blocks[0]["fields"].as_array().unwrap().iter().any(|f| f["text"] == "*Status*\nacknowledged");
    assert!(status_field, "{blocks:?}");
    let hook = rec.wait_for("/hook", 20, |r| r.len() >= 2).await;
    let acked = hook[1].json();
    assert_eq!(acked["type"], "alert.acknowledged");
    assert!(signature_ok(&hook[1]));
    let extra = &acked["data"]["extra"];
    assert_eq!((extra["actor"].as_str(), extra["actor_name"].as_str()), (Some(alice_id.as_str()), Some("alice")));
    assert_eq!(extra["comment"], HOSTILE_COMMENT, "JSON carries the comment as data");
    assert_eq!(acked["data"]["alert"]["status"], "acknowledged");

    // Resolved as a false positive.
    let (status, body) = post(
        &app,
        &alice,
        &format!("/v1/alerts/{id}/resolve"),
        json!({"disposition": "false_positive", "comment": "test transfer"}),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    let chat = rec.wait_for("/slack", 20, |r| r.len() >= 3).await;
    let resolved = chat[2].json();
    assert_slack_safe(&resolved);
    assert_eq!(
        resolved["text"], "[P2] Resolved (false positive) by alice: Suspicious wire transfer — test transfer",
        "{resolved}"
    );
    assert_eq!(resolved["attachments"][0]["color"], "#2eb67d");
    let hook = rec.wait_for("/hook", 20, |r| r.len() >= 3).await;
    let done = hook[2].json();
    assert_eq!(done["type"], "alert.resolved");
    assert_eq!(done["data"]["extra"]["disposition"], "false_positive");
    assert_eq!(done["data"]["extra"]["comment"], "test transfer");

    // Reopened: notified again as a trigger that says so.
    let (status, body) = post(&app, &alice, &format!("/v1/alerts/{id}/reopen"), json!({"comment": "again"})).await?;
    assert_eq!(status, 200, "{body}");
    let chat = rec.wait_for("/slack", 20, |r| r.len() >= 4).await;
    assert_eq!(chat[3].json()["text"], "[P2] Reopened by alice: Suspicious wire transfer", "{:?}", texts(&chat));
    let hook = rec.wait_for("/hook", 20, |r| r.len() >= 4).await;
    assert_eq!(hook[3].json()["type"], "alert.triggered");
    assert_eq!(hook[3].json()["data"]["extra"]["reopened"], true);

    // Nothing for a receiver the alert was not routed to, nor for one that refused it.
    settle().await;
    assert!(rec.requests("/elsewhere").is_empty());
    let refused = rec.requests("/refusing");
    assert_eq!(refused.len(), 2, "the trigger and the reopen's trigger only: {refused:?}");
    assert!(refused.iter().all(|r| r.json()["type"] == "alert.triggered"));
    assert!(notifications(&app, "receiver=elsewhere").await?.is_empty());
    Ok(())
}

async fn a_follow_up_the_receiver_first_refuses_is_retried_through_the_outbox_across_a_restart(
    backend: Backend,
) -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    let app = app(backend, |c| c.receivers = vec![slack(&rec)]).await?;
    let (alice, _) = named_key(&app, "alice").await?;
    let a = manual(&app, "Token used from a new country", "P3").await?;
    let id = a["id"].as_i64().unwrap();
    rec.wait_for("/slack", 20, |r| !r.is_empty()).await;

    // Slack is down when the alert is acknowledged.
    rec.set_mode("/slack", Mode::Status(500));
    let (status, body) = post(&app, &alice, &format!("/v1/alerts/{id}/ack"), json!({"comment": "looking"})).await?;
    assert_eq!(status, 200, "{body}");
    let query = format!("/v1/notifications?receiver=chat&alert_id={id}");
    let waiting = app
        .wait_for(&query, 20, |b| {
            b["notifications"].as_array().unwrap().iter().any(|n| n["kind"] == "acknowledge" && n["attempts"] == 1)
        })
        .await?;
    let ack = waiting["notifications"].as_array().unwrap().iter().find(|n| n["kind"] == "acknowledge").unwrap().clone();
    assert_eq!(ack["status"], "pending", "kept for a retry: {ack}");
    assert_eq!(ack["last_error"], "HTTP 500");
    let refused = rec.requests("/slack");
    assert_eq!(refused.len(), 2);
    assert_eq!(
        (refused[1].status, refused[1].json()["text"].as_str()),
        (500, Some("[P3] Acknowledged by alice: Token used from a new country — looking"))
    );

    // The server restarts before Slack is back: the follow-up waits in the database.
    let app = app.restart().await?;
    rec.set_mode("/slack", Mode::Ok);
    app.server.state.alerts.clock().advance(10 * MIN);
    let delivered = rec.wait_for("/slack", 20, |r| r.len() >= 2).await;
    assert_eq!(delivered.len(), 2, "{:?}", notifications(&app, "").await?);
    assert_eq!(delivered[1].json()["text"], "[P3] Acknowledged by alice: Token used from a new country — looking");
    let done = app
        .wait_for(&query, 20, |b| b["notifications"].as_array().unwrap().iter().all(|n| n["status"] == "delivered"))
        .await?;
    let ack = done["notifications"].as_array().unwrap().iter().find(|n| n["kind"] == "acknowledge").unwrap().clone();
    assert_eq!((ack["status"].as_str(), ack["attempts"].as_i64()), (Some("delivered"), Some(2)), "{ack}");
    Ok(())
}
