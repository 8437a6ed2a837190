#!/usr/bin/env bash
# bench/sessions.sh — the figures of issue 21 (persistent sessions), against
# a release build of imqttd started as a process, as in bench/run.sh:
#
#   replay   one device missing REPLAY_ONE messages, then REPLAY_DEVICES
#            devices missing REPLAY_MISSED each, reconnecting at once;
#   p2p      PAIRS pairs, clean receivers (the SDK) vs --sessions (plain
#            MQTT devices, QoS 1), alternated A B A B on one server;
#   conns    CONNS idle connections, plain vs --sessions, A B A B, each on a
#            fresh server (memory figures start clean).
#
#   bench/sessions.sh            # about 15 minutes on 2 cores
#   STEPS=replay SUFFIX=-r2 bench/sessions.sh             # one part again, beside the first
#   STEPS=p2p IMQTTD_ARGS="--session-inflight 256" SUFFIX=-w256 bench/sessions.sh
#   IMQTTD=/tmp/a/imqttd SUFFIX=-a bench/sessions.sh        # another build of imqttd
#
# Results: $OUT/*.json and $OUT/*.txt (the tables). See BENCHMARKS.md,
# "Issue 21: persistent sessions".
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-bench/results/sessions}
PAIRS=${PAIRS:-20}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-5000}
REPLAY_ONE=${REPLAY_ONE:-10000}
REPLAY_DEVICES=${REPLAY_DEVICES:-1000}
REPLAY_MISSED=${REPLAY_MISSED:-20}
STEPS=${STEPS:-replay p2p conns} # which parts run
SUFFIX=${SUFFIX:-}               # appended to every result's name
IMQTTD_ARGS=${IMQTTD_ARGS:-}     # more imqttd flags, for every server
IMQTTD=${IMQTTD:-}               # an imqttd binary to measure instead of the tree's (another commit's)

BIN=$(mktemp -d)
WORK=$(mktemp -d)
PID=""
cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null || true
	[ -n "$PID" ] && wait "$PID" 2>/dev/null || true
	rm -rf "$BIN" "$WORK"
}
trap cleanup EXIT
say() { printf '\n== %s\n' "$*" >&2; }

ulimit -n "$(ulimit -Hn)"
command -v curl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null; }
say "building"
go build -o "$BIN/" ./cmd/imqttd ./cmd/imqtt
[ -n "$IMQTTD" ] && cp "$IMQTTD" "$BIN/imqttd"
mkdir -p "$OUT"

# shellcheck source=bench/lib.sh
. bench/lib.sh

FAILED=0
HTTP="" MQ="" PPROF=""
start_imqttd() {
	# shellcheck disable=SC2086 # IMQTTD_ARGS is words
	start_fresh_imqttd bench "${BENCH_LIMITS[@]}" $IMQTTD_ARGS "$@"
}
stop() { stop_imqttd; }
# bench NAME ARGS...: one scenario against the running imqttd; its JSON in
# $OUT/NAME.json, its table in $OUT/NAME.txt.
bench() {
	local name=$1$SUFFIX
	shift
	if ! "$BIN/imqtt" --home "$WORK/home" bench "$@" --server "http://127.0.0.1:$HTTP" --mqtt "127.0.0.1:$MQ" \
		--server-pid "$PID" --quiet --json "$OUT/$name.json" | tee "$OUT/$name.txt"; then
		echo "   ^ $name FAILED (recorded in $OUT/$name.json if it ran)" >&2
		FAILED=1
	fi
}

step() { [[ " $STEPS " == *" $1 "* ]]; }

if step replay; then
	say "replay: 1 device, $REPLAY_ONE missed"
	start_imqttd --session-replay-max $((REPLAY_ONE * 2))
	bench replay-1x$REPLAY_ONE replay --devices 1 --missed "$REPLAY_ONE" --timeout 5m
	stop
	say "replay: $REPLAY_DEVICES devices at once, $REPLAY_MISSED missed each"
	start_imqttd
	bench replay-${REPLAY_DEVICES}x$REPLAY_MISSED replay --devices "$REPLAY_DEVICES" --missed "$REPLAY_MISSED" --timeout 5m
	stop
fi

if step p2p; then
	say "p2p: clean vs sessions, A B A B on one server"
	start_imqttd
	P2P=(p2p --pairs "$PAIRS" --duration "$DURATION")
	for round in 1 2; do
		bench "p2p-clean-$round" "${P2P[@]}"
		bench "p2p-sessions-$round" "${P2P[@]}" --sessions
	done
	stop
fi

if step conns; then
	say "conns: plain vs sessions, A B A B, a fresh server each"
	for round in 1 2; do
		for kind in plain sessions; do
			start_imqttd
			args=(conns --conns "$CONNS" --pprof "http://127.0.0.1:$PPROF")
			[ "$kind" = sessions ] && args+=(--sessions)
			bench "conns-$kind-$round" "${args[@]}"
			stop
		done
	done
fi

echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/load$SUFFIX.txt"
exit "$FAILED"
