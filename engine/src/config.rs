//! Server configuration: a TOML file (`--config` / `VIGIL_CONFIG`), overridden by
//! environment variables, overridden by command-line flags. Every key is documented in
//! `vigil.example.toml` at the repository root. `Config` is plain data; `app::start`
//! builds the live server from it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Errors reading the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// Which file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// Which file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range.
    #[error("invalid setting {key}: {message}")]
    Invalid {
        /// Which key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on (`VIGIL_LISTEN`, `--listen`).
    pub listen: SocketAddr,
    /// `sqlite://path` or `postgres://...` (`VIGIL_DATABASE_URL`, `--database-url`).
    pub database_url: String,
    /// Directory of `.wasm` rules to load and watch (`VIGIL_RULES_DIR`, `--rules-dir`).
    pub rules_dir: Option<PathBuf>,
    /// Where key files (masking and checkpoint HMAC keys) live, outside the database.
    pub data_dir: PathBuf,
    /// Largest accepted request body, bytes (413 past it).
    pub body_limit_bytes: usize,
    /// HTTP worker threads (0 = one per CPU).
    pub workers: usize,
    /// Admin key to create at start when absent (`VIGIL_ADMIN_KEY` only; never put it in a file you commit).
    #[serde(skip)]
    pub admin_key: Option<String>,
    /// Sequencer and checkpoint settings.
    pub store: StoreConfig,
}

/// `[store]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Most events written in one group-commit transaction.
    pub max_group_events: usize,
    /// Signed checkpoint every this many events...
    pub checkpoint_every_events: i64,
    /// ... or every this many seconds (when events arrive).
    pub checkpoint_every_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid default address"),
            database_url: "sqlite://data/vigil.db".into(),
            rules_dir: None,
            data_dir: PathBuf::from("data"),
            body_limit_bytes: 10 * 1024 * 1024,
            workers: 0,
            admin_key: None,
            store: StoreConfig::default(),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self { max_group_events: 5000, checkpoint_every_events: 10_000, checkpoint_every_secs: 60 }
    }
}

/// Values given on the command line (they beat the environment and the file).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--rules-dir`.
    pub rules_dir: Option<PathBuf>,
}

impl Config {
    /// File (if any), then environment, then flags.
    pub fn load(flags: Overrides) -> Result<Self, ConfigError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let path = flags.config.clone().or_else(|| env("VIGIL_CONFIG").map(PathBuf::from));
        let mut config = match &path {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        if let Some(listen) = env("VIGIL_LISTEN") {
            config.listen =
                listen.parse().map_err(|e| ConfigError::Invalid { key: "VIGIL_LISTEN", message: format!("{e}") })?;
        }
        if let Some(url) = env("VIGIL_DATABASE_URL") {
            config.database_url = url;
        }
        if let Some(dir) = env("VIGIL_RULES_DIR") {
            config.rules_dir = Some(dir.into());
        }
        config.admin_key = env("VIGIL_ADMIN_KEY");
        if let Some(listen) = flags.listen {
            config.listen = listen;
        }
        if let Some(url) = flags.database_url {
            config.database_url = url;
        }
        if let Some(dir) = flags.rules_dir {
            config.rules_dir = Some(dir);
        }
        config.validate()?;
        Ok(config)
    }

    /// Reads a TOML file (unknown keys are errors).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })
    }

    /// Range checks.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.body_limit_bytes < 1024 {
            return Err(ConfigError::Invalid { key: "body_limit_bytes", message: "must be at least 1024".into() });
        }
        if self.store.max_group_events == 0 {
            return Err(ConfigError::Invalid { key: "store.max_group_events", message: "must be positive".into() });
        }
        if self.store.checkpoint_every_events <= 0 {
            return Err(ConfigError::Invalid {
                key: "store.checkpoint_every_events",
                message: "must be positive".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_config_parses_and_unknown_keys_are_refused() {
        let reference = include_str!("../../vigil.example.toml");
        let config: Config = toml::from_str(reference).expect("vigil.example.toml parses");
        config.validate().unwrap();
        let err = toml::from_str::<Config>("listen = \"127.0.0.1:1\"\nlisten_port = 5").unwrap_err();
        assert!(err.to_string().contains("listen_port"), "{err}");
    }
}
