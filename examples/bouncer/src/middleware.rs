//! The actix-web middleware: turns a [`Verdict`] into a response, or lets the request on.
//!
//! - block / lock → 403 `{"error":"blocked"}` (Vigil gives bouncers no reasons, so none
//!   reaches the client)
//! - throttle → 429 `{"error":"throttled","retry_after_secs":N}` with `Retry-After: N`
//! - require_mfa → passed on with the [`MfaRequired`] request extension
//! - unavailable → 503 `{"error":"unavailable"}` when failing closed, passed on when open

use std::future::{Future, Ready, ready};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{Error, HttpMessage, HttpRequest, HttpResponse};
use serde_json::json;
use time::OffsetDateTime;

use crate::{Bouncer, FailMode, Verdict};

/// Request extension set when a `require_mfa` decision applies to the request's IP or user.
/// The bouncer lets such a request through: the app decides what it means (ask for a second
/// factor at login, refuse a sensitive action, ...). Read it with
/// `req.extensions().get::<MfaRequired>()` or the extractor `Option<web::ReqData<MfaRequired>>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MfaRequired;

/// The middleware factory: `App::new().wrap(BouncerMiddleware::new(bouncer))`, or
/// [`Bouncer::middleware`].
#[derive(Debug, Clone)]
pub struct BouncerMiddleware {
    bouncer: Bouncer,
}

impl BouncerMiddleware {
    /// Enforces `bouncer`'s verdicts on every request of the wrapped service.
    pub fn new(bouncer: Bouncer) -> Self {
        BouncerMiddleware { bouncer }
    }
}

impl<S, B> Transform<S, ServiceRequest> for BouncerMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = BouncerService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(BouncerService { service, bouncer: self.bouncer.clone() }))
    }
}

/// The service [`BouncerMiddleware`] wraps around an app's service.
pub struct BouncerService<S> {
    service: S,
    bouncer: Bouncer,
}

impl<S, B> Service<ServiceRequest> for BouncerService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let verdict = self.bouncer.check_request(req.request(), OffsetDateTime::now_utc());
        let refusal = match verdict {
            Verdict::Allow => None,
            Verdict::RequireMfa => {
                req.extensions_mut().insert(MfaRequired);
                None
            }
            Verdict::Unavailable => match self.bouncer.fail_mode() {
                FailMode::Open => None,
                FailMode::Closed => {
                    tracing::debug!(path = req.path(), "refused: decisions unavailable (fail closed)");
                    Some(refusal(HttpResponse::ServiceUnavailable(), json!({"error": "unavailable"})))
                }
            },
            Verdict::Block { decision_id, .. } => {
                tracing::debug!(decision_id, path = req.path(), "refused: blocked");
                Some(refusal(HttpResponse::Forbidden(), json!({"error": "blocked"})))
            }
            Verdict::Throttle { retry_after_secs } => {
                tracing::debug!(retry_after_secs, path = req.path(), "refused: throttled");
                let mut builder = HttpResponse::TooManyRequests();
                builder.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
                Some(refusal(builder, json!({"error": "throttled", "retry_after_secs": retry_after_secs})))
            }
        };
        match refusal {
            Some(resp) => Box::pin(ready(Ok(req.into_response(resp).map_into_right_body()))),
            None => {
                let fut = self.service.call(req);
                Box::pin(async move { fut.await.map(ServiceResponse::map_into_left_body) })
            }
        }
    }
}

/// A JSON refusal that no cache keeps.
fn refusal(mut builder: actix_web::HttpResponseBuilder, body: serde_json::Value) -> HttpResponse {
    builder.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store"))).json(body)
}

/// The client IP: the first address of `X-Forwarded-For` when trusted and well-formed, the
/// peer address otherwise (`None` without one, e.g. on a Unix socket).
pub(crate) fn client_ip(req: &HttpRequest, trust_forwarded_for: bool) -> Option<IpAddr> {
    if trust_forwarded_for
        && let Some(ip) = req
            .headers()
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(parse_forwarded)
    {
        return Some(ip);
    }
    req.peer_addr().map(|addr| addr.ip())
}

/// One `X-Forwarded-For` element: an address, possibly with a port (`203.0.113.7:5555`,
/// `[2001:db8::1]:443`).
fn parse_forwarded(item: &str) -> Option<IpAddr> {
    let item = item.trim();
    item.parse::<IpAddr>().ok().or_else(|| item.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// A header's value as text: `None` when absent, empty or not visible ASCII.
pub(crate) fn header_value<'a>(req: &'a HttpRequest, name: &HeaderName) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn peer() -> SocketAddr {
        "192.0.2.1:40000".parse().unwrap()
    }

    #[test]
    fn client_ip_from_the_peer_unless_forwarded_for_is_trusted() {
        let req = TestRequest::default()
            .peer_addr(peer())
            .insert_header(("x-forwarded-for", "203.0.113.7, 10.0.0.1"))
            .to_http_request();
        assert_eq!(client_ip(&req, false), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(client_ip(&req, true), Some("203.0.113.7".parse().unwrap()));
    }

    #[test]
    fn forwarded_for_with_ports_or_garbage() {
        let ip = |h: &str| {
            let req = TestRequest::default().peer_addr(peer()).insert_header(("x-forwarded-for", h)).to_http_request();
            client_ip(&req, true).map(|ip| ip.to_string())
        };
        assert_eq!(ip("203.0.113.7:5555").as_deref(), Some("203.0.113.7"));
        assert_eq!(ip("[2001:db8::1]:443, 10.0.0.1").as_deref(), Some("2001:db8::1"));
        assert_eq!(ip(" 2001:db8::2 ").as_deref(), Some("2001:db8::2"));
        // Malformed: the peer address.
        assert_eq!(ip("unknown").as_deref(), Some("192.0.2.1"));
        assert_eq!(ip("").as_deref(), Some("192.0.2.1"));
        let req = TestRequest::default().to_http_request();
        assert_eq!(client_ip(&req, true), None);
    }

    #[test]
    fn header_value_skips_empty() {
        let name = HeaderName::from_static("x-user-id");
        let req = TestRequest::default().insert_header(("x-user-id", " alice ")).to_http_request();
        assert_eq!(header_value(&req, &name), Some("alice"));
        let req = TestRequest::default().insert_header(("x-user-id", "  ")).to_http_request();
        assert_eq!(header_value(&req, &name), None);
        assert_eq!(header_value(&TestRequest::default().to_http_request(), &name), None);
    }
}
