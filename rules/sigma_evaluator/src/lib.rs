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

use std::borrow::Cow;

use std::cell::OnceCell;

use rsigma_eval::{CompiledRule, EventValue, JsonEvent, Pipeline};
use rsigma_parser::{
    ConditionExpr, ConditionOperator, CorrelationCondition, CorrelationRule, CorrelationType, Detection, Level,
    Modifier, SigmaRule, SigmaValue, WindowMode,
};
use vigil_sdk::manifest::{EVENT_FIELDS, Kind, MAX_CLAUSES, MAX_FIELDS, is_field_name};
use vigil_sdk::{Alert, Config, Context, Event, Manifest, Rule, Severity, Subscription, export_rule};

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
    let mut alert = Alert::new(d.title.as_str())
        .severity(d.severity)
        .dedup_key(format!("sigma:{}", d.key))
        .field("sigma_rule", d.key.as_str());
    if let Some(id) = &d.id {
        alert = alert.field("sigma_id", id.as_str());
    }
    if !d.mitre.is_empty() {
        alert = alert.field("mitre", d.mitre.join(","));
    }
    for f in d.fields.iter().take(SUMMARY_FIELDS) {
        if let Some(v) = ev.get(f) {
            alert = alert.field(f, v);
        }
    }
    alert
}

impl SigmaEvaluator {
    fn correlate(&self, c: usize, position: usize, ev: &Event<'_>, ctx: &mut Context) {
        let corr = &self.correlations[c];
        let values: Vec<&str> = corr.group_fields[position].iter().map(|f| ev.get(f).unwrap_or("")).collect();
        let mut key = corr.key.clone();
        for v in &values {
            key.push('\u{1f}');
            key.push_str(v);
        }
        let (now, seqs) = match corr.kind {
            CorrelationType::EventCount => {
                let w = ctx.window(corr.timespan_ms);
                let n = w.add(&key, 1) as u64;
                if !fires(&corr.predicates, n, n - 1) {
                    return;
                }
                (n, w.seqs(&key))
            }
            CorrelationType::ValueCount => {
                let Some(field) = &corr.value_field else { return };
                let Some(value) = ev.get(field).filter(|v| !v.is_empty()) else { return };
                let d = ctx.distinct(corr.timespan_ms);
                let before = d.count(&key) as u64;
                let n = d.add(&key, value) as u64;
                if !fires(&corr.predicates, n, before) {
                    return;
                }
                (n, d.seqs(&key))
            }
            CorrelationType::Temporal => {
                let w = ctx.window(corr.timespan_ms);
                let here = w.add(format!("{key}\u{1e}{position}"), 1);
                let present: Vec<bool> =
                    (0..corr.refs.len()).map(|i| i == position || w.count(format!("{key}\u{1e}{i}")) > 0).collect();
                let mut before = present.clone();
                before[position] = here > 1;
                let (now, was) = (self.temporal_holds(corr, &present), self.temporal_holds(corr, &before));
                if !now || was {
                    return;
                }
                let mut seqs: Vec<i64> = (0..corr.refs.len()).flat_map(|i| w.seqs(format!("{key}\u{1e}{i}"))).collect();
                seqs.sort_unstable();
                seqs.dedup();
                (present.iter().filter(|p| **p).count() as u64, seqs)
            }
            CorrelationType::TemporalOrdered => {
                let seen = ctx.last_seen();
                let t = ctx.time_ms();
                let start = if position == 0 {
                    t
                } else {
                    let Some(previous) = seen.get(format!("{key}\u{1e}{}", position - 1)) else { return };
                    let Some(start) = previous.as_str().and_then(|s| s.parse::<i64>().ok()) else { return };
                    if t - start > corr.timespan_ms || t < start {
                        return;
                    }
                    start
                };
                seen.set(format!("{key}\u{1e}{position}"), start.to_string());
                if position + 1 != corr.refs.len() {
                    return;
                }
                (corr.refs.len() as u64, vec![ctx.seq()])
            }
            _ => return,
        };
        let mut alert = Alert::new(corr.title.as_str())
            .severity(corr.severity)
            .dedup_key(format!("sigma:{}:{}", corr.key, values.join(",")))
            .field("sigma_rule", corr.key.as_str())
            .field("correlation", corr.kind.as_str())
            .field("count", now as i64)
            .field("timespan_ms", corr.timespan_ms);
        for (name, value) in corr.group_names.iter().zip(&values) {
            alert = alert.field(name, *value);
        }
        if !corr.mitre.is_empty() {
            alert = alert.field("mitre", corr.mitre.join(","));
        }
        if !seqs.is_empty() {
            alert = alert.event_seqs(seqs);
        }
        ctx.emit(alert);
    }

    fn temporal_holds(&self, corr: &Correlation, present: &[bool]) -> bool {
        match &corr.expression {
            Some(expr) => {
                eval_expression(expr, &|name| corr.refs.iter().position(|r| r == name).is_some_and(|i| present[i]))
            }
            None => {
                let n = present.iter().filter(|p| **p).count() as u64;
                holds(&corr.predicates, n)
            }
        }
    }
}

fn eval_expression(expr: &ConditionExpr, present: &dyn Fn(&str) -> bool) -> bool {
    match expr {
        ConditionExpr::And(args) => args.iter().all(|a| eval_expression(a, present)),
        ConditionExpr::Or(args) => args.iter().any(|a| eval_expression(a, present)),
        ConditionExpr::Not(arg) => !eval_expression(arg, present),
        ConditionExpr::Identifier(name) => present(name),
        ConditionExpr::Selector { .. } => false,
    }
}

/// Whether every predicate holds for `n`.
fn holds(predicates: &[(ConditionOperator, u64)], n: u64) -> bool {
    predicates.iter().all(|&(op, v)| match op {
        ConditionOperator::Lt => n < v,
        ConditionOperator::Lte => n <= v,
        ConditionOperator::Gt => n > v,
        ConditionOperator::Gte => n >= v,
        ConditionOperator::Eq => n == v,
        ConditionOperator::Neq => n != v,
    })
}

/// A threshold correlation fires when its condition starts to hold: it holds at `n` and did
/// not before this event (`before`; a group's first event always counts as a start).
fn fires(predicates: &[(ConditionOperator, u64)], n: u64, before: u64) -> bool {
    holds(predicates, n) && (before == 0 || !holds(predicates, before))
}

// ---------------------------------------------------------------------------------------
// Events as rsigma sees them
// ---------------------------------------------------------------------------------------

/// A Vigil event for `rsigma-eval`: declared fields are read in place, others lazily;
/// `details` is parsed once per event when a rule reads it, and its paths are resolved by
/// rsigma's own JSON event, so `details` values keep their JSON types and rsigma's path
/// rules (nested objects, arrays) exactly.
struct View<'e, 'a> {
    ev: &'e Event<'a>,
    details: OnceCell<Option<JsonEvent<'static>>>,
}

/// Fields whose values are always strings.
fn is_string_field(path: &str) -> bool {
    EVENT_FIELDS.contains(&path) || path == "geo.country" || path == "geo.city"
}

/// The value of a top-level field's ABI text as rsigma sees it: strings, but `geo.lat/lon`
/// are numbers (`details` paths go through [`View::details_event`]).
fn typed<'t>(path: &str, text: &'t str) -> EventValue<'t> {
    if is_string_field(path) {
        return EventValue::Str(Cow::Borrowed(text));
    }
    if (path == "geo.lat" || path == "geo.lon")
        && let Ok(f) = text.parse::<f64>()
    {
        return EventValue::Float(f);
    }
    let first = text.as_bytes().first().copied().unwrap_or(b'a');
    if (first == b'{' || first == b'[')
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(text)
    {
        return owned(&v);
    }
    EventValue::Str(Cow::Borrowed(text))
}

fn owned(v: &serde_json::Value) -> EventValue<'static> {
    use serde_json::Value as J;
    match v {
        J::String(s) => EventValue::Str(Cow::Owned(s.clone())),
        J::Number(n) => match n.as_i64() {
            Some(i) => EventValue::Int(i),
            None => EventValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::Bool(b) => EventValue::Bool(*b),
        J::Null => EventValue::Null,
        J::Array(items) => EventValue::Array(items.iter().map(owned).collect()),
        J::Object(map) => EventValue::Map(map.iter().map(|(k, v)| (Cow::Owned(k.clone()), owned(v))).collect()),
    }
}

fn visit_json_strings(v: &serde_json::Value, visit: &mut dyn FnMut(&str)) {
    match v {
        serde_json::Value::String(s) => visit(s),
        serde_json::Value::Array(items) => items.iter().for_each(|i| visit_json_strings(i, visit)),
        serde_json::Value::Object(map) => map.values().for_each(|i| visit_json_strings(i, visit)),
        _ => {}
    }
}

impl View<'_, '_> {
    fn details(&self) -> Option<serde_json::Value> {
        serde_json::from_str(self.ev.get("details")?).ok()
    }

    /// `{"details": <the event's details>}` as rsigma's JSON event.
    fn details_event(&self) -> Option<&JsonEvent<'static>> {
        self.details
            .get_or_init(|| {
                let details = self.details()?;
                Some(JsonEvent::owned(serde_json::json!({ "details": details })))
            })
            .as_ref()
    }
}

fn is_details_path(path: &str) -> bool {
    path == "details" || path.starts_with("details.") || path.starts_with("details[")
}

impl rsigma_eval::Event for View<'_, '_> {
    fn get_field(&self, path: &str) -> Option<EventValue<'_>> {
        if is_details_path(path) {
            return rsigma_eval::Event::get_field(self.details_event()?, path);
        }
        let text = self.ev.get(path)?;
        Some(typed(path, text))
    }

    fn any_string_value(&self, pred: &dyn Fn(&str) -> bool) -> bool {
        let mut hit = false;
        self.visit_string_values(&mut |s| hit = hit || pred(s));
        hit
    }

    fn all_string_values(&self) -> Vec<Cow<'_, str>> {
        let mut out = Vec::new();
        self.visit_string_values(&mut |s| out.push(Cow::Owned(s.to_owned())));
        out
    }

    fn visit_string_values(&self, visit: &mut dyn FnMut(&str)) {
        for f in EVENT_FIELDS.iter().chain(&["geo.country", "geo.city"]) {
            if let Some(v) = self.ev.get(f) {
                visit(v);
            }
        }
        if let Some(details) = self.details() {
            visit_json_strings(&details, visit);
        }
    }

    fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for f in EVENT_FIELDS {
            if let Some(v) = self.ev.get(f) {
                map.insert((*f).to_owned(), serde_json::Value::String(v.to_owned()));
            }
        }
        let mut geo = serde_json::Map::new();
        for f in ["country", "city", "lat", "lon"] {
            if let Some(v) = self.ev.get(&format!("geo.{f}")) {
                let value = serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.to_owned()));
                geo.insert(f.to_owned(), value);
            }
        }
        if !geo.is_empty() {
            map.insert("geo".into(), serde_json::Value::Object(geo));
        }
        if let Some(details) = self.details() {
            map.insert("details".into(), details);
        }
        serde_json::Value::Object(map)
    }
}

// ---------------------------------------------------------------------------------------
// Building: documents, pipelines, rules, manifest
// ---------------------------------------------------------------------------------------

/// One YAML document of the text, with the line it starts at (1-based).
struct Doc {
    text: String,
    first_line: usize,
}

impl Doc {
    /// The text's line of the first line of this document containing `needle`.
    fn line_of(&self, needle: &str) -> usize {
        if needle.is_empty() {
            return self.first_line;
        }
        self.text.lines().position(|l| l.contains(needle)).map_or(self.first_line, |i| self.first_line + i)
    }

    /// The first line declaring a top-level `key:`.
    fn key_line(&self, key: &str) -> usize {
        let prefix = format!("{key}:");
        self.text.lines().position(|l| l.starts_with(&prefix)).map_or(self.first_line, |i| self.first_line + i)
    }

    fn has_key(&self, key: &str) -> bool {
        let prefix = format!("{key}:");
        self.text.lines().any(|l| l.starts_with(&prefix))
    }

    /// The line of an error message: its first quoted word, else the first `|modifier` the
    /// message names (`invalid CIDR` -> a line with `|cidr`), else the document's start.
    fn error_line(&self, message: &str) -> usize {
        let word = quoted(message);
        if !word.is_empty() && self.text.contains(word) {
            return self.line_of(word);
        }
        let lower = message.to_ascii_lowercase();
        for (i, line) in self.text.lines().enumerate() {
            let named = line.split('|').skip(1).any(|m| {
                let m = m.split(|c: char| !c.is_ascii_alphanumeric()).next().unwrap_or("");
                m.len() >= 2
                    && (lower.contains(&format!(" {m}")) || lower.starts_with(m) || lower.contains(&format!("{m} ")))
            });
            if named {
                return self.first_line + i;
            }
        }
        self.first_line
    }

    /// The line a YAML error message points at (`... at line N column M`), in the text.
    fn yaml_error_line(&self, message: &str) -> usize {
        message
            .split("line ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<usize>().ok())
            .map_or(self.first_line, |n| self.first_line + n.saturating_sub(1))
    }
}

fn split_documents(text: &str) -> Vec<Doc> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut first_line = 1;
    for (i, line) in text.lines().enumerate() {
        let marker = line.trim_end();
        if marker == "---" || marker == "..." {
            if !current.trim().is_empty() {
                docs.push(Doc { text: std::mem::take(&mut current), first_line });
            }
            current.clear();
            first_line = i + 2;
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    if !current.trim().is_empty() {
        docs.push(Doc { text: current, first_line });
    }
    docs
}

/// The first quoted word of an error message (`'foo'`, `"foo"` or `` `foo` ``), to find it
/// in the document.
fn quoted(message: &str) -> &str {
    for q in ['\'', '"', '`'] {
        if let Some(start) = message.find(q)
            && let Some(len) = message[start + 1..].find(q)
        {
            return &message[start + 1..start + 1 + len];
        }
    }
    ""
}

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

fn push_unique(list: &mut Vec<String>, item: &str) {
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
    let mut pipelines: Vec<Pipeline> = Vec::new();
    let mut rules: Vec<(SigmaRule, usize)> = Vec::new();
    let mut correlations: Vec<(CorrelationRule, usize)> = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        if doc.has_key("transformations") {
            let pipeline = rsigma_eval::parse_pipeline(&doc.text).map_err(|e| {
                let e = e.to_string();
                format!("pipeline (line {}): {e}", doc.yaml_error_line(&e))
            })?;
            pipelines.push(pipeline);
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
        rules.extend(collection.rules.into_iter().map(|r| (r, i)));
        correlations.extend(collection.correlations.into_iter().map(|c| (c, i)));
    }
    if rules.is_empty() && correlations.is_empty() {
        return Err("the text holds no Sigma detection rule".into());
    }

    let mut manifest_fields: Vec<String> = Vec::new();
    let mut detections = Vec::new();
    for (mut rule, i) in rules {
        let doc = &docs[i];
        let title = rule.title.clone();
        if !pipelines.is_empty() {
            rsigma_eval::apply_pipelines(&pipelines, &mut rule)
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
        let compiled = rsigma_eval::compile_rule(&rule).map_err(|e| {
            let e = e.to_string();
            format!("Sigma rule {title:?} (line {}): {e}", doc.error_line(&e))
        })?;
        let category = rule.logsource.category.as_ref().map(|c| c.to_ascii_lowercase());
        let actions = required_actions(&rule);
        let service = rule.logsource.service.clone();
        if category.is_some() {
            push_unique(&mut manifest_fields, "category");
        }
        if service.is_some() {
            push_unique(&mut manifest_fields, "source");
        }
        for f in &fields {
            // `details` is read whole (once per event) to keep its JSON types.
            push_unique(&mut manifest_fields, if is_details_path(f) { "details" } else { f });
        }
        detections.push(DetectionRule {
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
            feeds: Vec::new(),
        });
    }

    let mut compiled_correlations = Vec::new();
    let mut generates = vec![false; detections.len()];
    let correlation_keys: Vec<String> = correlations
        .iter()
        .flat_map(|(c, _)| [c.name.clone(), c.id.clone(), Some(c.title.clone())])
        .flatten()
        .collect();
    for (corr, i) in correlations {
        let doc = &docs[i];
        let title = corr.title.clone();
        let at = |needle: &str| doc.line_of(needle);
        let refuse = |line: usize, what: String| format!("Sigma correlation {title:?} (line {line}): {what}");
        match corr.correlation_type {
            CorrelationType::EventCount
            | CorrelationType::ValueCount
            | CorrelationType::Temporal
            | CorrelationType::TemporalOrdered => {}
            other => {
                return Err(refuse(
                    at("type:"),
                    format!(
                        "correlation type {} is not supported (event_count, value_count, temporal, temporal_ordered)",
                        other.as_str()
                    ),
                ));
            }
        }
        if corr.window != WindowMode::Sliding {
            return Err(refuse(
                at("window"),
                format!("window {} is not supported (sliding windows only)", corr.window.as_str()),
            ));
        }
        let timespan_ms = i64::try_from(corr.timespan.seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
        if timespan_ms <= 0 || timespan_ms > MAX_TIMESPAN_MS {
            return Err(refuse(at("timespan"), "timespan must be between 1 second and 31 days".into()));
        }
        let c = compiled_correlations.len();
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
                push_unique(&mut manifest_fields, f);
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
                if has_selector(expr) {
                    return Err(refuse(
                        at("condition"),
                        "`1 of`/`all of` in a correlation condition is not supported".into(),
                    ));
                }
                (Vec::new(), None, Some(expr.clone()))
            }
        };
        if corr.correlation_type == CorrelationType::ValueCount {
            let Some(f) = &value_field else {
                return Err(refuse(at("condition"), "value_count needs `condition.field`".into()));
            };
            check_field(&title, doc, f)?;
            push_unique(&mut manifest_fields, f);
        }
        if corr.correlation_type == CorrelationType::EventCount && predicates.is_empty() {
            return Err(refuse(at("condition"), "event_count needs a threshold condition (gte, gt, ...)".into()));
        }
        compiled_correlations.push(Correlation {
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
        });
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

fn has_selector(expr: &ConditionExpr) -> bool {
    match expr {
        ConditionExpr::And(a) | ConditionExpr::Or(a) => a.iter().any(has_selector),
        ConditionExpr::Not(a) => has_selector(a),
        ConditionExpr::Identifier(_) => false,
        ConditionExpr::Selector { .. } => true,
    }
}

fn build_manifest(
    name: &str,
    version: &str,
    detections: &[DetectionRule],
    correlations: &[Correlation],
    mut fields: Vec<String>,
) -> Manifest {
    let severity = detections
        .iter()
        .filter(|d| d.alert)
        .map(|d| d.severity)
        .chain(correlations.iter().map(|c| c.severity))
        .min()
        .unwrap_or(Severity::P3);
    let mut mitre: Vec<String> = Vec::new();
    for id in detections.iter().flat_map(|d| &d.mitre).chain(correlations.iter().flat_map(|c| &c.mitre)) {
        if mitre.len() < MAX_MITRE {
            push_unique(&mut mitre, id);
        }
    }
    let mut description = String::from("Sigma: ");
    let titles: Vec<&str> =
        detections.iter().map(|d| d.title.as_str()).chain(correlations.iter().map(|c| c.title.as_str())).collect();
    description.push_str(&titles.join("; "));
    if description.len() > 1000 {
        let mut end = 1000;
        while !description.is_char_boundary(end) {
            end -= 1;
        }
        description.truncate(end);
    }
    // Declared fields are copied per event; past the cap, the rest are read lazily.
    fields.truncate(MAX_FIELDS);
    let mut manifest = Manifest::detection(name)
        .version(version)
        .description(&description)
        .severity(severity)
        .mitre(mitre)
        .fields(fields)
        .windows_ms(correlations.iter().map(|c| c.timespan_ms));
    // One clause per rule: its logsource category and the actions it can match (when its
    // condition pins them); past the clause cap, one clause per category; a rule without a
    // category or actions wants every event.
    let clause = |d: &DetectionRule| {
        let mut c = Subscription::all();
        if let Some(category) = d.category.as_ref().filter(|c| c.len() <= 128) {
            c = c.categories([category.clone()]);
        }
        if let Some(actions) = &d.actions {
            c = c.actions(actions.iter().cloned());
        }
        c
    };
    let mut clauses: Vec<Subscription> = Vec::new();
    for d in detections {
        let c = clause(d);
        if !clauses.contains(&c) {
            clauses.push(c);
        }
    }
    if clauses.iter().any(|c| c == &Subscription::all()) {
        clauses = vec![Subscription::all()];
    } else if clauses.len() > MAX_CLAUSES {
        let mut categories: Vec<String> = Vec::new();
        for c in &clauses {
            for category in &c.categories {
                push_unique(&mut categories, category);
            }
        }
        let every_clause_has_one = clauses.iter().all(|c| !c.categories.is_empty());
        clauses = if every_clause_has_one && categories.len() <= 256 {
            vec![Subscription::all().categories(categories)]
        } else {
            vec![Subscription::all()]
        };
    }
    for c in clauses {
        manifest = manifest.subscribe(c);
    }
    manifest
}
