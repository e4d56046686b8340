//! The command line's work: `vigil verify --file` (offline export check), `vigil integrity
//! accept`, and the rule author's `vigil rules new | build | test | deploy | backtest`.
//! `new` scaffolds a rule crate on `vigil-sdk`; `build` and `test` run cargo for it (wasm32
//! release build / native tests); `deploy` uploads a module with `PUT /v1/rules/{name}`;
//! `backtest` runs a module over stored history and prints the alerts it would have raised,
//! writing nothing. `vigil config init` writes the commented reference configuration;
//! `vigil config check` prints what a validated configuration resolves to.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::detect::Evaluator;
use crate::detect::replay::for_each_chunk;
use crate::store::Store;

/// Where the SDK of this source tree lives (used by `rules new` when it still exists).
const SDK_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk");

/// `vigil rules new <name>`: creates `<dir>/<name>/` with a compiling, tested rule.
pub fn new_rule(name: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    if !(1..=64).contains(&name.len())
        || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        bail!("rule names match [a-z0-9_]{{1,64}} (the name is also the crate name and the alerts' `rule`)");
    }
    let root = dir.join(name);
    if root.exists() {
        bail!("{} already exists", root.display());
    }
    let sdk = std::env::var("VIGIL_SDK_PATH").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from(SDK_DIR));
    let sdk_dep = match sdk.canonicalize() {
        Ok(path) => format!("vigil-sdk = {{ path = {:?} }}", path.display().to_string()),
        Err(_) => format!("vigil-sdk = \"{}\"", env!("CARGO_PKG_VERSION")),
    };
    std::fs::create_dir_all(root.join("src"))?;
    std::fs::create_dir_all(root.join(".cargo"))?;
    std::fs::write(
        root.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
             [lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n\n[dependencies]\n{sdk_dep}\n\n\
             # Its own workspace, so it builds wherever it is placed.\n[workspace]\n\n\
             [profile.release]\npanic = \"abort\"\nopt-level = \"s\"\nlto = true\ncodegen-units = 1\n\n\
             [profile.dev]\npanic = \"abort\"\n"
        ),
    )?;
    std::fs::write(
        root.join(".cargo/config.toml"),
        "[alias]\nwasm = \"build --release --target wasm32-unknown-unknown\"\n",
    )?;
    let type_name: String = name
        .split('_')
        .filter(|p| !p.is_empty())
        .map(|p| p[..1].to_ascii_uppercase() + &p[1..])
        .collect::<String>()
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .to_owned();
    let type_name = if type_name.is_empty() { "MyRule".to_owned() } else { type_name };
    std::fs::write(root.join("src/lib.rs"), RULE_TEMPLATE.replace("{name}", name).replace("{Type}", &type_name))?;
    Ok(root)
}

const RULE_TEMPLATE: &str = r##"//! `{name}`: a Vigil detection rule. Fires when one user fails to log in more than
//! `threshold` times in 10 minutes. Edit `manifest`, `init` and `evaluate`, then:
//! `vigil rules test`, `vigil rules build`, `vigil rules deploy target/wasm32-unknown-unknown/release/{name}.wasm`.

use vigil_sdk::{Alert, Config, Context, Event, Manifest, Rule, Severity, Subscription};

/// The rule and its configuration.
pub struct {Type} {
    threshold: i64,
}

impl Rule for {Type} {
    fn manifest() -> Manifest {
        Manifest::detection(env!("CARGO_PKG_NAME"))
            .version(env!("CARGO_PKG_VERSION"))
            .description("Many failed logins for one user in 10 minutes")
            .severity(Severity::P3)
            .mitre(["T1110"])
            .fields(["user_id", "ip"])
            .subscribe(Subscription::action("login_failed"))
            .windows_ms([600_000])
    }

    fn init(config: &Config) -> Result<Self, String> {
        config.deny_unknown(&["threshold"])?;
        Ok({Type} { threshold: config.i64_or("threshold", 10)? })
    }

    fn evaluate(&mut self, ev: &Event<'_>, ctx: &mut Context) -> bool {
        let Some(user) = ev.user_id() else { return false };
        let count = ctx.window("10m").add(format!("user:{user}"), 1);
        if count == self.threshold + 1 {
            ctx.emit(
                Alert::new(format!("{count} failed logins for {user} in 10 minutes"))
                    .dedup_key(format!("user:{user}"))
                    .field("user_id", user)
                    .field("count", count)
                    .action("Check the account for credential stuffing"),
            );
        }
        true
    }
}

vigil_sdk::export_rule!({Type});

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_sdk::testing::{Harness, TestEvent};

    fn fail(user: &str, t: i64) -> TestEvent {
        TestEvent::new("authentication", "login_failed").user(user).ip("192.0.2.1").at_ms(t)
    }

    #[test]
    fn fires_once_past_the_threshold() {
        let mut h = Harness::<{Type}>::new().config(r#"{"threshold": 3}"#);
        let alerts = h.run((0..6).map(|i| fail("alice", i * 1000)));
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].dedup_key.as_deref(), Some("user:alice"));
    }

    #[test]
    fn failures_spread_past_the_window_do_not_fire() {
        let mut h = Harness::<{Type}>::new().config(r#"{"threshold": 3}"#);
        let alerts = h.run((0..6).map(|i| fail("alice", i * 300_000)));
        assert!(alerts.is_empty());
    }
}
"##;

fn cargo(dir: &Path, target_dir: Option<&Path>, args: &[&str]) -> anyhow::Result<()> {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(dir).args(args);
    if let Some(target) = target_dir {
        cmd.arg("--target-dir").arg(target);
    }
    let status = cmd.status().context("run cargo (is the Rust toolchain installed?)")?;
    if !status.success() {
        bail!("cargo {} failed in {}", args.join(" "), dir.display());
    }
    Ok(())
}

/// `vigil rules build`: release build for wasm32 (into `target_dir`, default `<dir>/target`);
/// prints each module with its SHA-256.
pub fn build(dir: &Path, target_dir: Option<&Path>) -> anyhow::Result<()> {
    cargo(dir, target_dir, &["build", "--release", "--target", "wasm32-unknown-unknown"])?;
    let out = target_dir.map_or_else(|| dir.join("target"), Path::to_path_buf).join("wasm32-unknown-unknown/release");
    for entry in std::fs::read_dir(&out).with_context(|| format!("read {}", out.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "wasm") {
            let bytes = std::fs::read(&path)?;
            println!("{}  {} ({} bytes)", hex::encode(Sha256::digest(&bytes)), path.display(), bytes.len());
        }
    }
    Ok(())
}

/// `vigil rules test`: the crate's native tests.
pub fn test(dir: &Path, target_dir: Option<&Path>) -> anyhow::Result<()> {
    cargo(dir, target_dir, &["test"])
}

/// `vigil rules deploy`: uploads a module; the rule name comes from `--name` or the file stem.
pub async fn deploy(file: &Path, name: Option<String>, url: &str, key: &str) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("read {}", file.display()))?;
    let name = match name {
        Some(n) => n,
        None => {
            file.file_stem().and_then(|s| s.to_str()).context("cannot take a rule name from the file name")?.to_owned()
        }
    };
    let resp = reqwest::Client::new()
        .put(format!("{}/v1/rules/{name}", url.trim_end_matches('/')))
        .bearer_auth(key)
        .header("content-type", "application/wasm")
        .body(bytes)
        .send()
        .await
        .with_context(|| format!("connect to {url}"))?;
    print_answer(resp, "deploy").await
}

/// `vigil rules backtest`: evaluates `file` over stored events with event time in
/// `[since, until)` and returns how many events were evaluated and the alerts it would have
/// raised (as JSON objects). Nothing is written to the database.
pub async fn backtest(
    file: &Path,
    since: i64,
    until: Option<i64>,
    config: Config,
) -> anyhow::Result<(u64, Vec<serde_json::Value>)> {
    let bytes = std::fs::read(file).with_context(|| format!("read {}", file.display()))?;
    let store = Store::open(&config.database_url).await?;
    let registry = Arc::new(crate::deploy::build_registry(&config, None, Default::default())?);
    let rule = tokio::task::block_in_place(|| registry.deploy(&bytes, None, "backtest"))?;
    eprintln!(
        "Backtesting {} {} (sha256 {}) from {}",
        rule.name,
        rule.version,
        rule.sha256,
        crate::event::format_rfc3339_ms(since)
    );
    let mut evaluator = Evaluator::new(registry);
    let head = store.head().await?.seq;
    let from = store.first_seq_since(since).await?.unwrap_or(head + 1);
    let until = until.unwrap_or(i64::MAX);
    let mut raised = Vec::new();
    let mut seen = 0;
    let bar = progress(u64::try_from(head - from + 1).unwrap_or(0), "backtesting");
    for_each_chunk(&store, from, head, since, |mut events| {
        if let Some(last) = events.last() {
            bar.set_position(u64::try_from(last.seq - from + 1).unwrap_or(0));
        }
        events.retain(|e| e.event.get("timestamp").and_then(serde_json::Value::as_i64).is_some_and(|t| t < until));
        seen += events.len() as u64;
        let out = tokio::task::block_in_place(|| evaluator.evaluate(&mut events));
        for a in out.alerts {
            raised.push(serde_json::json!({
                "rule": a.rule, "rule_version": a.rule_version, "rule_sha256": a.rule_sha256,
                "severity": a.alert.severity, "title": a.alert.title, "dedup_key": a.alert.dedup_key,
                "at": crate::event::format_rfc3339_ms(a.at), "event_seqs": a.alert.event_seqs,
                "fields": a.alert.fields, "actions": a.alert.actions,
            }));
        }
        for q in out.quarantined {
            eprintln!("The rule faulted repeatedly and was stopped: {}", q.reason);
        }
    })
    .await?;
    bar.finish_and_clear();
    Ok((seen, raised))
}

/// `vigil verify --file`: checks an export offline; prints the JSON report on stdout (and a
/// summary and a progress bar on stderr when it is a terminal). Returns the exit status:
/// 0 ok, 1 failed, 3 unsigned tail.
pub fn verify_file(file: &Path, public_keys: &[String], json_only: bool) -> anyhow::Result<i32> {
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
    let verifier = crate::ledger::keys::Verifier::new(keys);
    let (reader, total): (Box<dyn std::io::Read>, u64) = if file.as_os_str() == "-" {
        (Box::new(std::io::stdin().lock()), 0)
    } else {
        let f = std::fs::File::open(file).with_context(|| format!("open {}", file.display()))?;
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        (Box::new(f), len)
    };
    let bar = if json_only { indicatif::ProgressBar::hidden() } else { progress(total, "verifying") };
    let started = std::time::Instant::now();
    let report = crate::ledger::export::verify_reader(reader, verifier, |read, events| {
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
        eprintln!(
            "{}: {} events checked in {secs:.1} s ({:.0} events/s), {} checkpoints valid, {} failure(s){}",
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
            eprintln!("  seq {}: {:?}: expected {}, found {}", f.seq, f.kind, f.expected, f.actual);
        }
    }
    Ok(match report.status {
        "ok" => 0,
        "unsigned" => 3,
        _ => 1,
    })
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

/// Prints a server's answer, or fails with its status and body.
async fn print_answer(resp: reqwest::Response, what: &str) -> anyhow::Result<()> {
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

/// The commented reference configuration (every key with its default and meaning).
pub const REFERENCE_CONFIG: &str = include_str!("../../vigil.example.toml");

/// `vigil config init`: writes [`REFERENCE_CONFIG`] to `path`, refusing to replace a file
/// unless `force`.
pub fn config_init(path: &Path, force: bool) -> anyhow::Result<()> {
    if path.exists() && !force {
        bail!("{} exists; pass --force to replace it", path.display());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    std::fs::write(path, REFERENCE_CONFIG).with_context(|| format!("write {}", path.display()))?;
    println!(
        "wrote {} (every key commented with its default; edit, then `vigil config check --config {}`)",
        path.display(),
        path.display()
    );
    Ok(())
}

/// What `vigil config check` prints for a valid configuration: where the server would
/// listen, which database (without its password), directories, and the configured
/// receivers and policies. Secrets are never printed.
pub fn config_summary(config: &Config) -> String {
    let database = redact_url(&config.database_url);
    let receivers: Vec<String> = config.receivers.iter().map(|r| format!("{} ({})", r.name, r.kind)).collect();
    let policies: Vec<String> = config
        .escalation
        .iter()
        .map(|p| p.name.clone().or_else(|| p.severity.clone()).unwrap_or_else(|| "(unnamed)".into()))
        .collect();
    format!(
        "configuration ok\n  listen        {}\n  database      {database}\n  data_dir      {}\n  rules_dir     {}\n  \
         retention     {} days\n  admin key     {}\n  receivers     {}\n  escalation    {}",
        config.listen,
        config.data_dir.display(),
        config.rules_dir.as_ref().map_or("(none)".into(), |d| d.display().to_string()),
        config.retention_days,
        if config.admin_key.is_some() { "from VIGIL_ADMIN_KEY" } else { "(none: stored keys only)" },
        if receivers.is_empty() { "(none)".into() } else { receivers.join(", ") },
        if policies.is_empty() { "(none)".into() } else { policies.join(", ") },
    )
}

/// A database URL with any password replaced by `***`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn database_passwords_are_not_printed() {
        assert_eq!(redact_url("postgres://vigil:s3cret@db:5432/vigil"), "postgres://vigil:***@db:5432/vigil");
        assert_eq!(redact_url("postgres://vigil@db/vigil"), "postgres://vigil@db/vigil");
        assert_eq!(redact_url("sqlite://data/vigil.db"), "sqlite://data/vigil.db");
    }
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

/// `vigil verify --url`: `GET /v1/integrity/verify` on a running server. Prints the JSON
/// report on stdout and a summary on stderr; returns the exit status: 0 ok, 1 failed
/// (a tail not yet signed is normal on a live server: the summary names it, the status is 0).
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
    let answer = Call { url: url.into(), key: key.into(), json: true, method: reqwest::Method::GET, path, body: None }
        .answer()
        .await;
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
