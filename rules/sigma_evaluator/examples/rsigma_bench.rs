//! The rsigma side of the Sigma throughput comparison: rsigma 0.23's `CorrelationEngine`
//! (detections and correlations, as `rsigma engine daemon` runs them, one thread) with the
//! peer's seven rules over the same 8,192 W1 events as Vigil's `sigma/peer_rules_x8192`
//! criterion benchmark (`engine/benches/pipeline.rs`). Prints the median of 15 runs.
//!
//!     cargo run --release --example rsigma_bench

#[path = "../../../engine/benches/support/w1.rs"]
mod w1;

use rsigma_eval::{CorrelationConfig, CorrelationEngine, JsonEvent};

fn main() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/sigma/peer");
    let mut files: Vec<_> = std::fs::read_dir(dir).expect("peer rules").map(|e| e.expect("entry").path()).collect();
    files.sort();
    let text: Vec<String> = files.iter().map(|f| std::fs::read_to_string(f).expect("rule")).collect();
    let collection = rsigma_parser::parse_sigma_yaml(&text.join("\n---\n")).expect("parse");
    let events: Vec<serde_json::Value> = (0..8192).map(|i| serde_json::Value::Object(w1::event(i))).collect();
    let mut runs = Vec::new();
    let mut matches = 0;
    for _ in 0..15 {
        let mut engine = CorrelationEngine::new(CorrelationConfig::default());
        engine.add_collection(&collection).expect("rules");
        let start = std::time::Instant::now();
        matches = 0;
        for e in &events {
            let t = e["timestamp"].as_i64().unwrap_or(0) / 1000;
            matches += engine.process_event_at(&JsonEvent::borrow(e), t).len();
        }
        runs.push(start.elapsed());
    }
    runs.sort();
    let median = runs[runs.len() / 2];
    println!(
        "rsigma 0.23 CorrelationEngine, peer rules, 8192 W1 events: median {:.2} ms = {:.0} events/s ({} results)",
        median.as_secs_f64() * 1e3,
        events.len() as f64 / median.as_secs_f64(),
        matches
    );
}
