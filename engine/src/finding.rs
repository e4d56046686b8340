//! What detection finds, as plain data shared by every layer above it: the alerts and
//! decisions a rule emits (`EmittedAlert`, `EmittedDecision`), the same with where they came
//! from (`RaisedAlert`, `RaisedDecision`), decisions refused as allowlisted
//! (`RefusedDecision`), quarantines, and the output of one evaluated batch
//! (`Evaluated`). Produced by `rules` and `detect`, consumed by `alerts`, `respond`, `route`
//! and the writer in `app`.

use serde_json::Value;
use vigil_sdk::Severity;

/// An alert as emitted by a rule, validated and copied out of the guest.
#[derive(Debug, Clone, PartialEq)]
pub struct EmittedAlert {
    pub title: String,
    pub severity: Severity,
    pub dedup_key: String,
    /// Summary fields.
    pub fields: Value,
    /// Triggering event seqs.
    pub event_seqs: Vec<i64>,
    /// Suggested actions.
    pub actions: Vec<String>,
}

/// The severity named by `text`, exactly as the host writes it (`P1`..`P4`, upper case):
/// what the rule ABI accepts in an emitted alert, the API in a filter, the configuration in
/// an escalation policy and the store in a row. (`Severity::parse` ignores case; the host's
/// wire and stored forms do not.)
pub fn parse_severity(text: &str) -> Option<Severity> {
    Severity::ALL.into_iter().find(|s| s.as_str() == text)
}

/// A decision as emitted by a rule (ABI 1.2), validated and copied out of the guest: the
/// SDK's own type, read by the SDK's own `Decision::from_json`, so the host and the native
/// harness accept exactly the same decisions.
pub type EmittedDecision = vigil_sdk::Decision;

/// An alert as raised by a rule, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct RaisedAlert {
    /// Rule name.
    pub rule: String,
    pub rule_version: String,
    /// Module SHA-256 (hex).
    pub rule_sha256: String,
    pub alert: EmittedAlert,
    /// Event time of the latest triggering event in the batch (epoch ms).
    pub at: i64,
}

/// A decision as issued by a rule, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct RaisedDecision {
    /// Rule name.
    pub rule: String,
    /// Module SHA-256 (hex).
    pub rule_sha256: String,
    pub decision: EmittedDecision,
}

/// Dedup key prefix of the P1 alert of an integrity failure (the log disagrees with its
/// anchor or moved under the sequencer).
pub const INTEGRITY_DEDUP_PREFIX: &str = "integrity:";
/// Dedup key of the P1 alert of a decisions table that differs from the chain.
pub const DECISIONS_MISMATCH_DEDUP_KEY: &str = "decisions:chain_mismatch";

/// Whether an alert is one of the server's own integrity and tamper alerts, which no
/// silence may hold back: raised by Vigil itself (rule `vigil`, no module SHA-256, so no
/// deployed rule can pass for one) with an integrity or chain-mismatch dedup key. A new
/// alert about the server's own integrity belongs here too.
pub fn never_silenced(rule: &str, rule_sha256: &str, dedup_key: &str) -> bool {
    rule == "vigil"
        && rule_sha256.is_empty()
        && (dedup_key.starts_with(INTEGRITY_DEDUP_PREFIX) || dedup_key == DECISIONS_MISMATCH_DEDUP_KEY)
}

/// A decision a rule emitted that the host refused with a note (its value is allowlisted):
/// not issued, but the alert it goes with says so.
#[derive(Debug, Clone, PartialEq)]
pub struct RefusedDecision {
    /// Rule name.
    pub rule: String,
    /// Module SHA-256 (hex).
    pub rule_sha256: String,
    pub decision: EmittedDecision,
    /// Why (`allowlisted`).
    pub reason: String,
    /// What refused it (the allowlist entry).
    pub note: Value,
}

impl RaisedAlert {
    /// An alert the server raises itself (rule `vigil`, this build's version): floods,
    /// quarantines, integrity failures. `rule_sha256` names the module it is about, if any.
    pub fn by_vigil(rule_sha256: String, alert: EmittedAlert, at: i64) -> Self {
        Self { rule: "vigil".into(), rule_version: env!("CARGO_PKG_VERSION").into(), rule_sha256, alert, at }
    }
}

/// A rule was quarantined during a batch.
#[derive(Debug, Clone)]
pub struct QuarantineNotice {
    /// Rule name.
    pub rule: String,
    /// Module SHA-256 (hex).
    pub sha256: String,
    /// Last fault.
    pub reason: String,
}

/// Output of one batch.
#[derive(Debug, Default)]
pub struct Evaluated {
    /// Alerts raised.
    pub alerts: Vec<RaisedAlert>,
    /// Rules quarantined.
    pub quarantined: Vec<QuarantineNotice>,
    /// Rule evaluations (event x rule) done.
    pub evaluations: u64,
    /// Routing rules: receivers named, (record index, receiver).
    pub routes: Vec<(usize, String)>,
    /// Rule calls that faulted.
    pub faulted: usize,
    /// Decisions issued.
    pub decisions: Vec<RaisedDecision>,
    /// Decisions refused with a note (allowlisted values), for their alerts to say so.
    pub refused_decisions: Vec<RefusedDecision>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_are_read_as_the_host_writes_them() {
        for s in Severity::ALL {
            assert_eq!(parse_severity(s.as_str()), Some(s));
        }
        assert_eq!(parse_severity("p1"), None);
        assert_eq!(parse_severity("P5"), None);
    }
}
