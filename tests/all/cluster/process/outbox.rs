//! The shared outbox when a node dies mid-delivery (real processes): two `vigil serve` nodes
//! on a private NATS cluster and a fresh schema, one slow webhook receiver. The node holding
//! the claim on the notification in flight is killed with `kill -9`; its claim expires and
//! the other node delivers it, and every notification is recorded delivered once (the one in
//! flight may reach the receiver twice, with the same `webhook-id`: docs/cluster.md).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use vigil_tests::receiver::{Mode, Recorder};

use super::super::Schema;
use super::procs::{KEY, NatsCluster, Node, share_secrets, signal};

const HOOK: &str = "/slow-hook";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_delivery_leaves_the_notification_to_the_other_node() -> anyhow::Result<()> {
    vigil::app::install_tls();
    let rec = Recorder::start()?;
    rec.set_mode(HOOK, Mode::Slow(Duration::from_millis(1500)));
    let dir = std::env::temp_dir().join(format!("vigil-cluster-outbox-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    let nats = NatsCluster::start(&dir)?;
    let schema = Schema::new().await?;
    let client = reqwest::Client::new();
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules)?;
    let extra = format!(
        "\n[outbox]\ntimeout_secs = 3\npoll_interval_ms = 100\nstorm_threshold = 100000\n\n\
         [[receivers]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
        rec.url(HOOK)
    );
    let mut nodes: Vec<Node> = ["a", "b"]
        .iter()
        .map(|n| Node::with_extra(&dir, n, &schema.url, &nats.urls(), &rules, &extra))
        .collect::<Result<_, _>>()?;
    nodes[0].start(&client).await?;
    share_secrets(&dir.join("a"), &dir.join("b"))?;
    nodes[1].start(&client).await?;

    const ALERTS: usize = 5;
    for i in 0..ALERTS {
        let resp = client
            .post(format!("{}/v1/alerts", nodes[i % 2].base))
            .bearer_auth(KEY)
            .json(&json!({"title": format!("in flight {i}"), "severity": "P3"}))
            .send()
            .await?;
        anyhow::ensure!(resp.status() == 201, "manual alert: {} {}", resp.status(), nodes[i % 2].log_text());
    }
    // The first delivery is in flight (the receiver has it and is slow to answer): the node
    // holding its claim is killed.
    let deadline = Instant::now() + Duration::from_secs(30);
    while rec.requests(HOOK).is_empty() {
        anyhow::ensure!(Instant::now() < deadline, "no delivery started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut conn = vigil_tests::connect_pg(&vigil_tests::pg_base_url()).await?;
    let in_flight = rec.requests(HOOK)[0].headers["webhook-id"].clone();
    let holder: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT claimed_by FROM {}.notifications WHERE idempotency_key = $1",
        schema.name
    )))
    .bind(&in_flight)
    .fetch_one(&mut conn)
    .await?;
    let holder = holder.context("the notification in flight is claimed")?;
    let killed = nodes.iter().position(|n| n.name == holder).context("the holder is a node")?;
    signal(nodes[killed].child(), "-KILL")?;
    drop(nodes[killed].proc.take());
    rec.set_mode(HOOK, Mode::Ok);

    // The survivor delivers everything, the one in flight after the dead node's claim expired.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let delivered: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {}.notifications WHERE status = 'delivered'",
            schema.name
        )))
        .fetch_one(&mut conn)
        .await?;
        if delivered == ALERTS as i64 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{delivered} of {ALERTS} delivered: {}",
            nodes[1 - killed].log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows: Vec<(String, String, i64, Option<String>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT idempotency_key, status, attempts, claimed_by FROM {}.notifications ORDER BY id",
        schema.name
    )))
    .fetch_all(&mut conn)
    .await?;
    assert_eq!(rows.len(), ALERTS, "{rows:?}");
    for (key, status, attempts, claimed_by) in &rows {
        assert_eq!(status, "delivered", "{key}");
        assert_eq!(*attempts, 1, "{key}: recorded once (the killed node recorded nothing)");
        assert_eq!(*claimed_by, None, "{key}");
    }
    let ids: BTreeSet<String> = rec.requests(HOOK).iter().map(|r| r.headers["webhook-id"].clone()).collect();
    let keys: BTreeSet<String> = rows.iter().map(|r| r.0.clone()).collect();
    assert_eq!(ids, keys, "every notification reached the receiver");
    // At least once on the wire: only what was in flight at the kill went out again.
    let requests = rec.requests(HOOK);
    let repeated: Vec<&String> =
        ids.iter().filter(|id| requests.iter().filter(|r| &&r.headers["webhook-id"] == id).count() > 1).collect();
    assert!(repeated.iter().all(|id| **id == in_flight), "only the one in flight repeats: {repeated:?}");

    drop(nodes);
    drop(nats);
    schema.drop_all().await?;
    let _ = std::fs::remove_dir_all(&dir);
    rec.stop().await;
    Ok(())
}
