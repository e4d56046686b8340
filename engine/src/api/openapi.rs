//! The OpenAPI 3.1 document of the HTTP API, served at `GET /v1/openapi.json` (no key).
//!
//! The handlers build their JSON with `serde_json::json!`, so the document is kept here,
//! beside them, rather than derived: `tests/all/openapi.rs` checks that every route of
//! [`super::ROUTES`] is documented and every documented operation is served, and runs
//! schemathesis against a live server (no 5xx; every status, content type and body matches
//! what is written here). `docs/api.md` is generated from this document
//! (`vigil openapi --markdown`).

mod paths;
mod schemas;

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
            responses.entry("429").or_insert_with(|| {
                error_response(
                    "too_many_failures: this address made too many failed authentications in the last minute \
                     (Retry-After); a valid key is still accepted",
                )
            });
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
    for (method, template, op) in paths::operations() {
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
                admin (everything), bouncer (reads active decisions only, with id, scope, value, kind and expires_at; \
                read and respond may read them whole).",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "events"}, {"name": "integrity"}, {"name": "rules"}, {"name": "alerts"},
            {"name": "silences"}, {"name": "decisions"}, {"name": "allowlist"}, {"name": "receivers"}, {"name": "keys"}, {"name": "reports"}, {"name": "operations"},
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "an API key (vgl_...)"},
            },
            "schemas": schemas::schemas(),
        },
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
