#!/usr/bin/env bash
# Server-level figures on a fresh release server with the example rules deployed:
#   W1 ingest (load tool), verify speed through the API, filtered GET /v1/events latency at
#   the stored volume, and PUT /v1/rules latency (fresh compile and cache hit).
# Usage: scripts/bench-server.sh sqlite|postgres [EVENTS]   (default 1000000 events)
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${1:-sqlite}
events=${2:-1000000}
scripts/setup.sh $([[ $backend == postgres ]] && echo --postgres)
target=${CARGO_TARGET_DIR:-$(pwd)/target}
(cd rules && cargo build --release --target wasm32-unknown-unknown --target-dir "$target/wasm-rules/examples" -q)
(cd tests/rules && cargo build --release --target wasm32-unknown-unknown --target-dir "$target/wasm-rules/bench" -q -p counter)
rules_dir="$target/wasm-rules/examples/wasm32-unknown-unknown/release"
cargo build --release -q -p vigil-engine -p vigil-examples --bins --examples
work=$(mktemp -d /tmp/vigil-bench.XXXXXX)
key="vgl_bench_$(date +%s%N)"
port=$((20000 + RANDOM % 20000))
base="http://127.0.0.1:$port"
case $backend in
  sqlite) url="sqlite://$work/vigil.db" ;;
  postgres)
    db="vigil_bench_$(date +%s)"
    psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE $db"
    url="postgres://postgres@127.0.0.1:5432/$db" ;;
  *) echo "backend must be sqlite or postgres" >&2; exit 2 ;;
esac
echo "data_dir = \"$work\"" > "$work/vigil.toml"
VIGIL_ADMIN_KEY=$key VIGIL_LOG=warn "$target/release/vigil" serve --listen 127.0.0.1:$port \
  --database-url "$url" --rules-dir "$rules_dir" --config "$work/vigil.toml" &
server=$!
cleanup() {
  kill $server 2>/dev/null; wait $server 2>/dev/null || true; rm -rf "$work"
  if [[ $backend == postgres ]]; then psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $db" || true; fi
}
trap cleanup EXIT
for _ in $(seq 1 100); do curl -sf "$base/readyz" >/dev/null && break; sleep 0.1; done
auth=(-H "Authorization: Bearer $key")

echo "== W1 ingest: $events events"
"$target/release/examples/load" --url "$base" --key "$key" --server-pid $server --events "$events" | tail -1

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
p95() { sort -n | awk '{a[NR]=$1} END {i=int(NR*0.95); if (i<1) i=1; print a[i]}'; }

echo "== verify through the server (whole log)"
for _ in 1 2 3; do
  curl -s -o "$work/verify.json" -w '%{time_total}\n' "${auth[@]}" "$base/v1/integrity/verify"
done | median | while read -r secs; do
  verified=$(python3 -c "import json;print(json.load(open('$work/verify.json'))['verified'])")
  status=$(python3 -c "import json;print(json.load(open('$work/verify.json'))['status'])")
  echo "verify status=$status verified=$verified median_secs=$secs events_per_sec=$(python3 -c "print(int($verified/$secs))")"
done

echo "== export (NDJSON, streamed) and offline verify of the file"
start=$(date +%s.%N)
curl -s "${auth[@]}" "$base/v1/events/export?format=ndjson" -o "$work/export.ndjson"
end=$(date +%s.%N)
lines=$(wc -l < "$work/export.ndjson")
echo "export lines=$lines bytes=$(stat -c %s "$work/export.ndjson") secs=$(python3 -c "print(round($end-$start,2))") events_per_sec=$(python3 -c "print(int(($lines)/($end-$start)))")"
pub=$("$target/release/vigil" keys checkpoint-public --data-dir "$work" 2>/dev/null)
for _ in 1 2 3; do
  start=$(date +%s.%N)
  "$target/release/vigil" verify --file "$work/export.ndjson" --public-key "$pub" --json > "$work/offline.json" || true
  end=$(date +%s.%N)
  python3 -c "print($end-$start)"
done | median | while read -r secs; do
  verified=$(python3 -c "import json;print(json.load(open('$work/offline.json'))['verified'])")
  status=$(python3 -c "import json;print(json.load(open('$work/offline.json'))['status'])")
  echo "offline verify status=$status verified=$verified median_secs=$secs events_per_sec=$(python3 -c "print(int($verified/$secs))")"
done
rm -f "$work/export.ndjson"

echo "== filtered GET /v1/events (limit 50) at the stored volume"
filters=("user_id=user-00042" "ip=203.0.113.66" "action=permission_denied" "category=data_access&outcome=success"
         "organization_id=org-007&action=login_success" "severity=high" "request_id=req-w1-42-123456"
         "since=2025-01-07T10:05:00Z&until=2025-01-07T10:06:00Z" "outcome=failure&category=authentication" "category=financial_operation")
for round in $(seq 1 20); do
  for f in "${filters[@]}"; do
    curl -s -o /dev/null -w '%{time_total}\n' "${auth[@]}" "$base/v1/events?$f&limit=50"
  done
done > "$work/query.txt"
echo "query requests=$(wc -l < "$work/query.txt") p50_ms=$(median < "$work/query.txt" | awk '{print $1*1000}') p95_ms=$(p95 < "$work/query.txt" | awk '{print $1*1000}')"
for f in "${filters[@]}"; do
  printf '  %-50s %s ms\n' "$f" "$(for _ in 1 2 3; do curl -s -o /dev/null -w '%{time_total}\n' "${auth[@]}" "$base/v1/events?$f&limit=50"; done | median | awk '{print $1*1000}')"
done

echo "== PUT /v1/rules: fresh compile (each module first time) and cache hit (same bytes again)"
put() { curl -s -o /dev/null -w '%{time_total}\n' -X PUT "${auth[@]}" -H 'content-type: application/wasm' --data-binary @"$2" "$base/v1/rules/$1"; }
# The server already compiled the example rules at start; the counter test rule is new.
counter="$target/wasm-rules/bench/wasm32-unknown-unknown/release/counter.wasm"
fresh=$(put counter "$counter")
for _ in $(seq 1 20); do put counter "$counter"; done > "$work/hit.txt"
echo "put fresh_compile_ms=$(awk '{print $1*1000}' <<< "$fresh") cache_hit_median_ms=$(median < "$work/hit.txt" | awk '{print $1*1000}')"
# Fresh compiles of several different small modules: rename the wasm's custom section? Simplest:
# delete and redeploy the example rules after clearing is not possible (cache by SHA-256), so
# compile each example rule under a test server that has not seen it: see BENCHMARKS.md.
echo "server peak RSS: $(grep VmHWM /proc/$server/status | awk '{print $2/1024 " MB"}')"
