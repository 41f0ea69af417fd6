// rtmd's dashboard: the page's script. It reads the JSON below /dashboard/api/ (the browser
// sends the customer's Basic credentials it asked for) and follows the live tail, a stream of
// Server-Sent Events, reconnecting with the JS client's jittered Backoff (rtmd serves the client
// at /v1/rtm.js; its Emitter carries the tail's events to the page).
import { Emitter, Backoff } from '/v1/rtm.js';

const REFRESH_MS = 2000;
const TAIL_MAX = 200; // lines kept in the tail

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

async function getJson(path) {
  const r = await fetch(path, { credentials: 'same-origin', cache: 'no-store' });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

/** The live tail of one app: emits 'presence' (event), 'message' (message), 'dropped' (count),
 * 'state' ('connecting' | 'live' | 'down'). */
export class LiveTail extends Emitter {
  constructor(appId) {
    super();
    this.appId = appId;
    this.backoff = new Backoff({ initialMs: 250, maxMs: 10000 });
    this.closed = false;
    this.abort = null;
    this._run();
  }

  close() {
    this.closed = true;
    if (this.abort) this.abort.abort();
  }

  async _run() {
    while (!this.closed) {
      this.emit('state', 'connecting');
      this.abort = new AbortController();
      try {
        const r = await fetch(`api/live?app=${encodeURIComponent(this.appId)}`, {
          credentials: 'same-origin',
          cache: 'no-store',
          signal: this.abort.signal,
        });
        if (!r.ok || !r.body) throw new Error(`live: HTTP ${r.status}`);
        this.emit('state', 'live');
        this.backoff.reset();
        await this._read(r.body.getReader());
      } catch (e) {
        if (this.closed) return;
      }
      if (this.closed) return;
      this.emit('state', 'down');
      await new Promise((ok) => setTimeout(ok, this.backoff.next()));
    }
  }

  // Server-Sent Events: blocks separated by a blank line, "event:" and "data:" fields,
  // ":" comments (keepalives).
  async _read(reader) {
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += dec.decode(value, { stream: true });
      let at;
      while ((at = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, at);
        buf = buf.slice(at + 2);
        let type = 'message';
        let data = '';
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) type = line.slice(6).trim();
          else if (line.startsWith('data:')) data += line.slice(5).trim();
        }
        if (!data) continue;
        let obj;
        try {
          obj = JSON.parse(data);
        } catch {
          continue;
        }
        if (type === 'dropped') this.emit('dropped', obj.dropped);
        else this.emit(type, obj);
      }
    }
  }
}

function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function spark(values) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('viewBox', `0 0 ${values.length - 1} 10`);
  svg.setAttribute('preserveAspectRatio', 'none');
  const max = Math.max(1, ...values);
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute('points', values.map((v, i) => `${i},${10 - (v / max) * 10}`).join(' '));
  svg.append(line);
  return svg;
}

function render(ov) {
  $('users-count').textContent = ov.users.count;
  $('users-list').replaceChildren(
    ...ov.users.listed.map((u) => el('li', { 'data-uid': u }, u)),
  );
  $('channels-count').textContent = ov.channels.count;
  fill(
    $('channels-table'),
    ov.channels.listed.map((c) =>
      el('tr', { 'data-channel': c.channel }, el('td', {}, c.channel),
        el('td', { class: 'num members' }, c.members)),
    ),
  );
  fill(
    $('rates-table'),
    Object.entries(ov.rates).map(([name, r]) =>
      el('tr', { 'data-rate': name }, el('td', {}, name),
        el('td', { class: 'num total' }, r.last_minute), el('td', {}, spark(r.per_second))),
    ),
  );
  fill(
    $('backlog-table'),
    ov.backlog.map((b) =>
      el('tr', { 'data-region': b.region }, el('td', {}, b.region),
        el('td', { class: 'num user-unread' }, b.user_events.unread),
        el('td', { class: 'num user-dropped' }, b.user_events.dropped),
        el('td', { class: 'num channel-unread' }, b.channel_events.unread),
        el('td', { class: 'num channel-dropped' }, b.channel_events.dropped)),
    ),
  );
  fill(
    $('nodes-table'),
    ov.nodes.map((n) =>
      el('tr', { 'data-node': n.node, class: n.alive ? 'alive' : 'dead' },
        el('td', {}, n.node + (n.self ? ' (this node)' : '')),
        el('td', { class: 'num connections' }, n.connections),
        el('td', { class: 'num sessions' }, n.sessions),
        el('td', {}, new Date(n.seen_ms).toLocaleTimeString())),
    ),
  );
  $('updated').textContent = `updated ${new Date(ov.ms).toLocaleTimeString()}`;
}

function tailLine(kind, text, cls) {
  const tail = $('tail');
  tail.prepend(el('li', { class: cls }, el('span', { class: 'kind' }, kind), ' ', text));
  while (tail.children.length > TAIL_MAX) tail.lastChild.remove();
}

function describePresence(e) {
  const t = new Date(e.ms).toLocaleTimeString();
  return e.channel_id
    ? `${t} ${e.type} ${e.user_id} ${e.channel_id}`
    : `${t} ${e.type} ${e.user_id}`;
}

function describeMessage(m) {
  const t = new Date(m.ms).toLocaleTimeString();
  const more = m.bytes > m.payload.length ? '…' : '';
  return `${t} ${m.type} ${m.from} → ${m.to}: ${m.payload}${more}`;
}

let tail = null;
let timer = null;

async function refresh(appId) {
  try {
    render(await getJson(`api/apps/${encodeURIComponent(appId)}`));
  } catch (e) {
    $('updated').textContent = String(e.message || e);
  }
}

function show(appId) {
  if (tail) tail.close();
  if (timer) clearInterval(timer);
  $('tail').replaceChildren();
  $('dropped').textContent = '0';
  refresh(appId);
  timer = setInterval(() => refresh(appId), REFRESH_MS);
  tail = new LiveTail(appId);
  tail.on('state', (s) => {
    const b = $('live-status');
    b.textContent = s;
    b.className = `badge ${s}`;
  });
  tail.on('presence', (e) => tailLine(e.type, describePresence(e), 'presence'));
  tail.on('message', (m) => tailLine('message', describeMessage(m), 'message'));
  tail.on('dropped', (n) => {
    $('dropped').textContent = n;
    tailLine('missed', `${n} events in all: this page fell behind`, 'dropped');
  });
}

async function main() {
  const me = await getJson('api/apps');
  $('customer').textContent = me.customer_id;
  const sel = $('app-select');
  sel.replaceChildren(...me.apps.map((a) => el('option', { value: a.app_id }, a.app_id)));
  const wanted = new URLSearchParams(location.search).get('app');
  if (wanted && me.apps.some((a) => a.app_id === wanted)) sel.value = wanted;
  sel.addEventListener('change', () => show(sel.value));
  if (sel.value) show(sel.value);
}

main();
