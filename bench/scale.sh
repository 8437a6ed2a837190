#!/usr/bin/env bash
# bench/scale.sh — what an idle connection costs imqttd, measured at several
# sizes and fitted to a line, so that 100k and 1M can be extrapolated past
# this machine's file-descriptor limit. See BENCHMARKS.md "Connection scale".
#
#   bench/scale.sh                              # TCP and WebSocket at 5k, 10k, 19k
#   STEPS="1000 2000" TRANSPORTS=tcp IDLE=20s bench/scale.sh   # a quick look
#   FIT_ONLY=1 OUT=dir bench/scale.sh           # only the table and fit of dir/scale-*.json
#
# For each transport and step it builds imqttd and imqtt from this tree,
# starts a fresh imqttd (own loopback ports, fresh --data-dir, --pprof-addr),
# and runs `imqtt bench conns`: STEP authenticated connections, each
# subscribed to its inbox, that send a PINGREQ every KEEPALIVE (their CONNECT
# keepalive; the Go SDK's default is 30 s). After three forced GCs and SETTLE
# it reads the server's RSS, Go heap, stacks and goroutines, then its CPU over
# IDLE. Then it fits y = a + b·conns per transport (least squares) and writes
# $OUT/scale-*.json, $OUT/scale.md (table, fit, extrapolation) and prints it.
# The bench process holds every connection itself: STEP + 64 descriptors
# must fit under `ulimit -Hn` (20,000 here), as must the server's.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-bench/results/scale} # its own directory: bench/run.sh clears bench/results/*.json
STEPS=${STEPS:-5000 10000 19000}
TRANSPORTS=${TRANSPORTS:-tcp ws}
KEEPALIVE=${KEEPALIVE:-30s}
IDLE=${IDLE:-60s}
SETTLE=${SETTLE:-10s}
USERS=${USERS:-100} # accounts the connections are spread over (devices c{i} of each)

command -v jq >/dev/null || { echo "bench/scale.sh needs jq" >&2; exit 1; }
command -v curl >/dev/null || { echo "bench/scale.sh needs curl" >&2; exit 1; }
top=0
for n in $STEPS; do [ "$n" -gt "$top" ] && top=$n; done
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt $((top + 200)) ]; then
	echo "open-file limit $(ulimit -n) is below the $((top + 200)) a step of $top needs (server and bench each)" >&2
	exit 1
fi

BIN=$(mktemp -d)
WORK=$(mktemp -d)
PID=""
cleanup() {
	if [ -n "$PID" ]; then
		kill "$PID" 2>/dev/null || true
		wait "$PID" 2>/dev/null || true
	fi
	rm -rf "$BIN" "$WORK"
}
trap cleanup EXIT
say() { printf '\n== %s\n' "$*" >&2; }

# shellcheck source=bench/lib.sh
. bench/lib.sh

# Logins from 127.0.0.1 by the thousand: the abuse limits are raised, not
# turned off, as in bench/run.sh.
LIMITS=(--login-ip-limit 1000000/s:1000000 --login-user-ip-limit 1000000/s:1000000
	--login-user-limit 1000000/s:1000000 --register-ip-limit 1000000/s:1000000)
start_imqttd() {
	start_fresh_imqttd scale "${LIMITS[@]}"
}
stop() { stop_imqttd; }

FAILED=0
measure() {
	say "building"
	go build -o "$BIN/" ./cmd/imqttd ./cmd/imqtt
	mkdir -p "$OUT"
	rm -f "$OUT"/scale-*.json "$OUT"/scale.md
	for tr in $TRANSPORTS; do
		for n in $STEPS; do
			say "$tr: $n idle connections"
			start_imqttd
			ws=()
			[ "$tr" = ws ] && ws=(--ws "ws://127.0.0.1:$HTTP/mqtt")
			if ! "$BIN/imqtt" --home "$WORK/home" bench conns --conns "$n" --users "$USERS" "${ws[@]}" \
				--keepalive "$KEEPALIVE" --idle "$IDLE" --settle "$SETTLE" \
				--server "http://127.0.0.1:$HTTP" --mqtt "127.0.0.1:$MQ" --server-pid "$PID" --pprof "http://127.0.0.1:$PPROF" \
				--label "imqttd-$tr" --json "$OUT/scale-$tr-$n.json"; then
				echo "   ^ $tr $n FAILED" >&2
				FAILED=1
			fi
			stop
		done
	done
}
[ -n "${FIT_ONLY:-}" ] || measure

# One row per run: transport, conns, RSS KiB, RSS net KiB (less the freed
# Go heap not yet returned to the OS), heap KiB, stacks KiB, goroutines,
# server CPU ms per minute, pings/s, connects/s.
rows() {
	for f in "$OUT"/scale-*.json; do
		jq -r '[.params.transport, .extra.conns, .extra.server_rss_after_kib, .extra.server_rss_net_after_kib, .extra.server_go_heap_after_kib,
			.extra.server_go_stack_after_kib, .extra.server_goroutines_after, .extra.server_idle_cpu_pct * 600,
			.extra.idle_pings_per_s, .extra.connect_per_s] | @tsv' "$f"
	done | sort -k1,1 -k2,2n
}
{
	echo "## Connection scale — $(date -u +%Y-%m-%dT%H:%MZ), $(git rev-parse --short HEAD)"
	echo
	echo "Machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
	[ -z "${FIT_ONLY:-}" ] || echo "Fitted (FIT_ONLY) from $OUT/scale-*.json, whose runs were made earlier: each file's \"start\" says when."
	echo "Each connection authenticated, subscribed to its inbox, sending a PINGREQ every $KEEPALIVE (its keepalive); memory after 3 forced GCs and $SETTLE; server CPU over $IDLE idle. Command: \`STEPS=\"$STEPS\" TRANSPORTS=\"$TRANSPORTS\" KEEPALIVE=$KEEPALIVE IDLE=$IDLE bench/scale.sh\`."
	echo
	echo "| transport | conns | RSS MiB | RSS net MiB | Go heap MiB | stacks MiB | goroutines | server CPU ms/min | pings/s | connects/s |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	rows | awk -F'\t' '{ printf "| %s | %d | %.1f | %.1f | %.1f | %.1f | %d | %.0f | %.0f | %.0f |\n", $1, $2, $3/1024, $4/1024, $5/1024, $6/1024, $7, $8, $9, $10 }'
	echo
	echo "Fit y = a + b·conns (least squares over the steps), and what it gives at 100k and 1M:"
	echo
	echo "| transport | figure | per connection (b) | intercept (a) | r² | at 100k | at 1M |"
	echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
	rows | awk -F'\t' '
	function fit(t, col, name, unit, scale, fmtb, fmtx,    n, sx, sy, sxx, sxy, syy, i, x, y, b, a, r2, d) {
		n = cnt[t]; sx = sy = sxx = sxy = syy = 0
		for (i = 1; i <= n; i++) { x = X[t, i]; y = V[t, i, col] * scale; sx += x; sy += y; sxx += x * x; sxy += x * y; syy += y * y }
		d = n * sxx - sx * sx
		if (n < 2 || d == 0) return
		b = (n * sxy - sx * sy) / d; a = (sy - b * sx) / n
		r2 = (n * syy - sy * sy) == 0 ? 1 : (n * sxy - sx * sy)^2 / (d * (n * syy - sy * sy))
		printf "| %s | %s | " fmtb " | " fmtx " | %.4f | " fmtx " | " fmtx " |\n", t, name, b * unit, a, r2, a + b * 1e5, a + b * 1e6
	}
	{ t = $1; i = ++cnt[t]; X[t, i] = $2; for (c = 3; c <= 8; c++) V[t, i, c] = $c; if (!(t in seen)) { seen[t] = 1; order[++nt] = t } }
	END {
		for (k = 1; k <= nt; k++) {
			t = order[k]
			for (i = 1; i <= cnt[t]; i++) V[t, i, 9] = V[t, i, 5] + V[t, i, 6]
			fit(t, 3, "RSS (KiB/conn; MiB)", 1024, 1/1024, "%.2f", "%.0f")
			fit(t, 4, "RSS net (KiB/conn; MiB)", 1024, 1/1024, "%.2f", "%.0f")
			fit(t, 9, "Go heap+stacks (KiB/conn; MiB)", 1024, 1/1024, "%.2f", "%.0f")
			fit(t, 6, "stacks (KiB/conn; MiB)", 1024, 1/1024, "%.2f", "%.0f")
			fit(t, 7, "goroutines", 1, 1, "%.2f", "%.0f")
			fit(t, 8, "server CPU (ms/min per conn; ms/min)", 1, 1, "%.3f", "%.0f")
		}
	}'
	echo
	echo "CPU at 100k or 1M in cores: the ms/min figure / 60,000. Memory and CPU only; descriptors, ports and the kernel: deploy/kernel.md."
} >"$OUT/scale.md"
cat "$OUT/scale.md"
exit "$FAILED"
