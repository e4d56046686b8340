#!/usr/bin/env bash
# W1 ingest benchmark: starts a release server on a fresh database with the example rules
# deployed, runs the load tool against it, prints the load tool's report.
# Usage: scripts/bench-ingest.sh sqlite|postgres [load tool args, e.g. --events 200000]
# VIGIL_BENCH_CONFIG: TOML appended to the server's config (e.g. $'[store]\nmax_group_events = 2000').
# VIGIL_BENCH_RULES=sigma: the peer's seven Sigma rules (scripts/peer/sigma, one deployment)
# instead of the Rust example rules.
# VIGIL_BENCH_NO_BUILD=1: run the binaries already in $CARGO_TARGET_DIR/release as they are
# (to compare two builds: copy one build's `vigil` and `examples/load` into a directory's
# release/, and point CARGO_TARGET_DIR at it).
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${1:-sqlite}; shift || true
scripts/setup.sh $([[ $backend == postgres ]] && echo --postgres)
target=${CARGO_TARGET_DIR:-$(pwd)/target}
[[ -n ${VIGIL_BENCH_NO_BUILD:-} ]] || cargo build --release -q -p vigil-engine -p vigil-examples --bins --examples
work=$(mktemp -d /tmp/vigil-bench.XXXXXX)
if [[ ${VIGIL_BENCH_RULES:-} == sigma ]]; then
  rules_dir="$work/rules"
  mkdir -p "$rules_dir"
  for f in scripts/peer/sigma/*.yml; do cat "$f"; echo "---"; done | sed '$d' > "$rules_dir/peer.yml"
else
  (cd rules && cargo build --release --target wasm32-unknown-unknown --target-dir "$target/wasm-rules/examples" -q)
  rules_dir="$target/wasm-rules/examples/wasm32-unknown-unknown/release"
fi
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
cat > "$work/vigil.toml" <<TOML
data_dir = "$work"
${VIGIL_BENCH_CONFIG:-}
TOML
VIGIL_ADMIN_KEY=$key VIGIL_LOG=warn "$target/release/vigil" serve --listen 127.0.0.1:$port \
  --database-url "$url" --rules-dir "$rules_dir" --config "$work/vigil.toml" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"; [[ $backend == postgres ]] && psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $db" || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
if [[ -n ${VIGIL_BENCH_PERF:-} ]]; then
  # Profile the server during the run: VIGIL_BENCH_PERF=/tmp/perf.data scripts/bench-ingest.sh ...
  perf record -F 999 -g -p $server -o "$VIGIL_BENCH_PERF" 2>/dev/null &
  perf_pid=$!
fi
# Idle memory of the server (rules compiled, nothing ingested yet), its CPU over the load,
# and the load tool's own CPU (it shares the machine): printed after the load tool's report.
sleep 1
idle_rss=$(awk '/^VmRSS:/ {print int($2 / 1024)}' /proc/$server/status)
server_cpu() { awk '{print $14 + $15}' /proc/$server/stat; }
cpu0=$(server_cpu)
report=$(mktemp)
if [[ -n ${VIGIL_BENCH_SMAPS:-} ]]; then
  # Keep /proc/PID/smaps of the moment RSS was highest (sampled every 0.5 s), to tell the
  # allocator's heap from SQLite's (libc) heap and the binary: VIGIL_BENCH_SMAPS=/tmp/peak.smaps
  (best=0; while kill -0 $server 2>/dev/null; do
     rss=$(awk '/^VmRSS:/ {print $2}' /proc/$server/status 2>/dev/null || echo 0)
     if (( rss > best )); then best=$rss; cat /proc/$server/smaps > "$VIGIL_BENCH_SMAPS.tmp" 2>/dev/null && mv "$VIGIL_BENCH_SMAPS.tmp" "$VIGIL_BENCH_SMAPS"; fi
     sleep 0.5; done) &
fi
/usr/bin/time -f "%U %S" -o "$work/driver.cpu" \
  "$target/release/examples/load" --url "http://127.0.0.1:$port" --key "$key" --server-pid $server "$@" | tee "$report"
cpu1=$(server_cpu)
# How full the bounded buffers ran (high-water marks since start) and what SQLite and the
# rules' state hold now, from /metrics.
curl -sf "http://127.0.0.1:$port/metrics" | awk '
  /^vigil_(detection_queue_(events|bytes)_max|sequencer_group_events_max|http_inflight_(body|parsed)_bytes_max|sqlite_memory_bytes(_max)?) / { printf "%s=%s ", $1, $2 }
  /^vigil_rule_state_bytes\{/ { state += $2 }
  END { printf "vigil_rule_state_bytes_sum=%d\n", state }' | sed 's/^/BUFFERS /' || true
stored=$(grep -o 'stored=[0-9]*' "$report" | tail -1 | cut -d= -f2)
rm -f "$report"
ticks=$(getconf CLK_TCK)
read -r du ds < "$work/driver.cpu"
awk -v s="$((cpu1 - cpu0))" -v t="$ticks" -v n="${stored:-0}" -v du="$du" -v ds="$ds" -v idle="$idle_rss" 'BEGIN {
  n = (n > 0) ? n : 1
  printf "SERVER idle_rss_mb=%d cpu_s=%.2f cpu_us_per_event=%.1f driver_cpu_s=%.2f driver_cpu_us_per_event=%.1f\n",
    idle, s / t, s / t * 1e6 / n, du + ds, (du + ds) * 1e6 / n }'
if [[ -n ${perf_pid:-} ]]; then kill -INT $perf_pid; wait $perf_pid 2>/dev/null || true; fi
