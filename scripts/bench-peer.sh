#!/usr/bin/env bash
# Side by side in one run: Vigil (release, SQLite, example rules, storing + chaining +
# detecting) and rsigma's HTTP daemon (detecting only) fed the same W1 events by the same
# load tool (8 connections, batches of 500). rsigma is timed until its
# rsigma_events_processed_total metric reaches the number of events sent.
# Needs rsigma 0.23: `cargo install rsigma@0.23.0 --locked` (or RSIGMA=/path/to/rsigma).
# Usage: scripts/bench-peer.sh [EVENTS]   (default 200000)
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-200000}
rsigma=${RSIGMA:-$(command -v rsigma || echo "$HOME/.cargo/bin/rsigma")}
[[ -x $rsigma ]] || { echo "rsigma not found: cargo install rsigma@0.23.0 --locked (or set RSIGMA)" >&2; exit 2; }
target=${CARGO_TARGET_DIR:-$(pwd)/target}
echo "== Vigil"
vigil_line=$(scripts/bench-ingest.sh sqlite --events "$events" 2>/dev/null | grep '^SUMMARY')
echo "$vigil_line"
echo "== rsigma"
work=$(mktemp -d /tmp/vigil-peer.XXXXXX)
port=$((20000 + RANDOM % 20000))
"$rsigma" engine daemon -r scripts/peer/sigma/ --input http --api-addr 127.0.0.1:$port \
  --output "file://$work/detections.ndjson" --timestamp-field timestamp \
  --batch-size 500 --buffer-size 100000 >"$work/rsigma.log" 2>&1 &
peer=$!
trap 'kill $peer 2>/dev/null; wait $peer 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/metrics" >/dev/null && break; sleep 0.1; done
peer_line=$("$target/release/examples/load" --rsigma --url "http://127.0.0.1:$port" --events "$events" | grep '^PEER')
echo "$peer_line"
v=$(sed -n 's/.*events_per_sec=\([0-9]*\).*/\1/p' <<<"$vigil_line")
p=$(sed -n 's/.*events_per_sec=\([0-9]*\).*/\1/p' <<<"$peer_line")
echo "RATIO vigil_events_per_sec=$v rsigma_events_per_sec=$p vigil_over_rsigma=$(awk "BEGIN {printf \"%.2f\", $v / $p}")"
