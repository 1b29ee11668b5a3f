#!/usr/bin/env bash
# Object creation at scale: a 4-node `larder dev` cluster on free ports, `larder bench
# object --op create` through its first VIA nodes, then the dev process's resident
# memory and the data directory's size.
#
# Usage: deploy/bench/object-creation.sh [OBJECTS] [CONCURRENCY]
# Environment: SERVER (larder binary running the cluster; default target/release/larder),
# CLIENT (larder binary running the bench; default SERVER — set it to measure an older
# server with today's bench), REGIONS (dev's --regions; default eu-west, one region),
# VIA (how many nodes the bench goes through, 1..4; default 1).
set -euo pipefail

objects=${1:-20000}
concurrency=${2:-64}
server=${SERVER:-target/release/larder}
client=${CLIENT:-$server}
for bin in "$server" "$client"; do
    [[ -x $bin ]] || { echo "$bin is not an executable (cargo build --release -p larder-cli)" >&2; exit 1; }
done

root=$(mktemp -d -t larder-creation-XXXXXX)
base=$(python3 "$(dirname "${BASH_SOURCE[0]}")/free-ports.py" 40)
api="127.0.0.1:$base"
regions=${REGIONS:-eu-west}
via=${VIA:-1}
"$server" dev --nodes 4 --regions "$regions" --base-port "$base" --data-dir "$root/data" \
    >"$root/dev.log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$root"' EXIT

for ((t = 0; t < 300; t++)); do
    if status=$("$client" --endpoint "$api" --json status 2>/dev/null) &&
        python3 -c '
import json, sys
nodes = json.loads(sys.argv[1]).get("nodes", [])
sys.exit(0 if len(nodes) == 4 and all(n.get("status") == "up" for n in nodes) else 1)
' "$status"; then
        break
    fi
    kill -0 "$pid" 2>/dev/null || { tail -n 30 "$root/dev.log" >&2; exit 1; }
    sleep 0.1
done

also=()
for ((i = 1; i < via; i++)); do
    also+=(--also "127.0.0.1:$((base + 10 * i))")
done
"$client" --endpoint "$api" --json bench object --op create --objects "$objects" \
    --concurrency "$concurrency" --duration 3600s "${also[@]}"
rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
data_kib=$(du -sk "$root/data" | cut -f1)
echo "{\"dev_rss_mib\": $((rss_kib / 1024)), \"data_mib\": $((data_kib / 1024)), \"objects\": $objects, \"regions\": \"$regions\", \"via\": $via}"
