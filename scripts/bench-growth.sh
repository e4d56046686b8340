#!/usr/bin/env bash
# Growth benchmark: one release server on a SQLite data dir that is kept between runs (so a
# database can be seeded to millions of events once and measured again), the load tool
# against it, and what the server holds before and after.
# Usage: scripts/bench-growth.sh DIR [load tool args, e.g. --events 1000000 --seed 1 --no-alerts]
#   DIR is created when missing (a fresh database) and kept; delete it when done.
# Prints the load tool's report, then:
#   GROWTH events_before=.. events_after=.. idle_rss_mb=.. after_rss_mb=.. cpu_us_per_event=..
#   BUFFERS (high-water marks and SQLite/rule-state bytes, from /metrics)
#   RULE name seconds_per_event=.. alerts_total=.. alerts_rate_limited_total=.. (each rule)
#   LOOKUP field=value median_ms=.. (GET /v1/events?<field>=<value>, 15 calls each, after the load)
# VIGIL_BENCH_CONFIG: TOML appended to the server's config; VIGIL_GROWTH_LOOKUPS=0 skips lookups;
# VIGIL_BIN: another server binary (a copy of an earlier build, for before/after pairs).
# The load starts once detection has caught up with the stored log (vigil_detection_lag_events 0).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:?usage: scripts/bench-growth.sh DIR [load args]}; shift
target=${CARGO_TARGET_DIR:-$(pwd)/target}
cargo build --release -q -p vigil-engine -p vigil-examples --bins --examples
(cd rules && cargo build --release --target wasm32-unknown-unknown --target-dir "$target/wasm-rules/examples" -q)
rules_dir="$target/wasm-rules/examples/wasm32-unknown-unknown/release"
mkdir -p "$dir"
[[ -f $dir/admin.key ]] || echo "vgl_growth_$(date +%s%N)" > "$dir/admin.key"
key=$(cat "$dir/admin.key")
port=$((20000 + RANDOM % 20000))
cat > "$dir/vigil.toml" <<TOML
data_dir = "$dir"
${VIGIL_BENCH_CONFIG:-}
TOML
VIGIL_ADMIN_KEY=$key VIGIL_LOG=warn "${VIGIL_BIN:-$target/release/vigil}" serve --listen 127.0.0.1:$port \
  --database-url "sqlite://$dir/vigil.db" --rules-dir "$rules_dir" --config "$dir/vigil.toml" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 1 1200); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
head_seq() { curl -sf "http://127.0.0.1:$port/metrics" | awk '/^vigil_log_head_seq / {print $2}'; }
rss() { awk '/^VmRSS:/ {print int($2 / 1024)}' /proc/$server/status; }
sleep 1
# A restarted server first rebuilds its rules' state by replaying the stored events of their
# longest window (all of a log loaded within the last day: 10M events take a minute or
# more), and evaluates any backlog left by the last load: wait for both, then for the
# server to be idle, so the load's CPU and rate are the load's own. (A build without the
# replay gauge counts as done there; the idle wait still covers its replay.)
lag() { curl -sf "http://127.0.0.1:$port/metrics" | awk '/^vigil_detection_(lag|replay_pending)_events / {n += $2} END {print int(n)}'; }
for _ in $(seq 1 1800); do [[ "$(lag)" == 0 ]] && break; sleep 1; done
busy() { local a b; a=$(awk '{print $14 + $15}' /proc/$server/stat); sleep 2; b=$(awk '{print $14 + $15}' /proc/$server/stat)
  (( b - a > $(getconf CLK_TCK) / 10 )); }
for _ in $(seq 1 900); do busy || break; done
before=$(head_seq); idle_rss=$(rss)
server_cpu() { awk '{print $14 + $15}' /proc/$server/stat; }
cpu0=$(server_cpu)
report=$(mktemp)
"$target/release/examples/load" --url "http://127.0.0.1:$port" --key "$key" --server-pid $server "$@" | tee "$report"
cpu1=$(server_cpu)
stored=$(grep -o 'stored=[0-9]*' "$report" | tail -1 | cut -d= -f2)
rm -f "$report"
sleep 5
after=$(head_seq); after_rss=$(rss)
awk -v s="$((cpu1 - cpu0))" -v t="$(getconf CLK_TCK)" -v n="${stored:-0}" 'BEGIN { n = (n > 0) ? n : 1
  printf "cpu_us_per_event=%.1f\n", s / t * 1e6 / n }' | sed "s/^/GROWTH events_before=$before events_after=$after idle_rss_mb=$idle_rss after_rss_mb=$after_rss /"
curl -sf "http://127.0.0.1:$port/metrics" | awk '
  /^vigil_(detection_queue_(events|bytes)_max|sequencer_group_events_max|http_inflight_(body|parsed)_bytes_max|sqlite_memory_bytes(_max)?) / { printf "%s=%s ", $1, $2 }
  /^vigil_rule_state_bytes\{/ { state += $2 }
  /^vigil_rule_state_keys\{/ { keys += $2 }
  END { printf "vigil_rule_state_bytes_sum=%d vigil_rule_state_keys_sum=%d\n", state, keys }' | sed 's/^/BUFFERS /'
# Per rule: mean evaluation time per offered event (since start), alerts raised and alerts
# dropped by the per-rule rate limit.
curl -sf "http://127.0.0.1:$port/metrics" | awk '
  match($0, /^vigil_rule_(seconds_per_event|alerts_total|alerts_rate_limited_total)\{rule="[^"]*"/) {
    split($0, a, "\""); name = $1; sub(/\{.*/, "", name); sub(/^vigil_rule_/, "", name)
    v[a[2]] = v[a[2]] " " name "=" $2 }
  END { for (r in v) printf "RULE %s%s\n", r, v[r] }' | sort
if [[ ${VIGIL_GROWTH_LOOKUPS:-1} != 0 ]]; then
  # A frequent user (of W1's 20,000), its address, an organization, and values stored nowhere
  # (every block is probed for them).
  for q in user_id=usr_000042 ip=100.64.0.42 organization_id=org_0042 user_id=usr_none ip=192.0.2.99; do
    for _ in $(seq 1 15); do
      curl -s -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $key" "http://127.0.0.1:$port/v1/events?$q&limit=100"
    done | sort -n | awk -v q="$q" '{ a[NR] = $1 } END { printf "LOOKUP %s median_ms=%.2f min_ms=%.2f max_ms=%.2f\n", q, a[int((NR + 1) / 2)] * 1000, a[1] * 1000, a[NR] * 1000 }'
  done
fi
