//! A stored event as an OCSF 1.3.0 event, for `kind = "ocsf_http"` forwarders: the reverse
//! of `ingest::ocsf`. Authentication events with a user become Authentication (3002),
//! account changes (and `account_locked`) with a user Account Change (3001), `data_access`
//! with a user API Activity (6003), `http` with a numeric `error_code` HTTP Activity (4002);
//! anything else, or an event missing what its class requires, is a Base Event (0). Every
//! class carries the whole Vigil event in `unmapped.vigil`, so nothing is lost. Checked
//! against the OCSF 1.3.0 JSON Schemas of the classes in the tests.

use serde_json::{Map, Value, json};

fn s<'a>(ev: &'a Value, key: &str) -> Option<&'a str> {
    ev.get(key).and_then(Value::as_str).filter(|v| !v.is_empty())
}

/// (activity_id, activity name) of an authentication action.
fn auth_activity(action: &str) -> (i64, &'static str) {
    match action {
        "login_success" | "login_failed" | "logon" | "login" => (1, "Logon"),
        "logout" | "logoff" => (2, "Logoff"),
        "authentication_ticket" => (3, "Authentication Ticket"),
        "service_ticket_request" => (4, "Service Ticket Request"),
        "service_ticket_renew" => (5, "Service Ticket Renew"),
        "preauth" => (6, "Preauth"),
        _ => (99, "Other"),
    }
}

fn account_activity(action: &str) -> (i64, &'static str) {
    match action {
        "account_created" => (1, "Create"),
        "account_enabled" => (2, "Enable"),
        "password_changed" => (3, "Password Change"),
        "password_reset" => (4, "Password Reset"),
        "account_disabled" => (5, "Disable"),
        "account_deleted" => (6, "Delete"),
        "policy_attached" => (7, "Attach Policy"),
        "policy_detached" => (8, "Detach Policy"),
        "account_locked" => (9, "Lock"),
        "mfa_enabled" => (10, "MFA Factor Enable"),
        "mfa_disabled" => (11, "MFA Factor Disable"),
        _ => (99, "Other"),
    }
}

fn api_activity(action: &str) -> (i64, &'static str) {
    match action {
        "create" => (1, "Create"),
        "read" => (2, "Read"),
        "update" => (3, "Update"),
        "delete" => (4, "Delete"),
        _ => (99, "Other"),
    }
}

fn http_activity(action: &str) -> (i64, &'static str) {
    match action {
        "connect" => (1, "Connect"),
        "delete" => (2, "Delete"),
        "get" => (3, "Get"),
        "head" => (4, "Head"),
        "options" => (5, "Options"),
        "post" => (6, "Post"),
        "put" => (7, "Put"),
        "trace" => (8, "Trace"),
        _ => (99, "Other"),
    }
}

/// The OCSF event of a stored event (as `GET /v1/events` returns it).
pub fn to_ocsf(ev: &Value) -> Value {
    let category = s(ev, "category").unwrap_or("");
    let action = s(ev, "action").unwrap_or("");
    let user = s(ev, "user_id");
    let http_code = s(ev, "error_code").and_then(|c| c.parse::<i64>().ok()).filter(|c| (100..=599).contains(c));
    let mut out = Map::new();
    // (class_uid, class name, category_uid, category name, activity)
    let (class_uid, class_name, category_uid, category_name, (activity_id, activity_name)) = match category {
        "authentication" if action == "account_locked" && user.is_some() => {
            (3001, "Account Change", 3, "Identity & Access Management", account_activity(action))
        }
        "authentication" if user.is_some() => {
            (3002, "Authentication", 3, "Identity & Access Management", auth_activity(action))
        }
        "account_management" if user.is_some() => {
            (3001, "Account Change", 3, "Identity & Access Management", account_activity(action))
        }
        "data_access" if user.is_some() => (6003, "API Activity", 6, "Application Activity", api_activity(action)),
        "http" if http_code.is_some() => (4002, "HTTP Activity", 4, "Network Activity", http_activity(action)),
        _ => (0, "Base Event", 0, "Uncategorized", (99, "Other")),
    };
    let user_obj = || json!({"uid": user.unwrap_or_default()});
    match class_uid {
        3001 | 3002 => {
            out.insert("user".into(), user_obj());
            if class_uid == 3002 {
                out.insert("service".into(), json!({"name": s(ev, "resource").or(s(ev, "source")).unwrap_or("vigil")}));
            }
        }
        6003 => {
            out.insert("actor".into(), json!({"user": user_obj()}));
            let mut api = json!({"operation": action});
            if let Some(r) = s(ev, "request_id") {
                api["request"] = json!({"uid": r});
            }
            out.insert("api".into(), api);
            if let Some(resource) = s(ev, "resource") {
                let mut r = json!({"name": resource});
                if let Some(t) = s(ev, "resource_type") {
                    r["type"] = json!(t);
                }
                out.insert("resources".into(), json!([r]));
            }
        }
        4002 => {
            let mut request = json!({"http_method": action.to_ascii_uppercase()});
            if let Some(path) = s(ev, "resource") {
                request["url"] = json!({"path": path});
            }
            if let Some(ua) = s(ev, "user_agent") {
                request["user_agent"] = json!(ua);
            }
            if let Some(r) = s(ev, "request_id") {
                request["uid"] = json!(r);
            }
            out.insert("http_request".into(), request);
            out.insert("http_response".into(), json!({"code": http_code.unwrap_or(0)}));
            out.insert("dst_endpoint".into(), json!({"svc_name": s(ev, "source").unwrap_or("unknown")}));
        }
        _ => {}
    }
    // The source address (and where it is), on every class that has one.
    let mut endpoint = Map::new();
    if let Some(ip) = s(ev, "ip") {
        endpoint.insert("ip".into(), json!(ip));
    }
    if let Some(geo) = ev.get("geo").and_then(Value::as_object)
        && (geo.contains_key("country") || geo.contains_key("city"))
    {
        let mut loc = Map::new();
        for (from, to) in [("country", "country"), ("city", "city"), ("lat", "lat"), ("lon", "long")] {
            if let Some(v) = geo.get(from) {
                loc.insert(to.into(), v.clone());
            }
        }
        endpoint.insert("location".into(), Value::Object(loc));
    }
    if class_uid == 6003 && !endpoint.contains_key("ip") {
        endpoint.insert("name".into(), json!("unknown"));
    }
    if endpoint.contains_key("ip") || endpoint.contains_key("name") {
        out.insert("src_endpoint".into(), Value::Object(endpoint));
    }
    let (severity_id, severity) = match s(ev, "severity") {
        Some("critical") => (5, "Critical"),
        Some("high") => (4, "High"),
        Some("medium") => (3, "Medium"),
        _ => (2, "Low"),
    };
    let (status_id, status) = match s(ev, "outcome") {
        Some("success") => (1, "Success"),
        Some("failure") => (2, "Failure"),
        _ => (0, "Unknown"),
    };
    let time = s(ev, "timestamp").and_then(crate::event::parse_time).unwrap_or(0);
    let mut metadata = json!({
        "version": "1.3.0",
        "product": {"name": "Vigil", "vendor_name": "Vigil", "version": env!("CARGO_PKG_VERSION")},
        "log_name": "vigil",
    });
    if let Some(id) = s(ev, "event_id") {
        metadata["uid"] = json!(id);
    }
    if let Some(seq) = ev.get("seq").and_then(Value::as_i64) {
        metadata["sequence"] = json!(seq);
    }
    if let Some(org) = s(ev, "organization_id") {
        metadata["tenant_uid"] = json!(org);
    }
    if let Some(r) = s(ev, "request_id") {
        metadata["correlation_uid"] = json!(r);
    }
    if let Some(at) = s(ev, "received_at").and_then(crate::event::parse_time) {
        metadata["logged_time"] = json!(at);
    }
    for (k, v) in [
        ("class_uid", json!(class_uid)),
        ("class_name", json!(class_name)),
        ("category_uid", json!(category_uid)),
        ("category_name", json!(category_name)),
        ("activity_id", json!(activity_id)),
        ("activity_name", json!(activity_name)),
        ("type_uid", json!(class_uid * 100 + activity_id)),
        ("time", json!(time)),
        ("severity_id", json!(severity_id)),
        ("severity", json!(severity)),
        ("status_id", json!(status_id)),
        ("status", json!(status)),
        ("message", json!(format!("{category} {action}"))),
        ("metadata", metadata),
        ("unmapped", json!({"vigil": ev})),
    ] {
        out.insert(k.into(), v);
    }
    if let Some(reason) = s(ev, "reason") {
        out.insert("status_detail".into(), json!(reason));
    }
    if let Some(code) = s(ev, "error_code") {
        out.insert("status_code".into(), json!(code));
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::to_ocsf;

    #[test]
    fn classes_follow_category_and_what_is_present() {
        let auth = to_ocsf(&json!({"category": "authentication", "action": "login_failed", "user_id": "alice",
            "outcome": "failure", "severity": "high", "ip": "203.0.113.9", "timestamp": "2026-01-05T08:00:00.000Z"}));
        assert_eq!((auth["class_uid"].as_i64(), auth["type_uid"].as_i64()), (Some(3002), Some(300201)));
        assert_eq!(auth["status_id"], 2);
        assert_eq!(auth["src_endpoint"]["ip"], "203.0.113.9");
        assert_eq!(auth["time"], 1_767_600_000_000i64);
        let no_user = to_ocsf(&json!({"category": "authentication", "action": "login_failed"}));
        assert_eq!(no_user["class_uid"], 0, "a Base Event when the class's required user is missing");
        let http = to_ocsf(&json!({"category": "http", "action": "post", "error_code": "401", "resource": "/login"}));
        assert_eq!((http["class_uid"].as_i64(), http["activity_id"].as_i64()), (Some(4002), Some(6)));
        assert_eq!(http["http_response"]["code"], 401);
        assert_eq!(http["unmapped"]["vigil"]["resource"], "/login");
    }
}
