/** Recent history from /v1/history: it pages oldest first, so "the latest N" is asked as a time
 * range ending now, and, for feeds replaying the past (the demo), found by paging to the end. */
import type { Client } from "openapi-fetch";
import { ApiError, unwrap } from "../api/errors";
import type { BarRow, Interval, TradeRow, paths } from "../api/types";
import type { components } from "../api/schema";

type BarsPage = components["schemas"]["BarsPage"];
type TradesPage = components["schemas"]["TradesPage"];

/** JSON pages only: these calls never ask for CSV. */
function json<T extends object>(page: T | string): T {
  if (typeof page === "string") throw new ApiError(0, "unexpected_csv", "the server answered CSV where JSON was asked");
  return page;
}
import { INTERVAL_SECONDS } from "./candles";

type Api = Client<paths>;

const PAGE = 5_000;
const MAX_PAGES = 8;

export interface RecentBars {
  bars: BarRow[];
  fetchedAtNs: number;
}

function isoAgo(nowMs: number, seconds: number): string {
  return new Date(nowMs - seconds * 1000).toISOString();
}

async function barsPage(
  api: Api,
  instrument: string,
  interval: Interval,
  start: string | null,
  cursor: string | null,
  limit: number,
  signal?: AbortSignal,
): Promise<Pick<BarsPage, "items" | "next_cursor">> {
  try {
    const page = await unwrap(
      api.GET("/v1/history/bars", {
        params: { query: { instrument, interval, start, cursor, limit } },
        signal,
      }),
    );
    return json<BarsPage>(page);
  } catch (error) {
    // 404: an instrument the platform has never seen (a watchlist may name one no feed
    // streams), which for a chart is simply no bars.
    if (error instanceof ApiError && error.status === 404) return { items: [], next_cursor: null };
    throw error;
  }
}

/** Up to `count` of the newest bars, oldest first. With `searchPast`, a range ending now that
 * is empty is followed by paging through everything recorded (a replayed feed's bars lie in the
 * past). */
export async function recentBars(
  api: Api,
  instrument: string,
  interval: Interval,
  count: number,
  options: { searchPast?: boolean; signal?: AbortSignal } = {},
): Promise<RecentBars> {
  const nowMs = Date.now();
  const fetchedAtNs = nowMs * 1e6;
  const start = isoAgo(nowMs, INTERVAL_SECONDS[interval] * count);
  const first = await barsPage(api, instrument, interval, start, null, Math.min(PAGE, count + 10), options.signal);
  if (first.items.length > 0 || !options.searchPast) {
    return { bars: first.items.slice(-count), fetchedAtNs };
  }
  let kept: BarRow[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const result = await barsPage(api, instrument, interval, null, cursor, PAGE, options.signal);
    kept = kept.concat(result.items).slice(-count);
    cursor = result.next_cursor ?? null;
    if (cursor === null) break;
  }
  return { bars: kept, fetchedAtNs };
}

/** How many bars of `interval` the instrument has, counted up to `upTo`. */
export async function barCount(api: Api, instrument: string, interval: Interval, upTo: number, signal?: AbortSignal): Promise<number> {
  const page = await barsPage(api, instrument, interval, null, null, Math.min(PAGE, upTo), signal);
  return page.items.length;
}

/** The latest trades (of the last minute or so), newest last, at most `count`. */
export async function recentTrades(
  api: Api,
  instrument: string,
  count: number,
  options: { seconds?: number; signal?: AbortSignal } = {},
): Promise<TradeRow[]> {
  const start = isoAgo(Date.now(), options.seconds ?? 60);
  let kept: TradeRow[] = [];
  let cursor: string | null = null;
  try {
    for (let page = 0; page < 4; page += 1) {
      const result: TradesPage = json<TradesPage>(
        await unwrap(
          api.GET("/v1/history/trades", {
            params: { query: { instrument, start, cursor, limit: 2_000 } },
            signal: options.signal,
          }),
        ),
      );
      kept = kept.concat(result.items).slice(-count);
      cursor = result.next_cursor ?? null;
      if (cursor === null) break;
    }
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return kept;
    throw error;
  }
  return kept;
}
