#!/usr/bin/env bash
# HTTP load test of a release `klynge serve` on a synthetic catalogue built from
# the real companies of shared/data/firms, with wrk.
#
#   scripts/load.sh                       # 40000 profiles, 30 s per scenario
#   N=200000 DURATION=60s scripts/load.sh
#
# Scenarios (each `wrk --latency`, script scripts/load/klynge.lua):
#   cached     GET /v1/firms/{id}/partners, the same id every time (cache hits)
#   partners   GET /v1/firms/{id}/partners rotating over every firm of the catalogue
#              in random order, k changing after each full pass: every request a miss
#   networks   POST /v1/networks, anchor rotating the same way, with an opportunity
#              text, 5-8 members, >= 1 SME, 3 alternatives: every request a miss
#
# Settings (environment):
#   N=40000            catalogue size (klynge gen --count)
#   DURATION=30s       wrk duration per scenario
#   THREADS=2          wrk threads
#   CONNECTIONS=32     connections for the cached scenario
#   UNCACHED_CONNECTIONS=4   connections for the uncached ones (more only queue)
#   PORT=18950         port of the service under test
#   WORK=/tmp/klynge-load-$N   catalogue and data dir; reused when present
#   FRESH=1            rebuild the catalogue and data dir even when present
#   SOURCE=../shared/data/firms/firms.jsonl.gz
#   LOG_LEVEL=warn     service log level (info logs one line per request)
#   SKIP_BUILD=1       use the existing target/release/klynge
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${N:-40000}
DURATION=${DURATION:-30s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
UNCACHED_CONNECTIONS=${UNCACHED_CONNECTIONS:-4}
PORT=${PORT:-18950}
WORK=${WORK:-${TMPDIR:-/tmp}/klynge-load-$N}
SOURCE=${SOURCE:-$ROOT/../shared/data/firms/firms.jsonl.gz}
LOG_LEVEL=${LOG_LEVEL:-warn}
LUA=$ROOT/scripts/load/klynge.lua
BASE=http://127.0.0.1:$PORT

say() { printf '\n== %s\n' "$*" >&2; }

[[ -f $SOURCE ]] || { echo "error: the firm catalogue $SOURCE is missing (set SOURCE=...)" >&2; exit 1; }
if ! command -v wrk >/dev/null; then
  say "installing wrk"
  if command -v apt-get >/dev/null; then
    apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
  fi
  command -v wrk >/dev/null || { echo "error: wrk is not installed" >&2; exit 1; }
fi
command -v curl >/dev/null || { echo "error: curl is needed" >&2; exit 1; }
if curl -s -o /dev/null "$BASE/health/live"; then
  echo "error: something already listens on port $PORT (set PORT=...)" >&2
  exit 1
fi

BIN=$ROOT/target/release/klynge
if [[ -z ${SKIP_BUILD:-} ]]; then
  say "building release"
  (cd "$ROOT" && cargo build --release --bin klynge)
fi
[[ -x $BIN ]] || { echo "error: $BIN is missing" >&2; exit 1; }

DATA=$WORK/data
CATALOGUE=$WORK/catalogue
if [[ -n ${FRESH:-} || ! -f $WORK/.ready ]]; then
  rm -rf "$WORK"
  mkdir -p "$WORK"
  say "generating $N profiles"
  "$BIN" gen --source "$SOURCE" --count "$N" --seed 42 --out "$CATALOGUE"
  say "ingesting into $DATA"
  start=$(date +%s%N)
  "$BIN" ingest --data-dir "$DATA" "$CATALOGUE/firms.ndjson" --collaborations "$CATALOGUE/collaborations.ndjson"
  echo "ingest took $((($(date +%s%N) - start) / 1000000)) ms" >&2
  say "training"
  "$BIN" train --data-dir "$DATA"
  # Every firm id, in a fixed random order.
  sed -n 's/.*"id":"\([^"]*\)".*/\1/p' "$CATALOGUE/firms.ndjson" | shuf --random-source=<(yes 42) >"$WORK/ids.txt"
  touch "$WORK/.ready"
else
  say "reusing the catalogue in $WORK (FRESH=1 rebuilds it)"
fi
echo "$(wc -l <"$WORK/ids.txt") firm ids" >&2

say "starting klynge serve on port $PORT"
KLYNGE__AUTH__WRITE_KEYS=load-test-write-key \
  KLYNGE__LOG__LEVEL=$LOG_LEVEL \
  "$BIN" serve --port "$PORT" --data-dir "$DATA" >"$WORK/server.log" 2>&1 &
SERVER=$!
stop() {
  if kill -0 "$SERVER" 2>/dev/null; then
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    echo "server stopped (log: $WORK/server.log)" >&2
  fi
}
trap stop EXIT INT TERM

started=$(date +%s)
until curl -sf "$BASE/health/ready" 2>/dev/null | grep -q '"current":true'; do
  kill -0 "$SERVER" 2>/dev/null || { echo "error: the server exited; see $WORK/server.log" >&2; tail -20 "$WORK/server.log" >&2; exit 1; }
  (($(date +%s) - started < 600)) || { echo "error: not ready with a current model after 600 s" >&2; exit 1; }
  sleep 1
done
echo "ready after $(($(date +%s) - started)) s: $(curl -s "$BASE/health/ready" | grep -o '"firms":[0-9]*' | head -1)" >&2

FIRST=$(head -1 "$WORK/ids.txt")
curl -sf -o /dev/null "$BASE/v1/firms/$FIRST/partners?k=20" # warms the cache for the cached scenario

RESULTS=()
run() { # name connections
  local name=$1 connections=$2 out=$WORK/wrk-$1.txt
  local threads=$((THREADS < connections ? THREADS : connections)) # wrk needs a connection per thread
  say "$name: wrk -t$threads -c$connections -d$DURATION --latency"
  wrk -t"$threads" -c"$connections" -d"$DURATION" --timeout 30s --latency -s "$LUA" "$BASE" \
    -- "$name" "$WORK/ids.txt" "$threads" | tee "$out" >&2
  RESULTS+=("$(grep '^RESULT' "$out" | cut -f2-)"$'\t'"$connections")
}
run cached "$CONNECTIONS"
run partners "$UNCACHED_CONNECTIONS"
run networks "$UNCACHED_CONNECTIONS"

describe() {
  case $1 in
    cached) echo 'GET /v1/firms/{id}/partners, cached (same id)' ;;
    partners) echo 'GET /v1/firms/{id}/partners, uncached (rotating ids)' ;;
    networks) echo 'POST /v1/networks, uncached (rotating anchors)' ;;
  esac
}
echo
echo "klynge load test: $N profiles, $(nproc) cores, wrk $THREADS threads, $DURATION per scenario"
echo
echo "| scenario | connections | req/s | p50 ms | p90 ms | p99 ms | max ms | requests | non-200 | socket errors | x-cache hit/miss/other |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
for line in "${RESULTS[@]}"; do
  IFS=$'\t' read -r mode rps p50 p90 p99 max requests bad errors hits misses others connections <<<"$line"
  echo "| $(describe "$mode") | $connections | $rps | $p50 | $p90 | $p99 | $max | $requests | $bad | $errors | $hits/$misses/$others |"
done
