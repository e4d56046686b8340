//! `vigil rules ...`: building, testing, deploying and backtesting rules (Sigma included).

use std::path::PathBuf;

use clap::Subcommand;

use super::{Endpoint, ServerArgs, ServerConn};

#[derive(Subcommand)]
pub enum SigmaCommand {
    /// Compile Sigma files with the embedded evaluator, as the server would (no server
    /// needed); prints each deployment's manifest or what is wrong (rule, line, reason).
    Check {
        /// Sigma YAML files (one or more rules per file).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Check all files as one deployment of this name (correlations may then name rules
        /// of other files); default: one deployment per file, named after its stem.
        #[arg(long)]
        name: Option<String>,
    },
    /// Deploy Sigma files to a running server (PUT /v1/rules/{name}, application/yaml).
    Deploy {
        /// Sigma YAML files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Deploy all files as one deployment of this name; default: one per file (stem).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        server: Endpoint,
    },
}

#[derive(Subcommand)]
pub enum RulesCommand {
    /// List the rules deployed on a running server with their counters.
    List {
        #[command(flatten)]
        server: ServerConn,
    },
    /// Scaffold a rule crate `<dir>/<name>` on vigil-sdk, with tests.
    New {
        /// Rule name ([a-z0-9_]{1,64}); also the crate name.
        name: String,
        /// Where to create it.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Build the rule crate at `--path` to wasm32 (release); prints module SHA-256s.
    Build {
        #[arg(long, default_value = ".")]
        path: PathBuf,
    },
    /// Run the rule crate's native tests.
    Test {
        #[arg(long, default_value = ".")]
        path: PathBuf,
    },
    /// Upload a module to a running server (PUT /v1/rules/{name}).
    Deploy {
        /// The .wasm file.
        file: PathBuf,
        /// Rule name (default: the file stem).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        server: Endpoint,
    },
    /// Sigma rules: check them offline, or deploy them to a running server.
    Sigma {
        #[command(subcommand)]
        command: SigmaCommand,
    },
    /// Run a module (or a Sigma file) over stored events and print the alerts it would raise
    /// (writes nothing).
    Backtest {
        /// The .wasm file (or a Sigma .yml file, named after its stem).
        file: PathBuf,
        /// Start of the event-time range (RFC 3339 or epoch ms).
        #[arg(long)]
        since: String,
        /// End of the event-time range, exclusive (default: no end).
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
}
