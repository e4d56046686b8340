//! Decision-check latency: what an app's bouncer (or an app calling Vigil directly) waits
//! for `GET /v1/decisions?scope=ip&value=<ip>` under load.
//!
//! It issues `--active` decisions (IP blocks, `POST /v1/decisions` with a respond or admin
//! key), then runs `--connections` keep-alive clients that check random addresses for
//! `--duration` seconds (`--hit-ratio` of them blocked, the rest not), and prints the
//! median, p90, p99 and max latency of the checks and their rate. Every answer is checked:
//! a blocked address must come back with its decision, another with none. Run the W1 load
//! tool (`--example load`) against the same server at the same time to measure under
//! ingest load; the closing note of issue 12 and BENCHMARKS.md quote both.
//!
//! Run with:
//! `cargo run --release -p vigil-examples --example decision_check -- --url http://127.0.0.1:8080 --key $KEY [--active 1000] [--connections 4] [--duration 20] [--hit-ratio 0.1]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::{Value, json};

#[derive(Parser, Debug)]
#[command(about = "Latency of decision checks (GET /v1/decisions?scope=ip&value=...) under load")]
struct Args {
    /// Base URL of the Vigil server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// API key with the respond (or admin) role: it issues the decisions, then checks.
    #[arg(long, env = "VIGIL_KEY", default_value = "", hide_default_value = true)]
    key: String,
    /// Decisions to issue before measuring (addresses 10.77.x.y).
    #[arg(long, default_value_t = 1000)]
    active: u32,
    /// Concurrent checking connections.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Seconds to measure.
    #[arg(long, default_value_t = 20.0)]
    duration: f64,
    /// Share of checks that ask about a blocked address.
    #[arg(long, default_value_t = 0.1)]
    hit_ratio: f64,
}

fn blocked(i: u32) -> String {
    format!("10.77.{}.{}", i / 250, i % 250 + 1)
}

/// A small deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().http1_only().tcp_nodelay(true).timeout(Duration::from_secs(30)).build()?;
    let base = args.url.trim_end_matches('/').to_owned();
    // Issue the decisions that are not there yet (a second run reuses them).
    let (present, _) = active_blocks(&client, &base, &args.key).await?;
    for i in present..args.active {
        let body = json!({"scope": "ip", "value": blocked(i), "kind": "block", "duration_secs": 86_400,
            "reason": "decision_check benchmark"});
        let res = client.post(format!("{base}/v1/decisions")).bearer_auth(&args.key).json(&body).send().await?;
        if !res.status().is_success() {
            bail!("issuing decision {i}: {} {}", res.status(), res.text().await.unwrap_or_default());
        }
    }
    let (_, total) = active_blocks(&client, &base, &args.key).await?;
    eprintln!("{total} active decisions; measuring {} s on {} connections", args.duration, args.connections);

    let deadline = Instant::now() + Duration::from_secs_f64(args.duration);
    let args = Arc::new(args);
    let mut tasks = Vec::new();
    for c in 0..args.connections {
        let (client, base, args) = (client.clone(), base.clone(), args.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (c as u64 + 1));
            let mut latencies: Vec<u32> = Vec::with_capacity(1 << 16);
            while Instant::now() < deadline {
                let hit = (rng.next() % 10_000) as f64 / 10_000.0 < args.hit_ratio;
                let value = if hit {
                    blocked((rng.next() % u64::from(args.active.max(1))) as u32)
                } else {
                    format!("198.51.{}.{}", rng.next() % 256, rng.next() % 256)
                };
                let url = format!("{base}/v1/decisions?scope=ip&value={value}");
                let start = Instant::now();
                let res = client.get(&url).bearer_auth(&args.key).send().await?;
                let status = res.status();
                let body: Value = res.json().await?;
                latencies.push(start.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                if !status.is_success() {
                    bail!("check {value}: {status} {body}");
                }
                let found = body["decisions"].as_array().map_or(0, Vec::len);
                if found != usize::from(hit && args.active > 0) {
                    bail!("check {value}: expected {} decision(s), got {body}", u8::from(hit));
                }
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.context("checker task")??);
    }
    all.sort_unstable();
    let pct =
        |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0);
    let ms = |us: u32| f64::from(us) / 1000.0;
    println!(
        "checks={} rate={:.0}/s p50={:.3}ms p90={:.3}ms p99={:.3}ms max={:.3}ms",
        all.len(),
        all.len() as f64 / args.duration,
        ms(pct(0.50)),
        ms(pct(0.90)),
        ms(pct(0.99)),
        ms(all.last().copied().unwrap_or(0)),
    );
    Ok(())
}

/// How many of the benchmark's blocks are active (the prefix 10.77. is counted), and all.
async fn active_blocks(client: &reqwest::Client, base: &str, key: &str) -> anyhow::Result<(u32, usize)> {
    let mut cursor: Option<String> = None;
    let (mut ours, mut total) = (0u32, 0usize);
    loop {
        let mut url = format!("{base}/v1/decisions?limit=1000");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let res = client.get(&url).bearer_auth(key).send().await?;
        if !res.status().is_success() {
            bail!("listing decisions: {} {}", res.status(), res.text().await.unwrap_or_default());
        }
        let body: Value = res.json().await?;
        let list = body["decisions"].as_array().cloned().unwrap_or_default();
        total += list.len();
        ours += list.iter().filter(|d| d["value"].as_str().is_some_and(|v| v.starts_with("10.77."))).count() as u32;
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Ok((ours, total)),
        }
    }
}
