#!/usr/bin/env bash
# Should `expenses` be hash-partitioned by customer? Loads the same N expenses (default
# 10 M, over C customers, default 100 k, a year of days) into a plain table with the
# columns, checks and indexes of Coffer's `expenses` (made by `coffer migrate`) and into one
# hash-partitioned by customer_id into P partitions (default 16) with the same indexes, then times, with pgbench, the two reads
# every customer's pages make: one page of their expenses in a month, and a month's totals
# by category. Prints load times, sizes and each read's rate and latency for both.
#
#   tools/bench/expenses-partitioning.sh [ROWS] [CUSTOMERS] [PARTITIONS]
#
# Needs a PostgreSQL server it may create a database on (BENCH_DATABASE_SERVER, default
# postgres://postgres@127.0.0.1:5432) and the coffer binary (COFFER_BIN, default the debug
# build); drops its database at the end.
set -euo pipefail

ROWS="${1:-10000000}"
CUSTOMERS="${2:-100000}"
PARTITIONS="${3:-16}"
SERVER="${BENCH_DATABASE_SERVER:-postgres://postgres@127.0.0.1:5432}"
HERE="$(cd "$(dirname "$0")" && pwd)"
COFFER_BIN="${COFFER_BIN:-${CARGO_TARGET_DIR:-$HERE/../../target}/debug/coffer}"
PGBENCH="$(ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | sort -V | tail -1)"
DB=coffer_bench_expenses
URL="$SERVER/$DB"
SECONDS_PER_RUN="${BENCH_SECONDS:-30}"

psql "$SERVER/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
trap 'psql "$SERVER/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"' EXIT
"$COFFER_BIN" migrate --database-url "$URL" >/dev/null 2>&1

timed() { # label, sql
  local start end
  start=$(date +%s.%N)
  psql "$URL" -qc "$2" >/dev/null
  end=$(date +%s.%N)
  printf '%-46s %8.1f s\n' "$1" "$(echo "$end - $start" | bc)"
}

# Customer n is the UUID with n in its last 12 hex digits; one category per customer.
psql "$URL" -q <<SQL
CREATE FUNCTION bench_customer(n bigint) RETURNS uuid LANGUAGE sql IMMUTABLE AS
  \$\$ SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(n), 12, '0'))::uuid \$\$;
INSERT INTO categories (id, customer_id, parent_id, name, system, created_at)
  SELECT bench_customer(n + 1000000000), bench_customer(n), NULL, 'Groceries', true, 0
  FROM generate_series(0, $CUSTOMERS - 1) AS n;
CREATE TABLE expenses_plain (LIKE expenses INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE expenses_plain ADD PRIMARY KEY (id);
CREATE TABLE expenses_hashed (LIKE expenses INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
  PARTITION BY HASH (customer_id);
ALTER TABLE expenses_hashed ADD PRIMARY KEY (customer_id, id);
SQL
for p in $(seq 0 $((PARTITIONS - 1))); do
  psql "$URL" -qc "CREATE TABLE expenses_hashed_$p PARTITION OF expenses_hashed FOR VALUES WITH (MODULUS $PARTITIONS, REMAINDER $p)"
done

# A year of expenses, spread evenly over the customers.
# Ids in insertion order, as Coffer's UUIDv7 are.
ROWS_SQL="SELECT ('00000000-0000-7000-9000-' || lpad(to_hex(n), 12, '0'))::uuid, bench_customer(n % $CUSTOMERS), 100 + (n * 7919) % 90000, 'EUR',
  'card payment', 'Merchant ' || (n % 500), '5411',
  1735689600000000000 + (n * 104729 % 31536000) * 1000000000::bigint,
  bench_customer(n % $CUSTOMERS + 1000000000), 'merchant', 0.9, '', NULL, NULL, 'wallet', NULL, 0, 0
  FROM generate_series(0::bigint, $ROWS - 1) AS n"
echo "expenses: $ROWS rows, $CUSTOMERS customers, $PARTITIONS partitions"
# Both tables have expenses' columns, checks and indexes (the secondary ones built after
# the load, as a bulk load would); not its foreign key, which no read uses.
for table in expenses_plain expenses_hashed; do
  timed "load $table" "INSERT INTO $table $ROWS_SQL"
  timed "index $table" "CREATE INDEX ON $table (customer_id, occurred_at, id); CREATE INDEX ON $table (category_id)"
  psql "$URL" -qc "VACUUM ANALYZE $table"
done
psql "$URL" -Atc "SELECT 'size of expenses_plain (with indexes): ' || pg_size_pretty(pg_total_relation_size('expenses_plain'))"
psql "$URL" -Atc "SELECT 'size of expenses_hashed (with indexes): ' || pg_size_pretty(sum(pg_total_relation_size(inhrelid))) FROM pg_inherits WHERE inhparent = 'expenses_hashed'::regclass"

WORK="$(mktemp -d)"
for table in expenses_plain expenses_hashed; do
  cat >"$WORK/page-$table.sql" <<SQL
\set c random(0, $CUSTOMERS - 1)
\set day random(0, 334)
SELECT id, amount, merchant, occurred_at FROM $table
  WHERE customer_id = bench_customer(:c)
    AND occurred_at >= 1735689600000000000 + :day * 86400000000000::bigint
    AND occurred_at < 1735689600000000000 + (:day + 30) * 86400000000000::bigint
  ORDER BY occurred_at DESC, id DESC LIMIT 50;
SQL
  cat >"$WORK/totals-$table.sql" <<SQL
\set c random(0, $CUSTOMERS - 1)
\set day random(0, 334)
SELECT currency, category_id, CAST(SUM(amount) AS BIGINT), COUNT(*) FROM $table
  WHERE customer_id = bench_customer(:c)
    AND occurred_at >= 1735689600000000000 + :day * 86400000000000::bigint
    AND occurred_at < 1735689600000000000 + (:day + 30) * 86400000000000::bigint
  GROUP BY currency, category_id;
SQL
done
for read in page totals; do
  for table in expenses_plain expenses_hashed; do
    # The client's own CPU beside its figures (it shares the machine with the server):
    # user + system seconds over the run's wall time, in % of one core.
    /usr/bin/time -f '%U %S %e' -o "$WORK/time" \
      "$PGBENCH" -n -c 4 -j 2 -T "$SECONDS_PER_RUN" -f "$WORK/$read-$table.sql" "$URL" >"$WORK/out" 2>/dev/null
    result="$(awk '/latency average/ {lat=$4} /^tps/ {tps=$3} END {printf "%8.0f reads/s, %6.2f ms average", tps, lat}' "$WORK/out")"
    result="$result, client CPU $(awk '{printf "%.0f %%", 100 * ($1 + $2) / $3}' "$WORK/time")"
    printf '%-7s %-16s %s\n' "$read" "$table" "$result"
  done
done
rm -rf "$WORK"
