//! Times posting lookups (`Store::query` by a posting field, newest first, `limit` 100) on an
//! existing database, without HTTP, auth or rendering: what a lookup costs the store as the
//! log grows (BENCHMARKS.md, "Lookups as the log grows").
//! Run with: `cargo run --release -p vigil-engine --example profile_lookup -- URL [field=value ...]`
//! (URL: `sqlite:///path/vigil.db` or `postgres://...`; a copy of a server's database, or
//! the database of a stopped server). Prints, per lookup, the rows found and the median and
//! minimum of 31 calls (after 3 untimed ones).

use std::time::Instant;

use vigil::store::{EventFilter, Store};

fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().expect("usage: profile_lookup URL [field=value ...]");
    let mut lookups: Vec<String> = args.collect();
    if lookups.is_empty() {
        lookups =
            ["user_id=usr_000042", "ip=100.64.0.42", "organization_id=org_0042", "user_id=usr_none", "ip=192.0.2.99"]
                .map(String::from)
                .to_vec();
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let store = rt.block_on(Store::open(&url)).expect("store");
    let head = rt.block_on(store.head()).expect("head").seq;
    println!("head={head}");
    for lookup in lookups {
        let (field, value) = lookup.split_once('=').expect("field=value");
        let mut filter = EventFilter { limit: 100, ..EventFilter::default() };
        let slot = match field {
            "user_id" => &mut filter.user_id,
            "ip" => &mut filter.ip,
            "organization_id" => &mut filter.organization_id,
            "request_id" => &mut filter.request_id,
            "ingest_key" => &mut filter.ingest_key,
            other => panic!("not a posting field: {other}"),
        };
        *slot = Some(value.to_string());
        let mut rows = 0;
        let mut times: Vec<f64> = (0..34)
            .map(|_| {
                let start = Instant::now();
                rows = rt.block_on(store.query(&filter)).expect("query").len();
                start.elapsed().as_secs_f64() * 1e3
            })
            .skip(3)
            .collect();
        times.sort_by(f64::total_cmp);
        println!("LOOKUP {lookup} rows={rows} median_ms={:.3} min_ms={:.3}", times[times.len() / 2], times[0]);
    }
}
