#!/usr/bin/env bash
# A throwaway 3-member etcd cluster on 127.0.0.1, for reference measurements
# (MEMBERS=1 for a single member).
#
# Usage:
#   deploy/bench/etcd3.sh run -- COMMAND [ARGS...]   start, run COMMAND, tear down
#   deploy/bench/etcd3.sh                            start, print endpoints, wait for Ctrl-C
#
# COMMAND sees (and may reference as '$ETCD_ENDPOINTS' inside `bash -c '...'`):
#   ETCD_ENDPOINTS  client addresses of the three members, host:port, comma-separated
#   ETCD_LEADER     client address of the member that leads when the cluster is healthy
# The script exits with COMMAND's status.
#
# Members use free ports (the kernel picks them), data directories under one mktemp
# directory, and etcd's defaults otherwise: WAL fsync on every commit, heartbeat 100 ms,
# election timeout 1000 ms, snapshot every 100,000 entries. Everything started here
# (processes, data) is removed on exit, Ctrl-C or error. Needs `etcd` and `etcdctl`
# (Debian: apt-get install etcd-server etcd-client; measured with 3.4.23).
set -euo pipefail

MEMBERS=${MEMBERS:-3}
HEALTH_WAIT_S=30

mode="wait"
if [[ $# -gt 0 ]]; then
    case "$1" in
        run)
            shift
            [[ "${1:-}" == "--" ]] && shift
            [[ $# -gt 0 ]] || { echo "usage: $0 run -- COMMAND [ARGS...]" >&2; exit 2; }
            mode=run
            ;;
        -h | --help)
            sed -n '2,17p' "$0"
            exit 0
            ;;
        *)
            echo "unknown mode $1 (try --help)" >&2
            exit 2
            ;;
    esac
fi

for tool in etcd etcdctl python3; do
    command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 1; }
done

root=$(mktemp -d -t larder-etcd3-XXXXXX)
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$root"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Two ports per member (client, peer), held open together so they are distinct.
read -r -a ports <<<"$(python3 -c '
import socket
socks = [socket.socket() for _ in range('"$((MEMBERS * 2))"')]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
')"

initial_cluster=""
endpoints=""
for ((i = 0; i < MEMBERS; i++)); do
    initial_cluster+="${initial_cluster:+,}m$((i + 1))=http://127.0.0.1:${ports[i * 2 + 1]}"
    endpoints+="${endpoints:+,}127.0.0.1:${ports[i * 2]}"
done

for ((i = 0; i < MEMBERS; i++)); do
    name="m$((i + 1))"
    client="http://127.0.0.1:${ports[i * 2]}"
    peer="http://127.0.0.1:${ports[i * 2 + 1]}"
    etcd --name "$name" \
        --data-dir "$root/$name" \
        --listen-client-urls "$client" --advertise-client-urls "$client" \
        --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
        --initial-cluster "$initial_cluster" \
        --initial-cluster-token "larder-bench-$$" \
        --initial-cluster-state new \
        >"$root/$name.log" 2>&1 &
    pids+=("$!")
done

healthy=false
for ((t = 0; t < HEALTH_WAIT_S * 10; t++)); do
    if etcdctl --endpoints="$endpoints" --dial-timeout=1s --command-timeout=2s \
        endpoint health >/dev/null 2>&1; then
        healthy=true
        break
    fi
    sleep 0.1
done
if ! $healthy; then
    echo "etcd cluster not healthy after ${HEALTH_WAIT_S}s; member logs:" >&2
    tail -n 20 "$root"/m*.log >&2
    exit 1
fi

# The leader: the member whose status names itself as leader.
leader=$(etcdctl --endpoints="$endpoints" endpoint status --write-out=json | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s["Status"]["header"]["member_id"] == s["Status"]["leader"]:
        print(s["Endpoint"])
')
export ETCD_ENDPOINTS="$endpoints"
export ETCD_LEADER="${leader#http://}"
echo "etcd $(etcd --version | sed -n 's/^etcd Version: //p'): $MEMBERS members healthy," \
    "ETCD_ENDPOINTS=$ETCD_ENDPOINTS ETCD_LEADER=$ETCD_LEADER (data: $root)" >&2

if [[ $mode == run ]]; then
    status=0
    "$@" || status=$?
    exit "$status"
fi
echo "$ETCD_ENDPOINTS"
echo "Ctrl-C to stop and remove the cluster." >&2
wait "${pids[0]}"
