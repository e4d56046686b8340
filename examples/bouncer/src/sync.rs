//! The sync task: keeps the local copy in step with `GET /v1/decisions/stream`.
//!
//! First call without `since` (a snapshot, which replaces the copy), then `since=<cursor>`
//! for deltas: `added` applied, then `deleted` removed by id. An answer marked
//! `snapshot: true` (the server's answer to a cursor it does not know) replaces the copy too. `more: true` → call again at
//! once; otherwise sleep `poll_interval`. On an error the copy is kept as it is and the call
//! retried with a backoff (doubling from `poll_interval`, capped at five times it); a refused
//! cursor (400, 404, 410) starts over with a snapshot. The API key never reaches a log line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::store::Decision;
use crate::{BouncerError, Shared};

/// The backoff never exceeds this many poll intervals.
const MAX_BACKOFF_FACTOR: u32 = 5;
/// At most this much of an error body goes into a log line.
const MAX_LOGGED_BODY: usize = 200;

/// `{url}/v1/decisions/stream`, keeping a path prefix of `url`.
pub(crate) fn stream_endpoint(url: &str) -> Result<Url, BouncerError> {
    let invalid = || BouncerError::Url(url.to_owned());
    let mut endpoint = Url::parse(url.trim()).map_err(|_| invalid())?;
    if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host_str().is_none() {
        return Err(invalid());
    }
    let path = format!("{}/v1/decisions/stream", endpoint.path().trim_end_matches('/'));
    endpoint.set_path(&path);
    endpoint.set_query(None);
    endpoint.set_fragment(None);
    Ok(endpoint)
}

/// One answer of the stream endpoint.
#[derive(Deserialize)]
struct Page {
    /// A string in the contract; a number is taken too.
    cursor: Value,
    #[serde(default)]
    added: Vec<Value>,
    #[serde(default)]
    deleted: Vec<Value>,
    #[serde(default)]
    more: bool,
    /// Whether `added` is the whole active set. Not in the contract, but the server sets it
    /// when it answers a cursor from another history (a restored database) with a snapshot.
    #[serde(default)]
    snapshot: bool,
}

/// Why a sync call failed.
#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error("request failed: {0}")]
    Transport(#[source] reqwest::Error),
    #[error("HTTP {status}: {body}")]
    Status { status: StatusCode, body: String },
    #[error("unexpected answer: {0}")]
    Body(String),
}

impl SyncError {
    /// The server refused the cursor: start over with a snapshot.
    fn resync(&self) -> bool {
        matches!(self, SyncError::Status { status, .. }
            if matches!(*status, StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND | StatusCode::GONE))
    }
}

/// The state of the background task.
pub(crate) struct Syncer {
    pub shared: Arc<Shared>,
    pub client: reqwest::Client,
    pub endpoint: Url,
    pub api_key: String,
    pub poll_interval: Duration,
}

impl Syncer {
    /// Runs until the task is aborted (the last `Bouncer` dropped).
    pub async fn run(self) {
        let mut cursor: Option<String> = None;
        let mut failures: u32 = 0;
        loop {
            match self.fetch(cursor.as_deref()).await {
                Ok(page) => {
                    if failures > 0 {
                        tracing::info!(failures, "vigil decisions sync recovered");
                    }
                    failures = 0;
                    let previous = cursor.clone();
                    let (next, more) = self.apply(page, previous.is_none());
                    // `since=0` is a snapshot too: ask for one without `since` instead.
                    cursor = Some(next).filter(|c| c != "0");
                    // Follow `more` at once, unless the cursor did not move (a server bug
                    // would make that a busy loop).
                    if more && cursor != previous {
                        continue;
                    }
                    tokio::time::sleep(self.poll_interval).await;
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    if failures == 1 {
                        tracing::warn!(error = %e, endpoint = %self.endpoint, "vigil decisions sync failed; keeping the last copy");
                    } else {
                        tracing::debug!(error = %e, failures, "vigil decisions sync failed again");
                    }
                    if e.resync() {
                        cursor = None;
                    }
                    tokio::time::sleep(backoff(self.poll_interval, failures)).await;
                }
            }
        }
    }

    /// One call; `since` = `None` for a snapshot.
    async fn fetch(&self, since: Option<&str>) -> Result<Page, SyncError> {
        let mut url = self.endpoint.clone();
        if let Some(since) = since {
            url.query_pairs_mut().append_pair("since", since);
        }
        let resp = self.client.get(url).bearer_auth(&self.api_key).send().await.map_err(SyncError::Transport)?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(SyncError::Transport)?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            let body = text.chars().take(MAX_LOGGED_BODY).collect();
            return Err(SyncError::Status { status, body });
        }
        serde_json::from_slice(&body).map_err(|e| SyncError::Body(e.to_string()))
    }

    /// Applies a page (replacing the copy when it is a snapshot: asked for without `since`,
    /// or marked `snapshot: true`); returns the next cursor and `more`.
    fn apply(&self, page: Page, asked_snapshot: bool) -> (String, bool) {
        let snapshot = asked_snapshot || page.snapshot;
        let cursor = match &page.cursor {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let mut added = Vec::with_capacity(page.added.len());
        for value in &page.added {
            match Decision::from_json(value) {
                Ok(decision) => added.push(decision),
                Err(e) => tracing::warn!(error = %e, "vigil decision skipped"),
            }
        }
        let deleted: Vec<u64> = page.deleted.iter().filter_map(|d| d.get("id").and_then(Value::as_u64)).collect();
        let now = OffsetDateTime::now_utc();
        let mut store = self.shared.write();
        if snapshot {
            store.clear();
        }
        store.apply(added, &deleted, now);
        store.mark_ok(!page.more, Instant::now());
        tracing::debug!(cursor = %cursor, active = store.len(), snapshot, "vigil decisions synced");
        (cursor, page.more)
    }
}

/// `poll_interval` doubled per failure after the first, capped at five intervals.
fn backoff(poll_interval: Duration, failures: u32) -> Duration {
    let factor = 1u32.checked_shl(failures.saturating_sub(1)).unwrap_or(u32::MAX).min(MAX_BACKOFF_FACTOR);
    poll_interval.saturating_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_keeps_a_prefix() {
        let e = |u: &str| stream_endpoint(u).map(|u| u.to_string()).ok();
        assert_eq!(e("http://127.0.0.1:8080").as_deref(), Some("http://127.0.0.1:8080/v1/decisions/stream"));
        assert_eq!(e("https://vigil.internal/").as_deref(), Some("https://vigil.internal/v1/decisions/stream"));
        assert_eq!(e("http://h/sec/vigil/?x=1").as_deref(), Some("http://h/sec/vigil/v1/decisions/stream"));
        assert!(e("ftp://h").is_none());
        assert!(e("127.0.0.1:8080").is_none());
        assert!(e("").is_none());
    }

    #[test]
    fn backoff_doubles_up_to_five_intervals() {
        let s = Duration::from_secs(1);
        let got: Vec<u64> = (1..=8).map(|f| backoff(s, f).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 5, 5, 5, 5, 5]);
        assert_eq!(backoff(s, u32::MAX), Duration::from_secs(5));
    }
}
