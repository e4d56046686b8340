#!/usr/bin/env python3
"""Writes tests/fixtures/sigma/corpus.ndjson: a deterministic corpus of Vigil events for the
Sigma equivalence check (scripts/sigma-equivalence.sh). It mixes the seed patterns of the
peer's rules and of rules/sigma/ with their near misses and with the corners of Sigma's
matching: case-insensitive values (`/ADMIN`, `union select`), booleans written as strings,
numbers written as strings, absent fields. Events are as Vigil stores them (lowercase
category and action, `severity` and `outcome` defaulted), so the server accepts them as is. Timestamps are whole seconds
(rsigma's correlation clock) and increase, so both engines see the same order."""
import json
import pathlib
import random

rng = random.Random(25)
T0 = 1_767_610_800_000  # 2026-01-05T11:00:00Z
SOURCES = {
    "authentication": "auth-service", "authorization": "api-gateway", "data_access": "records",
    "api": "api-gateway", "database": "postgres", "deployment": "ci", "webhook": "webhooks",
    "external_api": None, "payment": "billing", "system": "host",
}
IPS = [f"203.0.113.{i}" for i in range(1, 9)] + ["10.0.0.5", "192.0.2.50"]
USERS = [f"user{i}" for i in range(40)] + ["root", "admin", "ops"]
SQLI = ["' OR 1=1 --", "1 UNION SELECT password FROM users", "x; DROP TABLE users", "1 union select 2", "' or 1=1",
        "UNION  SELECT", "drop table"]
RESOURCES = ["/api/items", "/admin/users", "/ADMIN/settings", "/api/admin", "/adminpanel", "/items?id=7", "/reports"]


def event(t_s, category, action, **extra):
    e = {"category": category, "action": action, "timestamp": T0 + t_s * 1000}
    source = SOURCES[category]
    if category == "external_api":
        source = rng.choice(["stripe", "github", "maps"])
    if source:
        e["source"] = source
    for k, v in extra.items():
        if v is not None:
            e[k] = v
    # As Vigil stores them (ingest fills these defaults), so both engines see the same event.
    e.setdefault("severity", "low")
    e.setdefault("outcome", "unknown")
    return e


def pick(*options):
    return rng.choice(options)


events = []
t = 0
for i in range(1500):
    t += rng.choice([0, 1, 1, 2, 5])
    if i in (500, 1200):  # bursts that cross the correlation thresholds, and some that stay under
        n = 110 if i == 500 else 95
        for k in range(n):
            events.append(event(t + k // 4, "api", "api_key_used", ip="10.0.0.5", api_key_id=f"key-burst{i}"))
        for k in range(6 if i == 500 else 4):
            events.append(event(t + k * 10, "api", "api_key_validation_failed", ip=f"192.0.2.{60 + i // 100}"))
        for k in range(25 if i == 500 else 18):
            events.append(event(t + k * 3, "external_api", "call", outcome="failure", **{}) | {"source": f"burst{i}"})
        for k in range(5 if i == 500 else 3):
            events.append(event(t + k * 30, "authentication", "login_failed", ip=ip, user_id=f"admin{i}",
                                outcome="failure", details={"user_role": "admin"}))
        t += 40
    kind = rng.randrange(12)
    ip = rng.choice(IPS)
    user = rng.choice(USERS)
    if kind == 0:  # authentication
        action = pick("login_failed", "login_failed", "login_success", "account_locked", "logout")
        details = {}
        if rng.random() < 0.3:
            details["user_role"] = pick("admin", "user", "Admin", "ADMIN")
        events.append(event(t, "authentication", action, ip=ip, user_id=user,
                            outcome="failure" if action in ("login_failed", "account_locked") else "success",
                            resource=pick(None, "/admin/login", "/login"), details=details or None))
    elif kind == 1:  # lockout bursts over many users
        events.append(event(t, "authentication", "account_locked", ip=ip, user_id=f"victim{rng.randrange(15)}",
                            outcome="failure"))
    elif kind == 2:  # authorization
        events.append(event(t, pick("authorization", "authorization", "data_access"),
                            pick("permission_denied", "permission_denied", "access_granted"), ip=ip, user_id=user,
                            outcome="failure", resource=rng.choice(RESOURCES)))
    elif kind == 3:  # data access, SQL injection and sensitive data
        details = {}
        r = rng.random()
        if r < 0.2:
            details["q"] = rng.choice(SQLI)
        elif r < 0.3:
            details["q"] = "select name from items"
        details["sensitive"] = rng.choice([True, False, "true", "false", None, 1])
        if rng.random() < 0.15:
            details["record_status"] = pick("deleted", "active", "DELETED")
        if rng.random() < 0.1:
            details["deleted"] = pick(True, False, "true")
        resource = rng.choice(RESOURCES + [f"/items?id={rng.choice(SQLI)}"] * 2)
        events.append(event(t, "data_access", pick("record_read", "search", "export"), ip=ip, user_id=user,
                            resource=resource, outcome=pick("success", "success", "failure"),
                            details={k: v for k, v in details.items() if v is not None}))
    elif kind == 4:  # API keys
        action = pick("api_key_used", "api_key_used", "api_key_validation_failed", "api_key_revoked")
        events.append(event(t, "api", action, ip=ip, api_key_id=f"key{rng.randrange(4)}"))
    elif kind == 5:  # severity
        events.append(event(t, "system", pick("disk_failure", "cpu_high", "restart"),
                            severity=pick("low", "medium", "high", "critical")))
    elif kind == 6:  # database
        duration = rng.choice([10, 4999, 5000, 12000, "6000", 4999.5, 5000.0])
        events.append(event(t, pick("database", "database", "data_access"), "query", details={"duration_ms": duration}))
    elif kind == 7:  # deployments
        approved = rng.choice([True, False, "false", None])
        d = {"approved": approved} if approved is not None else {}
        events.append(event(t, "deployment", pick("deploy_started", "deployment_finished", "rollback"),
                            user_id=user, outcome=pick("success", "failure"),
                            reason=pick(None, "unauthorized", "Forbidden by policy", "timeout", "not approved"),
                            details=d or None))
    elif kind == 8:  # webhooks
        events.append(event(t, "webhook", pick("webhook_received", "webhook_signature_invalid", "webhook_sent"),
                            outcome=pick("success", "failure"),
                            reason=pick(None, "bad signature", "Signature mismatch", "timeout")))
    elif kind == 9:  # external APIs: bursts of failures
        for _ in range(rng.randrange(1, 6)):
            events.append(event(t, "external_api", "call", outcome=pick("failure", "failure", "success")))
    elif kind == 10:  # payments
        u = f"payer{rng.randrange(12)}"
        events.append(event(t, "payment", pick("payment_failed", "payment_succeeded"), user_id=u, ip=ip))
    else:  # brute-force bursts
        burst_ip = rng.choice(IPS[:3])
        for _ in range(rng.randrange(2, 9)):
            events.append(event(t, "authentication", "login_failed", ip=burst_ip, user_id=rng.choice(USERS),
                                outcome="failure"))

out = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/sigma/corpus.ndjson"
out.write_text("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events))
print(f"{len(events)} events -> {out}")
