#!/usr/bin/env bash
# A PostgreSQL primary and one streaming replica of it, in a folder of their own, on
# loopback ports — for the read-replica tests and the cluster topology. Debian's
# PostgreSQL binaries; the servers run as the `postgres` user (initdb refuses root).
#
#   pg-pair.sh up DIR PRIMARY_PORT REPLICA_PORT   make, start; prints the two URLs
#   pg-pair.sh down DIR                           stop both and remove DIR
#
# The replica is made by pg_basebackup -R (streaming, hot standby) and is read-only;
# `SELECT pg_wal_replay_pause()` on it holds it behind the primary, `pg_wal_replay_resume()`
# lets it catch up. The primary runs with fsync off (tests need no durability) unless
# COFFER_CLUSTER_PG_FSYNC=on (benchmarks).
set -euo pipefail

bin_dir() {
  local initdb
  initdb="$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1)"
  [ -n "$initdb" ] || { echo "PostgreSQL server binaries not found (Debian's postgresql package)" >&2; exit 1; }
  dirname "$initdb"
}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

up() {
  local dir="$1" primary_port="$2" replica_port="$3" bin
  bin="$(bin_dir)"
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
  as_postgres "$bin/initdb" -D "$dir/primary" -U postgres --auth=trust -E UTF8 --no-sync >"$dir/initdb.log"
  cat >>"$dir/primary/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $primary_port
unix_socket_directories = '$dir'
wal_level = replica
max_wal_senders = 4
fsync = ${COFFER_CLUSTER_PG_FSYNC:-off}
CONF
  echo "host replication all 127.0.0.1/32 trust" >>"$dir/primary/pg_hba.conf"
  as_postgres "$bin/pg_ctl" -D "$dir/primary" -l "$dir/primary.log" -w -t 60 start >/dev/null
  as_postgres "$bin/pg_basebackup" -h 127.0.0.1 -p "$primary_port" -U postgres -D "$dir/replica" -R -X stream
  cat >>"$dir/replica/postgresql.conf" <<CONF
port = $replica_port
hot_standby = on
CONF
  as_postgres "$bin/pg_ctl" -D "$dir/replica" -l "$dir/replica.log" -w -t 60 start >/dev/null
  echo "postgres://postgres@127.0.0.1:$primary_port/postgres"
  echo "postgres://postgres@127.0.0.1:$replica_port/postgres"
}

down() {
  local dir="$1" bin
  bin="$(bin_dir)"
  for server in replica primary; do
    if [ -f "$dir/$server/postmaster.pid" ]; then
      as_postgres "$bin/pg_ctl" -D "$dir/$server" -m immediate -w -t 30 stop >/dev/null || true
    fi
  done
  rm -rf "$dir"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) shift; down "$@" ;;
  *) echo "usage: $0 up DIR PRIMARY_PORT REPLICA_PORT | down DIR" >&2; exit 2 ;;
esac
