#!/usr/bin/env bash
# Start-up replay benchmark: starts the release server on a data dir left by
# scripts/bench-growth.sh and times the rebuild of its rules' state (the replay of the stored
# events received within the rules' longest window), then stops it.
# Usage: scripts/bench-replay.sh DIR   (VIGIL_BIN: another server binary, for before/after)
# Prints: REPLAY events=.. wall_s=.. cpu_s=.. and the CPU seconds of each busy thread group.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?usage: scripts/bench-replay.sh DIR}
target=${CARGO_TARGET_DIR:-$(pwd)/target}
[[ -f $dir/admin.key && -f $dir/vigil.db ]] || { echo "no data dir of bench-growth.sh at $dir" >&2; exit 1; }
cargo build --release -q -p vigil-engine --bins
(cd rules && cargo build --release --target wasm32-unknown-unknown --target-dir "$target/wasm-rules/examples" -q)
rules_dir="$target/wasm-rules/examples/wasm32-unknown-unknown/release"
log=$(mktemp)
port=$((20000 + RANDOM % 20000))
t0=$(date +%s.%N)
VIGIL_ADMIN_KEY=$(cat "$dir/admin.key") VIGIL_LOG=info "${VIGIL_BIN:-$target/release/vigil}" serve \
  --listen 127.0.0.1:$port --database-url "sqlite://$dir/vigil.db" --rules-dir "$rules_dir" \
  --config "$dir/vigil.toml" > "$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true; rm -f "$log"' EXIT
until grep -q "Rule state rebuilt\|Rule state replay failed" "$log"; do
  kill -0 $server 2>/dev/null || { echo "the server stopped:" >&2; tail -5 "$log" >&2; exit 1; }
  sleep 0.1
done
t1=$(date +%s.%N)
tck=$(getconf CLK_TCK)
threads=$(for t in /proc/$server/task/*; do echo "$(cat "$t/comm") $(awk '{print $14 + $15}' "$t/stat")"; done |
  awk -v t="$tck" '{ a[$1] += $2 } END { for (k in a) if (a[k] >= t / 10) printf " %s=%.1f", k, a[k] / t }')
events=$(grep 'Rule state rebuilt' "$log" | grep -o 'events=[0-9]*' | head -1 | cut -d= -f2)
awk -v a="$t0" -v b="$t1" -v c="$(awk '{print $14 + $15}' /proc/$server/stat)" -v t="$tck" -v e="${events:-0}" \
  'BEGIN { printf "REPLAY events=%d wall_s=%.1f cpu_s=%.1f", e, b - a, c / t }'
echo " threads:$threads"
