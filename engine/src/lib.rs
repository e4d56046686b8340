//! Vigil: a security event server. Applications POST security events; Vigil stores them
//! append-only with a SHA-256 hash chain, masks secrets, runs WebAssembly detection rules
//! over them and turns findings into alerts.
//!
//! Modules follow the data path: `api` -> `ingest` -> `store` -> `rules` -> `detect` -> `alerts`
//! -> `route` (receivers, outbox) and `respond` (decisions for the apps' bouncers), plus `integrity` (checkpoint keys, anchor, writer lock,
//! export, retention), `config`, `auth`, `clock`, `error`, `telemetry`, and `app`
//! which assembles the running server.

// The OpenAPI document (api::openapi) is written as nested `json!` literals.
#![recursion_limit = "512"]

pub mod alerts;
pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod detect;
pub mod error;
pub mod event;
pub mod ingest;
pub mod integrity;
pub mod respond;
pub mod route;
pub mod rules;
pub mod store;
pub mod telemetry;
