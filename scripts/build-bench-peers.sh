#!/bin/sh
# Build the compiled benchmark programs into .peers/bin (gitignored, never committed):
#   goload      the Go load generator behind `tidings bench --client go`
#               (source: src/tidings/bench/goload)
#   centrifugo  Centrifugo v6, a peer in benchmarks/compare.py (a link to the copy
#               scripts/build-centrifugo.sh builds for the proxy tests)
# Usage: sh scripts/build-bench-peers.sh [goload] [centrifugo]   (default: both)
# Idempotent: a program is rebuilt only when missing or older than its source.
# Go modules come through the module proxy into Go's own cache (GOMODCACHE).
set -eu

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${TIDINGS_PEERS_BIN:-$ROOT/.peers/bin}"
CENTRIFUGO_VERSION="v6.9.1"
mkdir -p "$BIN"

if command -v go >/dev/null 2>&1; then
    GO=go
elif [ -x /usr/local/go/bin/go ]; then
    GO=/usr/local/go/bin/go
else
    echo "build-bench-peers: the Go toolchain is missing (apt-get install golang-go)" >&2
    exit 1
fi

build_goload() {
    src="$ROOT/src/tidings/bench/goload"
    out="$BIN/goload"
    if [ -x "$out" ] && [ -z "$(find "$src" -newer "$out" -type f | head -n 1)" ]; then
        return 0
    fi
    echo "build-bench-peers: building goload"
    (cd "$src" && "$GO" build -trimpath -buildvcs=false -o "$out.$$" . && mv "$out.$$" "$out")
}

build_centrifugo() {
    # One copy of Centrifugo for the tests and the benchmarks: scripts/build-centrifugo.sh
    # installs it into tests/peers/bin; .peers/bin/centrifugo points at it.
    CENTRIFUGO_VERSION="$CENTRIFUGO_VERSION" sh "$ROOT/scripts/build-centrifugo.sh"
    ln -sf "$ROOT/tests/peers/bin/centrifugo" "$BIN/centrifugo"
}

[ "$#" -gt 0 ] || set -- goload centrifugo
for program in "$@"; do
    case "$program" in
        goload) build_goload ;;
        centrifugo) build_centrifugo ;;
        *) echo "build-bench-peers: unknown program $program" >&2; exit 2 ;;
    esac
done
