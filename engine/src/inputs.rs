//! Inputs other than the HTTP API: the `[[inputs.syslog]]` listeners (`syslog`). Each
//! turns what it reads into events through `ingest` (the same validation and masking as
//! `POST /v1/events`) and commits them with the `Sequencer`, with its own `ingest_key`
//! (`syslog:<name>`) for provenance and per-listener idempotency.

pub mod syslog;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::Config;
use crate::ingest::{Enricher, Masker};
use crate::ledger::sequencer::SequencerHandle;
use crate::telemetry::Metrics;

/// The running listeners.
#[derive(Debug, Default)]
pub struct Inputs {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// (listener name, bound address) of each syslog listener.
    pub syslog: Vec<(String, SocketAddr)>,
}

impl Inputs {
    /// Binds and starts every configured listener; an address that cannot be bound or a
    /// TLS file that cannot be read stops the start with a message naming the listener.
    pub async fn start(
        config: &Config,
        sequencer: SequencerHandle,
        masker: Arc<Masker>,
        enricher: Arc<Enricher>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Inputs> {
        let mut inputs = Inputs::default();
        for listener in &config.inputs.syslog {
            let (addr, task) =
                syslog::Listener::bind(listener, sequencer.clone(), masker.clone(), enricher.clone(), metrics.clone())
                    .await?;
            tracing::info!(name = %listener.name, %addr, tls = listener.tls_cert.is_some(), "Syslog listener started");
            inputs.syslog.push((listener.name.clone(), addr));
            inputs.tasks.push(task);
        }
        Ok(inputs)
    }

    /// The bound address of the syslog listener `name`.
    pub fn syslog_addr(&self, name: &str) -> Option<SocketAddr> {
        self.syslog.iter().find(|(n, _)| n == name).map(|(_, a)| *a)
    }

    /// Stops accepting and drops every connection.
    pub fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
