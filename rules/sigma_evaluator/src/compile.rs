//! Building a deployment: the text's documents (pipelines, detection rules, correlations),
//! what Vigil supports checked with the line of each refusal, the detections compiled with
//! `rsigma-eval`, the correlations resolved against them.

use rsigma_eval::Pipeline;
use rsigma_parser::{
    ConditionExpr, CorrelationCondition, CorrelationRule, CorrelationType, Detection, Level, Modifier, Quantifier,
    SigmaRule, SigmaValue, WindowMode,
};
use vigil_sdk::Severity;
use vigil_sdk::manifest::{Kind, is_field_name};

use crate::document::{Doc, split_documents};
use crate::manifest::build_manifest;
use crate::view::is_details_path;
use crate::{Correlation, DetectionRule, MAX_TEXT_BYTES, MAX_TIMESPAN_MS, SigmaEvaluator};

fn severity_of(level: Option<Level>) -> Severity {
    match level {
        Some(Level::Critical) => Severity::P1,
        Some(Level::High) => Severity::P2,
        Some(Level::Low | Level::Informational) => Severity::P4,
        Some(Level::Medium) | None => Severity::P3,
    }
}

/// `attack.t1110.001` -> `T1110.001`.
fn mitre_ids(tags: &[String]) -> Vec<String> {
    tags.iter()
        .filter_map(|t| t.strip_prefix("attack."))
        .filter(|t| {
            let b = t.as_bytes();
            b.len() >= 5 && (b[0] == b't' || b[0] == b'T') && b[1..5].iter().all(u8::is_ascii_digit)
        })
        .map(|t| t.to_ascii_uppercase())
        .collect()
}

/// Every field name a detection reads (selections, field references).
fn detection_fields(d: &Detection, out: &mut Vec<String>) {
    match d {
        Detection::AllOf(items) => {
            for item in items {
                if let Some(name) = &item.field.name {
                    out.push(name.clone());
                }
                if item.field.modifiers.contains(&Modifier::FieldRef) {
                    for v in &item.values {
                        if let SigmaValue::String(s) = v {
                            out.push(s.original.clone());
                        }
                    }
                }
            }
        }
        Detection::AnyOf(children) | Detection::And(children) => children.iter().for_each(|c| detection_fields(c, out)),
        Detection::Keywords(_) => {}
        // Fields inside an array block name members of the array's elements, not event fields.
        Detection::ArrayMatch { field, .. } => out.push(field.clone()),
        Detection::Conditional { .. } => {}
    }
}

pub(crate) fn push_unique(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|x| x == item) {
        list.push(item.to_owned());
    }
}

fn check_field(rule: &str, doc: &Doc, field: &str) -> Result<(), String> {
    if is_field_name(Kind::Detection, field) {
        return Ok(());
    }
    Err(format!(
        "Sigma rule {rule:?} (line {}): field {field:?} is not a Vigil event field (event fields such as `ip`, `user_id`, \
         `action`, `geo.country`, or `details.<path>`); map it with a pipeline document",
        doc.line_of(field)
    ))
}

/// Parses, checks and compiles a deployment's Sigma text.
pub fn build(name: &str, version: &str, text: &str) -> Result<SigmaEvaluator, String> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(format!("the Sigma text is {} bytes, at most {MAX_TEXT_BYTES}", text.len()));
    }
    let docs = split_documents(text);
    let Parsed { pipelines, rules, correlations } = parse_documents(&docs)?;
    if rules.is_empty() && correlations.is_empty() {
        return Err("the text holds no Sigma detection rule".into());
    }

    let mut manifest_fields: Vec<String> = Vec::new();
    let mut detections = Vec::new();
    for (rule, i) in rules {
        detections.push(compile_detection(rule, &docs[i], &pipelines, &mut manifest_fields)?);
    }

    let mut compiled_correlations = Vec::new();
    let mut generates = vec![false; detections.len()];
    let correlation_keys: Vec<String> = correlations
        .iter()
        .flat_map(|(c, _)| [c.name.clone(), c.id.clone(), Some(c.title.clone())])
        .flatten()
        .collect();
    for (corr, i) in correlations {
        let feeding = Feeding {
            index: compiled_correlations.len(),
            detections: &mut detections,
            generates: &mut generates,
            correlation_keys: &correlation_keys,
            manifest_fields: &mut manifest_fields,
        };
        compiled_correlations.push(compile_correlation(corr, &docs[i], feeding)?);
    }
    // A rule that feeds correlations alerts on its own only when one of them says
    // `generate: true` (the Sigma default is false).
    for (d, generate) in detections.iter_mut().zip(generates) {
        d.alert = d.feeds.is_empty() || generate;
    }

    let manifest = build_manifest(name, version, &detections, &compiled_correlations, manifest_fields);
    manifest.validate().map_err(|e| format!("manifest: {}", e.0))?;
    Ok(SigmaEvaluator { manifest, detections, correlations: compiled_correlations })
}

/// The documents of a text by kind, each rule with the index of its document.
struct Parsed {
    pipelines: Vec<Pipeline>,
    rules: Vec<(SigmaRule, usize)>,
    correlations: Vec<(CorrelationRule, usize)>,
}

/// Parses each document: a pipeline (it has `transformations`), else detection rules and
/// correlations; refuses collection actions, filters and parse errors with their line.
fn parse_documents(docs: &[Doc]) -> Result<Parsed, String> {
    let mut parsed = Parsed { pipelines: Vec::new(), rules: Vec::new(), correlations: Vec::new() };
    for (i, doc) in docs.iter().enumerate() {
        if doc.has_key("transformations") {
            let pipeline = rsigma_eval::parse_pipeline(&doc.text).map_err(|e| {
                let e = e.to_string();
                format!("pipeline (line {}): {e}", doc.yaml_error_line(&e))
            })?;
            parsed.pipelines.push(pipeline);
            continue;
        }
        if doc.has_key("action") {
            return Err(format!(
                "document at line {}: Sigma collection actions (`action: global/reset/repeat`) are not supported; \
                 write each rule whole",
                doc.key_line("action")
            ));
        }
        let collection = rsigma_parser::parse_sigma_yaml(&doc.text)
            .map_err(|e| format!("document at line {}: {e}", doc.first_line))?;
        if let Some(e) = collection.errors.first() {
            let line = if e.contains("line ") { doc.yaml_error_line(e) } else { doc.error_line(e) };
            let title = doc.text.lines().find_map(|l| l.strip_prefix("title:")).map(str::trim).unwrap_or("(untitled)");
            return Err(format!("Sigma rule {title:?} (line {line}): {e}"));
        }
        if !collection.filters.is_empty() {
            return Err(format!("document at line {}: Sigma filter rules are not supported", doc.first_line));
        }
        parsed.rules.extend(collection.rules.into_iter().map(|r| (r, i)));
        parsed.correlations.extend(collection.correlations.into_iter().map(|c| (c, i)));
    }
    Ok(parsed)
}

/// One detection rule: pipelines applied, logsource and fields checked, compiled; the
/// fields it reads are added to `manifest_fields`.
fn compile_detection(
    mut rule: SigmaRule,
    doc: &Doc,
    pipelines: &[Pipeline],
    manifest_fields: &mut Vec<String>,
) -> Result<DetectionRule, String> {
    let title = rule.title.clone();
    if !pipelines.is_empty() {
        rsigma_eval::apply_pipelines(pipelines, &mut rule)
            .map_err(|e| format!("Sigma rule {title:?} (line {}): pipeline: {e}", doc.first_line))?;
    }
    if let Some(product) = &rule.logsource.product
        && !product.eq_ignore_ascii_case("app")
        && !product.eq_ignore_ascii_case("vigil")
    {
        return Err(format!(
            "Sigma rule {title:?} (line {}): logsource.product {product:?} is not Vigil's (`app` or `vigil`, or none); \
             adapt the rule with a pipeline",
            doc.line_of("product:")
        ));
    }
    let mut fields = Vec::new();
    for detection in rule.detection.named.values() {
        detection_fields(detection, &mut fields);
    }
    fields.sort();
    fields.dedup();
    for f in &fields {
        check_field(&title, doc, f)?;
    }
    let dedup_by = dedup_fields(&rule, &title, doc)?;
    let compiled = rsigma_eval::compile_rule(&rule).map_err(|e| {
        let e = e.to_string();
        format!("Sigma rule {title:?} (line {}): {e}", doc.error_line(&e))
    })?;
    let category = rule.logsource.category.as_ref().map(|c| c.to_ascii_lowercase());
    let actions = required_actions(&rule);
    let service = rule.logsource.service.clone();
    if category.is_some() {
        push_unique(manifest_fields, "category");
    }
    if service.is_some() {
        push_unique(manifest_fields, "source");
    }
    for f in fields.iter().chain(&dedup_by) {
        // `details` is read whole (once per event) to keep its JSON types.
        push_unique(manifest_fields, if is_details_path(f) { "details" } else { f });
    }
    Ok(DetectionRule {
        rule: compiled,
        key: rule.name.clone().or_else(|| rule.id.clone()).unwrap_or_else(|| title.clone()),
        id: rule.id.clone(),
        severity: severity_of(rule.level),
        mitre: mitre_ids(&rule.tags),
        title,
        category,
        service,
        actions,
        alert: true,
        fields,
        dedup_by,
        feeds: Vec::new(),
    })
}

/// Most fields in `vigil.dedup_by`.
const MAX_DEDUP_FIELDS: usize = 4;

/// The rule's `vigil.dedup_by` (a field name or a list of them, Vigil event fields, at most
/// [`MAX_DEDUP_FIELDS`]); other `vigil.` attributes are refused, so a typo is not ignored.
fn dedup_fields(rule: &SigmaRule, title: &str, doc: &Doc) -> Result<Vec<String>, String> {
    let refuse = |what: String| format!("Sigma rule {title:?} (line {}): {what}", doc.line_of("vigil."));
    if let Some(other) = rule.custom_attributes.keys().find(|k| k.starts_with("vigil.") && *k != "vigil.dedup_by") {
        return Err(refuse(format!("unknown attribute {other:?} (Vigil reads `vigil.dedup_by` only)")));
    }
    let Some(value) = rule.custom_attributes.get("vigil.dedup_by") else { return Ok(Vec::new()) };
    let names: Option<Vec<String>> = match value.as_sequence() {
        Some(items) => items.iter().map(|v| v.as_str().map(str::to_owned)).collect(),
        None => value.as_str().map(|s| vec![s.to_owned()]),
    };
    let Some(names) = names.filter(|n| !n.is_empty() && n.len() <= MAX_DEDUP_FIELDS) else {
        return Err(refuse(format!(
            "`vigil.dedup_by` must be a field name or a list of 1 to {MAX_DEDUP_FIELDS} of them"
        )));
    };
    for f in &names {
        check_field(title, doc, f)?;
    }
    Ok(names)
}

/// What compiling a correlation changes besides the correlation itself.
struct Feeding<'a> {
    /// The correlation's index among the compiled ones.
    index: usize,
    /// The detection rules, each told which correlations it feeds.
    detections: &'a mut [DetectionRule],
    /// Per detection rule, whether a correlation it feeds says `generate: true`.
    generates: &'a mut [bool],
    /// Names, ids and titles of every correlation of the text (to name a correlation of
    /// correlations in the refusal).
    correlation_keys: &'a [String],
    manifest_fields: &'a mut Vec<String>,
}

/// One correlation: type, window and timespan checked, its rules resolved to detection
/// rules of the deployment (which then feed it), group-by fields and condition read.
fn compile_correlation(corr: CorrelationRule, doc: &Doc, feeding: Feeding<'_>) -> Result<Correlation, String> {
    let Feeding { index: c, detections, generates, correlation_keys, manifest_fields } = feeding;
    let title = corr.title.clone();
    let at = |needle: &str| doc.line_of(needle);
    let refuse = |line: usize, what: String| format!("Sigma correlation {title:?} (line {line}): {what}");
    let timespan_ms = checked_timespan(&corr, doc).map_err(|(line, what)| refuse(line, what))?;
    let mut group_fields = Vec::new();
    for (position, reference) in corr.rules.iter().enumerate() {
        let Some(d) = detections
            .iter()
            .position(|d| d.key == *reference || d.id.as_deref() == Some(reference) || d.rule.title == *reference)
        else {
            let what = if correlation_keys.iter().any(|k| k == reference) {
                format!("rule {reference:?} is a correlation: correlations of correlations are not supported")
            } else {
                format!("names rule {reference:?}, which is not a detection rule of this deployment")
            };
            return Err(refuse(at(reference), what));
        };
        let fields: Vec<String> = corr
            .group_by
            .iter()
            .map(|g| {
                corr.aliases
                    .iter()
                    .find(|a| a.alias == *g)
                    .and_then(|a| a.mapping.get(reference).cloned())
                    .unwrap_or_else(|| g.clone())
            })
            .collect();
        for f in &fields {
            check_field(&title, doc, f)?;
            push_unique(manifest_fields, f);
        }
        group_fields.push(fields);
        detections[d].feeds.push((c, position));
        generates[d] |= corr.generate;
    }
    let (predicates, value_field, expression) = match &corr.condition {
        CorrelationCondition::Threshold { predicates, field, .. } => {
            let field = field.as_ref().and_then(|f| f.first().cloned());
            (predicates.clone(), field, None)
        }
        CorrelationCondition::Extended(expr) => {
            if corr.correlation_type != CorrelationType::Temporal {
                return Err(refuse(
                    at("condition"),
                    "a boolean condition is only supported for temporal correlations".into(),
                ));
            }
            if let Some(what) = unknown_reference(expr, &corr.rules) {
                return Err(refuse(at("condition"), what));
            }
            (Vec::new(), None, Some(expr.clone()))
        }
    };
    if corr.correlation_type == CorrelationType::ValueCount {
        let Some(f) = &value_field else {
            return Err(refuse(at("condition"), "value_count needs `condition.field`".into()));
        };
        check_field(&title, doc, f)?;
        push_unique(manifest_fields, f);
    }
    if corr.correlation_type == CorrelationType::EventCount && predicates.is_empty() {
        return Err(refuse(at("condition"), "event_count needs a threshold condition (gte, gt, ...)".into()));
    }
    Ok(Correlation {
        kind: corr.correlation_type,
        key: corr.name.clone().or_else(|| corr.id.clone()).unwrap_or_else(|| title.clone()),
        severity: severity_of(corr.level),
        mitre: mitre_ids(&corr.tags),
        refs: corr.rules.clone(),
        group_names: corr.group_by.clone(),
        group_fields,
        timespan_ms,
        predicates,
        value_field,
        expression,
        title,
    })
}

/// A supported correlation's timespan in ms, or the line and reason of the refusal: the
/// type, a sliding window, 1 second to 31 days.
fn checked_timespan(corr: &CorrelationRule, doc: &Doc) -> Result<i64, (usize, String)> {
    match corr.correlation_type {
        CorrelationType::EventCount
        | CorrelationType::ValueCount
        | CorrelationType::Temporal
        | CorrelationType::TemporalOrdered => {}
        other => {
            return Err((
                doc.line_of("type:"),
                format!(
                    "correlation type {} is not supported (event_count, value_count, temporal, temporal_ordered)",
                    other.as_str()
                ),
            ));
        }
    }
    if corr.window != WindowMode::Sliding {
        return Err((
            doc.line_of("window"),
            format!("window {} is not supported (sliding windows only)", corr.window.as_str()),
        ));
    }
    let timespan_ms = i64::try_from(corr.timespan.seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
    if timespan_ms <= 0 || timespan_ms > MAX_TIMESPAN_MS {
        return Err((doc.line_of("timespan"), "timespan must be between 1 second and 31 days".into()));
    }
    Ok(timespan_ms)
}

/// The actions a rule can match at all: its condition requires (at its top level) a
/// selection holding a plain `action` list (no modifier, no wildcard). Vigil stores actions
/// lowercased and Sigma compares case-insensitively, so the lowercased list is exact.
fn required_actions(rule: &SigmaRule) -> Option<Vec<String>> {
    let [condition] = rule.detection.conditions.as_slice() else { return None };
    let names: Vec<&str> = match condition {
        ConditionExpr::Identifier(name) => vec![name.as_str()],
        ConditionExpr::And(args) => args
            .iter()
            .filter_map(|a| match a {
                ConditionExpr::Identifier(name) => Some(name.as_str()),
                _ => None,
            })
            .collect(),
        _ => return None,
    };
    for name in names {
        let Some(Detection::AllOf(items)) = rule.detection.named.get(name) else { continue };
        for item in items {
            if item.field.name.as_deref() != Some("action")
                || !item.field.modifiers.is_empty()
                || item.values.is_empty()
            {
                continue;
            }
            let plain: Option<Vec<String>> = item
                .values
                .iter()
                .map(|v| match v {
                    SigmaValue::String(s) => s.as_plain().map(|p| p.to_ascii_lowercase()),
                    _ => None,
                })
                .collect();
            if let Some(list) = plain.filter(|l| l.iter().all(|a| (1..=128).contains(&a.len())) && l.len() <= 256) {
                return Some(list);
            }
        }
    }
    None
}

/// What a temporal condition names that is not among the correlation's `rules`: an
/// identifier, or a `1 of`/`all of` pattern matching none of them.
fn unknown_reference(expr: &ConditionExpr, refs: &[String]) -> Option<String> {
    match expr {
        ConditionExpr::And(a) | ConditionExpr::Or(a) => a.iter().find_map(|e| unknown_reference(e, refs)),
        ConditionExpr::Not(a) => unknown_reference(a, refs),
        ConditionExpr::Identifier(name) => (!refs.contains(name))
            .then(|| format!("the condition names {name:?}, which is not in the correlation's rules")),
        ConditionExpr::Selector { quantifier, pattern } => {
            let matching = refs.iter().filter(|r| pattern.matches_detection_name(r)).count() as u64;
            match quantifier {
                _ if matching == 0 => Some(format!(
                    "`{quantifier} of {pattern}` in the condition matches none of the correlation's rules"
                )),
                Quantifier::Count(n) if *n > matching => Some(format!(
                    "`{n} of {pattern}` in the condition can never hold: only {matching} of the correlation's rules match"
                )),
                _ => None,
            }
        }
    }
}
