#!/usr/bin/env bash
# Checks that third_party/mochi, imqtt's fork of mochi-mqtt/server, is
# pristine v2.7.9 plus third_party/mochi.patch and nothing else, so that no
# one changes the fork without the patch (and its explanation in
# third_party/mochi/IMQTT.md) saying so. With --update it rewrites the patch
# from the fork instead: run it after changing the fork on purpose.
set -euo pipefail
cd "$(dirname "$0")/.."
version=v2.7.9
pristine=$(go mod download -json "github.com/mochi-mqtt/server/v2@$version" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -d "$pristine" ] || { echo "check-mochi: no module directory for mochi $version" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fork=$PWD/third_party/mochi
if [ "${1:-}" = --update ]; then
  ln -s "$pristine" "$tmp/a"
  ln -s "$fork" "$tmp/b"
  (cd "$tmp" && diff -ruN --exclude=IMQTT.md a/ b/ || true) |
    sed -E 's/^(---|\+\+\+) ([^\t]*)\t.*/\1 \2/' >"$fork.patch"
  echo "check-mochi: wrote third_party/mochi.patch"
  exit 0
fi
cp -r "$pristine" "$tmp/mochi"
chmod -R u+w "$tmp/mochi"
(cd "$tmp/mochi" && git apply -p1 --whitespace=nowarn "$fork.patch") ||
  { echo "check-mochi: third_party/mochi.patch does not apply to mochi $version" >&2; exit 1; }
if ! diff -r --exclude=IMQTT.md "$tmp/mochi" "$fork" >"$tmp/diff"; then
  echo "check-mochi: third_party/mochi differs from mochi $version + third_party/mochi.patch:" >&2
  head -50 "$tmp/diff" >&2
  echo "check-mochi: change the fork on purpose? explain it in third_party/mochi/IMQTT.md and run scripts/check-mochi.sh --update" >&2
  exit 1
fi
echo "check-mochi: third_party/mochi is mochi $version + third_party/mochi.patch"
