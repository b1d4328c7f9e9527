#!/usr/bin/env bash
# A local conclave cluster on loopback: 3 masters and 2 workers as
# processes. Prints the membership, kills the leader, prints the new leader
# and how long failover took, shows that the workers followed, and stops
# everything it started (also on Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BUILD_DIR:-build}/roles
DIR=$(mktemp -d /tmp/conclave-demo-XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true  # reap them quietly
  rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
P1=$(free_port); P2=$(free_port); P3=$(free_port)
PEERS="1=127.0.0.1:$P1,2=127.0.0.1:$P2,3=127.0.0.1:$P3"
ENDPOINTS="127.0.0.1:$P1,127.0.0.1:$P2,127.0.0.1:$P3"
CTL="$BIN/conclavectl --endpoints $ENDPOINTS --cluster-id demo"

echo "== starting 3 masters and 2 workers (logs in $DIR)"
for i in 1 2 3; do
  "$BIN/conclave" -r master --id "$i" --peers "$PEERS" --cluster-id demo --data-dir "$DIR/m$i" 2>"$DIR/master$i.log" &
  PIDS+=($!); eval "M$i=$!"
done
for w in 1 2; do
  "$BIN/conclave" -r worker --name "worker-$w" --peers "$PEERS" --cluster-id demo --labels "slot=$w" 2>"$DIR/worker$w.log" &
  PIDS+=($!)
done

members() { $CTL members alive | python3 -c '
import json, sys
for m in json.load(sys.stdin):
    u = m["usage"]
    print("  %-10s %-7s %-6s cpu %5.1f%%  mem free %d MiB" % (m["id"], m["role"], m["status"], u["cpu_percent"], u["memory_available_bytes"] // 2**20))'; }

for _ in $(seq 100); do
  [ "$($CTL members alive 2>/dev/null | grep -o '"status":"alive"' | wc -l)" -ge 5 ] && break
  sleep 0.1
done
echo "== membership"
members
LEADER=$($CTL leader | cut -d' ' -f1)
echo "== leader: master $LEADER; killing it with kill -9"
eval "VICTIM=\$M$LEADER"
START=$(date +%s%N)
{ kill -9 "$VICTIM"; wait "$VICTIM"; } 2>/dev/null || true
while true; do
  NEW=$($CTL leader 2>/dev/null | cut -d' ' -f1 || true)
  [ -n "$NEW" ] && [ "$NEW" != "$LEADER" ] && break
done
END=$(date +%s%N)
echo "== new leader: master $NEW, elected $(( (END - START) / 1000000 )) ms after the kill"
sleep 1.5
echo "== membership after failover (the workers kept their sessions with the new leader)"
members
echo "== stopping everything"
