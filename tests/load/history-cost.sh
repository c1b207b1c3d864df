#!/usr/bin/env bash
# What a topic history costs on fan-out: the same room channel, with and
# without `history = { size = 100, ttl_s = 600 }` on its route, N subscribers
# at R msgs/s, rounds alternating, each on a fresh server. Prints one JSON
# line per run (plume-load fanout's) with "label" room or room-history.
#
#   cargo build --release -p plume -p plume-load && bash tests/load/history-cost.sh [ROUNDS] [SUBSCRIBERS] [RATE]
#
# Needs the built plugins in target/plugins (plume build, or any test run).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-3}
subscribers=${2:-2000}
rate=${3:-100}
export SECRET_KEY_BASE=plume-history-cost-secret-key-base-0123456789abcdef0123456789abcdef
for round in $(seq 1 "$rounds"); do
    for config in room room-history; do
        log=$(mktemp)
        ./target/release/plume serve --bind 127.0.0.1:0 --config "tests/load/configs/$config.toml" >"$log" 2>&1 &
        pid=$!
        addr=""
        for _ in $(seq 1 200); do
            addr=$(grep -m1 -o 'listening on http://[0-9.:]*' "$log" | sed 's#listening on http://##' || true)
            [ -n "$addr" ] && break
            sleep 0.1
        done
        if [ -z "$addr" ]; then
            echo "plume did not start:" >&2; cat "$log" >&2; kill "$pid" 2>/dev/null || true; exit 1
        fi
        echo "round $round: $config at $addr" >&2
        ./target/release/plume-load fanout --addr "$addr" --server-pid "$pid" --label "$config" \
            --subscribers "$subscribers" --rate "$rate" --seconds 10 | grep '^{'
        kill "$pid"; wait "$pid" 2>/dev/null || true
        rm -f "$log"
    done
done
