/** One row of a live market board: last price, change over the sparkline's window, best bid
 * and ask, and the sparkline itself, kept up to date from trades, quotes and bars. */
import type { FeedEvent } from "../live/protocol";

export interface SparkPoint {
  /** Bucket start, seconds. */
  t: number;
  v: number;
}

export interface BoardRow {
  instrument: string;
  last: string | null;
  lastSource: "trade" | "bar" | null;
  lastAtNs: number;
  bid: string | null;
  ask: string | null;
  spark: SparkPoint[];
  /** Bucket length of the sparkline, seconds, and the interval name its bars have. */
  sparkIntervalS: number;
  sparkInterval: string | null;
  /** Words for the sparkline's window ("last 24 h"). */
  sparkWindow: string;
}

export const MAX_SPARK_POINTS = 300;

export function emptyRow(instrument: string): BoardRow {
  return {
    instrument,
    last: null,
    lastSource: null,
    lastAtNs: 0,
    bid: null,
    ask: null,
    spark: [],
    sparkIntervalS: 300,
    sparkInterval: null,
    sparkWindow: "",
  };
}

function putSpark(row: BoardRow, t: number, v: number): void {
  const bucket = t - (t % row.sparkIntervalS);
  const last = row.spark[row.spark.length - 1];
  if (last !== undefined && bucket === last.t) {
    last.v = v;
  } else if (last === undefined || bucket > last.t) {
    row.spark.push({ t: bucket, v });
    if (row.spark.length > MAX_SPARK_POINTS) row.spark.shift();
  }
}

/** History for the sparkline (oldest first); the last close stands as the last price until a
 * live one comes. */
export function setSparkHistory(
  row: BoardRow,
  bars: ReadonlyArray<{ start_ts_ns: number; close: string }>,
  intervalS: number,
  interval: string,
  window: string,
): void {
  row.sparkIntervalS = intervalS;
  row.sparkInterval = interval;
  row.sparkWindow = window;
  const live = row.spark;
  row.spark = [];
  for (const bar of bars) {
    const v = Number(bar.close);
    if (Number.isFinite(v)) putSpark(row, Math.floor(bar.start_ts_ns / 1e9), v);
  }
  for (const point of live) putSpark(row, point.t, point.v);
  const newest = bars[bars.length - 1];
  // A live bar older than the history (a replay of the past) does not stand as the last price.
  const staler = row.last === null || (row.lastSource === "bar" && row.lastAtNs < (newest?.start_ts_ns ?? 0));
  if (newest !== undefined && staler) {
    row.last = newest.close;
    row.lastSource = "bar";
    row.lastAtNs = newest.start_ts_ns;
  }
}

/** Applies one live event; returns whether the row changed. */
export function applyToRow(row: BoardRow, event: FeedEvent): boolean {
  switch (event.kind) {
    case "trade": {
      if (event.exchange_ts_ns >= row.lastAtNs || row.lastSource !== "trade") {
        row.last = event.price;
        row.lastSource = "trade";
        row.lastAtNs = event.exchange_ts_ns;
      }
      const v = Number(event.price);
      if (Number.isFinite(v)) putSpark(row, Math.floor(event.exchange_ts_ns / 1e9), v);
      return true;
    }
    case "quote":
      row.bid = event.bid_price;
      row.ask = event.ask_price;
      return true;
    case "bar": {
      if (row.lastSource !== "trade" && event.start_ts_ns >= row.lastAtNs) {
        row.last = event.close;
        row.lastSource = "bar";
        row.lastAtNs = event.start_ts_ns;
      }
      if (row.sparkInterval === null || event.interval === row.sparkInterval) {
        const v = Number(event.close);
        if (Number.isFinite(v)) putSpark(row, Math.floor(event.start_ts_ns / 1e9), v);
      }
      return true;
    }
    default:
      return false;
  }
}

/** Change of the last price against the sparkline's first point. */
export function rowChange(row: BoardRow): { delta: number | null; base: number | null } {
  const first = row.spark[0];
  const last = row.last === null ? NaN : Number(row.last);
  if (first === undefined || !Number.isFinite(last)) return { delta: null, base: null };
  return { delta: last - first.v, base: first.v };
}
