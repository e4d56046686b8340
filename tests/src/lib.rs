//! Test support: `spawn_app(backend)` starts the real Vigil server in-process on port 0
//! against a fresh database (a new SQLite file in a temp dir, or a new schema in the real
//! PostgreSQL at 127.0.0.1:5432), with a known admin key, and gives an HTTP client for it.
//! `both_backends!` turns one async test body into a SQLite test and a PostgreSQL test.

pub mod mmdb;
pub mod pg;
pub mod receiver;
pub mod s3;

use std::path::PathBuf;

use anyhow::Context;
use serde_json::Value;
use vigil::app::RunningServer;
use vigil::config::Config;

/// Where PostgreSQL tests connect (override with `VIGIL_TEST_PG`).
pub fn pg_base_url() -> String {
    std::env::var("VIGIL_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// The real PostgreSQL server.
    Postgres,
}

/// A running server plus what a test needs to talk to it.
pub struct TestApp {
    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub base: String,
    /// The admin key.
    pub admin_key: String,
    /// HTTP client.
    pub client: reqwest::Client,
    /// The database URL the server uses.
    pub database_url: String,
    /// The backend.
    pub backend: Backend,
    /// The server.
    pub server: RunningServer,
    /// Temp dir with the SQLite file and key files.
    pub dir: PathBuf,
    /// The configuration the server was started with.
    pub config: Config,
    schema: Option<String>,
}

/// The admin key every test server is started with.
pub const ADMIN_KEY: &str = "vgl_test_admin_key_0123456789abcdef";

/// Starts a server with default settings on a fresh database.
pub async fn spawn_app(backend: Backend) -> anyhow::Result<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// Starts a server after letting the test adjust the config.
pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> anyhow::Result<TestApp> {
    spawn_on(backend, &pg_base_url(), adjust).await
}

/// Starts a server on a fresh schema of the PostgreSQL database at `pg_url` (a
/// [`pg::PrivatePostgres`] for tests that stop the database).
pub async fn spawn_app_on_pg(pg_url: &str, adjust: impl FnOnce(&mut Config)) -> anyhow::Result<TestApp> {
    spawn_on(Backend::Postgres, pg_url, adjust).await
}

async fn spawn_on(backend: Backend, pg_url: &str, adjust: impl FnOnce(&mut Config)) -> anyhow::Result<TestApp> {
    vigil::telemetry::init_test_logging();
    vigil::app::install_tls();
    let id = uuid::Uuid::now_v7().simple().to_string();
    let dir = std::env::temp_dir().join(format!("vigil-test-{id}"));
    std::fs::create_dir_all(&dir)?;
    let (database_url, schema) = match backend {
        Backend::Sqlite => (format!("sqlite://{}", dir.join("vigil.db").display()), None),
        Backend::Postgres => {
            let schema = format!("vigil_t_{id}");
            let mut conn = connect_pg(pg_url).await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&mut conn).await?;
            (format!("{pg_url}?options[search_path]={schema}"), Some(schema))
        }
    };
    let mut config = Config {
        listen: "127.0.0.1:0".parse()?,
        database_url: database_url.clone(),
        data_dir: dir.clone(),
        workers: 2,
        admin_key: Some(ADMIN_KEY.into()),
        ..Config::default()
    };
    adjust(&mut config);
    let database_url = config.database_url.clone();
    let server = vigil::app::start(config.clone()).await.context("server start")?;
    Ok(TestApp {
        base: format!("http://{}", server.addr),
        admin_key: ADMIN_KEY.into(),
        client: reqwest::Client::new(),
        database_url,
        backend,
        server,
        dir,
        config,
        schema,
    })
}

/// A direct PostgreSQL connection (as the superuser, bypassing the server).
pub async fn connect_pg(url: &str) -> anyhow::Result<sqlx::PgConnection> {
    use sqlx::Connection;
    sqlx::PgConnection::connect(url).await.with_context(|| "connect to PostgreSQL at 127.0.0.1:5432 (is it running?)")
}

impl TestApp {
    /// Stops the server and starts a new one on the same database, data dir and config
    /// (on a new port).
    pub async fn restart(self) -> anyhow::Result<TestApp> {
        self.restart_after(|| {}).await
    }

    /// Stops the server, runs `while_down` (e.g. moves a manual clock: what happens while
    /// no server runs), and starts a new one on the same database, data dir and config.
    pub async fn restart_after(mut self, while_down: impl FnOnce()) -> anyhow::Result<TestApp> {
        self.server.shutdown().await;
        while_down();
        let mut config = self.config.clone();
        config.listen = "127.0.0.1:0".parse()?;
        let server = vigil::app::start(config.clone()).await.context("server restart")?;
        let schema = self.schema.take();
        let dir = std::mem::replace(&mut self.dir, PathBuf::from("/nonexistent-vigil-test-dir"));
        Ok(TestApp {
            base: format!("http://{}", server.addr),
            admin_key: self.admin_key.clone(),
            client: reqwest::Client::new(),
            database_url: self.database_url.clone(),
            backend: self.backend,
            server,
            dir,
            config,
            schema,
        })
    }

    /// Stops this server the way `kill -9` would (nothing signed, flushed or shut down;
    /// the writer lock released as the kernel would) and starts a new one on the same
    /// database and data dir: what a new process sees after a crash.
    pub async fn start_beside(mut self) -> anyhow::Result<TestApp> {
        self.server.crash().await;
        let mut config = self.config.clone();
        config.listen = "127.0.0.1:0".parse()?;
        let server = vigil::app::start(config.clone()).await.context("second server start")?;
        let schema = self.schema.take();
        let dir = std::mem::replace(&mut self.dir, PathBuf::from("/nonexistent-vigil-test-dir"));
        std::mem::forget(self);
        Ok(TestApp {
            base: format!("http://{}", server.addr),
            admin_key: ADMIN_KEY.into(),
            client: reqwest::Client::new(),
            database_url: config.database_url.clone(),
            backend: if config.database_url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::Postgres },
            server,
            dir,
            config,
            schema,
        })
    }

    /// (name, sha256, status) of every row of the `rules` table, read directly.
    pub async fn stored_rules(&self) -> anyhow::Result<Vec<(String, String, String)>> {
        use sqlx::{Connection, Row};
        let sql = "SELECT name, sha256, status FROM rules ORDER BY name";
        let rows: Vec<(String, String, String)> = match self.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.database_url).await?;
                let rows = sqlx::query(sql).fetch_all(&mut conn).await?;
                rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.database_url).await?;
                let rows = sqlx::query(sql).fetch_all(&mut conn).await?;
                rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
            }
        };
        Ok(rows)
    }

    /// Overwrites the stored module bytes of rule `name` directly in the database (as an
    /// attacker with write access to it would), leaving the recorded SHA-256 as it is.
    pub async fn tamper_stored_rule(&self, name: &str, module: &[u8]) -> anyhow::Result<()> {
        use sqlx::Connection;
        match self.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.database_url).await?;
                sqlx::query("UPDATE rules SET module = ? WHERE name = ?")
                    .bind(module.to_vec())
                    .bind(name)
                    .execute(&mut conn)
                    .await?;
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.database_url).await?;
                sqlx::query("UPDATE rules SET module = $1 WHERE name = $2")
                    .bind(module.to_vec())
                    .bind(name)
                    .execute(&mut conn)
                    .await?;
            }
        }
        Ok(())
    }

    /// URL of a path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POST JSON to /v1/events with the admin key; returns (status, body).
    pub async fn post_events(&self, body: &Value) -> anyhow::Result<(u16, Value)> {
        self.send(self.client.post(self.url("/v1/events")).json(body), &self.admin_key).await
    }

    /// GET a path with the admin key; returns (status, body).
    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        self.send(self.client.get(self.url(path)), &self.admin_key).await
    }

    /// Sends a request with a bearer key; returns (status, JSON body or Null).
    pub async fn send(&self, req: reqwest::RequestBuilder, key: &str) -> anyhow::Result<(u16, Value)> {
        let resp = req.bearer_auth(key).send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    /// Runs `GET /v1/integrity/verify` (whole log) and returns the report.
    pub async fn verify(&self) -> anyhow::Result<Value> {
        let (status, body) = self.get("/v1/integrity/verify").await?;
        anyhow::ensure!(status == 200, "verify answered {status}: {body}");
        Ok(body)
    }

    /// Creates a key with `role`; returns the secret.
    pub async fn create_key(&self, role: &str) -> anyhow::Result<String> {
        let (status, body) = self
            .send(
                self.client.post(self.url("/v1/keys")).json(&serde_json::json!({"name": role, "role": role})),
                &self.admin_key,
            )
            .await?;
        anyhow::ensure!(status == 201, "create key answered {status}: {body}");
        Ok(body["key"].as_str().context("key in response")?.to_owned())
    }

    /// Drops the log's append-only guards (UPDATE/DELETE triggers on events and
    /// checkpoints, and SQLite's next-seq-only insert trigger), as an attacker with file or
    /// superuser access does first.
    pub async fn drop_append_only_guards(&self) -> anyhow::Result<()> {
        let sql = match self.backend {
            Backend::Sqlite => {
                "DROP TRIGGER events_no_update; DROP TRIGGER events_no_delete; DROP TRIGGER events_insert_next_only; \
                 DROP TRIGGER checkpoints_no_update; DROP TRIGGER checkpoints_no_delete;"
            }
            Backend::Postgres => {
                "DROP TRIGGER events_no_update ON events; DROP TRIGGER events_no_delete ON events; \
                 DROP TRIGGER checkpoints_no_update ON checkpoints;"
            }
        };
        self.exec_sql(sql).await?;
        Ok(())
    }

    /// Runs a query returning one integer directly on the test's database.
    pub async fn sql_i64(&self, sql: &str) -> Result<i64, sqlx::Error> {
        use sqlx::Connection;
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.database_url).await?;
                sqlx::query_scalar(sql).fetch_one(&mut conn).await
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.database_url).await?;
                sqlx::query_scalar(sql).fetch_one(&mut conn).await
            }
        }
    }

    /// Executes SQL directly on the test's database (bypassing the server).
    pub async fn exec_sql(&self, sql: &str) -> Result<(), sqlx::Error> {
        use sqlx::Connection;
        match self.backend {
            Backend::Sqlite => {
                let mut conn = sqlx::SqliteConnection::connect(&self.database_url).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut conn).await?;
            }
            Backend::Postgres => {
                let mut conn = sqlx::PgConnection::connect(&self.database_url).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut conn).await?;
            }
        }
        Ok(())
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(schema) = self.schema.take() {
            // Best effort: drop the test's schema on a helper thread with its own runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                rt.block_on(async {
                    let mut conn = connect_pg(&pg_base_url()).await.ok()?;
                    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA IF EXISTS {schema} CASCADE")))
                        .execute(&mut conn)
                        .await
                        .ok()
                })
            })
            .join();
        }
    }
}

/// Defines `mod sqlite { #[tokio::test] fn name() }` and `mod postgres { ... }` running the
/// same `async fn name(backend: Backend) -> anyhow::Result<()>` on each backend.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    super::$name($crate::Backend::Sqlite).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    super::$name($crate::Backend::Postgres).await
                }
            )+
        }
    };
}

/// A directory for a test's artefacts (screenshots, reports): `VIGIL_ARTEFACTS` or
/// `test-artefacts/` at the repository root (ignored by git), then `name`.
pub fn artefact_dir(name: &str) -> anyhow::Result<PathBuf> {
    let root =
        std::env::var_os("VIGIL_ARTEFACTS").map(PathBuf::from).unwrap_or_else(|| repo_root().join("test-artefacts"));
    let dir = root.join(name);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is inside the repository").to_path_buf()
}

static BUILD_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Builds a rules workspace (`rules` or `tests/rules`) from source for wasm32 in release
/// mode, with extra cargo arguments, into its own target dir under `variant`; returns the
/// directory holding the `.wasm` files.
pub fn build_rules(workspace: &str, variant: &str, extra_args: &[&str]) -> anyhow::Result<PathBuf> {
    let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let base = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"));
    let target_dir = base.join("wasm-rules").join(variant);
    let status = std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(repo_root().join(workspace))
        .args(["build", "--release", "--target", "wasm32-unknown-unknown", "--target-dir"])
        .arg(&target_dir)
        .args(extra_args)
        .status()
        .context("run cargo to build rules")?;
    anyhow::ensure!(
        status.success(),
        "building {workspace} for wasm32 failed (is the wasm32-unknown-unknown target installed? scripts/setup.sh adds it)"
    );
    Ok(target_dir.join("wasm32-unknown-unknown").join("release"))
}

/// The example rules of `rules/`, built from source; returns their directory.
pub fn example_rules() -> anyhow::Result<PathBuf> {
    build_rules("rules", "examples", &[])
}

/// Reads one built test rule (`tests/rules`), e.g. `test_rule("counter", "v1", &[])`.
pub fn test_rule(name: &str, variant: &str, extra_args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let dir = build_rules("tests/rules", variant, extra_args)?;
    std::fs::read(dir.join(format!("{name}.wasm"))).with_context(|| format!("read {name}.wasm"))
}

impl TestApp {
    /// PUT a module as rule `name` with the admin key; returns (status, body).
    pub async fn put_rule(&self, name: &str, wasm: Vec<u8>) -> anyhow::Result<(u16, Value)> {
        let req = self
            .client
            .put(self.url(&format!("/v1/rules/{name}")))
            .header("content-type", "application/wasm")
            .body(wasm);
        self.send(req, &self.admin_key).await
    }

    /// Polls `GET path` until `done(body)` holds or `secs` pass; returns the last body.
    pub async fn wait_for(&self, path: &str, secs: u64, done: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let (_, body) = self.get(path).await?;
            if done(&body) || std::time::Instant::now() > deadline {
                return Ok(body);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// The value of an unlabelled series of `GET /metrics` (`None` when absent).
    pub async fn metric(&self, name: &str) -> anyhow::Result<Option<i64>> {
        let text = self.client.get(self.url("/metrics")).send().await?.text().await?;
        let prefix = format!("{name} ");
        Ok(text.lines().find_map(|l| l.strip_prefix(prefix.as_str())).and_then(|v| v.trim().parse().ok()))
    }

    /// `clients` concurrent clients each POST `batches` batches, built by `batch(client,
    /// batch)`, with the admin key; fails unless every POST answers 201.
    pub async fn post_concurrently(
        &self,
        clients: usize,
        batches: usize,
        batch: impl Fn(usize, usize) -> Value + Send + Sync + Clone + 'static,
    ) -> anyhow::Result<()> {
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (client, url, key, batch) =
                (self.client.clone(), self.url("/v1/events"), self.admin_key.clone(), batch.clone());
            tasks.push(tokio::spawn(async move {
                for b in 0..batches {
                    let resp = client.post(&url).bearer_auth(&key).json(&batch(c, b)).send().await?;
                    anyhow::ensure!(resp.status().as_u16() == 201, "ingest failed: {}", resp.status());
                }
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        Ok(())
    }

    /// Waits until the detection pipeline has evaluated everything stored so far.
    pub async fn detection_idle(&self) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let text = self.client.get(self.url("/metrics")).send().await?.text().await?;
            let gauge = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                    .and_then(|v| v.trim().parse::<i64>().ok())
            };
            // Caught up with the log, and the replay at start (if any) done.
            let (lag, replay) = (gauge("vigil_detection_lag_events"), gauge("vigil_detection_replay_pending_events"));
            if lag == Some(0) && replay == Some(0) {
                return Ok(());
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "detection still lagging: {lag:?} events behind, {replay:?} still to replay"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// Starts the real `vigil serve --config CONFIG` binary at `bin` (an engine test's
/// `env!("CARGO_BIN_EXE_vigil")`) with `admin_key`, its output appended to `log`.
pub fn serve_binary(
    bin: &str,
    config: &std::path::Path,
    log: &std::path::Path,
    admin_key: &str,
) -> std::io::Result<std::process::Child> {
    let out = std::fs::OpenOptions::new().create(true).append(true).open(log)?;
    std::process::Command::new(bin)
        .args(["serve", "--config"])
        .arg(config)
        .env("VIGIL_ADMIN_KEY", admin_key)
        .env("VIGIL_LOG", "info")
        .stdout(std::process::Stdio::from(out.try_clone()?))
        .stderr(std::process::Stdio::from(out))
        .spawn()
}

/// Waits (up to a minute) until `GET {base}/healthz` answers.
pub async fn wait_healthy(client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if client.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "vigil did not come up at {base}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Stores `sample_event(0..n)` in one batch; returns their seqs.
pub async fn seed(app: &TestApp, n: usize) -> anyhow::Result<Vec<i64>> {
    let batch: Vec<Value> = (0..n).map(sample_event).collect();
    let (status, body) = app.post_events(&serde_json::json!(batch)).await?;
    anyhow::ensure!(status == 201, "seed failed: {body}");
    Ok(body["events"].as_array().into_iter().flatten().filter_map(|e| e["seq"].as_i64()).collect())
}

/// The `(seq, kind)` of every failure of a verify report.
pub fn failures(report: &Value) -> Vec<(i64, String)> {
    report["failures"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| (f["seq"].as_i64().unwrap_or_default(), f["kind"].as_str().unwrap_or_default().to_owned()))
        .collect()
}

/// A valid sample event.
pub fn sample_event(i: usize) -> Value {
    serde_json::json!({
        "category": "authentication",
        "action": if i.is_multiple_of(3) { "login_failed" } else { "login_success" },
        "outcome": if i.is_multiple_of(3) { "failure" } else { "success" },
        "severity": "medium",
        "user_id": format!("user-{}", i % 7),
        "ip": format!("10.0.{}.{}", i % 5, i % 250),
        "timestamp": 1_767_225_600_000_i64 + i as i64 * 1000,
        "details": {"attempt": i},
    })
}
