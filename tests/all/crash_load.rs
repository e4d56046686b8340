//! `kill -9` of the real `vigil serve` under concurrent ingest, then a restart on the same
//! database: every acknowledged (201) event is stored at the seq it was given, the chain
//! verifies, and clients retrying every batch with the same event_ids store nothing twice.
//! SQLite and PostgreSQL (a fresh schema on the shared server; only Vigil is killed).

use std::collections::HashMap;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};

const KEY: &str = "vgl_crash_load_test_admin_key_0123456789";

type Sent = Arc<Mutex<Vec<(Value, Option<Vec<(String, i64)>>)>>>;

fn serve(config: &std::path::Path, log: &std::path::Path) -> std::io::Result<Child> {
    vigil_tests::serve_binary(env!("CARGO_BIN_EXE_vigil"), config, log, KEY)
}

async fn rows(url: &str) -> anyhow::Result<HashMap<String, i64>> {
    use sqlx::{Connection, Row};
    let sql = "SELECT event_id, seq FROM events";
    let rows: Vec<(String, i64)> = if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await?;
        sqlx::query(sql).fetch_all(&mut conn).await?.iter().map(|r| (r.get(0), r.get(1))).collect()
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await?;
        sqlx::query(sql).fetch_all(&mut conn).await?.iter().map(|r| (r.get(0), r.get(1))).collect()
    };
    let n = rows.len();
    let map: HashMap<String, i64> = rows.into_iter().collect();
    anyhow::ensure!(map.len() == n, "an event_id is stored twice");
    Ok(map)
}

// Long by design: one scenario end to end, each step asserting what the previous one changed.
async fn kill_9_under_load(database_url: String, dir: std::path::PathBuf) -> anyhow::Result<()> {
    vigil::app::install_tls();
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let config = dir.join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndatabase_url = \"{database_url}\"\ndata_dir = \"{}\"\nworkers = 2\n",
            dir.join("data").display()
        ),
    )?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let log = dir.join("vigil.log");
    let mut child = serve(&config, &log)?;
    vigil_tests::wait_healthy(&client, &base).await?;

    let sent: Sent = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for c in 0..4 {
        let (client, base, sent) = (client.clone(), base.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0.. {
                let events: Vec<Value> = (0..100)
                    .map(|i| {
                        json!({"event_id": format!("crash-{c}-{n}-{i}"), "category": "authentication",
                               "action": "login_failed", "outcome": "failure", "user_id": format!("u{}", i % 9),
                               "ip": "203.0.113.9"})
                    })
                    .collect();
                let body = json!(events);
                let resp = client.post(format!("{base}/v1/events")).bearer_auth(KEY).json(&body).send().await;
                let acked = match resp {
                    Ok(r) if r.status().as_u16() == 201 => {
                        let reply: Value = r.json().await.unwrap_or(Value::Null);
                        reply["events"].as_array().map(|a| {
                            a.iter()
                                .map(|e| {
                                    (e["event_id"].as_str().unwrap_or("").to_owned(), e["seq"].as_i64().unwrap_or(0))
                                })
                                .collect::<Vec<_>>()
                        })
                    }
                    Ok(_) => None,
                    Err(_) => {
                        // The server is gone: this batch's outcome is unknown.
                        sent.lock().unwrap().push((body, None));
                        return;
                    }
                };
                sent.lock().unwrap().push((body, acked));
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    child.kill()?;
    child.wait()?;
    for t in tasks {
        t.await?;
    }
    let sent = sent.lock().unwrap().clone();
    let acked: Vec<(String, i64)> = sent.iter().filter_map(|(_, a)| a.clone()).flatten().collect();
    anyhow::ensure!(acked.len() >= 400, "too little was acknowledged before the kill: {}", acked.len());

    let mut child = serve(&config, &log)?;
    let result = async {
        vigil_tests::wait_healthy(&client, &base).await?;
        let stored = rows(&database_url).await?;
        for (id, seq) in &acked {
            anyhow::ensure!(
                stored.get(id) == Some(seq),
                "acknowledged {id} at seq {seq}, stored at {:?}",
                stored.get(id)
            );
        }
        let verify = |client: reqwest::Client, base: String| async move {
            let report: Value =
                client.get(format!("{base}/v1/integrity/verify")).bearer_auth(KEY).send().await?.json().await?;
            anyhow::ensure!(report["status"] == "ok", "verify after kill -9: {report}");
            anyhow::Ok(())
        };
        verify(client.clone(), base.clone()).await?;
        // Every client retries every batch it sent, acknowledged or not.
        for (body, acked) in &sent {
            let resp = client.post(format!("{base}/v1/events")).bearer_auth(KEY).json(body).send().await?;
            anyhow::ensure!(resp.status().as_u16() == 201, "retry answered {}", resp.status());
            let reply: Value = resp.json().await?;
            if let Some(acked) = acked {
                for ((id, seq), e) in acked.iter().zip(reply["events"].as_array().context("events")?) {
                    anyhow::ensure!(
                        e["duplicate"] == true && e["seq"].as_i64() == Some(*seq),
                        "retry of acknowledged {id} (seq {seq}) answered {e}"
                    );
                }
            }
        }
        let after = rows(&database_url).await?;
        let ids: std::collections::HashSet<&str> = sent
            .iter()
            .flat_map(|(b, _)| b.as_array().into_iter().flatten())
            .filter_map(|e| e["event_id"].as_str())
            .collect();
        anyhow::ensure!(ids.iter().all(|id| after.contains_key(*id)), "a retried event is missing");
        verify(client.clone(), base.clone()).await
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    if result.is_err() {
        eprintln!("server log:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    }
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_load_sqlite() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("vigil-crash-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    let url = format!("sqlite://{}", dir.join("vigil.db").display());
    let result = kill_9_under_load(url, dir.clone()).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_load_postgres() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("vigil-crash-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    let schema = format!("vigil_crash_{}", uuid::Uuid::now_v7().simple());
    let base = vigil_tests::pg_base_url();
    let mut conn = vigil_tests::connect_pg(&base).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&mut conn).await?;
    let url = format!("{base}?options[search_path]={schema}");
    let result = kill_9_under_load(url, dir.clone()).await;
    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE"))).execute(&mut conn).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}
