//! The bouncer against a scripted stand-in for Vigil's `GET /v1/decisions/stream`.
//!
//! `FakeVigil` is a tiny actix-web server on 127.0.0.1:0 that keeps a change log (decisions
//! added, lifted, expired, each with a sequence number) and answers snapshots and deltas as
//! the contract says, optionally in pages (`more: true`), failing (500) or refusing cursors
//! (400) on demand. It never expires anything by itself, so local expiry is tested alone.
//! Convergence is awaited with a deadline loop, never a fixed sleep.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{App, HttpMessage, HttpRequest, HttpResponse, HttpServer, test, web};
use serde_json::{Value, json};
use time::OffsetDateTime;
use vigil_bouncer::{Bouncer, BouncerConfig, FailMode, MfaRequired, Verdict};

const KEY: &str = "vgl_test_bouncer_0123456789abcdef";

/// One decision the fake server knows.
struct FakeDecision {
    id: u64,
    scope: String,
    value: String,
    kind: String,
    expires_at: OffsetDateTime,
    added_seq: u64,
    /// (seq, status) once lifted or expired.
    ended: Option<(u64, &'static str)>,
}

impl FakeDecision {
    /// What a bouncer key is given: exactly `id, scope, value, kind, expires_at` (no
    /// reason, actor, rule, alert, status or history).
    fn to_json(&self) -> Value {
        json!({
            "id": self.id, "scope": self.scope, "value": self.value, "kind": self.kind,
            "expires_at": rfc3339(self.expires_at),
        })
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    t.to_offset(time::UtcOffset::UTC).format(&format).unwrap()
}

/// What the fake server holds and has seen.
#[derive(Default)]
struct State {
    seq: u64,
    decisions: Vec<FakeDecision>,
    /// Changes per delta page; 0 = all at once.
    page_size: usize,
    /// Answer 500 to everything.
    failing: bool,
    /// Answer 400 to any `since`.
    refuse_cursors: bool,
    /// The `Authorization` header of every request.
    authorizations: Vec<Option<String>>,
    /// The `since` of every request (`None` = snapshot) and the status answered.
    requests: Vec<(Option<String>, u16)>,
}

/// `GET /v1/decisions/stream` as the contract describes it.
async fn stream(req: HttpRequest, state: web::Data<Mutex<State>>) -> HttpResponse {
    let mut st = state.lock().unwrap();
    let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    st.authorizations.push(auth.clone());
    let query = web::Query::<HashMap<String, String>>::from_query(req.query_string()).map(|q| q.into_inner());
    let since_text = query.as_ref().ok().and_then(|q| q.get("since").cloned());
    let (status, body) = answer(&st, auth.as_deref(), since_text.as_deref());
    st.requests.push((since_text, status.as_u16()));
    HttpResponse::build(status).json(body)
}

fn answer(st: &State, auth: Option<&str>, since: Option<&str>) -> (StatusCode, Value) {
    if st.failing {
        return (StatusCode::INTERNAL_SERVER_ERROR, json!({"error": {"code": "internal"}}));
    }
    if auth != Some(format!("Bearer {KEY}").as_str()) {
        return (StatusCode::UNAUTHORIZED, json!({"error": {"code": "unauthorized"}}));
    }
    let since = match since.map(str::parse::<u64>) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return (StatusCode::BAD_REQUEST, json!({"error": {"code": "bad_cursor"}})),
    };
    if since > 0 && st.refuse_cursors {
        return (StatusCode::BAD_REQUEST, json!({"error": {"code": "bad_cursor"}}));
    }
    // No cursor, or one from another history (as the real server does): a snapshot.
    if since == 0 || since > st.seq {
        let added: Vec<Value> = st.decisions.iter().filter(|d| d.ended.is_none()).map(FakeDecision::to_json).collect();
        let page =
            json!({"snapshot": true, "cursor": st.seq.to_string(), "added": added, "deleted": [], "more": false});
        return (StatusCode::OK, page);
    }
    // (seq, index, ended) of every change after the cursor.
    let mut changes: Vec<(u64, usize, bool)> = Vec::new();
    for (i, d) in st.decisions.iter().enumerate() {
        if d.added_seq > since && d.ended.is_none() {
            changes.push((d.added_seq, i, false));
        }
        if let Some((seq, _)) = d.ended
            && seq > since
        {
            changes.push((seq, i, true));
        }
    }
    changes.sort_unstable();
    let take = if st.page_size == 0 { changes.len() } else { st.page_size.min(changes.len()) };
    let more = take < changes.len();
    let cursor = changes[..take].last().map_or(since, |c| c.0);
    let mut added = Vec::new();
    let mut deleted = Vec::new();
    for &(_, i, ended) in &changes[..take] {
        let d = st.decisions[i].to_json();
        if ended { deleted.push(d) } else { added.push(d) }
    }
    (
        StatusCode::OK,
        json!({"snapshot": false, "cursor": cursor.to_string(), "added": added, "deleted": deleted, "more": more}),
    )
}

/// The stand-in server and a handle on its state.
struct FakeVigil {
    state: Arc<Mutex<State>>,
    url: String,
}

impl FakeVigil {
    async fn start() -> FakeVigil {
        let state = Arc::new(Mutex::new(State::default()));
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new().app_data(data.clone()).route("/v1/decisions/stream", web::get().to(stream))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
        let addr = server.addrs()[0];
        actix_web::rt::spawn(server.run());
        FakeVigil { state, url: format!("http://{addr}") }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Adds an active decision ending at `expires_at`; returns its id.
    fn add_until(&self, scope: &str, value: &str, kind: &str, expires_at: OffsetDateTime) -> u64 {
        let mut st = self.state();
        st.seq += 1;
        let (id, added_seq) = (st.seq, st.seq);
        st.decisions.push(FakeDecision {
            id,
            scope: scope.into(),
            value: value.into(),
            kind: kind.into(),
            expires_at,
            added_seq,
            ended: None,
        });
        id
    }

    /// Adds an active decision for an hour.
    fn add(&self, scope: &str, value: &str, kind: &str) -> u64 {
        self.add_until(scope, value, kind, OffsetDateTime::now_utc() + Duration::from_secs(3600))
    }

    /// Ends a decision (`lifted` or `expired`): it shows in the next delta's `deleted`.
    fn end(&self, id: u64, status: &'static str) {
        let mut st = self.state();
        st.seq += 1;
        let seq = st.seq;
        let d = st.decisions.iter_mut().find(|d| d.id == id).unwrap();
        d.ended = Some((seq, status));
    }

    fn request_count(&self) -> usize {
        self.state().requests.len()
    }
}

/// A free local port with nothing listening on it.
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

fn config(url: &str, fail_mode: FailMode) -> BouncerConfig {
    let mut config = BouncerConfig::new(url, KEY);
    config.poll_interval = Duration::from_millis(20);
    config.fail_mode = fail_mode;
    config
}

/// Polls `cond` every 10 ms until it holds; panics after 10 s.
async fn eventually(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !cond().await {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `GET /`: "hello", or "hello mfa" when the bouncer set [`MfaRequired`].
async fn hello(req: HttpRequest) -> &'static str {
    if req.extensions().get::<MfaRequired>().is_some() { "hello mfa" } else { "hello" }
}

/// The app under test: `GET /` behind the bouncer.
macro_rules! app {
    ($bouncer:expr) => {
        test::init_service(App::new().wrap($bouncer.middleware()).route("/", web::get().to(hello))).await
    };
}

/// `GET /` from `ip` with extra headers: (status, Retry-After, body).
macro_rules! get {
    ($app:expr, $ip:expr) => {
        get!($app, $ip, [])
    };
    ($app:expr, $ip:expr, [$($header:expr),* $(,)?]) => {{
        let peer: SocketAddr = format!("{}:40000", $ip).parse().unwrap();
        let req = test::TestRequest::get().uri("/").peer_addr(peer)$(.insert_header($header))*.to_request();
        let resp = test::call_service(&$app, req).await;
        let status = resp.status();
        let retry_after = resp.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        let body = String::from_utf8(test::read_body(resp).await.to_vec()).unwrap();
        (status, retry_after, body)
    }};
}

/// Waits for the first snapshot.
async fn synced(bouncer: &Bouncer) {
    eventually("the first snapshot", async || bouncer.is_available()).await;
}

#[actix_web::test]
async fn blocked_ip_gets_403_and_another_ip_200() {
    let vigil = FakeVigil::start().await;
    let id = vigil.add("ip", "203.0.113.7", "block");
    vigil.add("ip", "203.0.113.8", "lock");
    let bouncer = Bouncer::start(config(&vigil.url, FailMode::Closed));
    synced(&bouncer).await;
    let app = app!(bouncer);

    let (status, _, body) = get!(app, "203.0.113.7");
    assert_eq!(status, StatusCode::FORBIDDEN);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body, json!({"error": "blocked"}), "decision {id}: no reason reaches the client");
    let (status, _, _) = get!(app, "203.0.113.8");
    assert_eq!(status, StatusCode::FORBIDDEN, "lock is refused like block");
    let (status, _, body) = get!(app, "198.51.100.1");
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello"));
    // An IPv4-mapped IPv6 peer is the same client.
    let (status, _, _) = get!(app, "[::ffff:203.0.113.7]");
    assert_eq!(status, StatusCode::FORBIDDEN);

    assert!(matches!(
        bouncer.check("ip", "203.0.113.7", OffsetDateTime::now_utc()),
        Verdict::Block { decision_id, .. } if decision_id == id
    ));
    assert_eq!(bouncer.active_count(), 2);
}

#[actix_web::test]
async fn throttled_ip_gets_429_with_retry_after() {
    let vigil = FakeVigil::start().await;
    vigil.add_until("ip", "203.0.113.9", "throttle", OffsetDateTime::now_utc() + Duration::from_secs(600));
    let bouncer = Bouncer::start(config(&vigil.url, FailMode::Closed));
    synced(&bouncer).await;
    let app = app!(bouncer);

    let (status, retry_after, body) = get!(app, "203.0.113.9");
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let secs: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=600).contains(&secs), "Retry-After {secs}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "throttled");
    assert_eq!(body["retry_after_secs"], secs);
    let (status, _, _) = get!(app, "203.0.113.10");
    assert_eq!(status, StatusCode::OK);
}

#[actix_web::test]
async fn decisions_added_and_deleted_by_deltas() {
    let vigil = FakeVigil::start().await;
    let first = vigil.add("ip", "203.0.113.7", "block");
    let bouncer = Bouncer::start(config(&vigil.url, FailMode::Closed));
    synced(&bouncer).await;
    let app = app!(bouncer);
    assert_eq!(get!(app, "203.0.113.7").0, StatusCode::FORBIDDEN);

    // Lifted: reported in `deleted`, it stops applying.
    vigil.end(first, "lifted");
    eventually("the lifted block to stop applying", async || get!(app, "203.0.113.7").0 == StatusCode::OK).await;
    assert_eq!(bouncer.active_count(), 0);

    // Added after the snapshot, in pages of one change (`more: true` followed).
    vigil.state().page_size = 1;
    let ids: Vec<u64> = (1..=5).map(|i| vigil.add("ip", &format!("192.0.2.{i}"), "block")).collect();
    vigil.end(ids[4], "expired");
    eventually("five pages of deltas", async || bouncer.active_count() == 4).await;
    for i in 1..=4 {
        assert_eq!(get!(app, format!("192.0.2.{i}")).0, StatusCode::FORBIDDEN);
    }
    assert_eq!(get!(app, "192.0.2.5").0, StatusCode::OK, "expired on the server");

    let st = vigil.state();
    assert_eq!(st.requests[0].0, None, "the first call is a snapshot");
    assert!(st.requests[1..].iter().all(|(since, _)| since.is_some()), "then deltas: {:?}", st.requests);
    let cursors: Vec<u64> = st.requests.iter().filter_map(|(s, _)| s.as_ref()?.parse().ok()).collect();
    assert!(cursors.windows(2).all(|w| w[0] <= w[1]), "the cursor never goes back: {cursors:?}");
}

#[actix_web::test]
async fn expired_decisions_stop_applying_locally() {
    let vigil = FakeVigil::start().await;
    let now = OffsetDateTime::now_utc();
    // The server still serves both as active: the bouncer's clock decides.
    vigil.add_until("ip", "203.0.113.7", "block", now + Duration::from_secs(120));
    vigil.add_until("ip", "203.0.113.8", "block", now - Duration::from_secs(1));
    let bouncer = Bouncer::start(config(&vigil.url, FailMode::Closed));
    synced(&bouncer).await;
    let app = app!(bouncer);

    assert!(matches!(bouncer.check("ip", "203.0.113.7", now), Verdict::Block { .. }));
    assert_eq!(bouncer.check("ip", "203.0.113.7", now + Duration::from_secs(121)), Verdict::Allow);
    assert_eq!(bouncer.check("ip", "203.0.113.8", now), Verdict::Allow);
    assert_eq!(get!(app, "203.0.113.8").0, StatusCode::OK, "past expires_at in the snapshot");
    assert_eq!(get!(app, "203.0.113.7").0, StatusCode::FORBIDDEN);
}

#[actix_web::test]
async fn unreachable_server_fail_closed_503_fail_open_200() {
    let url = dead_url();
    let closed = Bouncer::start(config(&url, FailMode::Closed));
    let open = Bouncer::start(config(&url, FailMode::Open));
    let closed_app = app!(closed);
    let open_app = app!(open);

    let (status, _, body) = get!(closed_app, "198.51.100.1");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), json!({"error": "unavailable"}));
    assert_eq!(get!(open_app, "198.51.100.1").0, StatusCode::OK);
    assert_eq!(closed.check("ip", "198.51.100.1", OffsetDateTime::now_utc()), Verdict::Unavailable);
    assert!(!closed.is_available() && !open.is_available());
}

#[actix_web::test]
async fn errors_keep_the_last_copy_until_it_goes_stale() {
    let vigil = FakeVigil::start().await;
    vigil.add("ip", "203.0.113.7", "block");
    let keeps = Bouncer::start(config(&vigil.url, FailMode::Closed));
    let mut short = config(&vigil.url, FailMode::Closed);
    short.stale_after = Duration::from_millis(300);
    let stales = Bouncer::start(short);
    synced(&keeps).await;
    synced(&stales).await;
    let keeps_app = app!(keeps);
    let stales_app = app!(stales);

    vigil.state().failing = true;
    let seen = vigil.request_count();
    eventually("failed syncs", async || {
        vigil.state().requests.iter().skip(seen).filter(|(_, status)| *status == 500).count() >= 4
    })
    .await;
    assert_eq!(get!(keeps_app, "203.0.113.7").0, StatusCode::FORBIDDEN, "the last copy still applies");
    assert_eq!(get!(keeps_app, "198.51.100.1").0, StatusCode::OK);
    eventually("the copy to go stale", async || get!(stales_app, "198.51.100.1").0 == StatusCode::SERVICE_UNAVAILABLE)
        .await;

    // The server comes back: available again.
    vigil.state().failing = false;
    eventually("recovery", async || get!(stales_app, "198.51.100.1").0 == StatusCode::OK).await;
    assert_eq!(get!(stales_app, "203.0.113.7").0, StatusCode::FORBIDDEN);
}

#[actix_web::test]
async fn refused_cursor_starts_over_with_a_snapshot() {
    let vigil = FakeVigil::start().await;
    let lifted = vigil.add("ip", "203.0.113.8", "block");
    let bouncer = Bouncer::start(config(&vigil.url, FailMode::Closed));
    synced(&bouncer).await;
    let app = app!(bouncer);
    assert_eq!(get!(app, "203.0.113.8").0, StatusCode::FORBIDDEN);
    vigil.state().refuse_cursors = true;
    let seen = vigil.request_count();
    eventually("a 400 then a new snapshot", async || {
        let st = vigil.state();
        let later = &st.requests[seen.min(st.requests.len())..];
        later
            .iter()
            .position(|(_, status)| *status == 400)
            .is_some_and(|i| later[i + 1..].iter().any(|(s, _)| s.is_none()))
    })
    .await;
    // While cursors are refused, snapshots still work: a change shows up through them.
    vigil.add("ip", "203.0.113.7", "block");
    vigil.end(lifted, "lifted");
    eventually("the new block", async || get!(app, "203.0.113.7").0 == StatusCode::FORBIDDEN).await;
    // The snapshot replaced the copy: the lifted block is gone, never reported in `deleted`.
    eventually("the lifted block gone", async || get!(app, "203.0.113.8").0 == StatusCode::OK).await;
    vigil.state().refuse_cursors = false;
    vigil.add("ip", "203.0.113.9", "block");
    eventually("a block added once cursors are accepted again", async || {
        get!(app, "203.0.113.9").0 == StatusCode::FORBIDDEN
    })
    .await;
}

#[actix_web::test]
async fn snapshot_for_an_unknown_cursor_replaces_the_copy() {
    let vigil = FakeVigil::start().await;
    vigil.add("ip", "203.0.113.7", "block");
    let temporary = vigil.add("ip", "203.0.113.8", "block");
    vigil.end(temporary, "lifted");
    let bouncer = Bouncer::start(config(&vigil.url, FailMode::Closed));
    synced(&bouncer).await;
    let app = app!(bouncer);
    assert_eq!(get!(app, "203.0.113.7").0, StatusCode::FORBIDDEN);

    // The server's history is replaced (a restored database): the bouncer's cursor (3) is
    // past its newest change (1), so it answers with `snapshot: true`.
    {
        let mut st = vigil.state();
        st.decisions.clear();
        st.seq = 1;
        let expires_at = OffsetDateTime::now_utc() + Duration::from_secs(3600);
        st.decisions.push(FakeDecision {
            id: 10,
            scope: "ip".into(),
            value: "203.0.113.9".into(),
            kind: "block".into(),
            expires_at,
            added_seq: 1,
            ended: None,
        });
    }
    eventually("the restored set", async || get!(app, "203.0.113.9").0 == StatusCode::FORBIDDEN).await;
    assert_eq!(get!(app, "203.0.113.7").0, StatusCode::OK, "gone with the old history");
    assert_eq!(bouncer.active_count(), 1);
    let st = vigil.state();
    assert!(st.requests.iter().all(|(since, _)| since.as_deref() != Some("0")), "{:?}", st.requests);
}

#[actix_web::test]
async fn api_key_is_sent_as_a_bearer_token() {
    let vigil = FakeVigil::start().await;
    let bouncer = Bouncer::start(config(&vigil.url, FailMode::Closed));
    synced(&bouncer).await;
    let auths = vigil.state().authorizations.clone();
    assert!(!auths.is_empty());
    assert!(auths.iter().all(|a| a.as_deref() == Some(&*format!("Bearer {KEY}"))), "{auths:?}");
    drop(bouncer);

    // A key the server refuses: never available, so fail-closed refuses.
    let mut wrong = config(&vigil.url, FailMode::Closed);
    wrong.api_key = "vgl_wrong".into();
    let bouncer = Bouncer::start(wrong);
    eventually("refused syncs", async || vigil.state().requests.iter().filter(|(_, s)| *s == 401).count() >= 2).await;
    assert!(!bouncer.is_available());
    let app = app!(bouncer);
    assert_eq!(get!(app, "198.51.100.1").0, StatusCode::SERVICE_UNAVAILABLE);
}

#[actix_web::test]
async fn user_header_blocks_and_requires_mfa() {
    let vigil = FakeVigil::start().await;
    vigil.add("user", "mallory", "lock");
    vigil.add("user", "alice", "require_mfa");
    vigil.add("ip", "203.0.113.7", "throttle");
    let mut cfg = config(&vigil.url, FailMode::Closed);
    cfg.user_header = Some("x-user-id".into());
    let bouncer = Bouncer::start(cfg);
    synced(&bouncer).await;
    let app = app!(bouncer);

    assert_eq!(get!(app, "198.51.100.1", [("x-user-id", "mallory")]).0, StatusCode::FORBIDDEN);
    let (status, _, body) = get!(app, "198.51.100.1", [("x-user-id", "alice")]);
    assert_eq!((status, body.as_str()), (StatusCode::OK, "hello mfa"), "require_mfa passes with the extension");
    assert_eq!(get!(app, "198.51.100.1", [("x-user-id", "bob")]).2, "hello");
    assert_eq!(get!(app, "198.51.100.1").2, "hello", "no header: the IP only");
    // Throttle (ip) beats require_mfa (user); lock (user) beats throttle (ip).
    assert_eq!(get!(app, "203.0.113.7", [("x-user-id", "alice")]).0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(get!(app, "203.0.113.7", [("x-user-id", "mallory")]).0, StatusCode::FORBIDDEN);
}

#[actix_web::test]
async fn forwarded_for_only_when_trusted() {
    let vigil = FakeVigil::start().await;
    vigil.add("ip", "203.0.113.7", "block");
    let direct = Bouncer::start(config(&vigil.url, FailMode::Closed));
    let mut cfg = config(&vigil.url, FailMode::Closed);
    cfg.trust_forwarded_for = true;
    let proxied = Bouncer::start(cfg);
    synced(&direct).await;
    synced(&proxied).await;
    let direct_app = app!(direct);
    let proxied_app = app!(proxied);

    let xff = ("x-forwarded-for", "203.0.113.7, 10.0.0.2");
    assert_eq!(get!(proxied_app, "10.0.0.2", [xff]).0, StatusCode::FORBIDDEN);
    assert_eq!(get!(direct_app, "10.0.0.2", [xff]).0, StatusCode::OK, "the header is ignored unless trusted");
    assert_eq!(get!(direct_app, "203.0.113.7").0, StatusCode::FORBIDDEN);
    assert_eq!(get!(proxied_app, "203.0.113.7").0, StatusCode::FORBIDDEN, "no header: the peer address");
}
