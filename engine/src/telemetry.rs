//! Logging setup (`tracing`, structured fields, `RUST_LOG`-style filter in `VIGIL_LOG`) and
//! the Prometheus metrics rendered at `GET /metrics`. Counters are plain atomics bumped on
//! the data path; other modules (rules, alerts) append their own series to the output.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Installs the global subscriber (once; later calls are ignored, as in tests).
pub fn init_logging() {
    init_logging_as("text");
}

/// Logging in `format`: `text`, or `json` (one JSON object per line: timestamp, level,
/// message and fields), as `[log] format` says.
pub fn init_logging_as(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    let _ = if format == "json" { builder.json().try_init() } else { builder.try_init() };
}

/// Logging for tests: output goes through the test harness (shown only for failing tests).
pub fn init_test_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,sqlx=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_test_writer().try_init();
}

/// Server-wide counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Events stored (new, not duplicates).
    pub events_stored: AtomicU64,
    /// Events answered as duplicates of a stored event_id.
    pub events_duplicate: AtomicU64,
    /// Ingest requests accepted.
    pub ingest_requests: AtomicU64,
    /// Ingest requests refused (400/413).
    pub ingest_rejected: AtomicU64,
    /// Ingest requests that failed on the server side.
    pub ingest_failed: AtomicU64,
    /// Integrity verifications run.
    pub verify_runs: AtomicU64,
    /// Integrity verifications that found failures.
    pub verify_failed: AtomicU64,
    /// Time from an ingest request's arrival to its answer (accepted requests).
    pub ingest_latency: Histogram,
}

/// Upper bounds (seconds) of the ingest latency histogram's buckets.
pub const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A Prometheus histogram over [`LATENCY_BUCKETS`], lock-free.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, elapsed: std::time::Duration) {
        let secs = elapsed.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Appends the histogram `name` in Prometheus text format (cumulative buckets).
    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, n) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {:.9}", self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

impl Metrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Prometheus text exposition of these counters.
    pub fn render(&self, out: &mut String) {
        let series: [(&str, &str, &AtomicU64); 7] = [
            ("vigil_events_stored_total", "Events stored.", &self.events_stored),
            (
                "vigil_events_duplicate_total",
                "Events answered as duplicates of a stored event_id.",
                &self.events_duplicate,
            ),
            ("vigil_ingest_requests_total", "Ingest requests accepted.", &self.ingest_requests),
            ("vigil_ingest_rejected_total", "Ingest requests refused as invalid (400/413).", &self.ingest_rejected),
            ("vigil_ingest_failed_total", "Ingest requests that failed on the server side.", &self.ingest_failed),
            ("vigil_verify_runs_total", "Integrity verifications run.", &self.verify_runs),
            ("vigil_verify_failed_total", "Integrity verifications that found failures.", &self.verify_failed),
        ];
        for (name, help, value) in series {
            let _ =
                writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", value.load(Ordering::Relaxed));
        }
        self.ingest_latency.render(
            out,
            "vigil_ingest_request_duration_seconds",
            "Time from an ingest request's arrival to its answer, accepted requests (durably committed).",
        );
    }
}

/// Escapes a Prometheus label value.
pub fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Appends one gauge in Prometheus text format.
pub fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
}

/// Appends one unlabelled counter (a value that only goes up; its name ends in `_total`).
pub fn counter(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
}
