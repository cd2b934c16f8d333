/**
 * An order-book ladder from the live feed's book events: a `book_snapshot` replaces the book, a
 * `book_delta` sets the size of each level it names (size 0, in any spelling, removes the level).
 * Prices and sizes keep the exchange's spelling for display; numbers are only for ordering.
 */

export type Level = readonly [price: string, size: string];

export interface LadderLevel {
  price: string;
  size: string;
  /** Cumulative size from the best level to this one (display only). */
  total: number;
}

export interface Ladder {
  bids: LadderLevel[];
  asks: LadderLevel[];
  /** Best ask minus best bid, null when a side is empty. */
  spread: number | null;
  /** The spread relative to the mid price, in basis points. */
  spreadBps: number | null;
  /** True once a snapshot was applied (before that the book is built from deltas only). */
  complete: boolean;
}

/** One spelling for every way of writing the same number: "100.10" and "100.1" are one level. */
export function priceKey(price: string): string {
  const value = Number(price);
  return Number.isFinite(value) ? String(value) : price;
}

function isZero(size: string): boolean {
  return Number(size) === 0;
}

interface Held {
  level: Level;
  price: number;
  /** When it was last set (a counter): the fresher of two crossing levels is the true one. */
  at: number;
}

export class OrderBook {
  private readonly bids = new Map<string, Held>();
  private readonly asks = new Map<string, Held>();
  private snapshotSeen = false;
  private updates = 0;

  get complete(): boolean {
    return this.snapshotSeen;
  }

  get empty(): boolean {
    return this.bids.size === 0 && this.asks.size === 0;
  }

  snapshot(bids: readonly Level[], asks: readonly Level[]): void {
    this.bids.clear();
    this.asks.clear();
    this.apply(this.bids, bids);
    this.apply(this.asks, asks);
    this.snapshotSeen = true;
  }

  delta(bids: readonly Level[], asks: readonly Level[]): void {
    this.apply(this.bids, bids);
    this.apply(this.asks, asks);
    this.uncross();
  }

  /** A bid at or above an ask cannot both stand: a level whose removal was missed (a book
   * built from deltas alone, or a lost update) is older than the one crossing it; drop it. */
  private uncross(): void {
    for (;;) {
      const bid = best(this.bids, (a, b) => a > b);
      const ask = best(this.asks, (a, b) => a < b);
      if (bid === null || ask === null || bid[1].price < ask[1].price) return;
      if (bid[1].at < ask[1].at) this.bids.delete(bid[0]);
      else this.asks.delete(ask[0]);
    }
  }

  /** Continuity was lost: what is held can no longer be trusted. */
  reset(): void {
    this.bids.clear();
    this.asks.clear();
    this.snapshotSeen = false;
  }

  private apply(side: Map<string, Held>, levels: readonly Level[]): void {
    for (const [price, size] of levels) {
      const key = priceKey(price);
      if (isZero(size)) side.delete(key);
      else side.set(key, { level: [price, size], price: Number(price), at: ++this.updates });
    }
  }

  /** The best `depth` levels a side, best first, with the spread. */
  ladder(depth = 20): Ladder {
    const bids = top(this.bids, depth, (a, b) => b - a);
    const asks = top(this.asks, depth, (a, b) => a - b);
    const bestBid = bids[0] ? Number(bids[0].price) : null;
    const bestAsk = asks[0] ? Number(asks[0].price) : null;
    const spread = bestBid !== null && bestAsk !== null ? bestAsk - bestBid : null;
    const mid = bestBid !== null && bestAsk !== null ? (bestAsk + bestBid) / 2 : null;
    const spreadBps = spread !== null && mid ? (spread / mid) * 10_000 : null;
    return { bids, asks, spread, spreadBps, complete: this.snapshotSeen };
  }
}

function best(side: Map<string, Held>, better: (a: number, b: number) => boolean): [string, Held] | null {
  let found: [string, Held] | null = null;
  for (const entry of side) if (found === null || better(entry[1].price, found[1].price)) found = entry;
  return found;
}

function top(side: Map<string, Held>, depth: number, order: (a: number, b: number) => number): LadderLevel[] {
  const levels = [...side.values()];
  levels.sort((a, b) => order(a.price, b.price));
  let total = 0;
  return levels.slice(0, depth).map(({ level }) => {
    total += Number(level[1]);
    return { price: level[0], size: level[1], total };
  });
}
