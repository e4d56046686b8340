//! The CLI's HTTP calls to a running server (`vigil events|alerts|decisions|keys ...`):
//! one request with the operator's key, the answer printed as a text table or JSON, and
//! query-string escaping.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use super::*;

/// Prints a server's answer, or fails with its status and body.
pub(super) async fn print_answer(resp: reqwest::Response, what: &str) -> anyhow::Result<()> {
    let status = resp.status();
    let body = resp.text().await?;
    if !status.is_success() {
        bail!("{what} refused ({status}): {body}");
    }
    println!("{body}");
    Ok(())
}

/// One request of a command that talks to a running server (`vigil keys create|list|revoke`,
/// `vigil alerts list|ack|resolve`, `vigil decisions list|check|add|lift`).
#[derive(Debug, Clone)]
pub struct Call {
    /// Server URL.
    pub url: String,
    /// API key.
    pub key: String,
    /// Print the server's JSON as is (`--output json`) instead of text.
    pub json: bool,
    /// HTTP method.
    pub method: reqwest::Method,
    /// Path and query.
    pub path: String,
    /// JSON body.
    pub body: Option<serde_json::Value>,
}

impl Call {
    /// Sends the request and prints the answer; fails (non-zero exit) with the server's
    /// error when it refuses.
    pub async fn run(&self) -> anyhow::Result<()> {
        println!("{}", self.answer().await?);
        Ok(())
    }

    /// The text `run` prints.
    pub async fn answer(&self) -> anyhow::Result<String> {
        let url = format!("{}{}", self.url.trim_end_matches('/'), self.path);
        let mut req = reqwest::Client::new().request(self.method.clone(), &url).bearer_auth(&self.key);
        if let Some(body) = &self.body {
            req = req.json(body);
        }
        let resp = req.send().await.with_context(|| format!("connect to {}", self.url))?;
        let status = resp.status();
        let text = resp.text().await?;
        let value: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text.clone()));
        if !status.is_success() {
            let message = value["error"]["message"].as_str().map_or(text.clone(), str::to_owned);
            bail!("{} {} refused ({status}): {message}", self.method, self.path);
        }
        if self.json {
            return Ok(serde_json::to_string_pretty(&value)?);
        }
        Ok(render_text(&value))
    }
}

/// The listings `render_text` knows: the member holding the rows and their columns (JSON
/// pointers into a row; the header is the pointer's last segment).
const LISTINGS: &[(&str, &[&str])] = &[
    ("keys", &["/id", "/name", "/role", "/created_at", "/revoked_at"]),
    ("alerts", &["/id", "/severity", "/status", "/count", "/rule", "/title", "/last_seen"]),
    (
        "rules",
        &["/name", "/kind", "/status", "/version", "/sha256", "/stats/events", "/stats/matches", "/stats/faults"],
    ),
    (
        "receivers",
        &["/name", "/kind", "/circuit/state", "/circuit/delivered", "/circuit/failed", "/circuit/last_error"],
    ),
    ("silences", &["/id", "/state", "/ends_at", "/created_by", "/matched", "/comment"]),
    ("decisions", &["/id", "/scope", "/value", "/kind", "/status", "/expires_at", "/actor", "/alert_id", "/reason"]),
];

/// Listings as aligned columns; single objects as `key: value` lines.
fn render_text(value: &serde_json::Value) -> String {
    // A listing is an object holding only its rows (and a cursor); a single alert also has
    // a `receivers` array, and is shown as `key: value` lines.
    let is_listing = |member: &str| {
        value.get(member).is_some_and(serde_json::Value::is_array)
            && value.as_object().is_some_and(|m| m.keys().all(|k| k == member || k == "next_cursor"))
    };
    let listing = LISTINGS.iter().find(|(member, _)| is_listing(member));
    let columns: &[&str] = listing.map_or(&[], |(_, c)| c);
    let rows = listing.and_then(|(member, _)| value[*member].as_array());
    let show = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "-".to_owned(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match rows {
        Some(rows) => {
            let null = serde_json::Value::Null;
            let cell = |r: &serde_json::Value, c: &str| show(r.pointer(c).unwrap_or(&null));
            let cells: Vec<Vec<String>> = rows.iter().map(|r| columns.iter().map(|c| cell(r, c)).collect()).collect();
            let header = |c: &str| c.rsplit('/').next().unwrap_or(c).to_uppercase();
            let widths: Vec<usize> = columns
                .iter()
                .enumerate()
                .map(|(i, c)| cells.iter().map(|r| r[i].chars().count()).chain([header(c).len()]).max().unwrap_or(0))
                .collect();
            let line = |cells: Vec<String>| {
                cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_owned()
            };
            let mut out = vec![line(columns.iter().map(|c| header(c)).collect())];
            out.extend(cells.into_iter().map(line));
            if rows.is_empty() {
                out.push("(none)".into());
            }
            out.join("\n")
        }
        None => match value.as_object() {
            Some(map) => map.iter().map(|(k, v)| format!("{k}: {}", show(v))).collect::<Vec<_>>().join("\n"),
            None => show(value),
        },
    }
}

/// Percent-encodes a query or path value.
pub fn query_escape(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
