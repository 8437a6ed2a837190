#!/usr/bin/env bash
# bench/waldir-ab.sh — the default durability mode (each commit synced) at
# light load beside another writer on the data disk, with the write-ahead
# log on that disk (A) and in WAL_DIR (B, --wal-dir), alternating A B A B.
# See docs/operations.md "Durability" and BENCHMARKS.md.
#
#   bench/waldir-ab.sh                        # WAL_DIR=/dev/shm: tmpfs stands in for another device
#   WAL_DIR=/mnt/nvme/imqtt-wal ROUNDS=3 bench/waldir-ab.sh
#
# Each run: a fresh imqttd on a fresh --data-dir under DATA_ROOT, then
# `imqtt bench p2p --pairs 20 --rate 1000` while `dd ... $DD_FLAGS`
# writes DD_MB to DATA_ROOT (DD_MB=0: no writer, the control). Results: $OUT/waldir-*.json and the p99 and
# max of each run on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-2}
WAL_DIR=${WAL_DIR:-/dev/shm}
DATA_ROOT=${DATA_ROOT:-/tmp}
DD_MB=${DD_MB:-3000}
# A buffered writer: its dirty pages ride in ext4's journal, which a log
# fdatasync waits for. DD_FLAGS=oflag=direct bypasses the page cache and
# hardly touches the log's syncs (BENCHMARKS.md).
DD_FLAGS=${DD_FLAGS:-conv=fsync}
DURATION=${DURATION:-15s}
RATE=${RATE:-1000}
OUT=${OUT:-bench/results}

BIN=$(mktemp -d)
WORK=$(mktemp -d -p "$DATA_ROOT")
PID="" DD=""
cleanup() {
	for p in $PID $DD; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	rm -rf "$BIN" "$WORK"
}
trap cleanup EXIT
# shellcheck source=bench/lib.sh
. bench/lib.sh
go build -o "$BIN/" ./cmd/imqttd ./cmd/imqtt
mkdir -p "$OUT"

run() { # $1: label, $2...: imqttd flags
	local label=$1
	shift
	rm -rf "$WORK/data" "$WORK/home"
	MQ=$(freeport) HTTP=$(freeport)
	"$BIN/imqttd" --mqtt-addr "127.0.0.1:$MQ" --http-addr "127.0.0.1:$HTTP" --data-dir "$WORK/data" --node-id wal \
		--log-level warn --max-send-rate 10000000 --max-send-burst 10000000 --login-ip-limit 1000000/s:1000000 \
		--login-user-ip-limit 1000000/s:1000000 --login-user-limit 1000000/s:1000000 --register-ip-limit 1000000/s:1000000 "$@" 2>>"$WORK/imqttd.log" &
	PID=$!
	for _ in $(seq 200); do curl -sf "http://127.0.0.1:$HTTP/readyz" >/dev/null && break; sleep 0.05; done
	if [ "$DD_MB" -gt 0 ]; then
		# shellcheck disable=SC2086 # DD_FLAGS is words
		dd if=/dev/zero of="$WORK/dd" bs=1M count="$DD_MB" $DD_FLAGS status=none &
		DD=$!
	fi
	"$BIN/imqtt" --home "$WORK/home" bench p2p --pairs 20 --rate "$RATE" --duration "$DURATION" --quiet \
		--server "http://127.0.0.1:$HTTP" --mqtt "127.0.0.1:$MQ" --server-pid "$PID" --label "$label" --json "$OUT/waldir-$label.json" >/dev/null || true
	if [ -n "$DD" ]; then
		kill "$DD" 2>/dev/null || true
		wait "$DD" 2>/dev/null || true
		DD=""
	fi
	rm -f "$WORK/dd"
	kill "$PID"
	wait "$PID" 2>/dev/null || true
	PID=""
	jq -r --arg l "$label" '"\($l)\tp99 \(.latency.p99_ms) ms\tmax \(.latency.max_ms) ms\tlost \(.lost)\tdup \(.duplicated)\tmsgs/s \(.msgs_per_s | floor)"' "$OUT/waldir-$label.json"
}
for r in $(seq "$ROUNDS"); do
	run "same-disk-$r"
	w="$WAL_DIR/imqtt-wal-$$"
	rm -rf "$w" && mkdir -p "$w"
	run "wal-dir-$r" --wal-dir "$w"
	rm -rf "$w"
done
