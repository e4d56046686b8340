//! Cluster mode's foundation (docs/cluster.md) on the real PostgreSQL: one schema per
//! partition, each its own chain that verifies alone; partition leases judged by
//! PostgreSQL's clock with fencing (a writer whose lease was taken over can never commit
//! again, even when it was only paused); members that spread partitions by rendezvous
//! hashing, take over a dead member's partitions and give work back to a member that
//! rejoins. Each test works in a fresh schema of the shared database and drops it (and its
//! partition schemas) at the end.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use vigil::cluster::{ClusterMember, MemberConfig, WriterTemplate, partition_of};
use vigil::event::NewEvent;
use vigil::ingest::Masker;
use vigil::ledger::handoff::Handoff;
use vigil::ledger::keys::CheckpointKeys;
use vigil::ledger::sequencer::{Sequencer, SequencerConfig};
use vigil::store::postgres::PgStore;
use vigil::store::{Store, StoreError};
use vigil_tests::{connect_pg, pg_base_url};

mod partitions;
mod process;
mod slots;
mod timers;

/// A fresh schema on the shared PostgreSQL; `drop_all` removes it and its partitions.
struct Schema {
    name: String,
    url: String,
}

impl Schema {
    async fn new() -> anyhow::Result<Self> {
        vigil::telemetry::init_test_logging();
        let name = format!("vigil_c_{}", uuid::Uuid::now_v7().simple());
        let mut conn = connect_pg(&pg_base_url()).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}"))).execute(&mut conn).await?;
        let url = format!("{}?options[search_path]={name}", pg_base_url());
        Ok(Self { name, url })
    }

    async fn drop_all(self) -> anyhow::Result<()> {
        let mut conn = connect_pg(&pg_base_url()).await?;
        let schemas: Vec<String> = sqlx::query_scalar(
            "SELECT nspname::text FROM pg_namespace WHERE nspname = $1 OR nspname LIKE $1 || '\\_p%'",
        )
        .bind(&self.name)
        .fetch_all(&mut conn)
        .await?;
        // A stopped node's background tasks may still hold a transaction on the schema (its
        // pool outlives `shutdown` until the test's runtime ends): a drop that waits on a lock
        // for long ends those sessions (only the holders of this schema's locks) and tries again.
        sqlx::raw_sql("SET lock_timeout = '10s'").execute(&mut conn).await?;
        for s in schemas {
            let drop = format!("DROP SCHEMA {s} CASCADE");
            let mut tries = 0;
            while let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(drop.as_str())).execute(&mut conn).await {
                tries += 1;
                anyhow::ensure!(tries < 6, "{drop}: {e}");
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM (SELECT DISTINCT l.pid FROM pg_locks l \
                     JOIN pg_class c ON c.oid = l.relation JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = $1 AND l.pid <> pg_backend_pid() AND l.granted) holders",
                )
                .bind(&s)
                .execute(&mut conn)
                .await?;
            }
        }
        Ok(())
    }
}

fn keys() -> CheckpointKeys {
    CheckpointKeys::from_seed([7; 32])
}

/// Client events from ingest key `key` with the given ids (validated and masked as ingest does).
fn events(key: &str, ids: &[String]) -> Vec<NewEvent> {
    let masker = Masker::new(b"cluster-test-mask-key");
    let body: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| {
            serde_json::json!({"event_id": id, "category": "authentication", "action": "login_failed",
            "user_id": "alice", "ip": "203.0.113.9"})
        })
        .collect();
    let mut evs =
        vigil::ingest::validate::validate_body(serde_json::to_string(&body).unwrap().as_bytes(), false, &masker)
            .expect("valid events");
    for e in &mut evs {
        e.ingest_key = Some(key.to_owned());
    }
    evs
}

fn sequencer_config(keys: &CheckpointKeys) -> SequencerConfig {
    SequencerConfig {
        max_group_events: 1000,
        checkpoint_every_events: 5,
        checkpoint_every: Duration::from_secs(10),
        keys: keys.clone(),
        anchor: None,
        status: Arc::default(),
        clock: vigil::clock::Clock::system(),
        security: Arc::default(),
    }
}

async fn verify_ok(store: &Store) -> anyhow::Result<i64> {
    let report = vigil::ledger::verify::verify(store, None, None, keys().verifier(), None).await?;
    anyhow::ensure!(report.status == "ok", "verify failed: {:?}", report.failures);
    Ok(report.head.seq)
}

/// Polls until PostgreSQL's clock says partition `p`'s lease has expired.
async fn until_expired(store: &Store, p: i32) -> anyhow::Result<()> {
    for _ in 0..200 {
        let leases = store.cluster_leases().await?;
        if leases.iter().any(|l| l.partition == p && !l.live) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the lease of partition {p} never expired")
}

#[tokio::test]
async fn each_partition_is_its_own_chain_and_partition_zero_is_the_single_node_log() -> anyhow::Result<()> {
    let schema = Schema::new().await?;
    let base = Store::open(&schema.url).await?;
    assert_eq!(PgStore::init_cluster(&schema.url, 4).await?, 4);
    let keys = keys();
    let mut expected = [0i64; 4];
    for p in 0..4u32 {
        let fence = base.acquire_lease(p as i32, "n1", 10_000).await?.context("a free lease")?;
        assert_eq!(fence.epoch, 1);
        let store = Store::Postgres(PgStore::open_partition(&schema.url, p, Some(fence)).await?);
        let seq = Sequencer::start(store.clone(), sequencer_config(&keys), None, Arc::new(Handoff::new(0, 0))).await?;
        let n = 3 + p as usize;
        let ids: Vec<String> = (0..n).map(|i| format!("p{p}-e{i}")).collect();
        let acks = seq.submit_client(events("k1", &ids)).await?;
        // Every partition's seq space starts at 1.
        assert_eq!(acks.iter().map(|a| a.seq).collect::<Vec<_>>(), (1..=n as i64).collect::<Vec<_>>());
        let again = seq.submit_client(events("k1", &ids)).await?;
        assert!(again.iter().all(|a| a.duplicate), "a retry is a duplicate within its partition");
        seq.checkpoint_now().await?;
        seq.halt().await;
        expected[p as usize] = n as i64;
    }
    for p in 0..4u32 {
        let store = Store::Postgres(PgStore::open_partition(&schema.url, p, None).await?);
        assert_eq!(verify_ok(&store).await?, expected[p as usize], "partition {p} verifies alone");
        assert!(store.last_checkpoint().await?.is_some_and(|c| c.seq == expected[p as usize]));
    }
    // Partition 0 is the log of the base schema, read by a plain single-node store.
    assert_eq!(base.head().await?.seq, expected[0]);
    // The partition schemas keep the single-node guards: the app role cannot rewrite rows.
    let mut conn = connect_pg(&pg_base_url()).await?;
    let err = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("UPDATE {}_p2.events SET action = 'x'", schema.name)))
        .execute(&mut conn)
        .await
        .expect_err("append-only");
    assert!(err.to_string().contains("append-only"), "{err}");
    schema.drop_all().await
}

#[tokio::test]
async fn a_writer_whose_lease_was_taken_over_can_never_commit_again() -> anyhow::Result<()> {
    let schema = Schema::new().await?;
    let base = Store::open(&schema.url).await?;
    PgStore::init_cluster(&schema.url, 2).await?;
    let keys = keys();
    // Writer A holds partition 1 for a short lease (long enough that a loaded machine gets
    // through the next three statements before it expires) and commits.
    let fence_a = base.acquire_lease(1, "a", 3_000).await?.context("free")?;
    let store_a = Store::Postgres(PgStore::open_partition(&schema.url, 1, Some(fence_a.clone())).await?);
    let writer_a = Sequencer::start(store_a, sequencer_config(&keys), None, Arc::new(Handoff::new(0, 0))).await?;
    writer_a.submit_client(events("k", &["a1".into(), "a2".into()])).await?;
    assert!(base.acquire_lease(1, "b", 3_000).await?.is_none(), "a live lease is not taken");
    // A is "paused": it renews nothing. Once PostgreSQL says the lease expired, B takes it.
    until_expired(&base, 1).await?;
    let fence_b = base.acquire_lease(1, "b", 60_000).await?.context("expired lease taken")?;
    assert_eq!(fence_b.epoch, fence_a.epoch + 1);
    let store_b = Store::Postgres(PgStore::open_partition(&schema.url, 1, Some(fence_b.clone())).await?);
    let writer_b =
        Sequencer::start(store_b.clone(), sequencer_config(&keys), None, Arc::new(Handoff::new(0, 0))).await?;
    let acks = writer_b.submit_client(events("k", &["b1".into()])).await?;
    assert_eq!(acks[0].seq, 3, "B continues A's chain");
    // A wakes up: its renewal fails and its writes are refused, nothing lands.
    assert!(!base.renew_lease(&fence_a, 300).await?);
    let err = writer_a.submit_client(events("k", &["a3".into()])).await.expect_err("fenced");
    assert!(matches!(err, StoreError::Fenced { partition: 1, .. }), "{err:?}");
    let err = writer_a.checkpoint_now().await.expect_err("a checkpoint is fenced too");
    assert!(matches!(err, StoreError::Fenced { .. }), "{err:?}");
    assert_eq!(store_b.head().await?.seq, 3);
    assert!(store_b.find_event_ids(&[(Some("k".into()), "a3".into())]).await?.is_empty());
    // Even A's lease row cannot be moved back to A with its old epoch (the trigger).
    let mut conn = connect_pg(&pg_base_url()).await?;
    let err = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "UPDATE {}.cluster_leases SET owner = 'a', epoch = {} WHERE partition = 1",
        schema.name, fence_a.epoch
    )))
    .execute(&mut conn)
    .await
    .expect_err("epochs only grow");
    assert!(err.to_string().contains("higher epoch"), "{err}");
    writer_b.submit_client(events("k", &["b2".into()])).await?;
    writer_b.checkpoint_now().await?;
    assert_eq!(verify_ok(&store_b).await?, 4);
    writer_a.halt().await;
    writer_b.halt().await;
    schema.drop_all().await
}

#[tokio::test]
async fn a_node_with_another_partition_count_refuses_to_start() -> anyhow::Result<()> {
    let schema = Schema::new().await?;
    Store::open(&schema.url).await?;
    PgStore::init_cluster(&schema.url, 4).await?;
    let err = PgStore::init_cluster(&schema.url, 8).await.expect_err("fixed at creation");
    let text = err.to_string();
    assert!(text.contains("created with 4 partitions") && text.contains("partitions = 4"), "{text}");
    // The number of detection slots is fixed at creation too (the default, 8, here).
    PgStore::init_cluster_with_slots(&schema.url, 4, 8).await?;
    let err = PgStore::init_cluster_with_slots(&schema.url, 4, 3).await.expect_err("fixed at creation");
    let text = err.to_string();
    assert!(text.contains("created with 8 detection slots") && text.contains("detection_slots = 8"), "{text}");
    schema.drop_all().await
}

fn member_config(schema: &Schema, node: &str, partitions: u32) -> MemberConfig {
    let keys = keys();
    MemberConfig {
        database_url: schema.url.clone(),
        node_id: node.into(),
        address: format!("{node}.test:8080"),
        partitions,
        detection_slots: 8,
        lease_ms: 3000,
        heartbeat_ms: 300,
        writer: WriterTemplate {
            max_group_events: 1000,
            checkpoint_every_events: 50,
            checkpoint_every: Duration::from_secs(10),
            keys,
            clock: vigil::clock::Clock::system(),
            security: Arc::default(),
        },
    }
}

/// Polls until every partition is written by exactly one of `members`, each by the member
/// rendezvous hashing puts it on; returns the owner of each partition.
async fn until_settled(members: &[&ClusterMember], partitions: u32) -> anyhow::Result<Vec<String>> {
    let mut last = String::new();
    for _ in 0..300 {
        let mut owners = vec![Vec::new(); partitions as usize];
        for m in members {
            for p in m.owned().await {
                owners[p as usize].push(m.node_id().to_owned());
            }
        }
        // Every member sees exactly these members live, and each partition is written by
        // the one rendezvous hashing puts it on.
        let mut expected: Vec<String> = members.iter().map(|m| m.node_id().to_owned()).collect();
        expected.sort();
        let views_ok = members.iter().all(|m| {
            let view = m.view();
            let live: Vec<String> = view.nodes.iter().filter(|n| n.live).map(|n| n.node_id.clone()).collect();
            live == expected
                && view.partitions.len() == partitions as usize
                && view
                    .partitions
                    .iter()
                    .all(|pv| pv.desired.as_ref().is_some_and(|d| owners[pv.partition as usize] == [d.clone()]))
        });
        if owners.iter().all(|o| o.len() == 1) && views_ok {
            return Ok(owners.into_iter().map(|mut o| o.remove(0)).collect());
        }
        last = format!("{owners:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("partitions never settled: {last}")
}

/// Sends `ids` (of key `k`) to the member that writes each event's partition.
async fn send(members: &[&ClusterMember], owners: &[String], partitions: u32, ids: &[String]) -> anyhow::Result<()> {
    for id in ids {
        let p = partition_of(Some("k"), id, partitions);
        let m = members.iter().find(|m| m.node_id() == owners[p as usize]).context("owner")?;
        m.submit(p, events("k", std::slice::from_ref(id))).await.with_context(|| format!("event {id} to p{p}"))?;
    }
    Ok(())
}

#[tokio::test]
async fn members_spread_partitions_fence_a_paused_member_and_give_work_back_on_rejoin() -> anyhow::Result<()> {
    const P: u32 = 6;
    let schema = Schema::new().await?;
    let base = Store::open(&schema.url).await?;
    let a = ClusterMember::start(base.clone(), member_config(&schema, "a", P)).await?;
    let b = ClusterMember::start(base.clone(), member_config(&schema, "b", P)).await?;
    let c = ClusterMember::start(base.clone(), member_config(&schema, "c", P)).await?;
    let owners = until_settled(&[&a, &b, &c], P).await?;
    let ids: Vec<String> = (0..60).map(|i| format!("e{i}")).collect();
    send(&[&a, &b, &c], &owners, P, &ids[..30]).await?;
    // b is paused (no heartbeat, no renewal) but keeps its writers, as a stopped process
    // would; a and c take its partitions once its leases expire.
    let b_parts = b.owned().await;
    anyhow::ensure!(!b_parts.is_empty(), "b got no partition: {owners:?}");
    b.stop_loop();
    let owners = until_settled(&[&a, &c], P).await?;
    for p in &b_parts {
        let err = b.submit(*p, events("k", &["from-paused-b".into()])).await.expect_err("fenced");
        assert!(matches!(err, StoreError::Fenced { .. }), "{err:?}");
    }
    send(&[&a, &c], &owners, P, &ids[30..]).await?;
    // Every event stored exactly once, every partition verifies, nothing of paused b landed.
    let mut total = 0;
    for p in 0..P {
        let store = Store::Postgres(PgStore::open_partition(&schema.url, p, None).await?);
        total += verify_ok(&store).await?;
        let found = store.find_event_ids(&[(Some("k".into()), "from-paused-b".into())]).await?;
        assert!(found.is_empty(), "partition {p}");
    }
    assert_eq!(total, 60);
    b.crash().await;
    // b comes back (a new process, same node id) and gets work again.
    let b2 = ClusterMember::start(base.clone(), member_config(&schema, "b", P)).await?;
    let owners = until_settled(&[&a, &b2, &c], P).await?;
    assert!(owners.iter().any(|o| o == "b"), "{owners:?}");
    let more: Vec<String> = (60..90).map(|i| format!("e{i}")).collect();
    send(&[&a, &b2, &c], &owners, P, &more).await?;
    let view = a.view();
    assert_eq!(view.nodes.iter().filter(|n| n.live).count(), 3, "{view:?}");
    for m in [&a, &b2, &c] {
        m.leave().await;
    }
    let mut total = 0;
    for p in 0..P {
        let store = Store::Postgres(PgStore::open_partition(&schema.url, p, None).await?);
        total += verify_ok(&store).await?;
    }
    assert_eq!(total, 90);
    schema.drop_all().await
}
