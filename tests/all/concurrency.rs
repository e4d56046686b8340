//! Concurrency on both backends: 20 clients post batches at once through the group-commit
//! sequencer; afterwards the chain is gap-free and valid and every acknowledged event is
//! stored at the seq it was acknowledged with.

use std::collections::HashMap;

use serde_json::{Value, json};
use vigil_tests::{Backend, both_backends, sample_event, spawn_app};

both_backends!(twenty_concurrent_clients_get_a_gap_free_valid_chain);

const CLIENTS: usize = 20;
const BATCHES: usize = 10;
const PER_BATCH: usize = 25;

async fn twenty_concurrent_clients_get_a_gap_free_valid_chain(backend: Backend) -> anyhow::Result<()> {
    let app = spawn_app(backend).await?;
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let client = app.client.clone();
        let url = app.url("/v1/events");
        let key = app.admin_key.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for b in 0..BATCHES {
                let batch: Vec<Value> = (0..PER_BATCH)
                    .map(|i| {
                        let mut ev = sample_event(i);
                        ev["event_id"] = json!(format!("c{c}-b{b}-e{i}"));
                        ev
                    })
                    .collect();
                let resp = client.post(&url).bearer_auth(&key).json(&batch).send().await?;
                anyhow::ensure!(resp.status().as_u16() == 201, "client {c} batch {b}: {}", resp.status());
                let body: Value = resp.json().await?;
                for e in body["events"].as_array().unwrap() {
                    acked.push((e["event_id"].as_str().unwrap().to_owned(), e["seq"].as_i64().unwrap()));
                }
            }
            anyhow::Ok(acked)
        }));
    }
    let mut acked: HashMap<String, i64> = HashMap::new();
    for task in tasks {
        for (id, seq) in task.await?? {
            assert!(acked.insert(id, seq).is_none());
        }
    }
    assert_eq!(acked.len(), CLIENTS * BATCHES * PER_BATCH);

    let report = app.verify().await?;
    assert_eq!(report["status"], "ok", "{report}");
    let head = report["head"]["seq"].as_i64().unwrap();
    assert_eq!(report["verified"].as_i64().unwrap(), head, "gap-free from 1 to head");

    // Every acknowledged event is stored at its acknowledged seq.
    let rows = match app.backend {
        Backend::Sqlite => {
            let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&app.database_url).await?;
            sqlx::query_as::<_, (String, i64)>("SELECT event_id, seq FROM events").fetch_all(&mut conn).await?
        }
        Backend::Postgres => {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&app.database_url).await?;
            sqlx::query_as::<_, (String, i64)>("SELECT event_id, seq FROM events").fetch_all(&mut conn).await?
        }
    };
    let stored: HashMap<String, i64> = rows.into_iter().collect();
    for (id, seq) in &acked {
        assert_eq!(stored.get(id), Some(seq), "{id}");
    }
    Ok(())
}
