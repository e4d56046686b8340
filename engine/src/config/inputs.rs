//! `[inputs]`: listeners that take events in other formats than `POST /v1/events`.
//! `[[inputs.syslog]]`: RFC 5424 / RFC 3164 syslog over TCP (optionally TLS, optionally
//! mutual TLS), served by `inputs::syslog`; docs/integrations.md has the mapping.

use std::path::PathBuf;

use serde::Deserialize;

use super::{Config, ConfigError};

/// `[inputs]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputsConfig {
    /// `[[inputs.syslog]]` listeners.
    pub syslog: Vec<SyslogInput>,
}

/// One syslog listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogInput {
    /// Its name: stored events carry `ingest_key = "syslog:<name>"`.
    pub name: String,
    /// Address to listen on (`127.0.0.1:6514`; port 0 picks a free one).
    pub address: String,
    /// Client networks allowed to connect (CIDRs or addresses); default loopback only.
    /// Any other peer is disconnected before a byte is read.
    pub allow: Vec<String>,
    /// PEM certificate chain: with `tls_key`, the listener speaks TLS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificates: when set, every client must present a certificate they
    /// signed (mutual TLS). Needs `tls_cert` and `tls_key`.
    pub client_ca: Option<PathBuf>,
    /// `category` of a message that does not give one.
    pub category: String,
    /// `action` of a message that does not give one.
    pub action: String,
    /// Largest message accepted, bytes; a longer frame closes the connection (its framing
    /// cannot be trusted past it).
    pub max_message_bytes: usize,
    /// Connections held at once; more are closed as they arrive.
    pub max_connections: usize,
    /// A connection idle this long is closed, seconds.
    pub idle_timeout_secs: u64,
    /// A shared secret every message must carry as RFC 5424 structured data
    /// `[vigil token="..."]` (for plain TCP where client certificates are not used); a
    /// message without it closes the connection, counted as refused. At least 16
    /// characters, without `"`, `\` or `]`.
    pub token: Option<String>,
    /// The environment variable holding `token`.
    pub token_env: Option<String>,
}

impl Default for SyslogInput {
    fn default() -> Self {
        Self {
            name: String::new(),
            address: String::new(),
            allow: vec!["127.0.0.0/8".into(), "::1/128".into()],
            tls_cert: None,
            tls_key: None,
            client_ca: None,
            category: "system".into(),
            action: "syslog".into(),
            max_message_bytes: 64 * 1024,
            max_connections: 256,
            idle_timeout_secs: 300,
            token: None,
            token_env: None,
        }
    }
}

impl Config {
    pub(super) fn validate_inputs(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid { key: "inputs.syslog", message });
        let mut names = std::collections::HashSet::new();
        for s in &self.inputs.syslog {
            let ok_name = !s.name.is_empty()
                && s.name.len() <= 64
                && s.name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if !ok_name || !names.insert(s.name.as_str()) {
                return invalid(format!(
                    "listener names must be unique, 1 to 64 of [A-Za-z0-9_.-] (`{}`)",
                    s.name.escape_debug()
                ));
            }
            let at = |m: &str| invalid(format!("listener `{}`: {m}", s.name));
            if s.address.parse::<std::net::SocketAddr>().is_err() {
                return at("`address` must be an IP address and port, such as \"127.0.0.1:6514\"");
            }
            if let Some(bad) = s.allow.iter().find(|a| crate::net::IpNet::parse(a).is_err()) {
                return at(&format!("`allow` entry `{}` is not an address or CIDR", bad.escape_debug()));
            }
            if s.tls_cert.is_some() != s.tls_key.is_some() {
                return at("`tls_cert` and `tls_key` go together");
            }
            if s.client_ca.is_some() && s.tls_cert.is_none() {
                return at("`client_ca` needs `tls_cert` and `tls_key`");
            }
            let name_ok = |v: &str| {
                !v.is_empty()
                    && v.len() <= 64
                    && v.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
            };
            if !name_ok(&s.category)
                || !s.category.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return at("`category` must match [a-z0-9_]{1,64}");
            }
            if !name_ok(&s.action) {
                return at("`action` must match [A-Za-z0-9_.:-]{1,64}");
            }
            if s.token.is_some() && s.token_env.is_some() {
                return at("`token` and `token_env` are exclusive");
            }
            if let Some(t) = &s.token
                && (t.len() < 16 || t.len() > 256 || t.chars().any(|c| matches!(c, '"' | '\\' | ']') || c.is_control()))
            {
                return at("`token` must be 16 to 256 characters, without `\"`, `\\`, `]` or control characters");
            }
            if !(256..=1024 * 1024).contains(&s.max_message_bytes) {
                return at("`max_message_bytes` must be between 256 and 1048576");
            }
            if !(1..=65_536).contains(&s.max_connections) {
                return at("`max_connections` must be between 1 and 65536");
            }
            if !(1..=86_400).contains(&s.idle_timeout_secs) {
                return at("`idle_timeout_secs` must be between 1 and 86400");
            }
        }
        Ok(())
    }
}

/// One `[[forwarders]]` entry: pushes committed events to a SIEM (`crate::forward`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ForwarderConfig {
    /// Unique name (its cursor is stored under it).
    pub name: String,
    /// `syslog` (TCP, newline framing), `splunk_hec` (HTTP Event Collector), `ocsf_http`
    /// (a JSON array of OCSF 1.3.0 events per batch) or `nats` (core NATS publish).
    pub kind: String,
    /// `syslog`, `nats`: `host:port`.
    pub address: Option<String>,
    /// `syslog`: `rfc5424` (the event's JSON as the message) or `cef`.
    pub format: Option<String>,
    /// `splunk_hec`, `ocsf_http`: the URL (`https://splunk:8088/services/collector/event`).
    pub url: Option<String>,
    /// `splunk_hec`: the HEC token; `ocsf_http`: an optional bearer token; `nats`: an
    /// optional auth token.
    pub token: Option<String>,
    /// The environment variable holding the token.
    pub token_env: Option<String>,
    /// `splunk_hec`: the `index` set on every event (the token's default when absent).
    pub index: Option<String>,
    /// `nats`: the subject every event is published on.
    pub subject: Option<String>,
    /// `syslog`: TLS to the receiver (verified against the public roots and `ca_file`).
    pub tls: bool,
    /// `syslog` with `tls`: PEM CA certificates to trust besides the public roots.
    pub ca_file: Option<PathBuf>,
    /// `syslog` with `tls`: a PEM client certificate chain for mutual TLS (with `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// The private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Only events of these categories (all when empty).
    pub categories: Vec<String>,
    /// Only events of at least this severity (`low`, `medium`, `high`, `critical`).
    pub min_severity: Option<String>,
    /// Most events per batch (one HTTP request, or one burst of syslog lines).
    pub batch_size: usize,
    /// Where a forwarder without a stored cursor starts: `beginning` (every stored
    /// event) or `end` (events committed from now on).
    pub start: String,
}

impl Default for ForwarderConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            kind: String::new(),
            address: None,
            format: None,
            url: None,
            token: None,
            token_env: None,
            index: None,
            subject: None,
            tls: false,
            ca_file: None,
            tls_cert: None,
            tls_key: None,
            categories: Vec::new(),
            min_severity: None,
            batch_size: 500,
            start: "beginning".into(),
        }
    }
}

impl Config {
    pub(super) fn validate_forwarders(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid { key: "forwarders", message });
        let mut names = std::collections::HashSet::new();
        for f in &self.forwarders {
            let ok_name = !f.name.is_empty()
                && f.name.len() <= 64
                && f.name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if !ok_name || !names.insert(f.name.as_str()) {
                return invalid(format!(
                    "forwarder names must be unique, 1 to 64 of [A-Za-z0-9_.-] (`{}`)",
                    f.name.escape_debug()
                ));
            }
            let at = |m: &str| invalid(format!("forwarder `{}`: {m}", f.name));
            match f.kind.as_str() {
                "syslog" => {
                    if f.address
                        .as_deref()
                        .is_none_or(|a| a.rsplit_once(':').is_none_or(|(_, p)| p.parse::<u16>().is_err()))
                    {
                        return at("`address` must be host:port");
                    }
                    if !matches!(f.format.as_deref(), None | Some("rfc5424") | Some("cef")) {
                        return at("`format` must be \"rfc5424\" or \"cef\"");
                    }
                }
                "splunk_hec" => {
                    if f.url.as_deref().is_none_or(|u| !(u.starts_with("http://") || u.starts_with("https://"))) {
                        return at("`url` must be an http:// or https:// URL");
                    }
                    if f.token.is_none() && f.token_env.is_none() {
                        return at("`token` or `token_env` is required");
                    }
                }
                "nats" => {
                    if f.address
                        .as_deref()
                        .is_none_or(|a| a.rsplit_once(':').is_none_or(|(_, p)| p.parse::<u16>().is_err()))
                    {
                        return at("`address` must be host:port");
                    }
                    let subject = f.subject.as_deref().unwrap_or("");
                    let ok = !subject.is_empty()
                        && subject.len() <= 256
                        && subject.split('.').all(|t| !t.is_empty() && t != "*" && t != ">")
                        && subject.bytes().all(|b| b.is_ascii_graphic());
                    if !ok {
                        return at("`subject` must be a NATS subject without wildcards (`vigil.events`)");
                    }
                }
                "ocsf_http" => {
                    if f.url.as_deref().is_none_or(|u| !(u.starts_with("http://") || u.starts_with("https://"))) {
                        return at("`url` must be an http:// or https:// URL");
                    }
                }
                _ => return at("`kind` must be \"syslog\", \"splunk_hec\", \"ocsf_http\" or \"nats\""),
            }
            if (f.tls || f.ca_file.is_some() || f.tls_cert.is_some()) && f.kind != "syslog" {
                return at(
                    "`tls`, `ca_file`, `tls_cert` and `tls_key` are for syslog forwarders (https:// URLs verify their own)",
                );
            }
            if (f.ca_file.is_some() || f.tls_cert.is_some()) && !f.tls {
                return at("`ca_file`, `tls_cert` and `tls_key` need `tls = true`");
            }
            if f.tls_cert.is_some() != f.tls_key.is_some() {
                return at("`tls_cert` and `tls_key` go together");
            }
            if let Some(s) = &f.min_severity
                && !matches!(s.as_str(), "low" | "medium" | "high" | "critical")
            {
                return at("`min_severity` must be low, medium, high or critical");
            }
            if !(1..=10_000).contains(&f.batch_size) {
                return at("`batch_size` must be between 1 and 10000");
            }
            if !matches!(f.start.as_str(), "beginning" | "end") {
                return at("`start` must be \"beginning\" or \"end\"");
            }
        }
        Ok(())
    }
}
