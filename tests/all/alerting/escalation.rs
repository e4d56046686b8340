//! Escalation policies on database timers: a P1 unacknowledged past its policy's first level
//! is escalated to that level's receivers, and the timers survive a restart.

use super::*;

both_backends!(escalation_policies_run_on_database_timers_that_survive_a_restart);

async fn escalation_policies_run_on_database_timers_that_survive_a_restart(backend: Backend) -> anyhow::Result<()> {
    let rec = Recorder::start()?;
    let receivers = vec![
        webhook("pager", &rec, "/pager", None),
        webhook("secondary", &rec, "/secondary", None),
        webhook("cto", &rec, "/cto", None),
    ];
    let policy = EscalationPolicy {
        name: None,
        severity: Some("P1".into()),
        repeat: 1,
        levels: vec![
            EscalationLevel { after: "15m".into(), receivers: vec!["secondary".into()] },
            EscalationLevel { after: "30m".into(), receivers: vec!["cto".into()] },
        ],
    };
    let app = app(backend, |c| {
        c.receivers = receivers;
        c.routing.default_receivers = Some(vec!["pager".into()]);
        c.escalation = vec![policy];
    })
    .await?;
    let clock = app.server.state.alerts.clock().clone();
    let a = manual(&app, "database exfiltration", "P1").await?;
    let id = a["id"].as_i64().unwrap();
    let acked = manual(&app, "acked quickly", "P1").await?;
    let responder = app.create_key("respond").await?;
    let (status, _) = post(&app, &responder, &format!("/v1/alerts/{}/ack", acked["id"]), json!({})).await?;
    assert_eq!(status, 200);
    rec.wait_for("/pager", 20, |r| r.len() >= 2).await;

    // Restart (the timers are rows): nothing is lost.
    let app = app.restart().await?;
    clock.advance(14 * MIN);
    settle().await;
    assert!(rec.requests("/secondary").is_empty(), "not before 15 minutes");
    clock.advance(2 * MIN);
    let s = rec.wait_for("/secondary", 20, |r| !r.is_empty()).await;
    assert_eq!(s.len(), 1, "only the unacknowledged alert escalates");
    assert_eq!(s[0].json()["data"]["alert"]["id"], id);
    assert_eq!(s[0].json()["type"], "alert.escalated");
    clock.advance(15 * MIN);
    rec.wait_for("/cto", 20, |r| !r.is_empty()).await;
    // The policy repeats once: secondary again at 45 min, cto at 60 min, then it stops.
    clock.advance(15 * MIN);
    rec.wait_for("/secondary", 20, |r| r.len() >= 2).await;
    clock.advance(15 * MIN);
    rec.wait_for("/cto", 20, |r| r.len() >= 2).await;
    clock.advance(120 * MIN);
    settle().await;
    assert_eq!((rec.requests("/secondary").len(), rec.requests("/cto").len()), (2, 2));
    let full = app.get(&format!("/v1/alerts/{id}")).await?.1;
    let escalated = full["history"].as_array().unwrap().iter().filter(|c| c["action"] == "escalated").count();
    assert_eq!(escalated, 4, "{full}");
    Ok(())
}
