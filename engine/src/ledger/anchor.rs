//! The anchor: every new signed checkpoint is also written, fsynced, to a file outside the
//! database (`<data_dir>/anchor.json` by default, `[integrity] anchor_path`), to any witness
//! paths (`[integrity] witness_paths`, e.g. another disk or a mounted share) and, best
//! effort, POSTed to a witness URL (`[integrity] witness_url`).
//!
//! At start the server compares the database with the newest valid anchor it can read
//! ([`check`]): a head behind the anchored seq is `truncated`, another hash at that seq is
//! `hash_mismatch`, a missing or different anchored checkpoint row is `bad_checkpoint`.
//! `app` then puts the log on hold (see `ledger::IntegrityStatus`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::CheckpointJson;
use super::keys::{Verifier, sync_dir};
use crate::ledger::chain::{Failure, FailureKind};
use crate::store::{Checkpoint, Store, StoreError};

/// The anchor file's content.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnchorRecord {
    /// `vigil-anchor-v1`.
    pub format: String,
    /// The newest signed checkpoint.
    pub checkpoint: CheckpointJson,
}

/// Where anchors go.
#[derive(Debug, Clone)]
pub struct Anchor {
    path: PathBuf,
    witnesses: Vec<PathBuf>,
    witness_url: Option<String>,
}

impl Anchor {
    /// An anchor at `path` with optional witnesses.
    pub fn new(path: PathBuf, witnesses: Vec<PathBuf>, witness_url: Option<String>) -> Self {
        Self { path, witnesses, witness_url }
    }

    /// The main anchor file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `cp` to the anchor file (write to a temp file, fsync, rename, fsync the
    /// directory) and to the witnesses. Only the main file's failure is an error.
    pub async fn write(&self, cp: &Checkpoint) -> std::io::Result<()> {
        let record = AnchorRecord { format: "vigil-anchor-v1".into(), checkpoint: CheckpointJson::from(cp) };
        let bytes = serde_json::to_vec_pretty(&record).map_err(std::io::Error::other)?;
        let (path, witnesses) = (self.path.clone(), self.witnesses.clone());
        let body = bytes.clone();
        tokio::task::spawn_blocking(move || {
            write_atomic(&path, &body)?;
            for w in &witnesses {
                if let Err(e) = write_atomic(w, &body) {
                    tracing::warn!(path = %w.display(), error = %e, "Could not write the anchor to a witness path");
                }
            }
            Ok::<_, std::io::Error>(())
        })
        .await
        .map_err(std::io::Error::other)??;
        if let Some(url) = self.witness_url.clone() {
            tokio::spawn(async move {
                let Ok(client) = crate::net::http_client(std::time::Duration::from_secs(10)).build() else {
                    return;
                };
                let sent = client.post(&url).header("content-type", "application/json").body(bytes).send().await;
                match sent {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => tracing::warn!(status = r.status().as_u16(), "Witness refused the anchor"),
                    Err(e) => tracing::warn!(error = %e.without_url(), "Could not reach the anchor witness"),
                }
            });
        }
        Ok(())
    }

    /// The newest anchored checkpoint whose signature holds, from the main file and the
    /// witness paths. Files that are absent are skipped; one that is unreadable or badly
    /// signed is reported in the second value (and not trusted).
    pub fn read(&self, verifier: &Verifier) -> (Option<Checkpoint>, Vec<String>) {
        let mut best: Option<Checkpoint> = None;
        let mut problems = Vec::new();
        for path in std::iter::once(&self.path).chain(&self.witnesses) {
            let bytes = match std::fs::read(path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    problems.push(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            let cp = match serde_json::from_slice::<AnchorRecord>(&bytes) {
                Ok(r) => r.checkpoint.to_checkpoint(),
                Err(e) => {
                    problems.push(format!("{}: not an anchor file ({e})", path.display()));
                    continue;
                }
            };
            if let Err(why) = verifier.check(&cp) {
                problems.push(format!("{}: {why}", path.display()));
                continue;
            }
            if best.as_ref().is_none_or(|b| cp.id > b.id) {
                best = Some(cp);
            }
        }
        (best, problems)
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    });
    if written.is_err() {
        // A full disk: the anchor in place stays whole (the next checkpoint writes it
        // again); the partial temporary file would only hold on to space.
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    sync_dir(dir);
    Ok(())
}

/// Compares the database with an anchored checkpoint; every disagreement is a failure:
/// truncation and the anchored checkpoint row as verify checks them
/// (`ledger::verify::truncation`), and the row at the anchored seq.
pub async fn check(store: &Store, anchored: &Checkpoint) -> Result<Vec<Failure>, StoreError> {
    let mut failures = Vec::new();
    let head = store.head().await?;
    let last = store.last_checkpoint().await?;
    crate::ledger::verify::truncation(store, &head, last.as_ref(), Some(anchored), "anchored", &mut failures).await?;
    if head.seq < anchored.seq {
        return Ok(failures);
    }
    if let Some(row) = store.row(anchored.seq).await? {
        if row.hash != anchored.hash {
            failures.push(Failure {
                seq: anchored.seq,
                kind: FailureKind::HashMismatch,
                expected: hex::encode(&anchored.hash),
                actual: hex::encode(&row.hash),
            });
        }
    } else if anchored.seq > store.retention_floor().await? {
        failures.push(Failure {
            seq: anchored.seq,
            kind: FailureKind::MissingSeq,
            expected: format!("seq {} (anchored)", anchored.seq),
            actual: "absent".into(),
        });
    }
    Ok(failures)
}
