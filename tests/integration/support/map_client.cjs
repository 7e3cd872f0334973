// A centrifuge npm SDK client holding one map subscription, driven over stdin/stdout.
// argv: <sdk dir> <ws url> <token> <channel> [clients|users|delta|delta-protobuf] (a map
// presence subscription: newMapClientsSubscription / newMapUsersSubscription; or a map
// subscription asking for fossil deltas, over JSON or Protobuf). Every event is one JSON line
// on stdout; stdin lines: "disconnect", "connect", "publish <key> <json>", "remove <key>",
// "stats" (the subscription's deltaStats()).
"use strict";
const [url, token, channel, presence] = process.argv.slice(3);
// "delta-protobuf": the SDK's Protobuf build; values are bytes, shown decoded as JSON.
const protobuf = presence === "delta-protobuf";
const { Centrifuge } = require(protobuf ? `${process.argv[2]}/build/protobuf/index.js` : process.argv[2]);
const value = (data) => (!protobuf || !(data instanceof Uint8Array) ? data
  : data.length ? JSON.parse(new TextDecoder().decode(data)) : "");
const out = (kind, ctx) => process.stdout.write(JSON.stringify({ kind, ctx }) + "\n");

const client = new Centrifuge(url, { token, websocket: WebSocket, minReconnectDelay: 100 });
client.on("connected", () => out("connected", {}));
client.on("disconnected", (ctx) => out("disconnected", ctx));
const delta = presence === "delta" || protobuf;
const options = delta ? { pageSize: 2, delta: "fossil" } : { pageSize: 2 };
const sub = presence === "clients" ? client.newMapClientsSubscription(channel, options)
  : presence === "users" ? client.newMapUsersSubscription(channel, options)
  : client.newMapSubscription(channel, options);
// Map presence entries say who: the ClientInfo's user (clients) or nothing but the key (users).
const who = (ctx) => (presence && !delta && ctx.info ? { user: ctx.info.user } : {});
sub.on("subscribed", (ctx) => out("subscribed", {
  recoverable: ctx.recoverable, recovered: ctx.recovered, wasRecovering: ctx.wasRecovering,
  streamPosition: ctx.streamPosition,
}));
sub.on("sync", (ctx) => out("sync", {
  entries: ctx.entries.map((e) => ({ key: e.key, data: value(e.data), ...who(e) })),
}));
sub.on("update", (ctx) => out("update", {
  key: ctx.key, data: value(ctx.data), removed: !!ctx.removed, ...who(ctx),
  // Protobuf decodes absent tags as {}: shown as absent, as over JSON.
  tags: ctx.tags && Object.keys(ctx.tags).length ? ctx.tags : undefined,
}));
sub.on("error", (ctx) => out("error", ctx.error));
sub.on("unsubscribed", (ctx) => out("unsubscribed", { code: ctx.code, reason: ctx.reason }));
sub.subscribe();
client.connect();

let buffer = "";
process.stdin.on("data", async (chunk) => {
  buffer += chunk;
  let nl;
  while ((nl = buffer.indexOf("\n")) >= 0) {
    const line = buffer.slice(0, nl);
    buffer = buffer.slice(nl + 1);
    const [cmd, key, ...rest] = line.split(" ");
    try {
      if (cmd === "disconnect") client.disconnect();
      else if (cmd === "connect") client.connect();
      else if (cmd === "publish") { await sub.publish(key, JSON.parse(rest.join(" "))); out("published", { key }); }
      else if (cmd === "remove") { await sub.remove(key); out("removed", { key }); }
      else if (cmd === "stats") out("stats", sub.deltaStats());
    } catch (e) {
      out("failed", { cmd, error: e });
    }
  }
});
process.stdin.on("end", () => { client.disconnect(); process.exit(0); });
