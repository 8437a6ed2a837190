# bench/lib.sh — shell helpers the bench scripts share; source it.

# freeport prints a loopback TCP port nobody listens on, below the ephemeral
# range so that the bench's own client sockets never take it.
freeport() {
	local p
	for _ in $(seq 200); do
		p=$((20000 + RANDOM % 10000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
	echo "no free port" >&2
	return 1
}
# waitport waits until something listens on 127.0.0.1:$1.
waitport() {
	for _ in $(seq 200); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return
		sleep 0.05
	done
	echo "nothing listens on port $1" >&2
	return 1
}
# The bench drives thousands of sends a second per user and registers and
# logs in thousands of accounts and devices from 127.0.0.1 within seconds,
# which imqttd's default abuse limits (made for the internet) refuse. It
# raises them far above what it does, instead of turning them off, so that
# the limiters' cost stays in the figures.
# shellcheck disable=SC2034 # used by the scripts that source this file
BENCH_LIMITS=(--max-send-rate 10000000 --max-send-burst 10000000
	--login-ip-limit 1000000/s:1000000 --login-user-ip-limit 1000000/s:1000000
	--login-user-limit 1000000/s:1000000 --register-ip-limit 1000000/s:1000000)

# start_fresh_imqttd NODE ARGS...: $BIN/imqttd on an emptied $WORK/data and
# free ports (MQ, HTTP, PPROF), its process in PID, its log appended to
# $WORK/imqttd.log; returns once /readyz answers (1 if it never does).
# stop_imqttd ends it. (bench/scale.sh, bench/sessions.sh)
start_fresh_imqttd() {
	local node=$1
	shift
	MQ=$(freeport) HTTP=$(freeport) PPROF=$(freeport)
	rm -rf "$WORK/data"
	"$BIN/imqttd" --mqtt-addr "127.0.0.1:$MQ" --http-addr "127.0.0.1:$HTTP" --pprof-addr "127.0.0.1:$PPROF" \
		--data-dir "$WORK/data" --node-id "$node" --log-level warn "$@" 2>>"$WORK/imqttd.log" &
	PID=$!
	for _ in $(seq 200); do
		curl -sf "http://127.0.0.1:$HTTP/readyz" >/dev/null && return
		sleep 0.05
	done
	echo "imqttd did not become ready" >&2
	return 1
}
stop_imqttd() {
	kill "$PID" 2>/dev/null || true
	wait "$PID" 2>/dev/null || true
	PID=""
}

# bench_setup: the start the webhook benches share (bench/push.sh,
# bench/hook.sh): BIN and WORK temporary directories, removed on exit with
# the imqttd (PID) and sink (SINKPID) still running; say; the open-files
# limit raised; curl and jq installed if missing; imqttd and imqtt built
# into BIN (IMQTTD: another imqttd binary instead); OUT made.
bench_setup() {
	BIN=$(mktemp -d)
	WORK=$(mktemp -d)
	PID="" SINKPID=""
	trap bench_cleanup EXIT
	ulimit -n "$(ulimit -Hn)"
	command -v curl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null; }
	command -v jq >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null; }
	say "building"
	go build -o "$BIN/" ./cmd/imqttd ./cmd/imqtt
	if [ -n "${IMQTTD:-}" ]; then cp "$IMQTTD" "$BIN/imqttd"; fi
	mkdir -p "$OUT"
}
bench_cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null || true
	[ -n "$PID" ] && wait "$PID" 2>/dev/null || true
	[ -n "$SINKPID" ] && kill "$SINKPID" 2>/dev/null || true
	[ -n "$SINKPID" ] && wait "$SINKPID" 2>/dev/null || true
	rm -rf "$BIN" "$WORK"
}
say() { printf '\n== %s\n' "$*" >&2; }
