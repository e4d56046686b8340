//! Times the security report (`report::security_report`, what `GET /v1/reports/security`
//! and the scheduled reports build) over a SQLite store holding N W1-like events spread
//! evenly over one ISO week (Monday 2025-01-06 to Sunday 2025-01-12): the day report of
//! Tuesday 2025-01-07 (N/7 events) and the week report (all N), each run R times; prints
//! every run and the medians. The store is kept at PATH and reused when it already holds
//! N events (seeding 1M takes minutes), appended the way the sequencer does (hash-chained
//! groups of 2000 through `Store::append`).
//! Run with: `cargo run --release -p vigil-engine --example profile_report -- 1000000 /tmp/vigil-report-1m.db 5`

use std::time::Instant;

use vigil::config::ReportsConfig;
use vigil::ledger::IntegrityStatus;
use vigil::ledger::canon::to_canonical;
use vigil::ledger::chain::{GENESIS, chain_hash};
use vigil::report::{Period, ReportSources, security_report};
use vigil::store::{Store, StoredRow};

#[path = "../benches/support/w1.rs"]
mod w1;

/// Monday 2025-01-06T00:00:00Z.
const WEEK_START: i64 = 1_736_121_600_000;
const WEEK_MS: i64 = 7 * 86_400_000;

fn main() {
    let mut args = std::env::args().skip(1);
    let total: i64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
    let path = args.next().unwrap_or_else(|| "/tmp/vigil-report-1m.db".into());
    let runs: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let store = rt.block_on(Store::open(&format!("sqlite://{path}"))).expect("store");
    let head = rt.block_on(store.head()).expect("head").seq;
    if head < total {
        assert_eq!(head, 0, "{path} holds {head} events, not {total}: remove it");
        let start = Instant::now();
        seed(&rt, &store, total);
        println!("seeded {total} events in {:.1} s", start.elapsed().as_secs_f64());
    } else {
        println!("reusing {path} ({head} events)");
    }
    let integrity = IntegrityStatus::default();
    let config = ReportsConfig::default();
    let src =
        ReportSources { store: &store, integrity: &integrity, config: &config, retention_days: 365, archive: None };
    let now = WEEK_START + WEEK_MS + 3_600_000;
    for (period, date) in [("day", "2025-01-07"), ("week", "2025-01-07")] {
        let p = Period::parse(Some(period), Some(date), now).expect("period");
        let mut times = Vec::new();
        let mut events = 0;
        for run in 0..runs {
            let start = Instant::now();
            let report = rt.block_on(security_report(&src, &p, now)).expect("report");
            let secs = start.elapsed().as_secs_f64();
            events = report["events"]["total"].as_i64().unwrap_or(0);
            println!("{period} report run {}: {secs:.3} s ({events} events)", run + 1);
            times.push(secs);
        }
        times.sort_by(f64::total_cmp);
        println!("{period} report over {events} events: median {:.3} s of {runs} runs", times[times.len() / 2]);
    }
}

/// Appends `total` W1-like events, hash-chained, in groups of 2000, their times spread
/// over the week.
fn seed(rt: &tokio::runtime::Runtime, store: &Store, total: i64) {
    let mut prev = GENESIS;
    let mut seq = 0i64;
    while seq < total {
        let group: Vec<StoredRow> = (seq..(seq + 2000).min(total))
            .map(|i| {
                let mut event = w1::event(i as u64);
                let t = WEEK_START + i * WEEK_MS / total;
                event.insert("timestamp".into(), t.into());
                event.insert("received_at".into(), t.into());
                event.insert("seq".into(), (i + 1).into());
                event.insert("ingest_key".into(), "k_profile".into());
                let canon = to_canonical(&event);
                let hash = chain_hash(&prev, &canon);
                let row = StoredRow::from_canon(i + 1, canon, prev.to_vec(), hash.to_vec()).expect("row");
                prev = hash;
                row
            })
            .collect();
        rt.block_on(store.append(&group, None)).expect("append");
        seq += group.len() as i64;
    }
}
