//! API keys and roles. Keys look like `vgl_<64 hex>`; only their SHA-256 is stored. A
//! presented key is hashed, looked up, and compared in constant time. Roles: `ingest`
//! (POST events only), `read` (GET), `respond` (read + ack/resolve alerts), `admin`
//! (everything). Every endpoint but /healthz, /readyz and /metrics calls [`KeyRing::require`].
//!
//! Failed authentications are counted by reason (`missing`, `invalid`, `forbidden`),
//! logged without the presented secret, and throttled per client address: past
//! `[auth] failures_per_minute` invalid keys in a minute, a client's requests with a bad
//! key are answered 429 (a valid key is never throttled: the key is checked first; a
//! request without any key guesses nothing and keeps getting 401).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix_web::HttpRequest;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::{ApiKeyRow, Store, StoreError};

/// Why a request was not let in: `api` answers 401 or 403 (`ApiError: From<AuthError>`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No key, or not an active key.
    #[error("a valid API key is required")]
    Unauthenticated,
    /// The key is valid but its role does not allow the request; names the role needed.
    #[error("this API key lacks the {0} role")]
    Forbidden(&'static str),
    /// No valid key, from a client past its failure limit (429 with Retry-After).
    #[error("too many failed authentications from this client; retry in {0} s")]
    Throttled(u32),
}

/// Why an authentication failed (the `reason` label of `vigil_auth_failures_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    /// No `Authorization: Bearer` header.
    Missing,
    /// A key that is not an active key (wrong, revoked, malformed).
    Invalid,
    /// A valid key whose role does not allow the request.
    Forbidden,
}

impl FailureReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Invalid => "invalid",
            Self::Forbidden => "forbidden",
        }
    }
}

/// What to do about one failed authentication.
struct Verdict {
    /// Answer 429 instead of 401.
    throttle: bool,
    /// Write a log line for it.
    log: bool,
}

/// How long a client's failures are counted: a fixed window from its first failure.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Failed authentications: totals by reason, and a per-client count in the current window
/// (bounded: at most 100 000 clients are tracked; the least recently seen go first).
pub struct AuthFailures {
    missing: AtomicU64,
    invalid: AtomicU64,
    forbidden: AtomicU64,
    throttled: AtomicU64,
    limit: AtomicU32,
    /// Per address in its current window: (invalid keys, all failures).
    by_client: moka::sync::Cache<IpAddr, Arc<(AtomicU32, AtomicU32)>>,
}

impl Default for AuthFailures {
    fn default() -> Self {
        Self {
            missing: AtomicU64::new(0),
            invalid: AtomicU64::new(0),
            forbidden: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            limit: AtomicU32::new(30),
            by_client: moka::sync::Cache::builder().max_capacity(100_000).time_to_live(FAILURE_WINDOW).build(),
        }
    }
}

impl AuthFailures {
    /// Totals by reason, then the requests answered 429.
    pub fn counts(&self) -> [(&'static str, u64); 4] {
        [
            ("missing", self.missing.load(Ordering::Relaxed)),
            ("invalid", self.invalid.load(Ordering::Relaxed)),
            ("forbidden", self.forbidden.load(Ordering::Relaxed)),
            ("throttled", self.throttled.load(Ordering::Relaxed)),
        ]
    }

    /// Counts one failure; for an invalid key (a guess), also against its client, and says
    /// whether the client is now past the limit (then it gets 429, not 401). A missing key
    /// guesses nothing: counted, always 401. Also says whether to log it: an address's first
    /// failures in its window are logged, the rest only counted (one line says so), so no
    /// client can make the server write a log line per request.
    fn record(&self, client: Option<IpAddr>, reason: FailureReason) -> Verdict {
        let total = match reason {
            FailureReason::Missing => &self.missing,
            FailureReason::Invalid => &self.invalid,
            FailureReason::Forbidden => &self.forbidden,
        };
        total.fetch_add(1, Ordering::Relaxed);
        let limit = self.limit.load(Ordering::Relaxed);
        let Some(ip) = client else { return Verdict { throttle: false, log: true } };
        let counts = self.by_client.get_with(ip, || Arc::new((AtomicU32::new(0), AtomicU32::new(0))));
        let all = counts.1.fetch_add(1, Ordering::Relaxed) + 1;
        let log_limit = if limit == 0 { 30 } else { limit };
        if all == log_limit + 1 {
            tracing::warn!(client = %ip, "Further failed authentications from this address are counted, not logged, for up to a minute");
        }
        let log = all <= log_limit;
        if reason != FailureReason::Invalid || limit == 0 {
            return Verdict { throttle: false, log };
        }
        let n = counts.0.fetch_add(1, Ordering::Relaxed) + 1;
        if n > limit {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            if n == limit + 1 {
                tracing::warn!(client = %ip, limit, "Too many failed authentications; answering 429 to this client's bad keys for up to a minute");
            }
            return Verdict { throttle: true, log: false };
        }
        Verdict { throttle: false, log }
    }
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// POST /v1/events only.
    Ingest,
    /// Read events, integrity, rules, alerts.
    Read,
    /// Read, plus acknowledge and resolve alerts, issue and lift decisions.
    Respond,
    /// Read decisions only (`GET /v1/decisions...`): the key an app's bouncer holds.
    Bouncer,
    /// Everything.
    Admin,
}

impl Role {
    /// Parses a role name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ingest" => Some(Self::Ingest),
            "read" => Some(Self::Read),
            "respond" => Some(Self::Respond),
            "admin" => Some(Self::Admin),
            "bouncer" => Some(Self::Bouncer),
            _ => None,
        }
    }

    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Read => "read",
            Self::Respond => "respond",
            Self::Admin => "admin",
            Self::Bouncer => "bouncer",
        }
    }

    /// Whether a key with this role may do what `needed` guards (least privilege: ingest
    /// keys cannot read, read keys cannot write).
    pub fn allows(self, needed: Role) -> bool {
        match self {
            Self::Admin => true,
            Self::Respond => matches!(needed, Self::Respond | Self::Read | Self::Bouncer),
            Self::Read => matches!(needed, Self::Read | Self::Bouncer),
            Self::Ingest => needed == Self::Ingest,
            Self::Bouncer => needed == Self::Bouncer,
        }
    }
}

/// Who made a request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key_id: String,
    pub role: Role,
}

#[derive(Clone)]
struct ActiveKey {
    id: String,
    role: Role,
    hash: [u8; 32],
}

/// The active keys, cached in memory (the database is the source of truth).
#[derive(Clone)]
pub struct KeyRing {
    store: Store,
    active: Arc<RwLock<HashMap<[u8; 32], ActiveKey>>>,
    failures: Arc<AuthFailures>,
}

/// SHA-256 of a presented key.
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A fresh random key and id.
pub fn generate_key() -> (String, String) {
    let mut secret = [0u8; 32];
    let mut id = [0u8; 6];
    getrandom::fill(&mut secret).expect("the OS random source works");
    getrandom::fill(&mut id).expect("the OS random source works");
    (format!("k_{}", hex::encode(id)), format!("vgl_{}", hex::encode(secret)))
}

impl KeyRing {
    /// Loads the active keys.
    pub async fn load(store: Store) -> Result<Self, StoreError> {
        let ring = Self { store, active: Arc::default(), failures: Arc::default() };
        ring.reload().await?;
        Ok(ring)
    }

    /// Re-reads keys from the database (after a create or revoke).
    pub async fn reload(&self) -> Result<(), StoreError> {
        let rows = self.store.list_keys().await?;
        let active = rows
            .into_iter()
            .filter(|k| k.revoked_at.is_none())
            .filter_map(|k| {
                let hash: [u8; 32] = k.key_hash.as_slice().try_into().ok()?;
                Some((hash, ActiveKey { id: k.id, role: Role::parse(&k.role)?, hash }))
            })
            .collect();
        *self.active.write().expect("key ring lock") = active;
        Ok(())
    }

    /// Whether any active admin key exists.
    pub fn has_admin(&self) -> bool {
        self.active.read().expect("key ring lock").values().any(|k| k.role == Role::Admin)
    }

    /// The role of the active key with this id.
    pub fn role_of(&self, id: &str) -> Option<Role> {
        self.active.read().expect("key ring lock").values().find(|k| k.id == id).map(|k| k.role)
    }

    /// How many active admin keys exist.
    pub fn admin_count(&self) -> usize {
        self.active.read().expect("key ring lock").values().filter(|k| k.role == Role::Admin).count()
    }

    /// Whether this exact key was issued and then revoked (a revoked key is never issued
    /// again, not even from `VIGIL_ADMIN_KEY`).
    pub async fn was_revoked(&self, key: &str) -> Result<bool, StoreError> {
        let hash = hash_key(key);
        Ok(self.store.list_keys().await?.iter().any(|k| k.revoked_at.is_some() && k.key_hash == hash))
    }

    /// Whether this exact key is active.
    pub fn contains(&self, key: &str) -> bool {
        self.active.read().expect("key ring lock").contains_key(&hash_key(key))
    }

    /// Authenticates the request and checks its role.
    pub fn require(&self, req: &HttpRequest, needed: Role) -> Result<Principal, AuthError> {
        let who = self.authenticate(req)?;
        if !who.role.allows(needed) {
            if self.failures.record(req.peer_addr().map(|a| a.ip()), FailureReason::Forbidden).log {
                tracing::info!(key_id = %who.key_id, role = who.role.as_str(), needed = needed.as_str(),
                    method = %req.method(), path = req.path(), "Request refused: the key's role does not allow it");
            }
            return Err(AuthError::Forbidden(needed.as_str()));
        }
        Ok(who)
    }

    /// Authenticates the request (any role): the key's id and role, or 401 (429 for a
    /// client past its failure limit). A failure is counted and logged without the secret.
    pub fn authenticate(&self, req: &HttpRequest) -> Result<Principal, AuthError> {
        let presented = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim);
        let Some(presented) = presented else {
            return Err(self.failed(req, FailureReason::Missing));
        };
        let hash = hash_key(presented);
        let found = self.active.read().expect("key ring lock").get(&hash).cloned();
        match found.filter(|k| bool::from(k.hash.ct_eq(&hash))) {
            Some(key) => Ok(Principal { key_id: key.id, role: key.role }),
            None => Err(self.failed(req, FailureReason::Invalid)),
        }
    }

    /// Counts and logs a failed authentication; the error to answer with.
    fn failed(&self, req: &HttpRequest, reason: FailureReason) -> AuthError {
        let client = req.peer_addr().map(|a| a.ip());
        let verdict = self.failures.record(client, reason);
        if verdict.log {
            // The presented value is never logged: it may be a real key one character off.
            tracing::warn!(client = ?client, method = %req.method(), path = req.path(), reason = reason.as_str(),
                "Authentication failed");
        }
        if verdict.throttle {
            return AuthError::Throttled(FAILURE_WINDOW.as_secs() as u32);
        }
        AuthError::Unauthenticated
    }

    /// Failed authentications so far (for `/metrics`).
    pub fn failures(&self) -> &AuthFailures {
        &self.failures
    }

    /// Sets how many failed authentications a client may make in a minute before its bad
    /// keys get 429 (0: never throttle).
    pub fn set_failure_limit(&self, per_minute: u32) {
        self.failures.limit.store(per_minute, Ordering::Relaxed);
    }

    /// Stores a new key with the given secret.
    pub async fn insert(&self, id: &str, name: &str, role: Role, secret: &str) -> Result<ApiKeyRow, StoreError> {
        let row = ApiKeyRow {
            id: id.into(),
            name: name.into(),
            role: role.as_str().into(),
            key_hash: hash_key(secret).to_vec(),
            created_at: crate::event::now_ms(),
            revoked_at: None,
        };
        self.store.insert_key(&row).await?;
        self.reload().await?;
        Ok(row)
    }

    /// Revokes a key; false when it does not exist or is already revoked.
    pub async fn revoke(&self, id: &str) -> Result<bool, StoreError> {
        let done = self.store.revoke_key(id, crate::event::now_ms()).await?;
        self.reload().await?;
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_follow_least_privilege() {
        assert!(Role::Admin.allows(Role::Ingest) && Role::Admin.allows(Role::Respond));
        assert!(Role::Respond.allows(Role::Read) && !Role::Respond.allows(Role::Admin));
        assert!(!Role::Read.allows(Role::Ingest) && !Role::Read.allows(Role::Respond));
        assert!(!Role::Ingest.allows(Role::Read));
        assert!(Role::Bouncer.allows(Role::Bouncer) && Role::Read.allows(Role::Bouncer));
        assert!(!Role::Bouncer.allows(Role::Read) && !Role::Bouncer.allows(Role::Ingest));
        assert!(!Role::Ingest.allows(Role::Bouncer));
    }

    #[test]
    fn generated_keys_are_unique_and_well_formed() {
        let (id1, k1) = generate_key();
        let (id2, k2) = generate_key();
        assert_ne!(k1, k2);
        assert_ne!(id1, id2);
        assert!(k1.starts_with("vgl_") && k1.len() == 68);
        assert_eq!(hash_key(&k1), hash_key(&k1.clone()));
    }
}
