#!/usr/bin/env bash
# Decision-check latency: starts a release server on a fresh database with the example rules
# deployed, issues ACTIVE decisions, then measures GET /v1/decisions?scope=ip&value=... from
# CHECKERS connections for SECS seconds, first idle, then while the W1 load tool ingests at
# full speed (8 connections, batches of 500) beside it. Prints decision_check's report for
# both runs (checks, rate, p50, p90, p99, max).
# Usage: scripts/bench-decisions.sh sqlite|postgres [SECS] [ACTIVE] [CHECKERS]   (default 20 1000 2)
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${1:-sqlite}
secs=${2:-20}
active=${3:-1000}
checkers=${4:-2}
scripts/setup.sh $([[ $backend == postgres ]] && echo --postgres)
target=${CARGO_TARGET_DIR:-$(pwd)/target}
(cd rules && cargo build --release --target wasm32-unknown-unknown --target-dir "$target/wasm-rules/examples" -q)
rules_dir="$target/wasm-rules/examples/wasm32-unknown-unknown/release"
cargo build --release -q -p vigil-engine -p vigil-examples --bins --examples
work=$(mktemp -d /tmp/vigil-bench.XXXXXX)
key="vgl_bench_$(date +%s%N)"
port=$((20000 + RANDOM % 20000))
case $backend in
  sqlite) url="sqlite://$work/vigil.db" ;;
  postgres)
    db="vigil_bench_$(date +%s)"
    psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE $db"
    url="postgres://postgres@127.0.0.1:5432/$db" ;;
  *) echo "backend must be sqlite or postgres" >&2; exit 2 ;;
esac
printf 'data_dir = "%s"\n[decisions]\nmax_active = %d\n' "$work" $((active + 1000)) > "$work/vigil.toml"
VIGIL_ADMIN_KEY=$key VIGIL_LOG=warn "$target/release/vigil" serve --listen 127.0.0.1:$port \
  --database-url "$url" --rules-dir "$rules_dir" --config "$work/vigil.toml" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"; [[ $backend == postgres ]] && psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $db" || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
check() {
  "$target/release/examples/decision_check" --url "http://127.0.0.1:$port" --key "$key" \
    --active "$active" --connections "$checkers" --duration "$secs"
}
echo "== idle server, $active active decisions, $checkers checking connections, ${secs}s"
check
echo "== under W1 ingest load (load tool: 8 connections, batches of 500), same checks"
"$target/release/examples/load" --url "http://127.0.0.1:$port" --key "$key" --duration "$((secs + 4))" --no-alerts \
  > "$work/load.txt" 2>&1 &
load=$!
sleep 2
check
wait $load
echo "load tool: $(tail -1 "$work/load.txt")"
