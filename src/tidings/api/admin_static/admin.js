// tidings admin UI: plain DOM, no framework, no third-party code. Everything shown
// comes from clients (channel names, user ids), so it is set with textContent only.
"use strict";

const TOKEN_KEY = "tidings-admin-token";
const REFRESH_MS = 2000;
const POINTS = 90;

const $ = (id) => document.getElementById(id);
let timer = null;
let last = null;
const series = { clients: [], pubs: [], deliveries: [] };

class LoggedOut extends Error {}

async function call(method, body = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const response = await fetch(`/admin/api/${method}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `token ${token}` },
    body: JSON.stringify(body),
  });
  if (response.status === 401) {
    logOut("Session expired: log in again.");
    throw new LoggedOut();
  }
  const reply = await response.json();
  if (reply.error) {
    throw new Error(`${reply.error.code}: ${reply.error.message}`);
  }
  return reply.result;
}

function row(cells, extra) {
  const tr = document.createElement("tr");
  for (const value of cells) {
    const td = document.createElement("td");
    td.textContent = String(value);
    tr.appendChild(td);
  }
  if (extra) {
    const td = document.createElement("td");
    td.appendChild(extra);
    tr.appendChild(td);
  }
  return tr;
}

function fill(table, rows) {
  const body = $(table).querySelector("tbody");
  body.replaceChildren(...rows);
}

function uptime(seconds) {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  return h ? `${h}h ${m}m` : `${m}m ${seconds % 60}s`;
}

function push(list, value) {
  list.push(value);
  if (list.length > POINTS) list.shift();
}

function draw(canvasId, lines) {
  const canvas = $(canvasId);
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const max = Math.max(1, ...lines.flatMap((line) => line.values));
  ctx.fillStyle = "#6a6f76";
  ctx.font = "11px sans-serif";
  ctx.fillText(String(Math.round(max * 10) / 10), 4, 12);
  for (const line of lines) {
    ctx.strokeStyle = line.colour;
    ctx.lineWidth = 2;
    ctx.beginPath();
    line.values.forEach((value, i) => {
      const x = (i / (POINTS - 1)) * (width - 8) + 4;
      const y = height - 6 - (value / max) * (height - 20);
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.stroke();
  }
}

async function refresh() {
  try {
    const [info, stats, channels] = await Promise.all([
      call("info"),
      call("stats"),
      call("channels"),
    ]);
    fill(
      "nodes",
      info.nodes.map((n) =>
        row([n.name, n.uid, n.version, n.num_clients, n.num_users, n.num_subs, uptime(n.uptime)]),
      ),
    );
    const sum = (key) => info.nodes.reduce((total, n) => total + n[key], 0);
    $("num-clients").textContent = sum("num_clients");
    $("num-users").textContent = sum("num_users");
    $("num-channels").textContent = sum("num_channels");
    $("num-subs").textContent = sum("num_subs");
    if (last) {
      const dt = Math.max(0.001, stats.time - last.time);
      const pubRate = (stats.publications - last.publications) / dt;
      const deliveryRate = (stats.deliveries - last.deliveries) / dt;
      $("pub-rate").textContent = pubRate.toFixed(1);
      $("delivery-rate").textContent = deliveryRate.toFixed(1);
      push(series.pubs, pubRate);
      push(series.deliveries, deliveryRate);
    }
    last = stats;
    push(series.clients, stats.num_clients);
    draw("chart-clients", [{ colour: "#2f6fb3", values: series.clients }]);
    draw("chart-rates", [
      { colour: "#d9771e", values: series.pubs },
      { colour: "#2f6fb3", values: series.deliveries },
    ]);
    const names = Object.keys(channels.channels).sort();
    fill("channels", names.map((name) => row([name, channels.channels[name].num_clients])));
  } catch (error) {
    if (!(error instanceof LoggedOut)) console.error(error);
  }
}

function showApp() {
  $("login").classList.add("hidden");
  $("app").classList.remove("hidden");
  $("logout").classList.remove("hidden");
  refresh();
  timer = setInterval(refresh, REFRESH_MS);
}

function logOut(message = "") {
  sessionStorage.removeItem(TOKEN_KEY);
  if (timer) clearInterval(timer);
  timer = null;
  last = null;
  $("app").classList.add("hidden");
  $("logout").classList.add("hidden");
  $("login").classList.remove("hidden");
  $("login-error").textContent = message;
}

async function logIn(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  const response = await fetch("/admin/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ password: $("password").value }),
  });
  const reply = await response.json();
  if (!response.ok) {
    $("login-error").textContent = reply.error ? reply.error.message : "login failed";
    return;
  }
  $("password").value = "";
  sessionStorage.setItem(TOKEN_KEY, reply.token);
  showApp();
}

async function publish(event) {
  event.preventDefault();
  const out = $("publish-result");
  let data;
  try {
    data = JSON.parse($("publish-data").value);
  } catch (error) {
    out.textContent = `Data is not JSON: ${error.message}`;
    return;
  }
  const channel = $("publish-channel").value;
  try {
    const result = await call("publish", { channel, data });
    out.textContent = result.offset
      ? `Published to ${channel} at offset ${result.offset}.`
      : `Published to ${channel}.`;
    if (result.offset) {
      $("delivery-channel").value = channel;
      $("delivery-offset").value = result.offset;
    }
    refresh();
  } catch (error) {
    if (!(error instanceof LoggedOut)) out.textContent = `Refused: ${error.message}`;
  }
}

async function disconnect(user, client) {
  const out = $("user-result");
  try {
    await call("disconnect", client ? { user, client } : { user });
    await lookUp(null, client ? `Disconnected ${client}.` : `Disconnected every connection of ${user}.`);
  } catch (error) {
    if (!(error instanceof LoggedOut)) out.textContent = `Refused: ${error.message}`;
  }
}

async function lookUp(event, message = "") {
  if (event) event.preventDefault();
  const user = $("user-id").value;
  const out = $("user-result");
  try {
    const result = await call("user_connections", { user });
    const connections = Object.values(result.connections);
    fill(
      "connections",
      connections.map((c) => {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "danger";
        button.textContent = "Disconnect";
        button.addEventListener("click", () => disconnect(user, c.client));
        return row(
          [c.client, c.transport, c.remote_addr, `${c.name} ${c.version}`.trim(), c.channels.join(", ")],
          button,
        );
      }),
    );
    $("disconnect-user").disabled = connections.length === 0;
    out.textContent = message || `${connections.length} connection(s) of ${user}.`;
  } catch (error) {
    if (!(error instanceof LoggedOut)) out.textContent = `Refused: ${error.message}`;
  }
}

async function deliveryStatus(event) {
  event.preventDefault();
  const out = $("delivery-result");
  try {
    const result = await call("delivery_status", {
      channel: $("delivery-channel").value,
      offset: Number($("delivery-offset").value),
    });
    out.textContent = JSON.stringify(result, null, 2);
  } catch (error) {
    if (!(error instanceof LoggedOut)) out.textContent = `Refused: ${error.message}`;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", logIn);
  $("logout").addEventListener("click", () => logOut());
  $("publish-form").addEventListener("submit", publish);
  $("user-form").addEventListener("submit", lookUp);
  $("disconnect-user").addEventListener("click", () => disconnect($("user-id").value, ""));
  $("delivery-form").addEventListener("submit", deliveryStatus);
  if (sessionStorage.getItem(TOKEN_KEY)) showApp();
});
