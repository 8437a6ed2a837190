#!/usr/bin/env bash
# bench/push.sh — the figures of issue 16 (offline push), against a release
# build of imqttd started as a process on a fresh --data-dir each run, as in
# bench/sessions.sh, and `imqtt bench push-sink` as the webhook provider:
#
#   ab     the cost to the send path: p2p as fast as acks allow, PAIRS pairs
#          for DURATION, A = no push, B = --push-webhook to a sink answering
#          after DELAY (500ms: a slow provider) and p2p --push-devices (each
#          receiver has an offline phone, so every message is also a push);
#          A B A B..., ROUNDS rounds, a fresh server each run;
#   rate   pushes per second per node and latency from commit: p2p at a
#          fixed RATE_MSGS over RATE_PAIRS pairs, each receiver with
#          RATE_PHONES offline phones (at most 16, imqttd's limit per user;
#          every message is RATE_PHONES pushes;
#          a receiver gets a message every RATE_PAIRS/RATE_MSGS s, past the
#          2 s collapse window, so each message is a push of its own), and
#          --push-rate PUSH_RATE: once with a sink answering at once, once
#          with it answering after DELAY;
#   burst  p2p at BURST_RATE msgs/s (1 phone per receiver) with a fast
#          sink: what the collapse window makes of a burst.
#
#   bench/push.sh                                  # about 15 minutes on 2 cores
#   STEPS=ab ROUNDS=3 SUFFIX=-r2 bench/push.sh     # the A B again, beside the first
#   STEPS=ab PROFILE=1 bench/push.sh               # with the server's CPU profiles
#
# Results: $OUT/*.json (p2p results; sink-*.json the sink's figures after the
# pushes settled; *-push-metrics.txt imqttd's push metrics then) and
# $OUT/summary$SUFFIX.md. See BENCHMARKS.md, "Issue 16: offline push".
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-bench/results/push}
PAIRS=${PAIRS:-20}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-2}
DELAY=${DELAY:-500ms}
AB_PHONES=${AB_PHONES:-1} # ab's B: 1 = an offline phone per receiver (every message a push); 0 = push on, every recipient online (no push due)
RATE_PAIRS=${RATE_PAIRS:-125}
RATE_MSGS=${RATE_MSGS:-50}
RATE_PHONES=${RATE_PHONES:-16} # imqttd allows 16 push registrations a user
RATE_DURATION=${RATE_DURATION:-20s}
PUSH_RATE=${PUSH_RATE:-100000}
BURST_RATE=${BURST_RATE:-1000}
STEPS=${STEPS:-ab rate burst}
SUFFIX=${SUFFIX:-}
PROFILE=${PROFILE:-}         # non-empty: CPU and allocation profiles of each ab run
IMQTTD_ARGS=${IMQTTD_ARGS:-} # more imqttd flags, for every server
IMQTTD=${IMQTTD:-}           # an imqttd binary to measure instead of the tree's

SECRET=bench-push-secret
# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_setup

FAILED=0
HTTP="" MQ="" PPROF="" SINK=""
start_imqttd() {
	# shellcheck disable=SC2086 # IMQTTD_ARGS is words
	start_fresh_imqttd bench "${BENCH_LIMITS[@]}" $IMQTTD_ARGS "$@"
}
# start_sink DELAY: a push sink on a free port, its URL in SINK.
start_sink() {
	local port
	port=$(freeport)
	"$BIN/imqtt" bench push-sink --addr "127.0.0.1:$port" --delay "$1" --secret "$SECRET" >"$WORK/sink.out" 2>>"$WORK/sink.log" &
	SINKPID=$!
	waitport "$port"
	SINK="http://127.0.0.1:$port"
}
stop_sink() {
	kill "$SINKPID" 2>/dev/null || true
	wait "$SINKPID" 2>/dev/null || true
	SINKPID=""
}
start_pushing() {
	start_imqttd --push-webhook "$SINK" --webhook-secret "$SECRET" --push-rate "$PUSH_RATE" "$@"
}
reset_sink() { curl -sf "$SINK/stats?reset=1" >/dev/null; }
# settle NAME PHONES: waits until every push item of the run is out: until
# imqttd has sent (imqtt_push_latency_seconds_count counts each message a
# push stood for) the acked messages times PHONES, or the sink's count has
# not moved for 60 s, at most 600 s. (Not the outbox gauge: the worker
# refreshes it between rounds of its loop, and one round expands the whole
# backlog of jobs.) Saves the sink's figures to $OUT/sink-NAME.json, with
# settled_s (how long after the p2p run the last push came) and items
# sent/expected, and imqttd's push metrics to $OUT/NAME-push-metrics.txt.
settle() {
	local name=$1$SUFFIX phones=$2 last=-1 same=0 n sent want t0=$SECONDS
	[ -f "$OUT/$name.json" ] || return 0 # the run failed before it began
	want=$(($(jq .acked "$OUT/$name.json") * phones))
	for _ in $(seq 600); do
		sent=$(curl -sf "http://127.0.0.1:$HTTP/metrics" | awk '$1 == "imqtt_push_latency_seconds_count" {print $2 + 0}')
		[ "${sent:-0}" -ge "$want" ] && break
		n=$(curl -sf "$SINK/stats" | jq .pushes)
		if [ "$n" = "$last" ]; then
			same=$((same + 1))
			[ "$same" -ge 60 ] && break
		else
			same=0 last=$n
		fi
		sleep 1
	done
	curl -sf "$SINK/stats" | jq --argjson settled "$((SECONDS - t0))" --argjson sent "${sent:-0}" --argjson want "$want" \
		'. + {settled_s: $settled, items_sent: $sent, items_expected: $want}' >"$OUT/sink-$name.json"
	curl -sf "http://127.0.0.1:$HTTP/metrics" | grep '^imqtt_push' >"$OUT/$name-push-metrics.txt" || true
	jq -c '{pushes, per_sec, latency_ms, duplicates, bad_signature, settled_s, items_sent, items_expected}' "$OUT/sink-$name.json" >&2
}
# bench NAME ARGS...: one p2p run against the running imqttd; its JSON in
# $OUT/NAME.json, its table in $OUT/NAME.txt.
bench() {
	local name=$1$SUFFIX
	shift
	local prof=()
	[ -n "$PROFILE" ] && prof=(--pprof "http://127.0.0.1:$PPROF" --profile "$OUT/profile-$name")
	if ! "$BIN/imqtt" --home "$WORK/home" bench p2p "$@" "${prof[@]}" --server "http://127.0.0.1:$HTTP" --mqtt "127.0.0.1:$MQ" \
		--server-pid "$PID" --quiet --json "$OUT/$name.json" | tee "$OUT/$name.txt"; then
		echo "   ^ $name FAILED (recorded in $OUT/$name.json if it ran)" >&2
		FAILED=1
	fi
}
step() { [[ " $STEPS " == *" $1 "* ]]; }

SUMMARY=$OUT/summary$SUFFIX.md
: >"$SUMMARY"
# p2prow NAME: a markdown row of a p2p result's figures.
p2prow() {
	jq -r '"| \(.msgs_per_s|floor) | \(.extra.ack_p50_ms // "–") / \(.extra.ack_p99_ms // "–") ms | \(.latency.p50_ms) / \(.latency.p99_ms) ms | \(.extra.server_cpu_us_per_msg // 0 | floor) | \(.lost) / \(.duplicated) |"' "$OUT/$1$SUFFIX.json"
}
sinkrow() {
	[ -f "$OUT/sink-$1$SUFFIX.json" ] || { echo "– | – | – | – | –"; return; }
	jq -r '"\(.pushes) | \(.per_sec|floor) | \(.latency_ms.p50) / \(.latency_ms.p99) / \(.latency_ms.max) ms | \(.duplicates) | \(.settled_s) s (\(.items_sent)/\(.items_expected))"' "$OUT/sink-$1$SUFFIX.json"
}

if step ab; then
	say "ab: p2p without push (A) and with a push per message to a sink answering in $DELAY (B), $ROUNDS rounds"
	start_sink "$DELAY"
	P2P=(--pairs "$PAIRS" --duration "$DURATION")
	for round in $(seq "$ROUNDS"); do
		start_imqttd
		bench "ab-nopush-$round" "${P2P[@]}"
		stop_imqttd
		start_pushing
		reset_sink
		if [ "$AB_PHONES" = 1 ]; then
			bench "ab-push-$round" "${P2P[@]}" --push-devices
		else
			bench "ab-push-$round" "${P2P[@]}"
		fi
		settle "ab-push-$round" "$AB_PHONES"
		stop_imqttd
	done
	stop_sink
	{
		echo "### A B: p2p --pairs $PAIRS --duration $DURATION, sink delay $DELAY"
		echo
		echo "| run | msgs/s | ack p50 / p99 | delivery p50 / p99 | server CPU µs/msg | lost / dup |"
		echo "| --- | ---: | --- | --- | ---: | --- |"
		for round in $(seq "$ROUNDS"); do
			echo "| A $round (no push) $(p2prow "ab-nopush-$round")"
			echo "| B $round (push) $(p2prow "ab-push-$round")"
		done
		echo
		echo "| round | B/A msgs/s | sink pushes | pushes/s | push latency p50 / p99 / max | duplicates | last push after the run (items sent/expected) |"
		echo "| --- | ---: | ---: | ---: | --- | ---: | ---: |"
		for round in $(seq "$ROUNDS"); do
			a=$(jq .msgs_per_s "$OUT/ab-nopush-$round$SUFFIX.json")
			b=$(jq .msgs_per_s "$OUT/ab-push-$round$SUFFIX.json")
			echo "| $round | $(jq -n "$b/$a*1000|round/1000") | $(sinkrow "ab-push-$round") |"
		done
		mean=$(for round in $(seq "$ROUNDS"); do
			jq -n "$(jq .msgs_per_s "$OUT/ab-push-$round$SUFFIX.json")/$(jq .msgs_per_s "$OUT/ab-nopush-$round$SUFFIX.json")"
		done | jq -s 'add/length*1000|round/1000')
		echo
		echo "Mean B/A: **$mean**"
		echo
	} >>"$SUMMARY"
fi

if step rate; then
	for delay in 0s "$DELAY"; do
		say "rate: $RATE_MSGS msgs/s over $RATE_PAIRS pairs, $RATE_PHONES phones each, sink delay $delay"
		start_sink "$delay"
		start_pushing
		reset_sink
		bench "rate-delay$delay" --pairs "$RATE_PAIRS" --rate "$RATE_MSGS" --duration "$RATE_DURATION" \
			--push-devices --push-phones "$RATE_PHONES"
		settle "rate-delay$delay" "$RATE_PHONES"
		stop_imqttd
		stop_sink
	done
	{
		echo "### Rate: p2p --pairs $RATE_PAIRS --rate $RATE_MSGS --duration $RATE_DURATION --push-devices --push-phones $RATE_PHONES, --push-rate $PUSH_RATE"
		echo
		echo "| sink delay | pushes | pushes/s (first to last) | push latency p50 / p99 / max | duplicates | last push after the run (items sent/expected) |"
		echo "| --- | ---: | ---: | --- | ---: | ---: |"
		for delay in 0s "$DELAY"; do
			echo "| $delay | $(sinkrow "rate-delay$delay") |"
		done
		echo
	} >>"$SUMMARY"
fi

if step burst; then
	say "burst: $BURST_RATE msgs/s over $PAIRS pairs, one phone each, a fast sink"
	start_sink 0s
	start_pushing
	reset_sink
	bench burst --pairs "$PAIRS" --rate "$BURST_RATE" --duration "$DURATION" --push-devices
	settle burst 1
	stop_imqttd
	stop_sink
	{
		echo "### Burst: p2p --pairs $PAIRS --rate $BURST_RATE --duration $DURATION --push-devices, a fast sink"
		echo
		echo "| msgs/s | ack p50 / p99 | delivery p50 / p99 | server CPU µs/msg | lost / dup |"
		echo "| ---: | --- | --- | ---: | --- |"
		p2prow burst
		echo
		echo "| pushes | pushes/s | push latency p50 / p99 / max | duplicates | last push after the run (items sent/expected) |"
		echo "| ---: | ---: | --- | ---: | ---: |"
		echo "| $(sinkrow burst) |"
		echo
	} >>"$SUMMARY"
fi

echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$SUMMARY"
cat "$SUMMARY"
exit "$FAILED"
