//! A Vigil event as `rsigma-eval` sees it.

use std::borrow::Cow;
use std::cell::OnceCell;

use rsigma_eval::{EventValue, JsonEvent};
use vigil_sdk::Event;
use vigil_sdk::manifest::EVENT_FIELDS;

/// A Vigil event for `rsigma-eval`: declared fields are read in place, others lazily;
/// `details` is parsed once per event when a rule reads it, and its paths are resolved by
/// rsigma's own JSON event, so `details` values keep their JSON types and rsigma's path
/// rules (nested objects, arrays) exactly.
pub(crate) struct View<'e, 'a> {
    pub(crate) ev: &'e Event<'a>,
    pub(crate) details: OnceCell<Option<JsonEvent<'static>>>,
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

pub(crate) fn is_details_path(path: &str) -> bool {
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
