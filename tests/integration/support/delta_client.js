// A centrifuge npm SDK client that subscribes with fossil deltas and reports what it gets.
// Usage: node delta_client.js <sdk build dir> <json|protobuf> <ws url> <token> <channel> <count>
// Prints one JSON line per event: {"subscribed": ctx}, {"pub": data}, and at the end {"stats": ...}.
'use strict';
const [dir, format, url, token, channel, countText] = process.argv.slice(2);
const protobuf = format === 'protobuf';
const { Centrifuge } = require(protobuf ? `${dir}/protobuf/index.js` : `${dir}/index.js`);
const count = Number(countText);
// The `ws` package installed next to the SDK (scripts/vendor-sdk.sh): Node 18 has no WebSocket.
const WebSocketImpl = require(require.resolve('ws', { paths: [dir] }));
const out = (value) => process.stdout.write(JSON.stringify(value) + '\n');
const client = new Centrifuge(url, { token, websocket: WebSocketImpl, minReconnectDelay: 200, maxReconnectDelay: 500 });
const sub = client.newSubscription(channel, { delta: 'fossil' });
let received = 0;
sub.on('subscribed', (ctx) => out({ subscribed: { wasRecovering: ctx.wasRecovering, recovered: ctx.recovered } }));
sub.on('error', (ctx) => out({ error: String(ctx.error && ctx.error.message) }));
sub.on('publication', (ctx) => {
  const data = protobuf ? JSON.parse(new TextDecoder().decode(ctx.data)) : ctx.data;
  out({ pub: data });
  received += 1;
  if (received === count) {
    out({ stats: sub.deltaStats() });
    client.disconnect();
    process.exit(0);
  }
});
sub.subscribe();
client.connect();
setTimeout(() => { out({ timeout: received }); process.exit(1); }, 60000);
