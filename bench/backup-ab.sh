#!/usr/bin/env bash
# bench/backup-ab.sh — what an online backup costs the sends beside it
# (issue 23: "send throughput within 10%"): one imqttd, its store first
# filled (FILL messages of 1 KiB), then 20 s p2p runs in the order
# A B B A A B B A, where each B run has GET /v1/admin/backup streamed to
# /dev/null from 3 s in. Prints each run, the medians and B/A.
#
#   bench/backup-ab.sh                          # the default --backup-rate
#   EXTRA="--backup-rate -1" bench/backup-ab.sh # unpaced
set -euo pipefail
cd "$(dirname "$0")/.."

FILL=${FILL:-900000}
EXTRA=${EXTRA:-}
WORK=$(mktemp -d)
PID=""
cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
go build -o "$WORK/imqttd" ./cmd/imqttd
go build -o "$WORK/imqtt" ./cmd/imqtt
export IMQTT_HOME=$WORK/home
TOKEN=bench-admin
# shellcheck disable=SC2086
"$WORK/imqttd" --data-dir "$WORK/data" --mqtt-addr 127.0.0.1:18830 --http-addr 127.0.0.1:18080 \
	--admin-token $TOKEN --node-id bench --max-send-rate 1000000 --max-send-burst 1000000 --min-free-disk -1 \
	--login-ip-limit off --login-user-ip-limit off --login-user-limit off --register-ip-limit off $EXTRA \
	>"$WORK/imqttd.log" 2>&1 &
PID=$!
BENCH=("$WORK/imqtt" --server http://127.0.0.1:18080 --mqtt 127.0.0.1:18830 bench p2p --quiet)
for _ in $(seq 50); do curl -sf http://127.0.0.1:18080/readyz >/dev/null && break; sleep 0.1; done
"${BENCH[@]}" --messages "$FILL" --size 1024 >/dev/null
i=0
for mode in A B B A A B B A; do
	i=$((i + 1))
	CP=""
	if [ $mode = B ]; then
		(sleep 3; curl -s -o /dev/null -H "Authorization: Bearer $TOKEN" \
			-w "run $i: backup of %{size_download} bytes in %{time_total} s, %{speed_download} B/s\n" \
			http://127.0.0.1:18080/v1/admin/backup) &
		CP=$!
	fi
	"${BENCH[@]}" --duration 20s --format json --json "$WORK/run-$i-$mode.json" >/dev/null
	[ -n "$CP" ] && wait "$CP"
done
python3 - "$WORK" <<'PY'
import json, statistics, sys
runs = {"A": [], "B": []}
for i, m in enumerate("ABBAABBA", 1):
    j = json.load(open(f"{sys.argv[1]}/run-{i}-{m}.json"))
    runs[m].append(j["msgs_per_s"])
    print(i, m, round(j["msgs_per_s"]), "msgs/s, lost", j["lost"], "duplicated", j["duplicated"], "p99", j["latency"]["p99_ms"], "ms")
a, b = statistics.median(runs["A"]), statistics.median(runs["B"])
print(f"median A {a:.0f}, B {b:.0f}: B/A {b / a:.3f}")
PY
