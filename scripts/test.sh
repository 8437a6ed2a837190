#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need on a
# fresh Debian machine, then runs every test. It fails, never skips, when a
# dependency cannot be had.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto_pub >/dev/null || need_apt+=(mosquitto-clients)
/usr/bin/python3 -c 'import paho.mqtt' 2>/dev/null || need_apt+=(python3-paho-mqtt)
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
command -v redis-server >/dev/null || need_apt+=(redis-server) # state/redis tests start their own
command -v chromium >/dev/null || need_apt+=(chromium) # e2e/webchat_test.go drives /chat/ headless
command -v haproxy >/dev/null || need_apt+=(haproxy) # deploy/: haproxy -c checks the load balancer's config
command -v systemd-analyze >/dev/null || need_apt+=(systemd) # deploy/: systemd-analyze verify checks the unit
command -v zsh >/dev/null || need_apt+=(zsh) # cmd/imqtt: its zsh completion script is run
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "test.sh: installing ${need_apt[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# ffmpeg for the media tests (private video as HLS, video thumbnails): about 57 MB
# without the recommended extras, which the tests do not use.
if ! command -v ffmpeg >/dev/null; then
  echo "test.sh: installing ffmpeg"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
fi
command -v ffmpeg >/dev/null || { echo "test.sh: ffmpeg missing after install" >&2; exit 1; }
command -v mosquitto_pub >/dev/null || { echo "test.sh: mosquitto_pub missing after install" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "test.sh: redis-server missing after install" >&2; exit 1; }
command -v chromium >/dev/null || { echo "test.sh: chromium missing after install" >&2; exit 1; }
command -v haproxy >/dev/null || { echo "test.sh: haproxy missing after install" >&2; exit 1; }
command -v systemd-analyze >/dev/null || { echo "test.sh: systemd-analyze missing after install" >&2; exit 1; }
command -v zsh >/dev/null || { echo "test.sh: zsh missing after install" >&2; exit 1; }
# MQTT.js for the interoperability tests, pinned by test/node/package-lock.json.
if [ ! -d test/node/node_modules/mqtt ]; then
  npm ci --prefix test/node --no-audit --no-fund >/dev/null
fi
# The JavaScript SDK's dependencies (sdk/js, pinned by its package-lock.json:
# mqtt, and typescript to check index.d.ts); its tests run below, after the
# server's.
if [ ! -d sdk/js/node_modules/mqtt ] || [ ! -x sdk/js/node_modules/.bin/tsc ]; then
  npm ci --prefix sdk/js --no-audit --no-fund >/dev/null
fi

unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt needed: $unformatted" >&2; exit 1; fi
# The modules of the repository (each its own go.mod): the server, the
# protocol types and the Go SDK (apart so that a bot gets neither the
# server nor its dependencies), the development tools (FerretDB) and the
# end-to-end tests (a browser driver): neither of the last two is in the
# server's module graph.
modules=(. wire client tools e2e)
# The fork of mochi (third_party/mochi) is pristine v2.7.9 plus its patch,
# and mochi's own tests pass on it (the patch changes behaviour in one hunk:
# third_party/mochi/IMQTT.md).
./scripts/check-mochi.sh
echo "test.sh: go test third_party/mochi"
(cd third_party/mochi && go test -count=1 . ./packets) # the packages the patch touches
for m in "${modules[@]}"; do
  (cd "$m" && go vet ./...)
done
# The end-to-end module runs beside the others: its tests spend most of
# their time waiting on the servers and clients they start (timers,
# sockets), so on two cores the other modules' builds and tests and the
# fuzz phase fit in that time instead of after it. Its output is shown
# whole at the end (or at once when something else fails first).
e2elog=$(mktemp)
echo "test.sh: go test e2e (in the background; its output follows at the end)"
# In a session of its own (setsid), so that a failure here stops it whole:
# go test, its test binaries and the servers they started.
setsid bash -c 'cd e2e && exec go test -race -count=1 -timeout 14m ./...' >"$e2elog" 2>&1 &
e2epid=$!
trap 'kill -- -$e2epid 2>/dev/null || true; rm -f "$e2elog"' EXIT
for m in "${modules[@]}"; do
  [ "$m" = e2e ] && continue
  echo "test.sh: go test $m"
  (cd "$m" && go test -race -count=1 -timeout 14m ./...)
done
# The JavaScript SDK: node --test against a real imqttd, built with the race
# detector (the server module's tests just compiled its packages so, so the
# build is a link; and the server is checked under the SDK's traffic too).
bindir=$(mktemp -d)
trap 'kill -- -$e2epid 2>/dev/null || true; rm -rf "$e2elog" "$bindir"' EXIT
# -buildvcs=auto: stamped with the checkout's revision even where GOFLAGS
# turns stamping off, and --version must name it (internal/version).
go build -race -buildvcs=auto -o "$bindir/imqttd" ./cmd/imqttd
if rev=$(git rev-parse HEAD 2>/dev/null); then
  "$bindir/imqttd" --version | grep -q "revision $rev" || { echo "test.sh: imqttd --version does not name revision $rev: $("$bindir/imqttd" --version)" >&2; exit 1; }
fi
echo "test.sh: npm test sdk/js"
(cd sdk/js && IMQTTD="$bindir/imqttd" npm test)
# Every fuzz target: its committed corpus ran above; a few seconds of new
# inputs each here (FUZZTIME=10m scripts/fuzz.sh for a real hunt).
./scripts/fuzz.sh
echo "test.sh: waiting for go test e2e"
e2e_status=0
wait $e2epid || e2e_status=$?
cat "$e2elog"
if [ "$e2e_status" -ne 0 ]; then echo "test.sh: go test e2e failed" >&2; exit "$e2e_status"; fi
