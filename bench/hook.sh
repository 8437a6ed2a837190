#!/usr/bin/env bash
# bench/hook.sh — the cost of the message.before_send webhook (issue 17):
# p2p as fast as acks allow, PAIRS pairs for DURATION, A = imqttd without
# webhooks, B = --webhook-url to `imqtt bench push-sink` answering every
# before_send `{"action":"allow"}` after DELAY (5ms: the issue's figure),
# A B A B..., ROUNDS rounds, a fresh server on a fresh --data-dir each run
# (release builds, BENCH_LIMITS as in bench/run.sh).
#
#   bench/hook.sh                         # about 3 minutes on 2 cores
#   DELAY=0s SUFFIX=-fast bench/hook.sh   # the hook's own cost, no latency
#
# Results: $OUT/hook-*.json (p2p), $OUT/sink-hook-*.json (the sink's count
# of before_send requests), $OUT/summary$SUFFIX.md. See BENCHMARKS.md,
# "Issue 17: integration".
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-bench/results/hook}
PAIRS=${PAIRS:-20}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
DELAY=${DELAY:-5ms}
SUFFIX=${SUFFIX:-}
IMQTTD=${IMQTTD:-} # an imqttd binary to measure instead of the tree's

SECRET=bench-hook-secret
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_setup

port=$(freeport)
"$BIN/imqtt" bench push-sink --addr "127.0.0.1:$port" --delay "$DELAY" --secret "$SECRET" >"$WORK/sink.out" 2>>"$WORK/sink.log" &
SINKPID=$!
waitport "$port"
SINK="http://127.0.0.1:$port"

FAILED=0
run() {
	local name=$1$SUFFIX
	shift
	start_fresh_imqttd bench "${BENCH_LIMITS[@]}" "$@"
	curl -sf "$SINK/stats?reset=1" >/dev/null
	if ! "$BIN/imqtt" --home "$WORK/home" bench p2p --pairs "$PAIRS" --duration "$DURATION" --server "http://127.0.0.1:$HTTP" \
		--mqtt "127.0.0.1:$MQ" --server-pid "$PID" --quiet --json "$OUT/$name.json" | tee "$OUT/$name.txt"; then
		echo "   ^ $name FAILED" >&2
		FAILED=1
	fi
	curl -sf "$SINK/stats" >"$OUT/sink-$name.json"
	curl -sf "http://127.0.0.1:$HTTP/metrics" | grep '^imqtt_before_send' >"$OUT/$name-metrics.txt" || true
	stop_imqttd
}

say "p2p --pairs $PAIRS --duration $DURATION: A no webhook, B before_send answering in $DELAY; $ROUNDS rounds"
for round in $(seq "$ROUNDS"); do
	run "hook-off-$round"
	run "hook-on-$round" --webhook-url "$SINK" --webhook-secret "$SECRET" --webhook-events message.before_send
done

SUMMARY=$OUT/summary$SUFFIX.md
{
	echo "### before_send: p2p --pairs $PAIRS --duration $DURATION, backend answering in $DELAY"
	echo
	echo "| round | A msgs/s | B msgs/s | **B/A** | ack p50 / p99 A → B | server CPU µs/msg A → B | sends asked (B) |"
	echo "| --- | ---: | ---: | ---: | --- | --- | ---: |"
	for round in $(seq "$ROUNDS"); do
		a=$OUT/hook-off-$round$SUFFIX.json b=$OUT/hook-on-$round$SUFFIX.json
		echo "| $round | $(jq '.msgs_per_s|floor' "$a") | $(jq '.msgs_per_s|floor' "$b") | $(jq -n "$(jq .msgs_per_s "$b")/$(jq .msgs_per_s "$a")*1000|round/1000") | $(jq -r '"\(.extra.ack_p50_ms) / \(.extra.ack_p99_ms)"' "$a") → $(jq -r '"\(.extra.ack_p50_ms) / \(.extra.ack_p99_ms)"' "$b") ms | $(jq '.extra.server_cpu_us_per_msg|floor' "$a") → $(jq '.extra.server_cpu_us_per_msg|floor' "$b") | $(jq .hooks "$OUT/sink-hook-on-$round$SUFFIX.json") |"
	done
	echo
	echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$SUMMARY"
cat "$SUMMARY"
exit "$FAILED"
