//! The alerting sections of the configuration: `[alerts]`, `[decisions]`, `[routing]`,
//! `[outbox]`, `[breaker]`, `[receivers.<name>]` and `[escalation.<name>]`, with their
//! defaults and checks, and the duration and time-of-day parsers they use. Plain data, read
//! by `alerts`, `route` and `respond`.

use std::path::PathBuf;

use serde::Deserialize;

use super::{Config, ConfigError};
use crate::finding::parse_severity;

/// `[alerts]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// A repeat within this long (event time) of the open alert's last occurrence counts
    /// on it instead of opening a new alert, seconds.
    pub dedup_window_secs: u64,
    /// Occurrence counts at which an open alert is notified again.
    pub renotify_at: Vec<i64>,
    /// Notify an alert still open (not acknowledged) again after this long without a
    /// notification, seconds (0: never; the occurrence thresholds still apply).
    pub repeat_interval_secs: u64,
    /// Base URL of this server as receivers should link to it (ack links in chat and email).
    pub external_url: String,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            dedup_window_secs: 3600,
            renotify_at: vec![10, 50, 100],
            repeat_interval_secs: 0,
            external_url: "http://127.0.0.1:8080".into(),
        }
    }
}

/// `[decisions]`: the bounds on decisions (block, throttle, require_mfa, lock) that rules
/// issue; people (`POST /v1/decisions`) are bound only by `max_duration_secs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecisionsConfig {
    /// Whether detection rules may issue decisions at all (false: every `emit_decision` is
    /// refused and counted; people still can).
    pub from_rules: bool,
    /// Scopes rules may decide on (`ip`, `user`, `api_key`, `session`, `organization`).
    pub rule_scopes: Vec<String>,
    /// Longest decision a rule may issue, seconds.
    pub max_rule_duration_secs: u64,
    /// Longest decision anyone may issue, seconds.
    pub max_duration_secs: u64,
    /// Most active decisions one rule may hold at once; past it new ones are refused.
    pub max_active_per_rule: usize,
    /// Decisions one rule may issue per minute (token bucket, burst of the same size).
    pub per_rule_per_minute: u32,
    /// Most active decisions in all (rules and people); past it rules are refused and
    /// people get 409.
    pub max_active: usize,
    /// `enforce` (the default): rules' decisions apply; `simulate`: they are recorded as
    /// simulated (status `simulated`, a chain event) and never enforced.
    pub mode: DecisionMode,
    /// `[decisions.rules.<rule>]`: per-rule settings (`mode`), over the global ones.
    pub rules: std::collections::BTreeMap<String, RuleDecisionsConfig>,
    /// `[[decisions.allow]]`: values no decision may apply to (the allowlist's config entries).
    pub allow: Vec<AllowConfig>,
}

/// Whether rules' decisions are enforced or only recorded (`[decisions] mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecisionMode {
    /// Decisions apply: bouncers enforce them.
    #[default]
    Enforce,
    /// Decisions are recorded as simulated, never enforced (a trial of automated response).
    Simulate,
}

impl DecisionMode {
    /// `enforce` or `simulate`.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionMode::Enforce => "enforce",
            DecisionMode::Simulate => "simulate",
        }
    }
}

/// `[decisions.rules.<rule>]`: one rule's decision settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDecisionsConfig {
    /// This rule's mode, over `[decisions] mode`.
    pub mode: DecisionMode,
}

/// `[[decisions.allow]]`: an allowlist entry from the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowConfig {
    /// `ip`, `user`, `api_key`, `session` or `organization`.
    pub scope: String,
    /// The value: for `ip` an address or a CIDR network (`10.0.0.0/8`, `2001:db8::/32`);
    /// others compare exactly.
    pub value: String,
    /// Why it is allowed (required).
    pub reason: String,
}

impl DecisionsConfig {
    /// The mode of `rule`'s decisions: its own `[decisions.rules.<rule>] mode`, else the
    /// global one.
    pub fn mode_for(&self, rule: &str) -> DecisionMode {
        self.rules.get(rule).map_or(self.mode, |r| r.mode)
    }
}

/// Checks an allowlist entry and returns its scope and normalised value (for `ip`, the
/// network in canonical form: `::ffff:10.0.0.0/104` is `10.0.0.0/8`); the error says what is
/// wrong. The one check of config and API entries alike.
pub fn check_allow_entry(scope: &str, value: &str, reason: &str) -> Result<(vigil_sdk::Scope, String), String> {
    let scope = vigil_sdk::Scope::parse(scope)
        .ok_or_else(|| format!("unknown scope `{scope}` (ip, user, api_key, session, organization)"))?;
    vigil_sdk::decision::check_reason(reason).map_err(|e| e.0)?;
    // The value rules of decisions (1 to 256 characters, no control characters).
    vigil_sdk::Decision::new(scope, value, vigil_sdk::DecisionKind::Block).reason("-").validate().map_err(|e| e.0)?;
    if scope == vigil_sdk::Scope::Ip {
        return Ok((scope, crate::net::IpNet::parse(value)?.to_string()));
    }
    Ok((scope, value.to_owned()))
}

impl Default for DecisionsConfig {
    fn default() -> Self {
        Self {
            from_rules: true,
            rule_scopes: ["ip", "user", "api_key", "session", "organization"].map(String::from).to_vec(),
            max_rule_duration_secs: 86_400,
            max_duration_secs: 30 * 86_400,
            max_active_per_rule: 1000,
            per_rule_per_minute: 120,
            max_active: 100_000,
            mode: DecisionMode::Enforce,
            rules: Default::default(),
            allow: Vec::new(),
        }
    }
}

/// `[routing]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// Receivers of alerts when no routing rule is active or it faults (unset: every
    /// configured receiver but digests).
    pub default_receivers: Option<Vec<String>>,
}

/// `[outbox]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// A notification not delivered this long after it was created is dead-lettered, seconds.
    pub max_age_secs: u64,
    /// First retry delay, ms (doubles per attempt, with jitter).
    pub base_backoff_ms: u64,
    /// Longest retry delay, ms.
    pub max_backoff_ms: u64,
    /// Longest `Retry-After` honoured, seconds.
    pub max_retry_after_secs: u64,
    /// More than this many notifications to one receiver within a minute fold into one
    /// summary message (0: no storm control).
    pub storm_threshold: u32,
    /// How often the outbox looks for due notifications, ms.
    pub poll_interval_ms: u64,
    /// Timeout of one delivery, seconds.
    pub timeout_secs: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            max_age_secs: 86_400,
            base_backoff_ms: 1000,
            max_backoff_ms: 300_000,
            max_retry_after_secs: 3600,
            storm_threshold: 20,
            poll_interval_ms: 250,
            timeout_secs: 10,
        }
    }
}

/// `[breaker]`: seed numbers by default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Failures within `window_secs` that open the circuit.
    pub failures: u32,
    /// Window of those failures, seconds.
    pub window_secs: u64,
    /// Open this long before trial calls, seconds.
    pub open_secs: u64,
    /// Trial calls while half-open.
    pub half_open_trials: u32,
    /// Successes of trial calls that close it.
    pub close_after: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self { failures: 5, window_secs: 60, open_secs: 30, half_open_trials: 3, close_after: 2 }
    }
}

/// One `[[receivers]]` entry. Secrets (URLs with tokens, signing secrets, routing keys,
/// SMTP credentials) can come from the environment (`*_env`) and never reach a log line.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReceiverConfig {
    /// Name routing rules use.
    pub name: String,
    /// webhook | slack | pagerduty | email | digest.
    pub kind: String,
    /// Endpoint (webhook, slack, pagerduty).
    pub url: Option<String>,
    /// Environment variable holding the endpoint.
    pub url_env: Option<String>,
    /// Webhook: `vigil` (default), `alertmanager` or `ocsf` (Detection Finding 2004).
    pub format: Option<String>,
    /// Webhook signing secret: `whsec_<base64>` (HMAC, Standard Webhooks `v1`) or
    /// `whsk_<base64 Ed25519 seed>` (Ed25519, `v1a`).
    pub secret: Option<String>,
    /// Environment variable holding it.
    pub secret_env: Option<String>,
    /// PagerDuty routing key.
    pub routing_key: Option<String>,
    /// Environment variable holding it.
    pub routing_key_env: Option<String>,
    /// Email: `smtp://host:port` (STARTTLS, see `starttls`) or `smtps://host:port` (TLS
    /// from the first byte).
    pub smtp_url: Option<String>,
    /// Email over `smtp://`: `"required"` (the default: no STARTTLS offered, nothing sent)
    /// or `"opportunistic"` (STARTTLS when offered, else plain text; refused with
    /// credentials, which would then cross the network in the clear). Not for `smtps://`.
    pub starttls: Option<String>,
    /// Email: environment variables of the SMTP user name and password.
    pub username_env: Option<String>,
    /// See `username_env`.
    pub password_env: Option<String>,
    /// Email: accept an invalid or self-signed server certificate (test setups only).
    pub smtp_accept_invalid_certs: bool,
    /// PEM file of extra CA certificates to trust for this receiver (an internal CA), on
    /// top of the platform's roots.
    pub ca_file: Option<PathBuf>,
    /// Email sender.
    pub from: Option<String>,
    /// Email recipients.
    pub to: Vec<String>,
    /// Digest: the email or webhook receiver it goes through.
    pub via: Option<String>,
    /// Digest: time of day it is sent, `HH:MM` UTC.
    pub at: Option<String>,
}

impl std::fmt::Debug for ReceiverConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never prints URLs, secrets or keys.
        f.debug_struct("ReceiverConfig").field("name", &self.name).field("kind", &self.kind).finish_non_exhaustive()
    }
}

/// One `[[escalation]]` policy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EscalationPolicy {
    /// Name a routing rule can pick (optional).
    pub name: Option<String>,
    /// Severity it applies to (P1..P4).
    pub severity: Option<String>,
    /// How many more times the levels run after the first pass.
    pub repeat: u32,
    /// Levels, in order; `after` counts from the alert's first notification (and from the
    /// end of the previous pass when repeating).
    pub levels: Vec<EscalationLevel>,
}

/// One escalation level.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EscalationLevel {
    /// `30s`, `15m`, `1h`, `1d`, or seconds.
    pub after: String,
    /// Receivers notified (empty: the alert's own receivers again).
    pub receivers: Vec<String>,
}

/// Parses `30s`, `15m`, `1h`, `2d` or a number of seconds into ms.
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: i64 = num.parse().ok()?;
    let unit_ms = match unit.trim() {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(unit_ms).filter(|ms| *ms >= 0)
}

/// Whether an email receiver has SMTP credentials (from the environment or in its URL).
pub fn smtp_has_credentials(r: &ReceiverConfig) -> bool {
    let in_url = r.smtp_url.as_deref().and_then(|u| u.split_once("://")).is_some_and(|(_, rest)| {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        authority.contains('@')
    });
    r.username_env.is_some() || r.password_env.is_some() || in_url
}

/// Why an email receiver's TLS settings are refused: an unknown `starttls`, `starttls` with
/// `smtps://`, or credentials without TLS guaranteed (`starttls = "opportunistic"`).
fn smtp_tls_problem(r: &ReceiverConfig) -> Option<String> {
    let implicit = r.smtp_url.as_deref().is_some_and(|u| u.to_ascii_lowercase().starts_with("smtps://"));
    match r.starttls.as_deref() {
        None | Some("required") => None,
        Some(_) if implicit => Some("`starttls` applies to smtp:// only (smtps:// is TLS from the first byte)".into()),
        Some("opportunistic") if smtp_has_credentials(r) => Some(
            "SMTP credentials need TLS: with starttls = \"opportunistic\" they would be sent in the clear to a \
             server (or a man in the middle) that does not offer STARTTLS; use starttls = \"required\" (the \
             default) or smtps://"
                .into(),
        ),
        Some("opportunistic") => None,
        Some(other) => Some(format!("`starttls` must be \"required\" or \"opportunistic\", not {other:?}")),
    }
}

/// Parses `HH:MM` into ms after midnight.
pub fn parse_time_of_day(text: &str) -> Option<i64> {
    let (h, m) = text.split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    ((0..24).contains(&h) && (0..60).contains(&m)).then_some((h * 60 + m) * 60_000)
}

impl Config {
    pub(super) fn validate_alerting(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: String| Err(ConfigError::Invalid { key, message });
        let d = &self.decisions;
        if let Some(s) = d.rule_scopes.iter().find(|s| vigil_sdk::Scope::parse(s).is_none()) {
            return invalid(
                "decisions.rule_scopes",
                format!("unknown scope `{s}` (ip, user, api_key, session, organization)"),
            );
        }
        if d.max_duration_secs == 0 || d.max_rule_duration_secs == 0 || d.max_rule_duration_secs > d.max_duration_secs {
            return invalid(
                "decisions.max_rule_duration_secs",
                "durations must be positive and the rules' maximum at most max_duration_secs".into(),
            );
        }
        if d.max_duration_secs > 10 * 365 * 86_400 {
            return invalid("decisions.max_duration_secs", "must be at most ten years".into());
        }
        if d.max_active == 0 || d.max_active_per_rule == 0 || d.per_rule_per_minute == 0 {
            return invalid("decisions.max_active", "caps and rates must be positive".into());
        }
        for (i, a) in d.allow.iter().enumerate() {
            if let Err(problem) = check_allow_entry(&a.scope, &a.value, &a.reason) {
                return invalid(
                    "decisions.allow",
                    format!("entry {} (`{}` = `{}`): {problem}", i + 1, a.scope, a.value),
                );
            }
        }
        let mut names = std::collections::HashSet::new();
        for r in &self.receivers {
            if r.name.is_empty() || !names.insert(r.name.as_str()) {
                return invalid("receivers", format!("receiver names must be unique and not empty (`{}`)", r.name));
            }
            let has = |v: &Option<String>, env: &Option<String>| v.is_some() || env.is_some();
            let problem = match r.kind.as_str() {
                "webhook" | "slack" if !has(&r.url, &r.url_env) => Some("needs `url` or `url_env`"),
                "webhook"
                    if !matches!(r.format.as_deref(), None | Some("vigil") | Some("alertmanager") | Some("ocsf")) =>
                {
                    Some("`format` must be \"vigil\", \"alertmanager\" or \"ocsf\"")
                }
                "pagerduty" if !has(&r.url, &r.url_env) => Some("needs `url` or `url_env`"),
                "pagerduty" if !has(&r.routing_key, &r.routing_key_env) => {
                    Some("needs `routing_key` or `routing_key_env`")
                }
                "email" if r.smtp_url.is_none() || r.from.is_none() || r.to.is_empty() => {
                    Some("needs `smtp_url`, `from` and `to`")
                }
                "digest" if r.via.is_none() => Some("needs `via` (an email or webhook receiver)"),
                "digest" if r.at.as_deref().is_some_and(|a| parse_time_of_day(a).is_none()) => {
                    Some("`at` must be HH:MM (UTC)")
                }
                "webhook" | "slack" | "pagerduty" | "email" | "digest" => None,
                _ => Some("`kind` must be webhook, slack, pagerduty, email or digest"),
            };
            if let Some(problem) = problem {
                return invalid("receivers", format!("receiver `{}`: {problem}", r.name));
            }
        }
        for r in self.receivers.iter().filter(|r| r.kind == "email") {
            if let Some(problem) = smtp_tls_problem(r) {
                return invalid("receivers", format!("receiver `{}`: {problem}", r.name));
            }
        }
        for r in self.receivers.iter().filter(|r| r.kind == "digest") {
            let via = self.receivers.iter().find(|v| Some(&v.name) == r.via.as_ref());
            if !via.is_some_and(|v| v.kind == "email" || v.kind == "webhook") {
                return invalid(
                    "receivers",
                    format!("digest `{}`: `via` must name an email or webhook receiver", r.name),
                );
            }
        }
        let known = |n: &String| self.receivers.iter().any(|r| &r.name == n);
        if let Some(defaults) = &self.routing.default_receivers
            && let Some(unknown) = defaults.iter().find(|n| !known(n))
        {
            return invalid("routing.default_receivers", format!("no receiver named `{unknown}`"));
        }
        for p in &self.escalation {
            if p.severity.as_deref().is_some_and(|s| parse_severity(s).is_none()) {
                return invalid("escalation", "`severity` must be P1, P2, P3 or P4".into());
            }
            if p.levels.is_empty() || p.repeat > 100 {
                return invalid("escalation", "a policy needs at least one level and at most 100 repeats".into());
            }
            for l in &p.levels {
                if parse_duration_ms(&l.after).is_none_or(|ms| ms == 0) {
                    return invalid("escalation", format!("level `after` = {:?} is not a positive duration", l.after));
                }
                if let Some(unknown) = l.receivers.iter().find(|n| !known(n)) {
                    return invalid("escalation", format!("no receiver named `{unknown}`"));
                }
            }
        }
        let o = &self.outbox;
        if o.max_age_secs == 0
            || o.max_retry_after_secs == 0
            || o.base_backoff_ms == 0
            || o.max_backoff_ms < o.base_backoff_ms
            || o.poll_interval_ms == 0
        {
            return invalid("outbox", "max_age_secs, max_retry_after_secs, base_backoff_ms and poll_interval_ms must be positive, max_backoff_ms >= base_backoff_ms".into());
        }
        let b = &self.breaker;
        if b.failures == 0 || b.half_open_trials == 0 || b.close_after == 0 || b.close_after > b.half_open_trials {
            return invalid(
                "breaker",
                "failures, half_open_trials and close_after must be positive, close_after <= half_open_trials".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    fn email(extra: &str) -> Result<(), String> {
        let text = format!(
            "[[receivers]]\nname = \"mail\"\nkind = \"email\"\nfrom = \"vigil@example.org\"\nto = [\"secops@example.org\"]\n{extra}"
        );
        let config: Config = toml::from_str(&text).map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn smtp_credentials_are_refused_without_tls_guaranteed() {
        // Credentials from the environment or in the URL, with opportunistic STARTTLS.
        for creds in [
            "smtp_url = \"smtp://mail.example.org:587\"\nusername_env = \"U\"\npassword_env = \"P\"",
            "smtp_url = \"smtp://user:pw@mail.example.org:587\"",
            "smtp_url = \"smtp://user@mail.example.org\"",
        ] {
            let err = email(&format!("{creds}\nstarttls = \"opportunistic\"")).unwrap_err();
            assert!(err.contains("credentials need TLS") && err.contains("`mail`"), "{err}");
            // The default (required) and implicit TLS are fine.
            assert_eq!(email(creds), Ok(()), "{creds}");
            assert_eq!(email(&format!("{creds}\nstarttls = \"required\"")), Ok(()));
        }
        assert_eq!(email("smtp_url = \"smtps://user:pw@mail.example.org\""), Ok(()));
        // Opportunistic only without credentials, only on smtp://, and only those two words.
        assert_eq!(email("smtp_url = \"smtp://relay.internal:25\"\nstarttls = \"opportunistic\""), Ok(()));
        let err = email("smtp_url = \"smtps://relay.internal\"\nstarttls = \"opportunistic\"").unwrap_err();
        assert!(err.contains("smtp:// only"), "{err}");
        let err = email("smtp_url = \"smtp://relay.internal\"\nstarttls = \"never\"").unwrap_err();
        assert!(err.contains("\"required\" or \"opportunistic\""), "{err}");
        // An `@` in the path is not user info.
        assert_eq!(email("smtp_url = \"smtp://relay.internal/x@y\"\nstarttls = \"opportunistic\""), Ok(()));
    }
}
