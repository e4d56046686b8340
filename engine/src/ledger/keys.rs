//! The server's secrets in `data_dir`, and the Ed25519 keys that sign checkpoints.
//!
//! Files (all mode 0600, fsynced, in a 0700 directory; none is ever in the database):
//! - `checkpoint-ed25519.key`: the 32-byte Ed25519 seed that signs checkpoints;
//! - `checkpoint-keys/<key id>.pub`: the public key (hex) of every checkpoint key this
//!   server has used, so checkpoints signed before a rotation stay checkable;
//! - `mask.key`: the HMAC key of masking pseudonyms;
//! - `artifact.key`: the HMAC key of the compiled-rule cache (safe to lose: rebuilt);
//! - `checkpoint.key`: the HMAC key of checkpoints written before version 0.2 (read only).
//!
//! A key that is missing while the database already depends on it (checkpoints it signed,
//! pseudonyms it made) is an error with a message, never silently regenerated: a new key
//! would make every old checkpoint read as forged and stop pseudonyms correlating.
//!
//! A checkpoint's signed message is [`checkpoint_message`]; the offline verifier
//! (`vigil verify --file`) uses the same [`Verifier`] as the server.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier as _, VerifyingKey};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::store::Checkpoint;

/// The checkpoint signing key (seed) file.
pub const SIGNING_KEY_FILE: &str = "checkpoint-ed25519.key";
/// Directory of the public keys of every checkpoint key used.
pub const PUBLIC_KEYS_DIR: &str = "checkpoint-keys";
/// The masking pseudonym key file.
pub const MASK_KEY_FILE: &str = "mask.key";
/// The compiled-rule cache key file.
pub const ARTIFACT_KEY_FILE: &str = "artifact.key";
/// The pre-0.2 HMAC checkpoint key file.
pub const LEGACY_CHECKPOINT_KEY_FILE: &str = "checkpoint.key";
/// `key_id` of checkpoints signed with the legacy HMAC key.
pub const LEGACY_KEY_ID: &str = "hmac-sha256";

/// Errors loading or creating keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A key file is missing although the database depends on it.
    #[error(
        "{path} is missing, but the database already depends on it ({why}). Refusing to create a new key: \
         restore the file from backup, or point --data-dir / VIGIL_DATA_DIR at the directory that has it"
    )]
    Missing {
        /// The file.
        path: PathBuf,
        /// What in the database needs it.
        why: String,
    },
    /// A key file has the wrong content.
    #[error("{path} is not a valid key file: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io { path: path.to_owned(), source }
}

/// The message a checkpoint's signature covers: `"vigil-checkpoint-v2"`, then id, seq, the
/// 32-byte hash, created_at and prev_id (integers as 8-byte big-endian), then the key id's
/// length (1 byte) and bytes.
pub fn checkpoint_message(cp: &Checkpoint) -> Vec<u8> {
    checkpoint_message_in(cp, 0)
}

/// The message a checkpoint of cluster partition `partition` covers: partition 0's is
/// exactly [`checkpoint_message`] (a single node's log is partition 0, and its checkpoints
/// verify as before); partition `p >= 1`'s starts `"vigil-checkpoint-v2-partition"` and `p`
/// (4-byte big-endian) instead, then the same fields. A checkpoint copied from one
/// partition into another therefore never verifies there.
pub fn checkpoint_message_in(cp: &Checkpoint, partition: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(110 + cp.key_id.len());
    if partition == 0 {
        m.extend_from_slice(b"vigil-checkpoint-v2");
    } else {
        m.extend_from_slice(b"vigil-checkpoint-v2-partition");
        m.extend_from_slice(&partition.to_be_bytes());
    }
    m.extend_from_slice(&cp.id.to_be_bytes());
    m.extend_from_slice(&cp.seq.to_be_bytes());
    m.extend_from_slice(&cp.hash);
    m.extend_from_slice(&cp.created_at.to_be_bytes());
    m.extend_from_slice(&cp.prev_id.to_be_bytes());
    m.push(cp.key_id.len().min(255) as u8);
    m.extend_from_slice(cp.key_id.as_bytes());
    m
}

/// The id of a public key: `ed25519:` and the first 16 hex digits of its SHA-256.
pub fn key_id_of(key: &VerifyingKey) -> String {
    format!("ed25519:{}", &hex::encode(Sha256::digest(key.as_bytes()))[..16])
}

/// Parses a public key given as 64 hex digits, base64 (44 characters), `ed25519:<hex>`, or
/// the JSON of `GET /v1/integrity/public-key`.
pub fn parse_public_key(text: &str) -> Result<Vec<VerifyingKey>, String> {
    let text = text.trim();
    if text.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let mut keys = Vec::new();
        for k in v["keys"].as_array().into_iter().flatten() {
            keys.extend(parse_public_key(k["public_key"].as_str().unwrap_or_default())?);
        }
        if let Some(k) = v["public_key"].as_str() {
            keys.extend(parse_public_key(k)?);
        }
        if keys.is_empty() {
            return Err("the JSON holds no `public_key`".into());
        }
        return Ok(keys);
    }
    let text = text.strip_prefix("ed25519:").unwrap_or(text);
    let bytes = if text.len() == 64 {
        hex::decode(text).map_err(|e| format!("not hex: {e}"))?
    } else {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.decode(text).map_err(|_| {
            "expected an Ed25519 public key as 64 hex digits or base64 (see `vigil keys checkpoint-public`)".to_owned()
        })?
    };
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| "an Ed25519 public key is 32 bytes".to_owned())?;
    VerifyingKey::from_bytes(&bytes).map(|k| vec![k]).map_err(|e| format!("not an Ed25519 public key: {e}"))
}

/// Checks checkpoint signatures against a set of public keys (and, for old checkpoints,
/// the legacy HMAC key when the server has it).
#[derive(Clone, Default)]
pub struct Verifier {
    keys: BTreeMap<String, VerifyingKey>,
    legacy_hmac: Option<Vec<u8>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("keys", &self.keys.keys().collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier trusting these public keys.
    pub fn new(keys: impl IntoIterator<Item = VerifyingKey>) -> Self {
        Self { keys: keys.into_iter().map(|k| (key_id_of(&k), k)).collect(), legacy_hmac: None }
    }

    /// Checks one checkpoint's signature; the error says why it does not hold.
    pub fn check(&self, cp: &Checkpoint) -> Result<(), String> {
        self.check_in(cp, 0)
    }

    /// Checks the signature of a checkpoint of cluster partition `partition`
    /// ([`checkpoint_message_in`]); partition 0 is [`Self::check`].
    pub fn check_in(&self, cp: &Checkpoint, partition: u32) -> Result<(), String> {
        if cp.key_id == LEGACY_KEY_ID && partition == 0 {
            let Some(key) = &self.legacy_hmac else {
                return Err("signed with the legacy HMAC key, which this verifier does not have".into());
            };
            return legacy_mac(key, cp)
                .verify_slice(&cp.signature)
                .map_err(|_| "legacy HMAC signature invalid".to_owned());
        }
        let Some(key) = self.keys.get(&cp.key_id) else {
            return Err(format!("signed by unknown key {:?}", cp.key_id.chars().take(64).collect::<String>()));
        };
        let sig: [u8; 64] = cp.signature.as_slice().try_into().map_err(|_| "signature is not 64 bytes".to_owned())?;
        key.verify(&checkpoint_message_in(cp, partition), &Signature::from_bytes(&sig)).map_err(|_| {
            if partition == 0 {
                "signature invalid".to_owned()
            } else {
                format!("signature invalid for partition {partition} (a checkpoint of another partition, or forged)")
            }
        })
    }
}

/// The pre-0.2 checkpoint MAC: HMAC-SHA256 over `"vigil-checkpoint-v1" || id || seq || hash
/// || created_at || prev_id`.
fn legacy_mac(key: &[u8], cp: &Checkpoint) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(b"vigil-checkpoint-v1");
    mac.update(&cp.id.to_be_bytes());
    mac.update(&cp.seq.to_be_bytes());
    mac.update(&cp.hash);
    mac.update(&cp.created_at.to_be_bytes());
    mac.update(&cp.prev_id.to_be_bytes());
    mac
}

/// The signing key of this server plus everything it can verify.
#[derive(Clone)]
pub struct CheckpointKeys {
    signing: SigningKey,
    key_id: String,
    verifier: Verifier,
}

impl std::fmt::Debug for CheckpointKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointKeys").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

impl CheckpointKeys {
    /// A key from a seed (tests, benchmarks).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(&seed);
        let key_id = key_id_of(&signing.verifying_key());
        let verifier = Verifier::new([signing.verifying_key()]);
        Self { signing, key_id, verifier }
    }

    /// Id of the current signing key.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The current public key, hex.
    pub fn public_hex(&self) -> String {
        hex::encode(self.signing.verifying_key().as_bytes())
    }

    /// Every trusted public key: (key id, hex, is the current one).
    pub fn public_keys(&self) -> Vec<(String, String, bool)> {
        self.verifier.keys.iter().map(|(id, k)| (id.clone(), hex::encode(k.as_bytes()), *id == self.key_id)).collect()
    }

    /// The verifier for checkpoints of this log.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Builds and signs a checkpoint.
    pub fn sign(&self, id: i64, seq: i64, hash: [u8; 32], created_at: i64, prev_id: i64) -> Checkpoint {
        self.sign_in(0, id, seq, hash, created_at, prev_id)
    }

    /// Builds and signs a checkpoint of cluster partition `partition` ([`checkpoint_message_in`]).
    pub fn sign_in(
        &self,
        partition: u32,
        id: i64,
        seq: i64,
        hash: [u8; 32],
        created_at: i64,
        prev_id: i64,
    ) -> Checkpoint {
        let mut cp = Checkpoint {
            id,
            seq,
            hash: hash.to_vec(),
            created_at,
            prev_id,
            key_id: self.key_id.clone(),
            signature: vec![],
        };
        cp.signature = self.signing.sign(&checkpoint_message_in(&cp, partition)).to_bytes().to_vec();
        cp
    }
}

/// What the database already holds, which decides whether a missing key may be created.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogFacts {
    /// Events stored (the head seq).
    pub events: i64,
    /// Whether any checkpoint is signed with an Ed25519 key.
    pub has_signed_checkpoints: bool,
}

/// The server's secrets.
#[derive(Clone, Debug)]
pub struct Secrets {
    /// Checkpoint signing and verification.
    pub checkpoints: CheckpointKeys,
    /// Masking pseudonym key.
    pub mask: Vec<u8>,
    /// Compiled-rule cache key.
    pub artifact: Vec<u8>,
}

/// Loads the secrets from `dir`, creating the ones that may be created (see the module doc).
pub fn load(dir: &Path, facts: LogFacts) -> Result<Secrets, KeyError> {
    ensure_private_dir(dir)?;
    let seed_path = dir.join(SIGNING_KEY_FILE);
    let seed = match read_key(&seed_path, 32)? {
        Some(seed) => seed,
        None if facts.has_signed_checkpoints => {
            return Err(KeyError::Missing {
                path: seed_path,
                why: "the log has checkpoints it signed; they would all read as forged".into(),
            });
        }
        None => create_key(&seed_path)?,
    };
    let mask_path = dir.join(MASK_KEY_FILE);
    let mask = match read_key(&mask_path, 32)? {
        Some(k) => k,
        None if facts.events > 0 => {
            return Err(KeyError::Missing {
                path: mask_path,
                why: format!("{} stored events carry pseudonyms made with it; new ones would not match", facts.events),
            });
        }
        None => create_key(&mask_path)?,
    };
    let artifact_path = dir.join(ARTIFACT_KEY_FILE);
    let artifact = match read_key(&artifact_path, 32)? {
        Some(k) => k,
        None => create_key(&artifact_path)?,
    };
    let seed: [u8; 32] = seed.try_into().map_err(|_| KeyError::Invalid {
        path: seed_path.clone(),
        problem: "an Ed25519 seed is exactly 32 bytes".into(),
    })?;
    let mut checkpoints = CheckpointKeys::from_seed(seed);
    // Remember the current public key, then trust every key this directory has recorded.
    let pub_dir = dir.join(PUBLIC_KEYS_DIR);
    ensure_private_dir(&pub_dir)?;
    let own = pub_dir.join(format!("{}.pub", checkpoints.key_id.replace(':', "_")));
    if !own.exists() {
        write_new_file(&own, checkpoints.public_hex().as_bytes())?;
    }
    for entry in std::fs::read_dir(&pub_dir).map_err(io(&pub_dir))? {
        let path = entry.map_err(io(&pub_dir))?.path();
        if path.extension().is_none_or(|e| e != "pub") {
            continue;
        }
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        let keys = parse_public_key(&text).map_err(|problem| KeyError::Invalid { path: path.clone(), problem })?;
        for k in keys {
            checkpoints.verifier.keys.insert(key_id_of(&k), k);
        }
    }
    checkpoints.verifier.legacy_hmac = read_key(&dir.join(LEGACY_CHECKPOINT_KEY_FILE), 32)?;
    Ok(Secrets { checkpoints, mask, artifact })
}

/// `vigil keys rotate-checkpoint`: keeps the current public key in `checkpoint-keys/` and
/// replaces the signing seed with a new one (atomically). Returns the new key id. The
/// server uses it from its next start; checkpoints signed before stay checkable.
pub fn rotate(dir: &Path) -> Result<String, KeyError> {
    let seed_path = dir.join(SIGNING_KEY_FILE);
    let old = read_key(&seed_path, 32)?.ok_or_else(|| KeyError::Missing {
        path: seed_path.clone(),
        why: "there is no current key to rotate".into(),
    })?;
    let old: [u8; 32] =
        old.try_into().map_err(|_| KeyError::Invalid { path: seed_path.clone(), problem: "not 32 bytes".into() })?;
    let old = CheckpointKeys::from_seed(old);
    let pub_dir = dir.join(PUBLIC_KEYS_DIR);
    ensure_private_dir(&pub_dir)?;
    let old_pub = pub_dir.join(format!("{}.pub", old.key_id.replace(':', "_")));
    if !old_pub.exists() {
        write_new_file(&old_pub, old.public_hex().as_bytes())?;
    }
    let seed = random_key();
    let tmp = dir.join(format!("{SIGNING_KEY_FILE}.new"));
    let _ = std::fs::remove_file(&tmp);
    write_new_file(&tmp, &seed)?;
    std::fs::rename(&tmp, &seed_path).map_err(io(&seed_path))?;
    sync_dir(dir);
    let new = CheckpointKeys::from_seed(seed.try_into().expect("32 bytes"));
    write_new_file(&pub_dir.join(format!("{}.pub", new.key_id.replace(':', "_"))), new.public_hex().as_bytes())?;
    Ok(new.key_id)
}

/// Reads the current public key of `dir` without creating anything.
pub fn current_public(dir: &Path) -> Result<CheckpointKeys, KeyError> {
    let path = dir.join(SIGNING_KEY_FILE);
    let seed = read_key(&path, 32)?
        .ok_or_else(|| KeyError::Missing { path: path.clone(), why: "asked for its public key".into() })?;
    let seed: [u8; 32] = seed.try_into().map_err(|_| KeyError::Invalid { path, problem: "not 32 bytes".into() })?;
    Ok(CheckpointKeys::from_seed(seed))
}

fn random_key() -> Vec<u8> {
    let mut key = vec![0u8; 32];
    getrandom::fill(&mut key).expect("the operating system's random source works");
    key
}

fn read_key(path: &Path, min_len: usize) -> Result<Option<Vec<u8>>, KeyError> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.len() >= min_len => {
            restrict(path);
            Ok(Some(bytes))
        }
        Ok(_) => Err(KeyError::Invalid { path: path.to_owned(), problem: format!("shorter than {min_len} bytes") }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(KeyError::Io { path: path.to_owned(), source: e }),
    }
}

fn create_key(path: &Path) -> Result<Vec<u8>, KeyError> {
    let key = random_key();
    write_new_file(path, &key)?;
    Ok(key)
}

/// Creates `path` (mode 0600, refusing to overwrite), writes and fsyncs it and its directory.
pub fn write_new_file(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir);
    }
    Ok(())
}

/// Fsyncs a directory (so a created or renamed file survives power loss); best effort.
pub fn sync_dir(dir: &Path) {
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Creates `dir` (mode 0700) or tightens an existing one that others can read.
pub fn ensure_private_dir(dir: &Path) -> Result<(), KeyError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(dir).map_err(io(dir))?;
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
        }
    }
    Ok(())
}

/// Tightens a key file others can read to 0600 (best effort, with a warning).
fn restrict(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "Key file was readable by others; set to 0600");
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_zero_signs_the_single_node_message_and_other_partitions_name_theirs() {
        let keys = CheckpointKeys::from_seed([7; 32]);
        let cp = keys.sign(3, 42, [9; 32], 1_700_000_000_000, 2);
        // Partition 0 is a single node's log: the same bytes, the same signature.
        assert_eq!(checkpoint_message_in(&cp, 0), checkpoint_message(&cp));
        assert!(checkpoint_message(&cp).starts_with(b"vigil-checkpoint-v2\0"));
        assert_eq!(keys.sign_in(0, 3, 42, [9; 32], 1_700_000_000_000, 2), cp);
        let p1 = keys.sign_in(1, 3, 42, [9; 32], 1_700_000_000_000, 2);
        assert_eq!(keys.verifier().check_in(&p1, 1), Ok(()));
        // The same fields signed for partition 1 hold nowhere else.
        assert!(keys.verifier().check(&p1).is_err());
        let err = keys.verifier().check_in(&p1, 2).unwrap_err();
        assert!(err.contains("partition 2"), "{err}");
        assert!(keys.verifier().check_in(&cp, 1).is_err());
    }

    #[test]
    fn a_signed_checkpoint_verifies_and_any_changed_field_does_not() {
        let keys = CheckpointKeys::from_seed([7; 32]);
        let cp = keys.sign(3, 42, [9; 32], 1_700_000_000_000, 2);
        assert_eq!(keys.verifier().check(&cp), Ok(()));
        let mut edits: Vec<Checkpoint> = Vec::new();
        for f in 0..6 {
            let mut c = cp.clone();
            match f {
                0 => c.id += 1,
                1 => c.seq += 1,
                2 => c.hash[0] ^= 1,
                3 => c.created_at += 1,
                4 => c.prev_id += 1,
                _ => c.signature[10] ^= 1,
            }
            edits.push(c);
        }
        for c in edits {
            assert!(keys.verifier().check(&c).is_err(), "{c:?}");
        }
        let other = CheckpointKeys::from_seed([8; 32]);
        let forged = other.sign(3, 42, [9; 32], 1_700_000_000_000, 2);
        assert!(keys.verifier().check(&forged).unwrap_err().contains("unknown key"));
        let mut relabelled = forged;
        relabelled.key_id = keys.key_id().to_owned();
        assert_eq!(keys.verifier().check(&relabelled), Err("signature invalid".into()));
    }

    #[test]
    fn public_keys_parse_from_hex_base64_and_json() {
        use base64::Engine as _;
        let keys = CheckpointKeys::from_seed([1; 32]);
        let hex = keys.public_hex();
        let b64 = base64::engine::general_purpose::STANDARD.encode(hex::decode(&hex).unwrap());
        let json = format!(r#"{{"algorithm":"ed25519","public_key":"{hex}"}}"#);
        for text in [hex.clone(), format!("ed25519:{hex}"), b64, json, format!("  {hex}\n")] {
            let parsed = parse_public_key(&text).unwrap();
            assert_eq!(key_id_of(&parsed[0]), keys.key_id(), "{text}");
        }
        assert!(parse_public_key("abc").is_err());
        assert!(parse_public_key(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn keys_are_created_once_refused_when_the_log_needs_them_and_rotation_keeps_old_ones() {
        let dir = std::env::temp_dir().join(format!("vigil-keys-{}", uuid::Uuid::now_v7().simple()));
        let first = load(&dir, LogFacts::default()).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir), 0o700);
            assert_eq!(mode(&dir.join(SIGNING_KEY_FILE)), 0o600);
            assert_eq!(mode(&dir.join(MASK_KEY_FILE)), 0o600);
        }
        let again = load(&dir, LogFacts { events: 10, has_signed_checkpoints: true }).unwrap();
        assert_eq!(again.checkpoints.key_id(), first.checkpoints.key_id());
        assert_eq!(again.mask, first.mask);
        let old_cp = first.checkpoints.sign(1, 1, [0; 32], 1, 0);
        let new_id = rotate(&dir).unwrap();
        let rotated = load(&dir, LogFacts { events: 10, has_signed_checkpoints: true }).unwrap();
        assert_eq!(rotated.checkpoints.key_id(), new_id);
        assert_ne!(new_id, first.checkpoints.key_id());
        assert_eq!(rotated.checkpoints.verifier().check(&old_cp), Ok(()), "old checkpoints stay checkable");
        assert_eq!(rotated.checkpoints.public_keys().len(), 2);
        std::fs::remove_file(dir.join(SIGNING_KEY_FILE)).unwrap();
        let err = load(&dir, LogFacts { events: 10, has_signed_checkpoints: true }).unwrap_err();
        assert!(err.to_string().contains("Refusing to create a new key"), "{err}");
        std::fs::remove_file(dir.join(MASK_KEY_FILE)).unwrap();
        let err = load(&dir, LogFacts { events: 10, has_signed_checkpoints: false }).unwrap_err();
        assert!(err.to_string().contains("mask.key"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
