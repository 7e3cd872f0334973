#!/bin/sh
# The NSQ peers the queue tests run against, built into .peers/ (git-ignored):
#   .peers/bin/nsqd, nsqlookupd, nsqadmin    real NSQ v1.3.0 (tests/peers/nsq-servers/go.mod)
#   .peers/bin/gonsq-client                  a go-nsq program (tests/peers/gonsq/)
#   tests/peers/nsqjs/node_modules           nsqjs from npm (tests/peers/nsqjs/)
# Idempotent and quick when everything is built: a peer is rebuilt only when its
# inputs are newer than its output. Go modules come through the module proxy.
#
# Why not `go install github.com/nsqio/nsq/apps/nsqd@v1.3.0`: that form also asks the
# proxy for the module's version list (deprecation check), which the proxy reachable
# here refuses; building from a pinned go.mod needs only the pinned version.
set -eu

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/.peers/bin"
PEERS="$ROOT/tests/peers"
mkdir -p "$BIN"

# up_to_date OUTPUT INPUT... : true when OUTPUT exists and no INPUT is newer.
up_to_date() {
    out="$1"
    shift
    [ -e "$out" ] || return 1
    for input in "$@"; do
        [ "$input" -nt "$out" ] && return 1
    done
    return 0
}

if command -v go >/dev/null 2>&1; then
    GO=go
elif [ -x /usr/local/go/bin/go ]; then
    GO=/usr/local/go/bin/go
else
    echo "build-nsq-peers: Go is not installed (needed for nsqd, nsqlookupd, go-nsq)" >&2
    exit 1
fi

for app in nsqd nsqlookupd nsqadmin; do
    if ! up_to_date "$BIN/$app" "$PEERS/nsq-servers/go.mod" "$PEERS/nsq-servers/go.sum"; then
        echo "build-nsq-peers: building $app v1.3.0"
        (cd "$PEERS/nsq-servers" && "$GO" build -mod=mod -o "$BIN/$app" "github.com/nsqio/nsq/apps/$app")
    fi
done

if ! up_to_date "$BIN/gonsq-client" "$PEERS/gonsq/main.go" "$PEERS/gonsq/go.mod" \
    "$PEERS/gonsq/go.sum"; then
    echo "build-nsq-peers: building gonsq-client (go-nsq)"
    (cd "$PEERS/gonsq" && "$GO" build -mod=mod -o "$BIN/gonsq-client" .)
fi

if ! up_to_date "$PEERS/nsqjs/node_modules/nsqjs/package.json" "$PEERS/nsqjs/package.json"; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "build-nsq-peers: npm is not installed (needed for nsqjs)" >&2
        exit 1
    fi
    echo "build-nsq-peers: installing nsqjs"
    npm install --prefix "$PEERS/nsqjs" --no-audit --no-fund --loglevel=error
    touch "$PEERS/nsqjs/node_modules/nsqjs/package.json"
fi
