import { useEffect, useRef, useState } from "react";
import { messageOf, unwrap } from "../api/errors";
import { api } from "../app/services";
import { useFeed, useRedraw } from "../lib/hooks";
import { instrumentPath, Link } from "../lib/router";
import type { FeedItem, FeedSpec } from "../live/feedClient";
import { applyToRow, emptyRow, rowChange, setSparkHistory, type BoardRow } from "../market/board";
import { INTERVAL_SECONDS } from "../market/candles";
import { decimalsOf, symbolOf } from "../market/format";
import { recentBars } from "../market/history";
import { Change, ErrorText, FeedState, VenueLabel } from "./common";
import { Sparkline } from "./Sparkline";

export interface BoardItem {
  instrument: string;
  venue: string;
  state?: string;
}

const LOADS_AT_ONCE = 4;

/** Sparkline history: a day of 5-minute bars, else (a feed replaying the past) the latest
 * 90 daily bars. */
async function loadSpark(row: BoardRow, signal: AbortSignal): Promise<void> {
  const day = await recentBars(api, row.instrument, "5m", 288, { signal });
  if (day.bars.length >= 2) {
    setSparkHistory(row, day.bars, INTERVAL_SECONDS["5m"], "5m", "last 24 h");
    return;
  }
  const daily = await recentBars(api, row.instrument, "1d", 90, { searchPast: true, signal });
  if (daily.bars.length > 0) setSparkHistory(row, daily.bars, INTERVAL_SECONDS["1d"], "1d", "latest 90 daily bars");
  else setSparkHistory(row, day.bars, INTERVAL_SECONDS["5m"], "5m", "since this page opened");
}

async function loadQuotes(rows: Map<string, BoardRow>, instruments: string[], signal: AbortSignal): Promise<void> {
  for (let i = 0; i < instruments.length; i += 100) {
    const wanted = instruments.slice(i, i + 100);
    // Instruments without a quote (bars-only feeds) come back in `missing` and keep their dashes.
    const { quotes } = await unwrap(api.GET("/v1/quotes", { params: { query: { instrument: wanted } }, signal }));
    for (const quote of quotes) {
      const row = rows.get(quote.instrument);
      if (row && row.bid === null && row.ask === null) {
        row.bid = quote.bid_price;
        row.ask = quote.ask_price;
      }
    }
  }
}

/** A live table of instruments: last price, change, bid, ask and a sparkline. */
export function MarketBoard({
  items,
  spec,
  caption,
  shown,
}: {
  items: readonly BoardItem[];
  spec: FeedSpec | null;
  caption: string;
  /** The instruments to list (all of them when absent); the others still load and update. */
  shown?: ReadonlySet<string>;
}) {
  const rows = useRef(new Map<string, BoardRow>());
  const redraw = useRedraw();
  const [loadError, setLoadError] = useState<string | null>(null);
  const ids = items.map((item) => item.instrument);
  const key = ids.join("\n");

  for (const id of ids) if (!rows.current.has(id)) rows.current.set(id, emptyRow(id));

  useEffect(() => {
    const controller = new AbortController();
    const queue = ids.filter((id) => {
      const row = rows.current.get(id);
      return row !== undefined && row.sparkInterval === null;
    });
    setLoadError(null);
    const worker = async () => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
        const row = rows.current.get(id);
        if (!row) continue;
        try {
          await loadSpark(row, controller.signal);
        } catch (error) {
          if (controller.signal.aborted) return;
          setLoadError(`Price history of ${id}: ${messageOf(error)}`);
        }
        if (!controller.signal.aborted) redraw();
      }
    };
    for (let i = 0; i < LOADS_AT_ONCE; i += 1) void worker();
    loadQuotes(rows.current, ids, controller.signal).then(redraw, (error: unknown) => {
      if (!controller.signal.aborted) setLoadError(`Quotes: ${messageOf(error)}`);
    });
    return () => controller.abort();
  }, [key]);

  const status = useFeed(spec, (batch: FeedItem[]) => {
    let changed = false;
    for (const item of batch) {
      if (item.kind !== "event") continue;
      const row = rows.current.get(item.event.instrument);
      if (row && applyToRow(row, item.event)) changed = true;
    }
    if (changed) redraw();
  });

  return (
    <>
      {status.state === "error" && <ErrorText error={`Live prices: ${status.message}`} />}
      <ErrorText error={loadError} />
      <div className="table-wrap">
        <table className="board">
          <caption>{caption}</caption>
          <thead>
            <tr>
              <th scope="col">Instrument</th>
              <th scope="col">Venue</th>
              {items.some((item) => item.state !== undefined) && <th scope="col">Feed</th>}
              <th scope="col" className="num">
                Last
              </th>
              <th scope="col" className="num">
                Change
              </th>
              <th scope="col" className="num">
                Bid
              </th>
              <th scope="col" className="num">
                Ask
              </th>
              <th scope="col">Trend</th>
            </tr>
          </thead>
          <tbody>
            {items.filter((item) => shown === undefined || shown.has(item.instrument)).map((item) => {
              const row = rows.current.get(item.instrument) ?? emptyRow(item.instrument);
              const { delta, base } = rowChange(row);
              return (
                <tr key={item.instrument}>
                  <th scope="row">
                    <Link to={instrumentPath(item.instrument)}>{symbolOf(item.instrument)}</Link>
                  </th>
                  <td>
                    <VenueLabel venue={item.venue} />
                  </td>
                  {items.some((other) => other.state !== undefined) && <td>{item.state ? <FeedState state={item.state} /> : "—"}</td>}
                  <td className="num">{row.last ?? "—"}</td>
                  <td className="num">
                    <Change delta={delta} base={base} decimals={decimalsOf(row.last)} />
                  </td>
                  <td className="num">{row.bid ?? "—"}</td>
                  <td className="num">{row.ask ?? "—"}</td>
                  <td>
                    <Sparkline
                      values={row.spark.map((point) => point.v)}
                      label={`${symbolOf(item.instrument)} price, ${row.sparkWindow || "loading"}`}
                    />
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </>
  );
}
