//! The allowlist: values no decision may apply to (CrowdSec's allowlists and fail2ban's
//! `ignoreip` are the models). Entries come from three places: built in (loopback,
//! `127.0.0.0/8` and `::1`, always), the config (`[[decisions.allow]]`) and the API
//! (`POST /v1/allowlist`, stored in `allowlist`). [`Allowlist`] holds them in memory; the
//! rules' [`super::Gate`] and the [`super::DecisionService`] ask it before a decision is
//! issued. An `ip` entry is a network and covers every address in it (an IPv4-mapped IPv6
//! address is its IPv4 one) and every range decision that overlaps it; other scopes compare
//! exactly.

use std::sync::{Arc, RwLock};

use serde_json::{Value, json};

use super::Scope;
use crate::config::AllowConfig;
use crate::event::format_rfc3339_ms;
use crate::net::IpNet;
use crate::store::allowlist::AllowRow;

/// Most API entries in force at once.
pub const MAX_API_ENTRIES: usize = 10_000;

/// Where an entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Built into the server (loopback).
    Builtin,
    /// `[[decisions.allow]]` in the config file.
    Config,
    /// `POST /v1/allowlist`.
    Api,
}

impl Source {
    /// `builtin`, `config` or `api`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Builtin => "builtin",
            Source::Config => "config",
            Source::Api => "api",
        }
    }
}

/// One allowlist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    /// `builtin-loopback-ipv4`, `config-<n>` (its place in the file) or a UUID (API).
    pub id: String,
    pub scope: Scope,
    /// Normalised: for `ip`, the network in canonical text (`10.0.0.0/8`, `2001:db8::1`).
    pub value: String,
    /// For `ip`: the network.
    net: Option<IpNet>,
    /// Why.
    pub reason: String,
    /// Epoch ms; it no longer applies from then on (`None`: until removed).
    pub expires_at: Option<i64>,
    pub source: Source,
    /// Epoch ms (config and built-in entries: when the server started).
    pub created_at: i64,
    /// The key that added it (API entries).
    pub created_by: Option<String>,
    /// When it was removed (`DELETE`), and by which key.
    pub removed: Option<(i64, String)>,
}

impl AllowEntry {
    /// An entry after [`crate::config::check_allow_entry`]: `value` is normalised.
    fn new(id: String, scope: Scope, value: String, reason: String, source: Source, created_at: i64) -> AllowEntry {
        let net = if scope == Scope::Ip { IpNet::parse(&value).ok() } else { None };
        AllowEntry {
            id,
            scope,
            value,
            net,
            reason,
            expires_at: None,
            source,
            created_at,
            created_by: None,
            removed: None,
        }
    }

    /// A stored (API) entry; the error says why it cannot be used.
    pub fn from_row(row: &AllowRow) -> Result<AllowEntry, String> {
        let (scope, value) = crate::config::check_allow_entry(row.scope.as_str(), &row.value, &row.reason)?;
        let mut e = AllowEntry::new(row.id.clone(), scope, value, row.reason.clone(), Source::Api, row.created_at);
        e.expires_at = row.expires_at;
        e.created_by = Some(row.created_by.clone());
        e.removed = row.removed_at.map(|at| (at, row.removed_by.clone().unwrap_or_default()));
        Ok(e)
    }

    /// A new API entry: checks and normalises the value; the error says what is wrong.
    pub fn api(
        id: String,
        scope: &str,
        value: &str,
        reason: &str,
        expires_at: Option<i64>,
        created_at: i64,
        created_by: &str,
    ) -> Result<AllowEntry, String> {
        let (scope, value) = crate::config::check_allow_entry(scope, value, reason)?;
        let mut e = AllowEntry::new(id, scope, value, reason.to_owned(), Source::Api, created_at);
        e.expires_at = expires_at;
        e.created_by = Some(created_by.to_owned());
        Ok(e)
    }

    /// The row to store (API entries).
    pub fn to_row(&self) -> AllowRow {
        AllowRow {
            id: self.id.clone(),
            scope: self.scope,
            value: self.value.clone(),
            reason: self.reason.clone(),
            expires_at: self.expires_at,
            created_at: self.created_at,
            created_by: self.created_by.clone().unwrap_or_default(),
            removed_at: self.removed.as_ref().map(|(at, _)| *at),
            removed_by: self.removed.as_ref().map(|(_, by)| by.clone()),
        }
    }

    /// Whether it applies at `now` (not removed, not expired).
    pub fn applies_at(&self, now: i64) -> bool {
        self.removed.is_none() && self.expires_at.is_none_or(|e| e > now)
    }

    /// Whether a decision on `value` in `scope` would touch what it allows: the same value
    /// (for `ip`: an address in the network, or a range that overlaps it).
    pub fn covers(&self, scope: Scope, value: &str) -> bool {
        if scope != self.scope {
            return false;
        }
        match &self.net {
            Some(net) => IpNet::parse(value.trim()).is_ok_and(|v| net.overlaps(&v)),
            None => self.value == value,
        }
    }

    /// `active`, `expired` or `removed` at `now`.
    pub fn status_at(&self, now: i64) -> &'static str {
        if self.removed.is_some() {
            "removed"
        } else if self.applies_at(now) {
            "active"
        } else {
            "expired"
        }
    }

    /// The API shape (`GET /v1/allowlist`, the 409 of a refused decision, chain events).
    pub fn to_api_json(&self, now: i64) -> Value {
        json!({
            "id": self.id, "scope": self.scope.as_str(), "value": self.value, "reason": self.reason,
            "expires_at": self.expires_at.map(format_rfc3339_ms), "source": self.source.as_str(),
            "created_at": format_rfc3339_ms(self.created_at), "created_by": self.created_by,
            "status": self.status_at(now),
            "removed_at": self.removed.as_ref().map(|(at, _)| format_rfc3339_ms(*at)),
            "removed_by": self.removed.as_ref().map(|(_, by)| by.clone()),
        })
    }

    /// The API shape of an entry that is in force (the one that refused a decision).
    pub fn to_api_json_in_force(&self) -> Value {
        self.to_api_json(self.created_at)
    }

    /// The sentence a refusal gives: "allowlisted by entry <id>: <reason>".
    pub fn because(&self) -> String {
        format!("allowlisted by entry {}: {}", self.id, self.reason)
    }
}

/// The entries in force, in memory: built-in first, then config, then API entries.
#[derive(Debug)]
pub struct Allowlist {
    entries: RwLock<Vec<Arc<AllowEntry>>>,
}

impl Default for Allowlist {
    /// The built-in entries only.
    fn default() -> Self {
        Self { entries: RwLock::new(builtin(0)) }
    }
}

/// Loopback, always allowed: a server never blocks itself or its own health checks.
fn builtin(now: i64) -> Vec<Arc<AllowEntry>> {
    [("builtin-loopback-ipv4", "127.0.0.0/8"), ("builtin-loopback-ipv6", "::1")]
        .into_iter()
        .map(|(id, value)| {
            let reason = "loopback is always allowed".to_owned();
            Arc::new(AllowEntry::new(id.into(), Scope::Ip, value.into(), reason, Source::Builtin, now))
        })
        .collect()
}

impl Allowlist {
    /// The built-in entries and those of `[[decisions.allow]]` (checked at config load; one
    /// that does not pass here is an error naming it).
    pub fn with_config(config: &[AllowConfig], now: i64) -> Result<Self, String> {
        let mut entries = builtin(now);
        for (i, a) in config.iter().enumerate() {
            let (scope, value) = crate::config::check_allow_entry(&a.scope, &a.value, &a.reason)
                .map_err(|e| format!("decisions.allow entry {}: {e}", i + 1))?;
            entries.push(Arc::new(AllowEntry::new(
                format!("config-{}", i + 1),
                scope,
                value,
                a.reason.clone(),
                Source::Config,
                now,
            )));
        }
        Ok(Self { entries: RwLock::new(entries) })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<AllowEntry>>> {
        self.entries.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<AllowEntry>>> {
        self.entries.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The first entry in force at `now` that covers a decision on `value` in `scope`.
    pub fn find(&self, scope: Scope, value: &str, now: i64) -> Option<Arc<AllowEntry>> {
        self.read().iter().find(|e| e.applies_at(now) && e.covers(scope, value)).cloned()
    }

    /// Every entry in force at `now`, in order (built-in, config, API oldest first).
    pub fn in_force(&self, now: i64) -> Vec<Arc<AllowEntry>> {
        self.read().iter().filter(|e| e.applies_at(now)).cloned().collect()
    }

    /// The entry with this id (in force or expired, not yet pruned).
    pub fn get(&self, id: &str) -> Option<Arc<AllowEntry>> {
        self.read().iter().find(|e| e.id == id).cloned()
    }

    /// API entries in force at `now`.
    pub fn api_count(&self, now: i64) -> usize {
        self.read().iter().filter(|e| e.source == Source::Api && e.applies_at(now)).count()
    }

    /// Adds an API entry (and forgets API entries that no longer apply).
    pub fn insert(&self, entry: Arc<AllowEntry>, now: i64) {
        let mut entries = self.write();
        entries.retain(|e| e.source != Source::Api || e.applies_at(now));
        entries.push(entry);
    }

    /// Removes an API entry.
    pub fn remove(&self, id: &str) {
        self.write().retain(|e| !(e.source == Source::Api && e.id == id));
    }

    /// Replaces the API entries (at start).
    pub fn reset_api(&self, api: Vec<Arc<AllowEntry>>) {
        let mut entries = self.write();
        entries.retain(|e| e.source != Source::Api);
        entries.extend(api);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(scope: &str, value: &str) -> AllowConfig {
        AllowConfig { scope: scope.into(), value: value.into(), reason: "office".into() }
    }

    #[test]
    fn entries_cover_addresses_ranges_and_exact_values() {
        let list = Allowlist::with_config(
            &[allow("ip", "198.51.100.0/24"), allow("user", "svc-scanner"), allow("ip", "2001:DB8::/32")],
            0,
        )
        .unwrap();
        let id = |scope, value: &str| list.find(scope, value, 1).map(|e| e.id.clone());
        assert_eq!(id(Scope::Ip, "198.51.100.7").as_deref(), Some("config-1"));
        assert_eq!(id(Scope::Ip, "::ffff:198.51.100.7").as_deref(), Some("config-1"), "IPv4-mapped");
        assert_eq!(id(Scope::Ip, "198.51.0.0/16").as_deref(), Some("config-1"), "a range that holds it");
        assert_eq!(id(Scope::Ip, "198.51.100.128/25").as_deref(), Some("config-1"), "a range inside it");
        assert_eq!(id(Scope::Ip, "198.51.101.1"), None);
        assert_eq!(id(Scope::Ip, "2001:db8:0::42").as_deref(), Some("config-3"), "IPv6 text in any case or form");
        assert_eq!(id(Scope::Ip, "127.0.0.1").as_deref(), Some("builtin-loopback-ipv4"));
        assert_eq!(id(Scope::Ip, "127.9.9.9").as_deref(), Some("builtin-loopback-ipv4"));
        assert_eq!(id(Scope::Ip, "0:0::1").as_deref(), Some("builtin-loopback-ipv6"));
        assert_eq!(id(Scope::Ip, "::ffff:127.0.0.1").as_deref(), Some("builtin-loopback-ipv4"));
        assert_eq!(id(Scope::Ip, "0.0.0.0/0").as_deref(), Some("builtin-loopback-ipv4"), "a range over loopback");
        assert_eq!(id(Scope::User, "svc-scanner").as_deref(), Some("config-2"));
        assert_eq!(id(Scope::User, "SVC-scanner"), None, "users compare exactly");
        assert_eq!(id(Scope::Session, "svc-scanner"), None, "scopes are apart");
        assert_eq!(id(Scope::Ip, "not an address"), None);
    }

    #[test]
    fn expired_and_removed_entries_stop_applying() {
        let list = Allowlist::default();
        let e = AllowEntry::api("a".into(), "user", "alice", "vip", Some(1000), 0, "k_1").unwrap();
        list.insert(Arc::new(e), 0);
        assert!(list.find(Scope::User, "alice", 999).is_some());
        assert!(list.find(Scope::User, "alice", 1000).is_none(), "not at its expiry");
        assert_eq!(list.api_count(999), 1);
        list.remove("a");
        assert!(list.find(Scope::User, "alice", 0).is_none());
        list.remove("builtin-loopback-ipv4");
        assert!(list.find(Scope::Ip, "127.0.0.1", 0).is_some(), "built-in entries are not removed");
    }

    #[test]
    fn bad_config_entries_are_named() {
        for (a, why) in [
            (allow("ip", "10.0.0.0/33"), "prefix"),
            (allow("ip", "office"), "not an IP"),
            (allow("planet", "x"), "scope"),
            (AllowConfig { scope: "user".into(), value: "x".into(), reason: String::new() }, "reason"),
            (allow("user", ""), "value"),
        ] {
            let err = Allowlist::with_config(&[allow("user", "ok"), a], 0).unwrap_err();
            assert!(err.contains("entry 2") && err.contains(why), "{err}");
        }
    }
}
