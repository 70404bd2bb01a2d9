#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints, and all tests (unit + integration
# against a real tantivy index and a real Redis). The integration tests start
# their own redis-server on a free port; this script installs it when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
    echo "redis-server not found; installing it from the distribution's packages" >&2
    sudo_cmd=""
    if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
    if command -v apt-get >/dev/null 2>&1; then
        $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq redis-server >/dev/null
    elif command -v dnf >/dev/null 2>&1; then
        $sudo_cmd dnf install -y -q redis
    elif command -v brew >/dev/null 2>&1; then
        brew install redis
    else
        echo "cannot install redis-server: install it and rerun" >&2
        exit 1
    fi
fi

echo "== cargo fmt --check" >&2
cargo fmt --all --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test" >&2
cargo test --workspace --locked "$@"
# The outside-client check: schemathesis against the demo service, using the
# debug binary `cargo test` just built (no extra build). SKIP_SCHEMATHESIS=1 skips it.
if [[ -z ${SKIP_SCHEMATHESIS:-} ]]; then
    echo "== schemathesis" >&2
    KLYNGE_BIN=target/debug/klynge scripts/schemathesis.sh
fi
