//! The equivalence reference: what rsigma 0.23's own engines match on the corpus. Detections
//! come from `rsigma_eval::Engine` (with rsigma's logsource extractor reading the event's
//! `category` and `source`, Vigil's mapping), correlations from `CorrelationEngine` at each
//! event's time. Vigil's evaluator only shares rsigma's parser and matchers; its event
//! adapter, logsource checks, subscriptions and correlations (on host state) are its own,
//! which is what the equivalence test checks. Run by `scripts/sigma-equivalence.sh`:
//!
//!     cargo run --example rsigma_reference -- CORPUS NAME=FILE[,FILE...]...
//!
//! Prints `{"deployments": {NAME: {"detections": {TITLE: [event index...]},
//! "correlations": {TITLE: [group...]}}}}` (groups: the group-by values joined by `,`).

use std::collections::{BTreeMap, BTreeSet};

use rsigma_eval::{CorrelationConfig, CorrelationEngine, Engine, JsonEvent, LogSourceExtractor, ResultBody};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (corpus, deployments) = args.split_first().expect("usage: rsigma_reference CORPUS NAME=FILE[,FILE...]...");
    let events: Vec<serde_json::Value> = std::fs::read_to_string(corpus)
        .expect("read the corpus")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("corpus line is JSON"))
        .collect();
    let mut out = serde_json::Map::new();
    for deployment in deployments {
        let (name, files) = deployment.split_once('=').expect("NAME=FILE[,FILE...]");
        let text: Vec<String> =
            files.split(',').map(|f| std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{f}: {e}"))).collect();
        let mut collection = rsigma_parser::parse_sigma_yaml(&text.join("\n---\n")).expect("parse");
        assert!(collection.errors.is_empty(), "{name}: {:?}", collection.errors);
        // Vigil: `logsource.product` app or vigil is any event.
        for rule in &mut collection.rules {
            rule.logsource.product = None;
        }
        let extractor = || LogSourceExtractor::new().with_field_names("__no_product__", "source", "category");
        let mut engine = Engine::new();
        engine.set_logsource_extractor(Some(extractor()));
        for rule in &collection.rules {
            engine.add_rule(rule).expect("compile");
        }
        let mut detections: BTreeMap<String, Vec<usize>> =
            collection.rules.iter().map(|r| (r.title.clone(), Vec::new())).collect();
        for (i, ev) in events.iter().enumerate() {
            for r in engine.evaluate(&JsonEvent::borrow(ev)) {
                detections.entry(r.header.rule_title.clone()).or_default().push(i);
            }
        }
        let mut correlations: BTreeMap<String, BTreeSet<String>> =
            collection.correlations.iter().map(|c| (c.title.clone(), BTreeSet::new())).collect();
        if !collection.correlations.is_empty() {
            let mut ce = CorrelationEngine::new(CorrelationConfig::default());
            ce.set_logsource_extractor(Some(extractor()));
            ce.add_collection(&collection).expect("correlations");
            for ev in &events {
                let t = ev["timestamp"].as_i64().expect("timestamp") / 1000;
                for r in ce.process_event_at(&JsonEvent::borrow(ev), t) {
                    if let ResultBody::Correlation(body) = &r.body {
                        let group: Vec<&str> = body.group_key.iter().map(|(_, v)| v.as_str()).collect();
                        correlations.entry(r.header.rule_title.clone()).or_default().insert(group.join(","));
                    }
                }
            }
        }
        out.insert(name.to_owned(), serde_json::json!({"detections": detections, "correlations": correlations}));
    }
    println!("{}", serde_json::to_string_pretty(&serde_json::json!({"deployments": out})).expect("json"));
}
