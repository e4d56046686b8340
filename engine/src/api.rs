//! HTTP API (actix-web): routes of DESIGN.md section 6. Each handler authenticates with
//! `auth::KeyRing::require` first (all but /healthz, /readyz, /metrics), then calls into
//! `ingest`, the sequencer, `store` and the services. Handlers live in `api/*.rs` by
//! resource; errors are `error::ApiError`; `openapi` is the document of it all.

pub mod alerts;
pub mod allowlist;
pub mod cluster;
pub mod dashboard;
pub mod decisions;
pub mod error;
pub mod events;
pub mod export;
pub mod forwarders;
pub mod guard;
pub mod integrity;
pub mod keys;
pub mod openapi;
pub mod ops;
pub mod otlp;
pub mod receivers;
pub mod reports;
pub mod rules;
pub mod silences;

use std::sync::Arc;

use actix_web::web;
use serde::de::DeserializeOwned;

use self::error::ApiError;
use crate::auth::KeyRing;
use crate::config::Config;
use crate::ingest::Masker;
use crate::ledger::sequencer::SequencerHandle;
use crate::store::Store;
use crate::telemetry::Metrics;

/// Everything a handler may need, shared by all workers.
#[derive(Clone)]
pub struct AppState {
    /// The configuration the server started with.
    pub config: Arc<Config>,
    /// Read access to storage.
    pub store: Store,
    /// The single writer.
    pub sequencer: SequencerHandle,
    /// Secret/PII masking.
    pub masker: Arc<Masker>,
    /// GeoIP/ASN enrichment and the `[[lists]]` (applied after masking, before storage).
    pub enricher: Arc<crate::ingest::Enricher>,
    /// API keys.
    pub keys: KeyRing,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Checkpoint signing key and the public keys it verifies with.
    pub checkpoint_keys: Arc<crate::ledger::keys::CheckpointKeys>,
    /// Integrity hold and the last signed checkpoint.
    pub integrity: Arc<crate::ledger::IntegrityStatus>,
    /// The retention job (tests run it on demand).
    pub retention: crate::ledger::retention::Retention,
    /// Deployed rules.
    pub rules: Arc<crate::rules::RuleRegistry>,
    /// Where rule changes are recorded before they take effect.
    pub rule_journal: crate::deploy::RuleJournal,
    /// Detection progress.
    pub detection: Arc<crate::detect::pipeline::PipelineStats>,
    /// The alert lifecycle (the one writer of alerts).
    pub alerts: crate::alerts::AlertService,
    /// Decisions for the apps' bouncers (the one writer of decisions).
    pub decisions: crate::respond::DecisionService,
    /// Notification delivery (receivers and their circuits).
    pub outbox: Arc<crate::route::Outbox>,
    /// The sequencer-to-detection hand-off (its queue depth is a metric).
    pub handoff: Arc<crate::ledger::handoff::Handoff>,
    /// Request-body bytes held now, against `[ingest] max_inflight_bytes`.
    pub inflight: Arc<guard::InflightBudget>,
    /// The cached database figures of `/metrics` and the large-verification gate.
    pub ops: Arc<ops::OpsState>,
    /// Reads of the log by keys, written to the chain as `log_accessed` events.
    pub access: crate::ledger::access::AccessLog,
    /// The `[[forwarders]]` pushing committed events to SIEMs.
    pub forwarders: Arc<crate::forward::Forwarders>,
    /// Cluster mode: this node's membership (None on a single node).
    pub cluster: Option<crate::cluster::ClusterMember>,
    /// Cluster mode: the NATS side (the stream state of `GET /v1/cluster`).
    pub cluster_ingest: Option<crate::cluster::ClusterIngest>,
}

/// The route table: `routes!` makes both [`configure`] and [`ROUTES`] from one list, so the
/// OpenAPI document can be checked against exactly what is served (a test fails when a route
/// is missing from the spec or the spec documents a route that does not exist).
macro_rules! routes {
    ($($method:ident $path:literal => $handler:path),* $(,)?) => {
        /// Every API route as (method, path template), in registration order.
        pub const ROUTES: &[(&str, &str)] = &[$((stringify!($method), $path)),*];

        /// Registers every route, the dashboard's static assets and the JSON 404/405.
        pub fn configure(cfg: &mut web::ServiceConfig) {
            $(cfg.route($path, web::$method().to($handler));)*
            dashboard::configure(cfg);
            cfg.default_service(web::to(ops::not_found));
        }
    };
}

routes! {
    get "/healthz" => ops::healthz,
    get "/readyz" => ops::readyz,
    get "/metrics" => ops::metrics,
    get "/v1/openapi.json" => openapi::serve,
    get "/v1/whoami" => ops::whoami,
    post "/v1/events" => events::post_events,
    post "/v1/logs" => otlp::post_logs,
    get "/v1/events" => events::list_events,
    get "/v1/events/stats" => events::stats,
    get "/v1/events/export" => export::export,
    get "/v1/integrity/verify" => integrity::verify,
    get "/v1/integrity/head" => integrity::head,
    get "/v1/integrity/status" => integrity::status,
    get "/v1/integrity/checkpoints" => integrity::checkpoints,
    get "/v1/integrity/public-key" => integrity::public_key,
    post "/v1/integrity/accept" => integrity::accept,
    get "/v1/rules" => rules::list,
    get "/v1/rules/{name}" => rules::get,
    put "/v1/rules/{name}" => rules::deploy,
    delete "/v1/rules/{name}" => rules::delete,
    get "/v1/rules/{name}/stats" => rules::stats,
    get "/v1/alerts" => alerts::list,
    post "/v1/alerts" => alerts::create,
    get "/v1/alerts/stats" => alerts::stats,
    get "/v1/alerts/{id}" => alerts::get,
    post "/v1/alerts/{id}/ack" => alerts::ack,
    post "/v1/alerts/{id}/resolve" => alerts::resolve,
    post "/v1/alerts/{id}/reopen" => alerts::reopen,
    post "/v1/silences" => silences::create,
    get "/v1/silences" => silences::list,
    get "/v1/silences/{id}" => silences::get,
    delete "/v1/silences/{id}" => silences::expire,
    get "/v1/decisions" => decisions::list,
    post "/v1/decisions" => decisions::create,
    get "/v1/decisions/stream" => decisions::stream,
    get "/v1/decisions/{id}" => decisions::get,
    delete "/v1/decisions/{id}" => decisions::lift,
    get "/v1/allowlist" => allowlist::list,
    post "/v1/allowlist" => allowlist::create,
    delete "/v1/allowlist/{id}" => allowlist::remove,
    get "/v1/receivers" => receivers::list,
    get "/v1/forwarders" => forwarders::list,
    get "/v1/cluster" => cluster::view,
    post "/v1/receivers/{name}/circuit" => receivers::circuit,
    get "/v1/notifications" => receivers::notifications,
    post "/v1/notifications/{id}/retry" => receivers::retry,
    post "/v1/keys" => keys::create,
    get "/v1/keys" => keys::list,
    get "/v1/reports/security" => reports::security,
    get "/v1/reports/compliance" => reports::compliance,
    delete "/v1/keys/{id}" => keys::revoke,
}

/// Middleware: a URL holding an encoded NUL (`%00`) is refused with 400 before any handler
/// sees it (no id, name or filter contains one, and PostgreSQL text cannot hold it).
pub async fn refuse_nul(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let uri = req.uri().to_string();
    if uri.contains("%00") || uri.contains('\0') {
        return Err(ApiError::bad_request("the URL must not contain NUL (%00)").into());
    }
    next.call(req).await
}

/// The methods served at a concrete request path (templates' `{x}` match one segment). A
/// path that is a route of its own (`/v1/decisions/stream`) is not also taken for a
/// template it would fit (`/v1/decisions/{id}`).
pub fn methods_at(path: &str) -> Vec<&'static str> {
    let segments: Vec<&str> = path.split('/').collect();
    let assets = dashboard::ASSETS.iter().map(|(p, _, _)| ("get", *p));
    let all = || ROUTES.iter().copied().chain(assets.clone());
    let literal = all().any(|(_, template)| template == path);
    let mut methods: Vec<&'static str> = all()
        .filter(|(_, template)| {
            if literal {
                return *template == path;
            }
            let t: Vec<&str> = template.split('/').collect();
            t.len() == segments.len()
                && t.iter().zip(&segments).all(|(t, s)| (t.starts_with('{') && !s.is_empty()) || t == s)
        })
        .map(|(m, _)| m)
        .collect();
    methods.sort_unstable();
    methods.dedup();
    methods
}

pub use guard::{Body, read_body};

/// Reads a JSON body of at most `limit` bytes into `T`; a 400 names `what` and the problem.
pub async fn read_json<T: DeserializeOwned>(
    req: &actix_web::HttpRequest,
    payload: web::Payload,
    limit: usize,
    what: &str,
) -> Result<T, ApiError> {
    let body = read_body(req, payload, limit).await?;
    json_object(&body, what)
}

/// Parses a JSON object into `T`. Only an object: serde would also read a struct from an
/// array of its fields (`["ip", "x", ...]`), which no client means.
pub fn json_object<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("invalid {what}: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::bad_request(format!("invalid {what}: the body must be a JSON object")));
    }
    serde_json::from_value(value).map_err(|e| ApiError::bad_request(format!("invalid {what}: {e}")))
}

/// An optional integer query parameter (`#[serde(default, deserialize_with = ...)]`):
/// `12` or, as JSON Schema counts integers, `12.0` or `1e3`; anything else is a 400 naming
/// it. A float is taken only strictly inside the i64 range: a literal past it rounds to
/// +-2^63, which is refused, never clamped.
pub fn int_param<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::Deserialize as _;
    use serde::de::Error as _;
    let Some(text) = Option::<String>::deserialize(d)? else { return Ok(None) };
    let value = text.parse::<i64>().ok().or_else(|| {
        text.parse::<f64>()
            .ok()
            .filter(|f| f.fract() == 0.0 && *f > i64::MIN as f64 && *f < i64::MAX as f64)
            .map(|f| f as i64)
    });
    value.map(Some).ok_or_else(|| D::Error::custom(format!("`{text}` is not an integer")))
}

/// Parses a query string into `T`, refusing unknown parameters with a 400 that names them.
/// A parameter with an empty value (`?since=&user_id=`, as an HTML form sends, or a bare
/// `?since`) is absent.
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let kept: Vec<&str> = query.split('&').filter(|pair| pair.contains('=') && !pair.ends_with('=')).collect();
    web::Query::<T>::from_query(&kept.join("&"))
        .map(web::Query::into_inner)
        .map_err(|e| ApiError::bad_request(format!("invalid query parameters: {e}")))
}

/// A positive integer id or cursor as the API writes them: decimal digits without sign or
/// leading zero, at most 18 of them (what `^[1-9][0-9]{0,17}$` in the OpenAPI document says).
pub fn strict_id(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    (!b.is_empty() && b.len() <= 18 && b[0] != b'0' && b.iter().all(u8::is_ascii_digit)).then(|| s.parse().ok())?
}

/// Parses an optional `cursor` query parameter (a [`strict_id`]).
pub fn parse_cursor(cursor: Option<&str>) -> Result<Option<i64>, ApiError> {
    cursor.map(|c| strict_id(c).ok_or_else(|| ApiError::bad_request("`cursor` is not valid"))).transpose()
}

/// Parses a time query parameter (RFC 3339 or epoch ms). A bound outside the times events
/// can carry (before 1970, after 9999) is clamped to the nearest one: it selects the same
/// events.
pub fn parse_time_param(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    let clamped = |v: &str| crate::event::parse_time_unbounded(v).map(|ms| ms.clamp(0, crate::event::MAX_TIME_MS));
    value
        .map(|v| {
            clamped(v).ok_or_else(|| {
                ApiError::bad_request(format!("`{name}` must be an RFC 3339 time or epoch milliseconds"))
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize, Debug)]
    struct Q {
        #[serde(default, deserialize_with = "super::int_param")]
        n: Option<i64>,
    }

    #[test]
    fn integer_query_parameters_take_integral_decimals_and_refuse_the_rest() {
        let q = |s: &str| super::parse_query::<Q>(s).map(|q| q.n).map_err(|e| e.message);
        assert_eq!(q("n=12"), Ok(Some(12)));
        assert_eq!(q("n=12.0"), Ok(Some(12)));
        assert_eq!(q("n=1e3"), Ok(Some(1000)));
        assert_eq!(q(""), Ok(None));
        assert_eq!(q("n=-9223372036854775808"), Ok(Some(i64::MIN)));
        for bad in ["n=1.5", "n=abc", "n=-9223372036854775809", "n=9223372036854775808", "n=1e19", "n=NaN"] {
            assert!(q(bad).is_err(), "{bad} was accepted");
        }
    }
}
