#!/bin/sh
# Copy the official `centrifuge` npm SDK's browser builds into the demo's static files.
# Idempotent and quick when they are there; without npm it says so and exits 0
# (the demo page then explains that the SDK is missing). Never needed at run time.
set -eu

VERSION="${CENTRIFUGE_JS_VERSION:-5.8.0}"
# The `ws` package gives Node.js test clients (tests/integration/support/*.js) a
# WebSocket on Node versions without a global one (Debian's Node 18).
WS_VERSION="8.18.0"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENDOR="$ROOT/src/tidings/demo/static/vendor"
WORK="$ROOT/build/npm"

if [ -f "$VENDOR/centrifuge.js" ] && [ -f "$VENDOR/centrifuge.protobuf.js" ] \
    && [ "$(cat "$VENDOR/VERSION" 2>/dev/null)" = "$VERSION" ] \
    && [ -f "$WORK/node_modules/centrifuge/build/index.js" ] \
    && [ -f "$WORK/node_modules/ws/package.json" ]; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "vendor-sdk: npm not found; the demo page will say the centrifuge SDK is missing" >&2
    exit 0
fi
mkdir -p "$WORK" "$VENDOR"
[ -f "$WORK/package.json" ] || echo '{"private": true}' > "$WORK/package.json"
npm install --prefix "$WORK" --no-audit --no-fund --loglevel=error "centrifuge@$VERSION" \
    "ws@$WS_VERSION"
DIST="$WORK/node_modules/centrifuge/dist"
cp "$DIST/centrifuge.js" "$DIST/centrifuge.protobuf.js" "$VENDOR/"
cp "$WORK/node_modules/centrifuge/LICENSE" "$VENDOR/LICENSE"
echo "$VERSION" > "$VENDOR/VERSION"
echo "vendor-sdk: centrifuge $VERSION copied to $VENDOR"
