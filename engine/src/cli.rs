//! The command line's work: `vigil verify --file` (offline export check; with `--archive`
//! or several files, archive parts and the live log as one chain), `vigil archive
//! list|restore`, `vigil integrity accept`, and the rule author's `vigil rules new | build | test | deploy | backtest`.
//! `new` scaffolds a rule crate on `vigil-sdk`; `build` and `test` run cargo for it (wasm32
//! release build / native tests); `deploy` uploads a module with `PUT /v1/rules/{name}`;
//! `backtest` runs a module over stored history and prints the alerts it would have raised,
//! writing nothing. `vigil config init` writes the commented reference configuration;
//! `vigil config check` prints what a validated configuration resolves to.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::detect::Evaluator;
use crate::detect::replay::for_each_chunk;
use crate::store::Store;

mod archive;
mod call;
mod integrity;
mod rules;

pub use archive::{RestoreRange, archive_list, archive_restore, open_archive, verify_chain};
pub use call::{Call, query_escape};
pub use integrity::{TailFilter, accept, export, progress, tail, verify_file, verify_server};
pub use rules::{backtest, build, deploy, new_rule, sigma_check, sigma_deploy, sigma_deployments, test};

/// The commented reference configuration (every key with its default and meaning).
pub const REFERENCE_CONFIG: &str = include_str!("../../vigil.example.toml");

/// `vigil config init`: writes [`REFERENCE_CONFIG`] to `path`, refusing to replace a file
/// unless `force`.
pub fn config_init(path: &Path, force: bool) -> anyhow::Result<()> {
    if path.exists() && !force {
        bail!("{} exists; pass --force to replace it", path.display());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    std::fs::write(path, REFERENCE_CONFIG).with_context(|| format!("write {}", path.display()))?;
    println!(
        "wrote {} (every key commented with its default; edit, then `vigil config check --config {}`)",
        path.display(),
        path.display()
    );
    Ok(())
}

/// What `vigil config check` prints for a valid configuration: where the server would
/// listen, which database (without its password), directories, and the configured
/// receivers and policies. Secrets are never printed.
pub fn config_summary(config: &Config) -> String {
    let database = redact_url(&config.database_url);
    let receivers: Vec<String> = config.receivers.iter().map(|r| format!("{} ({})", r.name, r.kind)).collect();
    let policies: Vec<String> = config
        .escalation
        .iter()
        .map(|p| p.name.clone().or_else(|| p.severity.clone()).unwrap_or_else(|| "(unnamed)".into()))
        .collect();
    let mut summary = format!(
        "configuration ok\n  listen        {}\n  database      {database}\n  data_dir      {}\n  rules_dir     {}\n  \
         retention     {} days in the live database; archive: {}\n  admin key     {}\n  receivers     {}\n  escalation    {}",
        config.listen,
        config.data_dir.display(),
        config.rules_dir.as_ref().map_or("(none)".into(), |d| d.display().to_string()),
        config.hot_days(),
        config.retention.archive.as_ref().map_or("(none: a purge deletes)".into(), |a| a.describe()),
        if config.admin_key.is_some() { "from VIGIL_ADMIN_KEY" } else { "(none: stored keys only)" },
        if receivers.is_empty() { "(none)".into() } else { receivers.join(", ") },
        if policies.is_empty() { "(none)".into() } else { policies.join(", ") },
    );
    for warning in config.unreachable_receiver_warnings() {
        summary.push_str("\nwarning: ");
        summary.push_str(&warning);
    }
    summary
}

/// A database URL with any password replaced by `***`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn database_passwords_are_not_printed() {
        assert_eq!(redact_url("postgres://vigil:s3cret@db:5432/vigil"), "postgres://vigil:***@db:5432/vigil");
        assert_eq!(redact_url("postgres://vigil@db/vigil"), "postgres://vigil@db/vigil");
        assert_eq!(redact_url("sqlite://data/vigil.db"), "sqlite://data/vigil.db");
    }
}
