#!/usr/bin/env bash
# kill -9 during `klynge ingest`: a file of PROFILES (20,000) profiles is being
# loaded (committed every 5,000) when the process is killed with SIGKILL just
# after a commit. Passes when the index opens (a service starts on the data dir
# at once: no stale lock) holding at least what the ingest journal
# (ingest-in-progress.json) says was committed, the next run says what the
# killed one had committed, and it ends with every profile loaded. Prints one
# summary line; exits 1 otherwise.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PROFILES=${PROFILES:-20000}
DATA=$WORK/data
JOURNAL=$DATA/ingest-in-progress.json
FAILED=1
fail() { echo "kill9-ingest: FAIL ($*)"; exit 1; }

python3 - "$PROFILES" >"$WORK/profiles.ndjson" <<'PY'
import json, sys
for i in range(int(sys.argv[1])):
    print(json.dumps({"id": f"ingest-{i}", "name": f"Ingested firm {i}", "country": "DK",
                      "description": f"Profile {i} of the kill -9 ingest test: welding, robotics and food processing."}))
PY

"$BIN" ingest --data-dir "$DATA" "$WORK/profiles.ndjson" >"$WORK/first.out" 2>&1 &
INGEST=$!
committed=0
while kill -0 "$INGEST" 2>/dev/null; do
  committed=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["committed_profiles"])' "$JOURNAL" 2>/dev/null || echo 0)
  if (( committed > 0 )); then
    kill -9 "$INGEST"
    break
  fi
  sleep 0.05
done
wait "$INGEST" 2>/dev/null || true
(( committed > 0 && committed < PROFILES )) || fail "the ingest was not killed mid-run (committed $committed of $PROFILES)"
[[ -f $JOURNAL ]] || fail "no ingest journal after the kill"
# The journal is written after each commit: the index may hold one chunk more.
committed=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["committed_profiles"])' "$JOURNAL")

PORT=$(free_port)
start_server "$DATA" "$PORT" "$WORK/service.log" || fail "the index did not open after the kill (see $WORK/service.log)"
in_index=$(curl -s "http://127.0.0.1:$PORT/v1/firms?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"])')
stop_server
(( in_index >= committed && in_index <= PROFILES )) || fail "the index holds $in_index profiles, the journal says $committed were committed"

"$BIN" ingest --data-dir "$DATA" "$WORK/profiles.ndjson" >"$WORK/second.out" 2>&1 || fail "the next ingest failed: $(tail -1 "$WORK/second.out")"
note=$(grep -o "did not finish: it had committed [0-9]* profiles" "$WORK/second.out" || true)
[[ $note == "did not finish: it had committed $committed profiles" ]] || fail "the next run did not say what was committed: $(head -2 "$WORK/second.out")"
[[ ! -f $JOURNAL ]] || fail "the journal is still there after a complete run"
total=$("$BIN" search --data-dir "$DATA" "ingested" --limit 1 | grep -o '^[0-9]* firms match' | grep -o '^[0-9]*')
(( total == PROFILES )) || fail "after the second run the index holds $total of $PROFILES profiles"
FAILED=0
echo "kill9-ingest: PASS (killed after $committed of $PROFILES committed; the index opened at once with $in_index; the next run said \"$note\" and ended with $total)"
