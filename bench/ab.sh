#!/usr/bin/env bash
# bench/ab.sh — imqttd's send path at two commits, back to back: the p2p
# scenario of `imqtt bench` (as fast as acks allow), alternating A and B for
# ROUNDS rounds on the same machine, each round on a fresh server and data
# dir, then the median of each and the ratio B/A. Use it to show that a
# change costs nothing measurable (issue 13: "within 5% of before").
#
#   bench/ab.sh                    # A = HEAD~1, B = the working tree
#   BASE=0320dac bench/ab.sh       # A = that commit, B = the working tree
#   B_ARGS="--send-rate 1000000" bench/ab.sh   # flags only B knows
#
# The load tool is B's imqtt, for both. Results: $OUT/ab.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=${BASE:-HEAD~1}
ROUNDS=${ROUNDS:-3}
PAIRS=${PAIRS:-20}
DURATION=${DURATION:-10s}
INFLIGHT=${INFLIGHT:-64}
SIZE=${SIZE:-64}
A_ARGS=${A_ARGS:-}
B_ARGS=${B_ARGS:-}
OUT=${OUT:-bench/results}

BIN=$(mktemp -d)
WORK=$(mktemp -d)
PID=""
cleanup() {
	[ -n "$PID" ] && kill -9 "$PID" 2>/dev/null || true
	git worktree remove --force "$WORK/base" 2>/dev/null || true
	rm -rf "$BIN" "$WORK"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"
command -v curl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null; }

rev=$(git rev-parse --short "$BASE")
echo "== building A ($rev) and B (working tree)" >&2
git worktree add --detach -q "$WORK/base" "$rev"
(cd "$WORK/base" && go build -o "$BIN/a/" ./cmd/imqttd)
go build -o "$BIN/b/" ./cmd/imqttd ./cmd/imqtt

# shellcheck source=bench/lib.sh
. bench/lib.sh

# run A|B: one p2p run against a fresh server; prints msgs/s.
run() {
	local which=$1 args
	[ "$which" = a ] && args=$A_ARGS || args=$B_ARGS
	local mq http
	mq=$(freeport) http=$(freeport)
	rm -rf "$WORK/data" "$WORK/home"
	# shellcheck disable=SC2086
	"$BIN/$which/imqttd" --mqtt-addr "127.0.0.1:$mq" --http-addr "127.0.0.1:$http" \
		--data-dir "$WORK/data" --node-id ab --log-level warn $args 2>>"$WORK/imqttd-$which.log" &
	PID=$!
	for _ in $(seq 200); do
		curl -sf "http://127.0.0.1:$http/readyz" >/dev/null && break
		sleep 0.05
	done
	"$BIN/b/imqtt" --home "$WORK/home" bench p2p --pairs "$PAIRS" --duration "$DURATION" --inflight "$INFLIGHT" \
		--size "$SIZE" --server "http://127.0.0.1:$http" --mqtt "127.0.0.1:$mq" --server-pid "$PID" \
		--label "$which" --json "$WORK/$which.json" >&2
	kill "$PID"
	wait "$PID" 2>/dev/null || true
	PID=""
	sed -n 's/^  "msgs_per_s": \([0-9.]*\).*/\1/p' "$WORK/$which.json" | head -1
}

mkdir -p "$OUT"
a=() b=()
for i in $(seq "$ROUNDS"); do
	echo "== round $i: A" >&2
	a+=("$(run a)")
	echo "== round $i: B" >&2
	b+=("$(run b)")
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
ma=$(median "${a[@]}") mb=$(median "${b[@]}")
{
	echo "p2p, $PAIRS pairs, $DURATION, inflight $INFLIGHT, $SIZE B; $ROUNDS rounds alternating"
	echo "A $rev ${A_ARGS}: ${a[*]} msgs/s (median $ma)"
	echo "B working tree ${B_ARGS}: ${b[*]} msgs/s (median $mb)"
	awk -v a="$ma" -v b="$mb" 'BEGIN { printf "B/A = %.3f\n", b / a }'
} | tee "$OUT/ab.txt"
