//! Cluster mode with real processes: a private 3-server NATS JetStream cluster
//! (`nats-server` on free ports), a fresh schema of the shared PostgreSQL, and 3 `vigil
//! serve` processes sharing the same secrets. Events posted to any node are stored once in
//! their partition's chain and answered with `partition` and `seq`; a node killed with
//! `kill -9` mid-load loses nothing that was acknowledged and its partitions move; a node
//! paused past its lease (SIGSTOP) is fenced while the others take its partitions; a node
//! that comes back gets work again.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use super::Schema;

mod netns;
mod outbox;
mod procs;
mod views;

use procs::{KEY, NatsCluster, Node, PARTITIONS, share_secrets, signal};
use views::{cluster_view, rule_holder, until_detected, until_placed, until_rule_status};

fn batch(prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({"event_id": format!("{prefix}-{i}"), "category": "authentication", "action": "login_failed",
                "user_id": format!("u{}", i % 7), "ip": "198.51.100.7", "details": {"password": "hunter2"}})
        })
        .collect()
}

/// Posts `events` to `node`; the 201 body, or None on any failure (refused, 503...).
async fn post(client: &reqwest::Client, base: &str, events: &[Value]) -> Option<Value> {
    let resp = client
        .post(format!("{base}/v1/events"))
        .bearer_auth(KEY)
        .timeout(Duration::from_secs(40))
        .json(&events)
        .send()
        .await
        .ok()?;
    if resp.status() != 201 {
        return None;
    }
    resp.json().await.ok()
}

/// Every acknowledged `(event_id, partition, seq)`.
type Acked = Vec<(String, u32, i64)>;

fn acked(body: &Value) -> anyhow::Result<Acked> {
    body["events"]
        .as_array()
        .context("events")?
        .iter()
        .map(|e| {
            Ok((
                e["event_id"].as_str().context("event_id")?.to_owned(),
                e["partition"].as_u64().context("a partition per event")? as u32,
                e["seq"].as_i64().context("seq")?,
            ))
        })
        .collect()
}

/// Checks the log directly: every acknowledged event is stored once, in its partition, at
/// its seq; every partition's chain verifies.
async fn check_log(schema: &Schema, data_dir: &Path, acked: &Acked) -> anyhow::Result<()> {
    use vigil::store::Store;
    use vigil::store::postgres::PgStore;
    let secrets = vigil::ledger::keys::load(data_dir, vigil::ledger::keys::LogFacts::default())?;
    let mut conn = vigil_tests::connect_pg(&vigil_tests::pg_base_url()).await?;
    for p in 0..PARTITIONS {
        let table = if p == 0 { format!("{}.events", schema.name) } else { format!("{}_p{p}.events", schema.name) };
        let dup: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) - count(DISTINCT (event_id, ingest_key)) FROM {table}"
        )))
        .fetch_one(&mut conn)
        .await?;
        assert_eq!(dup, 0, "partition {p} stores an event twice");
        let store = Store::Postgres(PgStore::open_partition(&schema.url, p, None).await?);
        let report = vigil::ledger::verify::verify(&store, None, None, secrets.checkpoints.verifier(), None).await?;
        assert_eq!(report.status, "ok", "partition {p}: {:?}", report.failures);
    }
    // The server's own records (here: the key created through node a) are in partition 0.
    let created: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {}.events WHERE action = 'api_key_created' AND ingest_key IS NULL",
        schema.name
    )))
    .fetch_one(&mut conn)
    .await?;
    assert!(created >= 1, "the key's record is in partition 0");
    for (id, p, seq) in acked {
        let table = if *p == 0 { format!("{}.events", schema.name) } else { format!("{}_p{p}.events", schema.name) };
        let seqs: Vec<i64> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT seq FROM {table} WHERE event_id = $1")))
                .bind(id)
                .fetch_all(&mut conn)
                .await?;
        assert_eq!(seqs, vec![*seq], "acknowledged event {id} in partition {p}");
    }
    Ok(())
}

/// brute_force's failed logins from each of `ips`, numbers `range`.
fn plant(prefix: &str, ips: &[String], range: std::ops::Range<usize>) -> Vec<Value> {
    ips.iter()
        .flat_map(|ip| {
            range.clone().map(move |i| {
                json!({"event_id": format!("{prefix}-{ip}-{i}"), "category": "authentication",
                    "action": "login_failed", "user_id": format!("u{i}"), "ip": ip})
            })
        })
        .collect()
}

/// brute_force's 5-minute (P2) alerts on `ips`: (dedup key, alert rows, summed `count`),
/// straight from the shared alerts table.
async fn brute_force_alerts(schema: &Schema, ips: &[String]) -> anyhow::Result<Vec<(String, i64, i64)>> {
    let keys: Vec<String> = ips.iter().map(|ip| format!("ip:{ip}")).collect();
    let mut conn = vigil_tests::connect_pg(&vigil_tests::pg_base_url()).await?;
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT dedup_key, count(*), sum(count)::int8 FROM {}.alerts WHERE rule = 'brute_force' AND dedup_key = ANY($1) \
         GROUP BY dedup_key ORDER BY dedup_key",
        schema.name
    )))
    .bind(&keys)
    .fetch_all(&mut conn)
    .await?;
    Ok(rows)
}

/// Polls until every address of `ips` has its brute_force alert (a check of reach, with a
/// deadline, not of speed).
async fn until_alerts(schema: &Schema, ips: &[String]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let alerts = brute_force_alerts(schema, ips).await?;
        if alerts.len() == ips.len() {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "brute_force alerts never raised for {ips:?}: {alerts:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_store_once_survive_kill_and_pause_and_take_a_node_back() -> anyhow::Result<()> {
    vigil::app::install_tls();
    let dir = std::env::temp_dir().join(format!("vigil-cluster-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    let mut nats = NatsCluster::start(&dir)?;
    let schema = Schema::new().await?;
    let client = reqwest::Client::new();
    // The example rule brute_force on every node (it runs on the holder of its detection slot).
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules)?;
    std::fs::copy(vigil_tests::example_rules()?.join("brute_force.wasm"), rules.join("brute_force.wasm"))?;
    let mut nodes: Vec<Node> = ["a", "b", "c"]
        .iter()
        .map(|n| Node::new(&dir, n, &schema.url, &nats.urls(), &rules))
        .collect::<Result<_, _>>()?;
    nodes[0].start(&client).await?;
    for node in nodes.iter_mut().skip(1) {
        share_secrets(&dir.join("a"), &dir.join(&node.name))?;
        node.start(&client).await?;
    }
    let owners = until_placed(&client, &nodes[0], &["a", "b", "c"]).await?;
    // Metrics per node, partition and detection slot, from the member's last round.
    let metrics = client.get(format!("{}/metrics", nodes[0].base)).send().await?.text().await?;
    assert!(metrics.contains("vigil_cluster_nodes_live 3"), "{metrics}");
    let owned: Vec<&str> = metrics.lines().filter(|l| l.starts_with("vigil_cluster_partition_owned{")).collect();
    assert_eq!(owned.len(), PARTITIONS as usize, "{metrics}");
    let mine = owners.iter().filter(|o| *o == "a").count();
    assert_eq!(owned.iter().filter(|l| l.ends_with(" 1")).count(), mine, "{metrics}");
    // The detection slots spread over the nodes: each held by exactly one (each node's
    // metrics are its own last round's, so they are polled until they agree).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut held = Vec::new();
        for node in &nodes {
            let metrics = client.get(format!("{}/metrics", node.base)).send().await?.text().await?;
            for line in metrics.lines().filter(|l| l.starts_with("vigil_cluster_detection_slot_held{")) {
                if line.ends_with(" 1") {
                    held.push((line.split(' ').next().unwrap_or_default().to_owned(), node.name.clone()));
                }
            }
        }
        let view = cluster_view(&client, &nodes[0]).await?;
        let total = view["detection"]["slots_total"].as_u64().unwrap_or_default() as usize;
        let slots: std::collections::BTreeSet<&String> = held.iter().map(|(s, _)| s).collect();
        let holders: std::collections::BTreeSet<&String> = held.iter().map(|(_, n)| n).collect();
        if total > 0 && held.len() == total && slots.len() == total {
            assert!(holders.len() >= 2, "the slots spread over the nodes: {held:?}");
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the slots were never each held by one node: {held:?} {view}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // (a) Events posted to each node: 201 with partition and seq, stored once.
    let mut all: Acked = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let events = batch(&format!("first-{i}"), 40);
        let body = post(&client, &node.base, &events).await.with_context(|| node.log_text())?;
        assert_eq!(body["stored"], 40, "{body}");
        let acks = acked(&body)?;
        let partitions: std::collections::HashSet<u32> = acks.iter().map(|a| a.1).collect();
        assert!(partitions.len() > 1, "a batch spreads over partitions");
        // A retry through another node is answered with the same partitions and seqs.
        let again = post(&client, &nodes[(i + 1) % 3].base, &events).await.context("retry")?;
        assert_eq!(again["stored"], 0, "{again}");
        assert!(again["events"].as_array().unwrap().iter().all(|e| e["duplicate"] == true));
        assert_eq!(acked(&again)?, acks);
        all.extend(acks);
    }

    // A key created through node a is accepted by node c (keys are shared rows; each node
    // re-reads them every second).
    let resp = client
        .post(format!("{}/v1/keys", nodes[0].base))
        .bearer_auth(KEY)
        .json(&json!({"name": "reader", "role": "read"}))
        .send()
        .await?;
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await?;
    let reader = created["key"].as_str().context("the new key")?.to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp = client.get(format!("{}/v1/cluster", nodes[2].base)).bearer_auth(&reader).send().await?;
        if resp.status() == 200 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "node c never accepted the key made on a: {}", resp.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // (d) A decision issued through node a is answered by node c (polled with a deadline:
    // a check of reach, not of speed), and its lift too.
    let resp = client
        .post(format!("{}/v1/decisions", nodes[0].base))
        .bearer_auth(KEY)
        .json(&json!({"scope": "ip", "value": "203.0.113.99", "kind": "block", "duration": "30m",
            "reason": "cluster test"}))
        .send()
        .await?;
    assert_eq!(resp.status(), 201, "{}", nodes[0].log_text());
    let decision: Value = resp.json().await?;
    let id = decision["id"].as_i64().context("decision id")?;
    let on_c = |client: reqwest::Client, base: String| async move {
        let body: Value = client
            .get(format!("{base}/v1/decisions?scope=ip&value=203.0.113.99"))
            .bearer_auth(KEY)
            .send()
            .await?
            .json()
            .await?;
        Ok::<_, anyhow::Error>(body["decisions"].as_array().into_iter().flatten().any(|d| d["id"] == id))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !on_c(client.clone(), nodes[2].base.clone()).await? {
        anyhow::ensure!(Instant::now() < deadline, "node c never saw the decision issued through a");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resp = client
        .delete(format!("{}/v1/decisions/{id}", nodes[1].base))
        .bearer_auth(KEY)
        .json(&json!({"reason": "test over"}))
        .send()
        .await?;
    assert_eq!(resp.status(), 200, "lift through b");
    let deadline = Instant::now() + Duration::from_secs(10);
    while on_c(client.clone(), nodes[2].base.clone()).await? {
        anyhow::ensure!(Instant::now() < deadline, "node c never saw the lift made through b");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // (f) brute_force runs on the holder of its detection slot and sees every partition: the
    // planted brute_force scenario (7 failed logins per address, alert at the 6th) raises one
    // alert per address. Then, with 4 failures per address of a second set evaluated and
    // recorded under the cursors, that holder is killed with -9; the rest of each scenario is
    // posted through the survivors. Its alerts can only come from state rebuilt by replay on
    // the slot's new holder, and each appears once.
    let (holder, epoch) = rule_holder(&client, &nodes[0], "brute_force", None).await?;
    let h = nodes.iter().position(|n| n.name == holder).context("the holder is a node")?;
    let (other, third) = ((h + 1) % 3, (h + 2) % 3);
    let set1: Vec<String> = (1..=4).map(|i| format!("203.0.113.{i}")).collect();
    let body = post(&client, &nodes[other].base, &plant("set1", &set1, 0..7)).await.context("plant set 1")?;
    let set1_acks = acked(&body)?;
    all.extend(set1_acks.clone());
    until_alerts(&schema, &set1).await?;
    let set2: Vec<String> = (11..=14).map(|i| format!("203.0.113.{i}")).collect();
    let body = post(&client, &nodes[other].base, &plant("set2", &set2, 0..4)).await.context("plant set 2")?;
    let first_half = acked(&body)?;
    all.extend(first_half.clone());
    until_detected(&client, &nodes[other], &set1_acks.iter().chain(&first_half).cloned().collect()).await?;
    assert!(brute_force_alerts(&schema, &set2).await?.is_empty(), "4 failures raise nothing yet");
    signal(nodes[h].child(), "-KILL")?;
    let rest = plant("set2", &set2, 4..7);
    let deadline = Instant::now() + Duration::from_secs(90);
    let body = loop {
        if let Some(body) = post(&client, &nodes[third].base, &rest).await {
            break body;
        }
        anyhow::ensure!(Instant::now() < deadline, "the rest of set 2 was never stored: {}", nodes[third].log_text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    all.extend(acked(&body)?);
    let (new_holder, new_epoch) = rule_holder(&client, &nodes[other], "brute_force", Some(&holder)).await?;
    assert_ne!(new_holder, holder);
    assert!(new_epoch > epoch, "the slot moved to a survivor under a new epoch");
    until_alerts(&schema, &set2).await?;
    nodes[h].proc = None;
    nodes[h].start(&client).await?;
    until_placed(&client, &nodes[other], &["a", "b", "c"]).await?;
    let planted: Vec<String> = set1.iter().chain(&set2).cloned().collect();

    // (b) kill -9 one node mid-load: the load goes on through the others (a request that
    // failed is retried elsewhere with the same ids); nothing acknowledged is lost.
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let load = {
        let client = client.clone();
        let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
        let progress = progress.clone();
        tokio::spawn(async move {
            let mut acks: Acked = Vec::new();
            for round in 0..24 {
                let events = batch(&format!("load-{round}"), 25);
                let mut target = round % 3;
                let started = Instant::now();
                loop {
                    if let Some(body) = post(&client, &bases[target], &events).await {
                        acks.extend(acked(&body)?);
                        progress.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        break;
                    }
                    anyhow::ensure!(started.elapsed() < Duration::from_secs(90), "round {round} never stored");
                    target = (target + 1) % 3;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            Ok::<_, anyhow::Error>(acks)
        })
    };
    while progress.load(std::sync::atomic::Ordering::SeqCst) < 6 {
        anyhow::ensure!(!load.is_finished(), "the load ended early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(nodes[1].child(), "-KILL")?;
    let at_kill = progress.load(std::sync::atomic::Ordering::SeqCst);
    // Later in the load, one NATS server of the 3 dies too (the stream has 3 replicas).
    while progress.load(std::sync::atomic::Ordering::SeqCst) < 12 {
        anyhow::ensure!(!load.is_finished(), "the load ended early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    nats.kill(0)?;
    let at_nats_kill = progress.load(std::sync::atomic::Ordering::SeqCst);
    let acks = load.await??;
    assert!(at_nats_kill < 24, "a NATS server was killed mid-load (after {at_nats_kill} of 24 requests)");
    assert_eq!(acks.len(), 24 * 25);
    assert!(at_kill < 24, "b was killed mid-load (after {at_kill} of 24 requests)");
    all.extend(acks);
    let owners = until_placed(&client, &nodes[0], &["a", "c"]).await?;
    assert!(owners.iter().all(|o| o != "b"), "b's partitions moved: {owners:?}");

    // (e) b comes back and gets work again.
    nodes[1].proc = None;
    nodes[1].start(&client).await?;
    let owners = until_placed(&client, &nodes[0], &["a", "b", "c"]).await?;
    assert!(owners.iter().any(|o| o == "b"), "b got partitions back: {owners:?}");
    let body = post(&client, &nodes[1].base, &batch("after-rejoin", 30)).await.context("post to b")?;
    all.extend(acked(&body)?);

    // (c) c is paused past its lease: a and b take its partitions and keep answering; when
    // c wakes up its writers are fenced and it takes its share back through the leases.
    signal(nodes[2].child(), "-STOP")?;
    let owners = until_placed(&client, &nodes[0], &["a", "b"]).await?;
    assert!(owners.iter().all(|o| o != "c"), "{owners:?}");
    let body = post(&client, &nodes[0].base, &batch("while-c-paused", 30)).await.context("post while c paused")?;
    all.extend(acked(&body)?);
    signal(nodes[2].child(), "-CONT")?;
    until_placed(&client, &nodes[0], &["a", "b", "c"]).await?;
    let c_log = std::fs::read_to_string(&nodes[2].log)?;
    // c notices when its renewal fails, or (when it was stopped while its last renewal was in
    // flight, so it resumes with that stale answer) when the fence refuses its writers.
    assert!(
        c_log.contains("Lost the partition's lease") || c_log.contains("is no longer held; nothing was stored"),
        "c noticed it was fenced: {}",
        nodes[2].log_text()
    );
    let body = post(&client, &nodes[2].base, &batch("after-c", 30)).await.context("post to c")?;
    all.extend(acked(&body)?);

    check_log(&schema, &dir.join("a"), &all).await?;
    // After every move of the detection slots (kill, rejoin, pause), each planted address still
    // has exactly one brute_force alert.
    let alerts = brute_force_alerts(&schema, &planted).await?;
    assert_eq!(alerts.len(), planted.len(), "{alerts:?}");
    assert!(alerts.iter().all(|(_, rows, _)| *rows == 1), "an alert raised twice: {alerts:?}");
    // Every planted event was under a cursor before the lease moved: no replay and no
    // re-evaluation raised any of them again (each alert was raised once, never repeated).
    assert!(alerts.iter().all(|(_, _, count)| *count == 1), "an alert repeated by a replay: {alerts:?}");
    // Every partition verifies through the API of any node, too.
    for p in 0..PARTITIONS {
        let resp = client
            .get(format!("{}/v1/integrity/verify?partition={p}", nodes[(p % 3) as usize].base))
            .bearer_auth(KEY)
            .send()
            .await?;
        assert_eq!(resp.status(), 200);
        let report: Value = resp.json().await?;
        assert_eq!(
            (report["status"].as_str(), report["partition"].as_u64()),
            (Some("ok"), Some(u64::from(p))),
            "{report}"
        );
        assert!(report["head"]["seq"].as_i64().unwrap_or_default() > 0, "{report}");
    }
    // The status names every partition with its head and lease.
    let status: Value =
        client.get(format!("{}/v1/integrity/status", nodes[1].base)).bearer_auth(KEY).send().await?.json().await?;
    let parts = status["partitions"].as_array().context("partitions in the status")?;
    assert_eq!(parts.len(), PARTITIONS as usize, "{status}");
    let total: i64 = parts.iter().map(|p| p["head"]["seq"].as_i64().unwrap_or_default()).sum();
    assert!(total >= all.len() as i64, "every acknowledged event is under a head: {status}");
    assert!(parts.iter().all(|p| p["owner"].is_string()), "{status}");
    let resp = client
        .get(format!("{}/v1/integrity/verify?partition={PARTITIONS}", nodes[0].base))
        .bearer_auth(KEY)
        .send()
        .await?;
    assert_eq!(resp.status(), 400, "no such partition");
    for node in &mut nodes {
        if let Some(p) = &node.proc {
            signal(&p.0, "-TERM")?;
        }
    }
    for node in &mut nodes {
        if let Some(mut p) = node.proc.take() {
            let deadline = Instant::now() + Duration::from_secs(30);
            while p.0.try_wait()?.is_none() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    drop(nats);
    schema.drop_all().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_deployed_or_deleted_through_any_node_reaches_the_holder_of_its_slot() -> anyhow::Result<()> {
    vigil::app::install_tls();
    let dir = std::env::temp_dir().join(format!("vigil-cluster-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    let nats = NatsCluster::start(&dir)?;
    let schema = Schema::new().await?;
    let client = reqwest::Client::new();
    // No rule files: the rule comes only through the API of the node not holding its slot.
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules)?;
    let mut nodes: Vec<Node> =
        ["a", "b"].iter().map(|n| Node::new(&dir, n, &schema.url, &nats.urls(), &rules)).collect::<Result<_, _>>()?;
    nodes[0].start(&client).await?;
    share_secrets(&dir.join("a"), &dir.join("b"))?;
    nodes[1].start(&client).await?;
    until_placed(&client, &nodes[0], &["a", "b"]).await?;
    let (holder, _) = rule_holder(&client, &nodes[0], "brute_force", None).await?;
    let h = nodes.iter().position(|n| n.name == holder).context("the holder is a node")?;
    let other = 1 - h;

    // Deployed through the other node: the holder follows the stored rule and runs it.
    let wasm = std::fs::read(vigil_tests::example_rules()?.join("brute_force.wasm"))?;
    let resp = client
        .put(format!("{}/v1/rules/brute_force", nodes[other].base))
        .bearer_auth(KEY)
        .header("content-type", "application/wasm")
        .body(wasm)
        .send()
        .await?;
    let status = resp.status();
    let deployed: Value = resp.json().await?;
    assert!(status.is_success(), "{status} {deployed}");
    let on_holder = until_rule_status(&client, &nodes[h], "brute_force", 200).await?;
    assert_eq!(on_holder["status"], "active", "{on_holder}");
    assert_eq!(on_holder["sha256"], deployed["sha256"], "{on_holder} {deployed}");
    // The rule placement names it, its slot and the node running it, on either node.
    for node in &nodes {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let view = cluster_view(&client, node).await?;
            let placed = view["rules"].as_array().into_iter().flatten().find(|r| r["rule"] == "brute_force").cloned();
            if let Some(r) = placed {
                assert_eq!(r["node"], holder.as_str(), "{view}");
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "{} never placed brute_force: {view}", node.name);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let set1: Vec<String> = (1..=3).map(|i| format!("203.0.113.{i}")).collect();
    let body = post(&client, &nodes[other].base, &plant("follow1", &set1, 0..7)).await.context("plant set 1")?;
    let set1_acks = acked(&body)?;
    until_alerts(&schema, &set1).await?;
    until_detected(&client, &nodes[h], &set1_acks).await?;

    // Deleted through the other node: the holder stops running it.
    let resp = client.delete(format!("{}/v1/rules/brute_force", nodes[other].base)).bearer_auth(KEY).send().await?;
    assert_eq!(resp.status(), 200, "{}", resp.text().await?);
    until_rule_status(&client, &nodes[h], "brute_force", 404).await?;
    let set2: Vec<String> = (21..=23).map(|i| format!("203.0.113.{i}")).collect();
    let body = post(&client, &nodes[h].base, &plant("follow2", &set2, 0..7)).await.context("plant set 2")?;
    until_detected(&client, &nodes[h], &acked(&body)?).await?;
    assert!(brute_force_alerts(&schema, &set2).await?.is_empty(), "a deleted rule raises nothing");
    assert_eq!(brute_force_alerts(&schema, &set1).await?.len(), set1.len());

    drop(nodes);
    drop(nats);
    schema.drop_all().await?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
