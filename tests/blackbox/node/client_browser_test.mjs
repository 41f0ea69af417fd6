// clients/js/rtm.js in headless Chromium (Debian's chromium, driven by puppeteer-core): two
// pages of an app served from another origin load the client from rtmd's /v1/rtm.js, log in,
// join, see each other in the members list, exchange peer and channel messages, survive an
// rtmd restart, and stay connected while idle past 3x the heartbeat timeout (a hidden page
// too, with its timers throttled as Chromium does to background tabs). Run by
// tests/blackbox/test_js_client.py (RTM_TEST_ENV; it restarts rtmd when asked).
import assert from 'node:assert/strict';
import http from 'node:http';
import puppeteer from 'puppeteer-core';
import { env, restartRtmd, run, waitFor } from './harness.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// Seconds a page is hidden before Chromium wakes its chains of timers once a minute at most
// (intensive wake-up throttling: 5 minutes in a user's browser, shortened for the test).
const THROTTLE_AFTER_S = 10;

// The app's page: it imports the client from rtmd (a cross-origin module: CORS) and keeps
// what the client tells it in window.t, the members of its channel included.
const PAGE = `<!doctype html><meta charset="utf-8"><title>rtm.js test</title>
<script type="module">
import * as rtm from '${env.http}/v1/rtm.js';
const t = window.t = { rtm, log: [], members: new Set(), states: [] };
t.start = async (uid, token) => {
  const c = t.client = new rtm.RtmClient({ appId: '${env.app}', uid, token,
    backoff: { initialMs: 100, maxMs: 1000 } });
  for (const ev of ['peer_message', 'channel_message', 'member_joined', 'member_left', 'kicked',
                    'connected', 'disconnected', 'reconnecting', 'joined', 'error']) {
    c.on(ev, (...a) => t.log.push([ev, JSON.parse(JSON.stringify(a.length > 1 ? a : a[0] ?? null))]));
  }
  c.on('state', (s) => t.states.push(s));
  c.on('member_joined', (m) => t.members.add(m.uid));
  c.on('member_left', (m) => t.members.delete(m.uid));
  c.on('joined', (ch, page) => { t.members = new Set(page.members); });
  await c.connect();
  return c.url;
};
t.join = async (ch) => { const r = await t.client.join(ch); t.members = new Set(r.members); return r; };
t.memberList = () => [...t.members].sort();
t.events = (ev) => t.log.filter(([e]) => e === ev).map(([, a]) => a);
window.loaded = true;
</script>`;

let browser, server;
let alice, bob;
const errors = [];
const wsFailures = []; // Chromium's console lines for WebSocket connections that failed

async function page(name) {
  const p = await browser.newPage();
  p.on('pageerror', (e) => errors.push(name + ': ' + e.message));
  // Chromium logs each refused WebSocket connection (while rtmd restarts): not the page's error.
  p.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (/^WebSocket connection to .* failed/.test(m.text())) wsFailures.push(m.text());
    else errors.push(name + ' console: ' + m.text());
  });
  await p.goto(env.page, { waitUntil: 'load', timeout: 20000 });
  await p.waitForFunction('window.loaded === true', { timeout: 10000 });
  return p;
}

const members = (p) => p.evaluate(() => window.t.memberList());
const events = (p, ev) => p.evaluate((e) => window.t.events(e), ev);
const state = (p) => p.evaluate(() => window.t.client.state);

async function messagesOf(p, ev, payload) {
  return (await events(p, ev)).filter((m) => m.payload === payload);
}

await run([
  ['Chromium starts; the app page loads the client from rtmd', async () => {
    server = http.createServer((req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      res.end(PAGE);
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    env.page = `http://127.0.0.1:${server.address().port}/`;
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      // Hidden pages throttled as in a user's browser: puppeteer turns that off by default.
      ignoreDefaultArgs: ['--disable-background-timer-throttling', '--disable-renderer-backgrounding',
        '--disable-backgrounding-occluded-windows'],
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
        `--enable-features=IntensiveWakeUpThrottling:grace_period_seconds/${THROTTLE_AFTER_S}`],
      timeout: 30000,
    });
    alice = await page('alice');
    bob = await page('bob');
    assert.equal(await alice.evaluate(() => window.t.rtm.SUBPROTOCOL), 'rtm.v1');
  }, 60000],

  ['a page offering only another subprotocol is refused with a visible 400', async () => {
    const code = await alice.evaluate((url) => new Promise((resolve) => {
      const ws = new WebSocket(url, ['chat']);
      ws.onopen = () => resolve('opened');
      ws.onclose = (ev) => resolve(ev.code);
    }), env.ws);
    assert.equal(code, 1006);
    // what the developer sees in the console: the HTTP status, not a bare failure
    await waitFor(() => wsFailures.some((t) => /Unexpected response code: 400/.test(t)), 'the 400 in the console');
    // offering rtm.v1 (among others) opens, with rtm.v1 chosen
    const proto = await alice.evaluate((url) => new Promise((resolve) => {
      const ws = new WebSocket(url, ['chat', 'rtm.v1']);
      ws.onopen = () => { resolve(ws.protocol); ws.close(); };
      ws.onclose = (ev) => resolve('closed ' + ev.code);
    }), env.ws);
    assert.equal(proto, 'rtm.v1');
  }],

  ['both log in and join; each sees the other in the members list', async () => {
    const url = await alice.evaluate((tok) => window.t.start('alice', tok), env.tokens.alice);
    assert.equal(url, env.ws); // the default: /v1/rtm of the server the client came from
    await bob.evaluate((tok) => window.t.start('bob', tok), env.tokens.bob);
    // the login reply told the pages how often to ping
    assert.equal(await alice.evaluate(() => window.t.client.heartbeatTimeoutMs), env.heartbeatMs);
    assert.deepEqual((await alice.evaluate(() => window.t.join('room'))).members, ['alice']);
    assert.deepEqual((await bob.evaluate(() => window.t.join('room'))).members, ['alice', 'bob']);
    await waitFor(async () => (await members(alice)).length === 2, 'alice sees bob');
    assert.deepEqual(await members(alice), ['alice', 'bob']);
    assert.deepEqual(await members(bob), ['alice', 'bob']);
    assert.equal(await alice.evaluate(() => window.t.client._ws.protocol), 'rtm.v1');
  }],

  ['peer and channel messages between the pages', async () => {
    assert.equal(await alice.evaluate(() => window.t.client.sendPeer('bob', 'hi bob')), 'delivered');
    await waitFor(async () => (await messagesOf(bob, 'peer_message', 'hi bob')).length === 1, 'bob gets it');
    assert.equal((await messagesOf(bob, 'peer_message', 'hi bob'))[0].from, 'alice');
    await bob.evaluate(() => window.t.client.publish('room', 'hello room'));
    await waitFor(async () => (await messagesOf(alice, 'channel_message', 'hello room')).length === 1, 'alice gets it');
    const m = (await messagesOf(alice, 'channel_message', 'hello room'))[0];
    assert.equal(m.from, 'bob');
    assert.equal(m.channel, 'room');
  }],

  ['an rtmd restart: both pages reconnect, re-join and talk again', async () => {
    await restartRtmd();
    for (const p of [alice, bob]) {
      await waitFor(async () => (await events(p, 'connected')).some((c) => c.reconnected), 'reconnected', 30000);
      await waitFor(async () => (await state(p)) === 'open', 'open again', 30000);
    }
    await waitFor(async () => (await members(alice)).length === 2 && (await members(bob)).length === 2,
      'both see both again', 15000);
    assert.deepEqual(await alice.evaluate(() => window.t.client.allMembers('room')), ['alice', 'bob']);
    assert.equal(await bob.evaluate(() => window.t.client.sendPeer('alice', 'back')), 'delivered');
    await waitFor(async () => (await messagesOf(alice, 'peer_message', 'back')).length === 1, 'alice gets it');
    await alice.evaluate(() => window.t.client.publish('room', 'back too'));
    await waitFor(async () => (await messagesOf(bob, 'channel_message', 'back too')).length === 1, 'bob gets it');
  }, 90000],

  ['an idle page stays connected past 3x the heartbeat timeout, hidden and throttled too', async () => {
    // bob's page in front: alice's is hidden (since bob's page opened), so Chromium throttles its
    // timers; a chain of timers in it shows when the intensive throttling takes hold.
    await bob.bringToFront();
    assert.equal(await alice.evaluate(() => document.visibilityState), 'hidden');
    await alice.evaluate(() => {
      const chain = window.t.chain = [Date.now()];
      const f = () => { chain.push(Date.now()); setTimeout(f, 100); };
      setTimeout(f, 100);
    });
    const before = [(await events(alice, 'disconnected')).length, (await events(bob, 'disconnected')).length];
    const idle = Math.max(3.5 * env.heartbeatMs, (THROTTLE_AFTER_S + 6) * 1000);
    const t0 = Date.now();
    // nothing sent by the test meanwhile: only the clients' own pings keep the sessions
    await new Promise((r) => setTimeout(r, idle));
    assert.ok(Date.now() - t0 >= 3 * env.heartbeatMs);
    const gap = await alice.evaluate(() => {
      const c = window.t.chain.concat([Date.now()]);
      return Math.max(...c.slice(1).map((x, i) => x - c[i]));
    });
    assert.ok(gap > 2 * env.heartbeatMs, `the hidden page's timer chain was not throttled (longest gap ${gap} ms)`);
    assert.equal((await events(alice, 'disconnected')).length, before[0], 'alice was cut while idle');
    assert.equal((await events(bob, 'disconnected')).length, before[1], 'bob was cut while idle');
    assert.equal(await state(alice), 'open');
    assert.equal(await bob.evaluate(() => window.t.client.sendPeer('alice', 'still there')), 'delivered');
    await waitFor(async () => (await messagesOf(alice, 'peer_message', 'still there')).length === 1, 'alice gets it');
  }, 90000],

  ['close logs out; the other page sees it leave', async () => {
    await bob.evaluate(() => window.t.client.close());
    await waitFor(async () => (await members(alice)).length === 1, 'bob left', 10000);
    assert.deepEqual(await members(alice), ['alice']);
    assert.deepEqual(errors, []);
  }],
], async () => {
  if (browser) await browser.close();
  if (server) server.close();
});
