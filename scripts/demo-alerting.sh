#!/usr/bin/env bash
# End-to-end alerting scenario against the real `vigil serve` and real receivers: a local
# HTTP receiver (Slack, PagerDuty and webhook paths; it logs every request and can be told
# to fail) and a real SMTP server (aiosmtpd). Prints what each receiver got.
#
#   scripts/demo-alerting.sh
#
# 1. a brute-force burst -> one P2 alert naming all six failed logins -> chat, email, pager;
# 2. nine more bursts -> the same alert counts 10 and is notified again "(10 occurrences)";
# 3. acknowledged -> PagerDuty gets `acknowledge`, chat "Acknowledged by bootstrap admin: ..." and
#    the comment; the P2 never escalates, and is then resolved (chat "Resolved (true
#    positive) by bootstrap admin: ...", PagerDuty `resolve`);
# 4. the P1 raised by the same traffic is left unacknowledged -> escalated after 20 s;
# 5. chat answers 503 -> its circuit opens after 5 failures, notifications wait, it
#    recovers -> half-open after 10 s, closed, everything arrives once.
# Needs: the Rust toolchain, python3 with aiosmtpd (scripts/setup.sh --postgres installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
python3 -c 'import aiosmtpd' 2>/dev/null || python3 -m pip install --quiet aiosmtpd
cargo build --quiet --bin vigil
(cd rules && cargo build --quiet --release --target wasm32-unknown-unknown --target-dir "$CARGO_TARGET_DIR/wasm-rules/examples")
WASM="$CARGO_TARGET_DIR/wasm-rules/examples/wasm32-unknown-unknown/release"

DEMO=$(mktemp -d /tmp/vigil-demo.XXXXXX)
mkdir -p "$DEMO/rules"
cp "$WASM/brute_force.wasm" "$WASM/default_router.wasm" "$DEMO/rules/"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP_PORT=$(free_port); SMTP_PORT=$(free_port); VIGIL_PORT=$(free_port)
KEY=vgl_demo_admin_key_0123456789abcdef
BASE="http://127.0.0.1:$VIGIL_PORT"

cat > "$DEMO/recorder.py" <<'PY'
import http.server, json, os, sys
port, log, demo = int(sys.argv[1]), sys.argv[2], sys.argv[3]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        mode = os.path.join(demo, "fail" + self.path.replace("/", "_"))
        status = 503 if os.path.exists(mode) else (202 if self.path == "/pd" else 200)
        try:
            j = json.loads(body)
        except ValueError:
            j = {}
        if self.path == "/pd":
            what = f'{j.get("event_action")} dedup_key={j.get("dedup_key")} severity={j.get("payload", {}).get("severity")}'
        elif self.path == "/slack":
            what = j.get("text")
        else:
            what = f'{j.get("type")} {j.get("data", {}).get("summary")}'
        with open(log, "a") as f:
            f.write(f'{self.path:7} -> {status}  {what}\n')
        self.send_response(status); self.end_headers(); self.wfile.write(b"{}")
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
python3 "$DEMO/recorder.py" "$HTTP_PORT" "$DEMO/http.log" "$DEMO" & RECORDER=$!
python3 -m aiosmtpd -n -l "127.0.0.1:$SMTP_PORT" -c aiosmtpd.handlers.Mailbox "$DEMO/mail" & SMTPD=$!

cat > "$DEMO/vigil.toml" <<EOF
listen = "127.0.0.1:$VIGIL_PORT"
database_url = "sqlite://$DEMO/vigil.db"
data_dir = "$DEMO/data"
rules_dir = "$DEMO/rules"
[alerts]
external_url = "$BASE"
[breaker]
open_secs = 10
[[receivers]]
name = "chat"
kind = "slack"
url = "http://127.0.0.1:$HTTP_PORT/slack"
[[receivers]]
name = "pager"
kind = "pagerduty"
url = "http://127.0.0.1:$HTTP_PORT/pd"
routing_key = "demo-routing-key"
[[receivers]]
name = "email"
kind = "email"
smtp_url = "smtp://127.0.0.1:$SMTP_PORT"
starttls = "opportunistic"              # the local aiosmtpd offers no STARTTLS; no credentials
from = "vigil@example.org"
to = ["secops@example.org"]
[[escalation]]
severity = "P1"
levels = [ { after = "20s", receivers = ["pager"] } ]
[[escalation]]
severity = "P2"
levels = [ { after = "1h", receivers = ["pager"] } ]
EOF
VIGIL_ADMIN_KEY=$KEY VIGIL_LOG=warn "$CARGO_TARGET_DIR/debug/vigil" serve --config "$DEMO/vigil.toml" & VIGIL=$!
trap 'kill $VIGIL $RECORDER $SMTPD 2>/dev/null; wait 2>/dev/null; rm -rf "$DEMO"' EXIT
for _ in $(seq 1 100); do curl -fs "$BASE/healthz" >/dev/null && break; sleep 0.2; done

api() { curl -fsS -H "Authorization: Bearer $KEY" -H 'content-type: application/json' "$@"; }
py() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }
burst() { # $1 = minutes after the first burst
    python3 -c "import json; t=1767600000000+$1*60000; print(json.dumps([{'category':'authentication','action':'login_failed','outcome':'failure','ip':'203.0.113.7','user_id':f'victim{i}','timestamp':t+i*1000} for i in range(6)]))" \
        | api -X POST "$BASE/v1/events" --data-binary @- >/dev/null
}
show() { echo; echo "== $1"; }

show "1. burst of 6 failed logins from 203.0.113.7"
burst 0; sleep 2
api "$BASE/v1/alerts?rule=brute_force&severity=P2" | py 'a=d["alerts"][0]; print("alert", a["id"], a["severity"], a["title"], "count", a["count"], "event_seqs", a["event_seqs"])'
P2=$(api "$BASE/v1/alerts?rule=brute_force&severity=P2" | py 'print(d["alerts"][0]["id"])')

show "2. nine more bursts, 6 minutes apart"
for k in 1 2 3 4 5 6 7 8 9; do burst $((k * 6)); done; sleep 2
api "$BASE/v1/alerts/$P2" | py 'print("alert", d["id"], "count", d["count"], "status", d["status"])'

show "3. acknowledged"
api -X POST "$BASE/v1/alerts/$P2/ack" -d '{"comment": "blocking the IP"}' | py 'print("alert", d["id"], d["status"], "by", d["acked_by"])'
sleep 1

show "4. the P1 (21 failures in an hour) is left unacknowledged: waiting 22 s"
P1=$(api "$BASE/v1/alerts?rule=brute_force&severity=P1" | py 'print(d["alerts"][0]["id"])')
sleep 22
api "$BASE/v1/alerts/$P1" | py 'print("alert", d["id"], "history", [c["action"] for c in d["history"]], "escalations", [e["status"] for e in d["escalations"]])'
api "$BASE/v1/alerts/$P2" | py 'print("alert", d["id"], "history", [c["action"] for c in d["history"]][-3:], "escalations", [e["status"] for e in d["escalations"]])'

show "4b. the P2 resolved"
api -X POST "$BASE/v1/alerts/$P2/resolve" -d '{"disposition": "true_positive", "comment": "IP blocked at the edge"}' | py 'print("alert", d["id"], d["status"], d["disposition"], "by", d["resolved_by"])'
sleep 1

show "5. chat fails (503): 6 manual P2 alerts"
touch "$DEMO/fail_slack"
for i in 1 2 3 4 5 6; do api -X POST "$BASE/v1/alerts" -d "{\"title\": \"manual incident $i\", \"severity\": \"P2\"}" >/dev/null; done
sleep 3
api "$BASE/v1/receivers" | py 'c=[r for r in d["receivers"] if r["name"]=="chat"][0]["circuit"]; print("chat circuit", c["state"], "failed", c["failed"], "last_error", c["last_error"])'
api "$BASE/v1/notifications?receiver=chat&status=pending" | py 'print("waiting in the outbox for chat:", len(d["notifications"]))'
rm "$DEMO/fail_slack"; echo "chat recovers; waiting 12 s"; sleep 12
api "$BASE/v1/receivers" | py 'c=[r for r in d["receivers"] if r["name"]=="chat"][0]["circuit"]; print("chat circuit", c["state"], "delivered", c["delivered"])'
api "$BASE/v1/notifications?receiver=chat&status=pending" | py 'print("waiting in the outbox for chat:", len(d["notifications"]))'

show "what the HTTP receivers got"
cat "$DEMO/http.log"
show "what the SMTP server got (subjects)"
grep -h '^Subject:' "$DEMO"/mail/new/* | sort | uniq -c
show "integrity"
api "$BASE/v1/integrity/verify" | py 'print(d["status"], "verified", d["verified"])'
