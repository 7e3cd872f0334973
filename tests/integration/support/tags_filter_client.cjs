// A centrifuge npm SDK client with one subscription that sends a tags filter, over stdin/stdout.
// argv: <sdk dir> <ws url> <token> <channel> <filter JSON> [protobuf]. Events are JSON lines on
// stdout; stdin lines: "disconnect", "connect".
"use strict";
const sdk = process.argv[8] === "protobuf" ? `${process.argv[2]}/build/protobuf` : process.argv[2];
const { Centrifuge } = require(sdk);
const [url, token, channel, filter] = process.argv.slice(3);
const out = (kind, ctx) => process.stdout.write(JSON.stringify({ kind, ctx }) + "\n");

const client = new Centrifuge(url, { token, websocket: WebSocket, minReconnectDelay: 100 });
client.on("connected", () => out("connected", {}));
client.on("disconnected", (ctx) => out("disconnected", { code: ctx.code }));
const sub = client.newSubscription(channel, { tagsFilter: JSON.parse(filter) });
sub.on("subscribed", (ctx) => out("subscribed", {
  recoverable: ctx.recoverable, recovered: ctx.recovered, wasRecovering: ctx.wasRecovering,
}));
const decoder = new TextDecoder();
sub.on("publication", (ctx) => out("publication", {
  data: ctx.data instanceof Uint8Array ? JSON.parse(decoder.decode(ctx.data)) : ctx.data,
  tags: ctx.tags || {},
}));
sub.on("error", (ctx) => out("error", { code: ctx.error.code }));
sub.on("unsubscribed", (ctx) => out("unsubscribed", { code: ctx.code }));
sub.subscribe();
client.connect();

let buffer = "";
process.stdin.on("data", (chunk) => {
  buffer += chunk;
  let nl;
  while ((nl = buffer.indexOf("\n")) >= 0) {
    const cmd = buffer.slice(0, nl);
    buffer = buffer.slice(nl + 1);
    if (cmd === "disconnect") client.disconnect();
    else if (cmd === "connect") client.connect();
  }
});
process.stdin.on("end", () => { client.disconnect(); process.exit(0); });
