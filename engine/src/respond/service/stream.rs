//! The bouncers' stream (`GET /v1/decisions/stream`): a snapshot of the active set, then
//! the changes since a cursor, read from the store's `decision_changes`.

use std::sync::atomic::Ordering;

use super::{DecisionError, DecisionService};
use crate::store::decisions::DecisionRow;

/// Most changes one stream response carries.
pub const STREAM_PAGE: i64 = 1000;

/// One stream response.
#[derive(Debug, Default)]
pub struct StreamPage {
    /// Whether `added` is the whole active set (the bouncer replaces its copy).
    pub snapshot: bool,
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
    pub async fn stream(&self, since: Option<i64>) -> Result<StreamPage, DecisionError> {
        let set = &self.inner.set;
        set.counters.stream_requests.fetch_add(1, Ordering::Relaxed);
        let now = self.now();
        let last = set.last_change();
        match since {
            Some(s) if s > 0 && s <= last => {}
            // No cursor, or one from another history (a restored database): the whole set.
            _ => {
                let (rows, cursor) = set.snapshot(now, |_| true);
                return Ok(StreamPage {
                    snapshot: true,
                    added: rows.iter().map(|d| (**d).clone()).collect(),
                    cursor,
                    ..StreamPage::default()
                });
            }
        }
        let since = since.unwrap_or(0);
        if since == last {
            return Ok(StreamPage { cursor: since, ..StreamPage::default() });
        }
        let rows = self.inner.store.decision_changes(since, false, None, STREAM_PAGE + 1).await?;
        let more = rows.len() as i64 > STREAM_PAGE;
        let mut page = StreamPage { more, cursor: since, ..StreamPage::default() };
        let mut added: Vec<DecisionRow> = Vec::new();
        let mut deleted: Vec<DecisionRow> = Vec::new();
        for (change, row) in rows.into_iter().take(STREAM_PAGE as usize) {
            page.cursor = change.id;
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
        Ok(page)
    }
}
