// A centrifuge npm SDK client holding one shared poll subscription, driven over stdin/stdout.
// argv: <sdk dir> <ws url> <token> <channel>. Events are JSON lines on stdout;
// stdin lines: "track <signature> <key> [<key> ...]", "untrack <key> [...]", and
// "signature <signature> <key> [...]", the answer to a "signature_wanted" event (the SDK's
// getSignature: on reconnect and when the signatures of the tracked keys run out).
"use strict";
const { Centrifuge } = require(process.argv[2]);
const [url, token, channel] = process.argv.slice(3);
const out = (kind, ctx) => process.stdout.write(JSON.stringify({ kind, ctx }) + "\n");

const client = new Centrifuge(url, { token, websocket: WebSocket });
let signed = null;
const getSignature = (ctx) => new Promise((resolve) => {
  signed = resolve;
  out("signature_wanted", { keys: ctx.keys });
});
const sub = client.newSharedPollSubscription(channel, { getSignature });
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
    else if (cmd === "signature" && signed) {
      signed({ signature: args[0], keys: args.slice(1) });
      signed = null;
    }
  }
});
process.stdin.on("end", () => { client.disconnect(); process.exit(0); });
