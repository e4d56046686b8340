#!/usr/bin/env bash
# Automated response end to end (about a minute after the build): a release server on a
# fresh SQLite database with the example rules, the example bouncer's demo app in front of
# it (fail-closed, client IP from X-Forwarded-For), a brute-force burst from 203.0.113.7,
# then what the bouncer answers, a person lifting the block, and the chain's record.
# Usage: scripts/demo-decisions.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
T=${CARGO_TARGET_DIR:-$(pwd)/target}
(cd rules && cargo build --release --target wasm32-unknown-unknown --target-dir "$T/wasm-rules/examples" -q)
cargo build --release -q -p vigil-engine --bin vigil
cargo build --release -q -p vigil-bouncer --example demo
work=$(mktemp -d /tmp/vigil-e2e.XXXXXX)
KEY=vgl_e2e_admin_key_0123456789abcdef
printf 'data_dir = "%s"\n' "$work" > "$work/vigil.toml"
VIGIL_ADMIN_KEY=$KEY VIGIL_LOG=error "$T/release/vigil" serve --listen 127.0.0.1:18080 \
  --database-url "sqlite://$work/vigil.db" --rules-dir "$T/wasm-rules/examples/wasm32-unknown-unknown/release" --config "$work/vigil.toml" &
srv=$!
demo=
trap 'kill $srv $demo 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -sf http://127.0.0.1:18080/readyz >/dev/null && break; sleep 0.1; done
echo "$ vigil keys create --name demo-bouncer --role bouncer"
BOUNCER=$("$T/release/vigil" keys create --name demo-bouncer --role bouncer --url http://127.0.0.1:18080 --key $KEY --output json | python3 -c 'import json,sys;print(json.load(sys.stdin)["key"])')
echo "bouncer key created (role bouncer)"
VIGIL_URL=http://127.0.0.1:18080 VIGIL_BOUNCER_KEY=$BOUNCER BOUNCER_FAIL_MODE=closed BOUNCER_TRUST_FORWARDED_FOR=1 BIND=127.0.0.1:18081 "$T/release/examples/demo" >/dev/null 2>&1 &
demo=$!
for _ in $(seq 100); do c=$(curl -s -o /dev/null -w '%{http_code}' -H 'X-Forwarded-For: 198.51.100.1' http://127.0.0.1:18081/ || true); [[ $c == 200 ]] && break; sleep 0.1; done
echo "before: attacker -> $(curl -s -o /dev/null -w '%{http_code}' -H 'X-Forwarded-For: 203.0.113.7' http://127.0.0.1:18081/)"
now=$(($(date +%s%3N) - 60000))
body=$(python3 -c "import json;print(json.dumps([{'category':'authentication','action':'login_failed','outcome':'failure','ip':'203.0.113.7','user_id':'u%d'%i,'timestamp':$now+i*1000} for i in range(21)]))")
echo "$ POST /v1/events  (21 failed logins from 203.0.113.7 within a minute)"
t0=$(date +%s%N)
curl -s -X POST http://127.0.0.1:18080/v1/events -H "Authorization: Bearer $KEY" -H 'content-type: application/json' -d "$body" | python3 -c 'import json,sys;print("stored", json.load(sys.stdin)["stored"])'
until curl -s -H "Authorization: Bearer $BOUNCER" 'http://127.0.0.1:18080/v1/decisions?scope=ip&value=203.0.113.7' | grep -q '"kind":"block"'; do sleep 0.005; done
t1=$(date +%s%N); echo "decision visible to a check $(( (t1 - t0) / 1000000 )) ms after the POST was sent"
echo "$ GET /v1/decisions?scope=ip&value=203.0.113.7   (bouncer key)"
curl -s -H "Authorization: Bearer $BOUNCER" 'http://127.0.0.1:18080/v1/decisions?scope=ip&value=203.0.113.7' | python3 -c '
import json,sys
for d in json.load(sys.stdin)["decisions"]:
    print(d["id"], d["scope"], d["value"], d["kind"], "until", d["expires_at"], "by", d["actor"], "alert", d["alert_id"], "seqs", len(d["event_seqs"]), "-", d["reason"])'
until [[ $(curl -s -o /dev/null -w '%{http_code}' -H 'X-Forwarded-For: 203.0.113.7' http://127.0.0.1:18081/) == 403 ]]; do sleep 0.01; done
t2=$(date +%s%N); echo "bouncer turns the attacker away $(( (t2 - t0) / 1000000 )) ms after the POST"
echo "attacker -> $(curl -s -w ' %{http_code}' -H 'X-Forwarded-For: 203.0.113.7' http://127.0.0.1:18081/)"
echo "other IP -> $(curl -s -w ' %{http_code}' -H 'X-Forwarded-For: 198.51.100.1' http://127.0.0.1:18081/)"
echo "$ GET /v1/events (bouncer key) -> $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $BOUNCER" http://127.0.0.1:18080/v1/events)"
id=$(curl -s -H "Authorization: Bearer $KEY" 'http://127.0.0.1:18080/v1/decisions?scope=ip&value=203.0.113.7' | python3 -c 'import json,sys;print(json.load(sys.stdin)["decisions"][0]["id"])')
echo "$ DELETE /v1/decisions/$id  {\"reason\": \"pentest\"}"
curl -s -X DELETE "http://127.0.0.1:18080/v1/decisions/$id" -H "Authorization: Bearer $KEY" -H 'content-type: application/json' -d '{"reason":"pentest, agreed with the SOC"}' | python3 -c 'import json,sys;d=json.load(sys.stdin);print(d["status"], d["ended_by"], d["end_reason"])'
until [[ $(curl -s -o /dev/null -w '%{http_code}' -H 'X-Forwarded-For: 203.0.113.7' http://127.0.0.1:18081/) == 200 ]]; do sleep 0.01; done
echo "after the lift: attacker -> 200"
echo "$ GET /v1/events?category=response  (the chain's record)"
curl -s -H "Authorization: Bearer $KEY" 'http://127.0.0.1:18080/v1/events?category=response' | python3 -c '
import json,sys
for e in json.load(sys.stdin)["events"]:
    d=e["details"]; print(e["seq"], e["action"], "actor="+e["user_id"], "decision", d["decision_id"], d["scope"], d["value"], d["kind"], "rule_sha256="+str(d["rule_sha256"])[:12], "reason=", d["reason"])'
echo "verify: $(curl -s -H "Authorization: Bearer $KEY" http://127.0.0.1:18080/v1/integrity/verify | python3 -c 'import json,sys;d=json.load(sys.stdin);print(d["status"], d["verified"])')"
