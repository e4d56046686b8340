//! The watched rules directory (`--rules-dir`): every `*.wasm` file (and every Sigma file,
//! `*.yml` or `*.yaml`, one deployment per file named after its stem) is deployed at start and
//! the directory is polled (default every 250 ms), so a new or changed file is active within a
//! second and a removed file's rule is deleted. Files are tracked by content (SHA-256) and
//! rules by manifest name, so a rename, an atomic replace with the same bytes, or a restart
//! keeps the rule, its state and its quarantine; a rule is deleted only when no file in the
//! directory provides it any more. A file that fails validation is logged, recorded in the
//! chain (`rule_refused`) and the previous version keeps running. Deploys and deletes go
//! through the `RuleJournal`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::RuleJournal;
use crate::rules::{RuleFormat, RuleRegistry, sigma};

/// The format of a rules-directory file, by extension (none: not a rule file).
fn file_format(path: &Path) -> Option<RuleFormat> {
    match path.extension()?.to_str()? {
        "wasm" => Some(RuleFormat::Wasm),
        "yml" | "yaml" => Some(RuleFormat::Sigma),
        _ => None,
    }
}

#[derive(Clone, PartialEq)]
struct Seen {
    modified: Option<SystemTime>,
    len: u64,
    /// SHA-256 (hex) of the bytes last read.
    sha256: Option<String>,
    /// The rule this file provides.
    rule: Option<String>,
}

/// Watches one directory.
pub struct RulesDir {
    dir: PathBuf,
    registry: Arc<RuleRegistry>,
    journal: RuleJournal,
    seen: HashMap<PathBuf, Seen>,
}

impl RulesDir {
    /// A watcher of `dir`. Rules the registry holds from files of this directory (restored
    /// from the store) are known already: their files are not deployed again.
    pub fn new(dir: PathBuf, registry: Arc<RuleRegistry>, journal: RuleJournal) -> Self {
        let mut seen = HashMap::new();
        for (source, rule, sha256) in registry.sources() {
            if let Some(path) = source.strip_prefix("file:") {
                let seen_before = Seen { modified: None, len: 0, sha256: Some(sha256), rule: Some(rule) };
                seen.insert(PathBuf::from(path), seen_before);
            }
        }
        Self { dir, registry, journal, seen }
    }

    /// One pass: deploys new and changed files, deletes rules no file provides any more.
    /// Returns the number of rules deployed.
    pub async fn scan(&mut self) -> usize {
        let mut present = Vec::new();
        match std::fs::read_dir(&self.dir) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    let path = entry.path();
                    if file_format(&path).is_some() && path.is_file() {
                        present.push(path);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "Cannot read the rules directory");
                return 0;
            }
        }
        present.sort();
        let mut deployed = 0;
        for path in &present {
            let Ok(meta) = std::fs::metadata(path) else { continue };
            let previous = self.seen.get(path).cloned();
            if previous.as_ref().is_some_and(|p| p.modified == meta.modified().ok() && p.len == meta.len()) {
                continue;
            }
            let Ok(bytes) = tokio::fs::read(path).await else { continue };
            // The SHA-256 the registry knows the rule by: the module's, or for a Sigma file
            // the evaluator's and the text's.
            let sha256 = match file_format(path) {
                Some(RuleFormat::Sigma) => hex::encode(sigma::version_sha256(&bytes)),
                _ => hex::encode(Sha256::digest(&bytes)),
            };
            let mut seen = Seen {
                modified: meta.modified().ok(),
                len: meta.len(),
                sha256: Some(sha256.clone()),
                rule: previous.as_ref().and_then(|p| p.rule.clone()),
            };
            if previous.as_ref().is_some_and(|p| p.sha256.as_deref() == Some(&sha256)) {
                // Touched but unchanged (or known from before a restart).
            } else if let Some(rule) = self.registry.rule_with_sha(&sha256) {
                // The same module under another name (a rename) or already restored: adopt it.
                seen.rule = Some(rule);
            } else if let Some(rule) = self.deploy_file(path, bytes, &sha256).await {
                seen.rule = Some(rule);
                deployed += 1;
            }
            self.seen.insert(path.clone(), seen);
        }
        let gone: Vec<PathBuf> = self.seen.keys().filter(|p| !present.contains(p)).cloned().collect();
        for path in gone {
            let Some(rule) = self.seen.remove(&path).and_then(|s| s.rule) else { continue };
            let still_provided = self.seen.values().any(|s| s.rule.as_deref() == Some(rule.as_str()));
            if !still_provided {
                self.delete_rule(&rule, &path).await;
            }
        }
        deployed
    }

    async fn deploy_file(&self, path: &Path, bytes: Vec<u8>, sha256: &str) -> Option<String> {
        let source = format!("file:{}", path.display());
        let format = file_format(path).unwrap_or(RuleFormat::Wasm);
        // A wasm module names itself (its manifest); a Sigma file is named after its stem.
        let name = match format {
            RuleFormat::Sigma => path.file_stem().map(|s| sigma::name_from_file(&s.to_string_lossy())),
            RuleFormat::Wasm => None,
        };
        let slot = self.journal.compile_slot().await;
        let upload = super::Upload { bytes, name, format };
        match self.journal.deploy(slot, &self.registry, upload, &source, "rules_dir").await {
            Ok(d) => {
                tracing::info!(rule = %d.name, version = %d.version, sha256 = %d.sha256, file = %path.display(), "Rule deployed from the rules directory");
                Some(d.name)
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "Rule file refused; the previous version (if any) keeps running");
                if let Err(e) = self.journal.refused(&source, sha256, &e.to_string()).await {
                    tracing::error!(error = %e, "Could not record a refused rule file in the chain");
                }
                None
            }
        }
    }

    async fn delete_rule(&self, rule: &str, path: &Path) {
        let source = format!("file:{}", path.display());
        match self.journal.delete(&self.registry, rule, &source, "rules_dir").await {
            Ok(_) => tracing::info!(rule, file = %path.display(), "Rule file removed; rule deleted"),
            Err(e) => tracing::error!(rule, error = %e, "Could not delete the rule of a removed file"),
        }
    }

    /// Polls forever (until the runtime stops).
    pub fn spawn(mut self, every: Duration) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                self.scan().await;
            }
        });
    }
}
