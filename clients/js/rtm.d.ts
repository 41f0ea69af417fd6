// Types of rtm.js, the JavaScript client of rtmd (clients/js/README.md).

export const VERSION: string;
/** The WebSocket subprotocol the client offers: "rtm.v1". */
export const SUBPROTOCOL: 'rtm.v1';
/** Used when the login reply names no heartbeat timeout and the options give none: 30000. */
export const DEFAULT_HEARTBEAT_TIMEOUT_MS: number;

export type Listener = (...args: any[]) => void;

export class Emitter {
  /** Calls fn on each emit(event); returns a function that removes it. */
  on(event: string, fn: Listener): () => void;
  once(event: string, fn: Listener): () => void;
  off(event: string, fn: Listener): void;
  /** True when a listener was called. */
  emit(event: string, ...args: any[]): boolean;
}

export interface BackoffOptions {
  /** First delay (500). */
  initialMs?: number;
  /** Largest delay (30000). */
  maxMs?: number;
  /** Growth per attempt (2). */
  factor?: number;
  /** Share of each delay taken off at random, 0-1 (0.5: a delay d is between d/2 and d). */
  jitter?: number;
  /** A source of numbers in [0, 1) (Math.random). */
  random?: () => number;
}

export class Backoff {
  constructor(options?: BackoffOptions);
  readonly initialMs: number;
  readonly maxMs: number;
  readonly factor: number;
  readonly jitter: number;
  /** Delays handed out since the last reset(). */
  attempts: number;
  /** The delay before the next attempt, ms. */
  next(): number;
  reset(): void;
}

export type RtmErrorCode =
  // rtmd's
  | 'bad_request' | 'unknown_op' | 'not_logged_in' | 'already_logged_in' | 'invalid_appid'
  | 'invalid_uid' | 'invalid_token' | 'token_expired' | 'invalid_channel' | 'already_joined'
  | 'not_joined' | 'too_many_channels' | 'invalid_payload' | 'unavailable' | 'store_error'
  | 'superseded' | 'closing'
  // the client's
  | 'timeout' | 'disconnected' | 'closed' | 'kicked' | 'no_websocket' | 'bad_url' | 'bad_frame'
  | 'login_failed' | 'rejoin_failed'
  | string;

export class RtmError extends Error {
  readonly code: RtmErrorCode;
  /** The server's error reply, when there was one. */
  readonly reply?: Record<string, unknown>;
}

export interface TokenRequest {
  appId: string;
  uid: string;
  /** False for the first login, true for the logins after a reconnect. */
  reconnect: boolean;
}

/** The WebSocket constructor the client uses: the browser's, Node 22's, or the ws package's. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => any;

export interface RtmClientOptions {
  /** ws:// or wss:// URL of /v1/rtm; by default, /v1/rtm next to the /v1/rtm.js this module came from. */
  url?: string;
  /** The App ID (32 characters). */
  appId: string;
  uid: string;
  /** A 006 or 007 token (none for an app without certificate). */
  token?: string;
  /** Called before each login (the first and each after a reconnect); its token is used. */
  getToken?: (req: TokenRequest) => string | Promise<string>;
  /** Where there is no global WebSocket (Node 18, 20): e.g. `(await import('ws')).WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /** The heartbeat timeout in ms when the login reply names none (30000); the reply's wins. */
  heartbeatTimeoutMs?: number;
  /** How often to ping (a third of the heartbeat timeout). */
  pingIntervalMs?: number;
  /** How long to wait for a reply, and for the WebSocket handshake (10000). */
  requestTimeoutMs?: number;
  /** Reconnect after a lost connection (true). */
  reconnect?: boolean;
  /** Reconnect delays: options, or a Backoff of your own. */
  backoff?: BackoffOptions | Backoff;
  /** Acknowledge each peer message as it is emitted (true); false: call msg.ack(). */
  autoAck?: boolean;
  /** Gets debug lines (console). */
  logger?: { debug?: (...args: any[]) => void };
}

export type RtmState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface MembersPage {
  /** All the channel's members now. */
  count?: number;
  /** This page, in uid order. */
  members?: string[];
  /** Present when more members follow: pass it to members(). */
  cursor?: string;
}

export interface LoginReply {
  op: 'reply';
  id: number;
  ok: true;
  heartbeat_timeout_s?: number;
  [field: string]: unknown;
}

export interface PeerMessage {
  op: 'peer_message';
  mid: number;
  from: string;
  payload: string;
  ms: number;
  /** Acknowledges it (with autoAck: false). */
  ack(): Promise<void>;
}

export interface ChannelMessage {
  op: 'channel_message';
  channel: string;
  from: string;
  payload: string;
  ms: number;
}

export interface MemberEvent {
  op: 'member_joined' | 'member_left';
  channel: string;
  uid: string;
}

export interface Kicked {
  op: 'kicked';
  reason: 'remote_login' | 'app_removed' | string;
}

export interface RtmEvents {
  peer_message: (m: PeerMessage) => void;
  channel_message: (m: ChannelMessage) => void;
  member_joined: (m: MemberEvent) => void;
  member_left: (m: MemberEvent) => void;
  kicked: (m: Kicked) => void;
  state: (state: RtmState, info?: { delayMs?: number; error?: RtmError }) => void;
  connected: (info: { reconnected: boolean; reply: LoginReply }) => void;
  disconnected: (info: { code: number; reason: string; kicked?: string }) => void;
  reconnecting: (info: { attempt: number; delayMs: number; code: number }) => void;
  /** A channel re-joined after a reconnect, with its members now. */
  joined: (channel: string, members: MembersPage) => void;
  error: (err: RtmError | Error) => void;
}

export class RtmClient extends Emitter {
  constructor(options: RtmClientOptions);
  readonly url: string;
  readonly appId: string;
  readonly uid: string;
  readonly state: RtmState;
  /** The heartbeat timeout in use (from the login reply, the options or the default). */
  readonly heartbeatTimeoutMs: number;
  /** The channels joined (re-joined after each reconnect). */
  readonly channels: string[];
  readonly backoff: Backoff;

  on<E extends keyof RtmEvents>(event: E, fn: RtmEvents[E]): () => void;
  on(event: string, fn: Listener): () => void;
  once<E extends keyof RtmEvents>(event: E, fn: RtmEvents[E]): () => void;
  once(event: string, fn: Listener): () => void;

  connect(): Promise<LoginReply>;
  close(options?: { logout?: boolean }): Promise<void>;
  join(channel: string): Promise<MembersPage>;
  leave(channel: string): Promise<void>;
  members(channel: string, options?: { cursor?: string; limit?: number }): Promise<MembersPage>;
  allMembers(channel: string): Promise<string[]>;
  status(uids: string[]): Promise<Record<string, 'online' | 'offline'>>;
  publish(channel: string, payload: string, options?: { history?: boolean }): Promise<void>;
  sendPeer(to: string, payload: string, options?: { offline?: boolean; history?: boolean }): Promise<'delivered' | 'offline'>;
  ack(mid: number): Promise<void>;
  /** The server's clock, ms. */
  ping(): Promise<number>;
  request(op: string, fields?: Record<string, unknown>): Promise<Record<string, any>>;
}
