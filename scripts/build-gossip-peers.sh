#!/bin/sh
# Build the Go memberlist peer (tests/peers/memberlist) with the machine's Go through the
# module proxy. Idempotent and cached: rebuilds only when main.go/go.mod/go.sum change.
set -eu

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="$ROOT/tests/peers/memberlist"
BIN="$DIR/memberlist-peer"

GO="$(command -v go || true)"
[ -n "$GO" ] || [ ! -x /usr/local/go/bin/go ] || GO=/usr/local/go/bin/go
if [ -z "$GO" ]; then
    echo "build-gossip-peers: installing golang-go" >&2
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; else SUDO=""; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends golang-go >/dev/null
    GO="$(command -v go)"
fi

if [ -x "$BIN" ] && [ -z "$(find "$DIR/main.go" "$DIR/go.mod" "$DIR/go.sum" -newer "$BIN" 2>/dev/null)" ]; then
    exit 0
fi
echo "build-gossip-peers: building $BIN" >&2
cd "$DIR"
GOFLAGS="${GOFLAGS:-} -mod=mod" "$GO" build -o "$BIN" .
