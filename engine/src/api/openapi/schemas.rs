//! The `components.schemas` of the OpenAPI document: every request and response body the
//! handlers in `api` read or write, referenced from the operations with `r("Name")`.

use serde_json::{Value, json};

use super::{any_case, hex64, nullable, nullable_time, object, r, time};

mod reports;

use reports::{compliance_report, security_report};

// One JSON literal, one entry per schema: a table of data rather than logic, so it stays
// one function (split, it would only scatter the `$ref` targets).
pub(super) fn schemas() -> Value {
    let count = json!({"type": "array", "items": r("Count")});
    let mut other_counts = object(
        &["by_category", "by_severity", "by_outcome", "by_action"],
        json!({
            "by_category": r("OtherCount"), "by_severity": r("OtherCount"),
            "by_outcome": r("OtherCount"), "by_action": r("OtherCount"),
        }),
    );
    other_counts["description"] = json!("per by_* grouping: the values past its 100 most frequent, and their events");
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
            "status": {"type": "string", "enum": ["ready", "unavailable", "integrity_hold", "sequencer_stopped"]},
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
            "description": "A stored event: the posted fields (masked), plus seq, received_at, mask_policy, \
                ingest_key (the id of the API key that sent it; absent on the server's own events and on events \
                stored before it was recorded), hash and prev_hash. A row that cannot be decoded is returned with `damaged` instead of failing the request.",
            "properties": {
                "seq": {"type": "integer", "minimum": 1},
                "hash": hex64(), "prev_hash": hex64(),
                "event_id": {"type": "string"},
                "timestamp": time(), "received_at": time(),
                "category": {"type": "string"}, "action": {"type": "string"},
                "severity": {"type": "string"}, "outcome": {"type": "string"},
                "mask_policy": {"type": "integer"},
                "ingest_key": {"type": "string", "description": "id of the API key that sent the event (hashed with it)"},
                "partition": {"type": "integer", "minimum": 0, "description": "cluster mode: the partition whose log holds it (its identity is (partition, seq))"},
                "details": {"type": "object"},
                "damaged": object(&["problems"], json!({"problems": {"type": "array", "items": {"type": "string"}}, "hint": {"type": "string"}})),
            },
        },
        "IngestResult": object(&["stored", "events"], json!({
            "stored": {"type": "integer", "minimum": 0, "description": "events newly stored"},
            "events": {"type": "array", "items": object(&["event_id", "seq", "duplicate"], json!({
                "event_id": {"type": "string"}, "seq": {"type": "integer", "minimum": 1}, "duplicate": {"type": "boolean"},
                "partition": {"type": "integer", "minimum": 0, "description": "cluster mode: the partition whose log holds it"},
            }))},
        })),
        "OcsfEvent": {
            "type": "object",
            "description": "an OCSF 1.x event (with ?format=ocsf); mapped attributes become Vigil fields, the rest goes to details",
            "required": ["class_uid"],
            "properties": {
                "class_uid": {"type": "integer", "enum": [3001, 3002, 4002, 6003]},
                "activity_id": {"type": "integer"},
                "time": {"type": "integer", "minimum": 0, "maximum": 253_402_300_799_999i64},
            },
        },
        "OtlpLogsRequest": {
            "type": "object",
            "description": "ExportLogsServiceRequest in OTLP/JSON (lowerCamelCase members; unknown members are ignored and null is the default, as protobuf's JSON mapping says)",
            "properties": {"resourceLogs": {"type": ["array", "null"], "items": {"type": "object", "properties": {
                "resource": {"type": ["object", "null"], "properties": {"attributes": {"type": ["array", "null"], "items": r("OtlpKeyValue")}}},
                "scopeLogs": {"type": ["array", "null"], "items": {"type": "object", "properties": {
                    "scope": {"type": ["object", "null"], "properties": {"name": {"type": ["string", "null"]}, "version": {"type": ["string", "null"]}}},
                    "logRecords": {"type": ["array", "null"], "items": {"type": "object", "properties": {
                        "timeUnixNano": otlp_nanos(),
                        "observedTimeUnixNano": otlp_nanos(),
                        "severityNumber": {
                            "type": ["integer", "string", "null"], "minimum": i32::MIN, "maximum": i32::MAX,
                            "pattern": "^(-?[0-9]{1,9}|SEVERITY_NUMBER_(UNSPECIFIED|(TRACE|DEBUG|INFO|WARN|ERROR|FATAL)[234]?))$",
                        },
                        "severityText": {"type": ["string", "null"]},
                        "eventName": {"type": ["string", "null"]},
                        "body": r("OtlpAnyValue"),
                        "attributes": {"type": ["array", "null"], "items": r("OtlpKeyValue")},
                        "traceId": {"type": ["string", "null"], "pattern": "^([0-9a-fA-F]{2})*$"},
                        "spanId": {"type": ["string", "null"], "pattern": "^([0-9a-fA-F]{2})*$"},
                    }}},
                }}},
            }}}},
        },
        "OtlpKeyValue": {"type": "object", "properties": {"key": {"type": ["string", "null"]}, "value": r("OtlpAnyValue")}},
        "OtlpAnyValue": {
            "type": ["object", "null"],
            "description": "stringValue, boolValue, intValue, doubleValue, arrayValue {values}, kvlistValue {values} or bytesValue (base64); the first one present is the value",
            "properties": {
                "stringValue": {"type": ["string", "null"]},
                "boolValue": {"type": ["boolean", "null"]},
                "intValue": {"type": ["string", "integer", "null"], "pattern": "^-?[0-9]{1,18}$", "minimum": i64::MIN, "maximum": i64::MAX},
                "doubleValue": {"type": ["number", "null"]},
                "bytesValue": {"type": ["string", "null"], "pattern": "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}(==)?|[A-Za-z0-9+/]{3}=?)?$"},
                "arrayValue": {"type": ["object", "null"], "properties": {"values": {"type": ["array", "null"], "items": r("OtlpAnyValue")}}},
                "kvlistValue": {"type": ["object", "null"], "properties": {"values": {"type": ["array", "null"], "items": r("OtlpKeyValue")}}},
            },
        },
        "OtlpLogsResponse": {
            "type": "object",
            "description": "ExportLogsServiceResponse in OTLP/JSON: empty when every record was stored",
            "properties": {"partialSuccess": object(&["rejectedLogRecords", "errorMessage"], json!({
                "rejectedLogRecords": {"type": "string", "pattern": "^[1-9][0-9]*$", "description": "records refused (an int64, as a decimal string)"},
                "errorMessage": {"type": "string", "description": "one line per refused record: its path (resourceLogs[i].scopeLogs[j].logRecords[k]), the field and the problem"},
            }))},
        },
        "Count": object(&["value", "count"], json!({"value": {"type": "string"}, "count": {"type": "integer"}})),
        "OtherCount": object(&["values", "count"], json!({
            "values": {"type": "integer", "minimum": 0, "description": "distinct values past the 100 listed"},
            "count": {"type": "integer", "minimum": 0, "description": "events carrying them"},
        })),
        "EventStats": object(
            &["total", "by_category", "by_severity", "by_outcome", "by_action", "other", "failure_rate", "high_risk", "top_ips", "top_users", "buckets"],
            json!({
                "total": {"type": "integer"},
                "by_category": count, "by_severity": count, "by_outcome": count, "by_action": count,
                "other": other_counts,
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
                "partition": {"type": "integer", "description": "cluster mode: the partition verified (without ?partition=, 0: the top level is partition 0's report, with status, verified, checkpoints_checked, failures and failure_count over every partition)"},
                "partitions": {"type": "array", "items": {"type": "object", "description": "a VerifyReport of one partition, with its `partition`"},
                    "description": "cluster mode without ?partition=: each partition's report, ascending"},
                "from": {"type": "integer"}, "to": {"type": "integer"},
                "verified": {"type": "integer", "minimum": 0},
                "checkpoints_checked": {"type": "integer", "minimum": 0},
                "head": r("Head"),
                "last_checkpoint": {"anyOf": [r("Checkpoint"), {"type": "null"}]},
                "unsigned": {"anyOf": [object(&["from", "to"], json!({"from": {"type": "integer"}, "to": {"type": "integer"}})), {"type": "null"}],
                    "description": "rows after the newest checkpoint, signed within the checkpoint period"},
                "retention_floor": {"type": "integer"},
                "failures": {"type": "array", "items": r("Failure"), "description": "cluster mode without ?partition=: each also names its `partition`"},
                "failure_count": {"type": "integer"},
                "hold": {"description": "the write hold after a failure, or null"},
            }),
        ),
        "IntegrityStatus": object(&["head", "last_checkpoint", "checkpoint_age_seconds", "unsigned_events", "hold", "last_verify", "archive"], json!({
            "head": r("Head"),
            "last_checkpoint": {"anyOf": [r("Checkpoint"), {"type": "null"}]},
            "checkpoint_age_seconds": nullable("number"),
            "unsigned_events": {"type": "integer", "description": "events after the newest signed checkpoint"},
            "partitions": {"type": "array", "description": "cluster mode: each partition's head, newest checkpoint and lease",
                "items": object(&["partition", "head", "unsigned_events"], json!({
                    "partition": {"type": "integer"}, "head": r("Head"),
                    "last_checkpoint": {"anyOf": [r("Checkpoint"), {"type": "null"}]},
                    "checkpoint_age_seconds": nullable("number"), "unsigned_events": {"type": "integer"},
                    "owner": nullable("string"), "epoch": {"type": ["integer", "null"]},
                    "anchor": {"anyOf": [r("Checkpoint"), {"type": "null"}],
                        "description": "the partition's checkpoint anchored in the JetStream key-value bucket VIGIL_ANCHORS (verify compares the log with it)"},
                }))},
            "hold": {"anyOf": [object(&["since", "failures"], json!({"since": {"type": "integer"}, "failures": {"type": "array", "items": r("Failure")}})), {"type": "null"}]},
            "last_verify": {"anyOf": [object(&["at", "status", "from", "to", "verified", "failure_count", "by"], json!({
                "at": time(), "status": {"type": "string", "enum": ["ok", "failed"]}, "from": {"type": "integer"},
                "to": {"type": "integer"}, "verified": {"type": "integer"}, "failure_count": {"type": "integer"},
                "by": {"type": "string", "description": "key id"},
            })), {"type": "null"}], "description": "the newest verification since the server started"},
            "archive": {"anyOf": [object(&["location", "hot_days", "keep_days", "last_part", "last_failure"], json!({
                "location": {"type": "string", "description": "the directory or s3://bucket/prefix (never a credential)"},
                "hot_days": {"type": "integer"}, "keep_days": {"type": "integer"},
                "last_part": {"anyOf": [object(&["object", "from_seq", "to_seq", "at"], json!({
                    "object": {"type": "string"}, "from_seq": {"type": "integer"}, "to_seq": {"type": "integer"}, "at": time(),
                })), {"type": "null"}], "description": "the newest part written since start"},
                "last_failure": {"anyOf": [object(&["at", "kind"], json!({
                    "at": time(),
                    "kind": {"type": "string", "enum": ["store", "check", "foreign", "staging", "log", "config"]},
                })), {"type": "null"}], "description": "the newest failed archive attempt since start (nothing was purged); details in the server log"},
            })), {"type": "null"}], "description": "the retention archive, when `[retention.archive]` is set"},
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
            "abi_minor": {"type": "integer"},
            "source": {"type": "string", "description": "`sigma` for Sigma rules; else where the module came from (`api`, `file:<path>`)"},
            "origin": {"type": "string", "description": "where the rule came from: `api` or `file:<path>`"},
            "format": {"type": "string", "enum": ["wasm", "sigma"]},
            "deployed_at": time(),
            "state": {"type": "object"}, "stats": {"type": ["object", "null"]},
            "quarantine": {"type": "object"},
        })),
        "RuleStats": object(&["name", "status", "sha256"], json!({
            "name": {"type": "string"}, "status": {"type": "string"}, "sha256": hex64(),
            "version": {"type": ["string", "null"]}, "stats": {"type": ["object", "null"]}, "state": {"type": ["object", "null"]},
        })),
        "Deployed": object(&["name", "version", "sha256", "replaced", "cached", "format"], json!({
            "name": {"type": "string"}, "version": {"type": "string"}, "sha256": hex64(),
            "replaced": {"type": ["string", "null"], "description": "SHA-256 of the version it replaced"},
            "cached": {"type": "boolean", "description": "compilation skipped (module cache hit)"},
            "format": {"type": "string", "enum": ["wasm", "sigma"]},
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
                "status": {"type": "string", "enum": ["active", "expired", "lifted", "simulated"], "description": "simulated: recorded in simulate mode, never enforced"},
                "ended_at": nullable_time(), "ended_by": nullable("string"), "end_reason": nullable("string"),
            }),
        ),
        "BouncerDecision": {"type": "object", "additionalProperties": false, "required": ["id", "scope", "value", "kind", "expires_at"],
            "description": "what a bouncer key sees of an active decision: what enforcement needs, nothing else",
            "properties": {
                "id": {"type": "integer", "minimum": 1},
                "scope": {"type": "string", "enum": ["ip", "user", "api_key", "session", "organization"]},
                "value": {"type": "string"}, "kind": {"type": "string", "enum": ["block", "throttle", "require_mfa", "lock"]},
                "expires_at": time(),
            }},
        "DecisionView": {"anyOf": [r("Decision"), r("BouncerDecision")], "description": "the whole decision; a bouncer key gets a BouncerDecision"},
        "DecisionDetail": {"allOf": [r("Decision"), object(&["history"], json!({
            "history": {"type": "array", "items": object(&["id", "action", "actor", "at", "chain_seq"], json!({
                "id": {"type": "integer"}, "action": {"type": "string", "enum": ["issued", "expired", "lifted", "simulated"]},
                "actor": {"type": "string"}, "reason": nullable("string"), "at": time(), "chain_seq": nullable("integer"),
            }))},
        }))]},
        "DecisionStream": object(&["snapshot", "added", "deleted", "cursor", "more"], json!({
            "snapshot": {"type": "boolean", "description": "added is every active decision: replace the local copy"},
            "added": {"type": "array", "items": r("DecisionView")},
            "deleted": {"type": "array", "items": r("DecisionView"), "description": "decisions that expired or were lifted (remove by id)"},
            "cursor": {"type": "string", "pattern": "^(0|[1-9][0-9]{0,17})$", "description": "pass as `since` next"},
            "more": {"type": "boolean", "description": "more changes wait: call again at once"},
        })),
        "NewDecision": {"type": "object", "additionalProperties": false, "required": ["scope", "value", "kind", "reason"],
            "oneOf": [{"required": ["duration_secs"]}, {"required": ["duration"]}],
            "description": "exactly one of duration_secs and duration; a value on the allowlist is refused (409 allowlisted)",
            "properties": {
            "scope": {"type": "string", "enum": ["ip", "user", "api_key", "session", "organization"]},
            "value": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]+$", "description": "1 to 256 characters, no control characters"},
            "kind": {"type": "string", "enum": ["block", "throttle", "require_mfa", "lock"]},
            "duration_secs": {"type": "integer", "minimum": 1, "maximum": 2_592_000, "description": "at most [decisions] max_duration_secs (default 30 days)"},
            "duration": {"type": "string", "pattern": "^[0-9]{1,15}[smhd]$", "description": "the same as text: a whole number and s, m, h or d (\"90s\", \"30m\", \"4h\", \"7d\")"},
            "reason": {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": "^[^\\u0000]+$", "description": "why: required, 1 to 1024 characters"},
            "alert_id": {"type": ["integer", "null"], "minimum": 1, "maximum": i64::MAX, "description": "an existing alert it goes with"},
        }},
        "AllowEntry": object(
            &["id", "scope", "value", "reason", "expires_at", "source", "created_at", "created_by", "status"],
            json!({
                "id": {"type": "string", "description": "builtin-loopback-ipv4|ipv6, config-<n> (its place in [[decisions.allow]]), or a UUID"},
                "scope": {"type": "string", "enum": ["ip", "user", "api_key", "session", "organization"]},
                "value": {"type": "string", "description": "for ip, an address or network in canonical form (10.0.0.0/8)"},
                "reason": {"type": "string"}, "expires_at": nullable_time(),
                "source": {"type": "string", "enum": ["builtin", "config", "api"]},
                "created_at": time(), "created_by": nullable("string"),
                "status": {"type": "string", "enum": ["active", "expired", "removed"]},
                "removed_at": nullable_time(), "removed_by": nullable("string"),
            }),
        ),
        "AllowEntryCreated": {"allOf": [r("AllowEntry"), object(&["decisions_lifted"], json!({
            "decisions_lifted": {"type": "array", "items": {"type": "integer"}, "description": "active decisions the entry covered, lifted with it as the reason"},
        }))]},
        "NewAllowEntry": {"type": "object", "additionalProperties": false, "required": ["scope", "value", "reason"],
            "description": "at most one of expires_at, duration and duration_secs (none: until removed)",
            "properties": {
            "scope": {"type": "string", "enum": ["ip", "user", "api_key", "session", "organization"]},
            "value": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]+$", "description": "for ip: an address or a CIDR network (IPv4 or IPv6); others compare exactly"},
            "reason": {"type": "string", "minLength": 1, "maxLength": 1024, "pattern": "^[^\\u0000]+$"},
            "expires_at": {"type": ["string", "integer", "null"], "description": "RFC 3339 or epoch ms, in the future"},
            "duration": {"type": ["string", "null"], "pattern": "^[0-9]{1,15}[smhd]$", "description": "\"30m\", \"4h\", \"7d\", \"90s\""},
            "duration_secs": {"type": ["integer", "null"], "minimum": 1, "maximum": 315_360_000},
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
            "public_key": {"type": "string", "description": "webhook signing with Ed25519 (Standard Webhooks v1a): the whpk_ public key to verify with"},
        })),
        "Cluster": object(&["enabled", "nodes", "partitions"], json!({
            "enabled": {"type": "boolean", "description": "false on a single node (the other members are then empty)"},
            "node_id": nullable("string"), "partitions_total": {"type": "integer"},
            "nodes": {"type": "array", "items": object(&["node_id", "address", "last_seen", "live"], json!({
                "node_id": {"type": "string"}, "address": {"type": "string"}, "started_at": {"type": "integer"},
                "last_seen": {"type": "integer", "description": "epoch ms, PostgreSQL's clock"}, "live": {"type": "boolean"},
            }))},
            "partitions": {"type": "array", "items": object(&["partition", "epoch", "live"], json!({
                "partition": {"type": "integer"}, "owner": nullable("string"), "epoch": {"type": "integer"},
                "live": {"type": "boolean"}, "desired": nullable("string"), "head": {"type": ["integer", "null"]},
                "detect_cursor": {"type": "integer", "description": "seq up to which every detection slot has recorded its findings (the smallest of the slots' cursors)"},
                "lag": {"type": ["integer", "null"], "minimum": 0, "description": "JetStream groups published to the partition and not yet committed (its consumer's pending plus ack pending); null: no consumer yet"},
            }))},
            "stream": {"description": "the JetStream stream (cluster mode; read at most once a second)", "anyOf": [{"type": "null"}, object(&["name", "partitions"], json!({
                "name": {"type": "string"}, "messages": {"type": "integer"}, "bytes": {"type": "integer"},
                "first_seq": {"type": "integer"}, "last_seq": {"type": "integer"}, "consumers": {"type": "integer"},
                "replicas": {"type": "integer"}, "leader": nullable("string"),
                "peers": {"type": "array", "items": object(&["name"], json!({
                    "name": {"type": "string"}, "current": {"type": "boolean"}, "offline": {"type": "boolean"},
                    "lag": {"type": ["integer", "null"]},
                }))},
                "error": {"type": ["string", "null"], "description": "NATS could not be asked (the other fields are then absent)"},
                "partitions": {"type": "array", "items": object(&["partition", "consumer", "lag"], json!({
                    "partition": {"type": "integer"}, "consumer": {"type": "string"},
                    "lag": {"type": ["integer", "null"]}, "pending": {"type": ["integer", "null"]},
                    "ack_pending": {"type": ["integer", "null"]}, "delivered_seq": {"type": ["integer", "null"]},
                    "ack_floor_seq": {"type": ["integer", "null"]},
                }))},
            }))]},
            "detection": object(&["epoch", "live"], json!({
                "owner": {"type": ["string", "null"], "description": "the holder of detection slot 0 (see slots)"},
                "epoch": {"type": "integer", "description": "slot 0's lease epoch"}, "live": {"type": "boolean"},
                "slots_total": {"type": "integer", "description": "detection slots of the cluster (fixed at creation)"},
                "slots": {"type": "array", "items": object(&["slot", "epoch", "live", "cursors"], json!({
                    "slot": {"type": "integer"},
                    "owner": {"type": ["string", "null"], "description": "the node running the slot's rules (its lease's holder)"},
                    "epoch": {"type": "integer"}, "live": {"type": "boolean"}, "desired": nullable("string"),
                    "cursors": {"type": "array", "items": object(&["partition", "seq"], json!({
                        "partition": {"type": "integer"},
                        "seq": {"type": "integer", "description": "seq up to which the slot's rules have recorded their findings"},
                    }))},
                }))},
            })),
            "rules": {"type": "array", "description": "rule placement: each active detection rule, its slot and the node running it",
                "items": object(&["rule", "slot"], json!({
                    "rule": {"type": "string"}, "slot": {"type": "integer"}, "node": nullable("string"),
                }))},
            "updated_at": {"type": "integer"}, "error": nullable("string"),
        })),
        "Forwarder": object(&["name", "kind", "format", "target", "cursor", "head", "lag", "sent", "errors", "breaker"], json!({
            "name": {"type": "string"}, "kind": {"type": "string", "enum": ["syslog", "splunk_hec", "ocsf_http", "nats"]},
            "format": {"type": "string", "enum": ["rfc5424", "cef", "hec_json", "ocsf_json", "json"]},
            "target": {"type": "string", "description": "host:port (and the subject for NATS), or the URL's scheme, host and port"},
            "filters": {"type": "object"},
            "cursor": {"type": "integer", "description": "seq of the last event delivered or passed over by the filters"},
            "head": {"type": "integer"}, "lag": {"type": "integer", "minimum": 0},
            "sent": {"type": "integer"}, "batches": {"type": "integer"}, "errors": {"type": "integer"},
            "consecutive_failures": {"type": "integer"},
            "breaker": {"type": "string", "enum": ["closed", "open"]},
            "last_error": nullable("string"), "last_error_at": nullable_time(), "last_sent_at": nullable_time(),
        })),
        "Notification": object(&["id", "receiver", "kind", "status", "attempts"], json!({
            "id": {"type": "integer"}, "alert_id": nullable("integer"), "receiver": {"type": "string"},
            "kind": {"type": "string"}, "idempotency_key": {"type": "string"},
            "status": {"type": "string", "enum": ["pending", "delivered", "failed", "dead", "folded", "digest", "digested"]},
            "attempts": {"type": "integer"}, "next_attempt_at": time(), "created_at": time(), "updated_at": time(),
            "delivered_at": nullable_time(), "last_error": nullable("string"),
        })),
        "SecurityReport": security_report(&count, &counts_by, &other_counts),
        "ComplianceReport": compliance_report(&count),
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

/// An OTLP/JSON `fixed64` time as Vigil reads it: a number from 0 to 19 nines, or a string
/// of 1 to 19 digits.
fn otlp_nanos() -> Value {
    json!({"type": ["string", "integer", "null"], "pattern": "^[0-9]{1,19}$", "minimum": 0, "maximum": 9_999_999_999_999_999_999u64})
}
