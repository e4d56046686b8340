//! The operations of the OpenAPI document, one function per tag (the same order as the
//! document's tags): method, path template and the [`Op`] that documents it. The parent
//! module adds what every operation shares (400, and 401/403/503 for those needing a key).

use serde_json::{Value, json};

use super::{Op, closed, cursor, int64, json_body, limit, list_of, object, path, query, r, time_param};

/// Every documented operation, tag by tag.
pub(super) fn operations() -> Vec<(&'static str, &'static str, Op)> {
    [operations_and_health(), events(), integrity(), rules(), alerts(), silences(), decisions(), receivers(), keys()]
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
        time_param("since", "events at or after"),
        time_param("until", "events before"),
        limit(50),
        cursor(),
    ]
}

fn name_param() -> Value {
    path("name", json!({"type": "string"}), "rule name")
}

fn alert_id() -> Value {
    path("id", json!({"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}), "alert id")
}

fn comment_body() -> Value {
    json_body(r("Comment"), false)
}

fn decision_id() -> Value {
    path("id", json!({"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}), "decision id")
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
            Op::new("metrics", "operations", "Prometheus metrics (text exposition format 0.0.4)", None)
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
                .err(
                    400,
                    "invalid_rule: the module was refused (not a valid rule module); the running version is untouched",
                )
                .err(413, "module larger than rules.max_module_bytes")
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

fn alerts() -> Vec<(&'static str, &'static str, Op)> {
    vec![
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
            Op::new(
                "alertStats",
                "alerts",
                "Counts by status, severity and rule; MTTA, MTTR, false-positive rate",
                Some("read"),
            )
            .params(vec![time_param("since", "alerts created at or after")])
            .ok(200, "statistics", r("AlertStats"))
            .err(400, "invalid parameter"),
        ),
        (
            "get",
            "/v1/alerts/{id}",
            Op::new(
                "getAlert",
                "alerts",
                "One alert with its history, notifications, escalations and events",
                Some("read"),
            )
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
    ]
}

fn silences() -> Vec<(&'static str, &'static str, Op)> {
    vec![
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
            Op::new("listSilences", "silences", "Every silence", Some("read")).ok(
                200,
                "the silences",
                list_of("silences", "Silence", false),
            ),
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
    ]
}

fn decisions() -> Vec<(&'static str, &'static str, Op)> {
    vec![
        (
            "get",
            "/v1/decisions",
            Op::new(
                "listDecisions",
                "decisions",
                "Check a value (scope and value: from memory), or list decisions",
                Some("bouncer"),
            )
            .params(vec![
                query(
                    "scope",
                    json!({"type": "string", "enum": ["ip", "user", "api_key", "session", "organization"]}),
                    "scope",
                ),
                query(
                    "value",
                    json!({"type": "string", "minLength": 1, "maxLength": 256}),
                    "the ip, user id... to check (needs scope)",
                ),
                query("kind", json!({"type": "string", "enum": ["block", "throttle", "require_mfa", "lock"]}), "kind"),
                query(
                    "alert_id",
                    json!({"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}),
                    "decisions that go with this alert",
                ),
                query(
                    "status",
                    json!({"type": "string", "enum": ["active", "expired", "lifted", "all"]}),
                    "default active (from memory); others from the store",
                ),
                limit(100),
                cursor(),
            ])
            .ok(200, "the decisions that apply (a check), or a page of them", list_of("decisions", "Decision", true))
            .err(400, "invalid filter"),
        ),
        (
            "post",
            "/v1/decisions",
            Op::new(
                "createDecision",
                "decisions",
                "Issue a decision (block, throttle, require_mfa, lock) for a time",
                Some("respond"),
            )
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
            Op::new(
                "decisionStream",
                "decisions",
                "What was added and what ended since a cursor (a bouncer's poll)",
                Some("bouncer"),
            )
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
            Op::new(
                "liftDecision",
                "decisions",
                "Lift an active decision early (a reason is required)",
                Some("respond"),
            )
            .params(vec![decision_id()])
            .body(json_body(r("Lift"), true))
            .ok(200, "the lifted decision", r("Decision"))
            .err(400, "invalid id, or no reason")
            .err(404, "no such decision")
            .err(409, "the decision is no longer active")
            .err(413, "body too large")
            .err(507, "insufficient_storage"),
        ),
    ]
}

fn receivers() -> Vec<(&'static str, &'static str, Op)> {
    vec![
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
