//! Criterion benchmarks of the data path, without HTTP or a database:
//! - `chain/canonical_and_hash`: canonical encoding + chain hash of one ~600-byte event;
//! - `chain/verify`: the `ChainVerifier` over stored rows (hash + column checks);
//! - `rule_call/*`: one rule evaluating a batch of 1000 events (ns per event = time / 1000),
//!   for a stateless rule (privilege_escalation) and a windowed-count rule (brute_force);
//! - `detection/all_example_rules`: the `Evaluator` with every example rule loaded over a
//!   W1-like mix (subscription index + every offered rule), reported as events/s;
//! - `ingest/*`: parsing, validating and masking a 500-event request body;
//! - `flatten/w1_event`: building the flat form of one committed event (once per event,
//!   in the detection thread, shared by every rule);
//! - `query_100k/*`: filtered newest-first pages from a SQLite store of 100,000 events;
//! - `restart/50_rules_*`: what a restart does to bring 50 stored rules back to active
//!   (a new engine and registry, then `journal::restore` from a SQLite store), with the
//!   on-disk artifact cache warm (`warm`) and empty (`cold`).
//!
//! - `alerts/*`: the alert lifecycle on a SQLite store: 100 raised alerts per detection batch,
//!   each a new alert (insert, history row, one outbox row, escalation timer, chain event)
//!   or a repeat of one open alert (update, history row, chain event).
//!
//! The example rules are built from source first (`rules/`, wasm32, release).
//! Run with: `cargo bench -p vigil-engine --bench pipeline`

/// The allocator `vigil serve` runs with, so figures match the server.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;
use vigil::config::Config;
use vigil::detect::Evaluator;
use vigil::event::CommittedEvent;
use vigil::ledger::canon::to_canonical;
use vigil::ledger::chain::{ChainVerifier, GENESIS, chain_hash};
use vigil::rules::RuleRegistry;
use vigil::store::StoredRow;

fn example_rules_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let base = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let target = base.join("wasm-rules/examples");
    let status = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root.join("rules"))
        .args(["build", "--release", "--target", "wasm32-unknown-unknown", "--target-dir"])
        .arg(&target)
        .status()
        .expect("run cargo");
    assert!(status.success(), "building the example rules failed");
    target.join("wasm32-unknown-unknown/release")
}

#[path = "support/w1.rs"]
mod w1;
use w1::event;

fn committed(n: u64, only: Option<&str>) -> Vec<CommittedEvent> {
    committed_from(0, n, only)
}

/// `n` committed events (of action `only`, when given) starting at generator index `from`.
fn committed_from(from: u64, n: u64, only: Option<&str>) -> Vec<CommittedEvent> {
    (from..)
        .map(event)
        .filter(|e| only.is_none_or(|a| e["action"] == a))
        .take(n as usize)
        .enumerate()
        .map(|(i, e)| {
            let event = CommittedEvent::from_canon(i as i64 + 1, to_canonical(&e));
            // Flattened here (untimed): detection flattens each event once, for all rules.
            event.flat();
            event
        })
        .collect()
}

fn registry_with(dir: &std::path::Path, names: &[&str]) -> Arc<RuleRegistry> {
    let registry =
        Arc::new(vigil::deploy::build_registry(&Config::default(), None, Default::default()).expect("registry"));
    for name in names {
        let bytes = std::fs::read(dir.join(format!("{name}.wasm"))).expect("built rule");
        registry.deploy(&bytes, Some(name), "bench").expect("deploy");
    }
    registry
}

fn chain(c: &mut Criterion) {
    let mut group = c.benchmark_group("chain");
    let obj = event(42);
    group.throughput(Throughput::Elements(1));
    group.bench_function("canonical_and_hash", |b| {
        b.iter(|| {
            let canon = to_canonical(std::hint::black_box(&obj));
            chain_hash(&GENESIS, &canon)
        })
    });
    let mut prev = GENESIS;
    let rows: Vec<StoredRow> = (0..10_000)
        .map(|i| {
            let canon = to_canonical(&event(i));
            let hash = chain_hash(&prev, &canon);
            let row = StoredRow::from_canon(i as i64 + 1, canon, prev.to_vec(), hash.to_vec()).unwrap();
            prev = hash;
            row
        })
        .collect();
    group.throughput(Throughput::Elements(rows.len() as u64));
    group.bench_function("verify", |b| {
        b.iter(|| {
            let mut v = ChainVerifier::new(1, GENESIS);
            rows.iter().for_each(|r| {
                v.check(r);
            });
            assert!(v.failures.is_empty());
        })
    });
    group.finish();
}

fn rule_calls(c: &mut Criterion) {
    let dir = example_rules_dir();
    let mut group = c.benchmark_group("rule_call");
    for (name, action) in [("privilege_escalation", "permission_denied"), ("brute_force", "login_failed")] {
        let registry = registry_with(&dir, &[name]);
        let mut evaluator = Evaluator::new(registry);
        group.throughput(Throughput::Elements(1000));
        // Fresh events (fresh IPs, so fresh state keys for the windowed rule) every
        // iteration; building them is not timed.
        let mut next = 0u64;
        group.bench_function(format!("{name}_x1000"), |b| {
            b.iter_batched(
                || {
                    next += 20_000;
                    committed_from(next, 1000, Some(action))
                },
                // The events are returned, so dropping them is not timed either.
                |mut events| (evaluator.evaluate(&mut events), events),
                criterion::BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn flatten(c: &mut Criterion) {
    let events = committed(1000, None);
    let mut group = c.benchmark_group("flatten");
    group.throughput(Throughput::Elements(1));
    let canon = events[7].canon();
    group.bench_function("w1_event", |b| b.iter(|| vigil::event::FlatEvent::from_canon(std::hint::black_box(canon))));
    let event = events[7].event();
    group.bench_function("w1_event_from_map", |b| {
        b.iter(|| vigil::event::FlatEvent::new(std::hint::black_box(event), None))
    });
    group.finish();
}

fn detection(c: &mut Criterion) {
    let dir = example_rules_dir();
    let names = [
        "brute_force",
        "account_lockout",
        "coordinated_attack",
        "privilege_escalation",
        "bulk_data_access",
        "impossible_travel",
        "api_key_anomaly",
        "sql_injection_probe",
        "after_hours_sensitive_access",
        "new_country_login",
        "pii_export_by_non_admin",
        "error_spike",
        "default_router",
    ];
    let registry = registry_with(&dir, &names);
    let mut events = committed(8192, None);
    let mut evaluator = Evaluator::new(registry.clone());
    let mut group = c.benchmark_group("detection");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("all_example_rules_x8192", |b| b.iter(|| evaluator.evaluate(&mut events)));
    group.finish();
    // Where the time went, per rule (host and guest together).
    for rule in registry.describe() {
        eprintln!(
            "  {:<30} {:>8} ns/event over {} events",
            rule["name"].as_str().unwrap_or("?"),
            rule["stats"]["ns_per_event"],
            rule["stats"]["events"]
        );
    }
}

fn ingest(c: &mut Criterion) {
    let masker = vigil::ingest::Masker::new(b"bench-key");
    let batch: Vec<Value> = (0..500)
        .map(|i| {
            let mut e = event(i);
            for k in ["seq", "received_at", "mask_policy"] {
                e.remove(k);
            }
            Value::Object(e)
        })
        .collect();
    let body = serde_json::to_vec(&batch).unwrap();
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(500));
    group.bench_function("parse_500", |b| b.iter(|| vigil::ingest::parse_body(&body, false).unwrap()));
    group.bench_function("parse_validate_mask_500", |b| {
        b.iter(|| vigil::ingest::validate_body(&body, false, &masker).unwrap())
    });
    // What the sequencer does per event besides hashing: the canonical bytes written from
    // the typed fields and the indexed columns.
    let events = vigil::ingest::validate_body(&body, false, &masker).unwrap();
    group.bench_function("canonical_and_columns_500", |b| {
        b.iter(|| {
            let mut total = 0;
            for (i, ev) in events.iter().enumerate() {
                let server = vigil::event::ServerFields {
                    event_id: &ev.event_id,
                    seq: i as i64 + 1,
                    received_at: ev.received_at,
                    mask_policy: vigil::event::MASK_POLICY_VERSION,
                    ingest_key: Some("k_bench"),
                };
                let mut canon = Vec::with_capacity(512);
                ev.fields.write_canonical(&server, &mut canon);
                let columns = vigil::store::IndexedColumns::from_fields(&ev.fields, &server);
                total += canon.len() + columns.category.len();
            }
            total
        })
    });
    group.finish();
}

/// The query path on a SQLite store of 100,000 W1-like events (written straight through
/// `Store::append`, as the sequencer does): filtered newest-first pages of 50.
fn query_path(c: &mut Criterion) {
    use vigil::store::{EventFilter, Store};
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = std::env::temp_dir().join(format!("vigil-bench-query-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = rt.block_on(Store::open(&format!("sqlite://{}/q.db", dir.display()))).unwrap();
    let mut prev = GENESIS;
    for chunk in (0..100_000u64).collect::<Vec<_>>().chunks(5000) {
        let rows: Vec<StoredRow> = chunk
            .iter()
            .map(|&i| {
                let canon = to_canonical(&event(i));
                let hash = chain_hash(&prev, &canon);
                let row = StoredRow::from_canon(i as i64 + 1, canon, prev.to_vec(), hash.to_vec()).unwrap();
                prev = hash;
                row
            })
            .collect();
        rt.block_on(store.append(&rows, None)).unwrap();
    }
    let filters: Vec<(&str, EventFilter)> = vec![
        ("user_id", EventFilter { user_id: Some("user-00042".into()), limit: 50, ..Default::default() }),
        ("action", EventFilter { action: Some("permission_denied".into()), limit: 50, ..Default::default() }),
        ("ip", EventFilter { ip: Some("10.0.1.44".into()), limit: 50, ..Default::default() }),
        (
            "time_window_1m",
            EventFilter {
                since: Some(1_736_244_030_000),
                until: Some(1_736_244_090_000),
                limit: 50,
                ..Default::default()
            },
        ),
    ];
    let mut group = c.benchmark_group("query_100k");
    for (name, filter) in &filters {
        group.bench_function(*name, |b| b.iter(|| rt.block_on(store.query(filter)).unwrap()));
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `bytes` of rule `name` renamed to `variant` (same length) in the module bytes.
fn renamed(bytes: &[u8], name: &str, variant: &str) -> Vec<u8> {
    let (from, to) = (name.as_bytes(), variant.as_bytes());
    assert_eq!(from.len(), to.len());
    let mut patched = bytes.to_vec();
    let mut i = 0;
    while i + from.len() <= patched.len() {
        if &patched[i..i + from.len()] == from {
            patched[i..i + from.len()].copy_from_slice(to);
            i += from.len();
        } else {
            i += 1;
        }
    }
    patched
}

/// 50 distinct rules: each example rule under several names (the name's last character
/// replaced by a digit in the module bytes: same length, so the module stays valid).
fn fifty_rules(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("rules dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "wasm") {
            continue;
        }
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).expect("read rule");
        for digit in 0..5u8 {
            let variant = format!("{}{}", &name[..name.len() - 1], digit);
            out.push((variant.clone(), renamed(&bytes, &name, &variant)));
        }
    }
    out.sort();
    out.truncate(50);
    out
}

fn restart(c: &mut Criterion) {
    use vigil::store::{Store, StoredRule};
    let dir = example_rules_dir();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let tmp = std::env::temp_dir().join(format!("vigil-bench-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let store = rt.block_on(Store::open(&format!("sqlite://{}/r.db", tmp.display()))).unwrap();
    let rules = fifty_rules(&dir);
    assert_eq!(rules.len(), 50);
    for (name, module) in &rules {
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(module));
        let row = StoredRule {
            name: name.clone(),
            sha256,
            module: module.clone(),
            config: "{}".into(),
            source: "api".into(),
            actor: "bench".into(),
            deployed_at: 0,
            status: "active".into(),
            reason: None,
            status_at: 0,
        };
        rt.block_on(store.save_rule(&row)).unwrap();
    }
    let key = vec![7u8; 32];
    let restore = |cache: &std::path::Path| {
        let registry = Arc::new(
            vigil::deploy::build_registry(
                &Config::default(),
                Some((cache.to_path_buf(), key.clone())),
                Default::default(),
            )
            .unwrap(),
        );
        let (active, quarantined) = rt.block_on(vigil::deploy::restore(&store, &registry)).unwrap();
        assert_eq!((active, quarantined), (50, 0));
        registry
    };
    let warm = tmp.join("warm-cache");
    restore(&warm);
    let mut group = c.benchmark_group("restart");
    group.sample_size(10);
    group.bench_function("50_rules_warm", |b| b.iter(|| restore(&warm)));
    let mut n = 0;
    group.bench_function("50_rules_cold", |b| {
        b.iter(|| {
            n += 1;
            restore(&tmp.join(format!("cold-{n}")))
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&tmp);

    // A deploy of a module never seen before (new SHA-256 every iteration): compile,
    // validate, probe init, activate. The HTTP request and the database row add ~1-3 ms.
    let mut group = c.benchmark_group("deploy");
    group.sample_size(20);
    // The test-only `counter` rule is the module `scripts/bench-server.sh` times over HTTP.
    let counter_dir = {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let base = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
        let target = base.join("wasm-rules/bench");
        let status = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root.join("tests/rules"))
            .args(["build", "--release", "--target", "wasm32-unknown-unknown", "-p", "counter", "--target-dir"])
            .arg(&target)
            .status()
            .expect("run cargo");
        assert!(status.success(), "building the counter rule failed");
        target.join("wasm32-unknown-unknown/release")
    };
    for name in ["counter", "brute_force", "sql_injection_probe"] {
        let from = if name == "counter" { &counter_dir } else { &dir };
        let bytes = std::fs::read(from.join(format!("{name}.wasm"))).unwrap();
        let registry = Arc::new(vigil::deploy::build_registry(&Config::default(), None, Default::default()).unwrap());
        let mut n = 0;
        group.bench_function(format!("fresh_compile_{name}"), |b| {
            b.iter_batched(
                || {
                    n += 1;
                    let variant = format!("{}{:03}", &name[..name.len() - 3], n % 1000);
                    renamed(&bytes, name, &variant)
                },
                |module| registry.deploy(&module, None, "bench").unwrap(),
                criterion::BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

/// Routes every alert to one receiver (what the lifecycle asks of `route`).
struct OneReceiver;

impl vigil::alerts::Routing for OneReceiver {
    fn receivers_for(&self, _: &vigil::store::AlertRow) -> vigil::alerts::Routed {
        vigil::alerts::Routed { receivers: vec!["hook".into()], policy: None }
    }
    fn follows_up(&self, _: &str, _: vigil::alerts::FollowUp) -> bool {
        false
    }
    fn escalation_start(&self, _: &vigil::store::AlertRow, now: i64) -> Option<vigil::store::EscalationRow> {
        Some(vigil::store::EscalationRow {
            policy: "severity:P2".into(),
            due_at: now + 3_600_000,
            status: "pending".into(),
            ..Default::default()
        })
    }
    fn escalation_step(
        &self,
        _: &vigil::store::EscalationRow,
        _: &vigil::store::AlertRow,
    ) -> Option<(Vec<String>, Option<vigil::store::EscalationRow>)> {
        None
    }
    fn wake(&self) {}
}

fn alerts(c: &mut Criterion) {
    use vigil::finding::EmittedAlert;
    use vigil::finding::RaisedAlert;
    use vigil::ledger::handoff::Handoff;
    use vigil::ledger::sequencer::{Sequencer, SequencerConfig};
    use vigil::store::Store;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = std::env::temp_dir().join(format!("vigil-bench-alerts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = rt.block_on(Store::open(&format!("sqlite://{}/a.db", dir.display()))).unwrap();
    let sequencer = rt
        .block_on(Sequencer::start(
            store.clone(),
            SequencerConfig {
                max_group_events: 5000,
                checkpoint_every_events: 10_000,
                checkpoint_every: std::time::Duration::from_secs(60),
                keys: vigil::ledger::keys::CheckpointKeys::from_seed([7; 32]),
                anchor: None,
                status: Default::default(),
                clock: vigil::clock::Clock::system(),
                security: Default::default(),
            },
            None,
            Arc::new(Handoff::new(1 << 20, 1 << 30)),
        ))
        .unwrap();
    let service = vigil::alerts::AlertService::new(
        store,
        sequencer,
        vigil::clock::Clock::system(),
        Default::default(),
        Arc::new(OneReceiver),
    );
    let raised = |key: &dyn Fn(usize) -> String, base: usize| -> Vec<RaisedAlert> {
        (0..100)
            .map(|i| RaisedAlert {
                rule: "brute_force".into(),
                rule_version: "1.0.0".into(),
                rule_sha256: "ab".repeat(32),
                alert: EmittedAlert {
                    title: "Brute force: 6 failed logins from 10.0.0.1 within 5 minutes".into(),
                    severity: vigil_sdk::Severity::P2,
                    dedup_key: key(base + i),
                    fields: serde_json::json!({"ip": "10.0.0.1", "failed_logins": 6}),
                    event_seqs: (1..=6).collect(),
                    actions: vec!["Block the IP".into()],
                },
                at: 1_767_600_000_000 + (base + i) as i64,
            })
            .collect()
    };
    let mut group = c.benchmark_group("alerts");
    group.throughput(Throughput::Elements(100));
    group.sample_size(20);
    let mut n = 0;
    group.bench_function("new_100", |b| {
        b.iter(|| {
            n += 100;
            rt.block_on(service.record_detected(&raised(&|i| format!("ip:{i}"), n))).unwrap()
        })
    });
    group.bench_function("repeat_100", |b| {
        b.iter(|| {
            n += 100;
            rt.block_on(service.record_detected(&raised(&|_| "ip:one".into(), n))).unwrap()
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, chain, rule_calls, flatten, detection, ingest, query_path, restart, alerts);
criterion_main!(benches);
