//! Retention: events older than `retention_days` (by the time the checkpoint covering them
//! was signed, i.e. server time) are deleted by a background job, only in whole ranges that
//! end at a checkpoint. Each purge is recorded first, as a chain event with the id
//! `vigil:retention:<floor>` (so verify can tell a purge from a deletion), followed by a new
//! checkpoint; then one transaction raises the retention floor and deletes the rows at or
//! below it. Verify starts from the checkpoint at the floor and stays ok.
//!
//! With `[retention.archive]`, the range is first written to the archive as a part
//! (`ledger::archive`), read back and verified; the purge record then names the part (its
//! object, SHA-256, size and range), and only then are rows deleted. A failed archive
//! (store unreachable, upload or check failed) means no purge: logged, counted in
//! `vigil_archive_failures_total`, tried again at the next run. Long ranges are archived
//! in parts of at most `max_part_events`, one purge each. Past `keep_days`, parts are
//! deleted from the archive, each deletion first recorded as an `archive_part_expired`
//! chain event.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;

use crate::clock::Clock;
use crate::config::ArchiveConfig;
use crate::event::system_event_with_id;
use crate::ledger::archive::{Archive, ArchiveError, Manifest};
use crate::ledger::keys::Verifier;
use crate::ledger::sequencer::SequencerHandle;
use crate::store::{Checkpoint, Store, StoreError};
use crate::telemetry::ArchiveCounters;

/// One purge.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Purge {
    /// Rows at or below this seq are gone.
    pub floor: i64,
    /// The checkpoint the range ended at.
    pub checkpoint_id: i64,
    /// Rows deleted.
    pub deleted: u64,
    /// The archive part written first (when an archive is configured).
    pub archive: Option<Manifest>,
}

/// Why a retention run stopped (nothing was purged past the point it failed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RetentionError {
    /// The log could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The range could not be archived, so it was not purged.
    #[error("nothing purged: {0}")]
    Archive(#[from] ArchiveError),
}

/// What the job needs to archive before it purges.
#[derive(Clone)]
pub struct ArchiveSettings {
    /// `[retention.archive]`.
    pub config: ArchiveConfig,
    /// The public keys a part read back is verified with.
    pub keys: Verifier,
    /// Where parts are staged before upload (in the data dir).
    pub staging: PathBuf,
    /// `/metrics` counters.
    pub counters: Arc<ArchiveCounters>,
}

/// The retention job.
#[derive(Clone)]
pub struct Retention {
    store: Store,
    sequencer: SequencerHandle,
    clock: Clock,
    days: u32,
    archive: Option<ArchiveSettings>,
    lock: Arc<tokio::sync::Mutex<()>>,
    stopped: Arc<std::sync::atomic::AtomicBool>,
    status: Arc<std::sync::Mutex<ArchiveStatus>>,
}

/// What the archive did last (`GET /v1/integrity/status`); details are in the server log.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ArchiveStatus {
    /// The newest part written since start: object, range, when.
    pub last_part: Option<serde_json::Value>,
    /// The newest failure since start: when (RFC 3339) and its kind (`store`: unreachable or
    /// refused; `check`: what was read back differs or does not verify; `foreign`: the
    /// archive holds another log's parts; `staging`, `log`, `config`).
    pub last_failure: Option<serde_json::Value>,
}

impl std::fmt::Debug for Retention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retention")
            .field("days", &self.days)
            .field("archive", &self.archive.as_ref().map(|a| a.config.describe()))
            .finish_non_exhaustive()
    }
}

impl Retention {
    /// A job keeping `days` days (0: keep everything).
    pub fn new(store: Store, sequencer: SequencerHandle, clock: Clock, days: u32) -> Self {
        Self {
            store,
            sequencer,
            clock,
            days,
            archive: None,
            lock: Arc::default(),
            stopped: Arc::default(),
            status: Arc::default(),
        }
    }

    /// Stops the job (server shutdown): waits for a run in progress, and no run starts after.
    pub async fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        let _wait = self.lock.lock().await;
    }

    /// The archive's settings and what it did last; None without an archive.
    pub fn archive_status(&self) -> Option<serde_json::Value> {
        let settings = self.archive.as_ref()?;
        let status = self.status.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Some(json!({
            "location": settings.config.describe(),
            "hot_days": self.days,
            "keep_days": settings.config.keep_days,
            "last_part": status.last_part,
            "last_failure": status.last_failure,
        }))
    }

    /// Archives every range before it is purged.
    pub fn with_archive(mut self, settings: ArchiveSettings) -> Self {
        self.archive = Some(settings);
        self
    }

    /// Purges the newest whole range that is old enough, if any (with an archive, the
    /// oldest such range of at most `max_part_events`, archived first).
    pub async fn run_once(&self) -> Result<Option<Purge>, RetentionError> {
        if self.days == 0 {
            return Ok(None);
        }
        let _one = self.lock.lock().await;
        if self.stopped.load(Ordering::Acquire) {
            return Ok(None);
        }
        let now = self.clock.now_ms();
        let cutoff = now.saturating_sub(i64::from(self.days) * 86_400_000);
        let Some(cp) = self.store.checkpoint_signed_before(cutoff).await? else { return Ok(None) };
        let floor = self.store.retention_floor().await?;
        if cp.seq <= floor {
            return Ok(None);
        }
        let (cp, part) = match &self.archive {
            None => (cp, None),
            Some(settings) => {
                let cp = self.part_end(floor, cp, settings.config.max_part_events).await?;
                match self.archive_range(settings, floor, &cp, now).await {
                    Ok(manifest) => (cp, Some(manifest)),
                    Err(e) => {
                        settings.counters.failures.fetch_add(1, Ordering::Relaxed);
                        let kind = match &e {
                            ArchiveError::Store { .. } => "store",
                            ArchiveError::Check(_) => "check",
                            ArchiveError::Foreign(_) => "foreign",
                            ArchiveError::Io(_) => "staging",
                            ArchiveError::Log(_) => "log",
                            _ => "config",
                        };
                        self.status.lock().unwrap_or_else(|p| p.into_inner()).last_failure = Some(json!({
                            "at": crate::event::format_rfc3339_ms(now), "kind": kind,
                        }));
                        tracing::error!(
                            error = %e, archive = %settings.config.describe(), from = floor + 1, to = cp.seq,
                            "Archiving a range before its purge failed; nothing was purged, the next run tries again"
                        );
                        return Err(e.into());
                    }
                }
            }
        };
        let mut details = json!({
            "floor": cp.seq, "checkpoint_id": cp.id, "checkpoint_hash": hex::encode(&cp.hash),
            "retention_days": self.days, "cutoff": crate::event::format_rfc3339_ms(cutoff),
        });
        if let Some(m) = &part {
            details["archive"] = json!({
                "object": m.object, "sha256": m.sha256, "bytes": m.bytes,
                "from_seq": m.from_seq, "to_seq": m.to_seq, "events": m.events,
            });
        }
        // Intent first: the purge is in the chain (and signed) before any row goes.
        let record = system_event_with_id(
            format!("vigil:retention:{}", cp.seq),
            "system",
            "retention_purge",
            "vigil",
            details,
            now,
        );
        self.sequencer.submit(vec![record]).await?;
        self.sequencer.checkpoint_now().await?;
        let deleted = self.store.purge(cp.seq).await?;
        tracing::info!(floor = cp.seq, checkpoint = cp.id, deleted, archived = part.is_some(), "Retention purge");
        if let Some(settings) = &self.archive
            && settings.config.keep_days > 0
            && let Err(e) = self.expire(settings, now).await
        {
            tracing::error!(error = %e, "Deleting archive parts past keep_days failed; the next run tries again");
        }
        Ok(Some(Purge { floor: cp.seq, checkpoint_id: cp.id, deleted, archive: part }))
    }

    /// The checkpoint a part starting after `floor` ends at: `cp`, or an older one so the
    /// part holds at most `max` events (when a checkpoint falls inside that window).
    async fn part_end(&self, floor: i64, cp: Checkpoint, max: i64) -> Result<Checkpoint, StoreError> {
        if cp.seq - floor <= max {
            return Ok(cp);
        }
        match self.store.checkpoint_at_or_before(floor.saturating_add(max)).await? {
            Some(c) if c.seq > floor => Ok(c),
            _ => Ok(cp),
        }
    }

    async fn archive_range(
        &self,
        settings: &ArchiveSettings,
        floor: i64,
        cp: &Checkpoint,
        now: i64,
    ) -> Result<Manifest, ArchiveError> {
        let archive = Archive::open(&settings.config)?;
        let started = std::time::Instant::now();
        let manifest = archive.write_part(&self.store, &settings.keys, floor, cp, &settings.staging, now).await?;
        settings.counters.parts.fetch_add(1, Ordering::Relaxed);
        self.status.lock().unwrap_or_else(|p| p.into_inner()).last_part = Some(json!({
            "object": manifest.object, "from_seq": manifest.from_seq, "to_seq": manifest.to_seq,
            "at": crate::event::format_rfc3339_ms(now),
        }));
        settings.counters.bytes.fetch_add(manifest.bytes, Ordering::Relaxed);
        tracing::info!(
            archive = %archive.describe(), object = %manifest.object, from = manifest.from_seq, to = manifest.to_seq,
            bytes = manifest.bytes, sha256 = %manifest.sha256, ms = started.elapsed().as_millis() as u64,
            "Archive part written and verified"
        );
        Ok(manifest)
    }

    /// Deletes the parts whose newest event (their closing checkpoint's signing time) is
    /// older than `keep_days`, each recorded in the chain first.
    async fn expire(&self, settings: &ArchiveSettings, now: i64) -> Result<(), RetentionError> {
        let archive = Archive::open(&settings.config)?;
        let cutoff = now.saturating_sub(i64::from(settings.config.keep_days) * 86_400_000);
        for m in archive.list().await?.parts.into_iter().filter(|m| m.checkpoint.created_at < cutoff) {
            // The age is the manifest's word: only a signed checkpoint that ends this part
            // may date it (an edited `created_at` must not get a part deleted early).
            let signed = m.checkpoint.seq == m.to_seq
                && m.checkpoint.hash == m.last_hash
                && settings.keys.check(&m.checkpoint.to_checkpoint()).is_ok();
            if !signed {
                tracing::warn!(object = %m.object, "An archive part's manifest carries no valid signed checkpoint; not deleting it by its date");
                continue;
            }
            let record = system_event_with_id(
                format!("vigil:archive-expired:{}", m.to_seq),
                "system",
                "archive_part_expired",
                "vigil",
                json!({
                    "archive": {"object": m.object, "sha256": m.sha256, "from_seq": m.from_seq, "to_seq": m.to_seq},
                    "keep_days": settings.config.keep_days,
                }),
                now,
            );
            self.sequencer.submit(vec![record]).await?;
            archive.delete_part(&m).await?;
            settings.counters.expired.fetch_add(1, Ordering::Relaxed);
            tracing::info!(object = %m.object, from = m.from_seq, to = m.to_seq, "Archive part deleted past keep_days");
        }
        Ok(())
    }

    /// Runs the job every `every` (and when a manual clock moves).
    pub fn spawn(self, every: Duration) {
        if self.days == 0 {
            return;
        }
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = self.clock.moved() => {}
                }
                if self.stopped.load(Ordering::Acquire) {
                    return;
                }
                // Catch up range by range (an archive writes parts of bounded size).
                for _ in 0..10_000 {
                    match self.run_once().await {
                        Ok(Some(_)) => continue,
                        Ok(None) => {}
                        // Already logged with what was being archived.
                        Err(RetentionError::Archive(_)) => {}
                        Err(e) => tracing::error!(error = %e, "Retention purge failed; retrying later"),
                    }
                    break;
                }
            }
        });
    }
}
