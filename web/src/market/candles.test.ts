import { describe, expect, it } from "vitest";
import { CandleSeries, bucketStart } from "./candles";

const S = 1_000_000_000; // ns per second
const T0 = 1_764_162_720; // a minute boundary, seconds

function trade(second: number, price: string, size = "1") {
  return { exchange_ts_ns: second * S, price, size };
}

function bar(second: number, open: string, high: string, low: string, close: string, volume: string) {
  return { start_ts_ns: second * S, open, high, low, close, volume };
}

describe("candle aggregation", () => {
  it("buckets trades by the interval into OHLCV candles", () => {
    const series = new CandleSeries("1m");
    series.setHistory([], 0);
    series.applyTrade(trade(T0 + 1, "100", "1"));
    series.applyTrade(trade(T0 + 20, "105", "2"));
    series.applyTrade(trade(T0 + 40, "98", "0.5"));
    series.applyTrade(trade(T0 + 59, "101", "1"));
    series.applyTrade(trade(T0 + 60, "102", "3")); // next minute
    expect(series.candles()).toEqual([
      { time: T0, open: 100, high: 105, low: 98, close: 101, volume: 4.5 },
      { time: T0 + 60, open: 102, high: 102, low: 102, close: 102, volume: 3 },
    ]);
  });

  it("aligns buckets on the interval", () => {
    // T0 is 120 s past a 5-minute boundary.
    expect(bucketStart((T0 + 299) * S, 300)).toBe(T0 + 180);
    expect(bucketStart((T0 + 179) * S, 300)).toBe(T0 - 120);
    expect(bucketStart(86_400 * 3.5 * S, 86_400)).toBe(86_400 * 3);
  });

  it("does not move the close for a trade that arrives late", () => {
    const series = new CandleSeries("1m");
    series.setHistory([], 0);
    series.applyTrade(trade(T0 + 30, "100"));
    series.applyTrade(trade(T0 + 10, "90")); // stamped earlier, arrived later
    expect(series.last()).toMatchObject({ open: 100, low: 90, close: 100, volume: 2 });
  });

  it("continues history with live trades, without counting again what a bar already holds", () => {
    const series = new CandleSeries("1m");
    // The newest history bar covers its minute up to when the history was fetched (T0 + 30).
    series.setHistory(
      [bar(T0 - 60, "90", "95", "89", "94", "10"), bar(T0, "94", "99", "93", "97", "5")],
      (T0 + 30) * S,
    );
    series.applyTrade(trade(T0 + 20, "200")); // already in the bar
    series.applyTrade(trade(T0 + 40, "100", "2")); // after it: extends the bar
    series.applyTrade(trade(T0 + 70, "101", "1")); // a new minute
    expect(series.candles()).toEqual([
      { time: T0 - 60, open: 90, high: 95, low: 89, close: 94, volume: 10 },
      { time: T0, open: 94, high: 100, low: 93, close: 100, volume: 7 },
      { time: T0 + 60, open: 101, high: 101, low: 101, close: 101, volume: 1 },
    ]);
  });

  it("lets a live bar replace the candle built from trades for its bucket", () => {
    const series = new CandleSeries("1m");
    series.setHistory([], 0);
    series.applyTrade(trade(T0 + 5, "100"));
    series.applyTrade(trade(T0 + 6, "100"));
    series.applyBar(bar(T0, "99", "103", "98", "102", "42"), (T0 + 60) * S);
    series.applyTrade(trade(T0 + 59, "500")); // covered by the final bar
    expect(series.candles()).toEqual([{ time: T0, open: 99, high: 103, low: 98, close: 102, volume: 42 }]);
  });

  it("applies live events that came before the history on top of it", () => {
    const series = new CandleSeries("1m");
    series.applyTrade(trade(T0 + 45, "110", "1"));
    expect(series.candles()).toEqual([]);
    series.setHistory([bar(T0, "100", "101", "99", "100", "3")], (T0 + 30) * S);
    expect(series.candles()).toEqual([{ time: T0, open: 100, high: 110, low: 99, close: 110, volume: 4 }]);
  });

  it("says which candles changed, so a chart redraws only those", () => {
    const series = new CandleSeries("1m");
    series.setHistory([bar(T0, "100", "101", "99", "100", "3")], (T0 + 60) * S);
    expect(series.takeChanges().reset).toBe(true);
    series.applyTrade(trade(T0 + 61, "100"));
    expect(series.takeChanges()).toEqual({ reset: false, from: T0 + 60 });
    expect(series.takeChanges()).toEqual({ reset: false, from: null });
  });

  it("leaves out live candles older than every candle it holds", () => {
    const series = new CandleSeries("1d");
    const day = 86_400;
    // The history ends in 2013; a replay of 2000 streams bars of its own days meanwhile.
    series.setHistory([bar(1_362_096_000, "10", "11", "9", "10", "5"), bar(1_362_096_000 + day, "10", "12", "10", "11", "6")], 0);
    series.applyBar(bar(946_857_600, "1", "2", "1", "2", "100"));
    series.applyTrade(trade(946_857_600 + day, "3"));
    series.applyBar(bar(1_362_096_000 + day, "10", "13", "10", "12", "7"));
    expect(series.candles().map((candle) => [candle.time, candle.close])).toEqual([
      [1_362_096_000, 10],
      [1_362_096_000 + day, 12],
    ]);
  });

  it("keeps at most its limit of candles, oldest dropped", () => {
    const series = new CandleSeries("1s", 3);
    series.setHistory([], 0);
    for (let i = 0; i < 5; i += 1) series.applyTrade(trade(T0 + i, String(100 + i)));
    expect(series.candles().map((candle) => candle.close)).toEqual([102, 103, 104]);
  });
});
