#!/usr/bin/env bash
# Fuzzes a running `coffer serve` through its own OpenAPI document with Schemathesis:
# every check on (server errors, schema and status conformance, negative data
# rejection, ignored auth, use after free, …), stateful links where the document has
# them. Two passes, because the API has two kinds of caller: the admin API key (ledger
# and admin routes) and a customer's bearer token (everything a customer may call).
#
#   tools/fuzz/schemathesis.sh                       # builds, starts a server, fuzzes, stops it
#   COFFER_FUZZ_MAX_EXAMPLES=500 tools/fuzz/schemathesis.sh   # longer
#
# Settings (environment):
#   COFFER_FUZZ_MAX_EXAMPLES  test cases per operation and phase (default 25; CI uses the default)
#   COFFER_FUZZ_VENV          where Schemathesis is installed (default $CARGO_TARGET_DIR/fuzz-venv)
#   COFFER_BIN                the coffer binary (default: cargo build, then target/debug/coffer)
#   DATABASE_URL              run the server on PostgreSQL instead of SQLite
# Exit status: 0 when Schemathesis found nothing, non-zero otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$(pwd)"

TARGET_DIR="$(realpath -m "${CARGO_TARGET_DIR:-target}")"
VENV="$(realpath -m "${COFFER_FUZZ_VENV:-$TARGET_DIR/fuzz-venv}")"
MAX_EXAMPLES="${COFFER_FUZZ_MAX_EXAMPLES:-25}"
ADMIN_KEY="fuzz-admin-key-0123456789abcdef"
REPORTS="$TARGET_DIR/fuzz-reports"

if [ ! -x "$VENV/bin/schemathesis" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r tools/fuzz/requirements.txt
fi

if [ -z "${COFFER_BIN:-}" ]; then
  cargo build --quiet --locked -p coffer --bin coffer
  COFFER_BIN="$TARGET_DIR/debug/coffer"
fi

DATA_DIR="$(mktemp -d)"
LOG="$DATA_DIR/server.log"
cleanup() {
  if [ -n "${SERVER_PID:-}" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$DATA_DIR"
}
trap cleanup EXIT

# A cheap password hash and no money rate limit: the fuzzer registers and pays a lot.
# Port 0, JSON logs: the address comes from the server's own `listening` line.
COFFER_ADMIN_API_KEY="$ADMIN_KEY" COFFER_ARGON2_MEMORY_KIB=1024 COFFER_MONEY_REQUESTS_PER_MINUTE=1000000 \
  COFFER_LOGIN_FAILURES_PER_IP_MAX=100000 COFFER_LOG="warn,coffer::server=info" COFFER_LOG_FORMAT=json \
  "$COFFER_BIN" serve --data-dir "$DATA_DIR/data" --listen "127.0.0.1:0" --grpc-listen none >"$LOG" 2>&1 &
SERVER_PID=$!
ADDRESS=""
for _ in $(seq 1 600); do
  ADDRESS=$(sed -n 's/.*"message":"listening","address":"\([^"]*\)".*/\1/p' "$LOG" | head -1)
  if [ -n "$ADDRESS" ]; then break; fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then cat "$LOG" >&2; echo "coffer exited" >&2; exit 1; fi
  sleep 0.1
done
if [ -z "$ADDRESS" ]; then cat "$LOG" >&2; echo "coffer did not start within 60 s" >&2; exit 1; fi
BASE="http://$ADDRESS"
curl -fsS "$BASE/health/ready" >/dev/null

# A customer with a funded USD wallet, so that customer operations have something to act on.
curl -fsS -X POST "$BASE/v1/auth/register" -H 'content-type: application/json' \
  -d '{"email":"fuzz@example.com","password":"correct horse battery staple","name":"Fuzz"}' >/dev/null
TOKEN=$(curl -fsS -X POST "$BASE/v1/auth/login" -H 'content-type: application/json' \
  -d '{"email":"fuzz@example.com","password":"correct horse battery staple"}' | sed 's/.*"access_token":"\([^"]*\)".*/\1/')

mkdir -p "$REPORTS"
status=0
run() {
  local name="$1"; shift
  echo "=== schemathesis: $name (max examples $MAX_EXAMPLES)"
  # One worker: with two, Hypothesis parses lambda sources from two threads at once and
  # CPython 3.11's parser can fail with "AST constructor recursion depth mismatch" (seen in CI).
  # From the scratch directory: Schemathesis and Hypothesis leave state in the working
  # directory, which must not be the work tree.
  (cd "$DATA_DIR" && "$VENV/bin/schemathesis" --no-color --config-file "$ROOT/tools/fuzz/schemathesis.toml" run "$BASE/openapi.json" \
    --checks all --max-examples "$MAX_EXAMPLES" --seed "${COFFER_FUZZ_SEED:-1}" \
    --workers 1 --request-timeout 20 --generation-database none \
    --report junit --report-junit-path "$REPORTS/$name.xml" \
    "$@") || status=1
}
# The admin key: the ledger API, the admin routes and reconciliation. A ledger batch answers 200 with one
# result per event, and events may be refused, so "200 means the linked GET finds it"
# (ensure_resource_availability) does not hold there; per-operation config does not reach
# the stateful phase's links, hence the flag (see schemathesis.toml).
run admin -H "Authorization: Bearer $ADMIN_KEY" --exclude-checks ensure_resource_availability \
  --include-path-regex '^/v1/(ledger/|admin/|reconciliations|customers$|customers/\{id\}|transfers/\{id\}/reversals)'
# A customer: identity, profile, wallets, payments, history.
run customer -H "Authorization: Bearer $TOKEN" \
  --exclude-path-regex '^/v1/(ledger/|admin/|reconciliations|customers$|customers/\{id\}|transfers/\{id\}/reversals)'

if grep -q '"level":"ERROR"' "$LOG"; then
  echo "the server logged errors during the fuzz run:" >&2
  grep '"level":"ERROR"' "$LOG" | head -20 >&2
  status=1
fi
exit $status
