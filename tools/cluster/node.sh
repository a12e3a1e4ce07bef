#!/usr/bin/env bash
# Starts, stops (SIGTERM, graceful) or kills (SIGKILL) one node of a cluster made by
# up.sh: the Coffer nodes api1..api3, relay1, relay2, workers1, workers2, and the NATS
# servers nats-n1..nats-n3 (a restarted one rejoins the cluster with its own data).
#
#   tools/cluster/node.sh DIR NAME start|stop|kill
set -euo pipefail

DIR="${1:?usage: node.sh DIR NAME start|stop|kill}"
NAME="${2:?node name}"
ACTION="${3:?start, stop or kill}"
set -a
# shellcheck disable=SC1091
. "$DIR/env"
set +a
BASE="$COFFER_CLUSTER_PORT_BASE"

case "$NAME" in
  api1) ROLES=api PORT=$((BASE + 81)) GRPC=127.0.0.1:$((BASE + 84)) ;;
  api2) ROLES=api PORT=$((BASE + 82)) GRPC=127.0.0.1:$((BASE + 85)) ;;
  api3) ROLES=api PORT=$((BASE + 83)) GRPC=127.0.0.1:$((BASE + 86)) ;;
  relay1) ROLES=relay PORT=$((BASE + 91)) ;;
  relay2) ROLES=relay PORT=$((BASE + 92)) ;;
  workers1) ROLES=workers PORT=$((BASE + 93)) ;;
  workers2) ROLES=workers PORT=$((BASE + 94)) ;;
  nats-n[123]) N="${NAME#nats-n}" ;;
  *) echo "no node $NAME" >&2; exit 2 ;;
esac

PIDFILE="$DIR/pids/$NAME"
case "$ACTION" in
  start)
    if [ -n "${N:-}" ]; then
      # NATS server n: client port BASE+10+n, monitoring BASE+40+n, routes BASE+20+n.
      routes=""
      for m in 1 2 3; do
        [ "$m" = "$N" ] || routes="${routes:+$routes,}nats://127.0.0.1:$((BASE + 20 + m))"
      done
      mkdir -p "$DIR/nats/n$N"
      setsid nats-server -a 127.0.0.1 -p $((BASE + 10 + N)) -m $((BASE + 40 + N)) -n "n$N" -js \
        -sd "$DIR/nats/n$N" --cluster_name coffer --cluster "nats://127.0.0.1:$((BASE + 20 + N))" \
        --routes "$routes" -l "$DIR/logs/$NAME.log" </dev/null >/dev/null 2>&1 &
      LIVE="http://127.0.0.1:$((BASE + 40 + N))/varz"
    else
      mkdir -p "$DIR/data/$NAME"
      COFFER_ROLES="$ROLES" COFFER_LISTEN="127.0.0.1:$PORT" COFFER_GRPC_LISTEN="${GRPC:-none}" \
        COFFER_DATA_DIR="$DIR/data/$NAME" COFFER_LOG_FORMAT=json COFFER_RELAY_LEASE_MS=2000 \
        setsid "$COFFER_BIN" serve >>"$DIR/logs/$NAME.log" 2>&1 </dev/null &
      LIVE="http://127.0.0.1:$PORT/health/live"
    fi
    echo $! >"$PIDFILE"
    for _ in $(seq 1 300); do
      if curl -fsS "$LIVE" >/dev/null 2>&1; then exit 0; fi
      if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then break; fi
      sleep 0.2
    done
    echo "node.sh: $NAME did not start; see $DIR/logs/$NAME.log" >&2
    exit 1
    ;;
  stop | kill)
    [ -f "$PIDFILE" ] || exit 0
    pid="$(cat "$PIDFILE")"
    if [ "$ACTION" = kill ]; then kill -KILL "$pid" 2>/dev/null || true; else kill -TERM "$pid" 2>/dev/null || true; fi
    for _ in $(seq 1 150); do
      kill -0 "$pid" 2>/dev/null || { rm -f "$PIDFILE"; exit 0; }
      sleep 0.2
    done
    echo "node.sh: $NAME ($pid) did not stop" >&2
    exit 1
    ;;
  *) echo "start, stop or kill" >&2; exit 2 ;;
esac
