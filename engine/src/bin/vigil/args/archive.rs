//! `vigil archive ...`: reading the retention archive without a server.

use std::path::PathBuf;

use clap::Subcommand;
use vigil::config::{Config, Overrides};

/// Which archive a command reads.
#[derive(clap::Args, Clone)]
pub struct ArchiveSource {
    /// A directory, or s3://bucket/prefix (endpoint, region and credentials from
    /// AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY; AWS_ALLOW_HTTP=true
    /// for an http endpoint).
    #[arg(long)]
    pub archive: Option<String>,
    /// The server's configuration file: its `[retention.archive]` (and the environment
    /// variables it names) when `--archive` is not given [env: VIGIL_CONFIG].
    #[arg(long, env = "VIGIL_CONFIG")]
    pub config: Option<PathBuf>,
}

impl ArchiveSource {
    pub fn open(&self) -> anyhow::Result<vigil::ledger::archive::Archive> {
        let config = match (&self.archive, &self.config) {
            (None, Some(path)) => Some(Config::load(Overrides { config: Some(path.clone()), ..Overrides::default() })?),
            _ => None,
        };
        vigil::cli::open_archive(self.archive.as_deref(), config.as_ref())
    }
}

#[derive(Subcommand)]
pub enum ArchiveCommand {
    /// The parts, oldest first: seq range, events, bytes, when archived, first event time,
    /// object key (and any upload a crash left without a manifest).
    List {
        #[command(flatten)]
        source: ArchiveSource,
        /// Print JSON (parts with their manifests).
        #[arg(long)]
        json: bool,
    },
    /// Download the parts holding a range, verify them as one chain, and write the range
    /// as an export file (checkable with `vigil verify --file`); the live log is not touched.
    Restore {
        #[command(flatten)]
        source: ArchiveSource,
        /// First seq.
        #[arg(long, conflicts_with_all = ["since", "until"], required_unless_present_any = ["since", "until"])]
        from_seq: Option<i64>,
        /// Last seq (default: the end of the archive; extended to the next signed checkpoint).
        #[arg(long, requires = "from_seq")]
        to_seq: Option<i64>,
        /// Event-time start (RFC 3339 or epoch ms): from the first event at or after it...
        #[arg(long)]
        since: Option<String>,
        /// ...to the last event before this (exclusive), and every row between.
        #[arg(long)]
        until: Option<String>,
        /// The export file to write.
        #[arg(long, short = 'o')]
        out: PathBuf,
        /// Ed25519 public key(s) the parts are verified with (as for `vigil verify`).
        #[arg(long = "public-key", required = true)]
        public_key: Vec<String>,
    },
}
