import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { TokenSource } from "../auth/session";
import { FeedClient, type FeedItem, type FeedNotice, type SocketLike, type SubscriptionStatus } from "./feedClient";
import type { ClientMessage, ServerMessage, StreamEvent } from "./protocol";

/** A WebSocket stand-in: the test plays the server. */
class FakeSocket implements SocketLike {
  onopen: SocketLike["onopen"] = null;
  onmessage: SocketLike["onmessage"] = null;
  onclose: SocketLike["onclose"] = null;
  onerror: SocketLike["onerror"] = null;
  readonly sent: ClientMessage[] = [];
  closedByClient: { code?: number; reason?: string } | null = null;

  constructor(
    readonly url: string,
    readonly protocols: string[],
  ) {}

  send(data: string): void {
    this.sent.push(JSON.parse(data) as ClientMessage);
  }
  close(code?: number, reason?: string): void {
    this.closedByClient = { code, reason };
  }
  // -- the server's side --
  accept(): void {
    this.onopen?.({});
  }
  say(message: ServerMessage): void {
    this.onmessage?.({ data: JSON.stringify(message) });
  }
  drop(code = 1006, reason = ""): void {
    this.onclose?.({ code, reason });
  }
  acks(): number[] {
    return this.sent.filter((m): m is { type: "ack"; seq: number } => m.type === "ack").map((m) => m.seq);
  }
  subscribes() {
    return this.sent.filter((m): m is Extract<ClientMessage, { type: "subscribe" }> => m.type === "subscribe");
  }
}

class FakeTokens implements TokenSource {
  current: string | null = "token-1";
  refreshes = 0;
  nextToken = "token-2";
  private listeners = new Set<(token: string) => void>();
  token() {
    return this.current;
  }
  onToken(listener: (token: string) => void) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  async refresh() {
    this.refreshes += 1;
    this.issue(this.nextToken);
    return this.current;
  }
  issue(token: string) {
    this.current = token;
    for (const listener of this.listeners) listener(token);
  }
}

function trade(instrument: string, id: string, price: string): StreamEvent {
  const ts = 1_764_162_728_551_000_000;
  return {
    stream: `trades:${instrument}`,
    id,
    event: { kind: "trade", instrument, trade_id: id, price, size: "1", side: "buy", exchange_ts_ns: ts, receive_ts_ns: ts },
  };
}

const BTC = "okx:BTC-USDT";

describe("FeedClient", () => {
  let sockets: FakeSocket[];
  let tokens: FakeTokens;
  let frames: Array<() => void>;
  let client: FeedClient;

  function socket(): FakeSocket {
    const last = sockets[sockets.length - 1];
    if (last === undefined) throw new Error("no socket was opened");
    return last;
  }

  /** Runs the pending animation frame, as the browser would. */
  function nextFrame(): void {
    for (const flush of frames.splice(0)) flush();
  }

  function make(options: Partial<ConstructorParameters<typeof FeedClient>[0]> = {}) {
    client = new FeedClient({
      url: "ws://gateway/v1/stream",
      auth: tokens,
      createSocket: (url, protocols) => {
        const fake = new FakeSocket(url, protocols);
        sockets.push(fake);
        return fake;
      },
      schedule: (flush) => frames.push(flush),
      network: null,
      random: () => 1,
      ...options,
    });
    return client;
  }

  beforeEach(() => {
    vi.useFakeTimers();
    sockets = [];
    frames = [];
    tokens = new FakeTokens();
  });

  afterEach(() => {
    client?.stop();
    vi.useRealTimers();
  });

  it("authenticates with the access token as a subprotocol and says when it is live", async () => {
    make().start();
    await vi.advanceTimersByTimeAsync(0);
    expect(socket().protocols).toEqual(["finone.v1", "bearer.token-1"]);
    expect(client.state).toBe("connecting");
    socket().accept();
    expect(client.state).toBe("live");
  });

  it("subscribes by instruments and hands events to the page at most once per frame", async () => {
    make().start();
    await vi.advanceTimersByTimeAsync(0);
    socket().accept();
    const batches: FeedItem[][] = [];
    client.subscribe({ instruments: [BTC], channels: ["trades"] }, { items: (items) => batches.push(items) });
    expect(socket().subscribes()).toEqual([{ type: "subscribe", instruments: [BTC], channels: ["trades"] }]);
    socket().say({ type: "subscribed", streams: [`trades:${BTC}`] });
    socket().say({ type: "data", seq: 1, events: [trade(BTC, "1-0", "100")] });
    socket().say({ type: "data", seq: 2, events: [trade(BTC, "2-0", "101"), trade(BTC, "3-0", "102")] });
    expect(batches).toHaveLength(0); // nothing until the frame
    nextFrame();
    expect(batches).toHaveLength(1);
    expect(batches[0]?.map((item) => (item.kind === "event" ? item.id : item.kind))).toEqual(["1-0", "2-0", "3-0"]);
  });

  it("acknowledges frames before the server's window fills, and a lone frame soon after", async () => {
    make({ windowFrames: 64, ackDelayMs: 100 }).start();
    await vi.advanceTimersByTimeAsync(0);
    socket().accept();
    client.subscribe({ instruments: [BTC], channels: ["trades"] }, { items: () => undefined });
    let acked = 0;
    for (let seq = 1; seq <= 300; seq += 1) {
      socket().say({ type: "data", seq, events: [trade(BTC, `${seq}-0`, "100")] });
      acked = Math.max(acked, ...socket().acks(), 0);
      // The server stops sending at 64 unacknowledged frames: never get there.
      expect(seq - acked).toBeLessThan(64);
    }
    const before = socket().acks().length;
    socket().say({ type: "data", seq: 301, events: [trade(BTC, "301-0", "100")] });
    expect(socket().acks().length).toBe(before);
    await vi.advanceTimersByTimeAsync(100);
    expect(socket().acks().at(-1)).toBe(301);
  });

  it("resumes every stream from its last event id after a reconnect, without gaps or duplicates", async () => {
    make().start();
    await vi.advanceTimersByTimeAsync(0);
    socket().accept();
    const seen: string[] = [];
    client.subscribe(
      { instruments: [BTC, "okx:ETH-USDT"], channels: ["trades"] },
      { items: (items) => items.forEach((item) => item.kind === "event" && seen.push(item.id)) },
    );
    socket().say({ type: "data", seq: 1, events: [trade(BTC, "10-0", "100"), trade(BTC, "11-0", "101")] });
    nextFrame();
    socket().drop(1006);
    expect(client.state).toBe("reconnecting");
    await vi.advanceTimersByTimeAsync(10_000);
    expect(sockets).toHaveLength(2);
    socket().accept();
    expect(socket().subscribes()).toEqual([
      {
        type: "subscribe",
        instruments: [BTC, "okx:ETH-USDT"],
        channels: ["trades"],
        resume_from: { [`trades:${BTC}`]: "11-0" },
      },
    ]);
    // The server replays from the resume point, overlapping with what was already seen.
    socket().say({ type: "data", seq: 1, events: [trade(BTC, "11-0", "101"), trade(BTC, "12-0", "102"), trade(BTC, "12-1", "103")] });
    socket().say({ type: "data", seq: 2, events: [trade(BTC, "12-1", "103"), trade(BTC, "13-0", "104")] });
    nextFrame();
    expect(seen).toEqual(["10-0", "11-0", "12-0", "12-1", "13-0"]);
    expect(client.lastEventId(`trades:${BTC}`)).toBe("13-0");
    // Sequence numbers start again on the new connection, and are acknowledged as such.
    await vi.advanceTimersByTimeAsync(200);
    expect(socket().acks().at(-1)).toBe(2);
  });

  it("reconnects with capped exponential backoff", async () => {
    make({ backoffBaseMs: 500, backoffMaxMs: 4_000 }).start();
    await vi.advanceTimersByTimeAsync(0);
    const expected = [500, 1_000, 2_000, 4_000, 4_000];
    for (const delay of expected) {
      const count = sockets.length;
      socket().drop(1006); // refused before opening
      await vi.advanceTimersByTimeAsync(delay - 1);
      expect(sockets.length).toBe(count);
      await vi.advanceTimersByTimeAsync(1);
      expect(sockets.length).toBe(count + 1);
      expect(client.state).toBe("reconnecting");
    }
  });

  it("jitters the backoff between half and all of the step", () => {
    const low = make({ random: () => 0, backoffBaseMs: 1_000, backoffMaxMs: 60_000 });
    expect(low.backoffDelay(3)).toBe(4_000);
    const high = make({ random: () => 1, backoffBaseMs: 1_000, backoffMaxMs: 60_000 });
    expect(high.backoffDelay(3)).toBe(8_000);
    expect(high.backoffDelay(30)).toBe(60_000);
  });

  it("starts backing off from the bottom again once a connection held", async () => {
    make({ backoffBaseMs: 500, backoffMaxMs: 30_000 }).start();
    await vi.advanceTimersByTimeAsync(0);
    socket().drop();
    await vi.advanceTimersByTimeAsync(500);
    socket().drop();
    await vi.advanceTimersByTimeAsync(1_000);
    socket().accept();
    await vi.advanceTimersByTimeAsync(20_000);
    socket().say({ type: "heartbeat", ts_ns: 1 });
    const count = sockets.length;
    socket().drop(1006);
    await vi.advanceTimersByTimeAsync(500);
    expect(sockets.length).toBe(count + 1);
  });

  it("re-authenticates the open connection whenever the session refreshes its token", async () => {
    make().start();
    await vi.advanceTimersByTimeAsync(0);
    socket().accept();
    tokens.issue("token-fresh");
    expect(socket().sent).toContainEqual({ type: "auth", token: "token-fresh" });
    socket().say({ type: "authenticated", expires_at: 2_000_000_000 });
    // A later reconnect offers the fresh token.
    socket().drop(1006);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(socket().protocols).toEqual(["finone.v1", "bearer.token-fresh"]);
  });

  it("gets a fresh token and reconnects at once when the feed says the token expired (4401)", async () => {
    make().start();
    await vi.advanceTimersByTimeAsync(0);
    socket().accept();
    tokens.nextToken = "token-renewed";
    socket().drop(4401, "the token has expired; reconnect with a new one");
    await vi.advanceTimersByTimeAsync(0);
    expect(tokens.refreshes).toBe(1);
    expect(sockets).toHaveLength(2);
    expect(socket().protocols).toEqual(["finone.v1", "bearer.token-renewed"]);
  });

  it("reconnects with the current token, not a refreshed one, when the session was revoked (4001)", async () => {
    make().start();
    await vi.advanceTimersByTimeAsync(0);
    socket().accept();
    socket().drop(4001, "the session has ended; log in again");
    await vi.advanceTimersByTimeAsync(5_000);
    expect(tokens.refreshes).toBe(0);
    expect(sockets).toHaveLength(2);
  });

  it("goes offline, and stays so, when the feed forbids the connection (4403)", async () => {
    make().start();
    await vi.advanceTimersByTimeAsync(0);
    const notices: FeedNotice[] = [];
    client.onNotice((notice) => notices.push(notice));
    socket().drop(4403, "origin not allowed");
    await vi.advanceTimersByTimeAsync(60_000);
    expect(client.state).toBe("offline");
    expect(sockets).toHaveLength(1);
    expect(notices).toContainEqual({ kind: "closed", code: 4403, reason: "origin not allowed" });
  });

  it("takes a silent connection for dead and reconnects", async () => {
    make({ silenceTimeoutMs: 45_000 }).start();
    await vi.advanceTimersByTimeAsync(0);
    socket().accept();
    await vi.advanceTimersByTimeAsync(30_000);
    socket().say({ type: "heartbeat", ts_ns: 1 });
    await vi.advanceTimersByTimeAsync(44_000);
    expect(sockets).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(client.state).toBe("reconnecting");
    await vi.advanceTimersByTimeAsync(1_000);
    expect(sockets).toHaveLength(2);
  });

  it("surfaces gap notices to the page that holds the stream", async () => {
    make().start();
    await vi.advanceTimersByTimeAsync(0);
    socket().accept();
    const items: FeedItem[] = [];
    client.subscribe({ instruments: [BTC], channels: ["book"] }, { items: (batch) => items.push(...batch) });
    socket().say({ type: "gap", stream: `book:${BTC}`, reason: "events after the resume point were trimmed" });
    nextFrame();
    expect(items).toEqual([{ kind: "gap", stream: `book:${BTC}`, reason: "events after the resume point were trimmed", local: false }]);
  });

  it("subscribes a watchlist by id, and after a reconnect resumes its instruments first", async () => {
    make().start();
    await vi.advanceTimersByTimeAsync(0);
    socket().accept();
    const statuses: SubscriptionStatus[] = [];
    const ids: string[] = [];
    client.subscribe(
      { watchlist: "wl-1", channels: ["trades"] },
      { items: (batch) => batch.forEach((item) => item.kind === "event" && ids.push(item.id)), status: (s) => statuses.push(s) },
    );
    expect(socket().subscribes()).toEqual([{ type: "subscribe", watchlist: "wl-1", channels: ["trades"] }]);
    socket().say({ type: "subscribed", streams: [`trades:${BTC}`] });
    expect(statuses.at(-1)).toEqual({ state: "active", streams: [`trades:${BTC}`] });
    socket().say({ type: "data", seq: 1, events: [trade(BTC, "5-0", "100")] });
    socket().drop(1006);
    await vi.advanceTimersByTimeAsync(10_000);
    socket().accept();
    expect(socket().subscribes()).toEqual([
      { type: "subscribe", instruments: [BTC], channels: ["trades"], resume_from: { [`trades:${BTC}`]: "5-0" } },
      { type: "subscribe", watchlist: "wl-1", channels: ["trades"] },
    ]);
    nextFrame();
    expect(ids).toEqual(["5-0"]);
  });

  it("keeps streams another page still needs, and unsubscribes the rest", async () => {
    make().start();
    await vi.advanceTimersByTimeAsync(0);
    socket().accept();
    const markets = client.subscribe({ instruments: [BTC, "okx:ETH-USDT"], channels: ["trades"] }, { items: () => undefined });
    const page = client.subscribe({ instruments: [BTC], channels: ["trades", "book"] }, { items: () => undefined });
    page.close();
    expect(socket().sent.at(-1)).toEqual({ type: "unsubscribe", instruments: [BTC], channels: ["book"], intervals: ["1d"] });
    markets.close();
    expect(socket().sent.at(-1)).toEqual({ type: "unsubscribe", instruments: [BTC, "okx:ETH-USDT"], channels: ["trades"], intervals: ["1d"] });
  });

  it("subscribes forecasts per interval, hands each interest its own, and lets go of one interval only", async () => {
    make().start();
    await vi.advanceTimersByTimeAsync(0);
    socket().accept();
    const daily: string[] = [];
    const minutes: string[] = [];
    const seen = (into: string[]) => ({ items: (items: FeedItem[]) => items.forEach((item) => item.kind === "event" && into.push(item.stream)) });
    const dailyPage = client.subscribe({ instruments: [BTC], channels: ["predictions", "trades"] }, seen(daily));
    const minutePage = client.subscribe({ instruments: [BTC], channels: ["predictions", "insights"], intervals: ["1m"] }, seen(minutes));
    expect(socket().subscribes()).toEqual([
      { type: "subscribe", instruments: [BTC], channels: ["predictions", "trades"] },
      { type: "subscribe", instruments: [BTC], channels: ["predictions", "insights"], intervals: ["1m"] },
    ]);
    const forecast = (stream: string, id: string): StreamEvent => ({
      stream,
      id,
      event: { kind: "forecast", instrument: BTC, exchange_ts_ns: 1, receive_ts_ns: 1, returns: null, volatility: null },
    });
    socket().say({ type: "data", seq: 1, events: [forecast(`predictions:${BTC}`, "1-0"), forecast(`predictions:1m:${BTC}`, "1-1")] });
    nextFrame();
    expect(daily).toEqual([`predictions:${BTC}`]);
    expect(minutes).toEqual([`predictions:1m:${BTC}`]);
    minutePage.close();
    // Both minute streams in one message naming the minute interval: the daily ones stay.
    expect(socket().sent.at(-1)).toEqual({ type: "unsubscribe", instruments: [BTC], channels: ["insights", "predictions"], intervals: ["1m"] });
    dailyPage.close();
    expect(socket().sent.at(-1)).toEqual({ type: "unsubscribe", instruments: [BTC], channels: ["predictions", "trades"], intervals: ["1d"] });
  });

  it("hands fired alerts over at once and only once", async () => {
    make().start();
    await vi.advanceTimersByTimeAsync(0);
    socket().accept();
    const fired: string[] = [];
    client.onAlert((alert) => fired.push(alert.alert_id));
    const alert: StreamEvent = {
      stream: "alerts",
      id: "7-0",
      event: {
        kind: "alert",
        instrument: BTC,
        user_id: "u",
        alert_id: "a-1",
        condition: "crosses_above",
        threshold: "100",
        price: "101",
        exchange_ts_ns: 1,
        receive_ts_ns: 1,
      },
    };
    socket().say({ type: "data", seq: 1, events: [alert] });
    socket().say({ type: "data", seq: 2, events: [alert] });
    expect(fired).toEqual(["a-1"]);
  });

  it("subscribes plainly and reports a gap when the server refuses to resume", async () => {
    make().start();
    await vi.advanceTimersByTimeAsync(0);
    socket().accept();
    const items: FeedItem[] = [];
    client.subscribe({ instruments: [BTC], channels: ["trades"] }, { items: (batch) => items.push(...batch) });
    socket().say({ type: "data", seq: 1, events: [trade(BTC, "1-0", "100")] });
    socket().drop(1006);
    await vi.advanceTimersByTimeAsync(10_000);
    socket().accept();
    socket().say({ type: "error", code: "invalid_message", message: "resume_from names streams not subscribed" });
    expect(socket().subscribes().at(-1)).toEqual({ type: "subscribe", instruments: [BTC], channels: ["trades"] });
    nextFrame();
    expect(items.filter((item) => item.kind === "gap")).toHaveLength(1);
  });
});
