//! Appends W1-like rows to a fresh SQLite store the way the sequencer does (groups of
//! `GROUP` rows through `Store::append`, hashes chained), for profilers and before/after
//! comparisons of the write path: the rows are built before the timed part, so what is
//! measured is the store alone (statements, binding, B-trees, WAL, commit).
//! Run with: `cargo run --release -p vigil-engine --example profile_append -- 100000 2000`
//! (then under `valgrind --tool=callgrind --toggle-collect='*Store*append*'`).

use std::time::Instant;

use vigil::ledger::canon::to_canonical;
use vigil::ledger::chain::{GENESIS, chain_hash};
use vigil::store::{Store, StoredRow};

#[path = "../benches/support/w1.rs"]
mod w1;

fn main() {
    let mut args = std::env::args().skip(1);
    let total: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let group: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let dir = std::env::temp_dir().join(format!("vigil-profile-append-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let store = rt.block_on(Store::open(&format!("sqlite://{}/a.db", dir.display()))).expect("store");
    let mut prev = GENESIS;
    let rows: Vec<StoredRow> = (0..total)
        .map(|i| {
            let mut event = w1::event(i);
            event.insert("ingest_key".into(), "k_profile".into());
            let canon = to_canonical(&event);
            let hash = chain_hash(&prev, &canon);
            let row = StoredRow::from_canon(i as i64 + 1, canon, prev.to_vec(), hash.to_vec()).expect("row");
            prev = hash;
            row
        })
        .collect();
    let (cpu0, start) = (cpu_seconds(), Instant::now());
    for chunk in rows.chunks(group) {
        rt.block_on(store.append(chunk, None)).expect("append");
    }
    let (cpu, wall) = (cpu_seconds() - cpu0, start.elapsed().as_secs_f64());
    println!(
        "appended {total} rows in groups of {group}: {:.0} rows/s, {:.2} us wall and {:.2} us CPU per row",
        total as f64 / wall,
        wall * 1e6 / total as f64,
        cpu * 1e6 / total as f64
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// This process's user + system CPU time, from /proc (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line; field 3 is the first after the name.
    // Clock ticks are 100 per second on Linux.
    (ticks(11) + ticks(12)) / 100.0
}
