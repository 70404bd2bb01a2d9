#!/usr/bin/env bash
# Soak and Redis-outage test of a release `klynge serve --demo` (the demo
# catalogue: real organisations and companies), with wrk and scripts/load/soak.lua.
#
#   scripts/soak.sh                         # 10 min soak + Redis outage phase
#   SOAK=120s scripts/soak.sh               # shorter soak
#
# Phase 1, soak (in-process cache bounded to CACHE_BYTES): 32 connections of
# search / partners / shortlists / networks for $SOAK while one profile is
# written every second. Passes when: no 5xx and no socket error, the model was
# refitted during the soak, and RSS at the end <= RSS after warm-up + CACHE_BYTES
# + 20 %.
# Phase 2, Redis outage: the same mix against a service using a redis-server of
# its own, 20 s with Redis up, 15 s with it killed, 20 s after its restart; once
# as fast as the server answers, once at a fixed offered load (OUTAGE_PACE_MS).
# Passes when: no 5xx, no socket error, and in the paced run p99 with Redis down
# <= p99 with Redis up + 10 ms.
# Prints one summary line per phase and exits non-zero when a check fails.
#
# Phase 2 runs the service with its default in-process bound (OUTAGE_CACHE_BYTES,
# 256 MiB): the standby answers only what it holds, so a bound below the working
# set that Redis holds shows up as misses while Redis is away. Each line gives
# the cache hit rate of its run.
# Settings (environment): SOAK=600s, CONNECTIONS=32, THREADS=2, PORT=18960,
# CACHE_BYTES=67108864, OUTAGE_CACHE_BYTES=268435456, SKIP_BUILD=1 (use
# target/release/klynge as it is), WORK=/tmp/klynge-soak.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SOAK=${SOAK:-600s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
PORT=${PORT:-18960}
CACHE_BYTES=${CACHE_BYTES:-67108864}
OUTAGE_CACHE_BYTES=${OUTAGE_CACHE_BYTES:-268435456}
OUTAGE_PACE_MS=${OUTAGE_PACE_MS:-20}
WORK=${WORK:-${TMPDIR:-/tmp}/klynge-soak}
LUA=$ROOT/scripts/load/soak.lua
BASE=http://127.0.0.1:$PORT
KEY=soak-write-key
FAILED=0

say() { printf '\n== %s\n' "$*" >&2; }
need() { # command package
  command -v "$1" >/dev/null && return
  say "installing $2"
  local sudo_cmd=""
  [[ $(id -u) -ne 0 ]] && sudo_cmd=sudo
  $sudo_cmd apt-get install -y -qq "$2" >/dev/null || { $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq "$2" >/dev/null; }
}
need wrk wrk
need redis-server redis-server
need curl curl

BIN=$ROOT/target/release/klynge
if [[ -z ${SKIP_BUILD:-} ]]; then
  say "building release"
  (cd "$ROOT" && cargo build --release --bin klynge)
fi
rm -rf "$WORK"
mkdir -p "$WORK"

SERVER=""
REDIS=""
stop_all() {
  [[ -n $SERVER ]] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null || true
  [[ -n $REDIS ]] && kill "$REDIS" 2>/dev/null && wait "$REDIS" 2>/dev/null || true
  [[ -n ${WRITER:-} ]] && kill "$WRITER" 2>/dev/null || true
}
trap stop_all EXIT INT TERM

start_server() { # data-dir [redis url] [cache bytes]
  env KLYNGE__AUTH__WRITE_KEYS=$KEY KLYNGE__LOG__LEVEL=warn KLYNGE__CACHE__MEMORY_BYTES=${3:-$CACHE_BYTES} \
    ${2:+KLYNGE__CACHE__REDIS_URL=$2} \
    "$BIN" serve --demo --port "$PORT" --data-dir "$1" >"$WORK/server-$(basename "$1").log" 2>&1 &
  SERVER=$!
  local started=$(date +%s)
  until curl -sf "$BASE/health/ready" >/dev/null 2>&1; do
    kill -0 "$SERVER" 2>/dev/null || { echo "error: the server exited" >&2; tail -n 20 "$WORK"/server-*.log >&2; exit 1; }
    (($(date +%s) - started < 300)) || { echo "error: not ready after 300 s" >&2; exit 1; }
    sleep 1
  done
}
stop_server() { kill "$SERVER" && wait "$SERVER" 2>/dev/null || true; SERVER=""; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$SERVER/status"; }
model_generation() {
  curl -s "$BASE/health/ready" | python3 -c 'import json,sys; print((json.load(sys.stdin).get("model") or {}).get("generation", ""))'
}
cache_counts() { # -> "hits misses" so far
  curl -s "$BASE/metrics" | awk '/^klynge_cache_requests_total/ { if ($0 ~ /hit/) h += $NF; else m += $NF } END { printf "%d %d\n", h, m }'
}
wrk_run() { # duration label -> prints the RESULT fields, then the cache hit rate of the run
  local h0 m0 h1 m1
  read -r h0 m0 <<<"$(cache_counts)"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$1" --timeout 10s --latency -s "$LUA" "$BASE" -- "$WORK/ids.txt" >"$WORK/wrk-$2.txt"
  read -r h1 m1 <<<"$(cache_counts)"
  printf '%s\t%s\n' "$(grep '^RESULT' "$WORK/wrk-$2.txt" | cut -f2-)" \
    "$(awk -v h=$((h1 - h0)) -v m=$((m1 - m0)) 'BEGIN { printf "%.2f", (h + m) ? h / (h + m) : 0 }')"
}
writer_loop() { # one profile write a second, rotating over a few ids
  local i=0
  while true; do
    i=$((i + 1))
    curl -s -o /dev/null -X PUT "$BASE/v1/firms/soak-$((i % 20))" -H "authorization: Bearer $KEY" \
      -H 'content-type: application/json' \
      -d "{\"name\": \"Soak Dairy $i\", \"kind\": \"company\", \"country\": \"DK\", \"description\": \"Organic dairy and cheese, batch $i.\", \"sectors\": [\"C10.51\"]}"
    sleep 1
  done
}

say "phase 1: soak for $SOAK at $CONNECTIONS connections, one write a second, cache bound $CACHE_BYTES bytes"
start_server "$WORK/data-soak"
curl -s "$BASE/v1/firms?limit=100" | grep -o '"id":"[^"]*"' | cut -d'"' -f4 >"$WORK/ids.txt"
for q in dairy robot software battery housing wind; do
  curl -s "$BASE/v1/firms?q=$q&limit=100" | grep -o '"id":"[^"]*"' | cut -d'"' -f4 >>"$WORK/ids.txt"
done
sort -u -o "$WORK/ids.txt" "$WORK/ids.txt"
echo "$(wc -l <"$WORK/ids.txt") firm ids" >&2
wrk_run 30s warmup >/dev/null
warm_rss=$(rss_kib)
generation_before=$(model_generation)
writer_loop &
WRITER=$!
IFS=$'\t' read -r requests ok client server errors p50 p99 max hits <<<"$(wrk_run "$SOAK" soak)"
kill "$WRITER" 2>/dev/null || true
WRITER=""
end_rss=$(rss_kib)
end_parts=$(awk '/^RssAnon|^RssFile/ {printf "%s %d MiB ", $1, $2 / 1024}' "/proc/$SERVER/status")
generation_after=$(model_generation)
# Where the memory is: once the last refit (the writes just stopped) is done and
# the periodic trim has run, what stays is live.
for _ in $(seq 1 120); do
  curl -s "$BASE/health/ready" | grep -q '"current":true' && break
  sleep 1
done
sleep 35
settled_rss=$(rss_kib)
limit_kib=$(((warm_rss + CACHE_BYTES / 1024) * 120 / 100))
verdict=pass
((server == 0 && errors == 0)) || verdict=FAIL
[[ -n $generation_after && $generation_after != "$generation_before" ]] || verdict=FAIL
((end_rss <= limit_kib)) || verdict=FAIL
[[ $verdict == pass ]] || FAILED=1
echo "soak $SOAK: $verdict — $requests requests, 2xx $ok, 4xx $client, 5xx $server, socket errors $errors; p50 $p50 ms, p99 $p99 ms, max $max ms, cache hit rate $hits; model generation $generation_before -> $generation_after; RSS warm $((warm_rss / 1024)) MiB -> end $((end_rss / 1024)) MiB (limit $((limit_kib / 1024)) MiB; ${end_parts}); settled (last refit done, 35 s idle) $((settled_rss / 1024)) MiB"
stop_server

say "phase 2: Redis outage under load"
REDIS_PORT=$((PORT + 1))
start_redis() {
  redis-server --port "$REDIS_PORT" --save '' --appendonly no --daemonize no >>"$WORK/redis.log" 2>&1 &
  REDIS=$!
  sleep 0.5
}
outage_run() { # label pace-ms: Redis up 20 s, killed for 15 s, back 20 s
  local r1 ok1 c1 s1 e1 p50_up p99_up max1 hits1 r2 ok2 c2 s2 e2 p50_down p99_down max2 hits2
  local r3 ok3 c3 s3 e3 p50_back p99_back max3 hits3 cache_down hit_after verdict=pass
  export PACE_MS=$2
  IFS=$'\t' read -r r1 ok1 c1 s1 e1 p50_up p99_up max1 hits1 <<<"$(wrk_run 20s "redis-up-$1")"
  kill "$REDIS" && wait "$REDIS" 2>/dev/null || true
  REDIS=""
  cache_down=$(curl -s "$BASE/health/ready" | grep -o '"state":"[a-z]*"')
  IFS=$'\t' read -r r2 ok2 c2 s2 e2 p50_down p99_down max2 hits2 <<<"$(wrk_run 15s "redis-down-$1")"
  start_redis
  sleep 1.5
  hit_after=$(curl -s -o /dev/null "$BASE/v1/firms?q=dairy&limit=5"; curl -s -D - -o /dev/null "$BASE/v1/firms?q=dairy&limit=5" | grep -i '^x-cache' | tr -d '\r')
  IFS=$'\t' read -r r3 ok3 c3 s3 e3 p50_back p99_back max3 hits3 <<<"$(wrk_run 20s "redis-back-$1")"
  ((s1 + s2 + s3 == 0 && e1 + e2 + e3 == 0)) || verdict=FAIL
  awk -v down="$p99_down" -v up="$p99_up" 'BEGIN { exit !(down <= up + 10) }' || verdict=FAIL
  echo "redis outage, $1 (standby bound $OUTAGE_CACHE_BYTES bytes): $verdict — up: $r1 requests, p99 $p99_up ms, hit rate $hits1; down 15 s ($cache_down): $r2 requests, p99 $p99_down ms, hit rate $hits2; back: $r3 requests, p99 $p99_back ms, hit rate $hits3, first repeat $hit_after; 5xx $((s1 + s2 + s3)), socket errors $((e1 + e2 + e3))"
  [[ $verdict == pass ]]
}
start_redis
start_server "$WORK/data-redis" "redis://127.0.0.1:$REDIS_PORT" "$OUTAGE_CACHE_BYTES"
wrk_run 10s redis-warmup >/dev/null
# As fast as the server answers: the phases see different loads (a hit costs less
# CPU than a Redis round trip, so wrk sends more), on cores wrk shares.
outage_run "saturating" 0 || true
# The same offered load in every phase (each connection pauses PACE_MS between
# requests, ~1,600 req/s at 32 connections): what Redis being away costs a
# request. This run decides the verdict.
outage_run "paced ${OUTAGE_PACE_MS}ms" "$OUTAGE_PACE_MS" || FAILED=1
stop_server
exit $FAILED
