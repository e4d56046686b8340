//! Retention tiers and the archive, on both backends, under a controllable clock: a purge
//! first writes its range to the archive (a directory, or S3 on a private moto server),
//! reads it back verified, then names the part in its chain record; `vigil verify
//! --archive ... --file live.ndjson` checks the parts and the live log as one chain (and
//! names the seq of an edited byte, a deleted part, a missing first part); `vigil archive
//! list|restore` read the archive without a server; an unreachable archive means no purge.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use vigil::clock::Clock;
use vigil::config::ArchiveConfig;
use vigil::ledger::archive::{Archive, Listing};
use vigil_tests::{Backend, TestApp, both_backends, failures, seed, spawn_app_with};

both_backends!(
    an_archive_round_trip_survives_a_restart_and_verifies_offline_with_the_live_log,
    tampering_with_an_archive_part_is_detected_and_located,
    a_purge_with_the_archive_unreachable_deletes_nothing_and_the_next_run_catches_up,
    an_s3_archive_on_a_local_moto_server_lists_restores_and_verifies,
    parts_past_keep_days_are_deleted_recorded_and_not_reported_missing,
    a_manifest_dated_back_does_not_get_its_part_deleted,
);

const DAY: i64 = 86_400_000;

fn temp_dir(name: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("vigil-{name}-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

async fn archived_app(backend: Backend, archive: ArchiveConfig) -> anyhow::Result<(TestApp, Clock)> {
    let clock = Clock::manual(vigil::event::now_ms());
    let app = spawn_app_with(backend, |c| {
        c.clock = clock.clone();
        c.retention.hot_days = Some(30);
        c.retention.archive = Some(archive);
    })
    .await?;
    Ok((app, clock))
}

/// Stores `n` events, signs the head, ages everything past the hot tier and runs the purge
/// (the job also wakes when the clock moves; either run does it, the other finds nothing).
async fn age_and_purge(app: &TestApp, clock: &Clock, n: usize) -> anyhow::Result<Vec<i64>> {
    let seqs = seed(app, n).await?;
    app.server.state.sequencer.checkpoint_now().await?;
    clock.advance(31 * DAY);
    app.server.state.retention.run_once().await?;
    Ok(seqs)
}

async fn listing(config: &ArchiveConfig) -> anyhow::Result<Listing> {
    Ok(Archive::open(config)?.list().await?)
}

async fn public_key(app: &TestApp, dir: &Path) -> anyhow::Result<String> {
    let (_, pk) = app.get("/v1/integrity/public-key").await?;
    let path = dir.join("vigil.pub");
    std::fs::write(&path, pk["public_key"].as_str().unwrap_or_default())?;
    Ok(path.display().to_string())
}

async fn export_live(app: &TestApp, path: &Path) -> anyhow::Result<()> {
    let resp = app.client.get(app.url("/v1/events/export?format=ndjson")).bearer_auth(&app.admin_key).send().await?;
    anyhow::ensure!(resp.status().is_success(), "export: {}", resp.status());
    std::fs::write(path, resp.bytes().await?)?;
    Ok(())
}

/// Runs the `vigil` binary; returns (exit code, stdout as JSON when it is, stderr).
fn vigil(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<(i32, Value, String)> {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil")).args(args).envs(env.iter().copied()).output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or(Value::String(stdout));
    Ok((out.status.code().unwrap_or(-1), json, stderr))
}

fn verify_chain(archive: &str, live: &Path, key: &str) -> anyhow::Result<(i32, Value)> {
    let live = live.display().to_string();
    let (code, report, stderr) =
        vigil(&["verify", "--archive", archive, "--file", &live, "--public-key", key, "--json"], &[])?;
    anyhow::ensure!(report.is_object(), "verify printed no report: {report} {stderr}");
    Ok((code, report))
}

fn seq_failures(report: &Value) -> Vec<(i64, String)> {
    failures(report)
}

async fn an_archive_round_trip_survives_a_restart_and_verifies_offline_with_the_live_log(
    backend: Backend,
) -> anyhow::Result<()> {
    let work = temp_dir("archive-rt")?;
    let dir = work.join("archive");
    let config = ArchiveConfig { dir: Some(dir.clone()), ..ArchiveConfig::default() };
    let (app, clock) = archived_app(backend, config.clone()).await?;
    let seqs = age_and_purge(&app, &clock, 12).await?;
    let first = listing(&config).await?;
    assert_eq!(first.parts.len(), 1, "{first:?}");
    let part1 = first.parts[0].clone();
    assert_eq!(part1.from_seq, 1);
    assert_eq!(
        app.server.state.store.retention_floor().await?,
        part1.to_seq,
        "rows purged up to the part's end, not beyond"
    );
    // The purge record names the part with its SHA-256.
    let (_, purges) = app.get("/v1/events?action=retention_purge").await?;
    let archived = &purges["events"][0]["details"]["archive"];
    assert_eq!(archived["sha256"], part1.sha256, "{purges}");
    assert_eq!(archived["object"], part1.object);
    assert_eq!(archived["to_seq"], part1.to_seq);

    // A restart keeps everything; the next range goes to a second part that chains on.
    let app = app.restart().await?;
    age_and_purge(&app, &clock, 6).await?;
    let both = listing(&config).await?;
    assert_eq!(both.parts.len(), 2, "{both:?}");
    assert_eq!(both.parts[1].from_seq, part1.to_seq + 1);
    assert_eq!(both.parts[1].prev_hash, part1.last_hash);
    assert!(both.unconfirmed.is_empty() && both.unreadable.is_empty(), "{both:?}");
    seed(&app, 3).await?;
    assert_eq!(app.verify().await?["status"], "ok");
    assert_eq!(app.metric("vigil_archive_parts_total").await?, Some(1), "one part since the restart");
    let (_, status) = app.get("/v1/integrity/status").await?;
    assert_eq!(status["archive"]["last_part"]["object"], both.parts[1].object, "{status}");
    assert!(status["archive"]["location"].as_str().is_some_and(|l| l.contains("archive")), "{status}");
    // The compliance evidence (PCI DSS 10.5) names the archive and its newest part.
    let (_, pci) = app.get("/v1/reports/compliance?framework=pci-dss&period=day").await?;
    let retention = &pci["evidence"]["retention"];
    assert_eq!(retention["archive"]["location"], status["archive"]["location"], "{retention}");
    assert_eq!(retention["archive"]["last_part"]["object"], both.parts[1].object, "{retention}");
    assert_eq!(retention["hot_days"], app.config.hot_days(), "{retention}");

    // Offline: the two parts and the live export are one chain from seq 1 to the head.
    let live = work.join("live.ndjson");
    export_live(&app, &live).await?;
    let key = public_key(&app, &work).await?;
    let archive = dir.display().to_string();
    let (code, report) = verify_chain(&archive, &live, &key)?;
    assert_eq!((code, report["status"].as_str()), (0, Some("ok")), "{report}");
    let head = app.get("/v1/integrity/head").await?.1["seq"].as_i64().unwrap();
    assert_eq!((report["from"].as_i64(), report["to"].as_i64()), (Some(1), Some(head)), "{report}");
    assert_eq!(report["verified"].as_i64(), Some(head), "{report}");
    assert_eq!(report["parts"].as_array().map(Vec::len), Some(3), "{report}");
    for part in &report["parts"].as_array().unwrap()[..2] {
        assert!(part["purge_record"].as_i64().is_some(), "each part is named by its purge record: {report}");
    }

    // list and restore, without a server.
    let (code, listed, _) = vigil(&["archive", "list", "--archive", &archive, "--json"], &[])?;
    assert_eq!(code, 0);
    assert_eq!(listed["parts"].as_array().map(Vec::len), Some(2), "{listed}");
    let restored = work.join("restored.ndjson");
    let out = restored.display().to_string();
    let (code, summary, stderr) = vigil(
        &[
            "archive",
            "restore",
            "--archive",
            &archive,
            "--from-seq",
            "3",
            "--to-seq",
            "5",
            "--out",
            &out,
            "--public-key",
            &key,
        ],
        &[],
    )?;
    assert_eq!(code, 0, "{summary} {stderr}");
    assert_eq!(summary["from"].as_i64(), Some(3), "{summary}");
    // Extended to the checkpoint that signs seq 5 (the part's end), so the file is signed.
    assert_eq!(summary["to"].as_i64(), Some(part1.to_seq), "{summary}");
    let (code, alone, _) = vigil(&["verify", "--file", &out, "--public-key", &key, "--json"], &[])?;
    assert_eq!((code, alone["status"].as_str(), alone["from"].as_i64()), (0, Some("ok"), Some(3)), "{alone}");
    let text = std::fs::read_to_string(&restored)?;
    assert!(text.contains("\"type\":\"event\",\"seq\":4,"), "{text}");
    assert!(!text.contains("\"type\":\"event\",\"seq\":2,"), "only the range asked for: {text}");
    // Restore never overwrites: not the file it wrote, not a file a symlink at --out points
    // to, not a file beside it that an older version used as its scratch file.
    let victim = work.join("victim.txt");
    std::fs::write(&victim, "keep me")?;
    let link = work.join("link.ndjson");
    std::os::unix::fs::symlink(&victim, &link)?;
    let scratch = work.join("fresh.body.tmp");
    std::fs::write(&scratch, "mine")?;
    let fresh = work.join("fresh.ndjson").display().to_string();
    for target in [out.clone(), link.display().to_string(), fresh.clone()] {
        let (code, summary, stderr) = vigil(
            &["archive", "restore", "--archive", &archive, "--from-seq", "1", "--out", &target, "--public-key", &key],
            &[],
        )?;
        if target == fresh {
            assert_eq!(code, 0, "a new file: {summary} {stderr}");
        } else {
            assert_ne!(code, 0, "{target} exists: {summary}");
            assert!(stderr.contains("already exists"), "{target}: {stderr}");
        }
    }
    assert_eq!(std::fs::read_to_string(&restored)?, text, "the earlier restore is untouched");
    assert_eq!(std::fs::read_to_string(&victim)?, "keep me");
    assert_eq!(std::fs::read_to_string(&scratch)?, "mine");
    let leftovers: Vec<_> = std::fs::read_dir(&work)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert_eq!(leftovers, vec!["fresh.body.tmp".to_owned()], "no scratch file left");
    // By event time: sample event i has the timestamp 1_767_225_600_000 + i s (the second
    // round of events repeats them, so the range runs into the second part).
    let (code, by_time, stderr) = vigil(
        &[
            "archive",
            "restore",
            "--archive",
            &archive,
            "--since",
            "1767225602000",
            "--until",
            "1767225604000",
            "--out",
            &work.join("by-time.ndjson").display().to_string(),
            "--public-key",
            &key,
        ],
        &[],
    )?;
    assert_eq!(code, 0, "{by_time} {stderr}");
    assert_eq!(by_time["from"].as_i64(), Some(seqs[2]), "sample event 2 first: {by_time}");
    // The live chain was not touched by any of this.
    assert_eq!(app.verify().await?["status"], "ok");
    Ok(())
}

async fn tampering_with_an_archive_part_is_detected_and_located(backend: Backend) -> anyhow::Result<()> {
    let work = temp_dir("archive-tamper")?;
    let dir = work.join("archive");
    let config = ArchiveConfig { dir: Some(dir.clone()), ..ArchiveConfig::default() };
    let (app, clock) = archived_app(backend, config.clone()).await?;
    for n in [8, 5, 4] {
        age_and_purge(&app, &clock, n).await?;
    }
    let parts = listing(&config).await?.parts;
    assert_eq!(parts.len(), 3, "{parts:?}");
    seed(&app, 2).await?;
    let live = work.join("live.ndjson");
    export_live(&app, &live).await?;
    let key = public_key(&app, &work).await?;
    let archive = dir.display().to_string();
    assert_eq!(verify_chain(&archive, &live, &key)?.0, 0);

    // One byte of one event in the middle part.
    let middle = dir.join(&parts[1].object);
    let original = std::fs::read_to_string(&middle)?;
    // The first client event in it (the part also holds the server's purge record).
    let line = original.lines().find(|l| l.contains("\"type\":\"event\"") && l.contains("user-")).unwrap();
    let victim = serde_json::from_str::<Value>(line)?["seq"].as_i64().unwrap();
    let edited: Vec<String> =
        original.lines().map(|l| if l == line { l.replacen("user-", "usEr-", 1) } else { l.to_owned() }).collect();
    assert_ne!(edited.join("\n") + "\n", original, "the test edits a byte");
    std::fs::write(&middle, edited.join("\n") + "\n")?;
    let (code, report) = verify_chain(&archive, &live, &key)?;
    assert_eq!(code, 1, "{report}");
    assert!(seq_failures(&report).contains(&(victim, "hash_mismatch".into())), "{report}");

    // A manifest that lies about its part (its SHA-256 and size) while the part is intact:
    // named at the manifest's first seq; restore refuses it too.
    std::fs::write(&middle, &original)?;
    assert_eq!(verify_chain(&archive, &live, &key)?.0, 0, "the part is back");
    let manifest_path = middle.with_extension("json");
    let honest = std::fs::read(&manifest_path)?;
    let mut lie: Value = serde_json::from_slice(&honest)?;
    lie["sha256"] = Value::String("0".repeat(64));
    lie["bytes"] = Value::from(parts[1].bytes + 1000);
    std::fs::write(&manifest_path, serde_json::to_vec(&lie)?)?;
    let (code, report) = verify_chain(&archive, &live, &key)?;
    assert_eq!(code, 1, "{report}");
    assert!(seq_failures(&report).contains(&(parts[1].from_seq, "hash_mismatch".into())), "{report}");
    let out = work.join("lied.ndjson").display().to_string();
    let from = parts[1].from_seq.to_string();
    let (code, summary, _) = vigil(
        &["archive", "restore", "--archive", &archive, "--from-seq", &from, "--out", &out, "--public-key", &key],
        &[],
    )?;
    assert_eq!(code, 1, "{summary}");
    assert!(!Path::new(&out).exists(), "nothing restored from a lying manifest");
    std::fs::write(&manifest_path, &honest)?;
    // A manifest naming another part's object (which the server would delete when it
    // expires or redoes "its" part) is not trusted: listed as unreadable, and verify fails.
    let mut other: Value = serde_json::from_slice(&honest)?;
    other["object"] = Value::String(parts[0].object.clone());
    std::fs::write(&manifest_path, serde_json::to_vec(&other)?)?;
    let listed = listing(&config).await?;
    assert!(listed.parts.iter().all(|m| m.from_seq != parts[1].from_seq), "{listed:?}");
    assert_eq!(listed.unreadable.len(), 1, "{listed:?}");
    let (code, report) = verify_chain(&archive, &live, &key)?;
    assert_eq!(code, 1, "{report}");
    std::fs::write(&manifest_path, &honest)?;
    assert_eq!(verify_chain(&archive, &live, &key)?.0, 0, "everything back");

    // The same part given twice: the overlap is named.
    std::fs::write(&middle, &original)?;
    let (parts_dir, again) = (dir.join("parts"), middle.display().to_string());
    let first_file = parts_dir.join(parts[0].object.trim_start_matches("parts/")).display().to_string();
    let (code, report, _) = vigil(
        &["verify", "--file", &first_file, "--file", &again, "--file", &again, "--public-key", &key, "--json"],
        &[],
    )?;
    assert_eq!(code, 1, "{report}");
    assert!(seq_failures(&report).contains(&(parts[1].from_seq, "chain_break".into())), "{report}");

    // A middle part deleted: the hole is named.
    std::fs::write(&middle, &original)?;
    let middle_manifest = middle.with_extension("json");
    let manifest = std::fs::read(&middle_manifest)?;
    std::fs::remove_file(&middle)?;
    std::fs::remove_file(&middle_manifest)?;
    let (code, report) = verify_chain(&archive, &live, &key)?;
    assert_eq!(code, 1, "{report}");
    assert!(seq_failures(&report).contains(&(parts[1].from_seq, "missing_seq".into())), "{report}");

    // The first part deleted: nothing before it to break, but its purge record names it.
    std::fs::write(&middle, &original)?;
    std::fs::write(&middle_manifest, manifest)?;
    assert_eq!(verify_chain(&archive, &live, &key)?.0, 0, "everything back");
    let first = dir.join(&parts[0].object);
    std::fs::remove_file(&first)?;
    std::fs::remove_file(first.with_extension("json"))?;
    let (code, report) = verify_chain(&archive, &live, &key)?;
    assert_eq!(code, 1, "{report}");
    assert!(seq_failures(&report).contains(&(1, "missing_seq".into())), "{report}");
    Ok(())
}

async fn a_purge_with_the_archive_unreachable_deletes_nothing_and_the_next_run_catches_up(
    backend: Backend,
) -> anyhow::Result<()> {
    let work = temp_dir("archive-down")?;
    // A file where the archive directory should be: every write to it fails.
    let dir = work.join("archive");
    std::fs::write(&dir, b"not a directory")?;
    let config = ArchiveConfig { dir: Some(dir.clone()), ..ArchiveConfig::default() };
    let (app, clock) = archived_app(backend, config.clone()).await?;
    seed(&app, 12).await?;
    app.server.state.sequencer.checkpoint_now().await?;
    let head = app.get("/v1/integrity/head").await?.1["seq"].as_i64().unwrap();
    clock.advance(31 * DAY);
    let refused = app.server.state.retention.run_once().await;
    // The job woken by the clock may have tried first; then this run found the same.
    assert!(refused.is_err() || app.metric("vigil_archive_failures_total").await? >= Some(1), "{refused:?}");
    assert!(app.metric("vigil_archive_failures_total").await? >= Some(1));
    assert_eq!(app.server.state.store.retention_floor().await?, 0, "nothing purged");
    let (_, status) = app.get("/v1/integrity/status").await?;
    assert!(status["archive"]["last_failure"]["kind"].is_string(), "{status}");
    assert!(status["archive"]["last_part"].is_null(), "{status}");
    let report = app.verify().await?;
    assert_eq!((report["status"].as_str(), report["from"].as_i64()), (Some("ok"), Some(1)), "{report}");
    let (_, events) = app.get("/v1/events?limit=1000").await?;
    assert!(events["events"].as_array().unwrap().iter().any(|e| e["seq"] == 1), "seq 1 still queryable");
    let (_, purges) = app.get("/v1/events?action=retention_purge").await?;
    assert_eq!(purges["events"].as_array().map(Vec::len), Some(0), "no purge recorded: {purges}");
    // The server is fine meanwhile.
    seed(&app, 2).await?;

    // The store comes back: the next run archives and purges.
    std::fs::remove_file(&dir)?;
    let purge = app.server.state.retention.run_once().await?.expect("a purge");
    let part = purge.archive.expect("archived first");
    assert_eq!((part.from_seq, purge.floor), (1, part.to_seq));
    assert!(part.to_seq >= head, "{part:?}");
    assert_eq!(listing(&config).await?.parts.len(), 1);
    assert_eq!(app.verify().await?["status"], "ok");
    Ok(())
}

/// Two environment variables of this process whose values can stand for S3 credentials
/// (moto accepts any): the test cannot set variables of its own (edition 2024 makes
/// `set_var` unsafe while other threads run), and the server only reads the names it is given.
fn credential_env_names() -> anyhow::Result<(String, String)> {
    let mut names: Vec<String> = std::env::vars()
        .filter(|(k, v)| {
            !k.starts_with("AWS_")
                && (4..=64).contains(&v.len())
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        })
        .map(|(k, _)| k)
        .collect();
    names.sort();
    anyhow::ensure!(names.len() >= 2, "no usable environment variables");
    Ok((names[0].clone(), names[1].clone()))
}

async fn an_s3_archive_on_a_local_moto_server_lists_restores_and_verifies(backend: Backend) -> anyhow::Result<()> {
    let moto = vigil_tests::s3::Moto::start().await?;
    moto.create_bucket("vigil-archive").await?;
    let (id_env, secret_env) = credential_env_names()?;
    let config = ArchiveConfig {
        s3_bucket: Some("vigil-archive".into()),
        s3_endpoint: Some(moto.endpoint.clone()),
        s3_region: Some("us-east-1".into()),
        s3_prefix: "prod/eu".into(),
        allow_http: true,
        access_key_id_env: Some(id_env.clone()),
        secret_access_key_env: Some(secret_env.clone()),
        ..ArchiveConfig::default()
    };
    let (app, clock) = archived_app(backend, config.clone()).await?;
    age_and_purge(&app, &clock, 10).await?;
    age_and_purge(&app, &clock, 4).await?;
    let parts = listing(&config).await?.parts;
    assert_eq!(parts.len(), 2, "{parts:?}");
    assert_eq!(parts[1].from_seq, parts[0].to_seq + 1);
    seed(&app, 2).await?;
    let work = temp_dir("archive-s3")?;
    let live = work.join("live.ndjson");
    export_live(&app, &live).await?;
    let key = public_key(&app, &work).await?;

    // The CLI reads the bucket through the server's configuration file...
    let config_file = work.join("vigil.toml");
    std::fs::write(
        &config_file,
        format!(
            "[retention.archive]\ns3_bucket = \"vigil-archive\"\ns3_endpoint = \"{}\"\ns3_region = \"us-east-1\"\n\
             s3_prefix = \"prod/eu\"\nallow_http = true\naccess_key_id_env = \"{id_env}\"\n\
             secret_access_key_env = \"{secret_env}\"\n",
            moto.endpoint
        ),
    )?;
    let cfg = config_file.display().to_string();
    let (code, listed, stderr) = vigil(&["archive", "list", "--config", &cfg, "--json"], &[])?;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(listed["parts"].as_array().map(Vec::len), Some(2), "{listed}");
    let live_arg = live.display().to_string();
    let (code, report, stderr) =
        vigil(&["verify", "--archive-config", &cfg, "--file", &live_arg, "--public-key", &key, "--json"], &[])?;
    assert_eq!(
        (code, report["status"].as_str(), report["from"].as_i64()),
        (0, Some("ok"), Some(1)),
        "{report} {stderr}"
    );

    // ...or as s3://bucket/prefix with the standard AWS environment.
    let aws = [
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ];
    let out = work.join("restored.ndjson").display().to_string();
    let (code, summary, stderr) = vigil(
        &[
            "archive",
            "restore",
            "--archive",
            "s3://vigil-archive/prod/eu",
            "--from-seq",
            "2",
            "--to-seq",
            "4",
            "--out",
            &out,
            "--public-key",
            &key,
        ],
        &aws,
    )?;
    assert_eq!(code, 0, "{summary} {stderr}");
    assert_eq!((summary["from"].as_i64(), summary["to"].as_i64()), (Some(2), Some(parts[0].to_seq)), "{summary}");
    let (code, alone, _) = vigil(&["verify", "--file", &out, "--public-key", &key, "--json"], &[])?;
    assert_eq!((code, alone["status"].as_str()), (0, Some("ok")), "{alone}");
    Ok(())
}

async fn parts_past_keep_days_are_deleted_recorded_and_not_reported_missing(backend: Backend) -> anyhow::Result<()> {
    let work = temp_dir("archive-keep")?;
    let dir = work.join("archive");
    let config = ArchiveConfig { dir: Some(dir.clone()), keep_days: 40, ..ArchiveConfig::default() };
    let (app, clock) = archived_app(backend, config.clone()).await?;
    age_and_purge(&app, &clock, 6).await?;
    let first = listing(&config).await?.parts;
    assert_eq!(first.len(), 1, "{first:?}");
    // 62 days on: the first part's events are past keep_days, the second's are not.
    age_and_purge(&app, &clock, 4).await?;
    let left = listing(&config).await?.parts;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].from_seq, first[0].to_seq + 1, "the newer part stays");
    assert!(!dir.join(&first[0].object).exists(), "the old part's object is gone");
    assert_eq!(app.metric("vigil_archive_parts_expired_total").await?, Some(1));
    let (_, expired) = app.get("/v1/events?action=archive_part_expired").await?;
    assert_eq!(expired["events"][0]["details"]["archive"]["sha256"], first[0].sha256, "{expired}");
    // The chain from the remaining part on verifies; the deleted range is listed as expired.
    let live = work.join("live.ndjson");
    export_live(&app, &live).await?;
    let key = public_key(&app, &work).await?;
    let (code, report) = verify_chain(&dir.display().to_string(), &live, &key)?;
    assert_eq!((code, report["status"].as_str()), (0, Some("ok")), "{report}");
    assert_eq!(report["expired"][0]["to"].as_i64(), Some(first[0].to_seq), "{report}");
    Ok(())
}

/// A manifest whose checkpoint time was edited to look old does not get its part deleted:
/// only a signed checkpoint dates a part.
async fn a_manifest_dated_back_does_not_get_its_part_deleted(backend: Backend) -> anyhow::Result<()> {
    let work = temp_dir("archive-keep-forged")?;
    let dir = work.join("archive");
    let config = ArchiveConfig { dir: Some(dir.clone()), keep_days: 100, ..ArchiveConfig::default() };
    let (app, clock) = archived_app(backend, config.clone()).await?;
    age_and_purge(&app, &clock, 6).await?;
    let first = listing(&config).await?.parts;
    assert_eq!(first.len(), 1, "{first:?}");
    let manifest_path = dir.join(first[0].object.replace(".ndjson", ".json"));
    let mut forged: Value = serde_json::from_slice(&std::fs::read(&manifest_path)?)?;
    forged["checkpoint"]["created_at"] = Value::from(first[0].checkpoint.created_at - 200 * DAY);
    std::fs::write(&manifest_path, serde_json::to_vec(&forged)?)?;
    // Two more purges (62 days on): the first part is 62 days old, under keep_days, but its
    // manifest now says 262.
    age_and_purge(&app, &clock, 4).await?;
    age_and_purge(&app, &clock, 2).await?;
    assert_eq!(listing(&config).await?.parts.len(), 3);
    assert!(dir.join(&first[0].object).exists(), "the part was deleted on its manifest's word");
    assert_eq!(app.metric("vigil_archive_parts_expired_total").await?, Some(0));
    Ok(())
}
