#!/usr/bin/env bash
# Two writers on one data dir: with `klynge serve` running, a second `klynge
# serve` and a `klynge ingest` on the same data dir must each stop at once with
# a clear "locked by another klynge process" error (non-zero exit), and the first
# service must go on answering and writing. Prints one summary line; exits 1
# when a second writer got in or the error is unclear.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PORT=$(free_port)
DATA=$WORK/data
FAILED=1
start_server "$DATA" "$PORT" "$WORK/service.log" || { echo "two-writers: FAIL (the first service did not start)"; exit 1; }
curl -sf -o /dev/null -X PUT "http://127.0.0.1:$PORT/v1/firms/first" -H "Authorization: Bearer $KEY" \
  -H 'content-type: application/json' --data '{"name":"First writer"}' || { echo "two-writers: FAIL (first write refused)"; exit 1; }

echo '{"id":"second","name":"Second writer"}' >"$WORK/one.ndjson"
set +e
timeout 120 "$BIN" ingest --data-dir "$DATA" "$WORK/one.ndjson" >"$WORK/ingest.out" 2>&1
ingest_status=$?
KLYNGE__AUTH__WRITE_KEYS=$KEY timeout 120 "$BIN" serve --port "$(free_port)" --data-dir "$DATA" >"$WORK/serve2.out" 2>&1
serve_status=$?
set -e
still=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "http://127.0.0.1:$PORT/v1/firms/after" -H "Authorization: Bearer $KEY" \
  -H 'content-type: application/json' --data '{"name":"Still writing"}' || true)
second=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/v1/firms/second" || true)
clear() { grep -q 'locked by another klynge process' "$1"; }
if (( ingest_status != 0 && serve_status != 0 )) && clear "$WORK/ingest.out" && clear "$WORK/serve2.out" \
  && [[ $still == 200 && $second == 404 ]]; then
  FAILED=0
  echo "two-writers: PASS (ingest exit $ingest_status, second serve exit $serve_status, both: \"$(grep -o 'locked by another klynge process[^)]*)' "$WORK/ingest.out" | head -1)\"; the first service still writes)"
else
  cat "$WORK/ingest.out" "$WORK/serve2.out" >&2
  echo "two-writers: FAIL (ingest exit $ingest_status, second serve exit $serve_status, first service write $still, second's profile $second)"
  exit 1
fi
