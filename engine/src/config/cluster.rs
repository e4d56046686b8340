//! `[cluster]`: cluster mode (DESIGN.md section 9, docs/cluster.md). Off unless `nats_url` is
//! set; a single node on SQLite or PostgreSQL needs none of it. Read by `app` (which starts
//! the membership and lease tasks) and by the store (which creates one schema per partition).

use serde::Deserialize;

use super::{Config, ConfigError};

/// `[cluster]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// NATS servers, one URL or a comma-separated list (`nats://host:4222`). Empty: cluster
    /// mode is off (the default).
    pub nats_url: String,
    /// How many partitions the log is split into (1 to 256, default 8). Fixed when the
    /// cluster is created: it is stored in PostgreSQL, and a node configured with another
    /// number refuses to start.
    pub partitions: u32,
    /// How many detection slots the rules are spread over (1 to 256, default 8): each rule
    /// belongs to one slot (a hash of its name), each slot runs on one node at a time
    /// (docs/cluster.md, "Detection"). Fixed when the cluster is created, like `partitions`.
    pub detection_slots: u32,
    /// This node's name, unique in the cluster (default: the host name). `[A-Za-z0-9_.-]`,
    /// 1 to 64 characters.
    pub node_id: String,
    /// Replicas of the JetStream stream (1 for a test cluster, 3 in production).
    pub stream_replicas: u32,
    /// The address other nodes and operators reach this node at (shown by
    /// `GET /v1/cluster`; default: the listen address).
    pub advertise: String,
    /// How long a partition lease lasts without renewal, ms (default 5000). Judged by
    /// PostgreSQL's clock, never the node's.
    pub lease_ms: u64,
    /// How often leases are renewed and the heartbeat is written, ms (default 1000; at most
    /// a third of `lease_ms`).
    pub heartbeat_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            nats_url: String::new(),
            partitions: 8,
            detection_slots: DEFAULT_DETECTION_SLOTS,
            node_id: String::new(),
            stream_replicas: 1,
            advertise: String::new(),
            lease_ms: 5000,
            heartbeat_ms: 1000,
        }
    }
}

/// Most partitions a cluster may have.
pub const MAX_PARTITIONS: u32 = 256;

/// Detection slots of a cluster unless `[cluster] detection_slots` says otherwise.
pub const DEFAULT_DETECTION_SLOTS: u32 = 8;

/// Most detection slots a cluster may have.
pub const MAX_DETECTION_SLOTS: u32 = 256;

impl ClusterConfig {
    /// True when cluster mode is on.
    pub fn enabled(&self) -> bool {
        !self.nats_url.trim().is_empty()
    }

    /// The NATS server URLs.
    pub fn nats_urls(&self) -> Vec<String> {
        self.nats_url.split(',').map(str::trim).filter(|u| !u.is_empty()).map(str::to_owned).collect()
    }

    /// The node id, the host name when none is configured.
    pub fn node_id_or_hostname(&self) -> String {
        if !self.node_id.is_empty() {
            return self.node_id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let host: String =
            host.trim().chars().filter(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c)).take(64).collect();
        if host.is_empty() { "vigil".into() } else { host }
    }
}

impl Config {
    pub(super) fn validate_cluster(&self) -> Result<(), ConfigError> {
        let c = &self.cluster;
        let invalid = |key: &'static str, message: String| Err(ConfigError::Invalid { key, message });
        if !(1..=MAX_PARTITIONS).contains(&c.partitions) {
            return invalid("cluster.partitions", format!("must be between 1 and {MAX_PARTITIONS}"));
        }
        if !(1..=MAX_DETECTION_SLOTS).contains(&c.detection_slots) {
            return invalid("cluster.detection_slots", format!("must be between 1 and {MAX_DETECTION_SLOTS}"));
        }
        if !(1..=5).contains(&c.stream_replicas) {
            return invalid("cluster.stream_replicas", "must be between 1 and 5".into());
        }
        if c.node_id.len() > 64 || !c.node_id.chars().all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch)) {
            return invalid("cluster.node_id", "must be 1 to 64 characters of A-Z a-z 0-9 _ . -".into());
        }
        if c.heartbeat_ms == 0 || c.lease_ms < 3 * c.heartbeat_ms {
            return invalid("cluster.lease_ms", "must be at least three heartbeats (cluster.heartbeat_ms > 0)".into());
        }
        if !c.enabled() {
            return Ok(());
        }
        for url in c.nats_urls() {
            if !url.starts_with("nats://") {
                return invalid("cluster.nats_url", "each URL must start with nats:// (comma-separated list)".into());
            }
        }
        if !(self.database_url.starts_with("postgres://") || self.database_url.starts_with("postgresql://")) {
            return invalid(
                "cluster.nats_url",
                "cluster mode needs a PostgreSQL database (--database-url postgres://...); SQLite is single-node only"
                    .into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_mode_is_off_by_default_and_needs_postgres() {
        let mut config = Config::default();
        assert!(!config.cluster.enabled());
        config.validate().unwrap();
        config.cluster.nats_url = "nats://127.0.0.1:4222, nats://127.0.0.1:4223".into();
        assert_eq!(config.cluster.nats_urls().len(), 2);
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("PostgreSQL"), "{err}");
        config.database_url = "postgres://u@h/db".into();
        config.validate().unwrap();
        config.cluster.partitions = 0;
        assert!(config.validate().unwrap_err().to_string().contains("cluster.partitions"));
        config.cluster.partitions = 8;
        config.cluster.detection_slots = 0;
        assert!(config.validate().unwrap_err().to_string().contains("cluster.detection_slots"));
        config.cluster.detection_slots = 257;
        assert!(config.validate().unwrap_err().to_string().contains("cluster.detection_slots"));
        config.cluster.detection_slots = 8;
        config.cluster.node_id = "bad id".into();
        assert!(config.validate().unwrap_err().to_string().contains("cluster.node_id"));
    }
}
