//! The operations of the OpenAPI document, one function per tag (the same order as the
//! document's tags): method, path template and the [`Op`] that documents it. The parent
//! module adds what every operation shares (400, and 401/403/503 for those needing a key).

use serde_json::{Value, json};

mod response;

use self::response::{alerts, allowlist, decisions, receivers, silences};
use super::{Op, closed, cursor, int64, json_body, limit, list_of, object, path, query, r, time_param};

/// Every documented operation, tag by tag.
pub(super) fn operations() -> Vec<(&'static str, &'static str, Op)> {
    [
        operations_and_health(),
        events(),
        integrity(),
        rules(),
        alerts(),
        silences(),
        decisions(),
        allowlist(),
        receivers(),
        keys(),
        reports(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn event_filters() -> Vec<Value> {
    vec![
        query("category", json!({"type": "string"}), "exact category (case-insensitive)"),
        query("action", json!({"type": "string"}), "exact action (case-insensitive)"),
        query("severity", json!({"type": "string"}), "low, medium, high or critical"),
        query("outcome", json!({"type": "string"}), "success, failure or unknown"),
        query("organization_id", json!({"type": "string"}), "exact organization_id"),
        query("user_id", json!({"type": "string"}), "exact user_id"),
        query("ip", json!({"type": "string"}), "exact IP (IPv6 compared in canonical form)"),
        query("request_id", json!({"type": "string"}), "exact request_id"),
        query("ingest_key", json!({"type": "string"}), "id of the API key that sent the event (`k_...`)"),
        time_param("since", "events at or after"),
        time_param("until", "events before"),
        limit(50),
        cursor(),
    ]
}

/// An error of `POST /v1/logs`: Vigil's JSON error, or a `google.rpc.Status` for a
/// protobuf request.
fn otlp_error(description: &str) -> Value {
    json!({"description": description, "content": {
        "application/json": {"schema": r("Error")},
        "application/x-protobuf": {"schema": {"type": "string", "format": "binary", "description": "a google.rpc.Status"}},
    }})
}

fn name_param() -> Value {
    path("name", json!({"type": "string"}), "rule name")
}

fn operations_and_health() -> Vec<(&'static str, &'static str, Op)> {
    vec![
        (
            "get",
            "/healthz",
            Op::new("healthz", "operations", "Liveness", None).ok(200, "the process is up", r("Health")),
        ),
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
            Op::new(
                "metrics",
                "operations",
                "Prometheus metrics (text exposition format 0.0.4); database figures cached for [metrics] \
                 cache_secs, never read on the writer. With [metrics] require_key = true, a key with the read \
                 role is needed (401 / 403 otherwise)",
                None,
            )
            .raw(200, json!({"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}})),
        ),
        (
            "get",
            "/v1/openapi.json",
            Op::new("openapi", "operations", "This document", None).ok(200, "OpenAPI 3.1", json!({"type": "object"})),
        ),
        (
            "get",
            "/v1/whoami",
            Op::new("whoami", "operations", "The presented key's id, role and what the role may do", Some("any")).ok(
                200,
                "the key",
                r("WhoAmI"),
            ),
        ),
    ]
}

fn events() -> Vec<(&'static str, &'static str, Op)> {
    vec![
    (
        "post",
        "/v1/events",
        Op::new("postEvents", "events", "Ingest one event, a JSON array of events, or NDJSON", Some("ingest"))
            .params(vec![query(
                "format",
                json!({"type": "string", "enum": ["vigil", "ocsf"], "default": "vigil"}),
                "`ocsf`: the events are OCSF 1.x Account Change (3001), Authentication (3002), HTTP Activity (4002) or API Activity (6003), mapped as docs/integrations.md says",
            )])
            .body(json!({"required": true, "content": {
                "application/json": {"schema": {"anyOf": [r("EventInput"), r("OcsfEvent"), {"type": "array", "items": {"anyOf": [r("EventInput"), r("OcsfEvent")]}, "minItems": 1, "maxItems": 20_000, "description": "at most ingest.max_events_per_request (default 20000)"}]}},
                "application/x-ndjson": {"schema": {"type": "string", "description": "one event object per line"}},
            }}))
            .ok(201, "every event durably stored (or recognised as a duplicate), in input order", r("IngestResult"))
            .err(400, "invalid_event: nothing stored; `details` lists {index, field, problem}")
            .err(413, "body larger than the configured limit")
            .err(408, "body_timeout: the body did not arrive within ingest.body_timeout_secs; nothing stored")
            .err(
                503,
                "overloaded: ingest.max_inflight_bytes of request bodies are already held, the database is \
                 unavailable or the server is shutting down; nothing stored (Retry-After)",
            )
            .err(507, "insufficient_storage: the database is full; nothing stored (Retry-After)"),
    ),
    (
        "post",
        "/v1/logs",
        Op::new(
            "postOtlpLogs",
            "events",
            "OTLP/HTTP logs export (protobuf or JSON): each log record becomes an event (docs/integrations.md); \
             records that do not map are refused one by one in the partial-success answer",
            Some("ingest"),
        )
        .body(json!({"required": true, "content": {
            "application/json": {"schema": r("OtlpLogsRequest")},
            "application/x-protobuf": {"schema": {"type": "string", "format": "binary", "description": "an ExportLogsServiceRequest"}},
        }}))
        .raw(200, json!({"description": "the valid records are durably stored; `partialSuccess` counts and names the refused ones", "content": {
            "application/json": {"schema": r("OtlpLogsResponse")},
            "application/x-protobuf": {"schema": {"type": "string", "format": "binary", "description": "an ExportLogsServiceResponse"}},
        }}))
        .raw(400, otlp_error("invalid_otlp: the body is not an OTLP logs export (or has too many records, or does not inflate as its Content-Encoding says); nothing stored"))
        .raw(408, otlp_error("body_timeout: the body did not arrive within ingest.body_timeout_secs; nothing stored"))
        .raw(413, otlp_error("body larger than the configured limit (a gzip or deflate body: once inflated)"))
        .raw(415, otlp_error("unsupported_media_type: not application/x-protobuf or application/json, or a Content-Encoding other than identity, gzip or deflate"))
        .raw(503, otlp_error("overloaded, database unavailable or shutting down; nothing stored (Retry-After)"))
        .raw(507, otlp_error("insufficient_storage: the database is full; nothing stored (Retry-After)")),
    ),
    (
        "get",
        "/v1/events",
        Op::new(
            "listEvents",
            "events",
            "Stored events, newest first (cluster mode: every partition's, merged by event time; each event names \
             its `partition`, and `next_cursor` holds one seq bound per partition, so paging never skips or \
             repeats an event)",
            Some("read"),
        )
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
                query(
                    "origin",
                    json!({"type": "string", "enum": ["all", "app", "vigil"], "default": "all"}),
                    "whose events: `app` (sent by clients), `vigil` (the server's own: alerts, responses, configuration, audit, system) or `all`",
                ),
            ])
            .ok(
                200,
                "statistics; each by_* grouping lists its 100 most frequent values, `other` sums the rest",
                r("EventStats"),
            )
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
                query("from", int64(), "first seq (cluster mode: of the `partition` given)"),
                query("to", int64(), "last seq (cluster mode: of the `partition` given)"),
                query(
                    "partition",
                    int64(),
                    "cluster mode: only this partition (default: every partition, one section each, whose header \
                     names `partition` and the cluster's `partitions`; CSV rows start with `partition`)",
                ),
            ])
            .raw(200, json!({"description": "the export (`vigil verify --file` checks an NDJSON one offline)", "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
            }}))
            .err(
                400,
                "invalid parameter, a partition outside the cluster (or any but 0 on a single node), or `from`/`to` \
                 without `partition` in cluster mode",
            ),
    ),
    ]
}

fn integrity() -> Vec<(&'static str, &'static str, Op)> {
    vec![
        (
            "get",
            "/v1/integrity/verify",
            Op::new(
                "verify",
                "integrity",
                "Verify the hash chain and signed checkpoints (never a 5xx for damage)",
                Some("read"),
            )
            .params(vec![
                query("from", int64(), "first seq (default: the retention floor)"),
                query("to", int64(), "last seq (default: the head); `from` must not be greater"),
                query(
                    "partition",
                    int64(),
                    "cluster mode: the partition whose chain to verify (default: every partition, each report under \
                     `partitions`)",
                ),
            ])
            .ok(200, "the report; `status` says whether the log is intact", r("VerifyReport"))
            .err(400, "invalid range, or a partition outside the cluster (or any but 0 on a single node)")
            .err(
                429,
                "verify_busy: another verification of more than [integrity] exclusive_verify_events events is \
                 running (Retry-After; `details.running` names it); verify a smaller range or retry",
            ),
        ),
        (
            "get",
            "/v1/integrity/head",
            Op::new("head", "integrity", "The last seq and its hash", Some("read")).ok(200, "the head", r("Head")),
        ),
        (
            "get",
            "/v1/integrity/status",
            Op::new(
                "integrityStatus",
                "integrity",
                "Head, newest signed checkpoint and its age, hold, last verify",
                Some("read"),
            )
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
            Op::new("publicKey", "integrity", "The Ed25519 keys checkpoints are verified with", Some("read")).ok(
                200,
                "the keys",
                r("PublicKeys"),
            ),
        ),
        (
            "post",
            "/v1/integrity/accept",
            Op::new(
                "acceptIntegrity",
                "integrity",
                "Accept a reported integrity failure and lift the write hold",
                Some("admin"),
            )
            .body(json_body(
                closed(&["reason"], json!({"reason": {"type": "string", "pattern": "\\S", "maxLength": 2000}})),
                true,
            ))
            .ok(200, "accepted; a checkpoint signs the log as it is", r("Accepted"))
            .err(400, "missing or invalid reason")
            .err(409, "not_on_hold: nothing to accept")
            .err(413, "body too large"),
        ),
    ]
}

fn rules() -> Vec<(&'static str, &'static str, Op)> {
    vec![
        (
            "get",
            "/v1/rules",
            Op::new("listRules", "rules", "Deployed (and quarantined) rules", Some("read")).ok(
                200,
                "the rules",
                list_of("rules", "Rule", false),
            ),
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
            Op::new(
                "deployRule",
                "rules",
                "Deploy or replace a rule: the body is the .wasm module, or (application/yaml) Sigma rules run by the \
                 embedded Sigma evaluator: one rule, or YAML documents of detection rules, the correlation rules \
                 naming them and pySigma-style pipelines",
                Some("admin"),
            )
            .params(vec![name_param()])
            .body(json!({"required": true, "content": {
                "application/wasm": {"schema": {"type": "string", "format": "binary"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "application/yaml": {"schema": {"type": "string", "description": "Sigma YAML (UTF-8, at most 512 KiB)"}},
            }}))
                .ok(200, "replaced a running version", r("Deployed"))
                .ok(201, "deployed", r("Deployed"))
                .link(201, "getRule", "name")
                .link(201, "ruleStats", "name")
                .link(201, "deleteRule", "name")
                .err(
                    400,
                    "invalid_rule: the module was refused (not a valid rule module), or the Sigma text (the message names \
                     the Sigma rule, the line and what is wrong); the running version is untouched",
                )
                .err(413, "module larger than rules.max_module_bytes")
                .err(
                    429,
                    "deploy_busy: another module is being compiled (one at a time); retry after `Retry-After` seconds",
                )
                .err(507, "insufficient_storage"),
        ),
        (
            "delete",
            "/v1/rules/{name}",
            Op::new("deleteRule", "rules", "Delete a rule", Some("admin"))
                .params(vec![name_param()])
                .ok(
                    200,
                    "deleted",
                    object(
                        &["deleted"],
                        json!({"deleted": {"type": "string"}, "sha256": {"type": ["string", "null"]}}),
                    ),
                )
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
    ]
}

fn keys() -> Vec<(&'static str, &'static str, Op)> {
    vec![
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
            Op::new("listKeys", "keys", "Every key (never secrets or hashes)", Some("admin")).ok(
                200,
                "the keys",
                list_of("keys", "ApiKey", false),
            ),
        ),
        (
            "delete",
            "/v1/keys/{id}",
            Op::new("revokeKey", "keys", "Revoke a key", Some("admin"))
                .params(vec![path("id", json!({"type": "string"}), "key id (k_...)")])
                .ok(
                    200,
                    "revoked",
                    object(&["id", "revoked"], json!({"id": {"type": "string"}, "revoked": {"const": true}})),
                )
                .err(404, "no active key with that id")
                .err(409, "the key is the one making the request, or the last active admin key")
                .err(507, "insufficient_storage"),
        ),
    ]
}

fn reports() -> Vec<(&'static str, &'static str, Op)> {
    vec![
    (
        "get",
        "/v1/reports/security",
        Op::new(
            "securityReport",
            "reports",
            "Security report of a day, week or month: events, new IPs of privileged users, alerts, MTTD/MTTA/MTTR and SLA attainment, decisions, integrity",
            Some("read"),
        )
        .params(vec![
            query("period", json!({"type": "string", "enum": ["day", "week", "month"], "default": "day"}), "the day, the ISO week (Monday to Sunday) or the calendar month holding `date`"),
            query("date", json!({"type": "string", "format": "date", "pattern": "^(19[7-9][0-9]|[2-9][0-9]{3})-[0-9]{2}-[0-9]{2}$"}), "YYYY-MM-DD, UTC, from 1970 (default: today)"),
            query("format", json!({"type": "string", "enum": ["json", "html"], "default": "json"}), "JSON, or a printable HTML page with inline SVG charts"),
        ])
        .raw(200, json!({"description": "the report", "content": {
            "application/json": {"schema": r("SecurityReport")},
            "text/html": {"schema": {"type": "string"}},
        }}))
        .err(400, "invalid period, date or format"),
    ),
    (
        "get",
        "/v1/reports/compliance",
        Op::new(
            "complianceReport",
            "reports",
            "Compliance evidence of a period for PCI DSS req. 10, SOC 2, ISO 27001 or GDPR: controls, the endpoints that prove them, what was logged, integrity and checkpoints, who read the log, rule changes, alert response against the SLAs",
            Some("read"),
        )
        .params(vec![
            json!({"name": "framework", "in": "query", "required": true, "description": "the framework",
                "schema": {"type": "string", "enum": ["pci-dss", "soc2", "iso27001", "gdpr"]}}),
            query("period", json!({"type": "string", "enum": ["day", "week", "month"], "default": "day"}), "the day, ISO week or calendar month holding `date`"),
            query("date", json!({"type": "string", "format": "date", "pattern": "^(19[7-9][0-9]|[2-9][0-9]{3})-[0-9]{2}-[0-9]{2}$"}), "YYYY-MM-DD, UTC, from 1970 (default: today)"),
        ])
        .ok(200, "the evidence", r("ComplianceReport"))
        .err(400, "missing or unknown framework, invalid period or date"),
    ),
    ]
}
