//! `GET /v1/cluster` (role read): in cluster mode, the nodes with their heartbeats, every
//! partition with its lease owner, epoch, where placement wants it and (for the partitions
//! this node writes) its head, every detection slot with its holder and cursors, as this
//! node's member loop last saw them (docs/cluster.md), the rule placement (each active
//! detection rule of this node's registry with its slot and the node running it), and the
//! JetStream stream's state and each partition's consumer lag (`lag`: groups published and
//! not yet committed; cached for a second). On a single node: `{"enabled": false}` with
//! empty lists.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::{AppState, parse_query};
use crate::api::error::ApiError;
use crate::auth::Role;
use crate::cluster::placement::rule_slot;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NoQuery {}

/// The cluster as this node sees it.
pub async fn view(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.keys.require(&req, Role::Read)?;
    let _: NoQuery = parse_query(req.query_string())?;
    let Some(member) = &state.cluster else {
        return Ok(HttpResponse::Ok().json(
            json!({"enabled": false, "node_id": null, "nodes": [], "partitions": [], "rules": [], "stream": null}),
        ));
    };
    let view = member.view();
    let slots = member.detection_slots();
    let mut rules: Vec<serde_json::Value> = state
        .rules
        .current()
        .detection
        .iter()
        .map(|r| {
            let slot = rule_slot(r.name(), slots);
            let node = view.detection.slots.iter().find(|s| s.slot == slot && s.live).and_then(|s| s.owner.clone());
            json!({"rule": r.name(), "slot": slot, "node": node})
        })
        .collect();
    rules.sort_by(|a, b| a["rule"].as_str().cmp(&b["rule"].as_str()));
    let mut body = serde_json::to_value(view).map_err(|e| ApiError::internal(&e))?;
    body["enabled"] = json!(true);
    body["rules"] = json!(rules);
    if let Some(ingest) = &state.cluster_ingest {
        let stream = ingest.stream_state().await;
        // Each partition's consumer lag next to its lease, and the stream on its own.
        if let (Some(parts), Some(lags)) = (body["partitions"].as_array_mut(), stream["partitions"].as_array()) {
            for part in parts.iter_mut() {
                let lag = lags.iter().find(|l| l["partition"] == part["partition"]).map(|l| l["lag"].clone());
                part["lag"] = lag.unwrap_or(serde_json::Value::Null);
            }
        }
        body["stream"] = stream;
    }
    Ok(HttpResponse::Ok().json(body))
}
