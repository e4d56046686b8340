//! Demo app behind the Vigil bouncer: `GET /` answers `hello` unless a decision says no.
//!
//! Configured from the environment:
//!
//! - `VIGIL_URL` (default `http://127.0.0.1:8080`)
//! - `VIGIL_BOUNCER_KEY`: an API key with the role `bouncer` (required)
//! - `BOUNCER_FAIL_MODE`: `open` (default) or `closed`
//! - `BIND` (default `127.0.0.1:8081`)
//! - `BOUNCER_TRUST_FORWARDED_FOR`: `1` to take the client IP from `X-Forwarded-For` (only
//!   behind a proxy that sets it; default: the peer address)
//! - `BOUNCER_USER_HEADER` (default `x-user-id`; `-`: IP only). In this demo the client
//!   sends it itself; a real app sets it after authentication.
//! - `RUST_LOG` (default `info`)
//!
//! Run with: `VIGIL_BOUNCER_KEY=vgl_... cargo run -p vigil-bouncer --example demo`
//!
//! `GET /sensitive` shows `require_mfa`: it refuses with 401 when the request carries
//! [`MfaRequired`] (a real app would ask for a second factor instead).

use actix_web::{App, HttpResponse, HttpServer, web};
use vigil_bouncer::{Bouncer, BouncerConfig, FailMode, MfaRequired};

/// `GET /`.
async fn hello() -> &'static str {
    "hello"
}

/// `GET /sensitive`: needs MFA when a `require_mfa` decision applies.
async fn sensitive(mfa: Option<web::ReqData<MfaRequired>>) -> HttpResponse {
    if mfa.is_some() {
        return HttpResponse::Unauthorized().json(serde_json::json!({"error": "mfa_required"}));
    }
    HttpResponse::Ok().body("sensitive hello")
}

/// An environment variable, or `default` when unset or empty.
fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| default.to_owned())
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let api_key = std::env::var("VIGIL_BOUNCER_KEY")
        .ok()
        .filter(|k| !k.trim().is_empty())
        .ok_or_else(|| std::io::Error::other("set VIGIL_BOUNCER_KEY to an API key with the role bouncer"))?;
    let fail_mode: FailMode = env_or("BOUNCER_FAIL_MODE", "open").parse().map_err(std::io::Error::other)?;
    let bind = env_or("BIND", "127.0.0.1:8081");
    let user_header = env_or("BOUNCER_USER_HEADER", "x-user-id");

    let mut config = BouncerConfig::new(env_or("VIGIL_URL", "http://127.0.0.1:8080"), api_key);
    config.fail_mode = fail_mode;
    config.user_header = (user_header != "-").then_some(user_header);
    config.trust_forwarded_for = env_or("BOUNCER_TRUST_FORWARDED_FOR", "0") == "1";
    let bouncer = Bouncer::try_start(config).map_err(std::io::Error::other)?;

    tracing::info!(%bind, "demo app listening");
    HttpServer::new(move || {
        App::new()
            .wrap(bouncer.middleware())
            .route("/", web::get().to(hello))
            .route("/sensitive", web::get().to(sensitive))
    })
    .bind(&bind)?
    .run()
    .await
}
