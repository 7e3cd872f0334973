// A centrifuge npm SDK client holding one map subscription, driven over stdin/stdout.
// argv: <sdk dir> <ws url> <token> <channel> [clients|users|delta] (a map presence subscription:
// newMapClientsSubscription / newMapUsersSubscription; or a map subscription asking for fossil
// deltas). Every event is one JSON line on stdout; stdin lines: "disconnect", "connect",
// "publish <key> <json>", "remove <key>", "stats" (the subscription's deltaStats()).
"use strict";
const { Centrifuge } = require(process.argv[2]);
const [url, token, channel, presence] = process.argv.slice(3);
const out = (kind, ctx) => process.stdout.write(JSON.stringify({ kind, ctx }) + "\n");

const client = new Centrifuge(url, { token, websocket: WebSocket, minReconnectDelay: 100 });
client.on("connected", () => out("connected", {}));
client.on("disconnected", (ctx) => out("disconnected", ctx));
const options = presence === "delta" ? { pageSize: 2, delta: "fossil" } : { pageSize: 2 };
const sub = presence === "clients" ? client.newMapClientsSubscription(channel, options)
  : presence === "users" ? client.newMapUsersSubscription(channel, options)
  : client.newMapSubscription(channel, options);
// Map presence entries say who: the ClientInfo's user (clients) or nothing but the key (users).
const who = (ctx) => (presence && presence !== "delta" && ctx.info ? { user: ctx.info.user } : {});
sub.on("subscribed", (ctx) => out("subscribed", {
  recoverable: ctx.recoverable, recovered: ctx.recovered, wasRecovering: ctx.wasRecovering,
  streamPosition: ctx.streamPosition,
}));
sub.on("sync", (ctx) => out("sync", {
  entries: ctx.entries.map((e) => ({ key: e.key, data: e.data, ...who(e) })),
}));
sub.on("update", (ctx) => out("update", {
  key: ctx.key, data: ctx.data, removed: !!ctx.removed, tags: ctx.tags, ...who(ctx),
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
