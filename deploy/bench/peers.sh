#!/usr/bin/env bash
# Larder next to Redis and etcd, interleaved in one run on one machine: the side-by-side
# table of issue #15 (docs/benchmarks.md, "Against Redis and etcd").
#
# Usage (builds nothing):
#   cargo build --release -p larder-cli
#   deploy/bench/peers.sh > runs.jsonl      # the table goes to stderr at the end
#
# Installs what is missing (Debian, as root): redis-server, redis-tools, etcd-server,
# etcd-client. Starts side by side, each on free ports with fresh data: redis-server
# without persistence, a single etcd member and a 3-member etcd cluster
# (deploy/bench/etcd3.sh: etcd's defaults, WAL fdatasync on every commit),
# `larder dev --nodes 1` and `larder dev --nodes 4 --regions eu-west`. Then, ROUNDS times
# (default 3, at most 10), every scenario runs the peer and Larder one after the other,
# the order alternating by round:
#   get-1    Redis GET, 1 client                | Larder KV get, 1 in flight, 1 channel
#   get-50   Redis GET, 50 clients              | Larder KV get, 50 in flight, 4 channels
#   put-16   etcd (1 member) put, 16 in flight  | Larder durable KV put, 16 in flight
#   put-64   etcd (1 member) put, 64 in flight  | Larder durable KV put, 64 in flight
#   write-1  etcd (3 members) put at the leader, 1 in flight
#                                               | Larder object write (majority of 3
#                                                 copies), 1 in flight, one object
# Puts write a fresh value each time (sled skips a write of an unchanged value); Redis
# and Larder read keys written before the run. One JSON line per run on stdout:
# {scenario, system, round, ops_per_sec, p50_ms, p99_ms}; then the table of medians
# and Larder/peer ratios on stderr.
#
# Environment: LARDER (default target/release/larder), ROUNDS, DURATION (default 5s per
# Larder and etcd run; Redis runs a fixed request count of about that length).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
larder=${LARDER:-$repo/target/release/larder}
rounds=${ROUNDS:-3}
duration=${DURATION:-5s}

# Stage 1 and 2 start the two etcd clusters around this script (etcd3.sh tears each
# down when the command it runs ends); stage 3 measures.
case ${PEERS_STAGE:-1} in
1)
    [[ -x $larder ]] || { echo "$larder missing: cargo build --release -p larder-cli" >&2; exit 1; }
    if ! [[ $rounds =~ ^[0-9]+$ ]] || ((rounds < 1 || rounds > 10)); then
        echo "ROUNDS must be 1..10" >&2
        exit 2
    fi
    missing=()
    need() { command -v "$1" >/dev/null || missing+=("$2"); }
    need redis-server redis-server
    need redis-benchmark redis-tools
    need etcd etcd-server
    need etcdctl etcd-client
    need python3 python3
    if ((${#missing[@]})); then
        if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
            echo "missing ${missing[*]} (Debian packages): install them or run as root" >&2
            exit 1
        fi
        echo "peers.sh: installing ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        # Debian starts the packaged services: this run starts its own.
        systemctl stop redis-server etcd 2>/dev/null || true
    fi
    exec env MEMBERS=3 PEERS_STAGE=2 "$here/etcd3.sh" run -- "$0"
    ;;
2)
    exec env MEMBERS=1 PEERS_STAGE=3 PEERS_ETCD3_LEADER="$ETCD_LEADER" \
        "$here/etcd3.sh" run -- "$0"
    ;;
esac
etcd1=$ETCD_LEADER
etcd3=$PEERS_ETCD3_LEADER

root=$(mktemp -d -t larder-peers-XXXXXX)
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$root"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_base() { python3 "$here/free-ports.py" "$1"; }

redis_port=$(free_base 1)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$root" >"$root/redis.log" 2>&1 &
pids+=("$!")

# Starts `larder dev` with `nodes` nodes in one region and sets `api` once every node
# is up (not in a subshell: its pid must reach `pids` for the cleanup).
start_larder() {
    local nodes=$1 base
    base=$(free_base $((nodes * 10)))
    api="127.0.0.1:$base"
    "$larder" dev --nodes "$nodes" --regions eu-west --base-port "$base" \
        --data-dir "$root/larder-$nodes" >"$root/larder-$nodes.log" 2>&1 &
    pids+=("$!")
    for ((t = 0; t < 600; t++)); do
        if "$larder" --endpoint "$api" --json status 2>/dev/null | python3 -c "
import json, sys
n = json.load(sys.stdin).get('nodes', [])
sys.exit(0 if len(n) == $nodes and all(x.get('status') == 'up' for x in n) else 1)"; then
            return
        fi
        sleep 0.1
    done
    echo "larder dev --nodes $nodes did not come up; its log:" >&2
    tail -n 30 "$root/larder-$nodes.log" >&2
    exit 1
}
start_larder 1
larder1=$api
start_larder 4
larder4=$api
for ((t = 0; t < 100; t++)); do
    redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.1
done
# The keys the gets read: Redis's key:000000000000..key:000000009999, Larder's bench
# namespace (its get bench writes its keys before it measures).
redis-benchmark -p "$redis_port" -t set -n 20000 -r 10000 -d 100 -q >/dev/null

# One JSON line from a `larder bench` or `larder bench etcd-put` run.
larder_json() {
    local scenario=$1 system=$2 round=$3
    shift 3
    "$larder" --json "$@" --duration "$duration" | python3 -c '
import json, sys
out = json.loads(sys.stdin.read())
print(json.dumps({"scenario": sys.argv[1], "system": sys.argv[2], "round": int(sys.argv[3]),
                  "ops_per_sec": out["ops_per_sec"], "p50_ms": out["p50_ms"], "p99_ms": out["p99_ms"]}))
' "$scenario" "$system" "$round"
}

# One JSON line from redis-benchmark's CSV (GET, `clients` clients, no pipelining).
redis_json() {
    local scenario=$1 round=$2 clients=$3 requests=$4
    redis-benchmark -p "$redis_port" -t get -c "$clients" -n "$requests" -r 10000 -P 1 --csv |
        python3 -c '
import csv, json, sys
rows = [r for r in csv.reader(sys.stdin) if r and r[0] == "GET"]
_, rps, _avg, _min, p50, _p95, p99, _max = rows[-1]
print(json.dumps({"scenario": sys.argv[1], "system": "redis", "round": int(sys.argv[2]),
                  "ops_per_sec": float(rps), "p50_ms": float(p50), "p99_ms": float(p99)}))
' "$scenario" "$round"
}

peer() {
    local scenario=$1 round=$2
    case $scenario in
    get-1) redis_json "$scenario" "$round" 1 20000 ;;
    get-50) redis_json "$scenario" "$round" 50 250000 ;;
    put-16) larder_json "$scenario" etcd-1 "$round" bench etcd-put --endpoints "$etcd1" --concurrency 16 --channels 4 ;;
    put-64) larder_json "$scenario" etcd-1 "$round" bench etcd-put --endpoints "$etcd1" --concurrency 64 --channels 4 ;;
    write-1) larder_json "$scenario" etcd-3 "$round" bench etcd-put --endpoints "$etcd3" --concurrency 1 --channels 1 ;;
    esac
}

ours() {
    local scenario=$1 round=$2
    case $scenario in
    get-1) larder_json "$scenario" larder "$round" --endpoint "$larder1" bench kv --op get --concurrency 1 --channels 1 ;;
    get-50) larder_json "$scenario" larder "$round" --endpoint "$larder1" bench kv --op get --concurrency 50 --channels 4 ;;
    put-16) larder_json "$scenario" larder "$round" --endpoint "$larder1" bench kv --op put --concurrency 16 --channels 4 ;;
    put-64) larder_json "$scenario" larder "$round" --endpoint "$larder1" bench kv --op put --concurrency 64 --channels 4 ;;
    write-1) larder_json "$scenario" larder "$round" --endpoint "$larder4" bench object --op write --concurrency 1 --objects 1 --channels 1 ;;
    esac
}

runs="$root/runs.jsonl"
for ((round = 1; round <= rounds; round++)); do
    for scenario in get-1 get-50 put-16 put-64 write-1; do
        if ((round % 2)); then
            peer "$scenario" "$round" | tee -a "$runs"
            ours "$scenario" "$round" | tee -a "$runs"
        else
            ours "$scenario" "$round" | tee -a "$runs"
            peer "$scenario" "$round" | tee -a "$runs"
        fi
    done
done

python3 - "$runs" >&2 <<'EOF'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
print("| scenario | peer | peer ops/s | peer p50 / p99 ms | Larder ops/s | Larder p50 / p99 ms | ops/s Larder/peer | p50 Larder/peer | p99 Larder/peer |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for scenario in ["get-1", "get-50", "put-16", "put-64", "write-1"]:
    peer = [r for r in runs if r["scenario"] == scenario and r["system"] != "larder"]
    ours = [r for r in runs if r["scenario"] == scenario and r["system"] == "larder"]
    if not peer or not ours:
        continue
    med = lambda rs, k: statistics.median(r[k] for r in rs)
    p, o = {k: med(peer, k) for k in ("ops_per_sec", "p50_ms", "p99_ms")}, {k: med(ours, k) for k in ("ops_per_sec", "p50_ms", "p99_ms")}
    print(f"| {scenario} | {peer[0]['system']} | {p['ops_per_sec']:,.0f} | {p['p50_ms']:.3f} / {p['p99_ms']:.3f} "
          f"| {o['ops_per_sec']:,.0f} | {o['p50_ms']:.3f} / {o['p99_ms']:.3f} "
          f"| {o['ops_per_sec'] / p['ops_per_sec']:.2f} | {o['p50_ms'] / p['p50_ms']:.2f} | {o['p99_ms'] / p['p99_ms']:.2f} |")
print(f"\n{len(runs)} runs, medians over {max(r['round'] for r in runs)} rounds.")
EOF
