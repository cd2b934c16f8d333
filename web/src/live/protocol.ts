/**
 * The live feed's messages (/v1/stream), as serve/live/protocol.py and core/events.py define
 * them. The feed is not part of the OpenAPI document, so these are written here; prices and
 * sizes stay the decimal strings the exchange wrote.
 */

import { INTERVALS, type InsightView, type Interval } from "../api/types";

export type Channel = "trades" | "quotes" | "book" | "bars" | "predictions" | "insights";
export const CHANNELS: readonly Channel[] = ["trades", "quotes", "book", "bars", "predictions", "insights"];
/** What inference makes: one stream per instrument and bar interval (the feeds' channels carry
 * every interval in one stream, each bar saying its own). */
export const MODEL_CHANNELS: readonly Channel[] = ["predictions", "insights"];
/** The interval of a model channel's stream when none is named (its name then carries none). */
export const DAILY: Interval = "1d";
export const ALERTS_STREAM = "alerts";
export const SUBPROTOCOL = "finone.v1";
export const BEARER_PREFIX = "bearer.";

export const CLOSE_TOO_SLOW = 4008;
export const CLOSE_UNAUTHENTICATED = 4401;
/** The session or client was revoked while connected (logout, password change, disable...). */
export const CLOSE_REVOKED = 4001;
export const CLOSE_FORBIDDEN = 4403;
export const CLOSE_TOO_MANY_CONNECTIONS = 4029;
export const CLOSE_TRY_AGAIN_LATER = 1013;

type PriceLevel = [price: string, size: string];

interface Stamped {
  exchange_ts_ns: number;
  receive_ts_ns: number;
  instrument: string;
}

export interface TradeEvent extends Stamped {
  kind: "trade";
  trade_id: string;
  price: string;
  size: string;
  side?: "buy" | "sell" | null;
}

export interface TradeCorrectionEvent extends Stamped {
  kind: "trade_correction";
  original_trade_id: string;
  corrected_trade_id: string;
  corrected_price: string;
  corrected_size: string;
}

export interface TradeCancelEvent extends Stamped {
  kind: "trade_cancel";
  trade_id: string;
  price: string;
  size: string;
  reason: "cancel" | "error";
}

export interface QuoteEvent extends Stamped {
  kind: "quote";
  bid_price: string | null;
  bid_size: string | null;
  ask_price: string | null;
  ask_size: string | null;
}

export interface BookSnapshotEvent extends Stamped {
  kind: "book_snapshot";
  bids: PriceLevel[];
  asks: PriceLevel[];
  sequence?: number | null;
}

export interface BookDeltaEvent extends Stamped {
  kind: "book_delta";
  bids: PriceLevel[];
  asks: PriceLevel[];
  sequence?: number | null;
}

export interface BarEvent extends Stamped {
  kind: "bar";
  interval: string;
  start_ts_ns: number;
  open: string;
  high: string;
  low: string;
  close: string;
  volume: string;
  trade_count: number;
  vwap?: string | null;
}

/** Continuity was lost for an instrument upstream (a feed reconnect, a sequence gap). */
export interface GapEvent extends Stamped {
  kind: "gap";
  reason: string;
}

export interface AlertEvent extends Stamped {
  kind: "alert";
  user_id: string;
  alert_id: string;
  condition: string;
  threshold: string;
  price: string;
  window_s?: number | null;
}

interface ModelOutput {
  model: string;
  version: string;
  interval: string;
  horizon: number;
  bar_start_ts_ns: number;
}

export interface ReturnForecast extends ModelOutput {
  q10: number;
  q50: number;
  q90: number;
  prob_up: number;
}

export interface VolatilityForecast extends ModelOutput {
  volatility: number;
}

export interface ForecastEvent extends Stamped {
  kind: "forecast";
  returns: ReturnForecast | null;
  volatility: VolatilityForecast | null;
}

/** A reading of the instrument from its forecast and history: GET /v1/insights's answer, whose
 * `as_of_ts_ns` both stamps carry (the same bars and models make the same insight). */
export interface InsightEvent extends Stamped, Pick<InsightView, "interval" | "returns" | "volatility" | "summary" | "findings"> {
  kind: "insight";
}

export type FeedEvent =
  | TradeEvent
  | TradeCorrectionEvent
  | TradeCancelEvent
  | QuoteEvent
  | BookSnapshotEvent
  | BookDeltaEvent
  | BarEvent
  | GapEvent
  | AlertEvent
  | ForecastEvent
  | InsightEvent;

/** One event as the feed delivers it: its stream and the stream's event id. */
export interface StreamEvent {
  stream: string;
  id: string;
  event: FeedEvent;
}

export type ServerMessage =
  | { type: "data"; seq: number; events: StreamEvent[] }
  | { type: "subscribed"; streams: string[] }
  | { type: "unsubscribed"; streams: string[] }
  | { type: "authenticated"; expires_at: number }
  | { type: "error"; code: string; message: string }
  | { type: "heartbeat"; ts_ns: number }
  | { type: "pong" }
  | { type: "gap"; stream: string; reason: string };

export type ClientMessage =
  | {
      type: "subscribe";
      instruments?: string[];
      watchlist?: string;
      channels: Channel[];
      /** The model channels' bar intervals (daily when absent). */
      intervals?: Interval[];
      resume_from?: Record<string, string>;
    }
  | { type: "unsubscribe"; instruments: string[]; channels: Channel[]; intervals: Interval[] }
  | { type: "ack"; seq: number }
  | { type: "auth"; token: string }
  | { type: "ping" };

/** Every client message but acks, which are flow control: each of these gets one reply. */
export type ControlMessage = Exclude<ClientMessage, { type: "ack" }>;

/** `trades:okx:BTC-USDT`; a model channel's stream of an interval other than daily carries it
 * before the instrument: `predictions:1m:okx:BTC-USDT` (as core/redis_keys.py names them). */
export function streamName(channel: Channel, instrument: string, interval: Interval = DAILY): string {
  if (interval === DAILY || !MODEL_CHANNELS.includes(channel)) return `${channel}:${instrument}`;
  return `${channel}:${interval}:${instrument}`;
}

export interface StreamParts {
  channel: Channel;
  instrument: string;
  /** The model channels' bar interval; daily for the feeds' channels. */
  interval: Interval;
}

/** The parts of an instrument's stream, null for `alerts` or anything else. */
export function splitStream(stream: string): StreamParts | null {
  const parts = stream.split(":");
  const channel = CHANNELS.find((known) => known === parts[0]);
  if (channel === undefined) return null;
  if (parts.length === 3) return { channel, instrument: parts.slice(1).join(":"), interval: DAILY };
  const interval = INTERVALS.find((known) => known === parts[1]);
  // An instrument id holds one colon (venue:SYMBOL): a second one says an interval leads.
  if (parts.length !== 4 || interval === undefined || interval === DAILY || !MODEL_CHANNELS.includes(channel)) return null;
  return { channel, instrument: parts.slice(2).join(":"), interval };
}

/** Redis stream ids ("<ms>-<seq>") in order: negative, zero or positive like a comparator. */
export function compareEventIds(a: string, b: string): number {
  const [aMs = "0", aSeq = "0"] = a.split("-");
  const [bMs = "0", bSeq = "0"] = b.split("-");
  if (aMs.length !== bMs.length) return aMs.length - bMs.length;
  if (aMs !== bMs) return aMs < bMs ? -1 : 1;
  if (aSeq.length !== bSeq.length) return aSeq.length - bSeq.length;
  if (aSeq !== bSeq) return aSeq < bSeq ? -1 : 1;
  return 0;
}
