#!/usr/bin/env bash
# Brings up Coffer as several nodes on this machine, every part real and on loopback:
#
#   PostgreSQL primary + streaming replica   (pg-pair.sh)          BASE+1, BASE+2
#   NATS JetStream, three servers, one cluster (stream R3)        BASE+11..13 (routes BASE+21..23)
#   Redis                                                          BASE+30
#   three `api` nodes behind haproxy (health-checked)              BASE+81..83, balancer BASE+80
#     their gRPC listeners, behind haproxy's HTTP/2 frontend         BASE+84..86, balancer BASE+87
#   two `relay` nodes (one publishes, one stands by)               BASE+91, BASE+92
#   two `workers` nodes                                            BASE+93, BASE+94
#
#   tools/cluster/up.sh DIR        start everything under DIR (logs in DIR/logs)
#   tools/cluster/down.sh DIR      stop everything and remove DIR
#
# BASE is COFFER_CLUSTER_PORT_BASE (17000). The coffer binary is COFFER_BIN (default: the
# debug build in the cargo target directory). haproxy is installed from Debian's packages
# when missing. DIR/env holds the URLs and secrets the nodes share, for tests and tools
# (source it); DIR/pids one file per process; `node.sh DIR NAME start|stop|kill` restarts one.
# COFFER_CLUSTER_ENV: more KEY=VALUE lines for DIR/env (every node reads them), e.g. a
# higher COFFER_MONEY_REQUESTS_PER_MINUTE for a benchmark.
set -euo pipefail

DIR="${1:?usage: up.sh DIR}"
HERE="$(cd "$(dirname "$0")" && pwd)"
BASE="${COFFER_CLUSTER_PORT_BASE:-17000}"
TARGET="${CARGO_TARGET_DIR:-$HERE/../../target}"
COFFER_BIN="${COFFER_BIN:-$TARGET/debug/coffer}"
[ -x "$COFFER_BIN" ] || { echo "no coffer binary at $COFFER_BIN (cargo build, or set COFFER_BIN)" >&2; exit 1; }

mkdir -p "$DIR/logs" "$DIR/pids"
DIR="$(cd "$DIR" && pwd)"
chmod 755 "$DIR"

wait_for() { # what, command...
  local what="$1"; shift
  for _ in $(seq 1 150); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "up.sh: $what did not come up; logs in $DIR/logs" >&2
  exit 1
}

# PostgreSQL: primary and replica; one database for Coffer, made on the primary (the
# replica follows).
mapfile -t PG < <("$HERE/pg-pair.sh" up "$DIR/pg" $((BASE + 1)) $((BASE + 2)))
psql "${PG[0]}" -qc "CREATE DATABASE coffer" >/dev/null
PRIMARY="${PG[0]%/postgres}/coffer"
REPLICA="${PG[1]%/postgres}/coffer"

# Redis for the shared limits.
# (Every process started here lets go of this script's output, so a caller that reads it
# to the end is not held by the servers.)
redis-server --daemonize yes --bind 127.0.0.1 --port $((BASE + 30)) --save "" --appendonly no \
  --dir "$DIR" --logfile "$DIR/logs/redis.log" --pidfile "$DIR/pids/redis" </dev/null >/dev/null 2>&1
wait_for "Redis" redis-cli -p $((BASE + 30)) ping

NATS_URLS="nats://127.0.0.1:$((BASE + 11)),nats://127.0.0.1:$((BASE + 12)),nats://127.0.0.1:$((BASE + 13))"
SECRET="$(head -c 32 /dev/urandom | base64 | tr -d '=+/')"
ADMIN_KEY="$(head -c 24 /dev/urandom | base64 | tr -d '=+/')"
cat >"$DIR/env" <<ENV
COFFER_CLUSTER_DIR=$DIR
COFFER_CLUSTER_PORT_BASE=$BASE
COFFER_BIN=$COFFER_BIN
DATABASE_URL=$PRIMARY
COFFER_READ_DATABASE_URL=$REPLICA
COFFER_NATS_URL=$NATS_URLS
COFFER_NATS_REPLICAS=3
COFFER_REDIS_URL=redis://127.0.0.1:$((BASE + 30))
COFFER_JWT_SECRET=$SECRET
COFFER_ADMIN_API_KEY=$ADMIN_KEY
COFFER_TRUSTED_PROXIES=127.0.0.1
COFFER_BALANCER=http://127.0.0.1:$((BASE + 80))
COFFER_BALANCER_GRPC=http://127.0.0.1:$((BASE + 87))
${COFFER_CLUSTER_ENV:-}
ENV

# NATS: three JetStream servers in one cluster.
for n in 1 2 3; do
  "$HERE/node.sh" "$DIR" "nats-n$n" start
done
for n in 1 2 3; do
  wait_for "NATS n$n" curl -fsS "http://127.0.0.1:$((BASE + 40 + n))/healthz"
done

"$COFFER_BIN" migrate --database-url "$PRIMARY" >"$DIR/logs/migrate.log" 2>&1

for node in api1 api2 api3 relay1 relay2 workers1 workers2; do
  "$HERE/node.sh" "$DIR" "$node" start
done

# haproxy in front of the api nodes, each checked on /health/ready.
if ! command -v haproxy >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
fi
cat >"$DIR/haproxy.cfg" <<CFG
global
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout tunnel 1h
  # Every backend: its servers checked on /health/ready every 300 ms, a failed connection
  # retried on another.
  option httpchk GET /health/ready
  http-check expect status 200
  retry-on conn-failure empty-response
  retries 2
  default-server inter 300ms fall 2 rise 2
frontend api
  bind 127.0.0.1:$((BASE + 80))
  option forwardfor
  default_backend api
backend api
  balance roundrobin
  server api1 127.0.0.1:$((BASE + 81)) check
  server api2 127.0.0.1:$((BASE + 82)) check
  server api3 127.0.0.1:$((BASE + 83)) check
# gRPC (HTTP/2 without TLS) to the same nodes, each checked on its REST port.
frontend grpc
  bind 127.0.0.1:$((BASE + 87)) proto h2
  default_backend grpc
backend grpc
  balance roundrobin
  server api1 127.0.0.1:$((BASE + 84)) proto h2 check port $((BASE + 81)) check-proto h1
  server api2 127.0.0.1:$((BASE + 85)) proto h2 check port $((BASE + 82)) check-proto h1
  server api3 127.0.0.1:$((BASE + 86)) proto h2 check port $((BASE + 83)) check-proto h1
CFG
haproxy -f "$DIR/haproxy.cfg" -D -p "$DIR/pids/haproxy" </dev/null >"$DIR/logs/haproxy.log" 2>&1
wait_for "the balancer" curl -fsS "http://127.0.0.1:$((BASE + 80))/health/ready"
echo "cluster up: balancer http://127.0.0.1:$((BASE + 80)); settings in $DIR/env"
