//! Sigma evaluation throughput in Vigil's detection path: the `Evaluator` (subscription
//! index, records into the sandbox, the embedded Sigma evaluator) with the peer's seven
//! Sigma rules deployed as one Sigma deployment, over 8,192 W1 events (pre-flattened, as
//! detection flattens each event once for all rules), one thread, reported as events/s.
//! The rsigma side, same rules and events, one thread:
//! `rules/sigma_evaluator/examples/rsigma_bench.rs`.
//!
//! Run with: `cargo bench -p vigil-engine --bench sigma`

/// The allocator `vigil serve` runs with, so figures match the server.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil::config::Config;
use vigil::detect::Evaluator;
use vigil::event::CommittedEvent;

#[path = "support/w1.rs"]
mod w1;

fn committed(n: u64) -> Vec<CommittedEvent> {
    (0..n)
        .map(w1::event)
        .enumerate()
        .map(|(i, e)| {
            let event = CommittedEvent::from_canon(i as i64 + 1, vigil::ledger::canon::to_canonical(&e));
            event.flat();
            event
        })
        .collect()
}

fn peer_rules() -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("tests/fixtures/sigma/peer"))
        .expect("peer rules")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files.iter().map(|f| std::fs::read_to_string(f).expect("rule")).collect::<Vec<_>>().join("\n---\n")
}

fn sigma(c: &mut Criterion) {
    let registry =
        Arc::new(vigil::deploy::build_registry(&Config::default(), None, Default::default()).expect("registry"));
    let prepared = registry
        .prepare_as(peer_rules().as_bytes(), Some("peer"), vigil::rules::RuleFormat::Sigma)
        .expect("the peer rules deploy");
    registry.activate(prepared, "bench", 0);
    let mut events = committed(8192);
    let mut evaluator = Evaluator::new(registry.clone());
    let mut group = c.benchmark_group("sigma");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("peer_rules_x8192", |b| b.iter(|| evaluator.evaluate(&mut events)));
    group.finish();
    for rule in registry.describe() {
        eprintln!(
            "  {}: {} ns per offered event; {} events offered, {} matched",
            rule["name"].as_str().unwrap_or("?"),
            rule["stats"]["ns_per_event"],
            rule["stats"]["events"],
            rule["stats"]["matches"]
        );
    }
}

criterion_group!(benches, sigma);
criterion_main!(benches);
