//! The integration suite: one test binary, one module per area (each extra binary would link
//! wasmtime, sqlx and actix-web again: minutes on two cores). Every test starts the real
//! server (in process on port 0, or the `vigil` binary itself) against real SQLite and the
//! real PostgreSQL; helpers live in the `vigil-tests` crate (`tests/src`).
//!
//! Run one area with `cargo test -p vigil-engine --test all -- alerting::`.

mod alerting;
mod archive;
mod audit;
mod auth;
mod cli;
mod cluster;
mod concurrency;
mod config_cli;
mod crash_load;
mod dashboard;
mod decisions;
mod docs;
mod faults;
mod first_hour;
mod guards;
mod hostile;
mod ingest;
mod integrations;
mod integrity;
mod integrity_process;
mod lookups;
mod metrics;
mod openapi;
mod ops_guards;
mod outbox_crash;
mod query;
mod reports;
mod rules;
mod sigma;
mod tamper;
