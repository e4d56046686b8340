//! `vigil verify --file` (an export checked offline against the public keys) and
//! `vigil integrity accept` (lift a hold, with a reason recorded in the chain).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use super::call::print_answer;
use super::*;
use crate::ledger::export::ExportReport;

/// `vigil verify --file`: checks an export offline; prints the JSON report on stdout (and a
/// summary and a progress bar on stderr when it is a terminal). Returns the exit status:
/// 0 ok, 1 failed, 3 unsigned tail.
pub fn verify_file(file: &Path, public_keys: &[String], json_only: bool) -> anyhow::Result<i32> {
    let verifier = parse_keys(public_keys)?;
    let (reader, total): (Box<dyn std::io::Read>, u64) = if file.as_os_str() == "-" {
        (Box::new(std::io::stdin().lock()), 0)
    } else {
        let f = std::fs::File::open(file).with_context(|| format!("open {}", file.display()))?;
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        (Box::new(f), len)
    };
    let bar = if json_only { indicatif::ProgressBar::hidden() } else { progress(total, "verifying") };
    let started = std::time::Instant::now();
    let report = crate::ledger::export::verify_export(reader, verifier, |read, events| {
        if total > 0 {
            bar.set_position(read);
            bar.set_message(format!("{events} events"));
        } else {
            bar.set_position(events);
        }
    })?;
    bar.finish_and_clear();
    println!("{}", serde_json::to_string_pretty(&report)?);
    if !json_only {
        let secs = started.elapsed().as_secs_f64();
        match &report {
            ExportReport::Log(r) => summary(r, secs, ""),
            ExportReport::Partitioned(all) => {
                eprintln!(
                    "{}: {} partition section(s), {} events, {} failure(s)",
                    all.status,
                    all.partitions.len(),
                    all.verified,
                    all.failure_count
                );
                for s in &all.partitions {
                    let name = s.partition.map_or("outside any partition: ".to_owned(), |p| format!("partition {p}: "));
                    summary(&s.report, secs, &name);
                }
            }
        }
    }
    Ok(match report.status() {
        "ok" => 0,
        "unsigned" => 3,
        _ => 1,
    })
}

/// The summary of one log's (or partition's) report on stderr, `name` before it.
fn summary(report: &crate::ledger::export::OfflineReport, secs: f64, name: &str) {
    eprintln!(
        "{name}{}: {} events checked in {secs:.1} s ({:.0} events/s), {} checkpoints valid, {} failure(s){}",
        report.status,
        report.verified,
        report.verified as f64 / secs.max(1e-6),
        report.checkpoints_checked,
        report.failure_count,
        report
            .unsigned
            .map_or(String::new(), |u| format!("; seqs {}..={} are not covered by any checkpoint", u.from, u.to)),
    );
    for f in report.failures.iter().take(20) {
        eprintln!("  {name}seq {}: {:?}: expected {}, found {}", f.seq, f.kind, f.expected, f.actual);
    }
}

/// The `--public-key` values (hex, base64, a file holding one, or the public-key endpoint's JSON).
pub(super) fn parse_keys(public_keys: &[String]) -> anyhow::Result<crate::ledger::keys::Verifier> {
    let mut keys = Vec::new();
    for given in public_keys {
        let text = match std::fs::read_to_string(given) {
            Ok(content) => content,
            Err(_) => given.clone(),
        };
        keys.extend(
            crate::ledger::keys::parse_public_key(&text).map_err(|e| anyhow::anyhow!("--public-key {given:?}: {e}"))?,
        );
    }
    Ok(crate::ledger::keys::Verifier::new(keys))
}

/// `vigil integrity accept`: `POST /v1/integrity/accept` on a running server.
pub async fn accept(reason: &str, url: &str, key: &str) -> anyhow::Result<()> {
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/integrity/accept", url.trim_end_matches('/')))
        .bearer_auth(key)
        .json(&serde_json::json!({"reason": reason}))
        .send()
        .await
        .with_context(|| format!("connect to {url}"))?;
    print_answer(resp, "accept").await
}

/// A progress bar (or, with `total` 0, a counter) on stderr when stderr is a terminal;
/// hidden otherwise, so scripts and logs see only the result.
pub fn progress(total: u64, message: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let (bar, template) = if total > 0 {
        (
            indicatif::ProgressBar::new(total),
            "{msg} [{bar:30}] {percent:>3}% {human_pos}/{human_len} {per_sec} eta {eta}",
        )
    } else {
        (indicatif::ProgressBar::new_spinner(), "{spinner} {msg} {human_pos} {per_sec} {elapsed}")
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("#>."));
    }
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// How long `vigil verify --url` waits, in all, for another large verification on the
/// server to end (the server answers 429 `verify_busy` meanwhile).
pub const VERIFY_BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// `vigil verify --url`: `GET /v1/integrity/verify` on a running server. Prints the JSON
/// report on stdout and a summary on stderr; returns the exit status: 0 ok, 1 failed
/// (a tail not yet signed is normal on a live server: the summary names it, the status is 0).
/// While the server runs another large verification (429), it says so and waits as the
/// server's `Retry-After` asks, for [`VERIFY_BUSY_WAIT`] at most.
pub async fn verify_server(
    url: &str,
    key: &str,
    from: Option<i64>,
    to: Option<i64>,
    json_only: bool,
) -> anyhow::Result<i32> {
    let mut query = Vec::new();
    query.extend(from.map(|f| format!("from={f}")));
    query.extend(to.map(|t| format!("to={t}")));
    let path = if query.is_empty() {
        "/v1/integrity/verify".into()
    } else {
        format!("/v1/integrity/verify?{}", query.join("&"))
    };
    let bar = if json_only { indicatif::ProgressBar::hidden() } else { progress(0, "verifying on the server") };
    let started = std::time::Instant::now();
    let call = Call { url: url.into(), key: key.into(), json: true, method: reqwest::Method::GET, path, body: None };
    let answer = verify_when_free(&call, &bar).await;
    bar.finish_and_clear();
    let report: serde_json::Value = serde_json::from_str(&answer?)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    if !json_only {
        eprintln!(
            "{}: seqs {}..={} ({} events) checked in {:.1} s, {} checkpoints valid, {} failure(s){}",
            report["status"].as_str().unwrap_or("?"),
            report["from"],
            report["to"],
            report["verified"],
            started.elapsed().as_secs_f64(),
            report["checkpoints_checked"],
            report["failure_count"],
            match (&report["unsigned"]["from"], &report["unsigned"]["to"]) {
                (serde_json::Value::Number(f), serde_json::Value::Number(t)) =>
                    format!("; seqs {f}..={t} are not signed yet (the next checkpoint signs them)"),
                _ => String::new(),
            },
        );
        for f in report["failures"].as_array().into_iter().flatten().take(20) {
            eprintln!("  seq {}: {}: expected {}, found {}", f["seq"], f["kind"], f["expected"], f["actual"]);
        }
    }
    Ok(if report["status"] == "ok" { 0 } else { 1 })
}

/// Sends the verification, waiting while the server answers 429 (another large one runs).
async fn verify_when_free(call: &Call, bar: &indicatif::ProgressBar) -> anyhow::Result<String> {
    let started = std::time::Instant::now();
    loop {
        let url = format!("{}{}", call.url.trim_end_matches('/'), call.path);
        let resp = reqwest::Client::new()
            .get(&url)
            .bearer_auth(&call.key)
            .send()
            .await
            .with_context(|| format!("connect to {}", call.url))?;
        if resp.status() != reqwest::StatusCode::TOO_MANY_REQUESTS {
            let status = resp.status();
            let text = resp.text().await?;
            if !status.is_success() {
                let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                let message = value["error"]["message"].as_str().map_or(text.clone(), str::to_owned);
                bail!("GET {} refused ({status}): {message}", call.path);
            }
            return Ok(text);
        }
        let wait = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(5)
            .clamp(1, 60);
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        let message = body["error"]["message"].as_str().unwrap_or("the server is busy").to_owned();
        if started.elapsed() + std::time::Duration::from_secs(wait) > VERIFY_BUSY_WAIT {
            bail!("{message} (waited {} s; try again later)", started.elapsed().as_secs());
        }
        bar.suspend(|| {
            eprintln!("The server is running another large verification ({message}); retrying in {wait} s");
        });
        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    }
}

/// `vigil events export`: streams `GET /v1/events/export` into `out` (or stdout with `-`),
/// with a byte counter on a terminal. Returns the bytes written.
pub async fn export(url: &str, key: &str, query: &str, out: &Path) -> anyhow::Result<u64> {
    use std::io::Write;
    let full =
        format!("{}/v1/events/export{}{query}", url.trim_end_matches('/'), if query.is_empty() { "" } else { "?" });
    let resp =
        reqwest::Client::new().get(&full).bearer_auth(key).send().await.with_context(|| format!("connect to {url}"))?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        bail!("export refused ({status}): {body}");
    }
    let mut sink: Box<dyn Write> = if out.as_os_str() == "-" {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::io::BufWriter::new(
            std::fs::File::create(out).with_context(|| format!("create {}", out.display()))?,
        ))
    };
    let bar = progress(0, "exporting");
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} {binary_bytes} {binary_bytes_per_sec} {elapsed}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let mut written = 0u64;
    let mut resp = resp;
    while let Some(chunk) =
        resp.chunk().await.context("the export stopped early (the server logs why); the file is incomplete")?
    {
        sink.write_all(&chunk)?;
        written += chunk.len() as u64;
        bar.set_position(written);
    }
    sink.flush()?;
    bar.finish_and_clear();
    Ok(written)
}

/// Filters of `vigil events tail` (those of `GET /v1/events`).
#[derive(Debug, Clone, Default)]
pub struct TailFilter {
    /// `(name, value)` query pairs.
    pub pairs: Vec<(&'static str, String)>,
}

/// `vigil events tail`: prints events stored after it started (or after `from_seq`) as they
/// arrive, oldest first, polling every `interval`; stops after `count` events when given.
/// Text lines, or one JSON object per line with `json`.
pub async fn tail(
    url: &str,
    key: &str,
    filter: &TailFilter,
    interval: std::time::Duration,
    count: Option<u64>,
    json: bool,
    mut emit: impl FnMut(String),
) -> anyhow::Result<()> {
    let call = |path: String| Call {
        url: url.into(),
        key: key.into(),
        json: true,
        method: reqwest::Method::GET,
        path,
        body: None,
    };
    let head: serde_json::Value = serde_json::from_str(&call("/v1/integrity/head".into()).answer().await?)?;
    let mut last = head["seq"].as_i64().unwrap_or(0);
    let base: Vec<String> = filter.pairs.iter().map(|(k, v)| format!("{k}={}", query_escape(v))).collect();
    let mut shown = 0u64;
    loop {
        // Newest first: page back until the events already shown, then print oldest first.
        let mut fresh = Vec::new();
        let mut cursor: Option<i64> = None;
        'pages: loop {
            let mut q = base.clone();
            q.push("limit=1000".into());
            q.extend(cursor.map(|c| format!("cursor={c}")));
            let page: serde_json::Value =
                serde_json::from_str(&call(format!("/v1/events?{}", q.join("&"))).answer().await?)?;
            let events = page["events"].as_array().cloned().unwrap_or_default();
            for e in events {
                if e["seq"].as_i64().unwrap_or(0) <= last {
                    break 'pages;
                }
                fresh.push(e);
            }
            match page["next_cursor"].as_str().and_then(|c| c.parse().ok()) {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        for e in fresh.into_iter().rev() {
            last = last.max(e["seq"].as_i64().unwrap_or(0));
            emit(if json { e.to_string() } else { tail_line(&e) });
            shown += 1;
            if count.is_some_and(|n| shown >= n) {
                return Ok(());
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// One event as a line of `vigil events tail`.
fn tail_line(e: &serde_json::Value) -> String {
    let s = |k: &str| e[k].as_str().unwrap_or("-").to_owned();
    format!(
        "{:>8}  {}  {:<8}  {}/{}  {:<7}  user={}  ip={}",
        e["seq"],
        s("timestamp"),
        s("severity"),
        s("category"),
        s("action"),
        s("outcome"),
        s("user_id"),
        s("ip")
    )
}
