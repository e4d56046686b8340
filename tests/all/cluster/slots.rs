//! Detection placed by rule (docs/cluster.md, "Detection"), on the real PostgreSQL: each
//! detection slot's cursors move only under that slot's own lease and never back; the
//! cursors of a cluster made before slots carry over to every slot; the slots' leases spread
//! over the members by rendezvous hashing, each held by exactly one, move off a paused
//! member (whose old leases can then move no cursor) and are handed back to a member that
//! rejoins; each slot's evaluator runs exactly its slot's rules. (That a rule keeps its
//! state across a move of its slot, raising exactly one alert for a threshold reached
//! across the move, is shown by the process test
//! `process::three_nodes_store_once_survive_kill_and_pause_and_take_a_node_back`.)

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use vigil::cluster::ClusterMember;
use vigil::store::Store;
use vigil::store::cluster::{DetectCursor, slot_lease};
use vigil::store::postgres::PgStore;
use vigil_tests::{connect_pg, pg_base_url};

use super::{Schema, member_config};

fn cursor(slot: u32, partition: u32, seq: i64) -> DetectCursor {
    DetectCursor { slot, partition, seq }
}

#[tokio::test]
async fn a_detection_cursor_moves_only_under_its_slots_lease_and_never_back() -> anyhow::Result<()> {
    let schema = Schema::new().await?;
    let base = Store::open(&schema.url).await?;
    PgStore::init_cluster_with_slots(&schema.url, 2, 3).await?;
    let a0 = base.acquire_lease(slot_lease(0), "a", 60_000).await?.context("slot 0 is free")?;
    let b1 = base.acquire_lease(slot_lease(1), "b", 60_000).await?.context("slot 1 is free")?;
    assert!(base.acquire_lease(slot_lease(0), "b", 60_000).await?.is_none(), "one holder per slot");
    assert!(base.advance_detect_cursor(&a0, 1, 10).await?);
    // A late or repeated advance never moves a cursor back.
    assert!(base.advance_detect_cursor(&a0, 1, 4).await?);
    assert_eq!(base.detect_cursors().await?, vec![cursor(0, 1, 10)]);
    // Several slots in one statement: each moves its own slot's cursor only.
    let mut moved = base.advance_detect_cursors(1, &[(a0.clone(), 12), (b1.clone(), 7)]).await?;
    moved.sort_unstable();
    assert_eq!(moved, vec![0, 1]);
    assert_eq!(base.detect_cursors().await?, vec![cursor(0, 1, 12), cursor(1, 1, 7)]);
    // Slot 0 moves to b: a's advances are refused and move nothing; b's slot 1 still moves.
    base.release_lease(&a0).await?;
    let b0 = base.acquire_lease(slot_lease(0), "b", 60_000).await?.context("released")?;
    assert!(b0.epoch > a0.epoch);
    assert!(!base.advance_detect_cursor(&a0, 1, 50).await?, "a lost slot 0");
    assert!(!base.advance_detect_cursor(&a0, 0, 50).await?, "a lost slot 0");
    assert_eq!(base.advance_detect_cursors(1, &[(a0.clone(), 60), (b1.clone(), 9)]).await?, vec![1]);
    assert_eq!(base.detect_cursors().await?, vec![cursor(0, 1, 12), cursor(1, 1, 9)]);
    assert!(base.advance_detect_cursor(&b0, 1, 20).await?);
    // A partition's lease is no slot's: it moves no cursor.
    let p0 = base.acquire_lease(0, "a", 60_000).await?.context("partition 0 is free")?;
    assert!(!base.advance_detect_cursor(&p0, 1, 99).await?);
    assert_eq!(base.detect_cursors().await?, vec![cursor(0, 1, 20), cursor(1, 1, 9)]);
    // Not even a direct UPDATE moves a cursor back or to another slot, nor a DELETE removes
    // it (the triggers).
    let mut conn = connect_pg(&pg_base_url()).await?;
    for sql in [
        format!("UPDATE {}.cluster_detect_cursors SET seq = 3 WHERE slot = 0 AND partition = 1", schema.name),
        format!("UPDATE {}.cluster_detect_cursors SET slot = 2 WHERE slot = 1", schema.name),
        format!("DELETE FROM {}.cluster_detect_cursors", schema.name),
        format!("UPDATE {}.cluster_detection SET slots = 5", schema.name),
    ] {
        let err = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.expect_err("refused");
        assert!(err.to_string().contains("vigil:"), "{err}");
    }
    assert_eq!(base.detect_cursors().await?, vec![cursor(0, 1, 20), cursor(1, 1, 9)]);
    schema.drop_all().await
}

#[tokio::test]
async fn the_cursors_of_a_cluster_made_before_slots_carry_over_to_every_slot() -> anyhow::Result<()> {
    let schema = Schema::new().await?;
    Store::open(&schema.url).await?;
    // What migration 0017 leaves of a cluster whose single detection holder had moved its
    // cursors (migration 0016): slot 0's rows, no recorded number of slots yet.
    let mut conn = connect_pg(&pg_base_url()).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {}.cluster_detect_cursors (slot, partition, seq, epoch) VALUES (0, 0, 5, 3), (0, 1, 9, 3)",
        schema.name
    )))
    .execute(&mut conn)
    .await?;
    PgStore::init_cluster_with_slots(&schema.url, 2, 3).await?;
    let base = Store::open(&schema.url).await?;
    let expected: Vec<DetectCursor> = (0..3).flat_map(|s| [cursor(s, 0, 5), cursor(s, 1, 9)]).collect();
    assert_eq!(base.detect_cursors().await?, expected, "every rule had evaluated up to there");
    // Recorded once: a later start copies nothing again, and each slot's own lease moves its
    // copied cursors.
    let f2 = base.acquire_lease(slot_lease(2), "a", 60_000).await?.context("slot 2 is free")?;
    assert!(base.advance_detect_cursor(&f2, 1, 15).await?);
    PgStore::init_cluster_with_slots(&schema.url, 2, 3).await?;
    let after = base.detect_cursors().await?;
    assert!(after.contains(&cursor(2, 1, 15)) && after.contains(&cursor(1, 1, 9)), "{after:?}");
    assert_eq!(after.len(), 6, "{after:?}");
    schema.drop_all().await
}

/// Polls until every detection slot is held by exactly one of `members`, the one rendezvous
/// hashing puts it on in every member's view; returns each slot's holder.
async fn until_slots_settled(members: &[&ClusterMember], slots: u32) -> anyhow::Result<Vec<String>> {
    let mut last = String::new();
    for _ in 0..300 {
        let mut holders: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for m in members {
            for slot in m.detection_fences().keys() {
                holders.entry(*slot).or_default().push(m.node_id().to_owned());
            }
        }
        let mut expected: Vec<String> = members.iter().map(|m| m.node_id().to_owned()).collect();
        expected.sort();
        let views_ok = members.iter().all(|m| {
            let view = m.view();
            let live: Vec<String> = view.nodes.iter().filter(|n| n.live).map(|n| n.node_id.clone()).collect();
            live == expected
                && view.detection.slots_total == slots
                && view.detection.slots.len() == slots as usize
                && view.detection.slots.iter().all(|s| {
                    s.live
                        && s.owner.is_some()
                        && s.owner == s.desired
                        && holders.get(&s.slot).is_some_and(|h| h.len() == 1 && Some(&h[0]) == s.owner.as_ref())
                })
        });
        if holders.len() == slots as usize && holders.values().all(|h| h.len() == 1) && views_ok {
            return Ok(holders.into_values().map(|mut h| h.remove(0)).collect());
        }
        last = format!("{holders:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("detection slots never settled: {last}")
}

#[tokio::test]
async fn detection_slots_spread_over_members_move_off_a_paused_one_and_come_back_on_rejoin() -> anyhow::Result<()> {
    const P: u32 = 2;
    const SLOTS: u32 = 8;
    let schema = Schema::new().await?;
    let base = Store::open(&schema.url).await?;
    let a = ClusterMember::start(base.clone(), member_config(&schema, "a", P)).await?;
    let b = ClusterMember::start(base.clone(), member_config(&schema, "b", P)).await?;
    let c = ClusterMember::start(base.clone(), member_config(&schema, "c", P)).await?;
    let holders = until_slots_settled(&[&a, &b, &c], SLOTS).await?;
    let distinct: std::collections::BTreeSet<&String> = holders.iter().collect();
    assert!(distinct.len() >= 2, "the slots spread over the members: {holders:?}");
    // Every partition's head in one statement through the base store (what detection reads
    // each round before opening any partition store).
    let owners = super::until_settled(&[&a, &b, &c], P).await?;
    let ids: Vec<String> = (0..9).map(|i| format!("h{i}")).collect();
    super::send(&[&a, &b, &c], &owners, P, &ids).await?;
    let mut expected = vec![0i64; P as usize];
    for id in &ids {
        expected[vigil::cluster::partition_of(Some("k"), id, P) as usize] += 1;
    }
    assert_eq!(base.partition_heads(&base.base_schema().await?, P).await?, expected);
    // Each slot's holder moves that slot's cursors (and only its own).
    for (slot, holder) in holders.iter().enumerate() {
        let m = [&a, &b, &c].into_iter().find(|m| m.node_id() == holder).context("holder")?;
        let f = m.detection_fences().get(&(slot as u32)).cloned().context("held")?;
        assert!(base.advance_detect_cursor(&f, 1, 1 + slot as i64).await?);
    }
    // b is paused (no heartbeat, no renewal) but keeps what it holds, as a stopped process
    // would: a and c take its slots once its leases expire, and b's old leases move nothing.
    let b_slots = b.detection_fences();
    anyhow::ensure!(!b_slots.is_empty(), "b holds no slot: {holders:?}");
    b.stop_loop();
    let holders = until_slots_settled(&[&a, &c], SLOTS).await?;
    assert!(holders.iter().all(|h| h != "b"), "{holders:?}");
    for (slot, f) in &b_slots {
        assert!(!base.advance_detect_cursor(f, 1, 1000).await?, "b's old lease of slot {slot} moves nothing");
        let now = [&a, &c].into_iter().find_map(|m| m.detection_fences().get(slot).cloned()).context("taken")?;
        assert!(now.epoch > f.epoch, "slot {slot} was taken with a higher epoch");
    }
    let cursors = base.detect_cursors().await?;
    assert!(cursors.iter().all(|k| k.seq < 1000), "{cursors:?}");
    // The view shows each slot's cursors; partition 1's detect_cursor is the smallest of them.
    let view = a.view();
    let slot3 = &view.detection.slots[3];
    assert_eq!(slot3.cursors.iter().find(|k| k.partition == 1).map(|k| k.seq), Some(4), "{slot3:?}");
    assert_eq!(view.partitions[1].detect_cursor, 1, "{view:?}");
    assert_eq!(view.partitions[0].detect_cursor, 0, "{view:?}");
    b.crash().await;
    // b comes back (a new process, same node id): its slots are handed back to it.
    let b2 = ClusterMember::start(base.clone(), member_config(&schema, "b", P)).await?;
    let holders = until_slots_settled(&[&a, &b2, &c], SLOTS).await?;
    let back: Vec<u32> = b2.detection_fences().into_keys().collect();
    assert_eq!(back, b_slots.keys().copied().collect::<Vec<_>>(), "{holders:?}");
    for m in [&a, &b2, &c] {
        m.leave().await;
    }
    // A graceful leave gives every slot back at once.
    let leases = base.cluster_leases().await?;
    assert!(leases.iter().filter(|l| l.partition < 0).all(|l| !l.live), "{leases:?}");
    assert_eq!(leases.iter().filter(|l| l.partition < 0).count(), SLOTS as usize, "{leases:?}");
    schema.drop_all().await
}

/// `n` failed logins from `ip`, committed at seqs 1..=n.
fn failed_logins(ip: &str, n: i64) -> Vec<vigil::event::CommittedEvent> {
    let t = vigil::event::now_ms();
    (1..=n)
        .map(|i| {
            let e = serde_json::json!({
                "event_id": format!("slot-{i}"), "timestamp": t + i, "received_at": t + i, "seq": i,
                "mask_policy": 1, "category": "authentication", "action": "login_failed", "outcome": "failure",
                "severity": "low", "user_id": format!("u{i}"), "ip": ip,
            });
            let serde_json::Value::Object(map) = e else { unreachable!() };
            vigil::event::CommittedEvent::from_canon(i, vigil::ledger::canon::to_canonical(&map))
        })
        .collect()
}

#[test]
fn each_slots_evaluator_runs_exactly_the_rules_of_its_slot() -> anyhow::Result<()> {
    use std::sync::Arc;
    use vigil::cluster::placement::rule_slot;
    use vigil::detect::{Evaluator, RuleFilter};
    const SLOTS: u32 = 8;
    let dir = vigil_tests::example_rules()?;
    let registry =
        Arc::new(vigil::deploy::build_registry(&vigil::config::Config::default(), None, Default::default())?);
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "wasm") {
            registry.deploy(&std::fs::read(&path)?, None, "test")?;
        }
    }
    let all: Vec<String> = registry.current().detection.iter().map(|r| r.name().to_owned()).collect();
    anyhow::ensure!(all.iter().any(|n| n == "brute_force"), "{all:?}");
    let home = rule_slot("brute_force", SLOTS);
    let mut placed: Vec<String> = Vec::new();
    for slot in 0..SLOTS {
        let filter: RuleFilter = Arc::new(move |name: &str| rule_slot(name, SLOTS) == slot);
        let mut evaluator = Evaluator::with_filter(registry.clone(), filter);
        let names: Vec<String> = evaluator.rules().iter().map(|r| r.name().to_owned()).collect();
        assert!(names.iter().all(|n| rule_slot(n, SLOTS) == slot), "slot {slot}: {names:?}");
        assert_eq!(evaluator.rule_count(), names.len());
        placed.extend(names);
        // brute_force alerts at the 6th failure from one address, only from its slot.
        let mut events = failed_logins("198.51.100.44", 7);
        let out = evaluator.evaluate(&mut events);
        assert_eq!(events.len(), 7, "the events are lent back");
        let raised = out.alerts.iter().filter(|a| a.rule == "brute_force").count();
        assert_eq!(raised, usize::from(slot == home), "slot {slot}: {:?}", out.alerts);
    }
    // Every active detection rule is in exactly one slot.
    placed.sort();
    let mut expected = all.clone();
    expected.sort();
    assert_eq!(placed, expected);
    // Unfiltered: every rule, as before.
    assert_eq!(Evaluator::new(registry.clone()).rules().len(), all.len());
    Ok(())
}
