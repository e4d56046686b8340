#!/usr/bin/env bash
# Cluster mode figures (docs/cluster.md): ingest events/s through 1, 2 or 3 nodes and the
# failover time of a node killed with kill -9. Starts a private 3-server NATS JetStream
# cluster on free ports, a fresh schema of the PostgreSQL at $PG (default the test
# database), and N `vigil serve` nodes from $VIGIL (default the debug build); runs the W1
# load tool ($LOAD) against every node at once with distinct seeds.
# Usage: scripts/cluster-bench.sh NODES EVENTS_PER_NODE
set -euo pipefail
NODES=${1:-3}
EVENTS=${2:-20000}
TARGET=${CARGO_TARGET_DIR:-target}
VIGIL=${VIGIL:-$TARGET/debug/vigil}
LOAD=${LOAD:-$TARGET/debug/examples/load}
PG=${PG:-postgres://postgres@127.0.0.1:5432/test}
KEY=vgl_cluster_bench_admin_key_0123456789
DIR=$(mktemp -d /tmp/vigil-cluster-bench.XXXXXX)
SCHEMA=bench_$(date +%s%N)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    PGOPTIONS=--client-min-messages=warning psql "$PG" -qc "DO \$\$ DECLARE s text; BEGIN FOR s IN SELECT nspname FROM pg_namespace WHERE nspname LIKE '${SCHEMA}%' LOOP EXECUTE format('DROP SCHEMA %I CASCADE', s); END LOOP; END \$\$" || true
    rm -rf "$DIR"
}
trap cleanup EXIT
NP=(); RP=()
for i in 0 1 2; do NP+=("$(free_port)"); RP+=("$(free_port)"); done
for i in 0 1 2; do
    routes=""
    for j in 0 1 2; do [ "$j" = "$i" ] || routes="${routes:+$routes,}nats://127.0.0.1:${RP[$j]}"; done
    nats-server -js -a 127.0.0.1 -p "${NP[$i]}" -sd "$DIR/nats$i" --server_name "n$i" --cluster_name c \
        --cluster "nats://127.0.0.1:${RP[$i]}" --routes "$routes" >"$DIR/nats$i.log" 2>&1 &
    PIDS+=($!)
done
NATS="nats://127.0.0.1:${NP[0]},nats://127.0.0.1:${NP[1]},nats://127.0.0.1:${NP[2]}"
psql "$PG" -qc "CREATE SCHEMA $SCHEMA"
NODE_PIDS=(); URLS=()
for n in $(seq 1 "$NODES"); do
    port=$(free_port)
    mkdir -p "$DIR/node$n"
    # The nodes share node 1's secrets (docs/cluster.md).
    if [ "$n" != 1 ]; then cp -r "$DIR/node1/." "$DIR/node$n/"; rm -f "$DIR/node$n/anchor.json"; fi
    cat >"$DIR/node$n.toml" <<TOML
listen = "127.0.0.1:$port"
database_url = "$PG?options[search_path]=$SCHEMA"
data_dir = "$DIR/node$n"
[cluster]
nats_url = "$NATS"
partitions = 6
node_id = "node$n"
stream_replicas = 3
TOML
    VIGIL_ADMIN_KEY=$KEY VIGIL_LOG=warn "$VIGIL" serve --config "$DIR/node$n.toml" >"$DIR/node$n.log" 2>&1 &
    NODE_PIDS+=($!); PIDS+=($!)
    URLS+=("http://127.0.0.1:$port")
    for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done
done
# Wait until every partition is held by the node placement wants.
for _ in $(seq 1 150); do
    settled=$(curl -s -H "Authorization: Bearer $KEY" "${URLS[0]}/v1/cluster" | python3 -c "
import json,sys; v=json.load(sys.stdin); live=[n for n in v['nodes'] if n['live']]
print(int(len(live)==$NODES and all(p['live'] and p['owner']==p['desired'] for p in v['partitions'])))")
    [ "$settled" = 1 ] && break; sleep 0.2
done
echo "nodes=$NODES events_per_node=$EVENTS (debug build unless VIGIL says otherwise)"
wal_start=$(psql "$PG" -Atc "SELECT pg_current_wal_lsn()")
start=$(date +%s.%N)
LPIDS=()
for n in $(seq 1 "$NODES"); do
    "$LOAD" --url "${URLS[$((n-1))]}" --key "$KEY" --events "$EVENTS" --connections 4 --batch 500 --seed "$n" \
        --no-alerts --server-pid "${NODE_PIDS[$((n-1))]}" >"$DIR/load$n.out" 2>&1 &
    LPIDS+=($!)
done
for p in "${LPIDS[@]}"; do wait "$p"; done
end=$(date +%s.%N)
grep -h SUMMARY "$DIR"/load*.out
python3 -c "print('total_events_per_sec=%.0f' % ($NODES*$EVENTS/($end-$start)))"
# What the model of more nodes rests on: PostgreSQL's WAL and JetStream's bytes per event
# (the whole database's WAL over the load: run it on a quiet PostgreSQL).
wal=$(psql "$PG" -Atc "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '$wal_start')")
python3 -c "print('wal_bytes_per_event=%.0f' % ($wal/($NODES*$EVENTS)))"
curl -s -H "Authorization: Bearer $KEY" "${URLS[0]}/v1/cluster" | python3 -c "
import json,sys; s=json.load(sys.stdin).get('stream') or {}
m=s.get('messages') or 0; b=s.get('bytes') or 0
print('stream_messages=%s stream_bytes=%s stream_bytes_per_event=%.0f' % (m, b, b/($NODES*$EVENTS)))"
for n in $(seq 1 "$NODES"); do
    python3 -c "import os; f=open('/proc/${NODE_PIDS[$((n-1))]}/stat').read().rsplit(')',1)[1].split(); t=os.sysconf('SC_CLK_TCK'); print('node$n cpu_secs=%.2f' % ((int(f[11])+int(f[12]))/t))"
done
if [ "$NODES" -ge 2 ]; then
    victim=${NODE_PIDS[$((NODES-1))]}
    killed=$(date +%s.%N)
    kill -9 "$victim"
    for _ in $(seq 1 600); do
        moved=$(curl -s -H "Authorization: Bearer $KEY" "${URLS[0]}/v1/cluster" | python3 -c "
import json,sys; v=json.load(sys.stdin)
slots=v.get('detection',{}).get('slots',[])
print(int(all(p['live'] and p['owner']==p['desired'] and p['owner']!='node$NODES' for p in v['partitions']+slots)))")
        [ "$moved" = 1 ] && break; sleep 0.05
    done
    python3 -c "import time; print('failover_secs=%.2f (kill -9 to every partition and detection slot held elsewhere)' % (time.time()-$killed))"
fi
