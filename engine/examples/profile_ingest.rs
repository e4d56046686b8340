//! Runs the ingest path's CPU part in a loop for profilers (callgrind, perf): parses,
//! validates and masks the same JSON body of 500 W1-like events (the body of the
//! `ingest/parse_validate_mask_500` bench) `ITERATIONS` times, as an HTTP worker does for
//! each `POST /v1/events` body.
//! Run with: `cargo run --release -p vigil-engine --example profile_ingest -- 2000`
//! (then under `valgrind --tool=callgrind --toggle-collect='vigil::ingest::validate::validate_body'`).

use serde_json::Value;

/// The allocator `vigil serve` runs with, so figures match the server.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../benches/support/w1.rs"]
mod w1;

fn main() {
    let iterations: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(2000);
    let masker = vigil::ingest::Masker::new(b"bench-key");
    let batch: Vec<Value> = (0..500)
        .map(|i| {
            let mut e = w1::event(i);
            for k in ["seq", "received_at", "mask_policy"] {
                e.remove(k);
            }
            Value::Object(e)
        })
        .collect();
    let body = serde_json::to_vec(&batch).expect("body");
    let started = std::time::Instant::now();
    for _ in 0..iterations {
        let events = vigil::ingest::validate_body(std::hint::black_box(&body), false, &masker).expect("valid body");
        std::hint::black_box(events);
    }
    let per_event = started.elapsed().as_nanos() as f64 / (iterations * batch.len()) as f64;
    println!("{per_event:.0} ns per event ({} events x {iterations}, {} bytes)", batch.len(), body.len());
}
