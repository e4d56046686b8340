//! Criterion benchmarks of enrichment on the ingest path (`ingest::enrich`), on a
//! 500-event W1-like request body whose events carry a public `ip` and no `geo`:
//! - `enrich/validate_500`: parse, validate and mask only (the baseline);
//! - `enrich/validate_enrich_500`: the same plus `Enricher::apply` with a GeoLite2-City
//!   layout database of 20,000 networks, an ASN database and two 10,000-entry lists (every
//!   event found in both databases, one in ten on a list);
//! - `enrich/apply_500`: `Enricher::apply` alone on validated events.
//!
//! The difference per event is the enrichment cost. The databases are built in memory by
//! `vigil_tests::mmdb` (nothing downloaded).
//! Run with: `cargo bench -p vigil-engine --bench enrich`

/// The allocator `vigil serve` runs with, so figures match the server.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use vigil::config::{Config, ListConfig, ListKind};
use vigil::ingest::{Enricher, Masker, validate_body};
use vigil_tests::mmdb::MmdbWriter;

#[path = "support/w1.rs"]
mod w1;

const NETWORKS: u64 = 20_000;

/// The `n`th /24 network's first address, spread over public space (from 20.0.0.0).
fn network(n: u64) -> [u64; 3] {
    [20 + n / 65_536, (n / 256) % 256, n % 256]
}

fn databases(dir: &std::path::Path) -> Config {
    let (mut city, mut asn) = (MmdbWriter::new("GeoLite2-City"), MmdbWriter::new("GeoLite2-ASN"));
    for n in 0..NETWORKS {
        let [a, b, c] = network(n);
        let cidr = format!("{a}.{b}.{c}.0/24");
        city.insert(
            &cidr,
            json!({"city": {"geoname_id": n, "names": {"de": "Stadt", "en": format!("City {n}"), "fr": "Ville",
                                                      "ja": "都市", "ru": "Город", "zh-CN": "城市"}},
                   "continent": {"code": "EU", "geoname_id": 6_255_148, "names": {"en": "Europe", "de": "Europa"}},
                   "country": {"geoname_id": 3_017_382, "iso_code": "FR", "names": {"en": "France", "de": "Frankreich"}},
                   "location": {"accuracy_radius": 20, "latitude": 48.85, "longitude": 2.35, "time_zone": "Europe/Paris"},
                   "postal": {"code": "75001"},
                   "subdivisions": [{"geoname_id": 3_012_874, "iso_code": "IDF", "names": {"en": "Île-de-France"}}]}),
        );
        asn.insert(&cidr, json!({"autonomous_system_number": 64_512 + n % 1000, "autonomous_system_organization": "Example Networks"}));
    }
    std::fs::write(dir.join("city.mmdb"), city.build()).expect("write");
    std::fs::write(dir.join("asn.mmdb"), asn.build()).expect("write");
    // Every tenth network's first address on a list; networks of another range on the other.
    let ips: String =
        (0..NETWORKS).step_by(2).map(|n| network(n * 5)).map(|[a, b, c]| format!("{a}.{b}.{c}.1\n")).collect();
    let nets: String =
        (0..10_000u64).map(|n| format!("100.{}.{}.0/24 ; SBL{n}\n", 128 + n / 256 % 64, n % 256)).collect();
    std::fs::write(dir.join("ips.txt"), ips).expect("write");
    std::fs::write(dir.join("nets.txt"), nets).expect("write");
    let mut config = Config::default();
    config.enrich.geoip_db = Some(dir.join("city.mmdb"));
    config.enrich.asn_db = Some(dir.join("asn.mmdb"));
    let list = |name: &str, file: &str, kind| ListConfig {
        name: name.into(),
        path: dir.join(file),
        kind,
        max_entries: 1_000_000,
        max_bytes: 1 << 26,
    };
    config.lists = vec![list("feodo", "ips.txt", ListKind::Ip), list("drop", "nets.txt", ListKind::Cidr)];
    config
}

fn body() -> Vec<u8> {
    let events: Vec<Value> = (0..500u64)
        .map(|i| {
            let mut e = w1::event(i);
            for server in ["seq", "received_at", "mask_policy", "geo"] {
                e.remove(server);
            }
            let [a, b, c] = network((i * 37) % NETWORKS);
            e.insert("ip".into(), Value::String(format!("{a}.{b}.{c}.1")));
            Value::Object(e)
        })
        .collect();
    serde_json::to_vec(&events).expect("json")
}

fn enrich(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("vigil-bench-enrich-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let enricher = Enricher::load(&databases(&dir)).expect("databases load");
    let masker = Masker::new(b"bench-key");
    let body = body();
    let validated = validate_body(&body, false, &masker).expect("valid");
    let mut probe = validated.clone();
    enricher.apply(&mut probe, &masker);
    assert!(probe.iter().all(|e| e.fields.geo.is_some()), "every event found");
    let mut g = c.benchmark_group("enrich");
    g.throughput(Throughput::Elements(500));
    g.bench_function("validate_500", |b| b.iter(|| validate_body(&body, false, &masker).expect("valid")));
    g.bench_function("validate_enrich_500", |b| {
        b.iter(|| {
            let mut events = validate_body(&body, false, &masker).expect("valid");
            enricher.apply(&mut events, &masker);
            events
        })
    });
    g.bench_function("apply_500", |b| {
        b.iter_batched(
            || validated.clone(),
            |mut events| {
                enricher.apply(&mut events, &masker);
                events
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, enrich);
criterion_main!(benches);
