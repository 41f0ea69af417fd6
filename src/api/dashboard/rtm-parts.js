// Emitter and Backoff as the JS client (clients/js/rtm.js) has them, until the page loads them
// from /v1/rtm.js.
export class Emitter {
  constructor() {
    this._listeners = new Map();
  }
  on(event, fn) {
    let set = this._listeners.get(event);
    if (!set) this._listeners.set(event, (set = new Set()));
    set.add(fn);
    return () => this.off(event, fn);
  }
  off(event, fn) {
    const set = this._listeners.get(event);
    if (set) set.delete(fn);
  }
  emit(event, ...args) {
    const set = this._listeners.get(event);
    if (set) for (const fn of [...set]) fn(...args);
  }
}

export class Backoff {
  constructor({ initialMs = 500, maxMs = 30000, factor = 2, jitter = 0.5 } = {}) {
    Object.assign(this, { initialMs, maxMs, factor, jitter });
    this.attempts = 0;
  }
  next() {
    const base = Math.min(this.maxMs, this.initialMs * Math.pow(this.factor, this.attempts));
    this.attempts++;
    return Math.round(base * (1 - this.jitter * Math.random()));
  }
  reset() {
    this.attempts = 0;
  }
}
