//! Runs the detection path in a loop for profilers (callgrind, perf): deploys the named
//! example rules (already built into `$CARGO_TARGET_DIR/wasm-rules/examples`, e.g. by
//! `cargo bench -p vigil-engine --bench pipeline`) and evaluates the same W1-like batch of
//! 1000 offered events `ITERATIONS` times.
//! Run with: `cargo run --release -p vigil-engine --example profile_detection -- brute_force 200`
//! (then under `valgrind --tool=callgrind --toggle-collect='*Evaluator*evaluate*'`).

use std::path::PathBuf;
use std::sync::Arc;

use vigil::config::Config;
use vigil::detect::Evaluator;
use vigil::event::CommittedEvent;

#[path = "../benches/support/w1.rs"]
mod w1;
use w1::event;

fn main() {
    let mut args = std::env::args().skip(1);
    let names: Vec<String> =
        args.next().unwrap_or_else(|| "privilege_escalation".into()).split(',').map(str::to_owned).collect();
    let iterations: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(200);
    let base = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target"));
    let dir = base.join("wasm-rules/examples/wasm32-unknown-unknown/release");
    // A small instance pool, so the address space reservation fits under valgrind.
    let mut config = Config::default();
    config.rules.max_rules = (names.len() as u32).div_ceil(2) + 1;
    let registry = Arc::new(vigil::deploy::build_registry(&config, None, Default::default()).expect("registry"));
    for name in &names {
        // A name with a `/` is a path to any .wasm file.
        let path = if name.contains('/') { PathBuf::from(name) } else { dir.join(format!("{name}.wasm")) };
        let bytes = std::fs::read(path).expect("built rule (run the pipeline bench once)");
        registry.deploy(&bytes, None, "profile").expect("deploy");
    }
    let set = registry.current();
    let mut events: Vec<CommittedEvent> = (0..)
        .map(event)
        .filter(|e| {
            let (c, a, o) =
                (e["category"].as_str().unwrap(), e["action"].as_str().unwrap(), e["outcome"].as_str().unwrap());
            set.detection.iter().any(|r| r.compiled.manifest.matches(c, a, o))
        })
        .take(1000)
        .enumerate()
        .map(|(i, e)| CommittedEvent::from_canon(i as i64 + 1, vigil::ledger::canon::to_canonical(&e)))
        .collect();
    let mut evaluator = Evaluator::new(registry.clone());
    let started = std::time::Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(evaluator.evaluate(&mut events));
    }
    let per_event = started.elapsed().as_nanos() as f64 / (iterations * events.len()) as f64;
    println!("{names:?}: {per_event:.0} ns per offered event ({} events x {iterations})", events.len());
}
