import { useMemo, useState } from "react";
import { unwrap } from "../api/errors";
import { api } from "../app/services";
import { ErrorText, Loading } from "../components/common";
import { MarketBoard } from "../components/MarketBoard";
import { useInterval, useLoad, useTitle } from "../lib/hooks";
import type { FeedSpec } from "../live/feedClient";

/** At most this many instruments stream live at once (the feed allows 500 streams a
 * connection, three each here, and the other pages need some). */
const LIVE_LIMIT = 150;

/** Every instrument being streamed, live. */
export default function Markets() {
  useTitle("Markets");
  const instruments = useLoad((signal) => unwrap(api.GET("/v1/instruments", { signal })), []);
  useInterval(instruments.reload, 15_000);
  const [filter, setFilter] = useState("");

  const all = instruments.data?.instruments ?? [];
  const needle = filter.trim().toLowerCase();
  const shown = needle
    ? all.filter((item) => `${item.instrument} ${item.venue} ${item.symbol} ${item.state}`.toLowerCase().includes(needle))
    : all;
  const liveIds = all.slice(0, LIVE_LIMIT).map((item) => item.instrument);
  const liveKey = liveIds.join(",");
  const spec = useMemo<FeedSpec | null>(
    () => (liveIds.length ? { instruments: liveIds, channels: ["trades", "quotes", "bars"] } : null),
    [liveKey],
  );

  return (
    <section aria-labelledby="markets-title">
      <div className="page-head">
        <h1 id="markets-title" tabIndex={-1}>
          Markets
        </h1>
        <div className="field-inline">
          <label htmlFor="markets-filter">Filter</label>
          <input
            id="markets-filter"
            type="search"
            placeholder="BTC, binance, live…"
            value={filter}
            onChange={(event) => setFilter(event.target.value)}
          />
        </div>
      </div>
      {instruments.data === undefined && instruments.loading && <Loading what="instruments" />}
      <ErrorText error={instruments.error} />
      {instruments.data !== undefined && all.length === 0 && (
        <p className="muted">No instrument is being streamed yet: the feeds are starting or none is configured.</p>
      )}
      {all.length > LIVE_LIMIT && (
        <p className="muted">The first {LIVE_LIMIT} instruments update live; open an instrument for the others.</p>
      )}
      {all.length > 0 && (
        <>
          <MarketBoard
            items={all.map((item) => ({ instrument: item.instrument, venue: item.venue, state: item.state }))}
            shown={new Set(shown.map((item) => item.instrument))}
            spec={spec}
            caption={`${shown.length} of ${all.length} instruments. Change is since the start of each trend line.`}
          />
          {shown.length === 0 && <p className="muted">Nothing matches “{filter}”.</p>}
        </>
      )}
    </section>
  );
}
