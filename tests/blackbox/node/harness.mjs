// What the Node and Chromium tests of clients/js share: the environment pytest gives
// (tests/blackbox/test_js_client.py), a runner of named steps with deadlines, polling,
// and requests to pytest (a line "@restart" out, "done restart" back in).
import assert from 'node:assert/strict';
import readline from 'node:readline';

export const env = JSON.parse(process.env.RTM_TEST_ENV || '{}');

let lines = null;
const waiting = [];
const buffered = [];

function stdinLines() {
  if (lines) return;
  lines = readline.createInterface({ input: process.stdin });
  lines.on('line', (l) => {
    const w = waiting.shift();
    if (w) w(l);
    else buffered.push(l);
  });
}

/** Asks pytest to do something to rtmd and waits until it says it did: "restart" (same port,
 * same data), "pause" (SIGSTOP: connections stay open, nothing is answered), "resume". */
export async function ask(what, timeoutMs = 60000) {
  stdinLines();
  process.stdout.write('@' + what + '\n');
  const line = await withDeadline(
    new Promise((resolve) => (buffered.length ? resolve(buffered.shift()) : waiting.push(resolve))),
    timeoutMs, 'pytest: ' + what);
  assert.equal(line, 'done ' + what);
}

export const restartRtmd = () => ask('restart');

export function withDeadline(promise, ms, what) {
  let t;
  const timeout = new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error('timed out after ' + ms + ' ms: ' + what)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(t));
}

/** Polls cond() (sync or async) every 20 ms until it is truthy; returns its value. */
export async function waitFor(cond, what, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Resolves with the next emit of event on emitter (its first argument). */
export function next(emitter, event, what, timeoutMs = 10000) {
  let off;
  return withDeadline(new Promise((resolve) => {
    off = emitter.once(event, (...args) => resolve(args.length > 1 ? args : args[0]));
  }), timeoutMs, what || event).finally(() => off && off());
}

/** Runs the steps in order, each within its deadline; prints "ok NAME" or the failure; exits
 * 0 when all passed. Later steps are skipped after a failure (they build on the earlier). */
export async function run(steps, cleanup) {
  let failed = false;
  for (const [name, fn, ms = 30000] of steps) {
    const t0 = Date.now();
    try {
      await withDeadline(Promise.resolve().then(fn), ms, name);
      process.stdout.write('ok ' + name + ' (' + (Date.now() - t0) + ' ms)\n');
    } catch (e) {
      process.stdout.write('FAIL ' + name + ': ' + (e && e.stack ? e.stack : e) + '\n');
      failed = true;
      break;
    }
  }
  try {
    if (cleanup) await withDeadline(Promise.resolve().then(cleanup), 15000, 'cleanup');
  } catch (e) {
    process.stdout.write('FAIL cleanup: ' + (e && e.stack ? e.stack : e) + '\n');
    failed = true;
  }
  process.exit(failed ? 1 : 0);
}

/** A REST call to rtmd with the customer's Basic auth: [status, parsed body]. */
export async function rest(method, path, body) {
  const headers = { Authorization: 'Basic ' + Buffer.from(env.customer + ':' + env.secret).toString('base64') };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(env.http + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  return [r.status, text ? JSON.parse(text) : null];
}
