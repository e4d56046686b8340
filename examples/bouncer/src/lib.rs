//! Example Vigil bouncer: an actix-web middleware that enforces Vigil's active decisions.
//!
//! A [`Bouncer`] keeps a local copy of the server's active decisions, synced in the
//! background with `GET /v1/decisions/stream` (a snapshot first, then deltas), and answers
//! [`Bouncer::check`] from memory: a request never waits for Vigil. [`BouncerMiddleware`]
//! checks each request's client IP (scope `ip`) and, when configured, its user (scope `user`):
//!
//! - `block` / `lock` → 403 `{"error":"blocked"}`
//! - `throttle` → 429 with `Retry-After` (the seconds left on the decision)
//! - `require_mfa` → the request goes on with the [`MfaRequired`] extension: the app decides
//! - no usable copy (never synced, or no successful sync for `stale_after`) →
//!   [`FailMode::Closed`]: 503, [`FailMode::Open`]: the request goes on
//!
//! ```no_run
//! use actix_web::{App, HttpServer, web};
//! use vigil_bouncer::{Bouncer, BouncerConfig};
//!
//! # async fn run() -> std::io::Result<()> {
//! let bouncer = Bouncer::start(BouncerConfig::new("http://127.0.0.1:8080", "vgl_..."));
//! HttpServer::new(move || {
//!     App::new().wrap(bouncer.middleware()).route("/", web::get().to(|| async { "hello" }))
//! })
//! .bind("127.0.0.1:8081")?
//! .run()
//! .await
//! # }
//! ```

mod middleware;
mod store;
mod sync;

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use actix_web::HttpRequest;
pub use time::OffsetDateTime;

pub use middleware::{BouncerMiddleware, BouncerService, MfaRequired};

use store::Store;

/// What the middleware does while the local copy is unavailable (never synced, or no
/// successful sync for [`BouncerConfig::stale_after`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailMode {
    /// Let requests through: Vigil being down does not take the app down, but nothing is
    /// enforced meanwhile (the default).
    #[default]
    Open,
    /// Answer 503: nothing gets through unchecked, but the app is down while Vigil is.
    Closed,
}

impl FromStr for FailMode {
    type Err = BouncerError;

    /// `open` or `closed` (any case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "open" => Ok(FailMode::Open),
            "closed" => Ok(FailMode::Closed),
            _ => Err(BouncerError::FailMode(s.to_owned())),
        }
    }
}

/// Errors of [`Bouncer::try_start`] and of parsing a [`FailMode`].
#[derive(Debug, thiserror::Error)]
pub enum BouncerError {
    /// `url` is not an absolute `http://` or `https://` URL.
    #[error("invalid Vigil URL {0:?}: expected http://host[:port][/prefix] or https://...")]
    Url(String),
    /// `user_header` is not a valid header name.
    #[error("invalid user_header {0:?}: not a header name")]
    UserHeader(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// A fail mode other than `open` or `closed`.
    #[error("invalid fail mode {0:?}: expected open or closed")]
    FailMode(String),
}

/// How a [`Bouncer`] reaches Vigil and enforces its decisions.
#[derive(Clone)]
pub struct BouncerConfig {
    /// Vigil's base URL, e.g. `http://127.0.0.1:8080` (a path prefix is kept).
    pub url: String,
    /// An API key with the role `bouncer`, sent as `Authorization: Bearer <key>`. Never
    /// logged, and hidden by `Debug`.
    pub api_key: String,
    /// Pause between two syncs once caught up (default 1 s; at least 10 ms is used).
    pub poll_interval: Duration,
    /// What to do while the copy is unavailable (default [`FailMode::Open`]).
    pub fail_mode: FailMode,
    /// With no successful sync for this long the copy counts as unavailable (default 30 s).
    pub stale_after: Duration,
    /// The request header carrying the authenticated user id (e.g. `x-user-id`), checked
    /// against scope `user`. `None` (the default): only the IP is checked. Only set it when
    /// something in front of the middleware (your auth layer or proxy) sets or strips it:
    /// a client-supplied value can only make a request stricter, never lift a decision.
    pub user_header: Option<String>,
    /// `false` (the default): the client IP is the peer address. `true`: the first address of
    /// `X-Forwarded-For` (falling back to the peer address when absent or malformed). Only
    /// set it behind a proxy that overwrites that header, or a client picks its own IP.
    pub trust_forwarded_for: bool,
}

impl BouncerConfig {
    /// A configuration with the defaults: poll every 1 s, fail open, stale after 30 s, no
    /// user header, client IP from the peer address.
    pub fn new(url: impl Into<String>, api_key: impl Into<String>) -> Self {
        BouncerConfig {
            url: url.into(),
            api_key: api_key.into(),
            poll_interval: Duration::from_secs(1),
            fail_mode: FailMode::Open,
            stale_after: Duration::from_secs(30),
            user_header: None,
            trust_forwarded_for: false,
        }
    }
}

impl fmt::Debug for BouncerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BouncerConfig")
            .field("url", &self.url)
            .field("api_key", &"<redacted>")
            .field("poll_interval", &self.poll_interval)
            .field("fail_mode", &self.fail_mode)
            .field("stale_after", &self.stale_after)
            .field("user_header", &self.user_header)
            .field("trust_forwarded_for", &self.trust_forwarded_for)
            .finish()
    }
}

/// What the active decisions say about a scope and value (or about a request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No decision applies.
    Allow,
    /// A `block` or `lock` decision applies (403). When several do, the one that lasts longest.
    Block {
        /// The decision's id (`GET /v1/decisions/{id}`).
        decision_id: u64,
        /// When it ends unless lifted earlier.
        expires_at: OffsetDateTime,
    },
    /// A `throttle` decision applies (429): the client should retry once it ends.
    Throttle {
        /// Whole seconds until the decision ends (at least 1), for `Retry-After`.
        retry_after_secs: u64,
    },
    /// A `require_mfa` decision applies: the app should ask for a second factor.
    RequireMfa,
    /// The local copy is unusable (never synced, or stale): the fail mode decides.
    Unavailable,
}

impl Verdict {
    /// Severity order for precedence: block/lock > throttle > require_mfa > allow.
    fn rank(&self) -> u8 {
        match self {
            Verdict::Allow => 0,
            Verdict::RequireMfa => 1,
            Verdict::Throttle { .. } => 2,
            Verdict::Block { .. } => 3,
            Verdict::Unavailable => 4,
        }
    }

    /// The stronger of two verdicts; between two blocks the longer-lasting one, between two
    /// throttles the longer wait.
    fn strongest(self, other: Verdict) -> Verdict {
        match (&self, &other) {
            (Verdict::Block { expires_at: a, .. }, Verdict::Block { expires_at: b, .. }) => {
                if b > a {
                    other
                } else {
                    self
                }
            }
            (Verdict::Throttle { retry_after_secs: a }, Verdict::Throttle { retry_after_secs: b }) => {
                if b > a {
                    other
                } else {
                    self
                }
            }
            _ if other.rank() > self.rank() => other,
            _ => self,
        }
    }
}

/// Shared between the handles and the sync task.
struct Shared {
    store: RwLock<Store>,
    stale_after: Duration,
}

impl Shared {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Store> {
        self.store.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Owned by every [`Bouncer`] clone; the last one dropped stops the sync task.
struct Inner {
    shared: Arc<Shared>,
    fail_mode: FailMode,
    user_header: Option<actix_web::http::header::HeaderName>,
    trust_forwarded_for: bool,
    task: tokio::task::AbortHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A handle on the local copy of Vigil's active decisions, kept in sync by a background task.
/// Cheap to clone; the task stops when the last clone is dropped.
#[derive(Clone)]
pub struct Bouncer {
    inner: Arc<Inner>,
}

impl fmt::Debug for Bouncer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bouncer")
            .field("fail_mode", &self.inner.fail_mode)
            .field("available", &self.is_available())
            .field("active", &self.active_count())
            .finish()
    }
}

impl Bouncer {
    /// Starts the sync task and returns the handle. The copy is unavailable until the first
    /// snapshot arrives.
    ///
    /// Installs rustls' ring crypto provider as the process default when none is installed
    /// (reqwest is built without one in this workspace).
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime (`#[actix_web::main]` and `#[tokio::main]` are
    /// fine), or when the configuration is invalid (see [`Bouncer::try_start`]).
    pub fn start(config: BouncerConfig) -> Bouncer {
        match Bouncer::try_start(config) {
            Ok(bouncer) => bouncer,
            Err(e) => panic!("vigil-bouncer: {e}"),
        }
    }

    /// [`Bouncer::start`], with an error instead of a panic for an invalid URL or user header
    /// name, or an HTTP client that cannot be built.
    ///
    /// # Panics
    ///
    /// When called outside a Tokio runtime.
    pub fn try_start(config: BouncerConfig) -> Result<Bouncer, BouncerError> {
        let endpoint = sync::stream_endpoint(&config.url)?;
        let user_header = match &config.user_header {
            None => None,
            Some(name) => Some(
                actix_web::http::header::HeaderName::from_bytes(name.trim().as_bytes())
                    .map_err(|_| BouncerError::UserHeader(name.clone()))?,
            ),
        };
        // Ignore the error: another part of the process installed a provider first.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .user_agent(concat!("vigil-bouncer/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let shared = Arc::new(Shared { store: RwLock::new(Store::default()), stale_after: config.stale_after });
        let poll_interval = config.poll_interval.max(Duration::from_millis(10));
        let syncer = sync::Syncer { shared: shared.clone(), client, endpoint, api_key: config.api_key, poll_interval };
        let task = tokio::spawn(syncer.run()).abort_handle();
        tracing::info!(url = %config.url, fail_mode = ?config.fail_mode, "vigil bouncer started");
        Ok(Bouncer {
            inner: Arc::new(Inner {
                shared,
                fail_mode: config.fail_mode,
                user_header,
                trust_forwarded_for: config.trust_forwarded_for,
                task,
            }),
        })
    }

    /// What the active decisions say about `value` in `scope` (`ip`, `user`, `api_key`,
    /// `session`, `organization`) at `now`. Decisions past their `expires_at` never apply,
    /// even before the stream reports them ended. Precedence: block/lock > throttle >
    /// require_mfa. IP values are compared in canonical form (`::ffff:203.0.113.7` is
    /// `203.0.113.7`). [`Verdict::Unavailable`] when the copy is unusable.
    pub fn check(&self, scope: &str, value: &str, now: OffsetDateTime) -> Verdict {
        let copy = self.inner.shared.read();
        if !copy.is_available(self.inner.shared.stale_after) {
            return Verdict::Unavailable;
        }
        copy.check(scope, value, now)
    }

    /// The verdict the middleware applies to a request: its client IP and, when
    /// [`BouncerConfig::user_header`] is set and present, its user; the strongest wins.
    pub fn check_request(&self, req: &HttpRequest, now: OffsetDateTime) -> Verdict {
        let copy = self.inner.shared.read();
        if !copy.is_available(self.inner.shared.stale_after) {
            return Verdict::Unavailable;
        }
        let mut verdict = Verdict::Allow;
        if let Some(ip) = middleware::client_ip(req, self.inner.trust_forwarded_for) {
            verdict = verdict.strongest(copy.check_ip(ip, now));
        }
        if let Some(user) = self.inner.user_header.as_ref().and_then(|h| middleware::header_value(req, h)) {
            verdict = verdict.strongest(copy.check("user", user, now));
        }
        verdict
    }

    /// Whether the copy is usable: a full snapshot arrived and the last successful sync is
    /// less than `stale_after` old.
    pub fn is_available(&self) -> bool {
        self.inner.shared.read().is_available(self.inner.shared.stale_after)
    }

    /// How many decisions the copy holds (some may have passed their `expires_at` already).
    pub fn active_count(&self) -> usize {
        self.inner.shared.read().len()
    }

    /// The configured fail mode.
    pub fn fail_mode(&self) -> FailMode {
        self.inner.fail_mode
    }

    /// The actix-web middleware enforcing this bouncer's verdicts (`App::new().wrap(...)`).
    pub fn middleware(&self) -> BouncerMiddleware {
        BouncerMiddleware::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_mode_parses() {
        assert_eq!("open".parse::<FailMode>().ok(), Some(FailMode::Open));
        assert_eq!(" Closed ".parse::<FailMode>().ok(), Some(FailMode::Closed));
        assert!("shut".parse::<FailMode>().is_err());
    }

    #[test]
    fn debug_hides_the_key() {
        let config = BouncerConfig::new("http://127.0.0.1:8080", "vgl_secret_value");
        let text = format!("{config:?}");
        assert!(!text.contains("vgl_secret_value"), "{text}");
        assert!(text.contains("<redacted>"));
    }

    #[test]
    fn precedence() {
        let at = OffsetDateTime::UNIX_EPOCH;
        let block = Verdict::Block { decision_id: 1, expires_at: at };
        let throttle = Verdict::Throttle { retry_after_secs: 5 };
        assert_eq!(Verdict::Allow.strongest(Verdict::RequireMfa), Verdict::RequireMfa);
        assert_eq!(Verdict::RequireMfa.strongest(throttle.clone()), throttle);
        assert_eq!(throttle.clone().strongest(block.clone()), block);
        assert_eq!(block.clone().strongest(throttle.clone()), block);
        assert_eq!(
            throttle.clone().strongest(Verdict::Throttle { retry_after_secs: 9 }),
            Verdict::Throttle { retry_after_secs: 9 }
        );
        let later = Verdict::Block { decision_id: 2, expires_at: at + Duration::from_secs(1) };
        assert_eq!(block.strongest(later.clone()), later);
    }
}
