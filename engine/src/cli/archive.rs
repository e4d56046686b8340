//! `vigil archive list|restore` and `vigil verify --archive ... --file ...`: the retention
//! archive read straight from its directory or bucket (no server, no database; the
//! investigator needs read access to the archive and the public keys, not an API key).
//! Restore never touches the live log: it downloads the parts that hold a range, verifies
//! them as one chain, and writes the range as an export file (`vigil-export-v1`) that
//! verifies on its own with `vigil verify --file`.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{BufRead, Write};

use futures_util::StreamExt;

use super::*;
use crate::ledger::archive::chain::{PartsReport, PartsVerifier};
use crate::ledger::archive::{Archive, Manifest, PartVerifier};
use crate::ledger::export::{FORMAT, Line, parse_line};
use crate::ledger::keys::Verifier;

/// Opens the archive named on the command line (`--archive`), else the one of the
/// configuration file's `[retention.archive]`.
pub fn open_archive(location: Option<&str>, config: Option<&Config>) -> anyhow::Result<Archive> {
    match (location, config.and_then(|c| c.retention.archive.as_ref())) {
        (Some(location), _) => Ok(Archive::open_location(location)?),
        (None, Some(archive)) => Ok(Archive::open(archive)?),
        (None, None) => bail!("give --archive DIR|s3://bucket/prefix, or --config with a [retention.archive] section"),
    }
}

/// `vigil archive list`: the parts, oldest first.
pub async fn archive_list(archive: &Archive, json: bool) -> anyhow::Result<()> {
    let listing = archive.list().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&listing)?);
        return Ok(());
    }
    println!("archive: {}", archive.describe());
    println!(
        "{:>12} {:>12} {:>9} {:>12}  {:<24} {:<24} object",
        "from_seq", "to_seq", "events", "bytes", "archived_at", "first event"
    );
    for m in &listing.parts {
        println!(
            "{:>12} {:>12} {:>9} {:>12}  {:<24} {:<24} {}",
            m.from_seq,
            m.to_seq,
            m.events,
            m.bytes,
            crate::event::format_rfc3339_ms(m.archived_at),
            m.first_time.map_or("-".into(), crate::event::format_rfc3339_ms),
            printable(&m.object)
        );
    }
    for key in &listing.unconfirmed {
        println!("unconfirmed (no manifest: an interrupted upload, never purged): {}", printable(key));
    }
    for (key, why) in &listing.unreadable {
        println!("unreadable manifest {}: {}", printable(key), printable(why));
    }
    if listing.parts.is_empty() {
        println!("(no parts)");
    }
    Ok(())
}

/// Text from the archive as shown on a terminal: control characters (an escape sequence
/// planted in a manifest) replaced.
fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// Reads one local file through a [`PartVerifier`].
fn check_file(file: &Path, keys: &Verifier) -> anyhow::Result<crate::ledger::archive::PartOutcome> {
    let mut f = std::fs::File::open(file).with_context(|| format!("open {}", file.display()))?;
    let mut reader = PartVerifier::new(file.display().to_string(), keys.clone());
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf)?;
        if n == 0 {
            break;
        }
        reader.feed(&buf[..n]);
    }
    Ok(reader.finish())
}

/// A failure when the part read is not the one its manifest describes.
fn check_manifest(chain: &mut PartsVerifier, m: &Manifest, o: &crate::ledger::archive::PartOutcome) {
    let r = &o.report;
    let mut differs = Vec::new();
    if o.sha256 != m.sha256 {
        differs.push(format!("SHA-256 {}", o.sha256));
    }
    if o.bytes != m.bytes {
        differs.push(format!("{} bytes", o.bytes));
    }
    if (r.from, r.to) != (m.from_seq, m.to_seq) {
        differs.push(format!("seqs {}..={}", r.from, r.to));
    }
    if !differs.is_empty() {
        chain.manifest_mismatch(
            &m.object,
            m.from_seq,
            format!(
                "the part its manifest describes: seqs {}..={}, {} bytes, SHA-256 {}",
                m.from_seq, m.to_seq, m.bytes, m.sha256
            ),
            differs.join(", "),
        );
    }
}

/// `vigil verify --archive ... [--file ...]` or `--file A --file B ...`: every part and
/// file verified, then joined as one chain. Prints the JSON report; returns the exit
/// status (0 ok, 1 failed, 3 unsigned tail).
pub async fn verify_chain(
    archive: Option<&Archive>,
    files: &[PathBuf],
    public_keys: &[String],
    json_only: bool,
) -> anyhow::Result<i32> {
    let keys = integrity::parse_keys(public_keys)?;
    let started = std::time::Instant::now();
    let mut chain = PartsVerifier::new();
    if let Some(archive) = archive {
        let listing = archive.list().await?;
        let bar =
            if json_only { indicatif::ProgressBar::hidden() } else { progress(listing.parts.len() as u64, "parts") };
        for m in &listing.parts {
            match archive.check(&m.object, keys.clone()).await {
                Ok(outcome) => {
                    check_manifest(&mut chain, m, &outcome);
                    chain.add(outcome);
                }
                Err(e) => chain.unreadable(&m.object, m.from_seq, m.to_seq, &e.to_string()),
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        for key in &listing.unconfirmed {
            eprintln!("note: {key} has no manifest (an interrupted upload); it is not part of the chain");
        }
        // A manifest that cannot be trusted hides its part from the chain: a failure, not a note.
        for (name, why) in &listing.unreadable {
            let seq = name.split(['-', '.']).next().and_then(|s| s.parse::<i64>().ok()).unwrap_or(1);
            chain.unreadable(&format!("parts/{name}"), seq, seq, &format!("its manifest: {why}"));
        }
    }
    for file in files {
        chain.add(check_file(file, &keys)?);
    }
    let report = chain.finish();
    println!("{}", serde_json::to_string_pretty(&report)?);
    if !json_only {
        summarize(&report, started.elapsed().as_secs_f64());
    }
    Ok(match report.status {
        "ok" => 0,
        "unsigned" => 3,
        _ => 1,
    })
}

fn summarize(report: &PartsReport, secs: f64) {
    eprintln!(
        "{}: {} files, seqs {}..={}, {} events checked in {secs:.1} s, {} checkpoints valid, {} failure(s){}",
        report.status,
        report.parts.len(),
        report.from,
        report.to,
        report.verified,
        report.checkpoints_checked,
        report.failure_count,
        report
            .unsigned
            .map_or(String::new(), |u| format!("; seqs {}..={} are not covered by any checkpoint", u.from, u.to)),
    );
    for f in report.failures.iter().take(20) {
        let f0 = &f.failure;
        eprintln!("  seq {} ({}): {:?}: expected {}, found {}", f0.seq, f.source, f0.kind, f0.expected, f0.actual);
    }
}

/// What `vigil archive restore` brings back.
#[derive(Debug, Clone, Copy)]
pub enum RestoreRange {
    /// Seqs `from..=to` (to: the end of the archive).
    Seqs {
        /// First seq.
        from: i64,
        /// Last seq.
        to: Option<i64>,
    },
    /// Events whose `timestamp` is in `since..until` (epoch ms; until exclusive, as for
    /// exports), and every row between.
    Times {
        /// Start.
        since: Option<i64>,
        /// End.
        until: Option<i64>,
    },
}

/// `vigil archive restore`: downloads and verifies the parts holding the range and writes
/// it to `out` as an export file. Returns the exit status (0, or 1 when the archive does
/// not verify: then nothing is written).
pub async fn archive_restore(
    archive: &Archive,
    public_keys: &[String],
    range: RestoreRange,
    out: &Path,
) -> anyhow::Result<i32> {
    let keys = integrity::parse_keys(public_keys)?;
    // Never overwrite: not a file, not what a symlink points to (checked again, atomically,
    // when the file is created).
    if std::fs::symlink_metadata(out).is_ok() {
        bail!("{} already exists: restore never overwrites a file; give a new --out", out.display());
    }
    let listing = archive.list().await?;
    let parts = &listing.parts;
    let wanted = |m: &Manifest| match range {
        RestoreRange::Seqs { from, to } => m.to_seq >= from && m.from_seq <= to.unwrap_or(i64::MAX),
        RestoreRange::Times { since, until } => match (m.first_time, m.last_time) {
            (Some(lo), Some(hi)) => hi >= since.unwrap_or(i64::MIN) && lo < until.unwrap_or(i64::MAX),
            _ => true,
        },
    };
    let (Some(first), Some(last)) = (parts.iter().position(wanted), parts.iter().rposition(wanted)) else {
        bail!(
            "no archived part holds that range (the archive holds seqs {}; newer events are in the live log: `vigil \
             events export`)",
            match (parts.first(), parts.last()) {
                (Some(a), Some(b)) => format!("{}..={}", a.from_seq, b.to_seq),
                _ => "none".into(),
            }
        );
    };
    let selected = &parts[first..=last];
    // Download each part beside the output, verifying it on the way; join them.
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut downloads = Vec::new();
    let mut chain = PartsVerifier::new();
    for m in selected {
        let tmp = dir.join(format!(".vigil-restore-{}-{}-{}.tmp", m.from_seq, m.to_seq, uuid::Uuid::now_v7().simple()));
        let mut file = create_new(&tmp)?;
        downloads.push(TempFile(tmp.clone()));
        let mut reader = PartVerifier::new(m.object.clone(), keys.clone());
        let mut stream = archive.read(&m.object).await?;
        while let Some(chunk) = stream.next().await {
            let chunk: bytes::Bytes = chunk?;
            reader.feed(&chunk);
            file.write_all(&chunk)?;
        }
        file.sync_all()?;
        let outcome = reader.finish();
        check_manifest(&mut chain, m, &outcome);
        chain.add(outcome);
    }
    let report = chain.finish();
    if report.status == "failed" {
        println!("{}", serde_json::to_string_pretty(&report)?);
        summarize(&report, 0.0);
        eprintln!("The archive does not verify; nothing was restored.");
        return Ok(1);
    }
    let paths: Vec<&Path> = downloads.iter().map(|t| t.0.as_path()).collect();
    let (lo, hi) = match range {
        RestoreRange::Seqs { from, to } => (from.max(selected[0].from_seq), to.unwrap_or(i64::MAX)),
        RestoreRange::Times { since, until } => match seqs_in_time(&paths, since, until)? {
            Some(bounds) => bounds,
            None => bail!("no archived event has a timestamp in that range"),
        },
    };
    let written = write_restored(&paths, lo, hi, out)?;
    // The file must stand on its own.
    let file_report = crate::ledger::export::verify_reader(std::fs::File::open(out)?, keys.clone(), |_, _| {})?;
    let summary = serde_json::json!({
        "restored": out.display().to_string(),
        "from": written.0, "to": written.1, "events": written.2,
        "parts": selected.iter().map(|m| &m.object).collect::<Vec<_>>(),
        "archive_verify": report.status,
        "file_verify": file_report.status,
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    eprintln!(
        "restored seqs {}..={} ({} events) from {} part(s) to {}; the file verifies: {}{}",
        written.0,
        written.1,
        written.2,
        selected.len(),
        out.display(),
        file_report.status,
        if written.1 > hi {
            format!(" (extended to seq {} so it ends at a signed checkpoint)", written.1)
        } else {
            String::new()
        },
    );
    Ok(if file_report.status == "failed" { 1 } else { 0 })
}

/// Creates a file that did not exist (`O_EXCL`: a symlink planted at the path is not
/// followed, an existing file is not truncated).
fn create_new(path: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("create {} (it must not exist already)", path.display()))
}

/// Removed when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Each line of the files in order.
fn for_each_line(paths: &[&Path], mut each: impl FnMut(&[u8], &Line) -> anyhow::Result<bool>) -> anyhow::Result<()> {
    for path in paths {
        let reader = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
        for line in reader.split(b'\n') {
            let line = line?;
            let Ok(parsed) = parse_line(&line) else { continue };
            if !each(&line, &parsed)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The first and last seq of the events whose timestamp is in the range.
fn seqs_in_time(paths: &[&Path], since: Option<i64>, until: Option<i64>) -> anyhow::Result<Option<(i64, i64)>> {
    let (lo, hi) = (since.unwrap_or(i64::MIN), until.unwrap_or(i64::MAX));
    let mut bounds: Option<(i64, i64)> = None;
    for_each_line(paths, |_, line| {
        if let Line::Event { seq, canon, .. } = line
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(canon)
            && let Some(ts) = v["timestamp"].as_i64()
            && (lo..hi).contains(&ts)
        {
            bounds = Some(bounds.map_or((*seq, *seq), |(a, _)| (a, *seq)));
        }
        Ok(true)
    })?;
    Ok(bounds)
}

/// Writes seqs `lo..=` the first checkpoint at or after `hi` as an export file; returns the
/// range written and the events.
fn write_restored(paths: &[&Path], lo: i64, hi: i64, out: &Path) -> anyhow::Result<(i64, i64, u64)> {
    let mut body: Vec<u8> = Vec::new();
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let body_file = dir.join(format!(".vigil-restore-body-{}.tmp", uuid::Uuid::now_v7().simple()));
    let mut sink = std::io::BufWriter::new(create_new(&body_file)?);
    let _cleanup = TempFile(body_file.clone());
    let (mut prev_hash, mut anchor): (Option<String>, Option<Vec<u8>>) = (None, None);
    let (mut events, mut last_seq, mut end, mut last_cp) = (0u64, lo - 1, None::<i64>, 0i64);
    for_each_line(paths, |raw, line| {
        match line {
            Line::Checkpoint(cp) if cp.seq == lo - 1 && events == 0 => anchor = Some(raw.to_vec()),
            Line::Checkpoint(cp) if cp.seq >= lo && events > 0 && cp.id > last_cp => {
                last_cp = cp.id;
                sink.write_all(raw)?;
                sink.write_all(b"\n")?;
                if cp.seq >= hi && cp.seq == last_seq {
                    end = Some(cp.seq);
                    return Ok(false);
                }
            }
            Line::Event { seq, prev_hash: p, .. } if *seq >= lo && *seq > last_seq => {
                if events == 0 {
                    prev_hash = Some(p.clone());
                }
                sink.write_all(raw)?;
                sink.write_all(b"\n")?;
                events += 1;
                last_seq = *seq;
            }
            _ => {}
        }
        Ok(true)
    })?;
    sink.flush()?;
    drop(sink);
    let Some(prev_hash) = prev_hash else { bail!("the archive holds no event at or after seq {lo}") };
    let to = end.unwrap_or(last_seq);
    let header = Line::Header {
        format: FORMAT.into(),
        from: lo,
        to,
        prev_hash,
        exported_at: crate::event::now_ms(),
        partition: None,
        partitions: None,
    };
    body.extend(header.to_bytes());
    if let Some(anchor) = anchor {
        body.extend(anchor);
        body.push(b'\n');
    }
    let mut f = std::io::BufWriter::new(create_new(out)?);
    let written = (|| -> std::io::Result<()> {
        f.write_all(&body)?;
        std::io::copy(&mut std::fs::File::open(&body_file)?, &mut f)?;
        f.write_all(&Line::End { events, last_seq: to }.to_bytes())?;
        f.flush()?;
        f.get_ref().sync_all()
    })();
    if let Err(e) = written {
        // Not half a file (a full disk): the one this run created goes.
        drop(f);
        let _ = std::fs::remove_file(out);
        return Err(anyhow::Error::from(e).context(format!("write {}", out.display())));
    }
    Ok((lo, to, events))
}
