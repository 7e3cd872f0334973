// A centrifuge npm SDK client holding one shared poll subscription, driven over stdin/stdout.
// argv: <sdk dir> <ws url> <token> <channel>. Events are JSON lines on stdout;
// stdin lines: "track <signature> <key> [<key> ...]", "untrack <key> [...]".
"use strict";
const { Centrifuge } = require(process.argv[2]);
const [url, token, channel] = process.argv.slice(3);
const out = (kind, ctx) => process.stdout.write(JSON.stringify({ kind, ctx }) + "\n");

const client = new Centrifuge(url, { token, websocket: WebSocket });
const sub = client.newSharedPollSubscription(channel);
sub.on("subscribed", () => out("subscribed", {}));
sub.on("update", (ctx) => out("update", {
  key: ctx.key, data: ctx.data, removed: !!ctx.removed, version: ctx.version,
}));
sub.on("error", (ctx) => out("error", { type: ctx.type, error: ctx.error }));
sub.subscribe();
client.connect();

let buffer = "";
process.stdin.on("data", (chunk) => {
  buffer += chunk;
  let nl;
  while ((nl = buffer.indexOf("\n")) >= 0) {
    const [cmd, ...args] = buffer.slice(0, nl).split(" ");
    buffer = buffer.slice(nl + 1);
    if (cmd === "track") sub.track(args.slice(1), args[0]);
    else if (cmd === "untrack") sub.untrack(args);
  }
});
process.stdin.on("end", () => { client.disconnect(); process.exit(0); });
