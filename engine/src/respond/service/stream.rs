//! The bouncers' stream (`GET /v1/decisions/stream`): a snapshot of the active set, read in
//! pages of [`SNAPSHOT_PAGE`] (the API streams each page as it is read, so no response is
//! built whole), then the changes since a cursor, read from the store's `decision_changes`.
//! Simulated decisions never appear in it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{DecisionError, DecisionService};
use crate::respond::ActiveSet;
use crate::store::decisions::DecisionRow;

/// Most changes one stream response carries.
pub const STREAM_PAGE: i64 = 1000;
/// Decisions read (and written out) at a time while streaming a snapshot.
pub const SNAPSHOT_PAGE: usize = 1000;

/// One stream response.
#[derive(Debug)]
pub enum Stream {
    /// Every active decision (the bouncer replaces its copy), read page by page.
    Snapshot(Snapshot),
    /// What changed since the cursor.
    Delta(StreamPage),
}

/// A snapshot of the active set: the ids that applied when it was taken and the cursor of
/// that moment. Pages are read from the set as they are written out; a decision that ended
/// meanwhile is left out (the changes after the cursor say it ended), and one issued
/// meanwhile comes with those changes.
#[derive(Debug)]
pub struct Snapshot {
    ids: Vec<i64>,
    /// The cursor to pass next.
    pub cursor: i64,
    set: Arc<ActiveSet>,
    now: i64,
}

impl Snapshot {
    /// How many decisions it names.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether it names none.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Page `n` (from 0) of the decisions, newest first; `None` past the last.
    pub fn page(&self, n: usize) -> Option<Vec<Arc<DecisionRow>>> {
        let ids = self.ids.chunks(SNAPSHOT_PAGE).nth(n)?;
        Some(self.set.rows(ids, self.now))
    }
}

/// The changes since a cursor.
#[derive(Debug, Default)]
pub struct StreamPage {
    /// Decisions that apply.
    pub added: Vec<DecisionRow>,
    /// Decisions that ended.
    pub deleted: Vec<DecisionRow>,
    /// The cursor to pass next.
    pub cursor: i64,
    /// More changes are waiting: call again at once.
    pub more: bool,
}

impl DecisionService {
    /// What changed since `since` (see `GET /v1/decisions/stream`).
    pub async fn stream(&self, since: Option<i64>) -> Result<Stream, DecisionError> {
        let set = &self.inner.set;
        set.counters.stream_requests.fetch_add(1, Ordering::Relaxed);
        let now = self.now();
        let last = set.last_change();
        match since {
            Some(s) if s > 0 && s <= last => {}
            // No cursor, or one from another history (a restored database): the whole set.
            _ => {
                let (ids, cursor) = set.snapshot_ids(now);
                return Ok(Stream::Snapshot(Snapshot { ids, cursor, set: set.clone(), now }));
            }
        }
        let since = since.unwrap_or(0);
        if since == last {
            return Ok(Stream::Delta(StreamPage { cursor: since, ..StreamPage::default() }));
        }
        let rows = self.inner.store.decision_changes(since, false, None, STREAM_PAGE + 1).await?;
        let more = rows.len() as i64 > STREAM_PAGE;
        let mut page = StreamPage { more, cursor: since, ..StreamPage::default() };
        let mut added: Vec<DecisionRow> = Vec::new();
        let mut deleted: Vec<DecisionRow> = Vec::new();
        for (change, row) in rows.into_iter().take(STREAM_PAGE as usize) {
            page.cursor = change.id;
            // A simulated decision is never enforced: bouncers never hear of it.
            if change.action == "simulated" {
                continue;
            }
            if change.action == "issued" && row.applies_at(now) {
                if !added.iter().any(|d| d.id == row.id) {
                    added.push(row);
                }
            } else {
                added.retain(|d| d.id != row.id);
                if !deleted.iter().any(|d| d.id == row.id) {
                    deleted.push(row);
                }
            }
        }
        page.added = added;
        page.deleted = deleted;
        Ok(Stream::Delta(page))
    }
}
