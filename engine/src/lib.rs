//! Vigil: a security event server. Applications POST security events; Vigil stores them
//! append-only with a SHA-256 hash chain and signed checkpoints, masks secrets, runs
//! WebAssembly detection rules over them and turns findings into alerts and decisions.
//!
//! The modules are layered; each imports only from the layers below it (`scripts/check-layers.py`
//! enforces it in CI, docs/architecture.md draws the map):
//!
//! - L0 vocabulary: [`event`], [`finding`], [`clock`], [`telemetry`], [`net`], [`config`]
//! - L1 [`store`]: persistence only, one file per aggregate, SQLite and PostgreSQL dialects
//! - L2 [`ledger`] (sequencer, canon, chain, checkpoint keys, anchor, verify, export,
//!   retention, writer lock) and [`ingest`] (validate, mask; OTLP, OCSF and syslog mappings)
//! - L3 [`rules`]: the Wasm runtime only
//! - L4 [`detect`]: the pipeline thread and replay
//! - L5 services: [`alerts`], [`route`], [`respond`], [`auth`], [`deploy`], [`inputs`], [`forward`],
//!   [`report`]
//! - L6 surfaces: [`api`], [`cli`]
//! - L7 [`app`]: the composition root

// The OpenAPI document (api::openapi) is written as nested `json!` literals.
#![recursion_limit = "512"]
// The server writes only through `tracing` (whose output never fails, see telemetry.rs):
// `println!` / `eprintln!` panic when their stream cannot be written (a full disk), and a
// panic in a long-lived task stops it. The command line (`cli`) prints on purpose.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod clock;
pub mod config;
pub mod event;
pub mod finding;
pub mod net;
pub mod telemetry;

pub mod store;

pub mod ingest;
pub mod ledger;

pub mod rules;

pub mod detect;

pub mod alerts;
pub mod auth;
pub mod cluster;
pub mod deploy;
pub mod forward;
pub mod inputs;
pub mod report;
pub mod respond;
pub mod route;

pub mod api;
pub mod cli;

pub mod app;
