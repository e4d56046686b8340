//! Polling the nodes' `GET /v1/cluster` and `GET /v1/rules/{name}` with deadlines (checks
//! of reach, never of speed): placement settled, the holder of a rule's detection slot,
//! detection cursors covering acknowledged events.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::Acked;
use super::procs::{KEY, Node, PARTITIONS};

pub(super) async fn cluster_view(client: &reqwest::Client, node: &Node) -> anyhow::Result<Value> {
    let resp = client.get(format!("{}/v1/cluster", node.base)).bearer_auth(KEY).send().await?;
    anyhow::ensure!(resp.status() == 200, "GET /v1/cluster: {}", resp.status());
    Ok(resp.json().await?)
}

/// Polls `node`'s view until exactly `live` are live and every partition and every detection
/// slot is held by the node placement wants; returns the partitions' owners.
pub(super) async fn until_placed(client: &reqwest::Client, node: &Node, live: &[&str]) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Ok(view) = cluster_view(client, node).await {
            let mut seen: Vec<&str> = view["nodes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|n| n["live"] == true)
                .filter_map(|n| n["node_id"].as_str())
                .collect();
            seen.sort_unstable();
            let parts = view["partitions"].as_array().cloned().unwrap_or_default();
            let slots = view["detection"]["slots"].as_array().cloned().unwrap_or_default();
            let placed = parts.len() == PARTITIONS as usize
                && parts.iter().all(|p| p["live"] == true && p["owner"].is_string() && p["owner"] == p["desired"])
                && !slots.is_empty()
                && slots.iter().all(|s| s["live"] == true && s["owner"].is_string() && s["owner"] == s["desired"]);
            if seen == live && placed {
                return Ok(parts.iter().map(|p| p["owner"].as_str().unwrap_or_default().to_owned()).collect());
            }
            last = view;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("the cluster never settled on {live:?}: {last}")
}

/// Polls `node`'s view until a live node other than `not` holds the detection slot of rule
/// `rule` (`vigil::cluster::placement::rule_slot` of its name); returns it and the slot's
/// lease epoch. When the rule is
/// active on `node`, the view's rule placement (`rules`) names the same slot and node.
pub(super) async fn rule_holder(
    client: &reqwest::Client,
    node: &Node,
    rule: &str,
    not: Option<&str>,
) -> anyhow::Result<(String, i64)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Ok(view) = cluster_view(client, node).await {
            let d = &view["detection"];
            let total = d["slots_total"].as_u64().unwrap_or_default() as u32;
            let slot = vigil::cluster::placement::rule_slot(rule, total);
            let s = &d["slots"][slot as usize];
            if total > 0
                && s["slot"] == slot
                && s["live"] == true
                && let Some(owner) = s["owner"].as_str()
                && Some(owner) != not
            {
                let placed = view["rules"].as_array().into_iter().flatten().find(|r| r["rule"] == rule);
                if let Some(r) = placed {
                    assert_eq!(
                        (r["slot"].as_u64(), r["node"].as_str()),
                        (Some(u64::from(slot)), Some(owner)),
                        "{view}"
                    );
                }
                return Ok((owner.to_owned(), s["epoch"].as_i64().unwrap_or_default()));
            }
            last = view;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("no node took the detection slot of {rule}: {last}")
}

/// Polls `node`'s view until every partition's detection cursor (the smallest of the slots')
/// covers `acks`.
pub(super) async fn until_detected(client: &reqwest::Client, node: &Node, acks: &Acked) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Ok(view) = cluster_view(client, node).await {
            let parts = view["partitions"].as_array().cloned().unwrap_or_default();
            let covered = acks.iter().all(|(_, p, seq)| {
                parts.iter().any(|v| v["partition"] == *p && v["detect_cursor"].as_i64().is_some_and(|c| c >= *seq))
            });
            if covered {
                return Ok(());
            }
            last = view;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("detection never covered the events: {last}")
}

/// Polls `GET /v1/rules/{name}` on `node` until its status is `want` (an HTTP status).
pub(super) async fn until_rule_status(
    client: &reqwest::Client,
    node: &Node,
    name: &str,
    want: u16,
) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let resp = client.get(format!("{}/v1/rules/{name}", node.base)).bearer_auth(KEY).send().await?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if status == want {
            return Ok(body);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} never answered {want} for rule {name}: {status} {body}",
            node.name
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
