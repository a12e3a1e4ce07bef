#!/usr/bin/env bash
# Stops everything up.sh started under DIR and removes DIR.
#
#   tools/cluster/down.sh DIR
set -uo pipefail

DIR="${1:?usage: down.sh DIR}"
HERE="$(cd "$(dirname "$0")" && pwd)"
[ -d "$DIR" ] || exit 0

for pidfile in "$DIR"/pids/*; do
  [ -f "$pidfile" ] || continue
  kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
done
# Wait for them to be gone, so their ports are free for the next run.
for pidfile in "$DIR"/pids/*; do
  [ -f "$pidfile" ] || continue
  pid="$(cat "$pidfile")"
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
done
"$HERE/pg-pair.sh" down "$DIR/pg"
rm -rf "$DIR"
