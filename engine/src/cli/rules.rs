//! The rule author's commands: `vigil rules new` (scaffold a crate on `vigil-sdk` from a
//! template with a passing test), `build` and `test` (cargo for wasm32 / native), `deploy`
//! (`PUT /v1/rules/{name}`) and `backtest` (a module over stored history, writing nothing).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use super::call::print_answer;
use super::*;

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
    let cwd = std::env::current_dir().unwrap_or_default();
    let env = std::env::var_os("VIGIL_SDK_PATH").map(PathBuf::from);
    let (sdk, how) = find_sdk(env.as_deref(), dir, &cwd, Path::new(SDK_DIR))?;
    let sdk_dep = format!("vigil-sdk = {{ path = {:?} }}", sdk.display().to_string());
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
    eprintln!(
        "Using vigil-sdk at {} ({how}).\nTo use another checkout, set VIGIL_SDK_PATH=/path/to/vigil/sdk before \
         `vigil rules new`, or edit the `vigil-sdk` line of {}.",
        sdk.display(),
        root.join("Cargo.toml").display()
    );
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

/// Whether `dir` holds the `vigil-sdk` crate (its Cargo.toml names the package).
fn is_sdk(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml"))
        .is_ok_and(|t| t.lines().any(|l| l.replace(' ', "") == "name=\"vigil-sdk\""))
}

/// The SDK a new rule crate depends on, and how it was found: `VIGIL_SDK_PATH` (which must
/// hold the SDK), else the nearest checkout above the target directory, then above the
/// current directory (a `sdk/` holding `vigil-sdk`, or a `vigil-sdk` crate itself), else
/// the tree this binary was built from when it still exists. The project publishes no
/// crate and has no public repository to name, so there is no other fallback: the error
/// says how to point at a checkout.
pub(super) fn find_sdk(
    env: Option<&Path>,
    target: &Path,
    cwd: &Path,
    built_from: &Path,
) -> anyhow::Result<(PathBuf, String)> {
    if let Some(path) = env.filter(|p| !p.as_os_str().is_empty()) {
        if !is_sdk(path) {
            bail!(
                "VIGIL_SDK_PATH={} does not hold the vigil-sdk crate (no Cargo.toml naming `vigil-sdk`); point it \
                 at the sdk/ directory of a Vigil checkout",
                path.display()
            );
        }
        return Ok((path.canonicalize()?, "from VIGIL_SDK_PATH".into()));
    }
    let target = if target.is_absolute() { target.to_path_buf() } else { cwd.join(target) };
    for (start, what) in [(&target, "the target directory"), (&cwd.to_path_buf(), "the current directory")] {
        for dir in start.ancestors() {
            for candidate in [dir.join("sdk"), dir.to_path_buf()] {
                if is_sdk(&candidate) {
                    let found = candidate.canonicalize()?;
                    return Ok((found, format!("the nearest Vigil checkout above {what}")));
                }
            }
        }
    }
    if is_sdk(built_from) {
        return Ok((built_from.canonicalize()?, "the source tree this vigil binary was built from".into()));
    }
    bail!(
        "cannot find the vigil-sdk crate: VIGIL_SDK_PATH is not set, no Vigil checkout (a sdk/ directory holding \
         vigil-sdk) is above {} or {}, and the tree this binary was built from ({}) is gone. Clone Vigil and set \
         VIGIL_SDK_PATH=/path/to/vigil/sdk",
        target.display(),
        cwd.display(),
        built_from.display()
    )
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
    upload(bytes, &name, "application/wasm", url, key).await
}

/// `PUT /v1/rules/{name}`, retrying while the server compiles another rule.
async fn upload(bytes: Vec<u8>, name: &str, content_type: &str, url: &str, key: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    // The server compiles one module at a time and answers 429 (with Retry-After) while
    // another compiles: wait and try again, a bounded number of times.
    let mut attempt = 0;
    loop {
        attempt += 1;
        let resp = client
            .put(format!("{}/v1/rules/{name}", url.trim_end_matches('/')))
            .bearer_auth(key)
            .header("content-type", content_type)
            .body(bytes.clone())
            .send()
            .await
            .with_context(|| format!("connect to {url}"))?;
        if resp.status() != reqwest::StatusCode::TOO_MANY_REQUESTS || attempt >= 30 {
            return print_answer(resp, "deploy").await;
        }
        let wait = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(1)
            .clamp(1, 10);
        eprintln!("The server is compiling another module; retrying in {wait} s");
        tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    }
}

/// The Sigma deployments of `files`: with `name`, all files joined (as YAML documents) into
/// one deployment of that name, so correlations may name rules of other files; without,
/// one deployment per file, named after its stem.
pub fn sigma_deployments(files: &[PathBuf], name: Option<&str>) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let read = |f: &PathBuf| std::fs::read(f).with_context(|| format!("read {}", f.display()));
    match name {
        Some(name) => {
            let mut text = Vec::new();
            for f in files {
                if !text.is_empty() {
                    text.extend_from_slice(b"\n---\n");
                }
                text.extend(read(f)?);
            }
            Ok(vec![(name.to_owned(), text)])
        }
        None => files
            .iter()
            .map(|f| {
                let stem =
                    f.file_stem().and_then(|s| s.to_str()).context("cannot take a rule name from the file name")?;
                Ok((crate::rules::sigma::name_from_file(stem), read(f)?))
            })
            .collect(),
    }
}

/// `vigil rules sigma check`: compiles each deployment with the embedded evaluator, as the
/// server would, without a server. Returns one JSON object per deployment (its manifest, or
/// the refusal) and whether all were accepted.
pub fn sigma_check(files: &[PathBuf], name: Option<&str>) -> anyhow::Result<(Vec<serde_json::Value>, bool)> {
    let registry = crate::deploy::build_registry(&Config::default(), None, Default::default())?;
    let mut out = Vec::new();
    let mut ok = true;
    for (name, text) in sigma_deployments(files, name)? {
        match registry.prepare_as(&text, Some(&name), crate::rules::RuleFormat::Sigma) {
            Ok(p) => {
                let manifest = crate::rules::manifest_json(p.manifest());
                out.push(
                    serde_json::json!({"name": name, "ok": true, "version": p.version(), "sha256": p.sha256_hex(),
                    "manifest": manifest}),
                );
            }
            Err(e) => {
                ok = false;
                out.push(serde_json::json!({"name": name, "ok": false, "error": e.to_string()}));
            }
        }
    }
    Ok((out, ok))
}

/// `vigil rules sigma deploy`: uploads each deployment (`Content-Type: application/yaml`).
pub async fn sigma_deploy(files: &[PathBuf], name: Option<&str>, url: &str, key: &str) -> anyhow::Result<()> {
    for (name, text) in sigma_deployments(files, name)? {
        upload(text, &name, "application/yaml", url, key).await?;
    }
    Ok(())
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
    if let Some(path) = Store::sqlite_path(&config.database_url)
        && !path.is_file()
    {
        let shown = std::path::absolute(&path).unwrap_or(path);
        bail!(
            "no database at {} (from database_url {:?}); backtest reads the server's stored events and creates \
             nothing. Point it at the server's database with --database-url sqlite:///path/to/vigil.db (or \
             VIGIL_DATABASE_URL, or --config with the server's configuration file), or run it from the server's \
             directory",
            shown.display(),
            config.database_url
        );
    }
    let store = Store::open_read_only(&config.database_url)
        .await
        .with_context(|| format!("open the database {} read-only", redact_url(&config.database_url)))?;
    let registry = Arc::new(crate::deploy::build_registry(&config, None, Default::default())?);
    // A Sigma file is named after its stem, as the rules directory names it.
    let name = match crate::rules::RuleFormat::detect(&bytes) {
        crate::rules::RuleFormat::Sigma => {
            file.file_stem().map(|s| crate::rules::sigma::name_from_file(&s.to_string_lossy()))
        }
        crate::rules::RuleFormat::Wasm => None,
    };
    let rule = tokio::task::block_in_place(|| registry.deploy(&bytes, name.as_deref(), "backtest"))?;
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
        events.retain(|e| e.event().get("timestamp").and_then(serde_json::Value::as_i64).is_some_and(|t| t < until));
        seen += events.len() as u64;
        let out = tokio::task::block_in_place(|| evaluator.evaluate(&mut events));
        for a in out.alerts {
            raised.push(serde_json::json!({
                "rule": a.rule, "rule_version": a.rule_version, "rule_sha256": a.rule_sha256,
                "severity": a.alert.severity.as_str(), "title": a.alert.title, "dedup_key": a.alert.dedup_key,
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

#[cfg(test)]
mod sdk_tests {
    use super::*;

    #[test]
    fn the_sdk_is_found_from_the_environment_a_checkout_or_not_at_all() {
        let tmp = std::env::temp_dir().join(format!("vigil-sdk-find-{}", uuid::Uuid::now_v7().simple()));
        let checkout = tmp.join("checkout");
        std::fs::create_dir_all(checkout.join("sdk")).unwrap();
        std::fs::write(checkout.join("sdk/Cargo.toml"), "[package]\nname = \"vigil-sdk\"\n").unwrap();
        let elsewhere = tmp.join("elsewhere/rules");
        std::fs::create_dir_all(&elsewhere).unwrap();
        let gone = tmp.join("gone/sdk");

        // Nothing anywhere: the error names VIGIL_SDK_PATH.
        let err = find_sdk(None, &elsewhere, &elsewhere, &gone).unwrap_err().to_string();
        assert!(err.contains("VIGIL_SDK_PATH") && err.contains("cannot find"), "{err}");
        // A wrong VIGIL_SDK_PATH is refused, naming it.
        let err = find_sdk(Some(&elsewhere), &elsewhere, &elsewhere, &gone).unwrap_err().to_string();
        assert!(err.contains("VIGIL_SDK_PATH="), "{err}");
        // The variable wins.
        let (sdk, how) = find_sdk(Some(&checkout.join("sdk")), &elsewhere, &elsewhere, &gone).unwrap();
        assert_eq!(sdk, checkout.join("sdk").canonicalize().unwrap());
        assert!(how.contains("VIGIL_SDK_PATH"));
        // A rule made inside a checkout (or from a shell in one) uses that checkout.
        let (sdk, how) = find_sdk(None, &checkout.join("my-rules"), &elsewhere, &gone).unwrap();
        assert_eq!(sdk, checkout.join("sdk").canonicalize().unwrap());
        assert!(how.contains("target directory"), "{how}");
        let (_, how) = find_sdk(None, &elsewhere, &checkout.join("sdk/src"), &gone).unwrap();
        assert!(how.contains("current directory"), "{how}");
        // The build tree, last, only while it exists.
        let (sdk, how) = find_sdk(None, &elsewhere, &elsewhere, &checkout.join("sdk")).unwrap();
        assert_eq!(sdk, checkout.join("sdk").canonicalize().unwrap());
        assert!(how.contains("built from"), "{how}");
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
