#!/bin/sh
# Centrifugo v6, the differential oracle of the proxy tests (tests/integration/
# test_proxy_centrifugo.py), built from its Go module with the machine's Go through the
# module proxy into tests/peers/bin/ (git-ignored). Idempotent: quick when it is there.
set -eu

VERSION="${CENTRIFUGO_VERSION:-v6.9.1}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/tests/peers/bin"

if [ -x "$BIN/centrifugo" ] && [ "$(cat "$BIN/centrifugo.version" 2>/dev/null)" = "$VERSION" ]; then
    exit 0
fi
command -v go >/dev/null 2>&1 || PATH="$PATH:/usr/local/go/bin"
if ! command -v go >/dev/null 2>&1; then
    echo "build-centrifugo: Go is needed to build Centrifugo $VERSION (https://go.dev/dl/)" >&2
    exit 1
fi
mkdir -p "$BIN"
echo "build-centrifugo: building Centrifugo $VERSION (a few minutes the first time)"
GOBIN="$BIN" go install "github.com/centrifugal/centrifugo/v6@$VERSION"
echo "$VERSION" > "$BIN/centrifugo.version"
