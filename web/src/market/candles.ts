/**
 * Candles for a chart: history bars, then live `bar` events and candles built from `trade`
 * events, bucketed by the chart's interval. A bar is the authority for its bucket up to the time
 * it covers; trades after that time extend it, trades before it are already in it.
 */
import type { Interval } from "../api/types";

export const INTERVAL_SECONDS: Record<Interval, number> = {
  "1s": 1,
  "1m": 60,
  "5m": 300,
  "15m": 900,
  "1h": 3_600,
  "1d": 86_400,
};

export interface Candle {
  /** Bucket start, seconds since the epoch (UTC). */
  time: number;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
}

export interface BarLike {
  start_ts_ns: number;
  open: string;
  high: string;
  low: string;
  close: string;
  volume: string;
}

export interface TradeLike {
  exchange_ts_ns: number;
  price: string;
  size: string;
}

interface Bucket extends Candle {
  /** Trades stamped at or before this (ns) are already counted in the bucket's bar
   * (-Infinity for a bucket built from trades alone). */
  coveredUntilNs: number;
  /** Stamp of the latest trade applied: a late trade does not move the close. */
  lastTradeNs: number;
}

const NS_PER_S = 1_000_000_000;

/** The start (seconds) of the bucket that a time in nanoseconds falls in. */
export function bucketStart(tsNs: number, intervalS: number): number {
  const seconds = Math.floor(tsNs / NS_PER_S);
  return seconds - (((seconds % intervalS) + intervalS) % intervalS);
}

export class CandleSeries {
  readonly interval: Interval;
  readonly intervalS: number;
  private readonly limit: number;
  private readonly buckets = new Map<number, Bucket>();
  private times: number[] = [];
  private ready = false;
  private early: Array<{ kind: "trade"; trade: TradeLike } | { kind: "bar"; bar: BarLike; atNs: number | null }> = [];
  private dirtyFrom: number | null = null;
  private reset = true;

  constructor(interval: Interval, limit = 5_000) {
    this.interval = interval;
    this.intervalS = INTERVAL_SECONDS[interval];
    this.limit = limit;
  }

  /** History arrived (oldest first), fetched at `fetchedAtNs`: live events that came before it
   * are applied on top of it. */
  setHistory(bars: readonly BarLike[], fetchedAtNs: number): void {
    for (const bar of bars) this.putBar(bar, Math.min(this.endNs(bar.start_ts_ns), fetchedAtNs));
    this.reset = true;
    this.ready = true;
    const early = this.early;
    this.early = [];
    for (const item of early) {
      if (item.kind === "trade") this.applyTrade(item.trade);
      else this.applyBar(item.bar, item.atNs);
    }
  }

  get loaded(): boolean {
    return this.ready;
  }

  /** A live bar of this series' interval; `atNs` is when it was stamped (what it covers). */
  applyBar(bar: BarLike, atNs: number | null = null): void {
    if (!this.ready) {
      this.early.push({ kind: "bar", bar, atNs });
      return;
    }
    if (this.beforeShown(bucketStart(bar.start_ts_ns, this.intervalS))) return;
    const end = this.endNs(bar.start_ts_ns);
    this.putBar(bar, atNs === null ? end : Math.min(end, Math.max(atNs, bar.start_ts_ns)));
  }

  /** A live bucket older than every candle held (a replay of the past beside recorded history,
   * a trade long late) would stand alone far to the left of the chart and stretch its scales:
   * it is left out. */
  private beforeShown(time: number): boolean {
    const oldest = this.times[0];
    return oldest !== undefined && time < oldest && !this.buckets.has(time);
  }

  applyTrade(trade: TradeLike): void {
    if (!this.ready) {
      if (this.early.length < 100_000) this.early.push({ kind: "trade", trade });
      return;
    }
    const price = Number(trade.price);
    const size = Number(trade.size);
    if (!Number.isFinite(price) || !Number.isFinite(size)) return;
    const time = bucketStart(trade.exchange_ts_ns, this.intervalS);
    const bucket = this.buckets.get(time);
    if (bucket === undefined) {
      if (this.beforeShown(time)) return;
      this.insert({
        time,
        open: price,
        high: price,
        low: price,
        close: price,
        volume: size,
        coveredUntilNs: Number.NEGATIVE_INFINITY,
        lastTradeNs: trade.exchange_ts_ns,
      });
      return;
    }
    if (trade.exchange_ts_ns <= bucket.coveredUntilNs) return; // its bar already counts it
    bucket.high = Math.max(bucket.high, price);
    bucket.low = Math.min(bucket.low, price);
    bucket.volume += size;
    if (trade.exchange_ts_ns >= bucket.lastTradeNs) {
      bucket.close = price;
      bucket.lastTradeNs = trade.exchange_ts_ns;
    }
    this.touch(time);
  }

  /** Every candle, oldest first. */
  candles(): Candle[] {
    return this.times.map((time) => {
      const { open, high, low, close, volume } = this.buckets.get(time) as Bucket;
      return { time, open, high, low, close, volume };
    });
  }

  last(): Candle | null {
    const time = this.times[this.times.length - 1];
    if (time === undefined) return null;
    const { open, high, low, close, volume } = this.buckets.get(time) as Bucket;
    return { time, open, high, low, close, volume };
  }

  /** What changed since the last call: everything (`reset`), or the candles from `from` on. */
  takeChanges(): { reset: boolean; from: number | null } {
    const changes = { reset: this.reset, from: this.dirtyFrom };
    this.reset = false;
    this.dirtyFrom = null;
    return changes;
  }

  private endNs(startNs: number): number {
    return startNs + this.intervalS * NS_PER_S;
  }

  private putBar(bar: BarLike, coveredUntilNs: number): void {
    const time = bucketStart(bar.start_ts_ns, this.intervalS);
    const values = {
      open: Number(bar.open),
      high: Number(bar.high),
      low: Number(bar.low),
      close: Number(bar.close),
      volume: Number(bar.volume),
    };
    if (!Object.values(values).every(Number.isFinite)) return;
    const existing = this.buckets.get(time);
    if (existing !== undefined) {
      Object.assign(existing, values, { coveredUntilNs, lastTradeNs: coveredUntilNs });
      this.touch(time);
      return;
    }
    this.insert({ time, ...values, coveredUntilNs, lastTradeNs: coveredUntilNs });
  }

  private insert(bucket: Bucket): void {
    this.buckets.set(bucket.time, bucket);
    const times = this.times;
    if (times.length === 0 || bucket.time > (times[times.length - 1] as number)) {
      times.push(bucket.time);
    } else {
      let low = 0;
      let high = times.length;
      while (low < high) {
        const mid = (low + high) >> 1;
        if ((times[mid] as number) < bucket.time) low = mid + 1;
        else high = mid;
      }
      times.splice(low, 0, bucket.time);
    }
    while (times.length > this.limit) {
      const oldest = times.shift() as number;
      this.buckets.delete(oldest);
      this.reset = true;
    }
    this.touch(bucket.time);
  }

  private touch(time: number): void {
    if (this.dirtyFrom === null || time < this.dirtyFrom) this.dirtyFrom = time;
  }
}
