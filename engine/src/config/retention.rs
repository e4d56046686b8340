//! `[retention]`: how long events stay queryable in the live database (`hot_days`; the
//! top-level `retention_days` is its older name and still accepted) and
//! `[retention.archive]`, where a purge first writes the range it removes (a directory, or
//! an S3-compatible bucket). `ledger::archive` builds the live archive from
//! [`ArchiveConfig`]; this module only parses and checks it. Credentials are never in the
//! file: it names the environment variables that hold them.

use std::path::PathBuf;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::{Config, ConfigError};

/// `[retention]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Days events stay in the live database (by the signing time of the checkpoint that
    /// covers them); 0 keeps everything. Same as the top-level `retention_days`
    /// (`VIGIL_RETENTION_DAYS`), which it replaces when given.
    pub hot_days: Option<u32>,
    /// `[retention.archive]`: when set, a purge never removes a range before it is stored
    /// there and read back verified.
    pub archive: Option<ArchiveConfig>,
}

/// `[retention.archive]`: a directory (`dir`) or an S3-compatible bucket (`s3_*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveConfig {
    /// A local (or mounted) directory; created (0700) when missing.
    pub dir: Option<PathBuf>,
    /// S3 bucket name.
    pub s3_bucket: Option<String>,
    /// S3-compatible endpoint (`https://...`; MinIO, Ceph, moto...). Default: AWS.
    pub s3_endpoint: Option<String>,
    /// Region (default `AWS_REGION` / `AWS_DEFAULT_REGION`, else `us-east-1`).
    pub s3_region: Option<String>,
    /// Key prefix inside the bucket, e.g. `vigil/prod` (no leading `/`, no `..`).
    pub s3_prefix: String,
    /// Accept a plain `http://` endpoint (requests are signed, never carry the secret, but
    /// events travel unencrypted). Off by default.
    pub allow_http: bool,
    /// Name of the environment variable holding the access key id (default: the standard
    /// `AWS_ACCESS_KEY_ID`, and the rest of the AWS environment).
    pub access_key_id_env: Option<String>,
    /// Name of the environment variable holding the secret access key (default
    /// `AWS_SECRET_ACCESS_KEY`).
    pub secret_access_key_env: Option<String>,
    /// Parts whose newest event is older than this many days are deleted from the archive
    /// (the deletion is a chain event); 0 keeps them forever.
    pub keep_days: u32,
    /// Most events in one archive part (a purge of a longer range writes several parts,
    /// each ending at a signed checkpoint).
    pub max_part_events: i64,
    /// Refused: secrets do not go in the file (kept only to say so clearly).
    #[serde(skip_serializing)]
    pub access_key_id: Option<IgnoredAny>,
    /// Refused, as above.
    #[serde(skip_serializing)]
    pub secret_access_key: Option<IgnoredAny>,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        Self {
            dir: None,
            s3_bucket: None,
            s3_endpoint: None,
            s3_region: None,
            s3_prefix: String::new(),
            allow_http: false,
            access_key_id_env: None,
            secret_access_key_env: None,
            keep_days: 0,
            max_part_events: 500_000,
            access_key_id: None,
            secret_access_key: None,
        }
    }
}

impl ArchiveConfig {
    /// What the archive is, for logs and `vigil config check` (no secret in it).
    pub fn describe(&self) -> String {
        match (&self.dir, &self.s3_bucket) {
            (Some(dir), _) => format!("directory {}", dir.display()),
            (None, Some(bucket)) => {
                let prefix = self.s3_prefix.trim_matches('/');
                let at = self.s3_endpoint.as_deref().map_or(String::new(), |e| format!(" at {e}"));
                if prefix.is_empty() { format!("s3://{bucket}{at}") } else { format!("s3://{bucket}/{prefix}{at}") }
            }
            (None, None) => "(none)".into(),
        }
    }

    /// Checks the section; `days` is the hot tier's length.
    pub fn check(&self, days: u32) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: String| Err(ConfigError::Invalid { key, message });
        if self.access_key_id.is_some() || self.secret_access_key.is_some() {
            return invalid(
                "retention.archive",
                "credentials do not go in the configuration file: put them in environment variables and name \
                 them with access_key_id_env and secret_access_key_env (or use the standard AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY)"
                    .into(),
            );
        }
        let s3_keys = [
            ("s3_endpoint", self.s3_endpoint.is_some()),
            ("s3_region", self.s3_region.is_some()),
            ("s3_prefix", !self.s3_prefix.is_empty()),
            ("access_key_id_env", self.access_key_id_env.is_some()),
            ("secret_access_key_env", self.secret_access_key_env.is_some()),
            ("allow_http", self.allow_http),
        ];
        match (&self.dir, &self.s3_bucket) {
            (Some(_), Some(_)) => {
                return invalid("retention.archive", "give either dir or s3_bucket, not both".into());
            }
            (None, None) => {
                return invalid(
                    "retention.archive",
                    "give dir = \"/path/to/archive\" or s3_bucket = \"name\" (with s3_endpoint for storage other \
                     than AWS)"
                        .into(),
                );
            }
            (Some(dir), None) => {
                if dir.as_os_str().is_empty() {
                    return invalid("retention.archive.dir", "must not be empty".into());
                }
                let given: Vec<&str> = s3_keys.iter().filter(|(_, set)| *set).map(|(k, _)| *k).collect();
                if !given.is_empty() {
                    return invalid(
                        "retention.archive",
                        format!("{} only apply to s3_bucket, not to dir", given.join(", ")),
                    );
                }
            }
            (None, Some(bucket)) => self.check_s3(bucket)?,
        }
        if self.max_part_events < 1 {
            return invalid("retention.archive.max_part_events", "must be positive".into());
        }
        if self.keep_days != 0 && self.keep_days <= days {
            return invalid(
                "retention.archive.keep_days",
                format!(
                    "must be 0 (keep archive parts forever) or more than the hot tier's {days} days: a part is \
                     archived when its events are {days} days old"
                ),
            );
        }
        Ok(())
    }

    fn check_s3(&self, bucket: &str) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: String| Err(ConfigError::Invalid { key, message });
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && !bucket.starts_with(['.', '-'])
            && !bucket.ends_with(['.', '-']);
        if !valid_bucket {
            return invalid(
                "retention.archive.s3_bucket",
                "must be 3 to 63 characters of a-z, 0-9, '.' and '-', starting and ending with a letter or digit"
                    .into(),
            );
        }
        if let Some(endpoint) = &self.s3_endpoint {
            let (scheme, rest) = endpoint.split_once("://").unwrap_or(("", endpoint));
            if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains('@') {
                return invalid(
                    "retention.archive.s3_endpoint",
                    "must be an http:// or https:// URL without credentials, e.g. https://minio.internal:9000".into(),
                );
            }
            if scheme == "http" && !self.allow_http {
                return invalid(
                    "retention.archive.s3_endpoint",
                    "is plain http: events would travel unencrypted; use https, or set allow_http = true to accept \
                     that"
                        .into(),
                );
            }
        }
        let prefix = &self.s3_prefix;
        if prefix.starts_with('/') || prefix.split('/').any(|s| s == ".." || s == ".") || prefix.contains("//") {
            return invalid(
                "retention.archive.s3_prefix",
                "must be a relative key prefix such as vigil/prod (no leading '/', no '.' or '..' segments)".into(),
            );
        }
        match (&self.access_key_id_env, &self.secret_access_key_env) {
            (Some(_), None) | (None, Some(_)) => {
                return invalid(
                    "retention.archive",
                    "access_key_id_env and secret_access_key_env go together (or leave both out for the standard \
                     AWS environment variables)"
                        .into(),
                );
            }
            (Some(id), Some(secret)) => {
                for (key, name) in
                    [("retention.archive.access_key_id_env", id), ("retention.archive.secret_access_key_env", secret)]
                {
                    if std::env::var(name).map_or(true, |v| v.is_empty()) {
                        return invalid(key, format!("names the environment variable {name}, which is not set"));
                    }
                }
            }
            (None, None) => {}
        }
        Ok(())
    }
}

impl Config {
    /// Days events stay in the live database: `[retention] hot_days`, else `retention_days`.
    pub fn hot_days(&self) -> u32 {
        self.retention.hot_days.unwrap_or(self.retention_days)
    }

    pub(super) fn validate_retention(&self) -> Result<(), ConfigError> {
        if let Some(archive) = &self.retention.archive {
            archive.check(self.hot_days())?;
        }
        Ok(())
    }
}

/// The file gives both `retention_days` and `[retention] hot_days`: they must agree.
pub(super) fn check_both_names(text: &str) -> Result<(), String> {
    let Ok(table) = text.parse::<toml::Table>() else { return Ok(()) };
    let legacy = table.get("retention_days").and_then(toml::Value::as_integer);
    let hot = table.get("retention").and_then(|r| r.get("hot_days")).and_then(toml::Value::as_integer);
    match (legacy, hot) {
        (Some(a), Some(b)) if a != b => Err(format!(
            "retention_days = {a} and [retention] hot_days = {b} disagree; keep one (retention_days is the older \
             name of hot_days)"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    #[test]
    fn hot_days_replaces_retention_days_and_both_must_agree() {
        assert_eq!(parse("retention_days = 30").unwrap().hot_days(), 30);
        assert_eq!(parse("[retention]\nhot_days = 7").unwrap().hot_days(), 7);
        assert!(check_both_names("retention_days = 30\n[retention]\nhot_days = 7").unwrap_err().contains("disagree"));
        assert!(check_both_names("retention_days = 7\n[retention]\nhot_days = 7").is_ok());
    }

    #[test]
    fn a_bad_archive_section_is_refused_with_the_key_and_the_reason() {
        let ok = parse("[retention.archive]\ndir = \"/var/lib/vigil/archive\"\nkeep_days = 400").unwrap();
        assert_eq!(ok.retention.archive.unwrap().describe(), "directory /var/lib/vigil/archive");
        let s3 = parse(
            "[retention.archive]\ns3_bucket = \"vigil-archive\"\ns3_endpoint = \"https://minio:9000\"\n\
             s3_prefix = \"prod/eu\"",
        )
        .unwrap();
        assert_eq!(s3.retention.archive.unwrap().describe(), "s3://vigil-archive/prod/eu at https://minio:9000");
        for (bad, why) in [
            ("[retention.archive]\n", "give dir"),
            ("[retention.archive]\ndir = \"a\"\ns3_bucket = \"bucket\"", "not both"),
            ("[retention.archive]\ndir = \"a\"\ns3_prefix = \"x\"", "s3_prefix only apply"),
            ("[retention.archive]\ns3_bucket = \"B\"", "s3_bucket"),
            ("[retention.archive]\ns3_bucket = \"bucket\"\ns3_endpoint = \"http://m:9000\"", "allow_http"),
            ("[retention.archive]\ns3_bucket = \"bucket\"\ns3_endpoint = \"ftp://m\"", "s3_endpoint"),
            ("[retention.archive]\ns3_bucket = \"bucket\"\ns3_prefix = \"/abs\"", "s3_prefix"),
            ("[retention.archive]\ns3_bucket = \"bucket\"\nsecret_access_key = \"hunter2\"", "environment variables"),
            ("[retention.archive]\ns3_bucket = \"bucket\"\naccess_key_id_env = \"X\"", "go together"),
            (
                "[retention.archive]\ns3_bucket = \"bucket\"\naccess_key_id_env = \"VIGIL_SURELY_UNSET_1\"\n\
                 secret_access_key_env = \"VIGIL_SURELY_UNSET_2\"",
                "VIGIL_SURELY_UNSET_1, which is not set",
            ),
            ("retention_days = 90\n[retention.archive]\ndir = \"a\"\nkeep_days = 30", "keep_days"),
            ("[retention.archive]\ndir = \"a\"\nmax_part_events = 0", "max_part_events"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
}
