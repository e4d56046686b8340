//! Round trips of the export format and the offline verifier's findings on damaged files.

use super::*;
use crate::ledger::keys::CheckpointKeys;

/// An export of `n` events with a checkpoint every `every` seqs (and at the end when
/// `sign_tail`).
fn export(n: i64, every: i64, sign_tail: bool) -> (Vec<Vec<u8>>, CheckpointKeys) {
    let keys = CheckpointKeys::from_seed([3; 32]);
    let mut lines = vec![
        Line::Header {
            format: FORMAT.into(),
            from: 1,
            to: n,
            prev_hash: hex::encode(GENESIS),
            exported_at: 1,
            partition: None,
            partitions: None,
        }
        .to_bytes(),
    ];
    let mut prev = GENESIS;
    let mut cp_id = 0;
    for seq in 1..=n {
        let canon = format!(r#"{{"action":"login","category":"authentication","seq":{seq}}}"#);
        let hash = chain_hash(&prev, canon.as_bytes());
        lines.push(Line::Event { seq, prev_hash: hex::encode(prev), hash: hex::encode(hash), canon }.to_bytes());
        if seq % every == 0 || (sign_tail && seq == n) {
            cp_id += 1;
            let cp = keys.sign(cp_id, seq, hash, 1000 + seq, cp_id - 1);
            lines.push(Line::Checkpoint(CheckpointJson::from(&cp)).to_bytes());
        }
        prev = hash;
    }
    lines.push(Line::End { events: n as u64, last_seq: n }.to_bytes());
    (lines, keys)
}

fn run(lines: &[Vec<u8>], keys: &CheckpointKeys) -> OfflineReport {
    let bytes: Vec<u8> = lines.concat();
    verify_reader(&bytes[..], keys.verifier().clone(), |_, _| {}).unwrap()
}

fn kinds(r: &OfflineReport) -> Vec<(i64, FailureKind)> {
    r.failures.iter().map(|f| (f.seq, f.kind)).collect()
}

#[test]
fn an_intact_signed_export_is_ok() {
    let (lines, keys) = export(20, 5, true);
    let r = run(&lines, &keys);
    assert_eq!((r.status, r.verified, r.checkpoints_checked, r.signed_to), ("ok", 20, 4, 20), "{r:?}");
}

#[test]
fn an_unsigned_tail_is_reported_not_ok() {
    let (lines, keys) = export(22, 5, false);
    let r = run(&lines, &keys);
    assert_eq!(r.status, "unsigned");
    assert_eq!(r.unsigned, Some(SeqRange { from: 21, to: 22 }));
}

#[test]
fn every_kind_of_tampering_is_located() {
    let (lines, keys) = export(20, 5, true);
    // Line i+1 holds the event of seq i until the first checkpoint; find lines by seq.
    let at = |seq: i64| {
        lines
            .iter()
            .position(|l| {
                parse_line(&l[..l.len() - 1]).is_ok_and(|x| matches!(x, Line::Event { seq: s, .. } if s == seq))
            })
            .unwrap()
    };
    // Edited canon.
    let mut edited = lines.clone();
    edited[at(7)] = String::from_utf8(edited[at(7)].clone()).unwrap().replace("login", "logout").into_bytes();
    assert_eq!(kinds(&run(&edited, &keys)), vec![(7, FailureKind::HashMismatch)]);
    // Deleted line.
    let mut deleted = lines.clone();
    deleted.remove(at(12));
    let k = kinds(&run(&deleted, &keys));
    assert!(k.contains(&(12, FailureKind::MissingSeq)), "{k:?}");
    // Reordered lines.
    let mut swapped = lines.clone();
    swapped.swap(at(3), at(4));
    let k = kinds(&run(&swapped, &keys));
    assert!(k.iter().any(|(s, _)| *s == 3) && k.iter().any(|(s, _)| *s == 4), "{k:?}");
    // Inserted line (a copy of seq 8 after seq 8).
    let mut inserted = lines.clone();
    inserted.insert(at(8) + 1, lines[at(8)].clone());
    let k = kinds(&run(&inserted, &keys));
    assert!(k.contains(&(8, FailureKind::ChainBreak)), "{k:?}");
    // Consistent rewrite of seq 9..20 (chain recomputed, no key to re-sign).
    let mut rewritten = lines[..at(9)].to_vec();
    let mut prev = match parse_line(&lines[at(8)][..lines[at(8)].len() - 1]).unwrap() {
        Line::Event { hash, .. } => to_hash(&hex::decode(hash).unwrap()).unwrap(),
        _ => unreachable!(),
    };
    for l in &lines[at(9)..] {
        match parse_line(&l[..l.len() - 1]).unwrap() {
            Line::Event { seq, canon, .. } => {
                let canon = canon.replace("login", "logout");
                let hash = chain_hash(&prev, canon.as_bytes());
                rewritten
                    .push(Line::Event { seq, prev_hash: hex::encode(prev), hash: hex::encode(hash), canon }.to_bytes());
                prev = hash;
            }
            _ => rewritten.push(l.clone()),
        }
    }
    let r = run(&rewritten, &keys);
    assert_eq!(r.status, "failed");
    assert!(kinds(&r).contains(&(10, FailureKind::BadCheckpoint)), "{:?}", kinds(&r));
    // Dropped tail (cut after a checkpoint): the end line is missing.
    let cut = &lines[..at(15) + 2];
    let k = kinds(&run(cut, &keys));
    assert!(k.contains(&(16, FailureKind::Truncated)), "{k:?}");
    // A checkpoint signed by another key.
    let other = CheckpointKeys::from_seed([4; 32]);
    let r = run(&lines, &other);
    assert!(r.failures.iter().all(|f| f.kind == FailureKind::BadCheckpoint) && r.failure_count == 4, "{r:?}");
    // Garbage lines never panic and are failures.
    for junk in [
        &b"not json\n"[..],
        b"{\"type\":\"event\"}\n",
        b"\xff\xfe\n",
        b"{\"type\":\"event\",\"seq\":-9223372036854775808,\"prev_hash\":\"\",\"hash\":\"\",\"canon\":\"\"}\n",
    ] {
        let mut bad = lines.clone();
        bad.insert(3, junk.to_vec());
        assert_eq!(run(&bad, &keys).status, "failed");
    }
}

#[test]
fn csv_fields_are_quoted_and_formulas_neutralized() {
    let mut out = String::new();
    for v in ["plain", "a,b", "say \"hi\"", "=cmd|' /C calc'!A0", "-2+3", "line\nbreak"] {
        csv_field(v, &mut out);
        out.push('|');
    }
    assert_eq!(out, "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"'=cmd|' /C calc'!A0\"|\"'-2+3\"|\"line\nbreak\"|");
}

/// A cluster export: a section per partition, each an export of its own chain whose
/// checkpoints are signed for its partition.
fn sections(n: i64) -> (Vec<Vec<Vec<u8>>>, CheckpointKeys) {
    let keys = CheckpointKeys::from_seed([3; 32]);
    let mut out = Vec::new();
    for p in 0..3u32 {
        let header = Line::Header {
            format: FORMAT.into(),
            from: 1,
            to: n,
            prev_hash: hex::encode(GENESIS),
            exported_at: 1,
            partition: Some(p),
            partitions: Some(3),
        };
        let mut lines = vec![header.to_bytes()];
        let mut prev = GENESIS;
        for seq in 1..=n {
            let canon = format!(r#"{{"action":"login","category":"authentication","partition_test":{p},"seq":{seq}}}"#);
            let hash = chain_hash(&prev, canon.as_bytes());
            lines.push(Line::Event { seq, prev_hash: hex::encode(prev), hash: hex::encode(hash), canon }.to_bytes());
            prev = hash;
        }
        let cp = keys.sign_in(p, 1, n, prev, 1000, 0);
        lines.push(Line::Checkpoint(CheckpointJson::from(&cp)).to_bytes());
        lines.push(Line::End { events: n as u64, last_seq: n }.to_bytes());
        out.push(lines);
    }
    (out, keys)
}

fn run_sections(parts: &[Vec<Vec<u8>>], keys: &CheckpointKeys) -> PartitionedReport {
    let bytes: Vec<u8> = parts.iter().flatten().flatten().copied().collect();
    match verify_export(&bytes[..], keys.verifier().clone(), |_, _| {}).unwrap() {
        ExportReport::Partitioned(r) => r,
        ExportReport::Log(r) => panic!("sections expected: {r:?}"),
    }
}

#[test]
fn a_single_node_export_is_reported_as_before_by_verify_export() {
    let (lines, keys) = export(20, 5, true);
    let bytes: Vec<u8> = lines.concat();
    let ExportReport::Log(r) = verify_export(&bytes[..], keys.verifier().clone(), |_, _| {}).unwrap() else {
        panic!("one log");
    };
    assert_eq!(serde_json::to_value(&r).unwrap(), serde_json::to_value(run(&lines, &keys)).unwrap());
}

#[test]
fn each_section_is_its_own_chain_and_failures_name_their_partition() {
    let (parts, keys) = sections(6);
    let r = run_sections(&parts, &keys);
    assert_eq!((r.status, r.verified, r.checkpoints_checked, r.failure_count), ("ok", 18, 3, 0), "{r:?}");
    assert_eq!(r.partitions.iter().map(|s| s.partition).collect::<Vec<_>>(), vec![Some(0), Some(1), Some(2)]);
    // An edited event of partition 1.
    let mut edited = parts.clone();
    edited[1][3] = String::from_utf8(edited[1][3].clone()).unwrap().replace("login", "logout").into_bytes();
    let r = run_sections(&edited, &keys);
    assert_eq!(r.status, "failed");
    assert!(r.failures.iter().all(|f| f.partition == Some(1)), "{:?}", r.failures);
    assert!(r.failures.iter().any(|f| f.failure.seq == 3 && f.failure.kind == FailureKind::HashMismatch));
    // Partition 2's checkpoint moved into partition 1's section (same seq; signed for 2).
    let mut moved = parts.clone();
    let cp2 = moved[2][7].clone();
    moved[1].insert(7, cp2);
    let r = run_sections(&moved, &keys);
    assert!(
        r.failures.iter().any(|f| f.partition == Some(1) && f.failure.kind == FailureKind::BadCheckpoint),
        "{:?}",
        r.failures
    );
    // A section deleted, and one repeated.
    let deleted = vec![parts[0].clone(), parts[2].clone()];
    let r = run_sections(&deleted, &keys);
    assert!(r.failures.iter().any(|f| f.partition == Some(1) && f.failure.actual == "absent"), "{:?}", r.failures);
    let repeated = vec![parts[0].clone(), parts[1].clone(), parts[1].clone(), parts[2].clone()];
    let r = run_sections(&repeated, &keys);
    assert!(r.failures.iter().any(|f| f.partition == Some(1) && f.failure.kind == FailureKind::ChainBreak));
    // A section cut short (its end line gone).
    let mut cut = parts.clone();
    cut[0].pop();
    let r = run_sections(&cut, &keys);
    assert!(r.failures.iter().any(|f| f.partition == Some(0) && f.failure.kind == FailureKind::Truncated));
    assert!(r.failures.iter().all(|f| f.partition == Some(0)), "{:?}", r.failures);
}
