#!/usr/bin/env bash
# The capacity figures of docs/scaling.md, measured on the tools/cluster topology (release
# builds; the PostgreSQL primary with fsync on):
#
#   0. one node        the wallet API on one `coffer serve` (all roles) on SQLite and on
#                      PostgreSQL (COFFER_CAPACITY_PG, the machine's server), beside the
#                      per-request PostgreSQL baseline (loadgen starts each itself)
#   1. write ceiling   the wallet API (loadgen `wallet`) through haproxy with three `api`
#                      nodes, then with one (the other two stopped); PostgreSQL commits/s
#   2. read replica    one account's history through haproxy (wrk), with the replica and
#                      with the api nodes restarted without it: where the CPU goes
#   3. relay           an outbox backlog made with both relays stopped, then drained by one:
#                      to the NATS cluster (stream R3), and to Kafka (tansu) before NATS
#
# Beside every figure: the CPU (cores busy) of the api nodes, PostgreSQL, NATS, the relay
# and the load client, read from /proc — everything shares one machine, so the figures
# are what is left after the client and the other parts took theirs — and the Coffer
# nodes' peak RSS (VmHWM), which deploy/k8s's memory requests come from.
#
#   tools/bench/capacity.sh [seconds per run (10)]     (COFFER_CAPACITY_ONE_NODE=0: skip 0.)
#
# needs: cargo build --release -p coffer -p loadgen; COFFER_TEST_TANSU (the tansu binary,
# as .ci/run installs it) for the Kafka row (skipped without it).
set -euo pipefail
seconds=${1:-10}
root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
export COFFER_BIN="$target/release/coffer"
loadgen="$target/release/loadgen"
[ -x "$COFFER_BIN" ] && [ -x "$loadgen" ] || { echo "cargo build --release -p coffer -p loadgen first" >&2; exit 1; }
export COFFER_CLUSTER_PORT_BASE=${COFFER_CLUSTER_PORT_BASE:-17500}
BASE=$COFFER_CLUSTER_PORT_BASE
dir=$(mktemp -d /tmp/coffer-capacity.XXXXXX)
chmod 755 "$dir" # the PostgreSQL servers run as the postgres user
tansu_pid=""
cleanup() {
  [ -z "$tansu_pid" ] || kill -KILL "$tansu_pid" 2>/dev/null || true
  "$root/tools/cluster/down.sh" "$dir/cluster"
  rm -rf "$dir"
}
trap cleanup EXIT

section() { printf '\n## %s\n' "$*"; }

if [ "${COFFER_CAPACITY_ONE_NODE:-1}" = 1 ]; then
section "0. one node: wallet API on SQLite and PostgreSQL, and the baseline"
"$loadgen" wallet --database-url "${COFFER_CAPACITY_PG:-postgres://postgres@127.0.0.1:5432/postgres}" \
  --duration-secs "$seconds" --warmup-secs 2
"$loadgen" baseline --database-url "${COFFER_CAPACITY_PG:-postgres://postgres@127.0.0.1:5432/postgres}" \
  --duration-secs "$seconds" --warmup-secs 2
fi

export COFFER_CLUSTER_PG_FSYNC=on
export COFFER_CLUSTER_ENV="COFFER_MONEY_REQUESTS_PER_MINUTE=1000000
COFFER_LOG=warn"
"$root/tools/cluster/up.sh" "$dir/cluster" >/dev/null
set -a
# shellcheck disable=SC1091
. "$dir/cluster/env"
set +a
node() { "$root/tools/cluster/node.sh" "$dir/cluster" "$@"; }
primary() { psql "$DATABASE_URL" -Atqc "$1"; }
replica_url=$COFFER_READ_DATABASE_URL
replica() { psql "$replica_url" -Atqc "$1"; }

# CPU seconds (user + system) used so far by the processes in $@ and their children.
hz=$(getconf CLK_TCK)
cpu() {
  local pids=() pid
  for pid in "$@"; do
    pids+=("$pid")
    while read -r child; do pids+=("$child"); done < <(pgrep -P "$pid" || true)
  done
  for pid in "${pids[@]}"; do
    awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || true
  done | awk -v hz="$hz" '{ s += $1 } END { printf "%.2f", s / hz }'
}
pidof_node() { cat "$dir/cluster/pids/$1"; }
# Each node's peak RSS since it started (VmHWM): "name N MB, ...".
peak_rss() { # node...
  local name line=""
  for name in "$@"; do
    line+="${line:+, }$name $(awk '/^VmHWM/ { printf "%.0f MB", $2 / 1024 }' "/proc/$(pidof_node "$name")/status")"
  done
  echo "peak RSS: $line"
}
pg_pid() { head -1 "$dir/cluster/pg/$1/postmaster.pid"; }
nats_pids() { cat "$dir/cluster/pids/nats-n1" "$dir/cluster/pids/nats-n2" "$dir/cluster/pids/nats-n3"; }
cores() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { printf "%.2f", (b - a) / t }'; }
commits() { "${1:-primary}" "SELECT xact_commit FROM pg_stat_database WHERE datname = 'coffer'"; } # [replica]
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
load() { # scenario
  "$loadgen" "$1" --url "$COFFER_BALANCER" --admin-key "$COFFER_ADMIN_API_KEY" --no-baseline \
    --duration-secs "$seconds" --warmup-secs 2 | grep -E '^\|'
}

# Both relays are stopped for the write runs: the relay's reads of the outbox would
# otherwise share the primary with them (section 3 measures it alone).
node relay2 stop
node relay1 stop

# The api nodes' commit counters, summed: commits, seconds in them, events they carried.
pipeline() { # api-nodes...
  local name port
  for name in "$@"; do
    port=$((BASE + 80 + ${name#api}))
    curl -fsS "http://127.0.0.1:$port/metrics"
  done | awk '/^coffer_commit_seconds_count/ { c += $NF } /^coffer_commit_seconds_sum/ { s += $NF }
              /^coffer_commit_batch_events_sum/ { e += $NF } END { printf "%d %f %d", c, s, e }'
}
measured_load() { # label scenario api-nodes...
  local label="$1" scenario="$2" start commits_start t
  shift 2
  local api_pids=()
  for name in "$@"; do api_pids+=("$(pidof_node "$name")"); done
  # CPU sampled every second; the busiest 5 s are the measured window (the run's setup
  # registers customers, and its check reads every wallet back).
  local samples="$dir/samples" sampler pg
  pg=$(pg_pid primary)
  while :; do echo "$(now) $(cpu "${api_pids[@]}") $(cpu "$pg")"; sleep 1; done >"$samples" &
  sampler=$!
  start=$(now); commits_start=$(commits)
  local pipeline_start
  pipeline_start=$(pipeline "$@")
  load "$scenario"
  t=$(elapsed "$start")
  kill "$sampler"; wait "$sampler" 2>/dev/null || true
  echo "$label: commit pipelines (all api nodes): $(awk -v a="$pipeline_start" -v b="$(pipeline "$@")" 'BEGIN {
      split(a, x, " "); split(b, y, " "); n = y[1] - x[1]; if (n < 1) n = 1
      printf "%d commits, %.1f events per commit, %.1f ms per commit", y[1] - x[1], (y[3] - x[3]) / n, 1000 * (y[2] - x[2]) / n }');" \
    "PostgreSQL transactions $(( $(commits) - commits_start )) over the whole run (${t}s);" \
    "CPU cores in the busiest 5 s: $(awk '{ t[NR] = $1; a[NR] = $2; p[NR] = $3 }
      END { for (i = 1; i + 5 <= NR; i++) { r = (a[i+5] - a[i]) / (t[i+5] - t[i]); if (r > best) { best = r; pr = (p[i+5] - p[i]) / (t[i+5] - t[i]) } }
            printf "api %.2f, PostgreSQL primary %.2f", best, pr }' "$samples"); $(peak_rss "$@")"
}

section "1. wallet API through haproxy, three api nodes"
measured_load "three api nodes" wallet api1 api2 api3
section "1. wallet API through haproxy, one api node (api2, api3 stopped)"
node api2 stop
node api3 stop
sleep 1
measured_load "one api node" wallet api1
node api2 start
node api3 start
sleep 1

# History reads: wrk (Debian's, installed when missing) asks for one busy wallet account's
# newest 50 transfers, over and over, through haproxy; with the replica (as the nodes
# start) and again with the api nodes restarted without COFFER_READ_DATABASE_URL.
command -v wrk >/dev/null 2>&1 ||
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
account=$(primary "SELECT debit_account_id FROM transfers GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
history() { # label
  local label="$1" start p_start r_start api_start wrk_out t pids=()
  for name in api1 api2 api3; do pids+=("$(pidof_node "$name")"); done
  start=$(now); p_start=$(cpu "$(pg_pid primary)"); r_start=$(cpu "$(pg_pid replica)"); api_start=$(cpu "${pids[@]}")
  local commits_start replica_start
  commits_start=$(commits); replica_start=$(commits replica)
  wrk_out=$( (time -p wrk -t 1 -c 64 -d "${seconds}s" -H "authorization: Bearer $COFFER_ADMIN_API_KEY" \
    "$COFFER_BALANCER/v1/ledger/accounts/$account/transfers?limit=50") 2>&1)
  t=$(elapsed "$start")
  echo "$label: $(awk '/Requests\/sec/ { printf "%.0f reads/s", $2 }' <<<"$wrk_out")," \
    "$(awk '/Non-2xx/ { print $NF " non-2xx," }' <<<"$wrk_out") latency $(awk '/Latency/ { print "avg " $2 ", max " $4 }' <<<"$wrk_out");" \
    "transactions: primary $(( $(commits) - commits_start )), replica $(( $(commits replica) - replica_start ));" \
    "CPU cores: PostgreSQL primary $(cores "$p_start" "$(cpu "$(pg_pid primary)")" "$t")," \
    "replica $(cores "$r_start" "$(cpu "$(pg_pid replica)")" "$t"), api $(cores "$api_start" "$(cpu "${pids[@]}")" "$t")," \
    "wrk $(awk -v t="$t" '/^(user|sys)/ { s += $2 } END { printf "%.2f", s / t }' <<<"$wrk_out")"
}
restart_api() { for name in api1 api2 api3; do node "$name" stop; node "$name" start; done; sleep 1; }

section "2. history reads through haproxy (three api nodes), with and without the replica"
history "with the replica"
grep -v '^COFFER_READ_DATABASE_URL=' "$dir/cluster/env" >"$dir/env" && cp "$dir/env" "$dir/cluster/env"
unset COFFER_READ_DATABASE_URL
restart_api
history "primary only"

backlog() { primary "SELECT count(*) FROM outbox WHERE sent_at IS NULL"; }
drain() { # label
  local label="$1" waiting start relay_start nats_start pg_start t pid
  waiting=$(backlog)
  node relay1 start
  pid=$(pidof_node relay1)
  start=$(now); relay_start=$(cpu "$pid"); nats_start=$(cpu $(nats_pids)); pg_start=$(cpu "$(pg_pid primary)")
  local deadline=$((SECONDS + 600))
  while [ "$(backlog)" -gt 0 ]; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "$label: the relay did not drain $waiting events in 600 s" >&2; exit 1; }
    sleep 0.2
  done
  t=$(elapsed "$start")
  echo "$label: $waiting events in $t s = $(awk -v n="$waiting" -v t="$t" 'BEGIN { printf "%.0f", n / t }') events/s" \
    "(from the relay's start); CPU cores: relay $(cores "$relay_start" "$(cpu "$pid")" "$t")," \
    "NATS $(cores "$nats_start" "$(cpu $(nats_pids))" "$t"), PostgreSQL primary $(cores "$pg_start" "$(cpu "$(pg_pid primary)")" "$t");" \
    "$(peak_rss relay1)"
  node relay1 stop
}

section "3. relay: backlog drained to the NATS cluster (R3)"
# Everything so far is still in the outbox: the relays were stopped.
drain "NATS"
# Is it the batch's round trip that bounds it? The same with four times larger batches.
load wallet >/dev/null
echo "COFFER_RELAY_BATCH_MAX=1000" >>"$dir/cluster/env"
drain "NATS, COFFER_RELAY_BATCH_MAX=1000"
sed -i '/^COFFER_RELAY_BATCH_MAX=/d' "$dir/cluster/env"

if [ -n "${COFFER_TEST_TANSU:-}" ]; then
  section "3. relay: backlog drained to Kafka (tansu, in memory), then NATS"
  port=$((BASE + 50))
  "$COFFER_TEST_TANSU" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ >"$dir/tansu.log" 2>&1 &
  tansu_pid=$!
  echo "COFFER_KAFKA_BROKERS=127.0.0.1:$port" >>"$dir/cluster/env"
  load wallet >/dev/null
  start=$(now); tansu_start=$(cpu "$tansu_pid")
  drain "Kafka then NATS"
  echo "tansu CPU cores over the drain and the relay's stop: $(cores "$tansu_start" "$(cpu "$tansu_pid")" "$(elapsed "$start")")"
else
  echo "COFFER_TEST_TANSU not set: no Kafka row" >&2
fi

section "memory: the workers nodes' peak RSS over the whole run"
peak_rss workers1 workers2
