//! OCSF 1.x events in (`POST /v1/events?format=ocsf`): Account Change (3001),
//! Authentication (3002), HTTP Activity (4002) and API Activity (6003) mapped to Vigil's
//! wire format (docs/integrations.md has the tables). The attributes that become Vigil
//! fields are taken out; everything else of the OCSF event is kept in `details` (with
//! `class_uid`, `activity_id`, `status_id` and `severity_id`, so the original is readable).
//! The mapped event then goes through the same validation and masking as any other; a
//! problem found there is reported under the OCSF attribute it came from.

use serde_json::{Map, Value};

use super::Problem;

/// The classes accepted, with their names.
pub const CLASSES: &[(i64, &str)] =
    &[(3001, "Account Change"), (3002, "Authentication"), (4002, "HTTP Activity"), (6003, "API Activity")];

/// One OCSF event mapped: the Vigil event (unvalidated) and, for each Vigil field that
/// came from an OCSF attribute, that attribute's path (to name it in a problem).
#[derive(Debug, Clone)]
pub struct Mapped {
    /// The event in Vigil's wire format.
    pub event: Value,
    /// (Vigil field, OCSF path).
    pub sources: Vec<(&'static str, String)>,
}

impl Mapped {
    /// The OCSF path a problem of Vigil field `field` (`geo.lat`, `ip`, ...) is about.
    pub fn source_of(&self, field: &str) -> Option<&str> {
        self.sources.iter().find(|(f, _)| *f == field).map(|(_, p)| p.as_str())
    }
}

/// Maps one OCSF event (`index` is its position in the request, for problems).
pub fn map_event(index: usize, value: Value) -> Result<Mapped, Problem> {
    let Value::Object(mut ocsf) = value else {
        return Err(problem(index, "body", "each event must be a JSON object"));
    };
    let class = ocsf.get("class_uid").and_then(Value::as_i64);
    let Some(class) = class.filter(|c| CLASSES.iter().any(|(uid, _)| uid == c)) else {
        return Err(problem(
            index,
            "class_uid",
            "must be 3001 (Account Change), 3002 (Authentication), 4002 (HTTP Activity) or 6003 (API Activity)",
        ));
    };
    let activity = match ocsf.get("activity_id") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_i64().ok_or_else(|| problem(index, "activity_id", "must be an integer"))?,
    };
    let status = ocsf.get("status_id").and_then(Value::as_i64).unwrap_or(0);
    let mut m = Mapper { ocsf: &mut ocsf, event: Map::new(), sources: Vec::new() };

    let (category, action) = match class {
        3002 => ("authentication", auth_action(activity, status)),
        3001 if activity == 9 => ("authentication", "account_locked".to_owned()),
        3001 => ("account_management", account_action(activity)),
        4002 => ("http", http_action(activity)),
        _ => ("data_access", api_action(activity)),
    };
    m.set("category", Value::String(category.into()));
    m.set("action", Value::String(action));
    m.set(
        "outcome",
        Value::String(
            match status {
                1 => "success",
                2 => "failure",
                _ => "unknown",
            }
            .into(),
        ),
    );
    if let Some(severity) = ocsf_severity(m.ocsf.get("severity_id").and_then(Value::as_i64).unwrap_or(0)) {
        m.set("severity", Value::String(severity.into()));
    }
    m.take("timestamp", &["time"]);
    m.take("event_id", &["metadata.uid"]);
    m.take("source", &["metadata.product.name"]);
    m.take("organization_id", &["metadata.tenant_uid", "cloud.account.uid"]);
    m.take("reason", &["status_detail"]);
    m.take("error_code", &["status_code"]);
    m.take("ip", &["src_endpoint.ip"]);
    m.take("session_id", &["session.uid", "actor.session.uid"]);
    m.take("user_agent", &["http_request.user_agent"]);
    m.take("request_id", &["http_request.uid"]);
    match class {
        3001 | 3002 => {
            m.take("user_id", &["user.uid", "user.name"]);
            m.take("resource", &["service.name"]);
        }
        4002 => {
            m.take("user_id", &["actor.user.uid", "actor.user.name"]);
            m.take("resource", &["http_request.url.path", "http_request.url.url_string"]);
            m.take("error_code", &["http_response.code"]);
        }
        _ => {
            m.take("user_id", &["actor.user.uid", "actor.user.name"]);
            m.take("resource", &["resources.0.name", "resources.0.uid"]);
            m.take("resource_type", &["resources.0.type"]);
            m.take("request_id", &["api.request.uid"]);
            m.take("error_code", &["api.response.code"]);
        }
    }
    let mut geo = Map::new();
    for (member, path) in [
        ("country", "src_endpoint.location.country"),
        ("city", "src_endpoint.location.city"),
        ("lat", "src_endpoint.location.lat"),
        ("lon", "src_endpoint.location.long"),
    ] {
        if let Some(v) = m.remove(path) {
            geo.insert(member.into(), v);
            m.sources.push((geo_field(member), path.into()));
        }
    }
    if !geo.is_empty() {
        m.event.insert("geo".into(), Value::Object(geo));
    }
    let Mapper { event: mut out, sources, .. } = m;
    prune(&mut ocsf);
    if !ocsf.is_empty() {
        out.insert("details".into(), Value::Object(ocsf));
    }
    Ok(Mapped { event: Value::Object(out), sources })
}

fn geo_field(member: &str) -> &'static str {
    match member {
        "country" => "geo.country",
        "city" => "geo.city",
        "lat" => "geo.lat",
        _ => "geo.lon",
    }
}

struct Mapper<'a> {
    ocsf: &'a mut Map<String, Value>,
    event: Map<String, Value>,
    sources: Vec<(&'static str, String)>,
}

impl Mapper<'_> {
    fn set(&mut self, field: &'static str, value: Value) {
        self.event.insert(field.into(), value);
    }

    /// Moves the first present attribute of `paths` into `field` (a number given for a
    /// string field becomes its text, as OCSF ids and codes often are integers).
    fn take(&mut self, field: &'static str, paths: &[&str]) {
        if self.event.contains_key(field) {
            return;
        }
        for path in paths {
            let found = if path.contains('.') { self.remove(path) } else { self.remove_top(path) };
            if let Some(v) = found {
                let v = match v {
                    Value::Number(n) if field != "timestamp" => Value::String(n.to_string()),
                    other => other,
                };
                self.event.insert(field.into(), v);
                self.sources.push((field, (*path).to_owned()));
                return;
            }
        }
    }

    /// Removes the value at a dotted path (`resources.0.name`: a number steps into an
    /// array), if present and not null.
    fn remove(&mut self, path: &str) -> Option<Value> {
        let (parents, last) = path.rsplit_once('.').map_or(("", path), |(p, l)| (p, l));
        let mut node: &mut Value = self.ocsf.get_mut(parents.split('.').next().filter(|p| !p.is_empty())?)?;
        for part in parents.split('.').skip(1) {
            node = match node {
                Value::Object(o) => o.get_mut(part)?,
                Value::Array(items) => items.get_mut(part.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        let parent = node.as_object_mut()?;
        if parent.get(last).is_none_or(Value::is_null) {
            return None;
        }
        parent.remove(last)
    }

    /// Removes a top-level attribute (not null).
    fn remove_top(&mut self, name: &str) -> Option<Value> {
        if self.ocsf.get(name).is_none_or(Value::is_null) {
            return None;
        }
        self.ocsf.remove(name)
    }
}

/// Removes the objects (and arrays of them) left empty once their mapped members went.
fn prune(obj: &mut Map<String, Value>) {
    obj.retain(|_, v| match v {
        Value::Object(o) => {
            prune(o);
            !o.is_empty()
        }
        Value::Array(items) if items.iter().any(Value::is_object) => {
            for item in items.iter_mut() {
                if let Value::Object(o) = item {
                    prune(o);
                }
            }
            items.retain(|i| !matches!(i, Value::Object(o) if o.is_empty()));
            !items.is_empty()
        }
        _ => true,
    });
}

fn problem(index: usize, field: &str, what: &str) -> Problem {
    Problem { index, field: field.into(), problem: what.into() }
}

/// Vigil severity of an OCSF `severity_id`: Informational and Low are `low`, Medium
/// `medium`, High `high`, Critical and Fatal `critical`; Unknown and Other leave the default.
pub fn ocsf_severity(id: i64) -> Option<&'static str> {
    match id {
        1 | 2 => Some("low"),
        3 => Some("medium"),
        4 => Some("high"),
        5 | 6 => Some("critical"),
        _ => None,
    }
}

fn auth_action(activity: i64, status: i64) -> String {
    match (activity, status) {
        (1, 1) => "login_success",
        (1, 2) => "login_failed",
        (1, _) => "logon",
        (2, _) => "logout",
        (3, _) => "authentication_ticket",
        (4, _) => "service_ticket_request",
        (5, _) => "service_ticket_renew",
        (6, _) => "preauth",
        _ => "other",
    }
    .into()
}

fn account_action(activity: i64) -> String {
    match activity {
        1 => "account_created",
        2 => "account_enabled",
        3 => "password_changed",
        4 => "password_reset",
        5 => "account_disabled",
        6 => "account_deleted",
        7 => "policy_attached",
        8 => "policy_detached",
        10 => "mfa_enabled",
        11 => "mfa_disabled",
        12 => "account_unlocked",
        _ => "other",
    }
    .into()
}

fn http_action(activity: i64) -> String {
    match activity {
        1 => "connect",
        2 => "delete",
        3 => "get",
        4 => "head",
        5 => "options",
        6 => "post",
        7 => "put",
        8 => "trace",
        9 => "patch",
        _ => "other",
    }
    .into()
}

fn api_action(activity: i64) -> String {
    match activity {
        1 => "create",
        2 => "read",
        3 => "update",
        4 => "delete",
        _ => "other",
    }
    .into()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_authentication_event_maps_and_keeps_the_rest() {
        let ocsf = json!({
            "class_uid": 3002, "category_uid": 3, "activity_id": 1, "type_uid": 300201, "status_id": 2,
            "severity_id": 3, "time": 1767600000123i64, "status_detail": "bad password",
            "metadata": {"uid": "evt-1", "version": "1.3.0", "product": {"name": "idp", "vendor_name": "Acme"}},
            "user": {"uid": "alice", "name": "Alice"},
            "src_endpoint": {"ip": "203.0.113.9", "location": {"country": "FR", "city": "Paris"}},
            "auth_protocol": "OAUTH 2.0", "is_mfa": false,
        });
        let m = map_event(0, ocsf).unwrap();
        assert_eq!(
            m.event,
            json!({"category": "authentication", "action": "login_failed", "outcome": "failure",
                "severity": "medium", "timestamp": 1767600000123i64, "event_id": "evt-1", "source": "idp",
                "reason": "bad password", "ip": "203.0.113.9", "user_id": "alice",
                "geo": {"country": "FR", "city": "Paris"},
                "details": {"class_uid": 3002, "category_uid": 3, "activity_id": 1, "type_uid": 300201,
                    "status_id": 2, "severity_id": 3,
                    "metadata": {"version": "1.3.0", "product": {"vendor_name": "Acme"}},
                    "user": {"name": "Alice"}, "auth_protocol": "OAUTH 2.0", "is_mfa": false}})
        );
        assert_eq!(m.source_of("ip"), Some("src_endpoint.ip"));
    }

    #[test]
    fn api_activity_reads_the_first_resource_and_numbers_become_text() {
        let ocsf = json!({"class_uid": 6003, "activity_id": 2, "status_id": 1,
            "actor": {"user": {"uid": 42}}, "api": {"operation": "GetObject", "response": {"code": 200}},
            "resources": [{"name": "invoices", "type": "table"}, {"name": "other"}]});
        let m = map_event(0, ocsf).unwrap();
        assert_eq!(m.event["category"], "data_access");
        assert_eq!(m.event["action"], "read");
        assert_eq!(m.event["user_id"], "42");
        assert_eq!(m.event["resource"], "invoices");
        assert_eq!(m.event["resource_type"], "table");
        assert_eq!(m.event["error_code"], "200");
        assert_eq!(m.event["details"]["resources"], json!([{"name": "other"}]));
        assert_eq!(m.event["details"]["api"], json!({"operation": "GetObject"}));
    }

    #[test]
    fn other_classes_and_shapes_are_named() {
        assert_eq!(map_event(2, json!({"class_uid": 1001})).unwrap_err().field, "class_uid");
        assert_eq!(map_event(0, json!({"class_uid": "3002"})).unwrap_err().field, "class_uid");
        assert_eq!(map_event(0, json!({"class_uid": 3002, "activity_id": "x"})).unwrap_err().field, "activity_id");
        assert_eq!(map_event(0, json!([1])).unwrap_err().field, "body");
    }
}
