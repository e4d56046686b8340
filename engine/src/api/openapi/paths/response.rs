//! The operations of responding to what detection found: alerts, silences, decisions and
//! the receivers' outbox.

use serde_json::json;

use super::super::{Op, closed, cursor, int64, json_body, limit, list_of, object, path, query, r, time_param};
use serde_json::Value;

fn alert_id() -> Value {
    path("id", json!({"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}), "alert id")
}

fn comment_body() -> Value {
    json_body(r("Comment"), false)
}

fn decision_id() -> Value {
    path("id", json!({"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}), "decision id")
}

// A table of operations (data, not logic); split, it would only scatter one tag.
pub(super) fn alerts() -> Vec<(&'static str, &'static str, Op)> {
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

pub(super) fn silences() -> Vec<(&'static str, &'static str, Op)> {
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
                .err(
                    400,
                    "invalid silence; `details.matcher` names the matcher at fault (e.g. a `=~` pattern that is not valid or compiles past 256 KiB)",
                )
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

// A table of operations (data, not logic); split, it would only scatter one tag.
pub(super) fn decisions() -> Vec<(&'static str, &'static str, Op)> {
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
                    json!({"type": "string", "enum": ["active", "expired", "lifted", "simulated", "all"]}),
                    "default active (from memory); others from the store (not for bouncer keys: 403)",
                ),
                limit(100),
                cursor(),
            ])
            .ok(
                200,
                "the decisions that apply (a check), or a page of them (a bouncer key: BouncerDecision)",
                list_of("decisions", "DecisionView", true),
            )
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
            .err(409, "the value is allowlisted (code allowlisted, details: the entry), or too many decisions are active ([decisions] max_active)")
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
            Op::new("getDecision", "decisions", "One decision, any status, with its history (bouncer keys: 403)", Some("read"))
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

pub(super) fn allowlist() -> Vec<(&'static str, &'static str, Op)> {
    vec![
        (
            "get",
            "/v1/allowlist",
            Op::new(
                "listAllowlist",
                "allowlist",
                "Values no decision may apply to (built-in, config, API)",
                Some("read"),
            )
            .params(vec![query(
                "status",
                json!({"type": "string", "enum": ["active", "all"]}),
                "default active (in force); all adds expired and removed API entries",
            )])
            .ok(200, "the entries", list_of("entries", "AllowEntry", false))
            .err(400, "invalid filter"),
        ),
        (
            "post",
            "/v1/allowlist",
            Op::new(
                "createAllowlistEntry",
                "allowlist",
                "Allow a value: decisions on it are refused, and the active ones it covers lifted",
                Some("admin"),
            )
            .body(json_body(r("NewAllowEntry"), true))
            .ok(201, "the entry, with the decisions it lifted", r("AllowEntryCreated"))
            .link(201, "deleteAllowlistEntry", "id")
            .err(400, "invalid entry")
            .err(409, "too many entries are in force")
            .err(413, "body too large")
            .err(507, "insufficient_storage"),
        ),
        (
            "delete",
            "/v1/allowlist/{id}",
            Op::new("deleteAllowlistEntry", "allowlist", "Remove an API entry (it stays on record)", Some("admin"))
                .params(vec![path("id", json!({"type": "string", "minLength": 1}), "entry id")])
                .ok(200, "the removed entry", r("AllowEntry"))
                .err(404, "no such entry")
                .err(409, "a config or built-in entry (not removable through the API), or removed already")
                .err(507, "insufficient_storage"),
        ),
    ]
}

pub(super) fn receivers() -> Vec<(&'static str, &'static str, Op)> {
    vec![
    (
        "get",
        "/v1/receivers",
        Op::new("listReceivers", "receivers", "Receivers and their circuit breakers", Some("read"))
            .ok(200, "the receivers", list_of("receivers", "Receiver", false)),
    ),
    (
        "get",
        "/v1/cluster",
        Op::new(
            "cluster",
            "receivers",
            "Cluster mode: nodes, partitions with their lease owners, heads and detection cursors, the detection slots with their holders and cursors (detection), and the rule placement (rules: each rule, its slot and the node running it), as this node last saw them",
            Some("read"),
        )
        .ok(200, "the cluster", r("Cluster")),
    ),
    (
        "get",
        "/v1/forwarders",
        Op::new(
            "listForwarders",
            "receivers",
            "Forwarders pushing committed events to SIEMs: cursor, lag, errors, breaker",
            Some("read"),
        )
        .ok(200, "the forwarders", list_of("forwarders", "Forwarder", false)),
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
