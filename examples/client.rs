//! Smallest Vigil client: post one security event, then read it back.
//!
//! It teaches the two calls every integration needs: `POST /v1/events` (answers with the
//! `seq` the event got in the hash chain) and `GET /v1/events` with a filter (here the
//! `request_id` correlation id). The `details.password` shows masking: it comes back as
//! `[masked:...]`, because Vigil masks secrets before anything is stored. Reading back needs
//! a key with the `read` role (an `ingest` key can only post).
//!
//! Run with:
//! `cargo run -p vigil-examples --example client -- http://127.0.0.1:8080 $KEY`

use anyhow::{Context, bail};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // reqwest is built without a default TLS provider (the server picks ring): install it.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut args = std::env::args().skip(1);
    let base = args.next().unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let key = args.next().or_else(|| std::env::var("VIGIL_KEY").ok()).context("usage: client URL KEY")?;
    let base = base.trim_end_matches('/');
    let client = reqwest::Client::new();

    let request_id = format!("req-example-{}", std::process::id());
    let event = json!({
        "category": "authentication",
        "action": "login_failed",
        "outcome": "failure",
        "severity": "medium",
        "user_id": "alice",
        "ip": "203.0.113.9",
        "request_id": request_id,
        "source": "example-client",
        "details": {"password": "hunter2", "method": "password"},
    });
    let r = client.post(format!("{base}/v1/events")).bearer_auth(&key).json(&event).send().await?;
    let status = r.status();
    let body: Value = r.json().await?;
    if !status.is_success() {
        bail!("POST /v1/events: HTTP {status}: {body}");
    }
    println!("stored: {body}");

    let r = client.get(format!("{base}/v1/events?request_id={request_id}&limit=1")).bearer_auth(&key).send().await?;
    let status = r.status();
    let body: Value = r.json().await?;
    if !status.is_success() {
        bail!("GET /v1/events: HTTP {status}: {body}");
    }
    let stored = body["events"].get(0).context("event not found")?;
    println!("read back: {}", serde_json::to_string_pretty(stored)?);
    Ok(())
}
