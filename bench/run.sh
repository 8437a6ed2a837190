#!/usr/bin/env bash
# bench/run.sh — imqttd measured against Mosquitto and bare mochi-mqtt in one
# run, with one tool (imqtt bench) on one machine. See BENCHMARKS.md.
#
#   bench/run.sh                 # the default run, about four minutes on 2 cores
#   CONNS=15000 bench/run.sh     # sizes and durations come from the environment
#
# It builds imqttd, imqtt and the mochi baseline; installs Mosquitto with
# apt-get if it is missing; starts each target on free loopback ports (imqttd
# on a fresh --data-dir; a fresh process for each scenario group, so memory
# figures start clean); runs p2p (as fast as acks allow, then at half
# Mosquitto's rate) and conns against all three, sync and group against
# imqttd; profiles imqttd during an extra p2p run; and writes
# $OUT/*.json, $OUT/summary.md (the tables with the ratios and the targets)
# and the profiles, and draws $PLOTS/*.svg from the JSON (tools/benchplot;
# PLOTS defaults to bench/plots beside bench/results). Every target is ended by its own PID when the script ends.
# A scenario that fails (loss, duplicates, a rate not reached) is recorded in
# its JSON and the summary, and makes the script exit 1 at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-bench/results}
PLOTS=${PLOTS:-$(dirname "$OUT")/plots}
PAIRS=${PAIRS:-20}              # p2p sender/receiver pairs
LIGHT=1000                      # p2p light-load rate, msgs/s (bench.LightRate: the table's target row)
DURATION=${DURATION:-10s}       # p2p sending time
INFLIGHT=${INFLIGHT:-64}        # p2p unacked sends per sender
SIZE=${SIZE:-64}                # body bytes
CONNS=${CONNS:-10000}           # idle connections (2 cores: 100,000 is not run by default)
CONN_USERS=${CONN_USERS:-100}   # imqttd accounts the connections are spread over
SYNC_MESSAGES=${SYNC_MESSAGES:-50000}
SYNC_LIMIT=${SYNC_LIMIT:-500}   # a second sync run asks for this many items per request (the SDK's default is 5000)
GROUP_MEMBERS=${GROUP_MEMBERS:-300}
GROUP_ONLINE=${GROUP_ONLINE:-100}
GROUP_MESSAGES=${GROUP_MESSAGES:-200}
PROFILE_SECONDS=${PROFILE_SECONDS:-10}

BIN=$(mktemp -d)
WORK=$(mktemp -d)
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	rm -rf "$BIN" "$WORK"
}
trap cleanup EXIT
say() { printf '\n== %s\n' "$*" >&2; }

ulimit -n "$(ulimit -Hn)"
if ! command -v mosquitto >/dev/null; then
	say "installing mosquitto"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null
fi
command -v curl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null; }

say "building"
go build -o "$BIN/" ./cmd/imqttd ./cmd/imqtt ./bench/baseline/mochi
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.txt "$OUT"/summary.md

# shellcheck source=bench/lib.sh
. bench/lib.sh

FAILED=0
# bench LABEL NAME ARGS...: one scenario, its JSON in $OUT/LABEL-NAME.json.
bench() {
	local label=$1 name=$2
	shift 2
	if ! "$BIN/imqtt" --home "$WORK/home" bench "$@" --label "$label" --json "$OUT/$label-$name.json"; then
		echo "   ^ $label $name FAILED (recorded in $OUT/$label-$name.json if it ran)" >&2
		FAILED=1
	fi
}
# stop ends a target: SIGTERM, then SIGKILL after 5 s (bare mochi's Close can
# deadlock with thousands of clients disconnecting at once).
stop() {
	kill "$1" 2>/dev/null || true
	for _ in $(seq 50); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}
rate_of() { sed -n 's/^  "msgs_per_s": \([0-9.]*\).*/\1/p' "$1" | head -1; }

MQ=""
start_mosquitto() {
	MQ=$(freeport)
	cat >"$WORK/mosquitto.conf" <<-EOF
		listener $MQ 127.0.0.1
		allow_anonymous true
		persistence false
		max_queued_messages 1000000
		log_dest stderr
		log_type error
	EOF
	mosquitto -c "$WORK/mosquitto.conf" 2>"$WORK/mosquitto.log" &
	PID=$!
	PIDS+=("$PID")
	waitport "$MQ"
}
start_mochi() { # $1: writes pending, $2: in-flight per client
	MQ=$(freeport) PPROF=$(freeport)
	"$BIN/mochi" --addr "127.0.0.1:$MQ" --writes-pending "$1" --max-inflight "$2" --pprof-addr "127.0.0.1:$PPROF" >"$WORK/mochi.log" 2>&1 &
	PID=$!
	PIDS+=("$PID")
	waitport "$MQ"
	waitport "$PPROF"
}
HTTP="" PPROF=""
start_imqttd() {
	MQ=$(freeport) HTTP=$(freeport) PPROF=$(freeport)
	rm -rf "$WORK/data"
	"$BIN/imqttd" --mqtt-addr "127.0.0.1:$MQ" --http-addr "127.0.0.1:$HTTP" --pprof-addr "127.0.0.1:$PPROF" \
		--data-dir "$WORK/data" --node-id bench --log-level warn "${BENCH_LIMITS[@]}" "$@" 2>>"$WORK/imqttd.log" &
	PID=$!
	PIDS+=("$PID")
	for _ in $(seq 200); do
		curl -sf "http://127.0.0.1:$HTTP/readyz" >/dev/null && return
		sleep 0.05
	done
	echo "imqttd did not become ready" >&2
	return 1
}

P2P=(p2p --pairs "$PAIRS" --duration "$DURATION" --inflight "$INFLIGHT" --size "$SIZE")
CONNS_ARGS=(conns --conns "$CONNS")

say "mosquitto $(mosquitto -h 2>/dev/null | head -1 | awk '{print $3}'): p2p"
start_mosquitto
bench mosquitto p2p-max "${P2P[@]}" --plain --mqtt "127.0.0.1:$MQ" --server-pid "$PID"
MAX=$(rate_of "$OUT/mosquitto-p2p-max.json")
HALF=$(awk -v r="${MAX:-0}" 'BEGIN { printf "%d", r / 2 }')
if [ "$HALF" -le 0 ]; then
	echo "no Mosquitto rate to halve" >&2
	exit 1
fi
bench mosquitto p2p-half "${P2P[@]}" --rate "$HALF" --plain --mqtt "127.0.0.1:$MQ" --server-pid "$PID"
bench mosquitto p2p-light "${P2P[@]}" --rate "$LIGHT" --plain --mqtt "127.0.0.1:$MQ" --server-pid "$PID"
stop "$PID"
say "mosquitto: conns"
start_mosquitto
bench mosquitto conns "${CONNS_ARGS[@]}" --plain --mqtt "127.0.0.1:$MQ" --server-pid "$PID"
stop "$PID"

# Bare mochi drops what overflows a client's queue or in-flight window, QoS 1
# or not, and has nothing to bring it back: p2p gets mochi's own limits
# (8192); conns gets imqttd's (256 and 1024), so that the difference is
# imqtt's own per-connection state.
say "mochi: p2p"
start_mochi 8192 8192
bench mochi p2p-max "${P2P[@]}" --plain --mqtt "127.0.0.1:$MQ" --server-pid "$PID"
bench mochi p2p-half "${P2P[@]}" --rate "$HALF" --plain --mqtt "127.0.0.1:$MQ" --server-pid "$PID"
stop "$PID"
say "mochi: conns"
start_mochi 256 1024
bench mochi conns "${CONNS_ARGS[@]}" --plain --mqtt "127.0.0.1:$MQ" --server-pid "$PID" --pprof "http://127.0.0.1:$PPROF"
stop "$PID"

say "imqttd: p2p"
start_imqttd
IMQ=(--server "http://127.0.0.1:$HTTP" --mqtt "127.0.0.1:$MQ" --server-pid "$PID")
bench imqttd p2p-max "${P2P[@]}" "${IMQ[@]}"
bench imqttd p2p-half "${P2P[@]}" --rate "$HALF" "${IMQ[@]}"
# Latency where imqttd is not saturated: half its own rate.
OWN=$(awk -v r="$(rate_of "$OUT/imqttd-p2p-max.json")" 'BEGIN { printf "%d", r / 2 }')
if [ "${OWN:-0}" -gt 0 ]; then
	bench imqttd p2p-half-own "${P2P[@]}" --rate "$OWN" "${IMQ[@]}"
fi
say "imqttd: p2p under the profiler (its own run, not in the table)"
"$BIN/imqtt" --home "$WORK/home" bench "${P2P[@]}" --duration "${PROFILE_SECONDS}s" "${IMQ[@]}" --label imqttd-profiled --quiet \
	--pprof "http://127.0.0.1:$PPROF" --profile "$WORK/imqttd" --cpuprofile "$WORK/bench-cpu.pprof" >"$OUT/profiled-p2p.txt" || true
go tool pprof -top -nodecount=30 "$BIN/imqttd" "$WORK/imqttd-cpu.pprof" >"$OUT/profile-cpu.txt" 2>/dev/null || true
go tool pprof -top -cum -nodecount=60 "$BIN/imqttd" "$WORK/imqttd-cpu.pprof" >"$OUT/profile-cpu-cum.txt" 2>/dev/null || true
go tool pprof -top -sample_index=alloc_space -nodecount=30 "$BIN/imqttd" "$WORK/imqttd-allocs.pprof" >"$OUT/profile-allocs.txt" 2>/dev/null || true
go tool pprof -top -cum -nodecount=40 "$BIN/imqtt" "$WORK/bench-cpu.pprof" >"$OUT/profile-bench-client-cum.txt" 2>/dev/null || true
stop "$PID"
# Light load on a fresh store, where a stall shows (issue 15), in each
# durability mode (docs/operations.md "Durability").
say "imqttd: p2p at light load ($LIGHT msgs/s), fresh store, each durability mode"
start_imqttd
bench imqttd p2p-light "${P2P[@]}" --rate "$LIGHT" --server "http://127.0.0.1:$HTTP" --mqtt "127.0.0.1:$MQ" --server-pid "$PID"
stop "$PID"
start_imqttd --sync-interval 1s
bench imqttd-interval-1s p2p-light "${P2P[@]}" --rate "$LIGHT" --server "http://127.0.0.1:$HTTP" --mqtt "127.0.0.1:$MQ" --server-pid "$PID"
stop "$PID"
say "imqttd: conns"
start_imqttd
bench imqttd conns "${CONNS_ARGS[@]}" --users "$CONN_USERS" --server "http://127.0.0.1:$HTTP" --mqtt "127.0.0.1:$MQ" \
	--server-pid "$PID" --pprof "http://127.0.0.1:$PPROF"
stop "$PID"
say "imqttd: sync and group"
start_imqttd
IMQ=(--server "http://127.0.0.1:$HTTP" --mqtt "127.0.0.1:$MQ")
bench imqttd sync sync --messages "$SYNC_MESSAGES" --size "$SIZE" "${IMQ[@]}" --server-pid "$PID"
bench imqttd sync-limit sync --messages "$SYNC_MESSAGES" --size "$SIZE" --sync-limit "$SYNC_LIMIT" "${IMQ[@]}" --server-pid "$PID"
bench imqttd group group --members "$GROUP_MEMBERS" --online "$GROUP_ONLINE" --messages "$GROUP_MESSAGES" --size "$SIZE" "${IMQ[@]}"
curl -s "http://127.0.0.1:$HTTP/metrics" | grep '^imqtt_store_batch_messages' >"$OUT/store-batches-sync-group.txt" || true
stop "$PID"

{
	echo "## imqtt bench — $(date -u +%Y-%m-%dT%H:%MZ)"
	echo
	echo "Machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $(go version | awk '{print $3}'); Mosquitto $(mosquitto -h 2>/dev/null | head -1 | awk '{print $3}'); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
	echo "Parameters: PAIRS=$PAIRS DURATION=$DURATION INFLIGHT=$INFLIGHT SIZE=$SIZE CONNS=$CONNS CONN_USERS=$CONN_USERS SYNC_MESSAGES=$SYNC_MESSAGES GROUP_MEMBERS=$GROUP_MEMBERS GROUP_ONLINE=$GROUP_ONLINE GROUP_MESSAGES=$GROUP_MESSAGES; half rate = $HALF msgs/s."
	echo
	"$BIN/imqtt" --home "$WORK/home" bench compare "$OUT"/*.json
} >"$OUT/summary.md"
cat "$OUT/summary.md"
go -C tools run ./benchplot -out "$(realpath -m "$PLOTS")" "$(realpath "$OUT")" >/dev/null
exit "$FAILED"
