#!/usr/bin/env bash
# Rebuilds data/demo/ (compiled into the binary) from ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
shared="${KLYNGE_SHARED_DATA:-../shared/data}"
cargo run --release --quiet -- demo-catalogue \
    --consortia "$shared/consortia" --firms "$shared/firms/firms.jsonl.gz" --companies "${1:-2500}" --out data/demo
ls -l data/demo
