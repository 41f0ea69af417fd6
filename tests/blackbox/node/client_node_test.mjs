// clients/js/rtm.js under Node against the real rtmd, with the ws package as its WebSocket
// (Node 18 has no global one). Run by tests/blackbox/test_js_client.py, which gives the
// environment (RTM_TEST_ENV) and restarts rtmd when asked.
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { Backoff, Emitter, RtmClient, RtmError, SUBPROTOCOL } from '../../../clients/js/rtm.js';
import { ask, env, next, rest, restartRtmd, run, waitFor } from './harness.mjs';

const clients = [];
const tokenCalls = {};

function client(uid, opts = {}) {
  tokenCalls[uid] = 0;
  const c = new RtmClient({
    url: env.ws,
    appId: env.app,
    uid,
    WebSocket,
    getToken: ({ uid: u, appId }) => {
      assert.equal(appId, env.app);
      tokenCalls[u]++;
      return env.tokens[u];
    },
    backoff: { initialMs: 100, maxMs: 1000 },
    requestTimeoutMs: 5000,
    ...opts,
  });
  clients.push(c);
  return c;
}

function pushes(c, event) {
  const got = [];
  c.on(event, (m) => got.push(m));
  return got;
}

async function rejects(promise, code) {
  await assert.rejects(promise, (e) => {
    assert.ok(e instanceof RtmError, String(e));
    assert.equal(e.code, code, e.message);
    return true;
  });
}

let alice, bob;
let aliceChannel, bobChannel, alicePeer, aliceJoined;

await run([
  ['Backoff grows by factor up to maxMs, jittered down by up to jitter, reset', () => {
    const lo = new Backoff({ initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.5, random: () => 0 });
    assert.deepEqual([1, 2, 3, 4, 5, 6].map(() => lo.next()), [100, 200, 400, 800, 1000, 1000]);
    assert.equal(lo.attempts, 6);
    lo.reset();
    assert.equal(lo.next(), 100);
    const hi = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0.5, random: () => 0.999999 });
    assert.deepEqual([1, 2, 3].map(() => hi.next()), [50, 100, 200]);
    const d = new Backoff();
    for (let i = 0; i < 50; i++) {
      const v = d.next();
      assert.ok(v >= 250 && v <= 30000, String(v));
    }
    assert.throws(() => new Backoff({ initialMs: 0 }), RangeError);
    assert.throws(() => new Backoff({ jitter: 2 }), RangeError);
  }],

  ['Emitter: on, once, off; a listener that throws does not stop the others', () => {
    const e = new Emitter();
    const got = [];
    const off = e.on('x', (v) => got.push('a' + v));
    e.once('x', (v) => got.push('once' + v));
    e.on('error', (err) => got.push('error:' + err.message));
    e.on('x', () => { throw new Error('boom'); });
    e.on('x', (v) => got.push('b' + v));
    assert.equal(e.emit('x', 1), true);
    off();
    e.emit('x', 2);
    assert.deepEqual(got, ['a1', 'once1', 'error:boom', 'b1', 'error:boom', 'b2']);
    assert.equal(e.emit('nobody'), false);
  }],

  ['RtmClient needs appId, uid and a url outside a page; no WebSocket is an error', async () => {
    assert.throws(() => new RtmClient({ uid: 'a', url: env.ws }), TypeError);
    assert.throws(() => new RtmClient({ appId: env.app, uid: 'a' }), TypeError);
    if (!globalThis.WebSocket) {
      const c = new RtmClient({ url: env.ws, appId: env.app, uid: 'a' });
      await rejects(c.connect(), 'no_websocket');
      assert.equal(c.state, 'closed');
    }
  }],

  ['connect logs in over rtm.v1, getToken gives the token, join lists the members', async () => {
    alice = client('alice');
    const states = pushes(alice, 'state');
    const reply = await alice.connect();
    assert.equal(reply.ok, true);
    // the server's heartbeat timeout, which the client pings within
    assert.equal(reply.heartbeat_timeout_s * 1000, env.heartbeatMs);
    assert.equal(alice.heartbeatTimeoutMs, env.heartbeatMs);
    assert.equal(alice.state, 'open');
    assert.deepEqual(states, ['connecting', 'open']);
    assert.equal(tokenCalls.alice, 1);
    assert.equal(alice._ws.protocol, SUBPROTOCOL);
    assert.deepEqual(await alice.join('room'), { count: 1, members: ['alice'] });
    assert.deepEqual(alice.channels, ['room']);
    bob = client('bob');
    const joined = next(alice, 'member_joined');
    // an op before connect() connects first
    assert.deepEqual(await bob.join('room'), { count: 2, members: ['alice', 'bob'] });
    assert.deepEqual(await joined, { op: 'member_joined', channel: 'room', uid: 'bob' });
  }],

  ['members pages with a cursor, allMembers follows them, status says who is online', async () => {
    const p1 = await alice.members('room', { limit: 1 });
    assert.equal(p1.count, 2);
    assert.deepEqual(p1.members, ['alice']);
    assert.ok(p1.cursor);
    assert.deepEqual(await alice.members('room', { cursor: p1.cursor }), { count: 2, members: ['bob'] });
    assert.deepEqual(await bob.allMembers('room'), ['alice', 'bob']);
    assert.deepEqual(await alice.status(['bob', 'zoe']), { bob: 'online', zoe: 'offline' });
    assert.equal(typeof (await alice.ping()), 'number');
  }],

  ['error replies reject with the server code; the connection stays usable', async () => {
    await rejects(alice.join('room'), 'already_joined');
    await rejects(alice.publish('elsewhere', 'x'), 'not_joined');
    await rejects(alice.members('elsewhere'), 'not_joined');
    await rejects(alice.request('no_such_op'), 'unknown_op');
    assert.equal(alice.state, 'open');
  }],

  ['peer and channel messages arrive as events; a peer message is acked', async () => {
    alicePeer = pushes(alice, 'peer_message');
    aliceChannel = pushes(alice, 'channel_message');
    bobChannel = pushes(bob, 'channel_message');
    assert.equal(await bob.sendPeer('alice', 'hi alice'), 'delivered');
    await waitFor(() => alicePeer.length === 1, 'the peer message');
    const m = alicePeer[0];
    assert.equal(m.from, 'bob');
    assert.equal(m.payload, 'hi alice');
    assert.equal(typeof m.mid, 'number');
    assert.equal(await bob.sendPeer('zoe', 'nobody'), 'offline');
    await alice.publish('room', 'hello room');
    await waitFor(() => bobChannel.length === 1, 'the channel message');
    assert.equal(bobChannel[0].channel, 'room');
    assert.equal(bobChannel[0].from, 'alice');
    assert.equal(bobChannel[0].payload, 'hello room');
    assert.equal(aliceChannel.length, 0); // not to its sender
    // autoAck: a REST send that waits for the ack is delivered
    const [st, body] = await rest('POST', `/dev/v2/project/${env.app}/rtm/users/carl/peer_messages?wait_for_ack=true`,
      { destination: 'alice', payload: 'ack me' });
    assert.equal(st, 200, JSON.stringify(body));
    assert.equal(body.code, 'message_delivered');
  }],

  ['autoAck: false leaves the ack to msg.ack()', async () => {
    const carol = client('carol', { autoAck: false });
    await carol.connect();
    const got = pushes(carol, 'peer_message');
    const send = rest('POST', `/dev/v2/project/${env.app}/rtm/users/carl/peer_messages?wait_for_ack=true`,
      { destination: 'carol', payload: 'ack me later' });
    await waitFor(() => got.length === 1, 'the peer message');
    let answered = false;
    send.then(() => { answered = true; });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(answered, false, 'answered before the ack');
    await got[0].ack();
    const [st, body] = await send;
    assert.equal(st, 200);
    assert.equal(body.code, 'message_delivered');
    await carol.close();
    assert.equal(carol.state, 'closed');
    await rejects(carol.ping(), 'closed');
  }],

  ['an rtmd restart: both reconnect, log in with a fresh token, re-join, and ops wait for it', async () => {
    aliceJoined = pushes(alice, 'joined');
    const aliceBack = next(alice, 'connected', 'alice reconnected', 30000);
    const bobBack = next(bob, 'connected', 'bob reconnected', 30000);
    const bobDown = next(bob, 'disconnected', 'bob disconnected', 30000);
    await restartRtmd();
    await bobDown;
    // asked while the connection is down: goes out once bob is back
    const asked = bob.status(['bob']);
    assert.equal((await aliceBack).reconnected, true);
    assert.equal((await bobBack).reconnected, true);
    assert.equal(tokenCalls.alice, 2);
    assert.equal(tokenCalls.bob, 2);
    assert.deepEqual(aliceJoined, ['room']);
    // bob may re-join after alice's joined event was made: ask now
    await waitFor(async () => (await alice.allMembers('room')).length === 2, 'both back in room');
    assert.deepEqual(await alice.allMembers('room'), ['alice', 'bob']);
    assert.deepEqual(await asked, { bob: 'online' });
    const n = alicePeer.length;
    assert.equal(await bob.sendPeer('alice', 'after the restart'), 'delivered');
    await waitFor(() => alicePeer.length === n + 1, 'the peer message after the restart');
    assert.equal(alicePeer[n].payload, 'after the restart');
    await bob.publish('room', 'still here');
    await waitFor(() => aliceChannel.some((m) => m.payload === 'still here'), 'the channel message');
  }, 60000],

  ['a server that stops answering: pings time out, the client reconnects once it answers', async () => {
    const once = client('carol', { reconnect: false });
    await once.connect();
    const aliceDown = next(alice, 'disconnected', 'alice gives up the silent connection', 15000);
    const onceClosed = waitFor(() => once.state === 'closed', 'reconnect: false closes', 15000);
    await ask('pause');
    let resumed = false;
    try {
      // nothing is answered: the ping in flight times out after the heartbeat timeout
      await aliceDown;
      await onceClosed;
      assert.equal(once._endError.code, 'disconnected');
      assert.ok(['reconnecting', 'connecting'].includes(alice.state), alice.state);
      // reconnects get no handshake answer while rtmd is stopped: still not open
      await new Promise((r) => setTimeout(r, 500));
      assert.notEqual(alice.state, 'open');
      await ask('resume');
      resumed = true;
    } finally {
      if (!resumed) await ask('resume');
    }
    const back = await next(alice, 'connected', 'alice back', 30000);
    assert.equal(back.reconnected, true);
    await waitFor(async () => (await alice.allMembers('room')).includes('alice'), 'alice re-joined');
    await rejects(once.ping(), 'disconnected');
  }, 60000],

  ['a token refused after getToken: asked again, and the login retried', async () => {
    let calls = 0;
    const errors = [];
    const dave = client('dave', { getToken: () => (++calls === 1 ? 'not a token' : env.tokens.dave) });
    dave.on('error', (e) => errors.push(e.code));
    await dave.connect();
    assert.equal(calls, 2);
    assert.deepEqual(errors, ['invalid_token']);
    assert.equal(dave.state, 'open');
  }],

  ['close while connecting: connect rejects with closed, no reconnect', async () => {
    const c = client('dave');
    const p = c.connect();
    await c.close();
    await rejects(p, 'closed');
    assert.equal(c.state, 'closed');
  }],

  ['leave: not re-joined; a takeover by another login of the uid ends the session for good', async () => {
    await bob.leave('room');
    assert.deepEqual(bob.channels, []);
    const bob2 = client('bob');
    const kicked = next(bob, 'kicked');
    await bob2.connect();
    assert.deepEqual(await kicked, { op: 'kicked', reason: 'remote_login' });
    await waitFor(() => bob.state === 'closed', 'bob closed');
    await rejects(bob.ping(), 'kicked');
    assert.equal(bob2.state, 'open');
  }],

  ['a refused token rejects connect and does not retry', async () => {
    const bad = new RtmClient({ url: env.ws, appId: env.app, uid: 'mallory', WebSocket, token: 'nope' });
    clients.push(bad);
    await rejects(bad.connect(), 'invalid_token');
    assert.equal(bad.state, 'closed');
    const unknown = new RtmClient({ url: env.ws, appId: 'ffffffffffffffffffffffffffffffff', uid: 'x', WebSocket });
    clients.push(unknown);
    await rejects(unknown.connect(), 'invalid_appid');
  }],

  ['close logs out: the user is offline at once', async () => {
    await alice.close();
    assert.equal(alice.state, 'closed');
    const [st, body] = await rest('POST', `/dev/v2/project/${env.app}/rtm/users/status`, { uids: ['alice'] });
    assert.equal(st, 200);
    assert.deepEqual(body.statuses, { alice: 'offline' });
  }],
], async () => {
  await Promise.all(clients.map((c) => c.close()));
});
