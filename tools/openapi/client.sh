#!/usr/bin/env bash
# Generates a Python client from Coffer's OpenAPI document with openapi-python-client, a
# mainstream generator, and fails if the generator had to skip or degrade anything: any
# warning or error it prints (an endpoint it will not generate, a response or schema it
# cannot parse, a $ref it cannot find, …), even when it exits 0; an operation of the
# document without a generated endpoint module (one module per operation, matched by
# method and path, so a silently dropped or overwritten endpoint fails too); and a
# generated module that does not import. The client goes to a scratch directory that is
# removed afterwards; nothing is written to the work tree.
#
#   tools/openapi/client.sh                                      # builds coffer, checks its document
#   COFFER_OPENAPI_FILE=/tmp/openapi.json tools/openapi/client.sh   # checks a document file instead
#
# Settings (environment):
#   COFFER_OPENAPI_FILE   an OpenAPI document (JSON) to check instead of `coffer openapi`'s
#   COFFER_OPENAPI_VENV   where the generator is installed (default $CARGO_TARGET_DIR/openapi-venv);
#                         reinstalled when tools/openapi/requirements.txt changes
#   COFFER_BIN            the coffer binary (default: cargo build, then target/debug/coffer)
# Exit status: 0 when the generator handled every endpoint and schema; 1 when it did not
# (each problem is listed, then the generator's own output); other non-zero when the
# check itself could not run (build, install).
set -euo pipefail
cd "$(dirname "$0")/../.."

TARGET_DIR="$(realpath -m "${CARGO_TARGET_DIR:-target}")"
VENV="$(realpath -m "${COFFER_OPENAPI_VENV:-$TARGET_DIR/openapi-venv}")"
REQUIREMENTS=tools/openapi/requirements.txt

# The pinned requirements are copied into the venv once installed: a changed pin then
# reinstalls instead of running the old generator from the build cache.
if [ ! -x "$VENV/bin/openapi-python-client" ] || ! cmp -s "$REQUIREMENTS" "$VENV/requirements.txt"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  cp "$REQUIREMENTS" "$VENV/requirements.txt"
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

if [ -n "${COFFER_OPENAPI_FILE:-}" ]; then
  DOCUMENT="$(realpath "$COFFER_OPENAPI_FILE")"
else
  if [ -z "${COFFER_BIN:-}" ]; then
    cargo build --quiet --locked -p coffer --bin coffer
    COFFER_BIN="$TARGET_DIR/debug/coffer"
  fi
  DOCUMENT="$WORK/openapi.json"
  "$COFFER_BIN" openapi >"$DOCUMENT"
fi

# --meta none: the bare package, no pyproject. The generator's post hooks (ruff, installed
# with it) must be on PATH, or it warns that it skipped them. From the scratch directory,
# so that nothing it leaves behind lands in the work tree.
generator_status=0
(cd "$WORK" && PATH="$VENV/bin:$PATH" NO_COLOR=1 TERM=dumb _TYPER_STANDARD_TRACEBACK=1 \
  "$VENV/bin/openapi-python-client" generate --path "$DOCUMENT" --meta none \
  --output-path "$WORK/coffer_client" --fail-on-warning \
  >"$WORK/generator.out" 2>"$WORK/generator.err") || generator_status=$?

if ! "$VENV/bin/python" tools/openapi/check_client.py "$DOCUMENT" "$WORK/coffer_client" \
  "$WORK/generator.out" "$WORK/generator.err" "$generator_status"; then
  echo "--- openapi-python-client's own output:" >&2
  cat "$WORK/generator.out" "$WORK/generator.err" >&2
  exit 1
fi
