// The tidings chat room: the official centrifuge SDK over /connection/websocket.
//
// One channel per room (`chat:<room>`): presence and join/leave say who is here,
// history gives the last 50 messages, recovery brings back what was missed while
// the connection was down. `?format=protobuf` loads the SDK's protobuf build, whose
// publication data are bytes (UTF-8 JSON here); `?room=NAME` picks another room.
(function () {
  "use strict";

  const params = new URLSearchParams(location.search);
  const protobuf = params.get("format") === "protobuf";
  const room = (params.get("room") || "lobby").replace(/[^A-Za-z0-9_.-]/g, "") || "lobby";
  const channel = "chat:" + room;
  const HISTORY_LIMIT = 50;
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();

  const $ = (id) => document.getElementById(id);
  const ui = {
    state: $("state"),
    join: $("join"),
    name: $("name"),
    joinButton: $("join-button"),
    room: $("room"),
    presence: $("presence"),
    presenceCount: $("presence-count"),
    messages: $("messages"),
    send: $("send"),
    text: $("text"),
    sendButton: $("send-button"),
    error: $("error"),
    sdkMissing: $("sdk-missing"),
  };

  // What the page has seen, for people debugging and for the browser tests.
  const chat = {
    protocol: protobuf ? "protobuf" : "json",
    channel: channel,
    user: "",
    states: [],
    recoveries: 0,
    historyLoads: 0,
    client: null,
    subscription: null,
  };
  window.tidingsChat = chat;

  $("room-name").textContent = "# " + room;
  $("protocol").textContent = protobuf ? "protobuf" : "";

  let Centrifuge = null;
  const seenOffsets = new Set();
  const here = new Map(); // client id -> user

  function setState(state, detail) {
    chat.states.push(state);
    ui.state.dataset.state = state;
    document.body.dataset.state = state;
    ui.state.textContent = detail ? state + " (" + detail + ")" : state;
  }

  function showError(message) {
    ui.error.textContent = message;
    ui.error.hidden = !message;
  }

  function encode(value) {
    return protobuf ? encoder.encode(JSON.stringify(value)) : value;
  }

  function decode(data) {
    if (data instanceof Uint8Array || data instanceof ArrayBuffer) {
      try {
        return JSON.parse(decoder.decode(data));
      } catch (e) {
        return { text: decoder.decode(data) };
      }
    }
    return data || {};
  }

  function clock(ms) {
    const d = ms ? new Date(ms) : new Date();
    return d.toTimeString().slice(0, 5);
  }

  function scrollDown() {
    ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  function systemLine(text) {
    const li = document.createElement("li");
    li.className = "system";
    li.textContent = text;
    ui.messages.appendChild(li);
    scrollDown();
  }

  // A publication as a line, in offset order, each offset once (history, live
  // publications and recovered ones may overlap).
  function addMessage(pub) {
    const offset = Number(pub.offset || 0);
    if (offset) {
      if (seenOffsets.has(offset)) return;
      seenOffsets.add(offset);
    }
    const data = decode(pub.data);
    const user = (pub.info && pub.info.user) || data.user || "server";
    const li = document.createElement("li");
    li.className = "message" + (user === chat.user ? " mine" : "");
    li.dataset.offset = String(offset);
    const time = document.createElement("span");
    time.className = "time";
    time.textContent = clock(data.ts);
    const who = document.createElement("span");
    who.className = "user";
    who.textContent = user;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = typeof data.text === "string" ? data.text : JSON.stringify(data);
    li.append(time, who, text);
    let before = null;
    if (offset) {
      for (const other of ui.messages.querySelectorAll("li.message")) {
        const o = Number(other.dataset.offset);
        if (o && o > offset) {
          before = other;
          break;
        }
      }
    }
    ui.messages.insertBefore(li, before);
    if (!before) scrollDown();
  }

  function renderPresence() {
    const users = [...new Set(here.values())].sort((a, b) => a.localeCompare(b));
    ui.presence.replaceChildren(
      ...users.map((user) => {
        const li = document.createElement("li");
        li.textContent = user;
        if (user === chat.user) li.className = "me";
        return li;
      })
    );
    ui.presenceCount.textContent = String(users.length);
  }

  function isHere(user) {
    for (const u of here.values()) if (u === user) return true;
    return false;
  }

  async function loadHistory() {
    const result = await chat.subscription.history({ limit: HISTORY_LIMIT, reverse: true });
    chat.historyLoads += 1;
    for (const pub of result.publications.slice().reverse()) addMessage(pub);
  }

  async function loadPresence() {
    const result = await chat.subscription.presence();
    here.clear();
    for (const [client, info] of Object.entries(result.clients || {})) here.set(client, info.user);
    renderPresence();
  }

  async function fetchToken() {
    const response = await fetch("/demo/token?user=" + encodeURIComponent(chat.user));
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.error || "token request failed: " + response.status);
    return body.token;
  }

  function start(user) {
    chat.user = user;
    ui.join.hidden = true;
    ui.room.hidden = false;
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const client = new Centrifuge(scheme + location.host + "/connection/websocket", {
      getToken: fetchToken,
    });
    chat.client = client;
    client.on("connecting", (ctx) => setState("connecting", ctx.reason));
    client.on("connected", () => {
      setState("connected");
      showError("");
    });
    client.on("disconnected", (ctx) => setState("disconnected", ctx.reason));
    client.on("error", (ctx) => {
      if (ctx.error && ctx.type !== "transport") showError(String(ctx.error.message || ctx.error));
    });

    const sub = client.newSubscription(channel, { joinLeave: true, recoverable: true });
    chat.subscription = sub;
    sub.on("subscribing", () => {
      ui.sendButton.disabled = true;
    });
    sub.on("subscribed", async (ctx) => {
      ui.sendButton.disabled = false;
      try {
        if (ctx.wasRecovering && ctx.recovered) {
          // The missed publications follow this event as ordinary publications.
          chat.recoveries += 1;
          systemLine("back online, missed messages recovered");
        } else {
          if (ctx.wasRecovering) {
            systemLine("back online; some messages could not be recovered, reloading");
            ui.messages.replaceChildren();
            seenOffsets.clear();
          }
          await loadHistory();
        }
        await loadPresence();
      } catch (e) {
        showError("could not load the room: " + (e.message || e));
      }
    });
    sub.on("unsubscribed", (ctx) => {
      ui.sendButton.disabled = true;
      if (ctx.code !== 0) showError("left the room: " + ctx.reason);
    });
    sub.on("publication", addMessage);
    sub.on("join", (ctx) => {
      const fresh = !isHere(ctx.info.user);
      here.set(ctx.info.client, ctx.info.user);
      renderPresence();
      if (fresh && ctx.info.user !== chat.user) systemLine(ctx.info.user + " joined");
    });
    sub.on("leave", (ctx) => {
      here.delete(ctx.info.client);
      renderPresence();
      if (!isHere(ctx.info.user) && ctx.info.user !== chat.user) {
        systemLine(ctx.info.user + " left");
      }
    });
    sub.subscribe();
    client.connect();
    ui.text.focus();
  }

  ui.send.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = ui.text.value.trim();
    if (!text || !chat.subscription) return;
    ui.text.value = "";
    try {
      await chat.subscription.publish(encode({ text: text, ts: Date.now() }));
    } catch (e) {
      ui.text.value = text;
      showError("not sent: " + (e.message || e));
    }
  });

  ui.join.addEventListener("submit", (event) => {
    event.preventDefault();
    const user = ui.name.value.trim();
    if (!user || !Centrifuge) return;
    localStorage.setItem("tidings-chat-name", user);
    start(user);
  });

  // The SDK is a file copied from npm at set-up time; say so plainly if it is not there.
  ui.name.value = params.get("name") || localStorage.getItem("tidings-chat-name") || "";
  ui.joinButton.disabled = true;
  const script = document.createElement("script");
  script.src = protobuf ? "/static/centrifuge.protobuf.js" : "/static/centrifuge.js";
  script.onload = () => {
    Centrifuge = window.Centrifuge || null;
    if (!Centrifuge) {
      ui.sdkMissing.hidden = false;
      return;
    }
    ui.joinButton.disabled = false;
    setState("disconnected", "not joined yet");
  };
  script.onerror = () => {
    ui.sdkMissing.hidden = false;
    setState("disconnected", "SDK missing");
  };
  document.head.appendChild(script);
})();
