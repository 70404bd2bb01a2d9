#!/usr/bin/env bash
# Redis killed and restarted under load: `klynge serve --demo` on a
# redis-server of its own (free port, no persistence) while wrk sends the soak
# mix (scripts/load/soak.lua: search, partners, shortlists, networks) for the
# whole run; Redis is killed (-9) after UP seconds and started again DOWN
# seconds later. Passes when: no request failed (no 5xx, no socket error or
# timeout), `/health/ready` said the cache was `down` during the outage and `up`
# again after it, and the cache serves hits again within seconds of Redis's
# return, checked with keys never requested before the restart (a fresh search,
# asked twice: the second answer is `x-cache: hit`) and with the restarted,
# empty Redis holding keys written by the service. Prints one summary line;
# exits 1 when something failed.
#
# Settings (environment): KLYNGE_BIN (default target/debug/klynge), UP=10,
# DOWN=12, BACK=12 (seconds), CONNECTIONS=8, THREADS=2.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
UP=${UP:-10}
DOWN=${DOWN:-12}
BACK=${BACK:-12}
CONNECTIONS=${CONNECTIONS:-8}
THREADS=${THREADS:-2}
FAILED=1

for tool in wrk redis-server redis-cli; do
  if ! command -v "$tool" >/dev/null; then
    package=wrk
    [[ $tool == wrk ]] || package=redis-server
    echo "== installing $package" >&2
    sudo_cmd=""
    [[ $(id -u) -ne 0 ]] && sudo_cmd=sudo
    $sudo_cmd apt-get install -y -qq "$package" >/dev/null \
      || { $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq "$package" >/dev/null; }
  fi
done

PORT=$(free_port)
REDIS_PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
REDIS=""
start_redis() {
  redis-server --port "$REDIS_PORT" --save '' --appendonly no --daemonize no >>"$WORK/redis.log" 2>&1 &
  REDIS=$!
  until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.1; done
}
stop_all() {
  [[ -n ${LOAD:-} ]] && kill "$LOAD" 2>/dev/null || true
  [[ -n $REDIS ]] && kill "$REDIS" 2>/dev/null && wait "$REDIS" 2>/dev/null || true
  cleanup
}
trap stop_all EXIT
fail() {
  echo "redis-restart: FAIL ($*)"
  exit 1
}
cache_state() {
  curl -s --max-time 5 "$BASE/health/ready" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["cache"]["state"])' 2>/dev/null || echo "?"
}
# A search nobody asked before (the nonce is in the query text), twice: prints
# the second answer's x-cache.
fresh_hit() {
  local url="$BASE/v1/firms?q=dairy%20probe$1$RANDOM&limit=5"
  curl -s -o /dev/null --max-time 10 "$url"
  curl -s -o /dev/null -D - --max-time 10 "$url" | awk -F': *' 'tolower($1) == "x-cache" { gsub("\r", "", $2); print $2 }'
}

start_redis
# The demo's model is fitted at start (recommendations need it) but not refitted
# during the run.
KLYNGE__CACHE__REDIS_URL=redis://127.0.0.1:$REDIS_PORT SERVE_ARGS=--demo \
  KLYNGE__MODELS__RETRAIN_DEBOUNCE_SECONDS=3600 KLYNGE__MODELS__RETRAIN_MAX_WAIT_SECONDS=3600 \
  start_server "$WORK/data" "$PORT" "$WORK/service.log" || fail "the service did not start"
started=$SECONDS
until [[ $(curl -s -o /dev/null -w '%{http_code}' "$BASE/health/ready" || true) == 200 ]]; do
  (( SECONDS - started < 600 )) || fail "not ready within 600 s"
  sleep 1
done
[[ $(cache_state) == up ]] || fail "cache not up at the start"
curl -s "$BASE/v1/firms?limit=100" | grep -o '"id":"[^"]*"' | cut -d'"' -f4 >"$WORK/ids.txt"
for q in dairy robot software battery housing wind; do
  curl -s "$BASE/v1/firms?q=$q&limit=100" | grep -o '"id":"[^"]*"' | cut -d'"' -f4 >>"$WORK/ids.txt"
done
sort -u -o "$WORK/ids.txt" "$WORK/ids.txt"

total=$((UP + DOWN + BACK))
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${total}s" --timeout 10s -s "$ROOT/scripts/load/soak.lua" "$BASE" -- "$WORK/ids.txt" \
  >"$WORK/wrk.txt" 2>&1 &
LOAD=$!
sleep "$UP"
kill -9 "$REDIS" && wait "$REDIS" 2>/dev/null || true
REDIS=""
killed=$SECONDS
# The state during the outage: polled until it says down (at most the outage).
down_state="?"
while (( SECONDS - killed < DOWN )); do
  down_state=$(cache_state)
  [[ $down_state == down ]] && break
  sleep 0.5
done
down_after=$((SECONDS - killed))
sleep $((DOWN - (SECONDS - killed) > 0 ? DOWN - (SECONDS - killed) : 0))
start_redis
restarted=$(date +%s.%N)
up_state="?"
hit=""
for attempt in $(seq 1 40); do
  [[ $up_state == up ]] || up_state=$(cache_state)
  if [[ $up_state == up ]]; then
    hit=$(fresh_hit "$attempt")
    [[ $hit == hit ]] && break
  fi
  sleep 0.5
done
hit_after=$(python3 -c "import time; print(f'{time.time() - $restarted:.1f}')")
redis_keys=$(redis-cli -p "$REDIS_PORT" dbsize)
wait "$LOAD" || true
LOAD=""
result=$(grep '^RESULT' "$WORK/wrk.txt" | cut -f2- || true)
[[ -n $result ]] || { cat "$WORK/wrk.txt" >&2; fail "wrk printed no result"; }
IFS=$'\t' read -r requests ok client server errors p50 p99 max <<<"$result"
panics=$(grep -c 'panicked at' "$WORK/service.log" || true)

summary="$requests requests over ${total}s at $CONNECTIONS connections ($ok 2xx, $client 4xx, $server 5xx, $errors socket errors/timeouts; p99 $p99 ms); Redis killed after ${UP}s for ${DOWN}s: /health/ready cache \"$down_state\" ${down_after}s after the kill, \"$up_state\" after the restart; fresh key x-cache \"${hit:-none}\" ${hit_after}s after the restart; $redis_keys keys in the restarted Redis; $panics panics"
if (( server == 0 && errors == 0 && ok > 0 && panics == 0 && redis_keys > 0 )) \
  && [[ $down_state == down && $up_state == up && $hit == hit ]]; then
  FAILED=0
  echo "redis-restart: PASS ($summary)"
else
  echo "redis-restart: FAIL ($summary)"
  exit 1
fi
