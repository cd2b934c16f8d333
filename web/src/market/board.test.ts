import { describe, expect, it } from "vitest";
import type { BarEvent, FeedEvent } from "../live/protocol";
import { applyToRow, emptyRow, rowChange, setSparkHistory } from "./board";

const NS = 1_000_000_000;

function tradeAt(second: number, price: string): FeedEvent {
  return { kind: "trade", instrument: "x:Y", trade_id: String(second), price, size: "1", exchange_ts_ns: second * NS, receive_ts_ns: second * NS };
}

describe("market board row", () => {
  it("keeps the last trade price as written, and the change against the trend line's start", () => {
    const row = emptyRow("x:Y");
    setSparkHistory(
      row,
      [
        { start_ts_ns: 0, close: "100.00" },
        { start_ts_ns: 300 * NS, close: "101.00" },
      ],
      300,
      "5m",
      "last 24 h",
    );
    expect(row.last).toBe("101.00");
    applyToRow(row, tradeAt(650, "98.50"));
    expect(row.last).toBe("98.50");
    expect(row.spark.map((point) => point.v)).toEqual([100, 101, 98.5]);
    expect(rowChange(row)).toEqual({ delta: -1.5, base: 100 });
  });

  it("updates the trend line's current bucket instead of adding a point per trade", () => {
    const row = emptyRow("x:Y");
    setSparkHistory(row, [{ start_ts_ns: 0, close: "1" }], 300, "5m", "");
    applyToRow(row, tradeAt(310, "2"));
    applyToRow(row, tradeAt(320, "3"));
    expect(row.spark).toEqual([
      { t: 0, v: 1 },
      { t: 300, v: 3 },
    ]);
  });

  it("keeps the newest close as the last price when live bars are older than the history", () => {
    const row = emptyRow("x:Y");
    const bar: BarEvent = { kind: "bar", instrument: "x:Y", interval: "1d", start_ts_ns: 0, open: "1", high: "1", low: "1", close: "1", volume: "1", trade_count: 0, exchange_ts_ns: 0, receive_ts_ns: 0 };
    applyToRow(row, bar);
    setSparkHistory(row, [{ start_ts_ns: 86_400 * NS, close: "50" }], 86_400, "1d", "latest 90 daily bars");
    expect(row.last).toBe("50");
    applyToRow(row, { ...bar, start_ts_ns: 3_600 * NS, close: "2" });
    expect(row.last).toBe("50");
    expect(rowChange(row)).toEqual({ delta: 0, base: 50 });
  });

  it("shows best bid and ask from quotes", () => {
    const row = emptyRow("x:Y");
    applyToRow(row, { kind: "quote", instrument: "x:Y", bid_price: "9.99", bid_size: "1", ask_price: "10.01", ask_size: "2", exchange_ts_ns: 0, receive_ts_ns: 0 });
    expect([row.bid, row.ask]).toEqual(["9.99", "10.01"]);
  });
});
