//! Load tool for Vigil: workload W1 ("mixed security traffic", DESIGN.md section 7).
//!
//! It teaches how to drive `POST /v1/events` hard (batches of JSON arrays over keep-alive
//! HTTP/1.1 from several connections), how to measure sustained throughput and POST latency
//! honestly (bodies are serialized before the clock starts), and how to check detection end
//! to end: the generator *plants* brute-force bursts, computes the alerts the example rules
//! must raise, and compares them with `GET /v1/alerts` afterwards.
//!
//! The workload is a pure function of `--seed`: 70% successful logins, 10% failed logins,
//! 5% permission denials, 10% data access, 5% API-key and payment operations (exact per
//! block of 100 events, shuffled), ~600 bytes each, event time from a virtual clock that
//! starts on Tuesday 2025-01-07 10:00:00 UTC and advances exactly 1 ms per event. Only
//! `brute_force` may fire: four attacker IPs in 203.0.113.0/24 send bursts (three send 8
//! failures in ~30 s -> P2 `ip:<ip>`; one sends 25 in ~2.5 min -> P2 `ip:<ip>` and P1
//! `ip:<ip>:1h`, the dedup keys of rules/brute_force); every other failed login comes from a
//! pool of 131072 addresses (198.18.0.0/15) used round-robin, so no normal IP fails more than
//! once in 20 minutes. Users keep one geo (no impossible travel), nothing touches admin
//! resources, data access reads 1-5 non-sensitive records, each API key is used exactly 50
//! times per minute (only 5-55 s into the minute), and no value looks like SQL injection.
//! The expected alerts are those whose triggering event was sent. Event ids are
//! `w1-<seed>-<index>`, so a second run with the same seed only stores duplicates: use a
//! fresh database (or another seed) to compare alerts.
//!
//! Run with:
//! `cargo run --release -p vigil-examples --example load -- --url http://127.0.0.1:8080 --key $KEY [--events N | --duration SECS] [--connections 8] [--batch 500] [--seed 42] [--start-ms MS] [--server-pid PID] [--no-alerts] [--dump-ndjson FILE]`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::Value;

#[path = "load/workload.rs"]
mod workload;
use workload::{AlertKey, Generator};

#[derive(Parser, Debug)]
#[command(about = "Vigil load generator (workload W1) and alert checker")]
struct Args {
    /// Base URL of the Vigil server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// API key (needs ingest; read too for the alert check).
    #[arg(long, env = "VIGIL_KEY", default_value = "", hide_default_value = true)]
    key: String,
    /// Number of events to send (default 200000; with --duration, an optional cap).
    #[arg(long)]
    events: Option<u64>,
    /// Send for this many seconds instead of a fixed count (generation runs alongside).
    #[arg(long)]
    duration: Option<f64>,
    #[arg(long, default_value_t = 8)]
    connections: usize,
    #[arg(long, default_value_t = 500)]
    batch: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Time of the first event, epoch ms (floored to the minute; default Tuesday
    /// 2025-01-07 10:00 UTC): e.g. a few minutes ago, so that a report of today holds both
    /// the events and the alerts they raise.
    #[arg(long)]
    start_ms: Option<i64>,
    /// Sample the server's memory from /proc/PID/status.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Skip fetching and comparing alerts.
    #[arg(long)]
    no_alerts: bool,
    /// Write the generated events as NDJSON to FILE and exit.
    #[arg(long, value_name = "FILE")]
    dump_ndjson: Option<std::path::PathBuf>,
    /// Feed the peer instead: rsigma's HTTP daemon at --url (NDJSON batches to
    /// `/api/v1/events`), then wait until its `rsigma_events_processed_total` reaches the
    /// number sent; the figure is events fully processed per second.
    #[arg(long)]
    rsigma: bool,
}

/// Where connections take their next batch: pre-generated, or streamed from a generator thread.
enum Source {
    Pre { batches: Vec<(&'static [u8], usize)>, next: AtomicUsize },
    Stream(tokio::sync::Mutex<tokio::sync::mpsc::Receiver<(Vec<u8>, usize)>>),
}
impl Source {
    async fn take(&self) -> Option<(reqwest::Body, usize)> {
        match self {
            Source::Pre { batches, next } => {
                let &(body, n) = batches.get(next.fetch_add(1, Ordering::Relaxed))?;
                Some((reqwest::Body::from(body), n))
            }
            Source::Stream(rx) => rx.lock().await.recv().await.map(|(b, n)| (reqwest::Body::from(b), n)),
        }
    }
}

#[derive(Default)]
struct Stats {
    sent: u64,
    stored: u64,
    duplicates: u64,
    errors: u64,
    error_events: u64,
    first_error: Option<String>,
    latencies_ms: Vec<f64>,
}
impl Stats {
    fn merge(&mut self, o: Stats) {
        self.sent += o.sent;
        self.stored += o.stored;
        self.duplicates += o.duplicates;
        self.errors += o.errors;
        self.error_events += o.error_events;
        self.first_error = self.first_error.take().or(o.first_error);
        self.latencies_ms.extend(o.latencies_ms);
    }
}

async fn connection(url: String, key: String, source: Arc<Source>, deadline: Option<Instant>) -> anyhow::Result<Stats> {
    let client = reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(120))
        .build()?;
    let mut st = Stats::default();
    while deadline.is_none_or(|d| Instant::now() < d) {
        let Some((body, n)) = source.take().await else { break };
        st.sent += n as u64;
        let t0 = Instant::now();
        let res =
            client.post(&url).bearer_auth(&key).header("content-type", "application/json").body(body).send().await;
        let outcome = match res {
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                if status.is_success() {
                    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    let stored = v["stored"].as_u64().unwrap_or(0);
                    let acked = v["events"].as_array().map_or(0, |a| a.len() as u64);
                    st.stored += stored;
                    st.duplicates += acked.saturating_sub(stored);
                    Ok(())
                } else {
                    Err(format!("HTTP {status}: {}", text.chars().take(500).collect::<String>()))
                }
            }
            Err(e) => Err(format!("request failed: {e}")),
        };
        st.latencies_ms.push(t0.elapsed().as_secs_f64() * 1e3);
        if let Err(e) = outcome {
            st.errors += 1;
            st.error_events += n as u64;
            st.first_error.get_or_insert(e);
        }
    }
    Ok(st)
}

fn proc_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// All alerts on the server as (rule, severity, dedup_key); `None` when the API is absent.
async fn fetch_alerts(client: &reqwest::Client, base: &str, key: &str) -> anyhow::Result<Option<Vec<AlertKey>>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/v1/alerts?limit=1000");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let r = client.get(&url).bearer_auth(key).send().await?;
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let status = r.status();
        let text = r.text().await?;
        if !status.is_success() {
            bail!("GET /v1/alerts: HTTP {status}: {text}");
        }
        let v: Value = serde_json::from_str(&text).context("GET /v1/alerts: bad JSON")?;
        for a in v["alerts"].as_array().context("GET /v1/alerts: no `alerts` array")? {
            let s = |f: &str| a[f].as_str().unwrap_or_default().to_string();
            out.push((s("rule"), s("severity"), s("dedup_key")));
        }
        cursor = match &v["next_cursor"] {
            Value::String(c) if !c.is_empty() => Some(c.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        if cursor.is_none() || v["alerts"].as_array().is_some_and(|a| a.is_empty()) {
            break;
        }
    }
    out.sort();
    Ok(Some(out))
}

/// Multiset difference: (missing = planted - raised, unexpected = raised - planted).
fn diff(planted: &[AlertKey], raised: &[AlertKey]) -> (Vec<AlertKey>, Vec<AlertKey>) {
    let mut count: BTreeMap<&AlertKey, i64> = BTreeMap::new();
    planted.iter().for_each(|k| *count.entry(k).or_default() += 1);
    raised.iter().for_each(|k| *count.entry(k).or_default() -= 1);
    let (mut missing, mut unexpected) = (Vec::new(), Vec::new());
    for (k, c) in count {
        let target = if c > 0 { &mut missing } else { &mut unexpected };
        target.extend(std::iter::repeat_n(k.clone(), c.unsigned_abs() as usize));
    }
    (missing, unexpected)
}

fn show(keys: &[AlertKey]) -> String {
    keys.iter().map(|(r, s, d)| format!("{r}/{s}/{d}")).collect::<Vec<_>>().join(", ")
}

// Long by design: an example reads top to bottom (flags, warm-up, load, report).
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // reqwest is built without a default TLS provider (the server picks ring): install it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    anyhow::ensure!(args.batch > 0 && args.connections > 0, "--batch and --connections must be > 0");
    if let Some(path) = &args.dump_ndjson {
        let n = args.events.unwrap_or(200_000);
        let mut generator = Generator::new(args.seed).starting_at(args.start_ms);
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        for _ in 0..n {
            serde_json::to_writer(&mut out, &generator.next_event())?;
            std::io::Write::write_all(&mut out, b"\n")?;
        }
        std::io::Write::flush(&mut out)?;
        let planted = generator.expected_for(n);
        eprintln!("wrote {n} events to {}; planted alerts ({}): {}", path.display(), planted.len(), show(&planted));
        return Ok(());
    }
    if args.rsigma {
        return peer(&args).await;
    }
    anyhow::ensure!(!args.key.is_empty(), "--key (or VIGIL_KEY) is required");
    let base = args.url.trim_end_matches('/').to_string();
    let events_url = format!("{base}/v1/events");

    // Prepare the batches: all up front for a fixed count, or a bounded stream for a duration.
    let t_gen = Instant::now();
    let (source, producer) = match args.duration {
        None => {
            let total = args.events.unwrap_or(200_000);
            let mut generator = Generator::new(args.seed).starting_at(args.start_ms);
            let (mut batches, mut left, mut bytes) = (Vec::new(), total, 0usize);
            while left > 0 {
                let n = left.min(args.batch as u64) as usize;
                let body: &'static [u8] = Vec::leak(generator.batch(n));
                bytes += body.len();
                batches.push((body, n));
                left -= n as u64;
            }
            println!(
                "generated {total} events in {} batches, {:.1} MB (mean {} B/event) in {:.2} s",
                batches.len(),
                bytes as f64 / 1e6,
                bytes as u64 / total.max(1),
                t_gen.elapsed().as_secs_f64()
            );
            let source = Source::Pre { batches, next: AtomicUsize::new(0) };
            (source, std::thread::spawn(move || generator))
        }
        Some(_) => {
            let (tx, rx) = tokio::sync::mpsc::channel(4 * args.connections);
            let (cap, batch, seed, start) = (args.events.unwrap_or(u64::MAX), args.batch, args.seed, args.start_ms);
            let producer = std::thread::spawn(move || {
                let mut generator = Generator::new(seed).starting_at(start);
                let mut left = cap;
                while left > 0 {
                    let n = left.min(batch as u64) as usize;
                    if tx.blocking_send((generator.batch(n), n)).is_err() {
                        break;
                    }
                    left -= n as u64;
                }
                generator
            });
            (Source::Stream(tokio::sync::Mutex::new(rx)), producer)
        }
    };
    println!("load: url={base} connections={} batch={} seed={}", args.connections, args.batch, args.seed);

    // Server memory sampler.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = args.server_pid.map(|pid| {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut max_kb = 0;
            while !stop.load(Ordering::Relaxed) {
                max_kb = max_kb.max(proc_kb(pid, "VmRSS:").unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            max_kb
        })
    });

    // Timed phase.
    let source = Arc::new(source);
    let t0 = Instant::now();
    let deadline = args.duration.map(|s| t0 + Duration::from_secs_f64(s));
    let tasks: Vec<_> = (0..args.connections)
        .map(|_| tokio::spawn(connection(events_url.clone(), args.key.clone(), source.clone(), deadline)))
        .collect();
    let mut stats = Stats::default();
    for t in tasks {
        stats.merge(t.await??);
    }
    let wall = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    drop(source); // lets a streaming producer stop
    let generator = producer.join().map_err(|_| anyhow::anyhow!("generator thread panicked"))?;
    let mut rss_mb = None;
    if let (Some(pid), Some(sampler)) = (args.server_pid, sampler) {
        let sampled_kb = sampler.await?;
        let hwm_kb = proc_kb(pid, "VmHWM:").unwrap_or(0);
        println!("server rss: max sampled VmRSS {} MB, VmHWM {} MB", sampled_kb / 1024, hwm_kb / 1024);
        rss_mb = Some(sampled_kb.max(hwm_kb) / 1024);
    }

    let mut lat = std::mem::take(&mut stats.latencies_ms);
    lat.sort_by(f64::total_cmp);
    let (p50, p95, p99, max) =
        (percentile(&lat, 0.50), percentile(&lat, 0.95), percentile(&lat, 0.99), lat.last().copied().unwrap_or(0.0));
    let eps = stats.stored as f64 / wall;
    println!(
        "sent={} stored={} duplicates={} errors={} (requests; {} events) requests={}",
        stats.sent,
        stats.stored,
        stats.duplicates,
        stats.errors,
        stats.error_events,
        lat.len()
    );
    if let Some(e) = &stats.first_error {
        println!("first error: {e}");
    }
    println!("wall={wall:.2} s stored/s={eps:.0} accepted/s={:.0}", (stats.stored + stats.duplicates) as f64 / wall);
    println!("POST latency ms: p50={p50:.1} p95={p95:.1} p99={p99:.1} max={max:.1}");

    // Alerts.
    let planted = generator.expected_for(stats.sent);
    println!("planted alerts ({}): {}", planted.len(), show(&planted));
    let (mut raised_field, mut match_field) = ("n/a".to_string(), "n/a".to_string());
    if args.no_alerts {
        println!("alerts: skipped (--no-alerts)");
    } else {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        let settle = Instant::now() + Duration::from_secs(10);
        let mut previous: Option<Vec<AlertKey>> = None;
        let result = loop {
            match fetch_alerts(&client, &base, &args.key).await {
                Ok(Some(raised)) => {
                    let stable = previous.as_ref() == Some(&raised);
                    if (stable && raised == planted) || Instant::now() >= settle {
                        break Ok(Some(raised));
                    }
                    previous = Some(raised);
                }
                other => break other,
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        match result {
            Ok(Some(raised)) => {
                let (missing, unexpected) = diff(&planted, &raised);
                println!("alerts raised ({}): {}", raised.len(), show(&raised));
                println!("missing ({}): {}", missing.len(), show(&missing));
                println!("unexpected ({}): {}", unexpected.len(), show(&unexpected));
                raised_field = raised.len().to_string();
                match_field = (missing.is_empty() && unexpected.is_empty()).to_string();
            }
            Ok(None) => println!("alerts: GET /v1/alerts returned 404 (alerts API not built yet)"),
            Err(e) => println!("alerts: {e:#}"),
        }
    }
    println!(
        "SUMMARY events={} stored={} duplicates={} errors={} secs={wall:.2} events_per_sec={eps:.0} p50_ms={p50:.1} p95_ms={p95:.1} p99_ms={p99:.1} max_ms={max:.1} peak_rss_mb={} alerts_planted={} alerts_raised={raised_field} alerts_match={match_field}",
        stats.sent,
        stats.stored,
        stats.duplicates,
        stats.errors,
        rss_mb.map_or("n/a".to_string(), |m| m.to_string()),
        planted.len()
    );
    Ok(())
}

/// The side-by-side peer run: the same W1 events (same seed, batches, connections) as NDJSON
/// to rsigma's daemon; timed until it reports every event processed.
async fn peer(args: &Args) -> anyhow::Result<()> {
    let base = args.url.trim_end_matches('/').to_string();
    let total = args.events.unwrap_or(200_000);
    let mut generator = Generator::new(args.seed).starting_at(args.start_ms);
    let mut batches = Vec::new();
    let mut left = total;
    while left > 0 {
        let n = left.min(args.batch as u64) as usize;
        let mut body = Vec::with_capacity(n * 700);
        for _ in 0..n {
            serde_json::to_writer(&mut body, &generator.next_event())?;
            body.push(b'\n');
        }
        batches.push((&*Vec::leak(body), n));
        left -= n as u64;
    }
    let source = Arc::new(Source::Pre { batches, next: AtomicUsize::new(0) });
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let metrics = format!("{base}/metrics");
    let before = processed(&client, &metrics).await?;
    let t0 = Instant::now();
    let url = format!("{base}/api/v1/events");
    let tasks: Vec<_> = (0..args.connections)
        .map(|_| {
            let (source, url) = (source.clone(), url.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::builder().http1_only().tcp_nodelay(true).build()?;
                while let Some((body, _)) = source.take().await {
                    let r = client.post(&url).header("content-type", "application/x-ndjson").body(body).send().await?;
                    anyhow::ensure!(r.status().is_success(), "rsigma answered {}", r.status());
                    let _ = r.bytes().await;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let accepted = t0.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut done = processed(&client, &metrics).await?.saturating_sub(before);
    while done < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        done = processed(&client, &metrics).await?.saturating_sub(before);
    }
    let wall = t0.elapsed().as_secs_f64();
    println!(
        "PEER events={total} processed={done} accepted_secs={accepted:.2} secs={wall:.2} events_per_sec={:.0}",
        done as f64 / wall
    );
    Ok(())
}

/// rsigma's `rsigma_events_processed_total` (summed over its label sets).
async fn processed(client: &reqwest::Client, url: &str) -> anyhow::Result<u64> {
    let text = client.get(url).send().await?.text().await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("rsigma_events_processed_total"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}
