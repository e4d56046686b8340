//! `[enrich]` (GeoIP and ASN databases) and `[[lists]]` (threat-intel and reference lists):
//! the files `ingest::enrich` loads, polls and applies to every event before it is stored.
//! docs/integrations.md has the layouts read and a copy-paste configuration.

use std::path::PathBuf;

use serde::Deserialize;

use super::{Config, ConfigError};

/// `[enrich]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnrichConfig {
    /// MaxMind DB file of locations (GeoLite2/GeoIP2 City or Country, DB-IP, IPinfo):
    /// events with an `ip` and no `geo` get `geo`. Absent: no location enrichment.
    pub geoip_db: Option<PathBuf>,
    /// MaxMind DB file of autonomous systems (GeoLite2 ASN, DB-IP ASN, IPinfo ASN): events
    /// with an `ip` get `details.asn` and `details.as_org` (when not already there).
    pub asn_db: Option<PathBuf>,
    /// How often the databases and the `[[lists]]` files are checked for a change
    /// (modification time and size), seconds.
    pub reload_secs: u64,
}

impl Default for EnrichConfig {
    fn default() -> Self {
        Self { geoip_db: None, asn_db: None, reload_secs: 30 }
    }
}

/// What the entries of a list are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListKind {
    /// Single addresses (IPv4 or IPv6).
    Ip,
    /// Addresses and CIDR networks.
    Cidr,
    /// Any text (domains, hashes, user agents), matched exactly.
    Value,
}

/// One `[[lists]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListConfig {
    /// Its name: what rules ask for and what `details.threat_lists` records.
    pub name: String,
    /// The file: one entry per line, `#` and `;` comments.
    pub path: PathBuf,
    /// `ip`, `cidr` or `value`.
    pub kind: ListKind,
    /// Most entries accepted; a longer file is refused (default 1 000 000).
    #[serde(default = "default_max_entries")]
    pub max_entries: usize,
    /// Largest file accepted, bytes (default 64 MiB).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
}

fn default_max_entries() -> usize {
    1_000_000
}

fn default_max_bytes() -> u64 {
    64 * 1024 * 1024
}

/// Most lists one server loads.
pub const MAX_LISTS: usize = 64;

impl Config {
    pub(super) fn validate_enrich(&self) -> Result<(), ConfigError> {
        if !(1..=86_400).contains(&self.enrich.reload_secs) {
            return Err(ConfigError::Invalid {
                key: "enrich.reload_secs",
                message: "must be between 1 and 86400".into(),
            });
        }
        let invalid = |message: String| Err(ConfigError::Invalid { key: "lists", message });
        if self.lists.len() > MAX_LISTS {
            return invalid(format!("at most {MAX_LISTS} lists"));
        }
        let mut names = std::collections::HashSet::new();
        for l in &self.lists {
            let ok = !l.name.is_empty()
                && l.name.len() <= 64
                && l.name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if !ok || !names.insert(l.name.as_str()) {
                return invalid(format!(
                    "list names must be unique, 1 to 64 of [A-Za-z0-9_.-] (`{}`)",
                    l.name.escape_debug()
                ));
            }
            if !(1..=10_000_000).contains(&l.max_entries) {
                return invalid(format!("list `{}`: `max_entries` must be between 1 and 10000000", l.name));
            }
            if !(1..=1024 * 1024 * 1024).contains(&l.max_bytes) {
                return invalid(format!("list `{}`: `max_bytes` must be between 1 and 1073741824", l.name));
            }
        }
        Ok(())
    }
}
