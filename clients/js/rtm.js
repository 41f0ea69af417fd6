// rtm.js — the JavaScript client of rtmd's WebSocket protocol (subprotocol rtm.v1).
// An ES module without dependencies, for browsers and Node (18 and later).
// rtmd serves this file at /v1/rtm.js; its documentation is clients/js/README.md.

export const VERSION = '1.0.0';
export const SUBPROTOCOL = 'rtm.v1';
/** rtmd's default heartbeat_timeout_s, in ms: used when the login reply does not name one. */
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 30000;

/** A small event emitter: on/once/off/emit. A listener that throws does not stop the others. */
export class Emitter {
  constructor() {
    this._listeners = new Map();
  }

  /** Calls fn(...args) on each emit(event); returns a function that removes it. */
  on(event, fn) {
    if (typeof fn !== 'function') throw new TypeError('listener must be a function');
    let set = this._listeners.get(event);
    if (!set) this._listeners.set(event, (set = new Set()));
    set.add(fn);
    return () => this.off(event, fn);
  }

  /** Like on(), for the next emit only. */
  once(event, fn) {
    const off = this.on(event, (...args) => {
      off();
      fn(...args);
    });
    return off;
  }

  off(event, fn) {
    const set = this._listeners.get(event);
    if (set) {
      set.delete(fn);
      if (set.size === 0) this._listeners.delete(event);
    }
  }

  /** Calls the listeners of event; true when there was one. */
  emit(event, ...args) {
    const set = this._listeners.get(event);
    if (!set) return false;
    for (const fn of [...set]) {
      try {
        fn(...args);
      } catch (e) {
        if (event !== 'error' && this._listeners.has('error')) this.emit('error', e);
        else setTimeout(() => { throw e; }, 0); // reported, never swallowed
      }
    }
    return true;
  }
}

/**
 * Exponential backoff with jitter: next() gives initialMs, then factor times more each call,
 * up to maxMs, each scaled by a random factor in [1 - jitter, 1] so that clients cut off
 * together do not come back together. reset() after a success.
 */
export class Backoff {
  constructor({ initialMs = 500, maxMs = 30000, factor = 2, jitter = 0.5, random = Math.random } = {}) {
    if (!(initialMs > 0) || !(maxMs >= initialMs) || !(factor >= 1) || !(jitter >= 0 && jitter <= 1)) {
      throw new RangeError('Backoff: need 0 < initialMs <= maxMs, factor >= 1, 0 <= jitter <= 1');
    }
    Object.assign(this, { initialMs, maxMs, factor, jitter, random });
    this.attempts = 0;
  }

  /** The delay before the next attempt, in ms. */
  next() {
    const base = Math.min(this.maxMs, this.initialMs * Math.pow(this.factor, this.attempts));
    this.attempts++;
    return Math.round(base * (1 - this.jitter * this.random()));
  }

  reset() {
    this.attempts = 0;
  }
}

/** A failed op: code is rtmd's error code ("not_joined", ...) or one of the client's own
 * ("timeout", "disconnected", "closed", "no_websocket"). */
export class RtmError extends Error {
  constructor(code, message, reply) {
    super(message || code);
    this.name = 'RtmError';
    this.code = code;
    if (reply !== undefined) this.reply = reply;
  }
}

// Login errors that another attempt with the same credentials cannot fix.
// superseded: another login of this uid took over while this one was recorded.
const FATAL_LOGIN = new Set(['invalid_appid', 'invalid_uid', 'bad_request', 'superseded']);
// Token errors: fatal unless getToken can give a new token.
const TOKEN_LOGIN = new Set(['invalid_token', 'token_expired']);

function defaultUrl() {
  try {
    // Loaded from rtmd's /v1/rtm.js: the protocol is at /v1/rtm on the same server.
    // (A copy served from elsewhere has no such default: it does not know the server.)
    const u = new URL('rtm', import.meta.url);
    if ((u.protocol === 'http:' || u.protocol === 'https:') && new URL(import.meta.url).pathname.endsWith('/v1/rtm.js')) {
      u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
      u.search = '';
      u.hash = '';
      return u.href;
    }
  } catch (e) {
    // no import.meta.url with an http(s) URL: the caller must give url
  }
  return undefined;
}

/**
 * A client of one user: one WebSocket session, logged in again and re-joined to its channels
 * after every reconnect. Pushes are events: peer_message, channel_message, member_joined,
 * member_left, kicked; and the client's own: state, connected, disconnected, reconnecting,
 * joined, error.
 */
export class RtmClient extends Emitter {
  constructor(options = {}) {
    super();
    const o = options;
    if (!o.appId || !o.uid) throw new TypeError('RtmClient: appId and uid are required');
    this.url = o.url || defaultUrl();
    if (!this.url) throw new TypeError('RtmClient: url is required (wss://host:8443/v1/rtm)');
    this.appId = o.appId;
    this.uid = o.uid;
    this._token = o.token;
    this._getToken = o.getToken;
    this._WebSocket = o.WebSocket || globalThis.WebSocket;
    this._heartbeatOption = o.heartbeatTimeoutMs;
    this.heartbeatTimeoutMs = o.heartbeatTimeoutMs || DEFAULT_HEARTBEAT_TIMEOUT_MS;
    this._pingOption = o.pingIntervalMs;
    this.requestTimeoutMs = o.requestTimeoutMs || 10000;
    this.reconnect = o.reconnect !== false;
    this.autoAck = o.autoAck !== false;
    this.backoff = o.backoff instanceof Backoff ? o.backoff : new Backoff(o.backoff || {});
    this._log = o.logger || null;

    this.state = 'idle'; // idle, connecting, open, reconnecting, closed
    this._ws = null;
    this._nextId = 1;
    this._pending = new Map(); // id -> {resolve, reject, timer}
    this._channels = new Set(); // joined, re-joined after a reconnect
    this._pingTimer = null;
    this._retryTimer = null;
    this._waiters = []; // ops waiting for the session: {resolve, reject}
    this._loginReply = null;
    this._endError = null; // why the client closed
    this._generation = 0; // one per socket: late events of an old socket are ignored
  }

  /** The channels this client is in (and re-joins after a reconnect). */
  get channels() {
    return [...this._channels];
  }

  /**
   * Connects and logs in. Resolves with the login reply once logged in; a network failure is
   * retried with backoff (unless reconnect is false), a refused login rejects.
   */
  connect() {
    if (this.state === 'open') return Promise.resolve(this._loginReply);
    return this._whenOpen().then(() => this._loginReply);
  }

  /** Ends the session: logout (records the Logout at once) and close; no reconnect after. */
  async close({ logout = true } = {}) {
    if (this.state === 'closed') return;
    const ws = this._ws;
    const wasOpen = this.state === 'open';
    const closed = new RtmError('closed', 'the client was closed');
    this._endError = closed;
    this._setState('closed');
    clearTimeout(this._retryTimer);
    this._stopPing();
    this._failWaiters(closed);
    if (ws && wasOpen && logout) {
      try {
        await this._send('logout', {}, Math.min(this.requestTimeoutMs, 5000));
      } catch (e) {
        // closing anyway
      }
    }
    this._generation++; // the socket's late events are not the client's any more
    this._ws = null;
    this._drop(closed);
    if (ws) {
      await new Promise((resolve) => {
        if (ws.readyState === 3) return resolve();
        const t = setTimeout(resolve, 2000); // a peer that does not answer the close
        ws.addEventListener('close', () => { clearTimeout(t); resolve(); });
        try { ws.close(1000, 'bye'); } catch (e) { resolve(); }
      });
    }
  }

  // ---- ops ----------------------------------------------------------------------------

  /** Joins a channel: {count, members, cursor?} (the members, up to 512, the joiner included). */
  async join(channel) {
    const reply = await this.request('join', { channel });
    this._channels.add(channel);
    return membersOf(reply);
  }

  /** Leaves a channel (it is not re-joined after a reconnect any more). */
  async leave(channel) {
    this._channels.delete(channel);
    await this.request('leave', { channel });
  }

  /** One page of a channel's members: {count, members, cursor?}; pass cursor for the next. */
  async members(channel, { cursor, limit } = {}) {
    const f = { channel };
    if (cursor !== undefined) f.cursor = cursor;
    if (limit !== undefined) f.limit = limit;
    return membersOf(await this.request('members', f));
  }

  /** Every member of a channel, through all the pages. */
  async allMembers(channel) {
    const all = [];
    let cursor;
    do {
      const page = await this.members(channel, cursor === undefined ? {} : { cursor });
      all.push(...page.members);
      cursor = page.cursor;
    } while (cursor !== undefined);
    return all;
  }

  /** Who is online: {uid: "online"|"offline"} for 1-256 uids. */
  async status(uids) {
    return (await this.request('status', { uids })).statuses;
  }

  /** Sends a message to the members of a channel the client is in. */
  async publish(channel, payload, { history } = {}) {
    const f = { channel, payload };
    if (history !== undefined) f.history = history;
    await this.request('publish', f);
  }

  /** Sends a message to one user: resolves "delivered" or "offline". */
  async sendPeer(to, payload, { offline, history } = {}) {
    const f = { to, payload };
    if (offline !== undefined) f.offline = offline;
    if (history !== undefined) f.history = history;
    return (await this.request('peer', f)).state;
  }

  /** Acknowledges a peer message (completes a REST send with wait_for_ack). */
  async ack(mid) {
    await this.request('ack', { mid });
  }

  /** A round trip: the server's clock (ms). The client pings by itself; this is for callers. */
  async ping() {
    return (await this.request('ping', {})).ms;
  }

  /**
   * Any op: waits for the session (connecting or reconnecting), sends it and resolves with
   * the reply (rejects with an RtmError).
   */
  async request(op, fields = {}) {
    while (this.state !== 'open') await this._whenOpen();
    return this._send(op, fields, this.requestTimeoutMs);
  }

  // ---- the session ----------------------------------------------------------------------

  _setState(state, info) {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', state, info);
  }

  _debug(...args) {
    if (this._log && this._log.debug) this._log.debug('[rtm]', ...args);
  }

  // Resolves once logged in (connecting first when idle); rejects when the client closes.
  _whenOpen() {
    if (this.state === 'closed') return Promise.reject(this._ended());
    if (this.state === 'open') return Promise.resolve();
    const p = new Promise((resolve, reject) => this._waiters.push({ resolve, reject }));
    if (this.state === 'idle') this._open(false);
    return p;
  }

  _failWaiters(err) {
    const w = this._waiters;
    this._waiters = [];
    for (const x of w) x.reject(err);
  }

  // Sends one op on the current socket (callers made sure of the session: request() waits
  // for it; login, the re-joins and logout are the client's own).
  _send(op, fields, timeoutMs) {
    const ws = this._ws;
    if (!ws || ws.readyState !== 1) {
      return Promise.reject(new RtmError('disconnected', 'not connected'));
    }
    const id = this._nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new RtmError('timeout', op + ': no reply within ' + timeoutMs + ' ms'));
      }, timeoutMs);
      this._pending.set(id, { resolve, reject, timer, op });
      ws.send(JSON.stringify({ op, id, ...fields }));
    });
  }

  async _tokenFor(reconnect) {
    if (this._getToken) this._token = await this._getToken({ appId: this.appId, uid: this.uid, reconnect });
    return this._token;
  }

  _open(reconnect) {
    const WS = this._WebSocket;
    if (!WS) {
      this._fatal(new RtmError('no_websocket', 'no WebSocket here: pass options.WebSocket (Node: the ws package)'));
      return;
    }
    this._setState(reconnect ? 'reconnecting' : 'connecting');
    const gen = ++this._generation;
    let ws;
    try {
      ws = new WS(this.url, [SUBPROTOCOL]);
    } catch (e) {
      this._fatal(new RtmError('bad_url', String(e && e.message ? e.message : e)));
      return;
    }
    this._ws = ws;
    // A server that accepts the connection but never answers the handshake (stopped, or a
    // proxy that lost it): give up on this socket after requestTimeoutMs and try again.
    const openTimer = setTimeout(() => {
      if (gen === this._generation && ws.readyState !== 1) {
        this._debug('no handshake answer within', this.requestTimeoutMs, 'ms');
        this._abandonSocket();
      }
    }, this.requestTimeoutMs);
    ws.onopen = () => {
      clearTimeout(openTimer);
      if (gen === this._generation) this._login(gen, reconnect);
    };
    ws.onmessage = (ev) => {
      if (gen === this._generation) this._onMessage(ev.data);
    };
    ws.onerror = () => {}; // a close event follows
    ws.onclose = (ev) => {
      clearTimeout(openTimer);
      if (gen === this._generation) this._onClose(ev.code, ev.reason);
    };
  }

  async _login(gen, reconnect) {
    let reply;
    try {
      const token = await this._tokenFor(reconnect);
      if (gen !== this._generation) return;
      const f = { appid: this.appId, uid: this.uid };
      if (token) f.token = token;
      reply = await this._send('login', f, this.requestTimeoutMs);
    } catch (e) {
      if (gen !== this._generation || this.state === 'closed') return;
      const code = e && e.code;
      if (FATAL_LOGIN.has(code) || (TOKEN_LOGIN.has(code) && !this._getToken) || !this.reconnect) {
        this._fatal(e instanceof RtmError ? e : new RtmError('login_failed', String(e)));
      } else {
        this.emit('error', e instanceof RtmError ? e : new RtmError('login_failed', String(e)));
        this._abandonSocket();
      }
      return;
    }
    if (gen !== this._generation) return;
    // The server's word wins over the option: it is the one that cuts.
    this.heartbeatTimeoutMs = reply.heartbeat_timeout_s > 0
      ? reply.heartbeat_timeout_s * 1000
      : this._heartbeatOption || DEFAULT_HEARTBEAT_TIMEOUT_MS;
    // Re-join before anything else is sent: ops wait for 'open'.
    for (const channel of [...this._channels]) {
      try {
        const r = await this._send('join', { channel }, this.requestTimeoutMs);
        if (gen !== this._generation) return;
        this.emit('joined', channel, membersOf(r));
      } catch (e) {
        if (gen !== this._generation) return;
        if (e && e.code === 'disconnected') return; // the close handler takes over
        this._channels.delete(channel);
        this.emit('error', new RtmError(e.code || 'rejoin_failed', 'could not re-join ' + channel + ': ' + e.message));
      }
    }
    this._loginReply = reply;
    this.backoff.reset();
    this._setState('open');
    this._startPing(gen);
    this.emit('connected', { reconnected: reconnect, reply });
    const w = this._waiters;
    this._waiters = [];
    for (const x of w) x.resolve();
  }

  // A ping well inside the heartbeat timeout: a third of it (10 s for rtmd's 30 s). Each ping is
  // scheduled when the previous one's reply arrives, so its timer is set by a network event and
  // not by another timer: browsers wake chains of timers of a hidden page once a minute at most
  // (Chrome's intensive wake-up throttling), which would let the heartbeat timeout pass.
  _startPing(gen) {
    this._stopPing();
    const every = this._pingOption || Math.max(200, Math.floor(this.heartbeatTimeoutMs / 3));
    const schedule = () => {
      this._pingTimer = setTimeout(tick, every);
      if (this._pingTimer.unref) this._pingTimer.unref(); // Node: an idle client does not hold the process
    };
    const tick = () => {
      this._pingTimer = null;
      if (gen !== this._generation || this.state !== 'open') return;
      this._send('ping', {}, this.heartbeatTimeoutMs).then(() => {
        if (gen === this._generation && this.state === 'open' && !this._pingTimer) schedule();
      }, (e) => {
        if (gen === this._generation && e.code === 'timeout') {
          this._debug('ping timed out: reconnecting');
          this._abandonSocket();
        }
      });
    };
    schedule();
  }

  _stopPing() {
    clearTimeout(this._pingTimer);
    this._pingTimer = null;
  }

  _onMessage(data) {
    let m;
    try {
      m = JSON.parse(typeof data === 'string' ? data : String(data));
    } catch (e) {
      this.emit('error', new RtmError('bad_frame', 'a frame that is not JSON'));
      return;
    }
    if (m.op === 'reply') {
      const p = this._pending.get(m.id);
      if (!p) return;
      this._pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.ok) p.resolve(m);
      else p.reject(new RtmError(m.error, m.message, m));
      return;
    }
    if (m.op === 'peer_message') {
      const mid = m.mid;
      m.ack = () => this.ack(mid);
      if (this.autoAck) this.ack(mid).catch(() => {});
    } else if (m.op === 'kicked') {
      this._kicked = m.reason;
    }
    this.emit(m.op, m);
  }

  // Stops using the current socket (a close event may never come from a dead peer) and
  // schedules a reconnect.
  _abandonSocket() {
    const ws = this._ws;
    this._generation++;
    if (ws) {
      try { ws.close(); } catch (e) { /* already closed */ }
    }
    this._onClose(1006, 'abandoned');
  }

  _onClose(code, reason) {
    this._generation++;
    this._ws = null;
    this._stopPing();
    this._drop(new RtmError('disconnected', 'the connection closed (' + code + ')'));
    if (this.state === 'closed') return;
    const kicked = this._kicked;
    this._kicked = undefined;
    this.emit('disconnected', { code, reason, kicked });
    // After a takeover by another login of this uid, or a logout, reconnecting would fight.
    if (kicked || code === 1000 || !this.reconnect) {
      this._fatal(new RtmError(kicked ? 'kicked' : 'disconnected', 'the session ended' + (kicked ? ': ' + kicked : ' (' + code + ')')));
      return;
    }
    const delay = this.backoff.next();
    this._setState('reconnecting', { delayMs: delay });
    this.emit('reconnecting', { attempt: this.backoff.attempts, delayMs: delay, code });
    this._debug('reconnecting in', delay, 'ms');
    clearTimeout(this._retryTimer);
    this._retryTimer = setTimeout(() => {
      if (this.state !== 'closed') this._open(true);
    }, delay);
  }

  _drop(err) {
    const p = this._pending;
    this._pending = new Map();
    for (const x of p.values()) {
      clearTimeout(x.timer);
      x.reject(err);
    }
  }

  // Why the client is closed: the error that ended it, or close().
  _ended() {
    return this._endError || new RtmError('closed', 'the client was closed');
  }

  _fatal(err) {
    this._endError = err;
    const ws = this._ws;
    this._generation++;
    this._ws = null;
    if (ws) {
      try { ws.close(); } catch (e) { /* already closed */ }
    }
    this._stopPing();
    clearTimeout(this._retryTimer);
    this._drop(err);
    this._setState('closed', { error: err });
    // The error goes to the ops (and connect() calls) that wait; with none, to 'error'.
    if (this._waiters.length) this._failWaiters(err);
    else this.emit('error', err);
  }
}

function membersOf(reply) {
  const r = {};
  if (reply.count !== undefined) r.count = reply.count;
  if (reply.members !== undefined) r.members = reply.members;
  if (reply.cursor !== undefined) r.cursor = reply.cursor;
  return r;
}
