#!/bin/bash
# How fast the in-process relay (and the event consumers behind it) turns the outbox into
# inbox rows, analytics and stream events: starts `coffer serve` on a fresh SQLite data
# directory, drives the wallet API with loadgen for a few seconds, then prints the
# relayed-events counter every second until it stops moving. The drain rate is the
# counter's growth per second after the load ended.
#
# usage: tools/bench/relay-drain.sh [load seconds (5)] [COFFER_RELAY_BATCH_MAX (256)]
# needs: cargo build --release -p coffer -p loadgen
set -euo pipefail
seconds=${1:-5}
batch=${2:-256}
root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
data=$(mktemp -d)
key=relay-drain-admin-key-0123456789abcdef
port=18080
metric() {
    curl -s "http://127.0.0.1:$port/metrics" | awk '/^coffer_events_relayed_total/ {s += $2} END {print s + 0}'
}
COFFER_DATA_DIR=$data COFFER_LISTEN=127.0.0.1:$port COFFER_GRPC_LISTEN=none COFFER_ADMIN_API_KEY=$key COFFER_LOG=warn \
    COFFER_RELAY_BATCH_MAX=$batch COFFER_MONEY_REQUESTS_PER_MINUTE=1000000 \
    "$target/release/coffer" serve >"$data/log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
sleep 2
"$target/release/loadgen" wallet --url "http://127.0.0.1:$port" --admin-key "$key" --no-baseline \
    --duration-secs "$seconds" | grep -E '^\| (scenario|wallet)'
previous=-1
for second in $(seq 1 600); do
    relayed=$(metric)
    echo "t+${second}s relayed=$relayed"
    [ "$relayed" = "$previous" ] && break
    previous=$relayed
    sleep 1
done
