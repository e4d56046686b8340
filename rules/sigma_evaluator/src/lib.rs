//! Vigil's Sigma evaluator: one rule module that runs the Sigma rules it is given as its
//! configuration (`{"name": ..., "sigma": "<YAML text>", "version": ...}`).
//!
//! At init it parses the text (one or more YAML documents: detection rules, the correlation
//! rules naming them, and pySigma-style processing pipelines), checks that every rule only
//! uses what Vigil supports (Vigil field names, logsource, correlation types), compiles the
//! detections with `rsigma-eval`, and answers a manifest of its own (ABI 1.3): the rule name,
//! the fields the rules read, a subscription by `logsource.category`, the highest level as
//! default severity, the `attack.tNNNN` tags as MITRE ids and the correlation timespans as
//! windows. A refusal names the Sigma rule, the line and what is wrong.
//!
//! Per event it checks each rule's logsource (`category` = the event's `category`,
//! `service` = its `source`), matches the detection, raises an alert per matching detection
//! rule (title, level -> severity) and feeds the correlations, whose state is the host's
//! (windows, distinct sets, last-seen values), so it survives hot reloads and restarts.
//!
//! Modules: [`compile`] (the text to rules: documents, checks, compilation),
//! [`document`] (YAML documents and the lines errors point at), [`manifest`] (the
//! deployment's manifest and subscription), [`view`] (a Vigil event as rsigma sees it),
//! [`correlate`] (correlation state and firing).

mod compile;
mod correlate;
mod document;
mod manifest;
mod view;

use std::cell::OnceCell;

use rsigma_eval::CompiledRule;
use rsigma_parser::{ConditionExpr, ConditionOperator, CorrelationType};
use vigil_sdk::{Alert, Config, Context, Event, Manifest, Rule, Severity, export_rule};

pub use compile::build;
use view::View;

/// Longest correlation timespan (the host's longest window).
const MAX_TIMESPAN_MS: i64 = 31 * 86_400_000;
/// Most MITRE ids in a manifest.
const MAX_MITRE: usize = 32;
/// Most event fields copied into a detection alert.
const SUMMARY_FIELDS: usize = 8;
/// Largest Sigma text accepted (it is the rule's configuration, inside the input area).
pub const MAX_TEXT_BYTES: usize = 512 * 1024;

/// The evaluator: the compiled rules of one deployment.
pub struct SigmaEvaluator {
    manifest: Manifest,
    detections: Vec<DetectionRule>,
    correlations: Vec<Correlation>,
}

/// A Sigma detection rule, compiled.
struct DetectionRule {
    rule: CompiledRule,
    title: String,
    /// `name`, else `id`, else the title: the rule's key in alerts and dedup keys.
    key: String,
    id: Option<String>,
    severity: Severity,
    mitre: Vec<String>,
    category: Option<String>,
    service: Option<String>,
    /// The actions the rule can match at all (subscription), when its condition requires
    /// a selection with a plain `action` value list.
    actions: Option<Vec<String>>,
    /// Whether a match raises an alert of its own (not only feeding correlations that
    /// say `generate: false`, the Sigma default).
    alert: bool,
    /// Fields the rule reads, for the alert's summary.
    fields: Vec<String>,
    /// `vigil.dedup_by`: the fields whose values join the dedup key, so each value (an IP,
    /// a user) gets its own alert; empty: every match folds into one alert.
    dedup_by: Vec<String>,
    /// (correlation, position in its `rules`) this rule feeds.
    feeds: Vec<(usize, usize)>,
}

/// A Sigma correlation rule over detection rules of the same deployment.
struct Correlation {
    kind: CorrelationType,
    title: String,
    key: String,
    severity: Severity,
    mitre: Vec<String>,
    /// Referenced rule names as written (identifiers of an extended condition).
    refs: Vec<String>,
    /// Group-by names (after aliases: the canonical names).
    group_names: Vec<String>,
    /// Per referenced rule, the event fields of the group-by names.
    group_fields: Vec<Vec<String>>,
    timespan_ms: i64,
    predicates: Vec<(ConditionOperator, u64)>,
    /// value_count: the field counted.
    value_field: Option<String>,
    /// temporal: a boolean condition over the referenced rules.
    expression: Option<ConditionExpr>,
}

impl Rule for SigmaEvaluator {
    fn manifest() -> Manifest {
        // Before init: a placeholder (empty subscription); the configured manifest replaces it.
        Manifest::detection("sigma_evaluator")
            .version(env!("CARGO_PKG_VERSION"))
            .description("Runs the Sigma rules given as configuration")
            .severity(Severity::P3)
    }

    fn init(config: &Config) -> Result<Self, String> {
        config.deny_unknown(&["name", "sigma", "version"])?;
        let name = config.str_or("name", "")?;
        let text = config.str_or("sigma", "")?;
        let version = config.str_or("version", env!("CARGO_PKG_VERSION"))?;
        if name.is_empty() || text.trim().is_empty() {
            return Err("the Sigma evaluator needs `name` and `sigma` (the rule text) in its configuration".into());
        }
        build(name, version, text)
    }

    fn evaluate(&mut self, ev: &Event<'_>, ctx: &mut Context) -> bool {
        let view = View { ev, details: OnceCell::new() };
        let mut matched = false;
        for d in &self.detections {
            if let Some(category) = &d.category
                && !ev.category().is_some_and(|c| c.eq_ignore_ascii_case(category))
            {
                continue;
            }
            if let Some(service) = &d.service
                && !ev.get("source").is_some_and(|s| s.eq_ignore_ascii_case(service))
            {
                continue;
            }
            if rsigma_eval::evaluate_rule(&d.rule, &view).is_none() {
                continue;
            }
            matched = true;
            if d.alert {
                ctx.emit(detection_alert(d, ev));
            }
            for &(c, position) in &d.feeds {
                self.correlate(c, position, ev, ctx);
            }
        }
        matched
    }

    fn configured_manifest(&self) -> Option<Manifest> {
        Some(self.manifest.clone())
    }
}

export_rule!(SigmaEvaluator);

fn detection_alert(d: &DetectionRule, ev: &Event<'_>) -> Alert {
    let mut dedup_key = format!("sigma:{}", d.key);
    for (i, f) in d.dedup_by.iter().enumerate() {
        dedup_key.push(if i == 0 { ':' } else { ',' });
        dedup_key.push_str(ev.get(f).unwrap_or(""));
    }
    let mut alert =
        Alert::new(d.title.as_str()).severity(d.severity).dedup_key(dedup_key).field("sigma_rule", d.key.as_str());
    if let Some(id) = &d.id {
        alert = alert.field("sigma_id", id.as_str());
    }
    if !d.mitre.is_empty() {
        alert = alert.field("mitre", d.mitre.join(","));
    }
    for f in d.dedup_by.iter().chain(d.fields.iter().filter(|f| !d.dedup_by.contains(f)).take(SUMMARY_FIELDS)) {
        if let Some(v) = ev.get(f) {
            alert = alert.field(f, v);
        }
    }
    alert
}
