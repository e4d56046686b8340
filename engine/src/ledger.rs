//! The signed log, on top of the store: the one writer that sequences, chains and signs
//! (`sequencer`, with its `handoff` to detection), the canonical form (`canon`), the hash
//! chain and its verifier (`chain`, `verify`), Ed25519 checkpoint keys (`keys`), the anchor
//! file the latest signed head is also written to (`anchor`), the one-writer lock of a log
//! (`lock`), streamed exports and their offline verifier (`export`), retention
//! (`retention`) and the archive it writes before a purge (`archive`), and the record of
//! who read the log (`access`).
//!
//! [`IntegrityStatus`] is what the rest of the server shares: the last signed checkpoint,
//! and the hold. When the database disagrees with what this server knows (it is behind the
//! anchor, has a different hash at an anchored seq, or moved under the sequencer after a
//! commit error), the failure is recorded in the chain, raised as a P1 alert, and the log
//! refuses client writes (503 `integrity_hold`) until an operator runs
//! `vigil integrity accept --reason ...`.

pub mod access;
pub mod anchor;
pub mod archive;
pub mod canon;
pub mod chain;
pub mod export;
pub mod handoff;
pub mod keys;
pub mod lock;
pub mod retention;
pub mod sequencer;
pub mod verify;

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::ledger::chain::Failure;
use crate::store::Checkpoint;

/// A checkpoint as JSON (API, anchor file, exports): hashes and signature in lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointJson {
    /// Checkpoint id (1-based, consecutive).
    pub id: i64,
    /// The seq it signs.
    pub seq: i64,
    /// The chain hash at that seq.
    pub hash: String,
    /// When it was made, epoch ms.
    pub created_at: i64,
    /// The previous checkpoint's id (0 for the first).
    pub prev_checkpoint: i64,
    /// The signing key's id.
    pub key_id: String,
    /// Ed25519 signature.
    pub signature: String,
}

impl From<&Checkpoint> for CheckpointJson {
    fn from(cp: &Checkpoint) -> Self {
        Self {
            id: cp.id,
            seq: cp.seq,
            hash: hex::encode(&cp.hash),
            created_at: cp.created_at,
            prev_checkpoint: cp.prev_id,
            key_id: cp.key_id.clone(),
            signature: hex::encode(&cp.signature),
        }
    }
}

impl CheckpointJson {
    /// Back to a checkpoint (bad hex becomes empty bytes, which fails verification).
    pub fn to_checkpoint(&self) -> Checkpoint {
        Checkpoint {
            id: self.id,
            seq: self.seq,
            hash: hex::decode(&self.hash).unwrap_or_default(),
            created_at: self.created_at,
            prev_id: self.prev_checkpoint,
            key_id: self.key_id.clone(),
            signature: hex::decode(&self.signature).unwrap_or_default(),
        }
    }
}

/// Why the log refuses client writes.
#[derive(Debug, Clone, Serialize)]
pub struct Hold {
    /// When the hold began, epoch ms.
    pub since: i64,
    /// What was found.
    pub failures: Vec<Failure>,
}

/// The outcome of the newest verification this server ran (`GET /v1/integrity/verify`).
#[derive(Debug, Clone, Serialize)]
pub struct LastVerify {
    /// When it finished (RFC 3339).
    pub at: String,
    /// `ok` or `failed`.
    pub status: &'static str,
    /// First seq checked.
    pub from: i64,
    /// Last seq checked.
    pub to: i64,
    /// Rows checked.
    pub verified: u64,
    /// Failures found.
    pub failure_count: u64,
    /// The key id that asked for it.
    pub by: String,
}

/// Integrity state shared by the sequencer, the API and the background jobs.
#[derive(Debug, Default)]
pub struct IntegrityStatus {
    hold: Mutex<Option<Hold>>,
    last_checkpoint: Mutex<Option<Checkpoint>>,
    last_verify: Mutex<Option<LastVerify>>,
}

impl IntegrityStatus {
    /// The current hold, if any.
    pub fn hold(&self) -> Option<Hold> {
        self.hold.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Starts (or extends) a hold.
    pub fn set_hold(&self, failures: Vec<Failure>, now: i64) {
        let mut hold = self.hold.lock().unwrap_or_else(|p| p.into_inner());
        match hold.as_mut() {
            Some(h) => h.failures.extend(failures),
            None => *hold = Some(Hold { since: now, failures }),
        }
    }

    /// Ends the hold (an operator accepted); returns what it was.
    pub fn clear_hold(&self) -> Option<Hold> {
        self.hold.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Whether client writes are refused.
    pub fn on_hold(&self) -> bool {
        self.hold.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// The newest checkpoint this server signed or loaded.
    pub fn last_checkpoint(&self) -> Option<Checkpoint> {
        self.last_checkpoint.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records a new signed checkpoint.
    pub fn set_last_checkpoint(&self, cp: Checkpoint) {
        *self.last_checkpoint.lock().unwrap_or_else(|p| p.into_inner()) = Some(cp);
    }

    /// The newest verification run since start.
    pub fn last_verify(&self) -> Option<LastVerify> {
        self.last_verify.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records a finished verification.
    pub fn set_last_verify(&self, v: LastVerify) {
        *self.last_verify.lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
    }
}
