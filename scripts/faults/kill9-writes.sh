#!/usr/bin/env bash
# kill -9 during REST writes, 3 rounds on one data dir: 4 writers PUT profiles
# (each with a 2,000-character description) as fast as they can; once at least
# 25 more writes have been acknowledged the service is killed with SIGKILL,
# restarted, and every profile ever attempted is read back. Passes when every
# acknowledged write (HTTP 200) is there with exactly the fields sent, no
# unacknowledged one is there in part (each is either absent or whole), and the
# index counts exactly the profiles found. Prints one summary line; exits 1 when
# a write was lost or half-written.
#
#   scripts/faults/kill9-writes.sh          # uses target/debug/klynge (KLYNGE_BIN to change)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROUNDS=${ROUNDS:-3}
WRITERS=4
PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
DATA=$WORK/data
LOG=$WORK/service.log
FAILED=0

writer() { # round writer: PUTs until killed, logging "id status" per attempt
  local round=$1 w=$2 i=0 id code
  local description
  local unit="Profile written by round $round writer $w. "
  description=$(for _ in {1..60}; do printf '%s' "$unit"; done | head -c 2000)
  while true; do
    i=$((i + 1))
    id=r$round-w$w-$i
    echo "$id sent" >>"$WORK/attempts"  # in case the writer is stopped mid-request
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X PUT "$BASE/v1/firms/$id" \
      -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
      --data "{\"name\":\"Firm $id\",\"kind\":\"company\",\"country\":\"DK\",\"description\":\"$description\",\"offers\":[\"offer of $id\"]}" || true)
    echo "$id $code" >>"$WORK/attempts"
  done
}

acked() { awk '$2 == 200' "$WORK/attempts" 2>/dev/null | wc -l; }

touch "$WORK/attempts"
for round in $(seq 1 "$ROUNDS"); do
  start_server "$DATA" "$PORT" "$LOG" || { echo "kill9-writes: FAIL (round $round: the service did not start)"; FAILED=1; exit 1; }
  before=$(acked)
  pids=()
  for w in $(seq 1 $WRITERS); do writer "$round" "$w" & pids+=($!); done
  waited=0
  until (( $(acked) >= before + 25 )) || (( waited > 1200 )); do sleep 0.1; waited=$((waited + 1)); done
  sleep "0.$((RANDOM % 10))"
  kill9_server
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
done

# Read everything back from a restarted service.
start_server "$DATA" "$PORT" "$LOG" || { echo "kill9-writes: FAIL (the service did not start after the last kill)"; FAILED=1; exit 1; }
set +e
summary=$(python3 - "$BASE" "$WORK/attempts" <<'PY'
import json, sys, urllib.request, urllib.error
base, attempts = sys.argv[1], sys.argv[2]
latest = {}
for line in open(attempts):
    parts = line.split()
    if len(parts) == 2:
        latest[parts[0]] = parts[1]
lost, partial, found, acked = [], [], 0, 0
for id, code in latest.items():
    acked += code == "200"
    try:
        with urllib.request.urlopen(f"{base}/v1/firms/{id}") as reply:
            body = json.load(reply)
    except urllib.error.HTTPError as error:
        if error.code != 404:
            partial.append(f"{id}: HTTP {error.code}")
        elif code == "200":
            lost.append(id)
        continue
    found += 1
    round_, writer = id.split("-")[0][1:], id.split("-")[1][1:]
    description = (f"Profile written by round {round_} writer {writer}. " * 60)[:2000]
    whole = (body.get("name") == f"Firm {id}" and body.get("offers") == [f"offer of {id}"]
             and body.get("description") == description and body.get("country") == "DK")
    if not whole:
        partial.append(id)
with urllib.request.urlopen(f"{base}/v1/firms?limit=1") as reply:
    total = json.load(reply)["total"]
ok = not lost and not partial and total == found
print(f"{'PASS' if ok else 'FAIL'} ({len(latest)} writes attempted, {acked} acknowledged, "
      f"{found} present after restart, {len(lost)} acknowledged lost, {len(partial)} half-written, index counts {total})")
if lost: print("lost:", lost[:10], file=sys.stderr)
if partial: print("half-written:", partial[:10], file=sys.stderr)
sys.exit(0 if ok else 1)
PY
)
status=$?
set -e
FAILED=$status
echo "kill9-writes: ${summary} over $ROUNDS kill -9 rounds"
exit "$status"
