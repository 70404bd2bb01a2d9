# Shared by the fault scripts (sourced, not run): the binary, a scratch dir, a
# free port, and starting/stopping a service on a data dir. The service runs
# without the automatic refit (`models.retrain_debounce_seconds = 0`, unless the
# caller sets KLYNGE__MODELS__RETRAIN_DEBOUNCE_SECONDS): these scripts test
# storage, not models.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${KLYNGE_BIN:-$ROOT/target/debug/klynge}
KEY=fault-write-key
if [[ ! -x $BIN ]]; then
  echo "== building $BIN" >&2
  (cd "$ROOT" && cargo build --bin klynge) >&2
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/klynge-fault.XXXXXX")
SERVER=""

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server DATA_DIR PORT LOG: starts `klynge serve $SERVE_ARGS` in the
# background (pid in $SERVER) and waits up to 120 s for /health/live; returns 1
# if it exited or never answered.
start_server() {
  local data=$1 port=$2 log=$3
  KLYNGE__AUTH__WRITE_KEYS=$KEY KLYNGE__MODELS__RETRAIN_DEBOUNCE_SECONDS=${KLYNGE__MODELS__RETRAIN_DEBOUNCE_SECONDS:-0} \
    "$BIN" serve ${SERVE_ARGS:-} --port "$port" --data-dir "$data" >>"$log" 2>&1 &
  SERVER=$!
  local waited=0
  until [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health/live" || true) == 200 ]]; do
    if ! kill -0 "$SERVER" 2>/dev/null || (( waited > 1200 )); then
      SERVER=""
      return 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
}

stop_server() { # SIGTERM and wait
  if [[ -n $SERVER ]]; then
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    SERVER=""
  fi
}

kill9_server() {
  if [[ -n $SERVER ]]; then
    kill -9 "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    SERVER=""
  fi
}

cleanup() {
  stop_server
  if [[ ${KEEP_WORK:-} == 1 || ${FAILED:-0} != 0 ]]; then
    echo "(work dir kept: $WORK)" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
