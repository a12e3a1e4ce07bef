#!/usr/bin/env bash
# The web console's browser tests (console.test.mjs) in real headless Chromium: installs
# Debian's chromium when it is missing, playwright-core and axe-core from npm (pinned in
# package-lock.json), builds the server, and runs node's test runner.
#
#   tools/browser/run.sh                                   # the suite
#   COFFER_SCREENSHOTS_DIR=docs/screenshots tools/browser/run.sh   # and new screenshots
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"

if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "/usr/bin/chromium is needed (Debian: apt-get install chromium)" >&2
    exit 1
  fi
fi
command -v node >/dev/null || { echo "node and npm are needed for the browser tests" >&2; exit 1; }

(cd tools/browser && npm ci --no-audit --no-fund --loglevel=error)

cargo build -p coffer --bin coffer --locked
target_dir="${CARGO_TARGET_DIR:-$root/target}"
export COFFER_BIN="$target_dir/debug/coffer"
if [ -n "${COFFER_SCREENSHOTS_DIR:-}" ]; then
  mkdir -p "$COFFER_SCREENSHOTS_DIR"
  COFFER_SCREENSHOTS_DIR="$(cd "$COFFER_SCREENSHOTS_DIR" && pwd)"
  export COFFER_SCREENSHOTS_DIR
fi
cd tools/browser
node --test --test-concurrency=1 console.test.mjs
