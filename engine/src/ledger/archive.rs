//! The retention archive: where a purge writes the range it is about to remove, a local
//! directory or an S3-compatible bucket (through `object_store`).
//!
//! A **part** is one purged range `from..=to` in the export format (`vigil-export-v1`,
//! `ledger::export`): the header's `prev_hash` and the signed checkpoint at `from - 1`
//! chain it to the part before; it ends at the signed checkpoint at `to`. Its bytes are
//! deterministic (the header's `exported_at` is that checkpoint's time), so a purge retried
//! after a crash writes the same bytes again. Next to it, a **manifest** (JSON) records the
//! range, hashes, size, SHA-256 and the events' time range. Objects, under the prefix:
//! `parts/<from:020>-<to:020>.ndjson` and `parts/<from:020>-<to:020>.json`.
//!
//! [`Archive::write_part`] exports the range to a staging file, uploads it, reads it back
//! and verifies every byte (size, SHA-256, and the whole chain with the public keys) before
//! it writes the manifest; only then may `retention` record the purge (naming the part) and
//! delete rows. `chain` verifies parts and live exports as one chain; `part` reads one.

pub mod chain;
pub mod part;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::ArchiveConfig;
use crate::ledger::CheckpointJson;
use crate::ledger::export::{ExportSink, write_ndjson};
use crate::ledger::keys::Verifier;
use crate::store::{Checkpoint, Store, StoreError};

pub use part::{ArchiveRecord, PartOutcome, PartVerifier};

/// The manifest format name.
pub const MANIFEST_FORMAT: &str = "vigil-archive-part-v1";
/// Largest manifest read (they are about 1 KiB).
const MAX_MANIFEST_BYTES: u64 = 1 << 20;
/// Upload chunk (S3 multipart parts must be at least 5 MiB, except the last).
const UPLOAD_CHUNK: usize = 8 << 20;

/// Errors of the archive. None of them stops the server: the purge waits for the next run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The configuration or location cannot be used.
    #[error("archive settings: {0}")]
    Config(String),
    /// The object store refused or could not be reached.
    #[error("archive store ({what}): {message}")]
    Store {
        /// What was being done.
        what: String,
        /// Why it failed.
        message: String,
    },
    /// A local file (the staging file) failed.
    #[error("archive staging file: {0}")]
    Io(#[from] std::io::Error),
    /// Reading the log failed.
    #[error(transparent)]
    Log(#[from] StoreError),
    /// What was read back is not what was written, or does not verify.
    #[error("archive part check failed: {0}")]
    Check(String),
    /// The archive holds something this log did not write there.
    #[error("{0}")]
    Foreign(String),
}

fn store_err(what: impl Into<String>) -> impl FnOnce(object_store::Error) -> ArchiveError {
    let what = what.into();
    move |e| ArchiveError::Store { what, message: e.to_string() }
}

/// One part's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// First seq in the part.
    pub from_seq: i64,
    /// Last seq (the seq of `checkpoint`).
    pub to_seq: i64,
    /// Events in it.
    pub events: u64,
    /// Hash of seq `from_seq - 1` (zeros for seq 1), hex.
    pub prev_hash: String,
    /// Hash of `to_seq`, hex.
    pub last_hash: String,
    /// The signed checkpoint the part ends at.
    pub checkpoint: CheckpointJson,
    /// The part's object key, relative to the archive's prefix.
    pub object: String,
    /// SHA-256 of the part's bytes, hex.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
    /// Smallest event `timestamp` in it (epoch ms).
    pub first_time: Option<i64>,
    /// Largest event `timestamp` in it.
    pub last_time: Option<i64>,
    /// When it was written (epoch ms, server time).
    pub archived_at: i64,
}

/// What the archive holds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Listing {
    /// Parts with a manifest, by `from_seq`.
    pub parts: Vec<Manifest>,
    /// Part objects without a manifest (an upload a crash or a failed check interrupted).
    pub unconfirmed: Vec<String>,
    /// Manifests that cannot be read, with why.
    pub unreadable: Vec<(String, String)>,
}

/// A live archive.
#[derive(Clone)]
pub struct Archive {
    objects: Arc<dyn ObjectStore>,
    root: ObjectPath,
    describe: String,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive").field("at", &self.describe).finish_non_exhaustive()
    }
}

/// Retries of one request to the object store (then the purge waits for its next run).
fn retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: 3,
        retry_timeout: Duration::from_secs(60),
    }
}

fn client_options() -> object_store::ClientOptions {
    object_store::ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(120))
}

impl Archive {
    /// The archive of `[retention.archive]` (a directory is created, 0700, when missing).
    pub fn open(config: &ArchiveConfig) -> Result<Self, ArchiveError> {
        if let Some(dir) = &config.dir {
            return Self::open_dir(dir, true);
        }
        let Some(bucket) = &config.s3_bucket else {
            return Err(ArchiveError::Config("give dir or s3_bucket".into()));
        };
        let mut builder = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(retry())
            .with_client_options(client_options());
        if let Some(region) = &config.s3_region {
            builder = builder.with_region(region);
        }
        if let Some(endpoint) = &config.s3_endpoint {
            builder = builder.with_endpoint(endpoint.trim_end_matches('/'));
        }
        if config.allow_http {
            builder = builder.with_allow_http(true);
        }
        if let (Some(id_env), Some(secret_env)) = (&config.access_key_id_env, &config.secret_access_key_env) {
            let read = |name: &str| {
                std::env::var(name)
                    .ok()
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| ArchiveError::Config(format!("the environment variable {name} is not set")))
            };
            builder = builder.with_access_key_id(read(id_env)?).with_secret_access_key(read(secret_env)?);
        }
        let objects = builder.build().map_err(|e| ArchiveError::Config(e.to_string()))?;
        let prefix = config.s3_prefix.trim_matches('/');
        Ok(Self { objects: Arc::new(objects), root: ObjectPath::from(prefix), describe: config.describe() })
    }

    /// A directory, or `s3://bucket[/prefix]` with the standard AWS environment
    /// (`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_ALLOW_HTTP`): what `vigil archive` and `vigil verify --archive` take.
    pub fn open_location(location: &str) -> Result<Self, ArchiveError> {
        let Some(rest) = location.strip_prefix("s3://") else { return Self::open_dir(Path::new(location), false) };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(ArchiveError::Config(format!("{location:?}: no bucket")));
        }
        let mut builder = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(retry())
            .with_client_options(client_options());
        if let Some(endpoint) = std::env::var("AWS_ENDPOINT_URL").ok().filter(|v| !v.is_empty()) {
            builder = builder.with_endpoint(endpoint);
        }
        // (The client options above replaced what the environment said about plain http.)
        if std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v.eq_ignore_ascii_case("true")) {
            builder = builder.with_allow_http(true);
        }
        let objects = builder.build().map_err(|e| ArchiveError::Config(e.to_string()))?;
        let prefix = prefix.trim_matches('/');
        Ok(Self { objects: Arc::new(objects), root: ObjectPath::from(prefix), describe: location.to_owned() })
    }

    /// A directory; `create` (the server) makes it when missing, readers refuse a missing one.
    fn open_dir(dir: &Path, create: bool) -> Result<Self, ArchiveError> {
        if !dir.exists() && !create {
            return Err(ArchiveError::Config(format!("{}: no such directory", dir.display())));
        }
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            }
        }
        let objects = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| ArchiveError::Config(format!("directory {}: {e}", dir.display())))?;
        Ok(Self {
            objects: Arc::new(objects),
            root: ObjectPath::default(),
            describe: format!("directory {}", dir.display()),
        })
    }

    /// What this archive is (no secret in it).
    pub fn describe(&self) -> &str {
        &self.describe
    }

    fn path(&self, relative: &str) -> ObjectPath {
        relative.split('/').filter(|s| !s.is_empty()).fold(self.root.clone(), |p, s| p.clone().join(s))
    }

    /// The object keys of a part `from..=to` (data, manifest), relative to the prefix.
    pub fn part_keys(from: i64, to: i64) -> (String, String) {
        (format!("parts/{from:020}-{to:020}.ndjson"), format!("parts/{from:020}-{to:020}.json"))
    }

    /// Lists the parts (manifests read, ordered by `from_seq`).
    pub async fn list(&self) -> Result<Listing, ArchiveError> {
        let dir = self.path("parts");
        let mut stream = self.objects.list(Some(&dir));
        let (mut data, mut manifests) = (Vec::new(), Vec::new());
        while let Some(meta) = stream.next().await {
            let meta = meta.map_err(store_err("list"))?;
            let name = meta.location.filename().unwrap_or_default().to_owned();
            if name.ends_with(".ndjson") {
                data.push(name);
            } else if name.ends_with(".json") {
                manifests.push((name, meta.location, meta.size));
            }
        }
        let mut listing = Listing::default();
        for (name, location, size) in manifests {
            if size > MAX_MANIFEST_BYTES {
                listing.unreadable.push((name, format!("{size} bytes: not a manifest")));
                continue;
            }
            let read = async {
                let bytes = self.objects.get(&location).await?.bytes().await?;
                Ok::<_, object_store::Error>(bytes)
            };
            match read.await {
                Ok(bytes) => match serde_json::from_slice::<Manifest>(&bytes) {
                    // A manifest speaks only for its own part: the server deletes what one
                    // names (an interrupted purge, keep_days), so one naming another object,
                    // or standing under another part's name, is not trusted.
                    Ok(m)
                        if m.format == MANIFEST_FORMAT
                            && Self::part_keys(m.from_seq, m.to_seq) != (m.object.clone(), format!("parts/{name}")) =>
                    {
                        let why = format!(
                            "it names seqs {}..={} and the object {:?}: not its own part",
                            m.from_seq, m.to_seq, m.object
                        );
                        listing.unreadable.push((name, why));
                    }
                    Ok(m) if m.format == MANIFEST_FORMAT => listing.parts.push(m),
                    Ok(m) => listing.unreadable.push((name, format!("format {:?}", m.format))),
                    Err(e) => listing.unreadable.push((name, e.to_string())),
                },
                Err(e) => listing.unreadable.push((name, e.to_string())),
            }
        }
        listing.parts.sort_by_key(|m| (m.from_seq, m.to_seq));
        data.sort();
        listing.unconfirmed = data
            .into_iter()
            .map(|name| format!("parts/{name}"))
            .filter(|key| !listing.parts.iter().any(|m| &m.object == key))
            .collect();
        Ok(listing)
    }

    /// The bytes of an object (relative key), streamed.
    pub async fn read(
        &self,
        key: &str,
    ) -> Result<futures_util::stream::BoxStream<'static, Result<bytes::Bytes, ArchiveError>>, ArchiveError> {
        let got = self.objects.get(&self.path(key)).await.map_err(store_err(format!("read {key}")))?;
        let key = key.to_owned();
        Ok(got.into_stream().map(move |r| r.map_err(store_err(format!("read {key}")))).boxed())
    }

    /// Reads a whole part through a [`PartVerifier`].
    pub async fn check(&self, key: &str, keys: Verifier) -> Result<PartOutcome, ArchiveError> {
        let mut reader = PartVerifier::new(key, keys);
        let mut stream = self.read(key).await?;
        while let Some(chunk) = stream.next().await {
            let chunk: bytes::Bytes = chunk?;
            reader.feed(&chunk);
        }
        Ok(reader.finish())
    }

    /// Deletes a part's data object, then its manifest.
    pub async fn delete_part(&self, manifest: &Manifest) -> Result<(), ArchiveError> {
        let (_, manifest_key) = Self::part_keys(manifest.from_seq, manifest.to_seq);
        for key in [manifest.object.as_str(), manifest_key.as_str()] {
            match self.objects.delete(&self.path(key)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_err(format!("delete {key}"))(e)),
            }
        }
        Ok(())
    }

    async fn delete_key(&self, key: &str) -> Result<(), ArchiveError> {
        match self.objects.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_err(format!("delete {key}"))(e)),
        }
    }

    /// Uploads a local file in chunks.
    async fn upload(&self, key: &str, file: &Path) -> Result<(), ArchiveError> {
        let location = self.path(key);
        let upload = self.objects.put_multipart(&location).await.map_err(store_err(format!("upload {key}")))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, UPLOAD_CHUNK);
        let mut f = tokio::fs::File::open(file).await?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match f.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e.into());
                }
            };
            if n == 0 {
                break;
            }
            if let Err(e) = writer.wait_for_capacity(4).await {
                let _ = writer.abort().await;
                return Err(store_err(format!("upload {key}"))(e));
            }
            writer.write(&buf[..n]);
        }
        writer.finish().await.map_err(store_err(format!("upload {key}")))?;
        Ok(())
    }

    /// Makes sure the archive continues this log at `floor` (hash `floor_hash`), and removes
    /// what an interrupted purge left for the range starting at `floor + 1` (those rows are
    /// still in the database: the floor did not move).
    async fn prepare(&self, floor: i64, floor_hash: &str) -> Result<(), ArchiveError> {
        let listing = self.list().await?;
        for m in &listing.parts {
            let foreign = if m.to_seq == floor {
                m.last_hash != floor_hash
            } else if m.from_seq == floor + 1 {
                m.prev_hash != floor_hash
            } else {
                m.to_seq > floor
            };
            if foreign {
                return Err(ArchiveError::Foreign(format!(
                    "the archive at {} holds part {} (seqs {}..={}) that does not continue this log at its \
                     retention floor (seq {floor}, hash {floor_hash}): is another log archiving there? Give each \
                     log its own directory or prefix",
                    self.describe, m.object, m.from_seq, m.to_seq
                )));
            }
            if m.from_seq == floor + 1 {
                tracing::warn!(object = %m.object, "Removing an archive part a purge did not complete; writing it again");
                self.delete_part(m).await?;
            }
        }
        let next = format!("parts/{:020}-", floor + 1);
        for key in listing.unconfirmed.iter().filter(|k| k.starts_with(&next)) {
            tracing::warn!(object = %key, "Removing an archive part whose upload did not complete");
            self.delete_key(key).await?;
        }
        Ok(())
    }

    /// Archives `floor + 1 ..= cp.seq`: exports it to a staging file in `staging`, uploads
    /// it, reads it back and checks size, SHA-256 and the whole chain against `keys`, then
    /// writes the manifest. Returns the manifest; any error means nothing may be purged.
    pub async fn write_part(
        &self,
        store: &Store,
        keys: &Verifier,
        floor: i64,
        cp: &Checkpoint,
        staging: &Path,
        now: i64,
    ) -> Result<Manifest, ArchiveError> {
        let (from, to) = (floor + 1, cp.seq);
        let floor_hash = if floor == 0 {
            hex::encode(crate::ledger::chain::GENESIS)
        } else {
            match store.checkpoint_at_or_before(floor).await? {
                Some(c) if c.seq == floor => hex::encode(&c.hash),
                _ => match store.row(floor).await? {
                    Some(row) => hex::encode(&row.hash),
                    None => return Err(ArchiveError::Check(format!("no checkpoint at the retention floor {floor}"))),
                },
            }
        };
        self.prepare(floor, &floor_hash).await?;
        let (data_key, manifest_key) = Self::part_keys(from, to);
        let file = StagingFile::new(staging, from, to)?;
        let (sha256, bytes, events) = export_to(store, from, to, floor, cp.created_at, &file.path).await?;
        if events != (to - from + 1) as u64 {
            return Err(ArchiveError::Check(format!(
                "the log has {events} rows in seqs {from}..={to}, expected {}",
                to - from + 1
            )));
        }
        self.upload(&data_key, &file.path).await?;
        let back = self.check(&data_key, keys.clone()).await?;
        let r = &back.report;
        let expected_last = hex::encode(&cp.hash);
        let problems: Vec<String> = [
            (back.bytes != bytes).then(|| format!("{} bytes read back, {bytes} written", back.bytes)),
            (back.sha256 != sha256).then(|| format!("SHA-256 {} read back, {sha256} written", back.sha256)),
            (r.status != "ok").then(|| {
                let first = r.failures.first().map_or(String::new(), |f| {
                    format!(" (first: seq {} {:?}: expected {}, found {})", f.seq, f.kind, f.expected, f.actual)
                });
                format!("its verification is {}{first}", r.status)
            }),
            ((r.from, r.to, r.verified, r.signed_to) != (from, to, events, to))
                .then(|| format!("it covers {}..={} ({} events, signed to {})", r.from, r.to, r.verified, r.signed_to)),
            (back.ends.last.map(|l| hex::encode(l.1)) != Some(expected_last.clone()))
                .then(|| "its last hash is not the checkpoint's".to_owned()),
            (back.ends.prev_hash.map(hex::encode) != Some(floor_hash.clone()))
                .then(|| "its first row does not chain on the retention floor".to_owned()),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !problems.is_empty() {
            return Err(ArchiveError::Check(format!("part {data_key}: {}", problems.join("; "))));
        }
        let manifest = Manifest {
            format: MANIFEST_FORMAT.into(),
            from_seq: from,
            to_seq: to,
            events,
            prev_hash: floor_hash,
            last_hash: expected_last,
            checkpoint: CheckpointJson::from(cp),
            object: data_key,
            sha256,
            bytes,
            first_time: back.times.map(|t| t.0),
            last_time: back.times.map(|t| t.1),
            archived_at: now,
        };
        let mut text = serde_json::to_vec_pretty(&manifest).map_err(|e| ArchiveError::Check(e.to_string()))?;
        text.push(b'\n');
        let location = self.path(&manifest_key);
        self.objects
            .put(&location, PutPayload::from(text.clone()))
            .await
            .map_err(store_err(format!("write {manifest_key}")))?;
        let stored = self
            .objects
            .get(&location)
            .await
            .map_err(store_err(format!("read {manifest_key}")))?
            .bytes()
            .await
            .map_err(store_err(format!("read {manifest_key}")))?;
        if stored.as_ref() != text.as_slice() {
            return Err(ArchiveError::Check(format!("manifest {manifest_key} read back differs")));
        }
        Ok(manifest)
    }
}

/// A staging file, removed when dropped.
struct StagingFile {
    path: PathBuf,
}

impl StagingFile {
    fn new(dir: &Path, from: i64, to: i64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let unique = uuid::Uuid::now_v7().simple();
        Ok(Self { path: dir.join(format!("archive-{from}-{to}-{unique}.ndjson.tmp")) })
    }
}

impl Drop for StagingFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The staging file an export is written to, hashed on the way.
struct FileSink {
    out: tokio::io::BufWriter<tokio::fs::File>,
    sha: sha2::Sha256,
    bytes: u64,
    failed: Option<std::io::Error>,
}

impl ExportSink for FileSink {
    async fn take(&mut self, chunk: Vec<u8>) -> bool {
        sha2::Digest::update(&mut self.sha, &chunk);
        self.bytes += chunk.len() as u64;
        match self.out.write_all(&chunk).await {
            Ok(()) => true,
            Err(e) => {
                self.failed = Some(e);
                false
            }
        }
    }
}

/// Exports `from..=to` to `path`; returns its SHA-256, size and the events written.
async fn export_to(
    store: &Store,
    from: i64,
    to: i64,
    floor: i64,
    exported_at: i64,
    path: &Path,
) -> Result<(String, u64, u64), ArchiveError> {
    let file = tokio::fs::File::create(path).await?;
    let out = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let mut sink = FileSink { out, sha: sha2::Digest::new(), bytes: 0, failed: None };
    let events = write_ndjson(store, (from, to), floor, exported_at, None, &mut sink).await?;
    if let Some(e) = sink.failed.take() {
        return Err(e.into());
    }
    sink.out.flush().await?;
    sink.out.get_ref().sync_all().await?;
    let FileSink { sha, bytes, .. } = sink;
    Ok((hex::encode(sha2::Digest::finalize(sha)), bytes, events))
}
