#!/usr/bin/env bash
# Larder's replicated object write next to a 3-member etcd cluster's put, in one run on
# one machine: the figures of docs/benchmarks.md ("Objects").
#
# Usage (from anywhere; builds nothing):
#   cargo build --release -p larder-cli
#   deploy/bench/objects-vs-etcd.sh
#
# Starts `larder dev --nodes 4 --regions eu-west` on free ports (every object has three
# replicas; a write waits for the owner's durable copy and one more) and a 3-member etcd
# cluster (deploy/bench/etcd3.sh: WAL fsync per commit, etcd's defaults). With both
# running, measures one after the other, ROUNDS times (default 1, at most 10):
#   1. `larder bench object --op write` at node 1, which owns the object (created there);
#   2. `larder bench etcd-put` at the etcd leader;
# each with one request in flight on one channel for DURATION (default 10s), printing
# one JSON line per run (on stderr: the etcd leader's WAL fsyncs during each etcd run,
# then the objects' placements). Everything started is stopped and removed on exit.
#
# Environment: LARDER (default target/release/larder), DURATION, ROUNDS, and LAYOUT:
#   dev (default)  the 4 nodes of `larder dev` in one process;
#   processes      3 `larder serve` processes, all directory voters in one region, every
#                  object on all three: the shape of the 3-member etcd cluster (one node
#                  per process, as a PoP runs it).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
larder=${LARDER:-$repo/target/release/larder}
duration=${DURATION:-10s}
rounds=${ROUNDS:-1}
layout=${LAYOUT:-dev}
case $layout in
dev) NODES=4 ;;
processes) NODES=3 ;;
*) echo "LAYOUT must be dev or processes" >&2; exit 2 ;;
esac
PORT_STRIDE=10   # larder dev: node i listens on base + 10·(i−1) (+1 peer, +2 metrics)

command -v curl >/dev/null || { echo "curl is missing" >&2; exit 1; }
[[ -x $larder ]] || { echo "$larder missing: cargo build --release -p larder-cli" >&2; exit 1; }
if ! [[ $rounds =~ ^[0-9]+$ ]] || ((rounds < 1 || rounds > 10)); then
    echo "ROUNDS must be 1..10" >&2
    exit 2
fi

root=$(mktemp -d -t larder-vs-etcd-XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$root"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A base port whose whole range (NODES × PORT_STRIDE ports) is free right now.
base=$(python3 "$(dirname "${BASH_SOURCE[0]}")/free-ports.py" $((NODES * PORT_STRIDE)))
api="127.0.0.1:$base"

if [[ $layout == dev ]]; then
    "$larder" dev --nodes "$NODES" --regions eu-west --base-port "$base" --data-dir "$root/larder" \
        >"$root/dev.log" 2>&1 &
    pids+=($!)
else
    voters=()
    for ((i = 1; i <= NODES; i++)); do
        voters+=(--initial-voter "$i@127.0.0.1:$((base + PORT_STRIDE * (i - 1) + 1))")
    done
    for ((i = 1; i <= NODES; i++)); do
        port=$((base + PORT_STRIDE * (i - 1)))
        mkdir -p "$root/larder/node-$i"
        "$larder" serve --node-id "$i" --region eu-west --jurisdiction eu \
            --data-dir "$root/larder/node-$i" --api-listen "127.0.0.1:$port" \
            --peer-listen "127.0.0.1:$((port + 1))" --metrics-listen "127.0.0.1:$((port + 2))" \
            "${voters[@]}" >>"$root/dev.log" 2>&1 &
        pids+=($!)
    done
fi

# Healthy: every node answers and the directory sees all of them up.
ready=false
for ((t = 0; t < 300; t++)); do
    if status=$("$larder" --endpoint "$api" --json status 2>/dev/null) &&
        python3 -c '
import json, sys
s = json.loads(sys.argv[1])
nodes = s.get("nodes", [])
sys.exit(0 if len(nodes) == '"$NODES"' and all(n.get("status") == "up" for n in nodes) else 1)
' "$status"; then
        ready=true
        break
    fi
    kill -0 "${pids[0]}" 2>/dev/null || break
    sleep 0.1
done
if ! $ready; then
    echo "larder cluster not healthy; log:" >&2
    tail -n 30 "$root/dev.log" >&2
    exit 1
fi
echo "larder $("$larder" --version | awk '{print $2}'): $layout cluster of $NODES nodes at $api.." \
    "(region eu-west, data: $root/larder)" >&2

# The measurements, run by etcd3.sh once its cluster is up (it sets ETCD_LEADER).
cat >"$root/pair.sh" <<'EOF'
set -euo pipefail
# WAL fsyncs the etcd leader has done (its Prometheus counter).
fsyncs() {
    curl -fsS "http://$ETCD_LEADER/metrics" |
        awk '$1 == "etcd_disk_wal_fsync_duration_seconds_count" { print $2 }'
}
for ((r = 1; r <= ROUNDS; r++)); do
    "$LARDER_BIN" --endpoint "$LARDER_API" --json bench object --op write \
        --concurrency 1 --objects 1 --channels 1 --duration "$DURATION"
    before=$(fsyncs)
    "$LARDER_BIN" --json bench etcd-put --endpoints "$ETCD_LEADER" \
        --concurrency 1 --channels 1 --duration "$DURATION"
    echo "etcd leader: $(($(fsyncs) - before)) WAL fsyncs during that run (warm-up put included)" >&2
done
EOF
export LARDER_BIN=$larder LARDER_API=$api DURATION=$duration ROUNDS=$rounds
"$repo/deploy/bench/etcd3.sh" run -- bash "$root/pair.sh"
# Where the benchmarked objects live (owner, replicas), for the record.
"$larder" --endpoint "$api" object list bench-objects >&2
