#!/usr/bin/env bash
# Two builds of larder side by side, interleaved in one run: the KV get/put and object
# write figures of docs/benchmarks.md, to show a change costs nothing (or what it costs).
#
# Usage:
#   BEFORE=/path/to/old/larder AFTER=target/release/larder deploy/bench/before-after.sh
#
# Each round runs, for BEFORE then AFTER (the order alternates every round, so neither
# build always goes first on a warmer machine):
#   - one node (`larder dev --nodes 1`): KV get with 1 and 50 in flight, durable put
#     with 16 and 64 in flight;
#   - four nodes in one region (`larder dev --nodes 4 --regions eu-west`): object write
#     (`add`, majority-replicated) with 1 in flight on one object, and 50 in flight over
#     100 objects.
# Every cluster starts on free ports with fresh data and is stopped after its runs. One
# JSON line per run on stdout: {...larder bench's fields, "build", "round", "bench"}; the
# table for docs/benchmarks.md comes from `deploy/bench/before-after-table.py < runs.jsonl`.
#
# Environment: BEFORE, AFTER (required), ROUNDS (default 3, at most 10), DURATION
# (default 5s per run).
set -euo pipefail

before=${BEFORE:?BEFORE=path of the old larder binary}
after=${AFTER:?AFTER=path of the new larder binary}
rounds=${ROUNDS:-3}
duration=${DURATION:-5s}
for bin in "$before" "$after"; do
    [[ -x $bin ]] || { echo "$bin is not an executable" >&2; exit 1; }
done
if ! [[ $rounds =~ ^[0-9]+$ ]] || ((rounds < 1 || rounds > 10)); then
    echo "ROUNDS must be 1..10" >&2
    exit 2
fi

root=$(mktemp -d -t larder-before-after-XXXXXX)
pid=""
stop() {
    if [[ -n $pid ]]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        pid=""
    fi
}
trap 'stop; rm -rf "$root"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A base port with `span` free ports after it.
free_base() {
    python3 "$(dirname "${BASH_SOURCE[0]}")/free-ports.py" "$1"
}

# Starts `bin dev` with `nodes` nodes and waits until every node is up; sets `api`.
start() {
    local bin=$1 nodes=$2
    local base
    base=$(free_base $((nodes * 10)))
    api="127.0.0.1:$base"
    rm -rf "$root/data"
    "$bin" dev --nodes "$nodes" --regions eu-west --base-port "$base" --data-dir "$root/data" \
        >"$root/dev.log" 2>&1 &
    pid=$!
    for ((t = 0; t < 300; t++)); do
        if status=$("$bin" --endpoint "$api" --json status 2>/dev/null) &&
            python3 -c '
import json, sys
nodes = json.loads(sys.argv[1]).get("nodes", [])
sys.exit(0 if len(nodes) == int(sys.argv[2]) and all(n.get("status") == "up" for n in nodes) else 1)
' "$status" "$nodes"; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "cluster of $nodes did not come up; log:" >&2
    tail -n 30 "$root/dev.log" >&2
    exit 1
}

# Runs one `larder bench` and prints its JSON tagged with the build, round and name.
bench() {
    local build=$1 round=$2 name=$3 bin=$4
    shift 4
    "$bin" --endpoint "$api" --json bench "$@" --duration "$duration" |
        python3 -c '
import json, sys
out = json.loads(sys.stdin.read())
# The run name goes last so that it replaces the bench field of larder bench ("kv get").
print(json.dumps({**out, "build": sys.argv[1], "round": int(sys.argv[2]), "bench": sys.argv[3]}))
' "$build" "$round" "$name"
}

measure() {
    local build=$1 bin=$2 round=$3
    start "$bin" 1
    bench "$build" "$round" get-1 "$bin" kv --op get --concurrency 1 --channels 1
    bench "$build" "$round" get-50 "$bin" kv --op get --concurrency 50 --channels 4
    bench "$build" "$round" put-16 "$bin" kv --op put --concurrency 16 --channels 4
    bench "$build" "$round" put-64 "$bin" kv --op put --concurrency 64 --channels 4
    stop
    start "$bin" 4
    bench "$build" "$round" object-write-1 "$bin" object --op write --concurrency 1 --objects 1 --channels 1
    bench "$build" "$round" object-write-50x100 "$bin" object --op write --concurrency 50 --objects 100
    stop
}

for ((r = 1; r <= rounds; r++)); do
    if ((r % 2)); then
        measure before "$before" "$r"
        measure after "$after" "$r"
    else
        measure after "$after" "$r"
        measure before "$before" "$r"
    fi
done
