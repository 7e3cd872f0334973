#!/bin/sh
# What the tests need beyond the Python packages: Debian's chromium, Node.js and npm
# (for the centrifuge SDK), the SDK copied into the demo, redis-server/redis-tools
# (Redis engine tests start their own servers), serf and the Go memberlist peer (gossip
# interop), nftables (fault tests), the NSQ peers, Centrifugo, and Go with the Go load
# generator `goload` built into .peers/bin (tests/bench). Idempotent: when
# everything is present it only checks. `apt-get update` runs only when installing.
set -eu

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
missing=""
[ -x /usr/bin/chromium ] || missing="$missing chromium fonts-liberation"
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
command -v redis-cli >/dev/null 2>&1 || missing="$missing redis-tools"
command -v serf >/dev/null 2>&1 || missing="$missing serf"
command -v nft >/dev/null 2>&1 || missing="$missing nftables"
command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ] || missing="$missing golang-go"

if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    else
        SUDO=""
    fi
    echo "setup-test-deps: installing$missing"
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing \
        >/dev/null
fi

sh "$ROOT/scripts/vendor-sdk.sh"
sh "$ROOT/scripts/build-centrifugo.sh"
[ -f "$ROOT/src/tidings/demo/static/vendor/centrifuge.js" ] || {
    echo "setup-test-deps: the centrifuge SDK could not be installed" >&2
    exit 1
}

# nsqd, nsqlookupd, a go-nsq program and nsqjs for the queue and lookup tests.
sh "$ROOT/scripts/build-nsq-peers.sh"

# The Go load generator behind `tidings bench --client go` (tests/bench).
sh "$ROOT/scripts/build-bench-peers.sh" goload
# The Go memberlist peer for the gossip interop tests and vectors.
sh "$ROOT/scripts/build-gossip-peers.sh"
