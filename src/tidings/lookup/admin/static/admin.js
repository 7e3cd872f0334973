// The queue admin page: polls /api/overview and renders nodes, topics and channels.
// Pause/unpause act at once; empty and delete ask for confirmation in a dialog first.
'use strict';

const POLL_MS = 2000;
const $ = (selector) => document.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'class') node.className = value;
    else if (key.startsWith('data-')) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function stateBadge(paused) {
  return el('span', { class: paused ? 'badge paused' : 'badge' }, paused ? 'paused' : 'active');
}

function actionButtons(kind, topic, channel, paused) {
  const cell = el('td', { class: 'actions' });
  const target = { kind, topic, channel };
  const label = kind === 'topic' ? `topic ${topic}` : `channel ${topic}/${channel}`;
  cell.append(
    el('button', { type: 'button', onclick: () => act(target, paused ? 'unpause' : 'pause') },
      paused ? 'Unpause' : 'Pause'),
    el('button', { type: 'button', onclick: () => confirmThen(target, 'empty', label) }, 'Empty'),
    el('button', { type: 'button', class: 'danger',
      onclick: () => confirmThen(target, 'delete', label) }, 'Delete'),
  );
  return cell;
}

function renderNodes(nodes) {
  const body = $('#nodes tbody');
  body.replaceChildren();
  if (!nodes.length) body.append(el('tr', {}, el('td', { class: 'empty', colSpan: 6 }, 'no nodes')));
  for (const node of nodes) {
    body.append(el('tr', { 'data-node': node.http_address },
      el('td', {}, node.hostname || ''),
      el('td', {}, node.broadcast_address || node.http_address),
      el('td', {}, node.tcp_port ?? ''),
      el('td', {}, node.http_port ?? ''),
      el('td', {}, node.version || ''),
      el('td', {}, node.error ? `error: ${node.error}` : (node.topics || []).length)));
  }
}

function rate(value) { return (value || 0).toFixed(1); }

function renderTopics(topics) {
  const body = $('#topics tbody');
  body.replaceChildren();
  if (!topics.length) body.append(el('tr', {}, el('td', { class: 'empty', colSpan: 11 }, 'no topics')));
  for (const topic of topics) {
    const name = topic.topic_name;
    body.append(el('tr', { class: 'topic', 'data-topic': name },
      el('td', {}, name, el('small', {}, ` · ${topic.nodes.length} node${topic.nodes.length === 1 ? '' : 's'}`)),
      el('td', { class: 'depth' }, topic.depth),
      el('td', {}, ''), el('td', {}, ''), el('td', {}, ''), el('td', {}, ''),
      el('td', {}, topic.message_count),
      el('td', { class: 'rate' }, rate(topic.rate)),
      el('td', { class: 'clients' }, topic.channels.reduce((sum, c) => sum + c.client_count, 0)),
      el('td', { class: 'state' }, stateBadge(topic.paused)),
      actionButtons('topic', name, null, topic.paused)));
    for (const channel of topic.channels) {
      body.append(el('tr', { class: 'channel', 'data-topic': name, 'data-channel': channel.channel_name },
        el('td', {}, channel.channel_name),
        el('td', { class: 'depth' }, channel.depth),
        el('td', { class: 'in-flight' }, channel.in_flight_count),
        el('td', { class: 'deferred' }, channel.deferred_count),
        el('td', {}, channel.requeue_count),
        el('td', {}, channel.timeout_count),
        el('td', {}, channel.message_count),
        el('td', { class: 'rate' }, rate(channel.rate)),
        el('td', { class: 'clients' }, channel.client_count),
        el('td', { class: 'state' }, stateBadge(channel.paused)),
        actionButtons('channel', name, channel.channel_name, channel.paused)));
    }
  }
}

function showErrors(errors) {
  const box = $('#errors');
  box.hidden = !errors.length;
  box.replaceChildren(...errors.map((text) => el('div', {}, text)));
}

async function refresh() {
  try {
    const response = await fetch('/api/overview');
    const overview = await response.json();
    const sources = overview.sources || {};
    $('#sources').textContent = [
      ...(sources.lookupd || []).map((a) => `lookupd ${a}`),
      ...(sources.nsqd || []).map((a) => `nsqd ${a}`),
    ].join(' · ');
    renderNodes(overview.nodes);
    renderTopics(overview.topics);
    showErrors(overview.errors);
    $('#updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    showErrors([`cannot load the overview: ${err}`]);
  }
}

async function act(target, action) {
  const response = await fetch(`/api/${target.kind}/${action}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Queue-Admin': '1' },
    body: JSON.stringify({ topic: target.topic, channel: target.channel }),
  });
  const result = await response.json();
  if (!response.ok || !result.ok) {
    const details = (result.results || []).map((r) => `${r.address}: ${r.status} ${r.message}`);
    showErrors([`${action} failed`, ...details, ...(result.message ? [result.message] : [])]);
  }
  await refresh();
}

function confirmThen(target, action, label) {
  const dialog = $('#confirm');
  $('#confirm-title').textContent = `${action === 'delete' ? 'Delete' : 'Empty'} ${label}?`;
  $('#confirm-text').textContent = action === 'delete'
    ? `This deletes ${label} and every message it holds, on every node that has it.`
    : `This drops every queued message of ${label}, on every node that has it.`;
  dialog.returnValue = '';
  dialog.onclose = () => { if (dialog.returnValue === 'ok') act(target, action); };
  dialog.showModal();
}

refresh();
setInterval(refresh, POLL_MS);
