//! The watched rules directory (`--rules-dir`): every `*.wasm` file is deployed at start and
//! the directory is polled (default every 250 ms), so a new or changed file is active within a
//! second and a removed file's rule is deleted. A file that fails validation is logged and
//! the previous version keeps running. Deploys and deletes are recorded in the chain.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;

use super::RuleRegistry;
use crate::ingest::system_event;
use crate::store::sequencer::SequencerHandle;

#[derive(Clone, PartialEq)]
struct Seen {
    modified: Option<SystemTime>,
    len: u64,
    rule: Option<String>,
}

/// Watches one directory.
pub struct RulesDir {
    dir: PathBuf,
    registry: Arc<RuleRegistry>,
    sequencer: SequencerHandle,
    seen: HashMap<PathBuf, Seen>,
}

impl RulesDir {
    /// A watcher of `dir` (nothing loaded yet).
    pub fn new(dir: PathBuf, registry: Arc<RuleRegistry>, sequencer: SequencerHandle) -> Self {
        Self { dir, registry, sequencer, seen: HashMap::new() }
    }

    /// One pass: deploys new and changed files, deletes rules whose file disappeared.
    /// Returns the number of rules deployed.
    pub async fn scan(&mut self) -> usize {
        let mut present = Vec::new();
        match std::fs::read_dir(&self.dir) {
            Ok(entries) => {
                for entry in entries.flatten() {
                    let path = entry.path();
                    if path.extension().is_some_and(|e| e == "wasm") && path.is_file() {
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
            let mut seen =
                Seen { modified: meta.modified().ok(), len: meta.len(), rule: previous.and_then(|p| p.rule) };
            if let Some(rule) = self.deploy_file(path).await {
                seen.rule = Some(rule);
                deployed += 1;
            }
            self.seen.insert(path.clone(), seen);
        }
        let gone: Vec<PathBuf> = self.seen.keys().filter(|p| !present.contains(p)).cloned().collect();
        for path in gone {
            if let Some(rule) = self.seen.remove(&path).and_then(|s| s.rule) {
                self.delete_rule(&rule, &path).await;
            }
        }
        deployed
    }

    async fn deploy_file(&self, path: &Path) -> Option<String> {
        let bytes = tokio::fs::read(path).await.ok()?;
        let registry = self.registry.clone();
        let source = format!("file:{}", path.display());
        let result = tokio::task::spawn_blocking(move || registry.deploy(&bytes, None, &source)).await.ok()?;
        match result {
            Ok(d) => {
                tracing::info!(rule = %d.name, version = %d.version, sha256 = %d.sha256, file = %path.display(), "Rule deployed from the rules directory");
                let details = json!({"rule": d.name, "version": d.version, "sha256": d.sha256,
                    "replaced": d.replaced, "source": format!("file:{}", path.display())});
                if let Err(e) = self
                    .sequencer
                    .submit(vec![system_event("configuration", "rule_deployed", "rules_dir", details)])
                    .await
                {
                    tracing::error!(error = %e, "Could not record a rule deploy in the chain");
                }
                Some(d.name)
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "Rule file refused; the previous version (if any) keeps running");
                None
            }
        }
    }

    async fn delete_rule(&self, rule: &str, path: &Path) {
        if let Ok(sha256) = self.registry.delete(rule) {
            tracing::info!(rule, file = %path.display(), "Rule file removed; rule deleted");
            let details = json!({"rule": rule, "sha256": sha256, "source": format!("file:{}", path.display())});
            if let Err(e) =
                self.sequencer.submit(vec![system_event("configuration", "rule_deleted", "rules_dir", details)]).await
            {
                tracing::error!(error = %e, "Could not record a rule delete in the chain");
            }
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
