//! The OpenAPI 3.1 document of the HTTP API, served at `GET /v1/openapi.json` (no key).
//!
//! The handlers build their JSON with `serde_json::json!`, so the document is kept here,
//! beside them, rather than derived: `tests/all/openapi.rs` checks that every route of
//! [`super::ROUTES`] is documented and every documented operation is served, and runs
//! schemathesis against a live server (no 5xx; every status, content type and body matches
//! what is written here). `docs/api.md` is generated from this document
//! (`vigil openapi --markdown`).

use std::sync::OnceLock;

use actix_web::HttpResponse;
use serde_json::{Map, Value, json};

/// `GET /v1/openapi.json`.
pub async fn serve() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(document_text())
}

/// The document, serialized once.
pub fn document_text() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| serde_json::to_string_pretty(&document()).unwrap_or_default())
}

fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// A string matching one of `words` in any letter case (the server lowercases or
/// uppercases them).
fn any_case(words: &[&str]) -> String {
    let alt: Vec<String> = words
        .iter()
        .map(|w| {
            w.chars()
                .map(|c| {
                    if c.is_ascii_alphabetic() {
                        format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase())
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        })
        .collect();
    format!("^({})$", alt.join("|"))
}

/// Every integer the server parses (a 64-bit signed integer).
fn int64() -> Value {
    json!({"type": "integer", "minimum": i64::MIN, "maximum": i64::MAX})
}

fn nullable(ty: &str) -> Value {
    json!({"type": [ty, "null"]})
}

fn hex64() -> Value {
    json!({"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "SHA-256, lowercase hex"})
}

fn time() -> Value {
    json!({"type": "string", "description": "RFC 3339, UTC, millisecond precision"})
}

fn nullable_time() -> Value {
    json!({"type": ["string", "null"], "description": "RFC 3339, UTC, millisecond precision"})
}

fn object(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties})
}

/// An object with exactly these properties (the server refuses unknown members).
fn closed(required: &[&str], properties: Value) -> Value {
    json!({"type": "object", "additionalProperties": false, "required": required, "properties": properties})
}

fn list_of(member: &str, schema: &str, cursor: bool) -> Value {
    let mut props = Map::new();
    props.insert(member.into(), json!({"type": "array", "items": r(schema)}));
    let mut required = vec![member.to_owned()];
    if cursor {
        props.insert(
            "next_cursor".into(),
            json!({"type": ["string", "null"], "description": "pass as `cursor` for the next page; null on the last"}),
        );
        required.push("next_cursor".into());
    }
    json!({"type": "object", "required": required, "properties": props})
}

/// A free-text parameter never holds NUL (a URL with `%00` is refused with 400).
fn no_nul(mut schema: Value) -> Value {
    if schema["type"] == "string" && schema.get("pattern").is_none() && schema.get("enum").is_none() {
        schema["pattern"] = json!("^[^\\u0000]*$");
    }
    schema
}

/// A query parameter. An empty value (`?name=`) counts as absent, so the schema allows it.
fn query(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "schema": {"anyOf": [no_nul(schema), {"const": ""}]},
        "description": description})
}

/// A path parameter.
fn path(name: &str, schema: Value, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": no_nul(schema), "description": description})
}

fn limit(default: i64) -> Value {
    query("limit", json!({"type": "integer", "minimum": 1, "maximum": 1000, "default": default}), "page size")
}

fn cursor() -> Value {
    query("cursor", json!({"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}), "`next_cursor` of the previous page")
}

fn time_param(name: &str, what: &str) -> Value {
    query(
        name,
        json!({"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "pattern": "^[0-9]{1,15}$"}]}),
        &format!("{what}: RFC 3339 time or epoch milliseconds"),
    )
}

fn json_response(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

fn error_response(description: &str) -> Value {
    json_response(description, r("Error"))
}

fn json_body(schema: Value, required: bool) -> Value {
    json!({"required": required, "content": {"application/json": {"schema": schema}}})
}

/// One operation. `role` is None for the unauthenticated endpoints; every authenticated
/// one documents 401 and 403 (and 503 while the database is unavailable).
struct Op {
    id: &'static str,
    tag: &'static str,
    summary: &'static str,
    role: Option<&'static str>,
    params: Vec<Value>,
    body: Option<Value>,
    responses: Vec<(u16, Value)>,
    links: Vec<(u16, &'static str, &'static str)>,
}

impl Op {
    fn new(id: &'static str, tag: &'static str, summary: &'static str, role: Option<&'static str>) -> Self {
        Self { id, tag, summary, role, params: Vec::new(), body: None, responses: Vec::new(), links: Vec::new() }
    }

    fn params(mut self, params: Vec<Value>) -> Self {
        self.params = params;
        self
    }

    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    fn ok(mut self, status: u16, description: &str, schema: Value) -> Self {
        self.responses.push((status, json_response(description, schema)));
        self
    }

    fn raw(mut self, status: u16, response: Value) -> Self {
        self.responses.push((status, response));
        self
    }

    fn err(mut self, status: u16, description: &str) -> Self {
        self.responses.push((status, error_response(description)));
        self
    }

    /// An OpenAPI link: the response with `status` feeds `operation`'s path parameter
    /// (`id` from the body's `id`, or `name` from this request's path).
    fn link(mut self, status: u16, operation: &'static str, parameter: &'static str) -> Self {
        self.links.push((status, operation, parameter));
        self
    }

    fn build(self) -> Value {
        let mut responses = Map::new();
        for (status, response) in self.responses {
            responses.insert(status.to_string(), response);
        }
        // Any request can be malformed (a query that does not parse, a NUL in the URL).
        responses.entry("400").or_insert_with(|| error_response("invalid request"));
        for (status, operation, parameter) in self.links {
            let source = if parameter == "name" { "$request.path.name" } else { "$response.body#/id" };
            if let Some(response) = responses.get_mut(&status.to_string()) {
                response["links"][operation] = json!({"operationId": operation, "parameters": {parameter: source}});
            }
        }
        let mut op = json!({"operationId": self.id, "tags": [self.tag], "summary": self.summary});
        if let Some(role) = self.role {
            responses.insert("401".into(), error_response("missing, unknown or revoked API key"));
            responses.insert("403".into(), error_response(&format!("the key lacks the {role} role")));
            responses.entry("503").or_insert_with(|| {
                error_response("the database is unavailable or the server is shutting down (Retry-After)")
            });
            op["security"] = json!([{"apiKey": []}]);
            op["description"] = json!(format!("Role: {role}."));
        } else {
            op["security"] = json!([]);
            op["description"] = json!("No API key needed.");
        }
        if !self.params.is_empty() {
            op["parameters"] = Value::Array(self.params);
        }
        if let Some(body) = self.body {
            op["requestBody"] = body;
        }
        op["responses"] = Value::Object(responses);
        op
    }
}

/// The whole document.
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for (method, template, op) in operations() {
        let entry = paths.entry(template.to_owned()).or_insert_with(|| json!({}));
        entry[method] = op.build();
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Vigil",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Security event server: append-only hash-chained event log, Wasm detection rules, \
                alerts and routing. Every error is `{\"error\": {\"code\", \"message\", \"details\"}}`. \
                Keys are sent as `Authorization: Bearer <key>`; roles: ingest, read, respond (includes read), \
                admin (everything), bouncer (reads decisions only; read and respond may too).",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "events"}, {"name": "integrity"}, {"name": "rules"}, {"name": "alerts"},
            {"name": "silences"}, {"name": "decisions"}, {"name": "receivers"}, {"name": "keys"}, {"name": "operations"},
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "an API key (vgl_...)"},
            },
            "schemas": schemas(),
        },
    })
}

fn operations() -> Vec<(&'static str, &'static str, Op)> {
    let event_filters = || {
        vec![
            query("category", json!({"type": "string"}), "exact category (case-insensitive)"),
            query("action", json!({"type": "string"}), "exact action (case-insensitive)"),
            query("severity", json!({"type": "string"}), "low, medium, high or critical"),
            query("outcome", json!({"type": "string"}), "success, failure or unknown"),
            query("organization_id", json!({"type": "string"}), "exact organization_id"),
            query("user_id", json!({"type": "string"}), "exact user_id"),
            query("ip", json!({"type": "string"}), "exact IP (IPv6 compared in canonical form)"),
            query("request_id", json!({"type": "string"}), "exact request_id"),
            time_param("since", "events at or after"),
            time_param("until", "events before"),
            limit(50),
            cursor(),
        ]
    };
    let name_param = || path("name", json!({"type": "string"}), "rule name");
    let alert_id = || path("id", json!({"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}), "alert id");
    let comment_body = || json_body(r("Comment"), false);
    let decision_id = || path("id", json!({"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}), "decision id");
    vec![
        ("get", "/healthz", Op::new("healthz", "operations", "Liveness", None).ok(200, "the process is up", r("Health"))),
        (
            "get",
            "/readyz",
            Op::new("readyz", "operations", "Readiness: the database answers and the log takes writes", None)
                .ok(200, "ready", r("Ready"))
                .ok(503, "not ready (database unavailable or integrity hold)", r("Ready")),
        ),
        (
            "get",
            "/metrics",
            Op::new("metrics", "operations", "Prometheus metrics (text exposition format 0.0.4)", None).raw(
                200,
                json!({"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}),
            ),
        ),
        (
            "get",
            "/v1/openapi.json",
            Op::new("openapi", "operations", "This document", None).ok(200, "OpenAPI 3.1", json!({"type": "object"})),
        ),
        (
            "get",
            "/v1/whoami",
            Op::new("whoami", "operations", "The presented key's id, role and what the role may do", Some("any"))
                .ok(200, "the key", r("WhoAmI")),
        ),
        (
            "post",
            "/v1/events",
            Op::new("postEvents", "events", "Ingest one event, a JSON array of events, or NDJSON", Some("ingest"))
                .body(json!({"required": true, "content": {
                    "application/json": {"schema": {"oneOf": [r("EventInput"), {"type": "array", "items": r("EventInput"), "minItems": 1, "maxItems": 100_000}]}},
                    "application/x-ndjson": {"schema": {"type": "string", "description": "one event object per line"}},
                }}))
                .ok(201, "every event durably stored (or recognised as a duplicate), in input order", r("IngestResult"))
                .err(400, "invalid_event: nothing stored; `details` lists {index, field, problem}")
                .err(413, "body larger than the configured limit")
                .err(507, "insufficient_storage: the database is full; nothing stored (Retry-After)"),
        ),
        (
            "get",
            "/v1/events",
            Op::new("listEvents", "events", "Stored events, newest first", Some("read"))
                .params(event_filters())
                .ok(200, "a page of events", list_of("events", "StoredEvent", true))
                .err(400, "invalid filter"),
        ),
        (
            "get",
            "/v1/events/stats",
            Op::new("eventStats", "events", "Counts, failure rate, top IPs and users, time buckets", Some("read"))
                .params(vec![
                    time_param("since", "from"),
                    time_param("until", "to"),
                    query("organization_id", json!({"type": "string"}), "one organization"),
                    query("category", json!({"type": "string"}), "one category"),
                    query("bucket", json!({"type": "string", "enum": ["minute", "hour", "day"], "default": "hour"}), "bucket width"),
                    query("top", json!({"type": "integer", "minimum": 1, "maximum": 100, "default": 10}), "top IPs/users"),
                ])
                .ok(200, "statistics", r("EventStats"))
                .err(400, "invalid parameter"),
        ),
        (
            "get",
            "/v1/events/export",
            Op::new("exportEvents", "events", "Streamed export with hashes and signed checkpoints", Some("read"))
                .params(vec![
                    query("format", json!({"type": "string", "enum": ["ndjson", "jsonl", "csv"], "default": "ndjson"}), "format"),
                    time_param("since", "from"),
                    time_param("until", "to"),
                    query("from", int64(), "first seq"),
                    query("to", int64(), "last seq"),
                ])
                .raw(200, json!({"description": "the export (`vigil verify --file` checks an NDJSON one offline)", "content": {
                    "application/x-ndjson": {"schema": {"type": "string"}},
                    "text/csv": {"schema": {"type": "string"}},
                }}))
                .err(400, "invalid parameter"),
        ),
        (
            "get",
            "/v1/integrity/verify",
            Op::new("verify", "integrity", "Verify the hash chain and signed checkpoints (never a 5xx for damage)", Some("read"))
                .params(vec![
                    query("from", int64(), "first seq (default: the retention floor)"),
                    query("to", int64(), "last seq (default: the head); `from` must not be greater"),
                ])
                .ok(200, "the report; `status` says whether the log is intact", r("VerifyReport"))
                .err(400, "invalid range"),
        ),
        (
            "get",
            "/v1/integrity/head",
            Op::new("head", "integrity", "The last seq and its hash", Some("read")).ok(200, "the head", r("Head")),
        ),
        (
            "get",
            "/v1/integrity/status",
            Op::new("integrityStatus", "integrity", "Head, newest signed checkpoint and its age, hold, last verify", Some("read"))
                .ok(200, "the status", r("IntegrityStatus")),
        ),
        (
            "get",
            "/v1/integrity/checkpoints",
            Op::new("checkpoints", "integrity", "Signed checkpoints, newest first", Some("read"))
                .params(vec![limit(100), cursor()])
                .ok(200, "a page of checkpoints", list_of("checkpoints", "Checkpoint", true))
                .err(400, "invalid parameter"),
        ),
        (
            "get",
            "/v1/integrity/public-key",
            Op::new("publicKey", "integrity", "The Ed25519 keys checkpoints are verified with", Some("read"))
                .ok(200, "the keys", r("PublicKeys")),
        ),
        (
            "post",
            "/v1/integrity/accept",
            Op::new("acceptIntegrity", "integrity", "Accept a reported integrity failure and lift the write hold", Some("admin"))
                .body(json_body(closed(&["reason"], json!({"reason": {"type": "string", "pattern": "\\S", "maxLength": 2000}})), true))
                .ok(200, "accepted; a checkpoint signs the log as it is", r("Accepted"))
                .err(400, "missing or invalid reason")
                .err(409, "not_on_hold: nothing to accept")
                .err(413, "body too large"),
        ),
        (
            "get",
            "/v1/rules",
            Op::new("listRules", "rules", "Deployed (and quarantined) rules", Some("read"))
                .ok(200, "the rules", list_of("rules", "Rule", false)),
        ),
        (
            "get",
            "/v1/rules/{name}",
            Op::new("getRule", "rules", "One rule", Some("read"))
                .params(vec![name_param()])
                .ok(200, "the rule", r("Rule"))
                .err(404, "no such rule"),
        ),
        (
            "put",
            "/v1/rules/{name}",
            Op::new("deployRule", "rules", "Deploy or replace a rule: the body is the .wasm module", Some("admin"))
                .params(vec![name_param()])
                .body(json!({"required": true, "content": {
                    "application/wasm": {"schema": {"type": "string", "format": "binary"}},
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                }}))
                .ok(200, "replaced a running version", r("Deployed"))
                .ok(201, "deployed", r("Deployed"))
                .link(201, "getRule", "name")
                .link(201, "ruleStats", "name")
                .link(201, "deleteRule", "name")
                .err(400, "invalid_rule: the module was refused (not a valid rule module); the running version is untouched")
                .err(413, "module larger than rules.max_module_bytes")
                .err(507, "insufficient_storage"),
        ),
        (
            "delete",
            "/v1/rules/{name}",
            Op::new("deleteRule", "rules", "Delete a rule", Some("admin"))
                .params(vec![name_param()])
                .ok(200, "deleted", object(&["deleted"], json!({"deleted": {"type": "string"}, "sha256": {"type": ["string", "null"]}})))
                .err(404, "no such rule")
                .err(507, "insufficient_storage"),
        ),
        (
            "get",
            "/v1/rules/{name}/stats",
            Op::new("ruleStats", "rules", "A rule's counters and state size", Some("read"))
                .params(vec![name_param()])
                .ok(200, "counters", r("RuleStats"))
                .err(404, "no such rule"),
        ),
        (
            "get",
            "/v1/alerts",
            Op::new("listAlerts", "alerts", "Alerts, newest first", Some("read"))
                .params(vec![
                    query("rule", json!({"type": "string"}), "rule name"),
                    query("severity", json!({"type": "string", "enum": ["P1", "P2", "P3", "P4"]}), "severity"),
                    query("status", json!({"type": "string", "enum": ["open", "acknowledged", "resolved"]}), "status"),
                    query("dedup_key", json!({"type": "string"}), "exact dedup key"),
                    time_param("since", "last seen at or after"),
                    time_param("until", "last seen before"),
                    limit(50),
                    cursor(),
                ])
                .ok(200, "a page of alerts", list_of("alerts", "Alert", true))
                .err(400, "invalid filter"),
        ),
        (
            "post",
            "/v1/alerts",
            Op::new("createAlert", "alerts", "Raise a manual alert", Some("respond"))
                .body(json_body(r("ManualAlert"), true))
                .ok(201, "the alert", r("Alert"))
                .link(201, "getAlert", "id")
                .link(201, "ackAlert", "id")
                .link(201, "resolveAlert", "id")
                .link(201, "reopenAlert", "id")
                .err(400, "invalid alert")
                .err(413, "body too large")
                .err(507, "insufficient_storage"),
        ),
        (
            "get",
            "/v1/alerts/stats",
            Op::new("alertStats", "alerts", "Counts by status, severity and rule; MTTA, MTTR, false-positive rate", Some("read"))
                .params(vec![time_param("since", "alerts created at or after")])
                .ok(200, "statistics", r("AlertStats"))
                .err(400, "invalid parameter"),
        ),
        (
            "get",
            "/v1/alerts/{id}",
            Op::new("getAlert", "alerts", "One alert with its history, notifications, escalations and events", Some("read"))
                .params(vec![alert_id()])
                .ok(200, "the alert", r("AlertDetail"))
                .err(400, "the id is not a positive integer")
                .err(404, "no such alert"),
        ),
        (
            "post",
            "/v1/alerts/{id}/ack",
            Op::new("ackAlert", "alerts", "Acknowledge an open alert", Some("respond"))
                .params(vec![alert_id()])
                .body(json_body(r("Acknowledgement"), false))
                .ok(200, "the alert, with the decisions it caused (lifted and still active)", r("AlertWithDecisions"))
                .err(400, "invalid id or body")
                .err(404, "no such alert")
                .err(409, "the alert is not open")
                .err(413, "body too large")
                .err(507, "insufficient_storage"),
        ),
        (
            "post",
            "/v1/alerts/{id}/resolve",
            Op::new("resolveAlert", "alerts", "Resolve an alert with a disposition", Some("respond"))
                .params(vec![alert_id()])
                .body(json_body(r("Resolution"), true))
                .ok(200, "the alert, with the decisions it caused (lifted and still active)", r("AlertWithDecisions"))
                .err(400, "invalid id or body (a disposition is required)")
                .err(404, "no such alert")
                .err(409, "the alert is already resolved")
                .err(413, "body too large")
                .err(507, "insufficient_storage"),
        ),
        (
            "post",
            "/v1/alerts/{id}/reopen",
            Op::new("reopenAlert", "alerts", "Reopen a resolved alert", Some("respond"))
                .params(vec![alert_id()])
                .body(comment_body())
                .ok(200, "the alert", r("Alert"))
                .err(400, "invalid id or body")
                .err(404, "no such alert")
                .err(409, "the alert is not resolved")
                .err(413, "body too large")
                .err(507, "insufficient_storage"),
        ),
        (
            "post",
            "/v1/silences",
            Op::new("createSilence", "silences", "Silence matching alerts for a time", Some("respond"))
                .body(json_body(r("NewSilence"), true))
                .ok(201, "the silence", r("Silence"))
                .err(409, "too many silences are active or pending; expire some first")
                .link(201, "getSilence", "id")
                .link(201, "expireSilence", "id")
                .err(400, "invalid silence")
                .err(413, "body too large")
                .err(507, "insufficient_storage"),
        ),
        (
            "get",
            "/v1/silences",
            Op::new("listSilences", "silences", "Every silence", Some("read"))
                .ok(200, "the silences", list_of("silences", "Silence", false)),
        ),
        (
            "get",
            "/v1/silences/{id}",
            Op::new("getSilence", "silences", "One silence", Some("read"))
                .params(vec![path("id", json!({"type": "string"}), "silence id")])
                .ok(200, "the silence", r("Silence"))
                .err(404, "no such silence"),
        ),
        (
            "delete",
            "/v1/silences/{id}",
            Op::new("expireSilence", "silences", "Expire a silence now", Some("respond"))
                .params(vec![path("id", json!({"type": "string"}), "silence id")])
                .ok(200, "the expired silence", r("Silence"))
                .err(404, "no such silence")
                .err(409, "the silence has already expired")
                .err(507, "insufficient_storage"),
        ),
        (
            "get",
            "/v1/decisions",
            Op::new("listDecisions", "decisions", "Check a value (scope and value: from memory), or list decisions", Some("bouncer"))
                .params(vec![
                    query("scope", json!({"type": "string", "enum": ["ip", "user", "api_key", "session", "organization"]}), "scope"),
                    query("value", json!({"type": "string", "minLength": 1, "maxLength": 256}), "the ip, user id... to check (needs scope)"),
                    query("kind", json!({"type": "string", "enum": ["block", "throttle", "require_mfa", "lock"]}), "kind"),
                    query("alert_id", json!({"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}), "decisions that go with this alert"),
                    query("status", json!({"type": "string", "enum": ["active", "expired", "lifted", "all"]}), "default active (from memory); others from the store"),
                    limit(100),
                    cursor(),
                ])
                .ok(200, "the decisions that apply (a check), or a page of them", list_of("decisions", "Decision", true))
                .err(400, "invalid filter"),
        ),
        (
            "post",
            "/v1/decisions",
            Op::new("createDecision", "decisions", "Issue a decision (block, throttle, require_mfa, lock) for a time", Some("respond"))
                .body(json_body(r("NewDecision"), true))
                .ok(201, "the decision", r("Decision"))
                .link(201, "getDecision", "id")
                .link(201, "liftDecision", "id")
                .err(400, "invalid decision")
                .err(409, "too many decisions are active ([decisions] max_active)")
                .err(413, "body too large")
                .err(507, "insufficient_storage"),
        ),
        (
            "get",
            "/v1/decisions/stream",
            Op::new("decisionStream", "decisions", "What was added and what ended since a cursor (a bouncer's poll)", Some("bouncer"))
                .params(vec![query(
                    "since",
                    json!({"type": "string", "pattern": "^(0|[1-9][0-9]{0,17})$"}),
                    "`cursor` of the previous response; absent or 0: a snapshot",
                )])
                .ok(200, "the changes", r("DecisionStream"))
                .err(400, "invalid cursor"),
        ),
        (
            "get",
            "/v1/decisions/{id}",
            Op::new("getDecision", "decisions", "One decision, any status, with its history", Some("bouncer"))
                .params(vec![decision_id()])
                .ok(200, "the decision", r("DecisionDetail"))
                .err(400, "the id is not a positive integer")
                .err(404, "no such decision"),
        ),
        (
            "delete",
            "/v1/decisions/{id}",
            Op::new("liftDecision", "decisions", "Lift an active decision early (a reason is required)", Some("respond"))
                .params(vec![decision_id()])
                .body(json_body(r("Lift"), true))
                .ok(200, "the lifted decision", r("Decision"))
                .err(400, "invalid id, or no reason")
                .err(404, "no such decision")
                .err(409, "the decision is no longer active")
                .err(413, "body too large")
                .err(507, "insufficient_storage"),
        ),
        (
            "get",
            "/v1/receivers",
            Op::new("listReceivers", "receivers", "Receivers and their circuit breakers", Some("read"))
                .ok(200, "the receivers", list_of("receivers", "Receiver", false)),
        ),
        (
            "post",
            "/v1/receivers/{name}/circuit",
            Op::new("circuit", "receivers", "Reset, force open or force close a receiver's circuit", Some("admin"))
                .params(vec![path("name", json!({"type": "string"}), "receiver name")])
                .body(json_body(
                    closed(&["action"], json!({"action": {"type": "string", "enum": ["reset", "force_open", "force_close"]}})),
                    true,
                ))
                .ok(200, "the circuit", object(&["name", "circuit"], json!({"name": {"type": "string"}, "circuit": r("Circuit")})))
                .err(400, "invalid action")
                .err(404, "no such receiver")
                .err(413, "body too large"),
        ),
        (
            "get",
            "/v1/notifications",
            Op::new("listNotifications", "receivers", "The outbox: notifications, newest first", Some("read"))
                .params(vec![
                    query(
                        "status",
                        json!({"type": "string", "enum": ["pending", "delivered", "failed", "dead", "folded", "digest", "digested"]}),
                        "status",
                    ),
                    query("receiver", json!({"type": "string"}), "receiver name"),
                    query("alert_id", int64(), "alert id"),
                    limit(50),
                    cursor(),
                ])
                .ok(200, "a page of notifications", list_of("notifications", "Notification", true))
                .err(400, "invalid filter"),
        ),
        (
            "post",
            "/v1/notifications/{id}/retry",
            Op::new("retryNotification", "receivers", "Queue a dead or failed notification again", Some("respond"))
                .params(vec![path("id", json!({"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}), "notification id")])
                .ok(200, "the notification, pending again", r("Notification"))
                .err(400, "the id is not an integer")
                .err(404, "no such notification")
                .err(409, "only dead or failed notifications can be retried"),
        ),
        (
            "post",
            "/v1/keys",
            Op::new("createKey", "keys", "Create an API key (its secret is shown once)", Some("admin"))
                .body(json_body(r("NewKey"), true))
                .ok(201, "the key, with its secret", r("CreatedKey"))
                .link(201, "revokeKey", "id")
                .err(400, "invalid name or role")
                .err(413, "body too large")
                .err(507, "insufficient_storage"),
        ),
        (
            "get",
            "/v1/keys",
            Op::new("listKeys", "keys", "Every key (never secrets or hashes)", Some("admin"))
                .ok(200, "the keys", list_of("keys", "ApiKey", false)),
        ),
        (
            "delete",
            "/v1/keys/{id}",
            Op::new("revokeKey", "keys", "Revoke a key", Some("admin"))
                .params(vec![path("id", json!({"type": "string"}), "key id (k_...)")])
                .ok(200, "revoked", object(&["id", "revoked"], json!({"id": {"type": "string"}, "revoked": {"const": true}})))
                .err(404, "no active key with that id")
                .err(409, "the key is the one making the request, or the last active admin key")
                .err(507, "insufficient_storage"),
        ),
    ]
}

fn schemas() -> Value {
    let count = json!({"type": "array", "items": r("Count")});
    let counts_by = json!({"type": "object", "additionalProperties": {"type": "integer"}});
    let string_field = json!({"type": ["string", "null"], "maxLength": 512, "pattern": "^[^\\u0000]*$", "description": "at most 512 bytes, no NUL"});
    json!({
        "Error": object(&["error"], json!({"error": object(&["code", "message"], json!({
            "code": {"type": "string", "description": "stable machine-readable code"},
            "message": {"type": "string"},
            "details": {"description": "structured details (for invalid_event: [{index, field, problem}])"},
        }))})),
        "Health": object(&["status"], json!({"status": {"const": "ok"}})),
        "Ready": object(&["status"], json!({
            "status": {"type": "string", "enum": ["ready", "unavailable", "integrity_hold"]},
            "backend": {"type": "string", "enum": ["sqlite", "postgres"]},
            "hint": {"type": "string"},
        })),
        "WhoAmI": object(&["key_id", "role", "allows"], json!({
            "key_id": {"type": "string"},
            "role": {"type": "string", "enum": ["ingest", "read", "respond", "admin", "bouncer"]},
            "allows": object(&["ingest", "read", "respond", "admin", "bouncer"], json!({
                "ingest": {"type": "boolean"}, "read": {"type": "boolean"},
                "respond": {"type": "boolean"}, "admin": {"type": "boolean"},
            })),
        })),
        "Geo": {"type": "object", "additionalProperties": false, "properties": {
            "country": {"type": ["string", "null"], "pattern": "^[A-Za-z]{2}$", "description": "ISO 3166-1 alpha-2"},
            "city": string_field,
            "lat": {"type": ["number", "null"], "minimum": -90, "maximum": 90},
            "lon": {"type": ["number", "null"], "minimum": -180, "maximum": 180},
        }},
        "EventInput": {
            "type": "object",
            "additionalProperties": false,
            "required": ["category", "action"],
            "description": "An event as posted. Unknown top-level members are refused; `details` is the extension point. \
                Secrets and personal data are masked before anything is stored.",
            "properties": {
                "event_id": {"type": ["string", "null"], "pattern": "^(?!vigil:)[^\\u0000-\\u001f\\u007f-\\u009f]{1,128}$",
                    "description": "idempotency key, 1 to 128 characters; a UUIDv7 is made when absent"},
                "timestamp": {"anyOf": [{"type": "string", "format": "date-time", "pattern": "^(19[7-9][0-9]|[2-9][0-9]{3})-"}, {"type": "integer", "minimum": 0, "maximum": 253_402_300_799_999_i64}, {"type": "null"}],
                    "description": "when it happened: RFC 3339 or epoch ms (default: receipt time)"},
                "category": {"type": "string", "pattern": "^[A-Za-z0-9_]{1,64}$", "description": "stored lowercase"},
                "action": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$", "description": "stored lowercase"},
                "severity": {"type": ["string", "null"], "pattern": any_case(&["low", "medium", "high", "critical"]), "default": "low"},
                "outcome": {"type": ["string", "null"], "pattern": any_case(&["success", "failure", "unknown"]), "default": "unknown"},
                "organization_id": string_field, "user_id": string_field, "session_id": string_field,
                "api_key_id": string_field, "request_id": string_field, "source": string_field,
                "resource": string_field, "resource_type": string_field, "reason": string_field,
                "error_code": string_field,
                "ip": {"type": ["string", "null"], "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}, {"type": "null"}]},
                "user_agent": {"type": ["string", "null"], "maxLength": 1024, "pattern": "^[^\\u0000]*$", "description": "at most 1024 bytes, no NUL"},
                "geo": {"anyOf": [r("Geo"), {"type": "null"}]},
                "details": {"type": ["object", "null"], "description": "at most 64 KiB serialized, nesting depth at most 16"},
            },
        },
        "StoredEvent": {
            "type": "object",
            "required": ["seq", "hash", "prev_hash"],
            "description": "A stored event: the posted fields (masked), plus seq, received_at, mask_policy, hash and \
                prev_hash. A row that cannot be decoded is returned with `damaged` instead of failing the request.",
            "properties": {
                "seq": {"type": "integer", "minimum": 1},
                "hash": hex64(), "prev_hash": hex64(),
                "event_id": {"type": "string"},
                "timestamp": time(), "received_at": time(),
                "category": {"type": "string"}, "action": {"type": "string"},
                "severity": {"type": "string"}, "outcome": {"type": "string"},
                "mask_policy": {"type": "integer"},
                "details": {"type": "object"},
                "damaged": object(&["problems"], json!({"problems": {"type": "array", "items": {"type": "string"}}, "hint": {"type": "string"}})),
            },
        },
        "IngestResult": object(&["stored", "events"], json!({
            "stored": {"type": "integer", "minimum": 0, "description": "events newly stored"},
            "events": {"type": "array", "items": object(&["event_id", "seq", "duplicate"], json!({
                "event_id": {"type": "string"}, "seq": {"type": "integer", "minimum": 1}, "duplicate": {"type": "boolean"},
            }))},
        })),
        "Count": object(&["value", "count"], json!({"value": {"type": "string"}, "count": {"type": "integer"}})),
        "EventStats": object(
            &["total", "by_category", "by_severity", "by_outcome", "by_action", "failure_rate", "high_risk", "top_ips", "top_users", "buckets"],
            json!({
                "total": {"type": "integer"},
                "by_category": count, "by_severity": count, "by_outcome": count, "by_action": count,
                "failure_rate": {"type": "number", "minimum": 0, "maximum": 1},
                "high_risk": {"type": "integer", "description": "severity high or critical"},
                "top_ips": count, "top_users": count,
                "buckets": {"type": "array", "items": object(&["start", "count"], json!({"start": time(), "count": {"type": "integer"}}))},
            }),
        ),
        "Failure": object(&["seq", "kind", "expected", "actual"], json!({
            "seq": {"type": "integer"},
            "kind": {"type": "string", "description": "hash_mismatch, chain_break, seq_gap, bad_checkpoint, truncated, ..."},
            "expected": {"type": "string"}, "actual": {"type": "string"},
        })),
        "Head": object(&["seq", "hash"], json!({"seq": {"type": "integer", "minimum": 0}, "hash": hex64()})),
        "Checkpoint": object(&["id", "seq", "hash", "created_at", "prev_checkpoint", "key_id", "signature"], json!({
            "id": {"type": "integer"}, "seq": {"type": "integer"}, "hash": {"type": "string"},
            "created_at": {"type": "integer", "description": "epoch ms"},
            "prev_checkpoint": {"type": "integer"}, "key_id": {"type": "string"},
            "signature": {"type": "string", "description": "Ed25519, lowercase hex"},
        })),
        "VerifyReport": object(
            &["status", "from", "to", "verified", "head", "failures", "failure_count"],
            json!({
                "status": {"type": "string", "enum": ["ok", "failed"]},
                "from": {"type": "integer"}, "to": {"type": "integer"},
                "verified": {"type": "integer", "minimum": 0},
                "checkpoints_checked": {"type": "integer", "minimum": 0},
                "head": r("Head"),
                "last_checkpoint": {"anyOf": [r("Checkpoint"), {"type": "null"}]},
                "unsigned": {"anyOf": [object(&["from", "to"], json!({"from": {"type": "integer"}, "to": {"type": "integer"}})), {"type": "null"}],
                    "description": "rows after the newest checkpoint, signed within the checkpoint period"},
                "retention_floor": {"type": "integer"},
                "failures": {"type": "array", "items": r("Failure")},
                "failure_count": {"type": "integer"},
                "hold": {"description": "the write hold after a failure, or null"},
            }),
        ),
        "IntegrityStatus": object(&["head", "last_checkpoint", "checkpoint_age_seconds", "unsigned_events", "hold", "last_verify"], json!({
            "head": r("Head"),
            "last_checkpoint": {"anyOf": [r("Checkpoint"), {"type": "null"}]},
            "checkpoint_age_seconds": nullable("number"),
            "unsigned_events": {"type": "integer", "description": "events after the newest signed checkpoint"},
            "hold": {"anyOf": [object(&["since", "failures"], json!({"since": {"type": "integer"}, "failures": {"type": "array", "items": r("Failure")}})), {"type": "null"}]},
            "last_verify": {"anyOf": [object(&["at", "status", "from", "to", "verified", "failure_count", "by"], json!({
                "at": time(), "status": {"type": "string", "enum": ["ok", "failed"]}, "from": {"type": "integer"},
                "to": {"type": "integer"}, "verified": {"type": "integer"}, "failure_count": {"type": "integer"},
                "by": {"type": "string", "description": "key id"},
            })), {"type": "null"}], "description": "the newest verification since the server started"},
        })),
        "PublicKeys": object(&["algorithm", "key_id", "public_key", "keys"], json!({
            "algorithm": {"const": "ed25519"}, "key_id": {"type": "string"}, "public_key": {"type": "string"},
            "keys": {"type": "array", "items": object(&["key_id", "public_key", "current"], json!({
                "key_id": {"type": "string"}, "public_key": {"type": "string"}, "current": {"type": "boolean"},
            }))},
        })),
        "Accepted": object(&["accepted", "failures"], json!({
            "accepted": {"const": true},
            "failures": {"type": "array", "items": r("Failure")},
            "checkpoint": {"anyOf": [r("Checkpoint"), {"type": "null"}]},
        })),
        "Rule": object(&["name", "status", "sha256"], json!({
            "name": {"type": "string"},
            "status": {"type": "string", "enum": ["active", "quarantined"]},
            "version": {"type": "string"}, "kind": {"type": "string", "enum": ["detection", "routing"]},
            "sha256": hex64(), "description": {"type": "string"}, "severity": {"type": ["string", "null"]},
            "abi_minor": {"type": "integer"}, "source": {"type": "string"}, "deployed_at": time(),
            "state": {"type": "object"}, "stats": {"type": ["object", "null"]},
            "quarantine": {"type": "object"},
        })),
        "RuleStats": object(&["name", "status", "sha256"], json!({
            "name": {"type": "string"}, "status": {"type": "string"}, "sha256": hex64(),
            "version": {"type": ["string", "null"]}, "stats": {"type": ["object", "null"]}, "state": {"type": ["object", "null"]},
        })),
        "Deployed": object(&["name", "version", "sha256", "replaced", "cached"], json!({
            "name": {"type": "string"}, "version": {"type": "string"}, "sha256": hex64(),
            "replaced": {"type": ["string", "null"], "description": "SHA-256 of the version it replaced"},
            "cached": {"type": "boolean", "description": "compilation skipped (module cache hit)"},
        })),
        "Alert": object(
            &["id", "rule", "rule_version", "rule_sha256", "severity", "title", "status", "count", "first_seen", "last_seen", "event_seqs", "dedup_key"],
            json!({
                "id": {"type": "integer"}, "rule": {"type": "string"}, "rule_version": {"type": "string"},
                "rule_sha256": {"type": "string"}, "severity": {"type": "string", "enum": ["P1", "P2", "P3", "P4"]},
                "title": {"type": "string"}, "status": {"type": "string", "enum": ["open", "acknowledged", "resolved"]},
                "count": {"type": "integer", "minimum": 1}, "first_seen": time(), "last_seen": time(),
                "event_seqs": {"type": "array", "items": {"type": "integer"}}, "dedup_key": {"type": "string"},
                "fingerprint": {"type": "string"}, "fields": {"type": ["object", "null"]}, "actions": {"type": ["array", "null"]},
                "created_at": time(), "disposition": nullable("string"),
                "acked_by": nullable("string"), "acked_at": nullable_time(),
                "resolved_by": nullable("string"), "resolved_at": nullable_time(),
                "silenced_by": nullable("string"), "receivers": {"type": ["array", "null"]},
                "escalation_policy": nullable("string"),
            }),
        ),
        "AlertDetail": {"allOf": [r("Alert"), object(&["history", "notifications", "escalations", "events", "chain", "decisions"], json!({
            "decisions": {"type": "array", "items": r("Decision"), "description": "decisions that go with the alert, any status"},
            "history": {"type": "array", "items": object(&["id", "action", "actor", "at"], json!({
                "id": {"type": "integer"}, "action": {"type": "string"}, "actor": {"type": "string"}, "at": time(),
                "details": {}, "chain_seq": nullable("integer"),
            }))},
            "notifications": {"type": "array", "items": r("Notification")},
            "escalations": {"type": "array", "items": object(&["policy", "level", "round", "due_at", "status"], json!({
                "policy": {"type": "string"}, "level": {"type": "integer"}, "round": {"type": "integer"},
                "due_at": time(), "status": {"type": "string"},
            }))},
            "events": {"type": "array", "items": r("StoredEvent")},
            "chain": object(&["state"], json!({
                "state": {"type": "string", "enum": ["chained", "pending", "missing", "unreadable", "no_history"]},
                "seq": {"type": "integer"}, "consistent": {"type": "boolean"}, "differences": {"type": "array"},
            })),
        }))]},
        "ManualAlert": {"type": "object", "additionalProperties": false, "required": ["title", "severity"], "properties": {
            "title": {"type": "string", "pattern": "\\S", "maxLength": 512, "description": "at most 512 bytes"},
            "severity": {"type": "string", "pattern": any_case(&["P1", "P2", "P3", "P4"])},
            "dedup_key": {"type": ["string", "null"], "minLength": 1, "maxLength": 256, "description": "at most 256 bytes (default: a fresh key)"},
            "fields": {"type": "object", "description": "at most 16 KiB serialized"},
            "event_seqs": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": i64::MAX}, "maxItems": 100},
            "actions": {"type": "array", "items": {"type": "string"}, "maxItems": 32},
            "description": {"type": ["string", "null"], "maxLength": 4096},
        }},
        "Comment": {"type": "object", "additionalProperties": false, "properties": {
            "comment": {"type": ["string", "null"], "maxLength": 4096},
        }},
        "Acknowledgement": {"type": "object", "additionalProperties": false, "properties": {
            "comment": {"type": ["string", "null"], "maxLength": 4096},
            "lift_decisions": {"type": ["boolean", "null"], "description": "also lift the active decisions the alert caused"},
        }},
        "AlertWithDecisions": {"allOf": [r("Alert"), object(&["decisions_lifted", "active_decisions"], json!({
            "decisions_lifted": {"type": "array", "items": {"type": "integer"}, "description": "ids lifted by this request"},
            "active_decisions": {"type": "array", "items": r("Decision"), "description": "decisions it caused that still apply: offer to lift them"},
        }))]},
        "Decision": object(
            &["id", "scope", "value", "kind", "reason", "origin", "actor", "rule", "rule_sha256", "alert_id", "event_seqs",
              "created_at", "expires_at", "status", "ended_at", "ended_by", "end_reason"],
            json!({
                "id": {"type": "integer", "minimum": 1},
                "scope": {"type": "string", "enum": ["ip", "user", "api_key", "session", "organization"]},
                "value": {"type": "string"}, "kind": {"type": "string", "enum": ["block", "throttle", "require_mfa", "lock"]},
                "reason": {"type": "string"}, "origin": {"type": "string", "enum": ["rule", "manual"]},
                "actor": {"type": "string", "description": "rule:<name>, or the id of the key that issued it"},
                "rule": nullable("string"), "rule_sha256": nullable("string"), "alert_id": nullable("integer"),
                "event_seqs": {"type": "array", "items": {"type": "integer"}},
                "created_at": time(), "expires_at": time(),
                "status": {"type": "string", "enum": ["active", "expired", "lifted"]},
                "ended_at": nullable_time(), "ended_by": nullable("string"), "end_reason": nullable("string"),
            }),
        ),
        "DecisionDetail": {"allOf": [r("Decision"), object(&["history"], json!({
            "history": {"type": "array", "items": object(&["id", "action", "actor", "at", "chain_seq"], json!({
                "id": {"type": "integer"}, "action": {"type": "string", "enum": ["issued", "expired", "lifted"]},
                "actor": {"type": "string"}, "reason": nullable("string"), "at": time(), "chain_seq": nullable("integer"),
            }))},
        }))]},
        "DecisionStream": object(&["snapshot", "added", "deleted", "cursor", "more"], json!({
            "snapshot": {"type": "boolean", "description": "added is every active decision: replace the local copy"},
            "added": {"type": "array", "items": r("Decision")},
            "deleted": {"type": "array", "items": r("Decision"), "description": "decisions that expired or were lifted (remove by id)"},
            "cursor": {"type": "string", "pattern": "^(0|[1-9][0-9]{0,17})$", "description": "pass as `since` next"},
            "more": {"type": "boolean", "description": "more changes wait: call again at once"},
        })),
        "NewDecision": {"type": "object", "additionalProperties": false, "required": ["scope", "value", "kind", "duration_secs", "reason"], "properties": {
            "scope": {"type": "string", "enum": ["ip", "user", "api_key", "session", "organization"]},
            "value": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]+$", "description": "1 to 256 characters, no control characters"},
            "kind": {"type": "string", "enum": ["block", "throttle", "require_mfa", "lock"]},
            "duration_secs": {"type": "integer", "minimum": 1, "maximum": 2_592_000, "description": "at most [decisions] max_duration_secs (default 30 days)"},
            "reason": {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": "^[^\\u0000]+$", "description": "why: required, 1 to 1024 characters"},
            "alert_id": {"type": ["integer", "null"], "minimum": 1, "maximum": i64::MAX, "description": "an existing alert it goes with"},
        }},
        "Lift": {"type": "object", "additionalProperties": false, "required": ["reason"], "properties": {
            "reason": {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": "^[^\\u0000]+$", "description": "why: required, 1 to 1024 characters (clients that cannot send a DELETE body may pass ?reason= instead)"},
        }},
        "Resolution": {"type": "object", "additionalProperties": false, "required": ["disposition"], "properties": {
            "disposition": {"type": "string", "enum": ["true_positive", "false_positive", "benign"]},
            "comment": {"type": ["string", "null"], "maxLength": 4096},
            "lift_decisions": {"type": ["boolean", "null"], "description": "also lift the active decisions the alert caused (offered for false_positive)"},
        }},
        "Matcher": {"type": "object", "additionalProperties": false, "required": ["name", "op", "value"], "properties": {
            "name": {"type": "string", "pattern": "^(rule|severity|dedup_key|title|fields\\..+)$", "description": "rule, severity, dedup_key, title or fields.<key>"},
            "op": {"type": "string", "enum": ["=", "!=", "=~"]},
            "value": {"type": "string", "maxLength": 1024},
        }},
        "NewSilence": {"type": "object", "additionalProperties": false, "required": ["matchers", "ends_at", "created_by"], "properties": {
            "matchers": {"type": "array", "items": r("Matcher"), "minItems": 1, "maxItems": 32},
            "starts_at": {"type": ["string", "integer", "null"], "description": "RFC 3339 or epoch ms (default: now)"},
            "ends_at": {"type": ["string", "integer"], "description": "RFC 3339 or epoch ms, in the future"},
            "created_by": {"type": "string", "minLength": 1, "maxLength": 256},
            "comment": {"type": "string", "maxLength": 4096},
        }},
        "Silence": object(&["id", "matchers", "starts_at", "ends_at", "created_by", "comment", "state"], json!({
            "id": {"type": "string"}, "matchers": {"type": ["array", "null"], "items": r("Matcher")},
            "starts_at": time(), "ends_at": time(), "created_by": {"type": "string"}, "comment": {"type": "string"},
            "created_at": time(), "expired_at": nullable_time(), "matched": {"type": "integer"},
            "state": {"type": "string", "enum": ["active", "pending", "expired"]},
        })),
        "Circuit": object(&["state"], json!({
            "state": {"type": "string", "enum": ["closed", "open", "half_open"]},
            "forced": {"type": ["string", "null"], "enum": ["open", "closed", null]},
            "recent_failures": {"type": "integer"}, "delivered": {"type": "integer"}, "failed": {"type": "integer"},
            "opened": {"type": "integer"}, "last_error": nullable("string"), "last_error_at": nullable_time(),
        })),
        "Receiver": object(&["name", "kind"], json!({
            "name": {"type": "string"}, "kind": {"type": "string"}, "via": {},
            "circuit": {"anyOf": [r("Circuit"), {"type": "null"}]},
        })),
        "Notification": object(&["id", "receiver", "kind", "status", "attempts"], json!({
            "id": {"type": "integer"}, "alert_id": nullable("integer"), "receiver": {"type": "string"},
            "kind": {"type": "string"}, "idempotency_key": {"type": "string"},
            "status": {"type": "string", "enum": ["pending", "delivered", "failed", "dead", "folded", "digest", "digested"]},
            "attempts": {"type": "integer"}, "next_attempt_at": time(), "created_at": time(), "updated_at": time(),
            "delivered_at": nullable_time(), "last_error": nullable("string"),
        })),
        "AlertStats": object(&["total", "by_status", "by_severity", "by_rule"], json!({
            "total": {"type": "integer"}, "by_status": counts_by, "by_severity": counts_by,
            "by_rule": {"type": "array", "items": object(&["rule", "alerts"], json!({
                "rule": {"type": "string"}, "alerts": {"type": "integer"}, "acknowledged": {"type": "integer"},
                "resolved": {"type": "integer"}, "mtta_seconds": nullable("number"), "mttr_seconds": nullable("number"),
                "dispositions": {"type": "integer"}, "false_positives": {"type": "integer"},
                "false_positive_rate": nullable("number"),
            }))},
            "mtta_seconds": nullable("number"), "mttr_seconds": nullable("number"),
        })),
        "NewKey": {"type": "object", "additionalProperties": false, "required": ["name", "role"], "properties": {
            "name": {"type": "string", "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,128}$", "description": "1 to 128 bytes, no control characters"},
            "role": {"type": "string", "enum": ["ingest", "read", "respond", "admin", "bouncer"]},
        }},
        "ApiKey": object(&["id", "name", "role", "created_at", "revoked_at"], json!({
            "id": {"type": "string"}, "name": {"type": "string"},
            "role": {"type": "string", "enum": ["ingest", "read", "respond", "admin", "bouncer"]},
            "created_at": time(), "revoked_at": nullable_time(),
        })),
        "CreatedKey": object(&["id", "name", "role", "key", "created_at"], json!({
            "id": {"type": "string"}, "name": {"type": "string"}, "role": {"type": "string"},
            "key": {"type": "string", "description": "the secret: shown once, store it now"}, "created_at": time(),
        })),
    })
}

/// `docs/api.md`: the document rendered as Markdown (`vigil openapi --markdown`); a test
/// fails when the committed file differs.
pub fn markdown() -> String {
    use std::fmt::Write;
    let doc = document();
    let mut out = String::new();
    let _ = writeln!(out, "# HTTP API reference\n");
    let _ = writeln!(
        out,
        "Generated from the OpenAPI 3.1 document the server serves at `GET /v1/openapi.json` \
         (`vigil openapi --markdown > docs/api.md`); do not edit by hand.\n"
    );
    let _ = writeln!(out, "{}\n", doc["info"]["description"].as_str().unwrap_or_default());
    let tags: Vec<&str> = doc["tags"].as_array().into_iter().flatten().filter_map(|t| t["name"].as_str()).collect();
    let paths = doc["paths"].as_object().cloned().unwrap_or_default();
    for tag in tags {
        let _ = writeln!(out, "## {tag}\n");
        for (path, ops) in &paths {
            for (method, op) in ops.as_object().into_iter().flatten() {
                if op["tags"][0] != tag {
                    continue;
                }
                let _ = writeln!(out, "### `{} {path}`\n", method.to_ascii_uppercase());
                let _ = writeln!(
                    out,
                    "{}. {}\n",
                    op["summary"].as_str().unwrap_or_default(),
                    op["description"].as_str().unwrap_or_default()
                );
                if let Some(params) = op["parameters"].as_array() {
                    let _ = writeln!(out, "| parameter | in | type | description |\n|---|---|---|---|");
                    for p in params {
                        let _ = writeln!(
                            out,
                            "| `{}` | {} | {} | {} |",
                            p["name"].as_str().unwrap_or_default(),
                            p["in"].as_str().unwrap_or_default(),
                            type_of(&p["schema"]),
                            p["description"].as_str().unwrap_or_default()
                        );
                    }
                    out.push('\n');
                }
                if let Some(content) = op["requestBody"]["content"].as_object() {
                    let bodies: Vec<String> =
                        content.iter().map(|(ct, c)| format!("`{ct}` {}", type_of(&c["schema"]))).collect();
                    let _ = writeln!(out, "Body: {}\n", bodies.join("; or "));
                }
                let _ = writeln!(out, "| status | meaning | body |\n|---|---|---|");
                for (status, r) in op["responses"].as_object().into_iter().flatten() {
                    let body = r["content"]
                        .as_object()
                        .map(|c| {
                            c.iter().map(|(ct, c)| format!("`{ct}` {}", type_of(&c["schema"]))).collect::<Vec<_>>()
                        })
                        .unwrap_or_default()
                        .join(", ");
                    let _ = writeln!(out, "| {status} | {} | {body} |", r["description"].as_str().unwrap_or_default());
                }
                out.push('\n');
            }
        }
    }
    let _ = writeln!(out, "## Schemas\n");
    for (name, schema) in doc["components"]["schemas"].as_object().into_iter().flatten() {
        let _ = writeln!(out, "### {name}\n");
        if let Some(d) = schema["description"].as_str() {
            let _ = writeln!(out, "{d}\n");
        }
        let parts: Vec<&Value> = match schema["allOf"].as_array() {
            Some(all) => all.iter().collect(),
            None => vec![schema],
        };
        let mut rows = Vec::new();
        for part in parts {
            if let Some(reference) = part["$ref"].as_str() {
                rows.push(format!("| (all of {}) | | | |", reference.rsplit('/').next().unwrap_or_default()));
                continue;
            }
            let required: Vec<&str> =
                part["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            for (prop, s) in part["properties"].as_object().into_iter().flatten() {
                rows.push(format!(
                    "| `{prop}` | {} | {} | {} |",
                    type_of(s),
                    if required.contains(&prop.as_str()) { "yes" } else { "" },
                    s["description"].as_str().unwrap_or_default()
                ));
            }
        }
        if rows.is_empty() {
            let _ = writeln!(out, "{}\n", type_of(schema));
        } else {
            let _ = writeln!(out, "| field | type | required | notes |\n|---|---|---|---|");
            for row in rows {
                let _ = writeln!(out, "{row}");
            }
            out.push('\n');
        }
    }
    out.trim_end().to_owned() + "\n"
}

/// A schema in a few words: `string`, `integer (1..1000)`, `[Alert]`, `P1 | P2`, ...
fn type_of(s: &Value) -> String {
    if let Some(reference) = s["$ref"].as_str() {
        return reference.rsplit('/').next().unwrap_or_default().to_owned();
    }
    if let Some(values) = s["enum"].as_array() {
        return values
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), |s| format!("`{s}`")))
            .collect::<Vec<_>>()
            .join(" \\| ");
    }
    if let Some(c) = s.get("const") {
        return format!("`{c}`");
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(all) = s[key].as_array() {
            return all.iter().map(type_of).collect::<Vec<_>>().join(" or ");
        }
    }
    let ty = match &s["type"] {
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" or "),
        _ => "any".into(),
    };
    if ty == "array" || ty.starts_with("array ") {
        return format!("[{}]", type_of(&s["items"]));
    }
    match (s["minimum"].as_i64(), s["maximum"].as_i64()) {
        (Some(lo), Some(hi)) if hi < 1_000_000_000 => format!("{ty} ({lo}..{hi})"),
        _ => match s["format"].as_str() {
            Some(f) => format!("{ty} ({f})"),
            None => ty,
        },
    }
}
