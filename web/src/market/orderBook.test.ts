import { describe, expect, it } from "vitest";
import { OrderBook } from "./orderBook";

describe("OrderBook ladder", () => {
  it("orders a snapshot best first on each side, with the spread", () => {
    const book = new OrderBook();
    book.snapshot(
      [
        ["99.5", "2"],
        ["100.0", "1"],
        ["99.0", "5"],
      ],
      [
        ["100.5", "3"],
        ["101", "1"],
        ["100.25", "4"],
      ],
    );
    const ladder = book.ladder();
    expect(ladder.bids.map((level) => level.price)).toEqual(["100.0", "99.5", "99.0"]);
    expect(ladder.asks.map((level) => level.price)).toEqual(["100.25", "100.5", "101"]);
    expect(ladder.spread).toBeCloseTo(0.25);
    expect(ladder.spreadBps).toBeCloseTo((0.25 / 100.125) * 10_000);
    expect(ladder.bids.map((level) => level.total)).toEqual([1, 3, 8]);
    expect(ladder.complete).toBe(true);
  });

  it("applies deltas: new levels, changed sizes, and removals at size 0 in any spelling", () => {
    const book = new OrderBook();
    book.snapshot(
      [
        ["100", "1"],
        ["99", "1"],
      ],
      [
        ["101", "1"],
        ["102", "1"],
      ],
    );
    book.delta(
      [
        ["100.00", "0.000"], // same level as "100", spelled otherwise: removed
        ["99", "7"],
        ["99.5", "2"],
      ],
      [["102", "0"]],
    );
    const ladder = book.ladder();
    expect(ladder.bids).toEqual([
      { price: "99.5", size: "2", total: 2 },
      { price: "99", size: "7", total: 9 },
    ]);
    expect(ladder.asks.map((level) => level.price)).toEqual(["101"]);
    expect(ladder.spread).toBeCloseTo(1.5);
  });

  it("shows only the top N levels a side", () => {
    const book = new OrderBook();
    const bids = Array.from({ length: 50 }, (_, i) => [String(1000 - i), "1"] as const);
    const asks = Array.from({ length: 50 }, (_, i) => [String(1001 + i), "1"] as const);
    book.snapshot(bids, asks);
    const ladder = book.ladder(20);
    expect(ladder.bids).toHaveLength(20);
    expect(ladder.asks).toHaveLength(20);
    expect(ladder.bids[19]?.price).toBe("981");
    expect(ladder.asks[19]?.price).toBe("1020");
  });

  it("replaces everything on a new snapshot", () => {
    const book = new OrderBook();
    book.snapshot([["100", "1"]], [["101", "1"]]);
    book.snapshot([["50", "1"]], []);
    const ladder = book.ladder();
    expect(ladder.bids.map((level) => level.price)).toEqual(["50"]);
    expect(ladder.asks).toEqual([]);
    expect(ladder.spread).toBeNull();
  });

  it("is partial until a snapshot, and forgets everything after a gap", () => {
    const book = new OrderBook();
    book.delta([["100", "1"]], [["101", "2"]]);
    expect(book.ladder().complete).toBe(false);
    expect(book.ladder().bids).toHaveLength(1);
    book.reset();
    expect(book.empty).toBe(true);
    expect(book.ladder().complete).toBe(false);
  });

  it("drops a stale level that a fresher one crosses", () => {
    const book = new OrderBook();
    book.delta([["100", "1"]], [["101", "1"]]);
    // The price moved down; the removal of the bid at 100 was never seen.
    book.delta([["99", "2"]], [["99.5", "1"]]);
    const ladder = book.ladder();
    expect(ladder.bids.map((level) => level.price)).toEqual(["99"]);
    expect(ladder.asks.map((level) => level.price)).toEqual(["99.5", "101"]);
    expect(ladder.spread).toBeCloseTo(0.5);
  });
});
