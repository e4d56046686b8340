//! Logging setup (`tracing`, structured fields, `RUST_LOG`-style filter in `VIGIL_LOG`) and
//! the Prometheus metrics rendered at `GET /metrics`. Counters are plain atomics bumped on
//! the data path; other modules (rules, alerts) append their own series to the output.
//!
//! The log goes to stdout through [`LogOutput`], which never fails: a write that fails (a
//! full disk under the log file, a closed pipe) is counted in `vigil_log_write_errors_total`
//! and dropped. tracing-subscriber's own writer reports a failed write with `eprintln!`,
//! which panics when stderr fails too, and a panic inside the sequencer's task stopped the
//! log for good; no server task may print or panic because its log output is unwritable.

pub mod security;

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use security::SecurityCounters;

/// Log records (or parts of them) that could not be written since the process started.
static LOG_WRITE_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Log writes that failed since the process started (`vigil_log_write_errors_total`).
pub fn log_write_errors() -> u64 {
    LOG_WRITE_ERRORS.load(Ordering::Relaxed)
}

/// The server's log output: stdout, behind a writer that never reports an error (see the
/// module doc). Writing resumes by itself once the destination takes writes again.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogOutput;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogOutput {
    type Writer = Lossy<std::io::Stdout>;

    fn make_writer(&'a self) -> Self::Writer {
        Lossy(std::io::stdout())
    }
}

/// A writer that swallows the errors of the one inside it, counting them.
#[derive(Debug)]
pub struct Lossy<W>(pub W);

impl<W: std::io::Write> std::io::Write for Lossy<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // Interrupted writes are retried by write_all; anything else (ENOSPC, EPIPE, EIO)
        // loses this record, and nothing else.
        if self.0.write_all(buf).and_then(|()| self.0.flush()).is_err() {
            LOG_WRITE_ERRORS.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the global subscriber (once; later calls are ignored, as in tests).
pub fn init_logging() {
    init_logging_as("text");
}

/// Logging in `format`: `text`, or `json` (one JSON object per line: timestamp, level,
/// message and fields), as `[log] format` says.
pub fn init_logging_as(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    // Colour codes only on a terminal: a log file or a pipe to a collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(LogOutput)
        .log_internal_errors(false);
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
    /// OTLP log records refused (named in a partial-success answer).
    pub otlp_records_refused: AtomicU64,
    /// Syslog messages stored as events.
    pub syslog_stored: AtomicU64,
    /// Syslog messages refused (unparseable, invalid, over the size bound).
    pub syslog_refused: AtomicU64,
    /// Syslog connections refused (address not allowed, over the connection bound, TLS).
    pub syslog_connections_refused: AtomicU64,
    /// Time from an ingest request's arrival to its answer (accepted requests).
    pub ingest_latency: Histogram,
    /// Events by category, outcome and severity; alerts by rule and severity (shared with
    /// the sequencer and the alert service).
    pub security: Arc<SecurityCounters>,
    /// The retention archive (shared with the retention job).
    pub archive: Arc<ArchiveCounters>,
}

/// What the retention archive did since start.
#[derive(Debug, Default)]
pub struct ArchiveCounters {
    /// Parts written and read back verified.
    pub parts: AtomicU64,
    /// Bytes of those parts.
    pub bytes: AtomicU64,
    /// Archive attempts that failed (store unreachable, upload or read-back check failed):
    /// nothing was purged; the next run tries again.
    pub failures: AtomicU64,
    /// Parts deleted from the archive past `keep_days`.
    pub expired: AtomicU64,
}

impl ArchiveCounters {
    /// Prometheus text exposition.
    pub fn render(&self, out: &mut String) {
        let series: [(&str, &str, &AtomicU64); 4] = [
            ("vigil_archive_parts_total", "Retention archive parts written and read back verified.", &self.parts),
            ("vigil_archive_bytes_total", "Bytes of retention archive parts written.", &self.bytes),
            (
                "vigil_archive_failures_total",
                "Retention archive attempts that failed (nothing was purged; retried at the next run).",
                &self.failures,
            ),
            ("vigil_archive_parts_expired_total", "Archive parts deleted past keep_days.", &self.expired),
        ];
        for (name, help, value) in series {
            counter(out, name, help, value.load(Ordering::Relaxed));
        }
    }
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
        let series: [(&str, &str, &AtomicU64); 11] = [
            ("vigil_events_stored_total", "Events stored.", &self.events_stored),
            (
                "vigil_events_duplicate_total",
                "Events answered as duplicates of a stored event_id.",
                &self.events_duplicate,
            ),
            ("vigil_ingest_requests_total", "Ingest requests accepted.", &self.ingest_requests),
            ("vigil_ingest_rejected_total", "Ingest requests refused as invalid (400/413).", &self.ingest_rejected),
            ("vigil_ingest_failed_total", "Ingest requests that failed on the server side.", &self.ingest_failed),
            (
                "vigil_otlp_records_refused_total",
                "OTLP log records refused (each named in the partial-success answer).",
                &self.otlp_records_refused,
            ),
            ("vigil_syslog_stored_total", "Syslog messages stored as events.", &self.syslog_stored),
            ("vigil_syslog_refused_total", "Syslog messages refused (unparseable or invalid).", &self.syslog_refused),
            (
                "vigil_syslog_connections_refused_total",
                "Syslog connections refused (address not allowed, too many connections, failed TLS).",
                &self.syslog_connections_refused,
            ),
            ("vigil_verify_runs_total", "Integrity verifications run.", &self.verify_runs),
            ("vigil_verify_failed_total", "Integrity verifications that found failures.", &self.verify_failed),
        ];
        for (name, help, value) in series {
            let _ =
                writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", value.load(Ordering::Relaxed));
        }
        counter(
            out,
            "vigil_log_write_errors_total",
            "Log records the server could not write (a full disk under its log output, a closed pipe); \
             they are dropped, nothing else stops.",
            log_write_errors(),
        );
        self.ingest_latency.render(
            out,
            "vigil_ingest_request_duration_seconds",
            "Time from an ingest request's arrival to its answer, accepted requests (durably committed).",
        );
        self.security.render(out);
        self.archive.render(out);
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

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::{Lossy, log_write_errors};

    /// A destination that always fails, as a file on a full disk does.
    struct Full;

    impl std::io::Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from_raw_os_error(28))
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::Error::from_raw_os_error(28))
        }
    }

    #[test]
    fn a_log_write_to_a_full_disk_is_counted_and_never_an_error() {
        let before = log_write_errors();
        let mut out = Lossy(Full);
        assert_eq!(out.write(b"a record\n").unwrap(), 9);
        out.write_all(b"another\n").unwrap();
        out.flush().unwrap();
        assert!(log_write_errors() >= before + 2);
        let mut fine = Lossy(Vec::new());
        fine.write_all(b"kept\n").unwrap();
        assert_eq!(fine.0, b"kept\n");
    }

    #[test]
    fn logging_into_an_unwritable_output_does_not_panic() {
        let subscriber = tracing_subscriber::fmt().with_writer(|| Lossy(Full)).log_internal_errors(false).finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(seq = 1, "A record nobody can read");
        });
    }
}
