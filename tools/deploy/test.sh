#!/usr/bin/env bash
# Checks the deployment files under deploy/.
#
#   tools/deploy/test.sh                       (a) quick: for every CI run (about a second
#                                                  once the validator is installed)
#   COFFER_TEST_DEPLOY=1 tools/deploy/test.sh  (a), then (b) the real thing (minutes;
#                                                  needs root, docker, network)
#
# (a) Every manifest under deploy/k8s is validated against the Kubernetes OpenAPI schemas
#     of each version in COFFER_K8S_VERSIONS (default "1.31.0 1.37.0") with
#     kubernetes-validate (PyPI, pinned below, installed in a cached virtualenv), --strict
#     (unknown fields are errors), and any ERROR or WARN (e.g. an unknown kind) fails. The
#     kustomization is rendered with `kubectl kustomize` when kubectl is present and its
#     output validated the same way; every manifest must be listed in it or be one of the
#     two deliberately left out. deploy/compose.yaml is checked with `docker-compose
#     config` when docker-compose is present.
#
# (b) With COFFER_TEST_DEPLOY=1: installs docker.io, docker-compose and debootstrap from
#     Debian when missing; starts dockerd (--iptables=false --storage-driver=vfs) when none
#     answers (and stops it afterwards unless COFFER_TEST_KEEP_DOCKERD=1); makes the base
#     images (tools/deploy/base-images.sh, existing ones kept); builds deploy/Dockerfile
#     (context: the working tree, or COFFER_BUILD_CONTEXT; docker's cache makes an
#     unchanged rebuild take seconds);
#     runs the image alone on a free port with the embedded SQLite database and checks
#     /health/ready, the image's own HEALTHCHECK, a real workload (register, login, wallet,
#     top-up, transfer, balances) and that the process is not root; then brings up
#     deploy/compose.yaml (PostgreSQL primary + replica, 3 NATS, Redis, migrate, 3 api, 2
#     relay, 2 workers, haproxy), checks every node's /health/ready and the migrate
#     service's exit code, drives the same workload through haproxy, checks that the relay
#     published the events to JetStream, and tears everything down. Any failed check exits
#     non-zero. Each step's duration is printed at the end.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
K8S="$ROOT/deploy/k8s"
KV_VERSION=1.37.0
K8S_VERSIONS="${COFFER_K8S_VERSIONS:-1.31.0 1.37.0}"
VENV="${COFFER_DEPLOY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/coffer-deploy/kubernetes-validate-$KV_VERSION}"
IMAGE="${COFFER_IMAGE:-coffer/coffer:local}"
# The build context: the working tree, or a directory given here (for example an export of
# a commit: `git archive HEAD | tar -x -C DIR`, plus deploy/ and .dockerignore).
CONTEXT="${COFFER_BUILD_CONTEXT:-$ROOT}"
PROJECT=coffer-deploy-test

STEPS=()
step_start=0
step_name=""
begin() { step_name="$1"; step_start=$(date +%s.%N); echo "== $step_name" >&2; }
end() {
  local took
  took=$(awk -v a="$step_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  STEPS+=("$(printf '%-58s %7ss' "$step_name" "$took")${1:+  ($1)}")
}
fail() { echo "test.sh: FAILED: $*" >&2; exit 1; }
summary() {
  [ "${#STEPS[@]}" -gt 0 ] || return 0
  echo "-- steps and durations" >&2
  printf '   %s\n' "${STEPS[@]}" >&2
}

# ---------------------------------------------------------------------------- (a)

validator() {
  if [ ! -x "$VENV/bin/kubernetes-validate" ]; then
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install -q --disable-pip-version-check "kubernetes-validate==$KV_VERSION" >&2
  fi
  echo "$VENV/bin/kubernetes-validate"
}

validate() { # label file...
  local label="$1" out version
  shift
  for version in $K8S_VERSIONS; do
    if ! out="$("$KV" -k "$version" --strict "$@" 2>&1)"; then
      echo "$out" >&2
      fail "$label does not validate against Kubernetes $version"
    fi
    if grep -E '^(ERROR|WARN)' <<<"$out" >&2; then
      fail "$label: warnings or errors against Kubernetes $version"
    fi
  done
}

quick() {
  begin "(a) install kubernetes-validate $KV_VERSION (cached)"
  KV="$(validator)"
  end

  begin "(a) validate deploy/k8s against Kubernetes $K8S_VERSIONS"
  local manifests=() file name listed
  for file in "$K8S"/*.yaml; do
    [ "$(basename "$file")" = kustomization.yaml ] || manifests+=("$file")
  done
  [ "${#manifests[@]}" -gt 0 ] || fail "no manifests in $K8S"
  validate "deploy/k8s" "${manifests[@]}"
  # Every manifest is applied by the kustomization, or left out of it on purpose.
  for file in "${manifests[@]}"; do
    name="$(basename "$file")"
    case "$name" in secret.yaml | migrate-job.yaml) continue ;; esac
    listed="$(grep -cE "^ *- +$name *$" "$K8S/kustomization.yaml" || true)"
    [ "$listed" = 1 ] || fail "$name is not listed in deploy/k8s/kustomization.yaml"
  done
  end "${#manifests[@]} files"

  if command -v kubectl >/dev/null 2>&1; then
    begin "(a) kubectl kustomize deploy/k8s, validate the output"
    local rendered
    rendered="$(mktemp --suffix=.yaml)"
    kubectl kustomize "$K8S" >"$rendered" || { rm -f "$rendered"; fail "kubectl kustomize deploy/k8s"; }
    validate "the kustomize output" "$rendered"
    rm -f "$rendered"
    end
  else
    echo "test.sh: kubectl not found: the kustomization is not rendered" >&2
  fi

  if command -v docker-compose >/dev/null 2>&1; then
    begin "(a) docker-compose config deploy/compose.yaml"
    COFFER_PG_PASSWORD=x COFFER_JWT_SECRET=x COFFER_ADMIN_API_KEY=x \
      docker-compose -f "$ROOT/deploy/compose.yaml" config -q || fail "deploy/compose.yaml"
    end
  fi
}

# ---------------------------------------------------------------------------- (b)

SINGLE=""
COMPOSE=()
COMPOSE_UP=0
STARTED_DOCKERD=""
cleanup() {
  local rc=$?
  set +e
  if [ -n "$SINGLE" ]; then
    [ "$rc" = 0 ] || docker logs --tail 40 "$SINGLE" 2>&1 | grep -v -i -E 'bearer|api key|secret' >&2
    docker rm -f -v "$SINGLE" >/dev/null 2>&1
  fi
  if [ "$COMPOSE_UP" = 1 ]; then
    if [ "$rc" != 0 ]; then
      "${COMPOSE[@]}" ps >&2
      "${COMPOSE[@]}" logs --no-color --tail 20 2>&1 | grep -v -i -E 'bearer|api key|secret' >&2
    fi
    "${COMPOSE[@]}" down -v --remove-orphans -t 30 >/dev/null 2>&1
  fi
  if [ -n "$STARTED_DOCKERD" ] && [ "${COFFER_TEST_KEEP_DOCKERD:-0}" != 1 ]; then
    kill -TERM "$STARTED_DOCKERD" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$STARTED_DOCKERD" 2>/dev/null || break; sleep 0.2; done
  fi
  summary
  [ "$rc" = 0 ] && echo "test.sh: all checks passed" >&2
  exit "$rc"
}

wait_until() { # seconds what command...
  local seconds="$1" what="$2" deadline
  shift 2
  deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || fail "$what (waited ${seconds}s)"
    sleep 0.5
  done
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

ports_free() { # port...
  python3 - "$@" <<'PY'
import socket, sys
busy = []
for port in map(int, sys.argv[1:]):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        busy.append(port)
    finally:
        s.close()
if busy:
    sys.exit("ports in use: " + " ".join(map(str, busy)))
PY
}

json_field() { # field  (reads JSON on stdin; dotted paths)
  python3 -c '
import json, sys
value = json.load(sys.stdin)
for key in sys.argv[1].split("."):
    value = value[key]
print(value)' "$1"
}

# http METHOD URL [TOKEN] [BODY] [IDEMPOTENCY-KEY]: the body on stdout, fails on non-2xx.
http() {
  local method="$1" url="$2" token="${3:-}" body="${4:-}" key="${5:-}" args
  args=(-sS -X "$method" -w '\n%{http_code}')
  [ -z "$token" ] || args+=(-H "authorization: Bearer $token")
  [ -z "$body" ] || args+=(-H 'content-type: application/json' -d "$body")
  [ -z "$key" ] || args+=(-H "idempotency-key: $key")
  local out status
  out="$(curl "${args[@]}" "$url")" || fail "$method $url: no answer"
  status="${out##*$'\n'}"
  out="${out%$'\n'*}"
  case "$status" in
    2??) printf '%s' "$out" ;;
    *) echo "$out" >&2; fail "$method $url answered $status" ;;
  esac
}

# The README's walk-through: two customers, a wallet each, a card top-up of 50.00, a
# transfer of 12.50, then both balances are checked. Emails are unique per run.
workload() { # base-url label
  local api="$1" tag="$2-$$-$RANDOM" ada bob wallet bob_wallet status
  http POST "$api/v1/auth/register" "" \
    "{\"email\": \"ada-$tag@example.com\", \"password\": \"correct horse battery staple\", \"name\": \"Ada\"}" >/dev/null
  http POST "$api/v1/auth/register" "" \
    "{\"email\": \"bob-$tag@example.com\", \"password\": \"another long passphrase\", \"name\": \"Bob\"}" >/dev/null
  ada="$(http POST "$api/v1/auth/login" "" \
    "{\"email\": \"ada-$tag@example.com\", \"password\": \"correct horse battery staple\"}" | json_field access_token)"
  bob="$(http POST "$api/v1/auth/login" "" \
    "{\"email\": \"bob-$tag@example.com\", \"password\": \"another long passphrase\"}" | json_field access_token)"
  http GET "$api/v1/auth/me" "$ada" >/dev/null
  wallet="$(http POST "$api/v1/wallets" "$ada" '{"currency": "USD", "name": "Everyday"}' "ada-wallet-$tag" | json_field id)"
  bob_wallet="$(http POST "$api/v1/wallets" "$bob" '{"currency": "USD"}' "bob-wallet-$tag" | json_field id)"
  status="$(http POST "$api/v1/wallets/$wallet/top-ups" "$ada" '{"amount": 5000, "payment_method": "tok_visa"}' \
    "ada-topup-$tag" | json_field status)"
  [ "$status" = succeeded ] || fail "top-up status $status"
  status="$(http POST "$api/v1/transfers" "$ada" \
    "{\"from_wallet_id\": \"$wallet\", \"to_email\": \"bob-$tag@example.com\", \"amount\": 1250, \"description\": \"lunch\"}" \
    "ada-pays-bob-$tag" | json_field status)"
  [ "$status" = posted ] || fail "transfer status $status"
  local ada_balance bob_balance
  ada_balance="$(http GET "$api/v1/wallets/$wallet" "$ada" | json_field balance.posted)"
  bob_balance="$(http GET "$api/v1/wallets/$bob_wallet" "$bob" | json_field balance.posted)"
  [ "$ada_balance" = 3750 ] || fail "Ada's balance is $ada_balance, not 3750"
  [ "$bob_balance" = 1250 ] || fail "Bob's balance is $bob_balance, not 1250"
  echo "workload through $api: register x2, login x2, wallets x2, top-up 5000, transfer 1250; balances 3750 / 1250" >&2
}

ensure_docker() {
  begin "(b) docker, docker-compose, debootstrap present; dockerd answering"
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  if ! docker info >/dev/null 2>&1; then
    dockerd --iptables=false --storage-driver=vfs >/tmp/coffer-test-dockerd.log 2>&1 &
    STARTED_DOCKERD=$!
    wait_until 60 "dockerd did not answer (log: /tmp/coffer-test-dockerd.log)" docker info
  fi
  if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose)
  else
    COMPOSE=(docker-compose)
  fi
  COMPOSE+=(-f "$ROOT/deploy/compose.yaml" -p "$PROJECT")
  end "${missing[*]:-nothing installed}${STARTED_DOCKERD:+; dockerd started}"
}

deploy() {
  trap cleanup EXIT
  ensure_docker

  begin "(b) tools/deploy/base-images.sh (existing images kept)"
  "$HERE/base-images.sh"
  end

  begin "(b) docker build deploy/Dockerfile -> $IMAGE"
  DOCKER_BUILDKIT=0 docker build -q --network host -f "$CONTEXT/deploy/Dockerfile" -t "$IMAGE" "$CONTEXT" >/dev/null \
    || fail "docker build"
  local size
  size="$(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.1f MB", $1 / 1e6}')"
  end "image $size"

  begin "(b) the image alone: embedded SQLite, health, workload, non-root"
  local port user uid
  port="$(free_port)"
  SINGLE="coffer-deploy-test-$$"
  # An admin key of our own, so that none is generated and printed in the logs.
  COFFER_ADMIN_API_KEY="$(head -c 24 /dev/urandom | base64 | tr -d '=+/\n')"
  export COFFER_ADMIN_API_KEY
  docker run -d --name "$SINGLE" --network host -e COFFER_ADMIN_API_KEY \
    -e COFFER_LISTEN="127.0.0.1:$port" -e COFFER_GRPC_LISTEN=none "$IMAGE" >/dev/null
  wait_until 60 "the container's /health/ready" curl -fsS "http://127.0.0.1:$port/health/ready"
  user="$(docker inspect -f '{{.Config.User}}' "$SINGLE")"
  uid="$(docker exec "$SINGLE" id -u)"
  [ "$uid" != 0 ] || fail "the container runs as root"
  [ "$(docker exec "$SINGLE" id -un)" = coffer ] || fail "the container's user is not coffer"
  [ "$(docker top "$SINGLE" -o pid,uid,comm | awk '$3 == "coffer" {print $2}')" = "$uid" ] \
    || fail "the coffer process does not run as uid $uid"
  docker exec "$SINGLE" test -s /var/lib/coffer/coffer.db || fail "no SQLite database in the data volume"
  workload "http://127.0.0.1:$port" single
  single_healthy() { [ "$(docker inspect -f '{{.State.Health.Status}}' "$SINGLE")" = healthy ]; }
  wait_until 60 "the image's HEALTHCHECK to report healthy" single_healthy
  docker rm -f -v "$SINGLE" >/dev/null
  SINGLE=""
  end "user $user (uid $uid), /health/ready 200, HEALTHCHECK healthy"

  begin "(b) compose: up (pg primary+replica, 3 nats, redis, migrate, 3 api, 2 relay, 2 workers, haproxy)"
  ports_free 27001 27002 27011 27012 27013 27021 27022 27023 27030 27041 27042 27043 \
    27080 27081 27082 27083 27091 27092 27093 27094 || fail "the compose topology's ports are taken"
  # Secrets for this run only: generated, exported to compose, never printed.
  COFFER_PG_PASSWORD="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  COFFER_JWT_SECRET="$(head -c 32 /dev/urandom | base64 | tr -d '=+/\n')"
  COFFER_ADMIN_API_KEY="$(head -c 24 /dev/urandom | base64 | tr -d '=+/\n')"
  export COFFER_PG_PASSWORD COFFER_JWT_SECRET COFFER_ADMIN_API_KEY COFFER_IMAGE="$IMAGE"
  COMPOSE_UP=1
  "${COMPOSE[@]}" up -d --no-build >&2 || fail "compose up"
  wait_until 180 "haproxy's /health/ready" curl -fsS http://127.0.0.1:27080/health/ready
  end

  begin "(b) compose: every node ready, migrate exited 0, non-root"
  local node_port exit_code
  for node_port in 27081 27082 27083 27091 27092 27093 27094; do
    curl -fsS "http://127.0.0.1:$node_port/health/ready" >/dev/null || fail "node on $node_port is not ready"
  done
  exit_code="$(docker inspect -f '{{.State.ExitCode}} {{.State.Status}}' "$("${COMPOSE[@]}" ps -q migrate)")"
  [ "$exit_code" = "0 exited" ] || fail "migrate: $exit_code"
  for service in api1 relay1 workers1; do
    [ "$(docker exec "$("${COMPOSE[@]}" ps -q "$service")" id -u)" = 10001 ] || fail "$service does not run as uid 10001"
  done
  local containers
  mapfile -t containers < <("${COMPOSE[@]}" ps -q api1 api2 api3 relay1 relay2 workers1 workers2)
  [ "${#containers[@]}" = 7 ] || fail "expected 7 Coffer containers, found ${#containers[@]}"
  all_healthy() {
    local container
    for container in "${containers[@]}"; do
      [ "$(docker inspect -f '{{.State.Health.Status}}' "$container")" = healthy ] || return 1
    done
  }
  wait_until 60 "every Coffer node's HEALTHCHECK to report healthy" all_healthy
  end "7 nodes 200; migrate exit 0; uid 10001"

  begin "(b) compose: workload through haproxy; events on JetStream"
  workload http://127.0.0.1:27080 compose
  workload http://127.0.0.1:27080 compose2
  published() { [ "$(curl -fsS http://127.0.0.1:27041/jsz | json_field messages)" -gt 0 ]; }
  wait_until 60 "the relay to publish events to JetStream" published
  local messages node_port served relayed=0
  messages="$(curl -fsS http://127.0.0.1:27041/jsz | json_field messages)"
  # haproxy spread the requests: every api node counted some /v1/ requests in /metrics.
  for node_port in 27081 27082 27083; do
    served="$(curl -fsS "http://127.0.0.1:$node_port/metrics" \
      | awk '/^coffer_http_requests_total\{.*route="\/v1\// { n += $NF } END { print n + 0 }')"
    [ "$served" -gt 0 ] || fail "the api node on $node_port served no /v1/ request"
  done
  # One relay (the lease holder) published them.
  for node_port in 27091 27092; do
    relayed=$((relayed + $(curl -fsS "http://127.0.0.1:$node_port/metrics" \
      | awk '/^coffer_events_relayed_total/ { n += $NF } END { print n + 0 }')))
  done
  [ "$relayed" -gt 0 ] || fail "no relay node counted relayed events"
  end "2 workloads ok; every api node served /v1/; $relayed events relayed; JetStream holds $messages messages"

  begin "(b) compose: down -v"
  "${COMPOSE[@]}" down -v --remove-orphans -t 30 >/dev/null 2>&1 || fail "compose down"
  COMPOSE_UP=0
  end
}

trap summary EXIT
quick
if [ "${COFFER_TEST_DEPLOY:-0}" = 1 ]; then
  deploy
fi
