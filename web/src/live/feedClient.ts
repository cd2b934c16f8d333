/**
 * The one live-feed client (/v1/stream): every page subscribes through one shared connection.
 *
 * - Authenticates with the access token as a subprotocol (`finone.v1, bearer.<token>`), and
 *   re-authenticates with an `auth` message whenever the session refreshes its token.
 * - Acknowledges data frames (`{"type":"ack","seq":N}`) well within the server's window.
 * - Reconnects with capped exponential backoff and jitter, resubscribes and resumes each stream
 *   from the last event id seen there (`resume_from`); events at or below that id are dropped,
 *   so a reconnect neither loses nor repeats events while the server still holds them.
 * - Hands events to listeners at most once per animation frame, batched.
 * - Says what state it is in (connecting / live / reconnecting / offline) and surfaces `gap`
 *   notices and errors.
 */
import type { Interval } from "../api/types";
import type { TokenSource } from "../auth/session";
import {
  ALERTS_STREAM,
  DAILY,
  MODEL_CHANNELS,
  BEARER_PREFIX,
  CLOSE_FORBIDDEN,
  CLOSE_REVOKED,
  CLOSE_TOO_MANY_CONNECTIONS,
  CLOSE_TOO_SLOW,
  CLOSE_UNAUTHENTICATED,
  SUBPROTOCOL,
  compareEventIds,
  splitStream,
  streamName,
  type AlertEvent,
  type Channel,
  type ControlMessage,
  type FeedEvent,
  type ServerMessage,
} from "./protocol";

export type ConnectionState = "connecting" | "live" | "reconnecting" | "offline";

/** What the client needs of a WebSocket; the browser's is one, tests pass a fake. */
export interface SocketLike {
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export type SocketFactory = (url: string, protocols: string[]) => SocketLike;

/** What to subscribe to; `intervals`: the bar intervals of the model channels' streams
 * (predictions, insights), daily when absent. */
export type FeedSpec =
  | { instruments: readonly string[]; channels: readonly Channel[]; intervals?: readonly Interval[] }
  | { watchlist: string; channels: readonly Channel[]; intervals?: readonly Interval[] };

export type FeedItem =
  | { kind: "event"; stream: string; id: string; event: FeedEvent }
  /** Events of this stream may have been missed (`local`: the client could not resume it). */
  | { kind: "gap"; stream: string; reason: string; local: boolean };

export type SubscriptionStatus =
  | { state: "pending" }
  | { state: "active"; streams: readonly string[] }
  | { state: "error"; code: string; message: string };

export interface FeedListener {
  /** Called at most once per animation frame with everything that arrived since. */
  items(items: FeedItem[]): void;
  status?(status: SubscriptionStatus): void;
}

export interface FeedSubscription {
  close(): void;
}

export type FeedNotice =
  | { kind: "gap"; stream: string; reason: string }
  | { kind: "error"; code: string; message: string }
  | { kind: "closed"; code: number; reason: string };

/** Runs `flush` once, soon: on the next animation frame (or a timer in a hidden tab). */
export type FrameScheduler = (flush: () => void) => void;

export interface NetworkWatch {
  online(): boolean;
  on(event: "online" | "offline", listener: () => void): () => void;
}

export interface FeedClientOptions {
  url: string;
  auth: TokenSource;
  createSocket?: SocketFactory;
  schedule?: FrameScheduler;
  network?: NetworkWatch | null;
  random?: () => number;
  /** Data frames the server lets a client leave unacknowledged (live_window_frames). */
  windowFrames?: number;
  /** Acknowledge at once after this many frames; else after ackDelayMs. */
  ackEvery?: number;
  ackDelayMs?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Without any message for this long the connection is taken for dead (heartbeats are 15 s). */
  silenceTimeoutMs?: number;
  /** Subscriptions are split so no message passes this (the server takes 16 KiB). */
  maxMessageBytes?: number;
  /** Control messages per second (the server allows 20; acks are not counted). */
  messagesPerSecond?: number;
}

interface Interest {
  readonly id: number;
  readonly spec: FeedSpec;
  readonly listener: FeedListener;
  streams: Set<string>;
  queue: FeedItem[];
  closed: boolean;
}

type ReplyKind = "subscribe" | "unsubscribe" | "auth" | "ping";

interface Outgoing {
  message: ControlMessage;
  interest?: Interest;
  retries?: number;
}

/** The browser's frame clock, with a timer behind it: a hidden tab gets no frames. */
export const animationFrames: FrameScheduler = (flush) => {
  let done = false;
  const run = () => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    flush();
  };
  const timer = setTimeout(run, 250);
  if (typeof requestAnimationFrame === "function") requestAnimationFrame(run);
};

function browserNetwork(): NetworkWatch | null {
  if (typeof window === "undefined" || typeof navigator === "undefined") return null;
  return {
    online: () => navigator.onLine !== false,
    on(event, listener) {
      window.addEventListener(event, listener);
      return () => window.removeEventListener(event, listener);
    },
  };
}

const REPLY_KINDS: Record<Outgoing["message"]["type"], ReplyKind> = {
  subscribe: "subscribe",
  unsubscribe: "unsubscribe",
  auth: "auth",
  ping: "ping",
};
const STABLE_AFTER_MS = 10_000;

export class FeedClient {
  private readonly url: string;
  private readonly auth: TokenSource;
  private readonly createSocket: SocketFactory;
  private readonly schedule: FrameScheduler;
  private readonly network: NetworkWatch | null;
  private readonly random: () => number;
  private readonly windowFrames: number;
  private readonly ackEvery: number;
  private readonly ackDelayMs: number;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly silenceTimeoutMs: number;
  private readonly maxMessageBytes: number;
  private readonly messagesPerSecond: number;

  private stateValue: ConnectionState = "offline";
  private running = false;
  private socket: SocketLike | null = null;
  private open = false;
  private openedAt = 0;
  private everLive = false;
  private attempt = 0;
  private authRetries = 0;
  private connecting = false;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private silenceTimer: ReturnType<typeof setTimeout> | null = null;
  private ackTimer: ReturnType<typeof setTimeout> | null = null;
  private pumpTimer: ReturnType<typeof setTimeout> | null = null;
  private lastSeq = 0;
  private lastAcked = 0;
  private allowance = 0;
  private allowanceAt = 0;
  private readonly lastSeen = new Map<string, string>();
  private readonly interests = new Map<number, Interest>();
  private readonly index = new Map<string, Set<Interest>>();
  private pending: Array<Outgoing & { kind: ReplyKind; resumed: boolean }> = [];
  private outbox: Outgoing[] = [];
  private resumedThisConnection = new Set<string>();
  private flushScheduled = false;
  private nextInterestId = 1;
  private readonly cleanups: Array<() => void> = [];
  private readonly stateListeners = new Set<() => void>();
  private readonly noticeListeners = new Set<(notice: FeedNotice) => void>();
  private readonly alertListeners = new Set<(alert: AlertEvent, id: string) => void>();

  constructor(options: FeedClientOptions) {
    this.url = options.url;
    this.auth = options.auth;
    this.createSocket =
      options.createSocket ?? ((url, protocols) => new WebSocket(url, protocols) as unknown as SocketLike);
    this.schedule = options.schedule ?? animationFrames;
    this.network = options.network === undefined ? browserNetwork() : options.network;
    this.random = options.random ?? Math.random;
    this.windowFrames = options.windowFrames ?? 64;
    this.ackEvery = Math.max(1, Math.min(options.ackEvery ?? 8, Math.floor(this.windowFrames / 2)));
    this.ackDelayMs = options.ackDelayMs ?? 100;
    this.backoffBaseMs = options.backoffBaseMs ?? 500;
    this.backoffMaxMs = options.backoffMaxMs ?? 30_000;
    this.silenceTimeoutMs = options.silenceTimeoutMs ?? 45_000;
    this.maxMessageBytes = options.maxMessageBytes ?? 12_000;
    this.messagesPerSecond = options.messagesPerSecond ?? 10;
  }

  // -- what the app uses ----------------------------------------------------------------

  get state(): ConnectionState {
    return this.stateValue;
  }

  getState = (): ConnectionState => this.stateValue;

  onState = (listener: () => void): (() => void) => {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  };

  onNotice(listener: (notice: FeedNotice) => void): () => void {
    this.noticeListeners.add(listener);
    return () => this.noticeListeners.delete(listener);
  }

  /** The user's fired alerts (stream `alerts`), delivered at once, not batched. */
  onAlert(listener: (alert: AlertEvent, id: string) => void): () => void {
    this.alertListeners.add(listener);
    return () => this.alertListeners.delete(listener);
  }

  /** The last event id seen on a stream (what a reconnect resumes from). */
  lastEventId(stream: string): string | undefined {
    return this.lastSeen.get(stream);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.attempt = 0;
    this.cleanups.push(this.auth.onToken((token) => this.reauthenticate(token)));
    if (this.network !== null) {
      this.cleanups.push(
        this.network.on("offline", () => this.wentOffline()),
        this.network.on("online", () => this.cameOnline()),
      );
    }
    void this.connect();
  }

  /** Closes the connection and forgets where each stream was (another user may sign in). */
  stop(): void {
    this.running = false;
    for (const cleanup of this.cleanups.splice(0)) cleanup();
    this.clearTimer("reconnectTimer");
    const socket = this.socket;
    this.dropConnection();
    socket?.close(1000, "signed out");
    this.lastSeen.clear();
    this.everLive = false;
    this.setState("offline");
  }

  subscribe(spec: FeedSpec, listener: FeedListener): FeedSubscription {
    const interest: Interest = {
      id: this.nextInterestId++,
      spec,
      listener,
      streams: new Set(),
      queue: [],
      closed: false,
    };
    this.interests.set(interest.id, interest);
    if ("instruments" in spec) this.setStreams(interest, crossProduct(spec.instruments, spec.channels, intervalsOf(spec)));
    listener.status?.({ state: "pending" });
    if (this.open) for (const message of this.subscribeMessages(interest, false)) this.send({ message, interest });
    return { close: () => this.release(interest) };
  }

  // -- connecting -----------------------------------------------------------------------

  private setState(next: ConnectionState): void {
    if (next === this.stateValue) return;
    this.stateValue = next;
    for (const listener of [...this.stateListeners]) listener();
  }

  private notice(notice: FeedNotice): void {
    for (const listener of [...this.noticeListeners]) listener(notice);
  }

  private async connect(): Promise<void> {
    if (!this.running || this.socket !== null || this.connecting) return;
    if (this.network !== null && !this.network.online()) {
      this.setState("offline");
      return;
    }
    this.setState(this.everLive || this.attempt > 0 ? "reconnecting" : "connecting");
    let token = this.auth.token();
    if (token === null) {
      this.connecting = true;
      try {
        token = await this.auth.refresh();
      } catch {
        this.connecting = false;
        this.scheduleReconnect();
        return;
      }
      this.connecting = false;
      if (token === null) {
        this.setState("offline");
        return;
      }
    }
    if (!this.running || this.socket !== null) return;
    let socket: SocketLike;
    try {
      socket = this.createSocket(this.url, [SUBPROTOCOL, BEARER_PREFIX + token]);
    } catch (error) {
      this.notice({ kind: "error", code: "connect_failed", message: String(error) });
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.onopen = () => this.opened(socket);
    socket.onmessage = (event) => this.received(socket, event.data);
    socket.onclose = (event) => this.closed(socket, event.code, event.reason);
    socket.onerror = () => undefined; // a close event follows with the reason
    this.watchSilence();
  }

  private opened(socket: SocketLike): void {
    if (socket !== this.socket) return;
    this.open = true;
    this.openedAt = Date.now();
    this.everLive = true;
    this.lastSeq = 0;
    this.lastAcked = 0;
    this.pending = [];
    this.outbox = [];
    this.allowance = this.messagesPerSecond;
    this.allowanceAt = Date.now();
    this.resumedThisConnection = new Set();
    this.setState("live");
    this.watchSilence();
    for (const interest of this.interests.values()) {
      for (const message of this.subscribeMessages(interest, true)) this.send({ message, interest });
    }
  }

  /** Forgets the socket and everything tied to it; returns whether it had opened. */
  private dropConnection(): boolean {
    const wasOpen = this.open;
    if (this.socket !== null) {
      this.socket.onopen = null;
      this.socket.onmessage = null;
      this.socket.onclose = null;
      this.socket.onerror = null;
    }
    this.socket = null;
    this.open = false;
    this.pending = [];
    this.outbox = [];
    this.clearTimer("silenceTimer");
    this.clearTimer("ackTimer");
    this.clearTimer("pumpTimer");
    return wasOpen;
  }

  private closed(socket: SocketLike, code: number, reason: string): void {
    if (socket !== this.socket) return;
    const wasOpen = this.dropConnection();
    if (!this.running) {
      this.setState("offline");
      return;
    }
    if (wasOpen && Date.now() - this.openedAt >= STABLE_AFTER_MS) this.attempt = 0;
    if (code === CLOSE_REVOKED) {
      // The session was revoked (a password change here gives this tab new tokens meanwhile):
      // reconnect with the current token; a refused one then says 4401, which refreshes.
      this.notice({ kind: "closed", code, reason });
      this.scheduleReconnect(0);
      return;
    }
    if (code === CLOSE_UNAUTHENTICATED) {
      // The token expired or was refused: reconnect at once with a fresh one, then back off.
      this.notice({ kind: "closed", code, reason });
      this.authRetries += 1;
      void this.reconnectWithFreshToken();
      return;
    }
    if (code === CLOSE_FORBIDDEN) {
      this.notice({ kind: "closed", code, reason: reason || "the live feed refused this connection" });
      this.running = false;
      for (const cleanup of this.cleanups.splice(0)) cleanup();
      this.setState("offline");
      return;
    }
    if (code === CLOSE_TOO_SLOW || code === CLOSE_TOO_MANY_CONNECTIONS || wasOpen) {
      this.notice({ kind: "closed", code, reason });
    }
    this.scheduleReconnect(code === CLOSE_TOO_MANY_CONNECTIONS ? 4 : 0);
  }

  private async reconnectWithFreshToken(): Promise<void> {
    this.setState("reconnecting");
    let token: string | null;
    try {
      token = await this.auth.refresh();
    } catch {
      this.scheduleReconnect();
      return;
    }
    if (!this.running) return;
    if (token === null) {
      this.setState("offline"); // the session is over; sign-in follows
      return;
    }
    if (this.authRetries <= 1) void this.connect();
    else this.scheduleReconnect();
  }

  /** Full jitter within [cap/2, cap], cap = base * 2^attempt up to the maximum. */
  backoffDelay(attempt: number): number {
    const cap = Math.min(this.backoffMaxMs, this.backoffBaseMs * 2 ** attempt);
    return cap / 2 + this.random() * (cap / 2);
  }

  private scheduleReconnect(extraSteps = 0): void {
    if (!this.running || this.reconnectTimer !== null) return;
    const delay = this.backoffDelay(this.attempt + extraSteps);
    this.attempt += 1;
    this.setState("reconnecting");
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      void this.connect();
    }, delay);
  }

  private wentOffline(): void {
    if (!this.running) return;
    this.clearTimer("reconnectTimer");
    const socket = this.socket;
    this.dropConnection();
    socket?.close(1000, "offline");
    this.setState("offline");
  }

  private cameOnline(): void {
    if (!this.running || this.socket !== null) return;
    this.clearTimer("reconnectTimer");
    this.attempt = 0;
    void this.connect();
  }

  private watchSilence(): void {
    this.clearTimer("silenceTimer");
    const socket = this.socket;
    if (socket === null) return;
    this.silenceTimer = setTimeout(() => {
      // No heartbeat: the network may be gone without a close. Give up on this socket now.
      if (socket !== this.socket) return;
      this.closed(socket, 4000, "no heartbeat from the live feed");
      socket.close(4000, "no heartbeat");
    }, this.silenceTimeoutMs);
  }

  private clearTimer(name: "reconnectTimer" | "silenceTimer" | "ackTimer" | "pumpTimer"): void {
    const timer = this[name];
    if (timer !== null) clearTimeout(timer);
    this[name] = null;
  }

  private reauthenticate(token: string): void {
    if (this.open) this.send({ message: { type: "auth", token } });
  }

  // -- receiving ------------------------------------------------------------------------

  private received(socket: SocketLike, data: unknown): void {
    if (socket !== this.socket) return;
    this.watchSilence();
    if (typeof data !== "string") return;
    let message: ServerMessage;
    try {
      message = JSON.parse(data) as ServerMessage;
    } catch {
      return;
    }
    switch (message.type) {
      case "data":
        this.receivedData(message.seq, message.events);
        break;
      case "subscribed":
        this.receivedSubscribed(message.streams);
        break;
      case "unsubscribed":
        this.takePending("unsubscribe");
        break;
      case "authenticated":
        this.authRetries = 0;
        this.takePending("auth");
        break;
      case "pong":
        this.takePending("ping");
        break;
      case "error":
        this.receivedError(message.code, message.message);
        break;
      case "gap":
        this.gap(message.stream, message.reason, false);
        break;
      case "heartbeat":
        break;
    }
  }

  private receivedData(seq: number, events: ReadonlyArray<{ stream: string; id: string; event: FeedEvent }>): void {
    this.authRetries = 0;
    for (const item of events) {
      const last = this.lastSeen.get(item.stream);
      if (last !== undefined && compareEventIds(item.id, last) <= 0) continue; // already had it
      if (item.stream === ALERTS_STREAM) {
        this.lastSeen.set(item.stream, item.id);
        for (const listener of [...this.alertListeners]) listener(item.event as AlertEvent, item.id);
        continue;
      }
      const interests = this.index.get(item.stream);
      if (interests === undefined) continue; // unsubscribed while it was on its way
      this.lastSeen.set(item.stream, item.id);
      for (const interest of interests) {
        this.enqueue(interest, { kind: "event", stream: item.stream, id: item.id, event: item.event });
      }
    }
    if (seq > this.lastSeq) this.lastSeq = seq;
    this.acknowledge();
  }

  private acknowledge(): void {
    if (this.lastSeq - this.lastAcked >= this.ackEvery) {
      this.sendAck();
    } else if (this.ackTimer === null && this.lastSeq > this.lastAcked) {
      this.ackTimer = setTimeout(() => {
        this.ackTimer = null;
        this.sendAck();
      }, this.ackDelayMs);
    }
  }

  private sendAck(): void {
    this.clearTimer("ackTimer");
    if (!this.open || this.socket === null || this.lastSeq <= this.lastAcked) return;
    this.lastAcked = this.lastSeq;
    this.socket.send(JSON.stringify({ type: "ack", seq: this.lastSeq }));
  }

  private takePending(kind: ReplyKind): (Outgoing & { kind: ReplyKind; resumed: boolean }) | undefined {
    const at = this.pending.findIndex((entry) => entry.kind === kind);
    return at < 0 ? undefined : this.pending.splice(at, 1)[0];
  }

  private receivedSubscribed(streams: string[]): void {
    const entry = this.takePending("subscribe");
    const interest = entry?.interest;
    if (interest === undefined) return;
    if (interest.closed) {
      // Let go of whatever a watchlist brought that nobody wants any more.
      this.unsubscribeStreams(streams.filter((stream) => !this.index.has(stream)));
      return;
    }
    if (entry?.message.type === "subscribe" && entry.message.watchlist !== undefined) {
      this.setStreams(interest, streams);
    }
    interest.listener.status?.({ state: "active", streams: [...interest.streams] });
  }

  private receivedError(code: string, message: string): void {
    if (code === "unavailable") {
      // Said during a subscription that still completes ("subscribed" follows); resumed
      // events may be missing.
      const entry = this.pending.find((candidate) => candidate.kind === "subscribe");
      for (const stream of Object.keys(entry?.message.type === "subscribe" ? entry.message.resume_from ?? {} : {})) {
        this.gap(stream, message, true);
      }
      this.notice({ kind: "error", code, message });
      return;
    }
    const entry = this.pending.shift();
    if (entry === undefined) {
      this.notice({ kind: "error", code, message });
      return;
    }
    if (code === "rate_limited" && (entry.retries ?? 0) < 3) {
      setTimeout(() => {
        if (this.open && !entry.interest?.closed) this.send({ ...entry, retries: (entry.retries ?? 0) + 1 });
      }, 1_000);
      return;
    }
    const interest = entry.interest;
    if (entry.message.type === "subscribe" && interest !== undefined && !interest.closed) {
      const resumeFrom = entry.message.resume_from;
      if (resumeFrom !== undefined && Object.keys(resumeFrom).length > 0) {
        // Resuming was refused: subscribe plainly, and say what may have been missed.
        const { resume_from: _dropped, ...plain } = entry.message;
        void _dropped;
        this.send({ message: plain, interest });
        for (const stream of Object.keys(resumeFrom)) this.gap(stream, `could not resume: ${message}`, true);
        return;
      }
      interest.listener.status?.({ state: "error", code, message });
      return;
    }
    this.notice({ kind: "error", code, message });
  }

  private gap(stream: string, reason: string, local: boolean): void {
    this.notice({ kind: "gap", stream, reason });
    for (const interest of this.index.get(stream) ?? []) {
      this.enqueue(interest, { kind: "gap", stream, reason, local });
    }
  }

  private enqueue(interest: Interest, item: FeedItem): void {
    interest.queue.push(item);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    this.schedule(() => this.flush());
  }

  /** Hands each listener what arrived for it since the last frame, in one call. */
  flush(): void {
    this.flushScheduled = false;
    let failure: unknown = null;
    for (const interest of [...this.interests.values()]) {
      if (interest.queue.length === 0) continue;
      const batch = interest.queue;
      interest.queue = [];
      try {
        interest.listener.items(batch);
      } catch (error) {
        failure ??= error;
      }
    }
    if (failure !== null) throw failure;
  }

  // -- subscriptions --------------------------------------------------------------------

  private setStreams(interest: Interest, streams: Iterable<string>): void {
    const next = new Set(streams);
    const dropped: string[] = [];
    for (const stream of interest.streams) {
      if (next.has(stream)) continue;
      const holders = this.index.get(stream);
      holders?.delete(interest);
      if (holders !== undefined && holders.size === 0) {
        this.index.delete(stream);
        dropped.push(stream);
      }
    }
    for (const stream of next) {
      let holders = this.index.get(stream);
      if (holders === undefined) {
        holders = new Set();
        this.index.set(stream, holders);
      }
      holders.add(interest);
    }
    interest.streams = next;
    this.unsubscribeStreams(dropped);
  }

  private release(interest: Interest): void {
    if (interest.closed) return;
    interest.closed = true;
    interest.queue = [];
    this.interests.delete(interest.id);
    this.setStreams(interest, []);
  }

  /** Unsubscribes streams nobody holds any more, grouped into as few messages as fit: one
   * interval each, so that no message names a stream another interest still holds. */
  private unsubscribeStreams(streams: string[]): void {
    if (streams.length === 0) return;
    // instrument and interval -> its channels (the feeds' channels go with the daily streams).
    const channelsOf = new Map<string, { instrument: string; interval: Interval; channels: Set<Channel> }>();
    for (const stream of streams) {
      this.lastSeen.delete(stream);
      const parts = splitStream(stream);
      if (parts === null) continue;
      const key = `${parts.interval} ${parts.instrument}`;
      const entry = channelsOf.get(key) ?? { instrument: parts.instrument, interval: parts.interval, channels: new Set<Channel>() };
      entry.channels.add(parts.channel);
      channelsOf.set(key, entry);
    }
    if (!this.open) return;
    const groups = new Map<string, { channels: Channel[]; interval: Interval; instruments: string[] }>();
    for (const { instrument, interval, channels } of channelsOf.values()) {
      const list = [...channels].sort();
      const key = `${interval} ${list.join(",")}`;
      const group = groups.get(key) ?? { channels: list, interval, instruments: [] };
      group.instruments.push(instrument);
      groups.set(key, group);
    }
    for (const group of groups.values()) {
      for (const chunk of this.chunk(group.instruments, group.channels, [group.interval], false)) {
        this.send({ message: { type: "unsubscribe", instruments: chunk, channels: group.channels, intervals: [group.interval] } });
      }
    }
  }

  /** The subscribe messages for an interest; after a reconnect (`resume`) each stream picks up
   * from the last event id seen on it. A watchlist is resumed by its known instruments first,
   * in the same message as their resume points (the server pauses live events only within one
   * subscription), then subscribed by id to pick up any instrument added meanwhile. */
  private subscribeMessages(interest: Interest, resume: boolean): ControlMessage[] {
    const spec = interest.spec;
    const channels = [...spec.channels];
    const intervals = intervalsOf(spec);
    // Said only when not the default, as before there were intervals.
    const asked = spec.intervals === undefined ? {} : { intervals: [...intervals] };
    const messages: ControlMessage[] = [];
    const instruments =
      "instruments" in spec ? [...spec.instruments] : resume ? instrumentsOf(interest.streams) : [];
    for (const chunk of this.chunk(instruments, channels, intervals, resume)) {
      const message: ControlMessage & { type: "subscribe" } = { type: "subscribe", instruments: chunk, channels, ...asked };
      if (resume) {
        const from: Record<string, string> = {};
        for (const stream of crossProduct(chunk, channels, intervals)) {
          const last = this.lastSeen.get(stream);
          if (last === undefined || this.resumedThisConnection.has(stream)) continue;
          from[stream] = last;
          this.resumedThisConnection.add(stream);
        }
        const alerts = this.lastSeen.get(ALERTS_STREAM);
        if (alerts !== undefined && !this.resumedThisConnection.has(ALERTS_STREAM)) {
          from[ALERTS_STREAM] = alerts;
          this.resumedThisConnection.add(ALERTS_STREAM);
        }
        if (Object.keys(from).length > 0) message.resume_from = from;
      }
      messages.push(message);
    }
    if ("watchlist" in spec) messages.push({ type: "subscribe", watchlist: spec.watchlist, channels, ...asked });
    return messages;
  }

  /** Instruments split so that no message (with its resume points) passes the size limit. */
  private chunk(instruments: string[], channels: readonly Channel[], intervals: readonly Interval[], resume: boolean): string[][] {
    const chunks: string[][] = [];
    let current: string[] = [];
    let size = 200;
    for (const instrument of instruments) {
      let cost = instrument.length + 3;
      if (resume) for (const stream of crossProduct([instrument], channels, intervals)) cost += stream.length + 32;
      if (current.length > 0 && size + cost > this.maxMessageBytes) {
        chunks.push(current);
        current = [];
        size = 200;
      }
      current.push(instrument);
      size += cost;
    }
    if (current.length > 0) chunks.push(current);
    return chunks;
  }

  // -- sending --------------------------------------------------------------------------

  private send(outgoing: Outgoing): void {
    this.outbox.push(outgoing);
    this.pump();
  }

  private pump(): void {
    if (this.pumpTimer !== null) return;
    while (this.outbox.length > 0 && this.open && this.socket !== null) {
      const now = Date.now();
      this.allowance = Math.min(
        this.messagesPerSecond,
        this.allowance + ((now - this.allowanceAt) / 1000) * this.messagesPerSecond,
      );
      this.allowanceAt = now;
      if (this.allowance < 1) {
        const waitMs = Math.ceil(((1 - this.allowance) / this.messagesPerSecond) * 1000);
        this.pumpTimer = setTimeout(() => {
          this.pumpTimer = null;
          this.pump();
        }, waitMs);
        return;
      }
      this.allowance -= 1;
      const outgoing = this.outbox.shift() as Outgoing;
      const resumed = outgoing.message.type === "subscribe" && outgoing.message.resume_from !== undefined;
      this.pending.push({ ...outgoing, kind: REPLY_KINDS[outgoing.message.type], resumed });
      this.socket.send(JSON.stringify(outgoing.message));
    }
  }
}

/** The streams a subscription names, in the server's order: each channel's of each instrument,
 * the model channels' once per interval. */
export function crossProduct(instruments: readonly string[], channels: readonly Channel[], intervals: readonly Interval[]): string[] {
  const streams: string[] = [];
  for (const instrument of instruments) {
    for (const channel of new Set(channels)) {
      for (const interval of MODEL_CHANNELS.includes(channel) ? new Set(intervals) : [DAILY]) {
        streams.push(streamName(channel, instrument, interval));
      }
    }
  }
  return streams;
}

function intervalsOf(spec: FeedSpec): readonly Interval[] {
  return spec.intervals ?? [DAILY];
}

function instrumentsOf(streams: Iterable<string>): string[] {
  const instruments = new Set<string>();
  for (const stream of streams) {
    const parts = splitStream(stream);
    if (parts !== null) instruments.add(parts.instrument);
  }
  return [...instruments];
}
