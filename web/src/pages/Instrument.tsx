import { Suspense, lazy, useEffect, useMemo, useRef, useState } from "react";
import { ApiError, messageOf, unwrap } from "../api/errors";
import { INTERVALS, type InsightView, type Interval, type PredictionView, type TradeRow } from "../api/types";
import { api } from "../app/services";
import { Change, ErrorText, FeedState, Loading, VenueLabel } from "../components/common";
import type { Fan } from "../components/CandleChart";
import { InsightCard, insightOf } from "../components/InsightCard";
import { useFeed, useLoad, useRedraw, useTitle } from "../lib/hooks";
import { Link, navigate, useLocation } from "../lib/router";
import type { FeedItem, FeedSpec } from "../live/feedClient";
import type { BarEvent, TradeEvent } from "../live/protocol";
import { CandleSeries, INTERVAL_SECONDS } from "../market/candles";
import { decimalsOf, duration, fixed, percent, symbolOf, timeOfNs, venueOf, dateTimeOfNs } from "../market/format";
import { barCount, recentBars, recentTrades } from "../market/history";
import { barsWanted, forecastInterval, readiness, servedIntervals } from "../market/forecastReadiness";
import { OrderBook, type Ladder } from "../market/orderBook";

const CandleChart = lazy(() => import("../components/CandleChart"));

const HISTORY_BARS = 500;
const TAPE_LENGTH = 50;
const TRADE_LOG = 50_000;
const BOOK_DEPTH = 20;
// The page redraws at most this often: ten times a second reads as live, and a flood of book
// updates then costs the main thread their bookkeeping, not a render each.
const DISPLAY_EVERY_MS = 100;
/** Without a chosen interval, the first of these with recorded bars is shown. */
const AUTO_INTERVALS: readonly Interval[] = ["1m", "1h", "1d"];
/** The fan is drawn when its horizon spans at most this many candles of the chart. */
const FAN_MAX_CANDLES = 300;

interface TapeTrade {
  id: string;
  ts: number;
  price: string;
  size: string;
  side: "buy" | "sell" | null;
}

function isInterval(value: string | null): value is Interval {
  return value !== null && (INTERVALS as readonly string[]).includes(value);
}

function tapeOf(row: TradeRow): TapeTrade {
  return { id: row.trade_id, ts: row.exchange_ts_ns, price: row.price, size: row.size, side: row.side };
}

export default function Instrument({ instrument }: { instrument: string }) {
  useTitle(symbolOf(instrument));
  const { search } = useLocation();
  const chosen = search.get("interval");
  const explicit = isInterval(chosen) ? chosen : null;
  const redraw = useRedraw(DISPLAY_EVERY_MS);

  // Everything live is kept in refs and drawn at most every DISPLAY_EVERY_MS.
  const trades = useRef<TradeEvent[]>([]);
  const bars = useRef<BarEvent[]>([]);
  const book = useRef(new OrderBook());
  const tape = useRef<TapeTrade[]>([]);
  const [series, setSeries] = useState(() => new CandleSeries(explicit ?? "1m"));
  const [version, setVersion] = useState(0);
  // Live candle changes since the chart was last drawn, and how many draws carried some.
  const candlesMoved = useRef(false);
  const liveDraws = useRef(0);
  const [historyError, setHistoryError] = useState<string | null>(null);
  const [historyLoading, setHistoryLoading] = useState(true);
  const [quote, setQuote] = useState<{ bid: string | null; ask: string | null } | null>(null);
  const [forecast, setForecast] = useState<PredictionView | null>(null);
  const [insight, setInsight] = useState<InsightView | null>(null);
  // The forecast cards' interval: the one the user picked among those forecast (daily first).
  const [served, setServed] = useState<readonly Interval[]>([]);
  const [pickedForecast, setPickedForecast] = useState<Interval | null>(null);
  const modelInterval = forecastInterval(served, pickedForecast);
  useEffect(() => {
    setForecast(null);
    setInsight(null);
  }, [instrument, modelInterval]);
  const [gaps, setGaps] = useState<string[]>([]);

  const meta = useLoad((signal) => unwrap(api.GET("/v1/instruments", { signal })), []);
  const info = meta.data?.instruments.find((item) => item.instrument === instrument);

  // History for the chart, then whatever arrived live meanwhile on top of it.
  useEffect(() => {
    const controller = new AbortController();
    setHistoryLoading(true);
    setHistoryError(null);
    const candidates = explicit ? [explicit] : AUTO_INTERVALS;
    void (async () => {
      try {
        for (const [index, interval] of candidates.entries()) {
          const isLast = index === candidates.length - 1;
          const recent = await recentBars(api, instrument, interval, HISTORY_BARS, {
            searchPast: explicit !== null || interval === "1d",
            signal: controller.signal,
          });
          if (recent.bars.length === 0 && !isLast) continue;
          const next = new CandleSeries(recent.bars.length === 0 && !explicit ? "1m" : interval);
          next.setHistory(next.interval === interval ? recent.bars : [], recent.fetchedAtNs);
          for (const bar of bars.current) if (bar.interval === next.interval) next.applyBar(bar, bar.exchange_ts_ns);
          for (const trade of trades.current) next.applyTrade(trade);
          if (controller.signal.aborted) return;
          setSeries(next);
          setVersion((v) => v + 1);
          break;
        }
      } catch (error) {
        if (!controller.signal.aborted) setHistoryError(messageOf(error));
      } finally {
        if (!controller.signal.aborted) setHistoryLoading(false);
      }
    })();
    return () => controller.abort();
  }, [instrument, explicit]);

  // The tape starts from the last minute of recorded trades.
  useEffect(() => {
    const controller = new AbortController();
    tape.current = [];
    recentTrades(api, instrument, TAPE_LENGTH, { signal: controller.signal }).then(
      (rows) => {
        const seen = new Set(tape.current.map((t) => t.id));
        tape.current = [...tape.current, ...rows.filter((row) => !seen.has(row.trade_id)).map(tapeOf).reverse()]
          .sort((a, b) => b.ts - a.ts)
          .slice(0, TAPE_LENGTH);
        redraw();
      },
      () => undefined, // the live tape fills in anyway
    );
    return () => controller.abort();
  }, [instrument, redraw]);

  const spec = useMemo<FeedSpec>(() => ({ instruments: [instrument], channels: ["trades", "quotes", "book", "bars"] }), [instrument]);
  const modelSpec = useMemo<FeedSpec>(
    () => ({ instruments: [instrument], channels: ["predictions", "insights"], intervals: [modelInterval] }),
    [instrument, modelInterval],
  );
  useFeed(modelSpec, (items: FeedItem[]) => {
    for (const item of items) {
      if (item.kind !== "event") continue;
      if (item.event.kind === "forecast") {
        const { instrument: of, receive_ts_ns, returns, volatility } = item.event;
        setForecast({ instrument: of, made_at_ns: receive_ts_ns, returns, volatility });
      } else if (item.event.kind === "insight") {
        setInsight(insightOf(item.event));
      }
    }
  });
  const status = useFeed(spec, (items: FeedItem[]) => {
    let candles = false;
    for (const item of items) {
      if (item.kind === "gap") {
        const [channel] = item.stream.split(":");
        if (channel === "book") book.current.reset();
        setGaps((current) => [...current.slice(-2), `${channel ?? item.stream}: ${item.reason}`]);
        continue;
      }
      const event = item.event;
      switch (event.kind) {
        case "trade":
          trades.current.push(event);
          if (trades.current.length > TRADE_LOG) trades.current.splice(0, trades.current.length - TRADE_LOG);
          if (series.loaded) series.applyTrade(event);
          candles = true;
          if (!tape.current.some((t) => t.id === event.trade_id)) {
            tape.current.unshift({ id: event.trade_id, ts: event.exchange_ts_ns, price: event.price, size: event.size, side: event.side ?? null });
            if (tape.current.length > TAPE_LENGTH) tape.current.length = TAPE_LENGTH;
          }
          break;
        case "bar":
          bars.current.push(event);
          if (bars.current.length > 5_000) bars.current.shift();
          if (series.loaded && event.interval === series.interval) {
            series.applyBar(event, event.exchange_ts_ns);
            candles = true;
          }
          break;
        case "book_snapshot":
          book.current.snapshot(event.bids, event.asks);
          break;
        case "book_delta":
          book.current.delta(event.bids, event.asks);
          break;
        case "gap":
          book.current.reset();
          setGaps((current) => [...current.slice(-2), `${symbolOf(instrument)}: ${event.reason}`]);
          break;
        case "quote":
          setQuote({ bid: event.bid_price, ask: event.ask_price });
          break;
        default:
          break;
      }
    }
    // The chart follows at the page's display rate too: its version moves with the next draw.
    if (candles) candlesMoved.current = true;
    redraw();
  });

  if (candlesMoved.current) {
    candlesMoved.current = false;
    liveDraws.current += 1;
  }
  const last = series.last();
  const first = series.candles()[0];
  const ladder = book.current.ladder(BOOK_DEPTH);
  const lastPrice = tape.current[0]?.price ?? (last ? String(last.close) : null);
  // Once the instrument has a forecast it has an insight: asked for once, then the live feed
  // brings each new one (a new bar or model).
  const forecastShown = forecast !== null;
  useEffect(() => {
    if (!forecastShown) return undefined;
    const controller = new AbortController();
    unwrap(api.GET("/v1/insights", { params: { query: { instrument, interval: modelInterval } }, signal: controller.signal })).then(
      (view) => setInsight((live) => (live !== null && live.as_of_ts_ns >= view.as_of_ts_ns ? live : view)),
      () => undefined, // the forecast's panel already says why the models cannot read it
    );
    return () => controller.abort();
  }, [instrument, modelInterval, forecastShown]);

  const fanNow = fanOf(forecast, series);
  const fanKey = fanNow === null ? "" : Object.values(fanNow).join(",");
  const fan = useMemo(() => fanNow, [fanKey, series]);

  function chooseInterval(interval: Interval) {
    navigate(`${window.location.pathname}?interval=${interval}`, { replace: true });
  }

  return (
    <section aria-labelledby="instrument-title" className="instrument">
      <p className="breadcrumbs">
        <Link to="/markets">Markets</Link> › {instrument}
      </p>
      <div className="page-head">
        <h1 id="instrument-title" tabIndex={-1}>
          {symbolOf(instrument)} <span className="muted small">{venueOf(instrument)}</span>
        </h1>
        <dl className="facts">
          <div>
            <dt>Venue</dt>
            <dd>
              <VenueLabel venue={info?.venue ?? venueOf(instrument)} />
            </dd>
          </div>
          <div>
            <dt>Feed</dt>
            <dd>{info ? <FeedState state={info.state} /> : "—"}</dd>
          </div>
          <div>
            <dt>Last</dt>
            <dd className="num">{lastPrice ?? "—"}</dd>
          </div>
          <div>
            <dt>Change</dt>
            <dd className="num">
              <Change
                delta={last && first ? last.close - first.open : null}
                base={first ? first.open : null}
                decimals={decimalsOf(lastPrice)}
              />
            </dd>
          </div>
          <div>
            <dt>Bid / Ask</dt>
            <dd className="num">
              {quote?.bid ?? "—"} / {quote?.ask ?? "—"}
            </dd>
          </div>
        </dl>
      </div>
      {meta.data && !info && <p className="muted">This instrument is not streamed right now; only its history is shown.</p>}
      {status.state === "error" && <ErrorText error={`Live feed: ${status.message}`} />}
      {gaps.length > 0 && (
        <div className="notice" role="status">
          <p>Some live events were missed: {gaps.join("; ")}. Candles and the book may be incomplete until they resync.</p>
          <button type="button" className="link-button" onClick={() => setGaps([])}>
            Dismiss
          </button>
        </div>
      )}

      <div className="instrument-grid">
        <div className="card chart-card">
          <div className="card-head">
            <h2>Price</h2>
            <div role="group" aria-label="Interval" className="segmented">
              {INTERVALS.map((interval) => (
                <button
                  key={interval}
                  type="button"
                  aria-pressed={series.interval === interval}
                  onClick={() => chooseInterval(interval)}
                >
                  {interval}
                </button>
              ))}
            </div>
          </div>
          <ErrorText error={historyError} />
          {historyLoading && <Loading what="price history" />}
          <Suspense fallback={<Loading what="the chart" />}>
            <CandleChart
              series={series}
              version={version + liveDraws.current}
              fan={fan}
              label={chartLabel(instrument, series, fan)}
            />
          </Suspense>
          {!historyLoading && series.candles().length === 0 && (
            <p className="muted">No {series.interval} bars are recorded for this instrument yet; candles build from live trades as they come.</p>
          )}
          <p className="muted small">Times in UTC. Hollow candles closed up, filled ones down; the dashed lines are the forecast’s 10% and 90% quantiles, the solid one its median.</p>
        </div>

        <ForecastPanel
          instrument={instrument}
          interval={modelInterval}
          served={served}
          onServed={setServed}
          onPick={setPickedForecast}
          live={forecast}
          onLoaded={setForecast}
          series={series}
        />

        {insight && <InsightCard insight={insight} />}

        <div className="card">
          <h2>Order book</h2>
          <OrderBookView ladder={ladder} />
        </div>

        <div className="card">
          <h2>Trades</h2>
          <TradeTape trades={tape.current} />
        </div>
      </div>
    </section>
  );
}

function chartLabel(instrument: string, series: CandleSeries, fan: Fan | null): string {
  const last = series.last();
  if (!last) return `Candlestick chart of ${instrument}, ${series.interval} candles: no data yet`;
  const candles = `Candlestick chart of ${instrument}, ${series.candles().length} candles of ${series.interval}; latest: open ${last.open}, high ${last.high}, low ${last.low}, close ${last.close}, volume ${fixed(last.volume, 4)}`;
  if (fan === null) return candles;
  // The fan is only lines on a canvas: its numbers are said here too.
  const at = (q: number) => fixed(fan.base * Math.exp(q), Math.max(2, decimalsOf(String(fan.base))));
  return `${candles}; forecast fan to ${new Date(fan.to * 1000).toISOString().slice(0, 16).replace("T", " ")} UTC: 10% ${at(fan.q10)}, median ${at(fan.q50)}, 90% ${at(fan.q90)}`;
}

function fanOf(forecast: PredictionView | null, series: CandleSeries): Fan | null {
  const returns = forecast?.returns;
  const last = series.last();
  if (!returns || !last) return null;
  const modelS = INTERVAL_SECONDS[returns.interval as Interval] ?? null;
  if (modelS === null) return null;
  const horizonS = returns.horizon * modelS;
  if (horizonS / series.intervalS > FAN_MAX_CANDLES) return null;
  return { from: last.time, to: last.time + Math.max(horizonS, series.intervalS), base: last.close, q10: returns.q10, q50: returns.q50, q90: returns.q90 };
}

type ForecastState =
  | { kind: "loading" }
  | { kind: "ready" }
  | { kind: "training"; message: string }
  | { kind: "unavailable"; message: string }
  /** The models cannot forecast this instrument (no bars of their interval, too few). */
  | { kind: "none"; message: string }
  | { kind: "error"; message: string };

function ForecastPanel({
  instrument,
  interval,
  served,
  onServed,
  onPick,
  live,
  onLoaded,
  series,
}: {
  instrument: string;
  /** Whose models forecast here, among the `served` intervals (`onServed` says them). */
  interval: Interval;
  served: readonly Interval[];
  onServed: (update: (current: readonly Interval[]) => readonly Interval[]) => void;
  onPick: (interval: Interval) => void;
  live: PredictionView | null;
  onLoaded: (view: PredictionView | null) => void;
  series: CandleSeries;
}) {
  const [state, setState] = useState<ForecastState>({ kind: "loading" });
  const [round, setRound] = useState(0);

  useEffect(() => {
    const controller = new AbortController();
    let retry: ReturnType<typeof setTimeout> | null = null;
    const signal = controller.signal;
    const again = (waitS: number) => {
      retry = setTimeout(() => setRound((r) => r + 1), waitS * 1000);
    };
    const ask = async (): Promise<void> => {
      const { models } = await unwrap(api.GET("/v1/models", { signal }));
      const listed = servedIntervals(models);
      onServed((current) => (current.join() === listed.join() ? current : listed));
      const bars = new Map<string, number>();
      for (const [read, needed] of barsWanted(models.filter((model) => model.interval === interval))) {
        const known = INTERVALS.find((name) => name === read);
        bars.set(read, known === undefined ? 0 : await barCount(api, instrument, known, needed, signal));
      }
      const ready = readiness(models, bars, interval);
      if (ready.kind !== "ask") {
        setState(ready);
        // A champion arrives after training; bars accumulate as the feed records them.
        again(ready.kind === "training" ? 30 : 60);
        return;
      }
      const view = await unwrap(api.GET("/v1/predictions", { params: { query: { instrument, interval } }, signal }));
      onLoaded(view);
      setState({ kind: "ready" });
    };
    ask().catch((error: unknown) => {
      if (signal.aborted) return;
      if (error instanceof ApiError && error.code === "model_unavailable") {
        setState({ kind: "training", message: error.message });
      } else if (error instanceof ApiError && (error.code === "unknown_instrument" || error.code === "insufficient_history")) {
        setState({ kind: "none", message: error.message });
      } else if (error instanceof ApiError && (error.code === "service_unavailable" || error.status === 503)) {
        setState({ kind: "unavailable", message: error.message });
      } else {
        setState({ kind: "error", message: messageOf(error) });
        return;
      }
      // Once a champion exists its forecasts also arrive on the live feed (channel
      // predictions), so the endpoints are asked again only now and then.
      again(error instanceof ApiError && error.retryAfterS ? Math.min(120, error.retryAfterS) : 30);
    });
    return () => {
      controller.abort();
      if (retry !== null) clearTimeout(retry);
    };
  }, [instrument, interval, round, onLoaded, onServed]);

  const view = live;
  const returns = view?.returns ?? null;
  const volatility = view?.volatility ?? null;
  const training = view === null ? state.kind === "training" : returns === null;

  return (
    <div className="card forecast" aria-live="polite">
      <div className="card-head">
        <h2>Forecast</h2>
        {served.length > 1 && (
          <div role="group" aria-label="Forecast interval" className="segmented">
            {served.map((option) => (
              <button key={option} type="button" aria-pressed={option === interval} onClick={() => onPick(option)}>
                {option}
              </button>
            ))}
          </div>
        )}
      </div>
      {state.kind === "loading" && view === null && <Loading what="the forecast" />}
      {training && <p className="training">Training the first model…</p>}
      {training && state.kind === "training" && <p className="muted small">{state.message}.</p>}
      {state.kind === "unavailable" && view === null && <p className="muted">Forecasts are unavailable right now ({state.message}); retrying.</p>}
      {state.kind === "none" && view === null && <p className="muted">No forecast for this instrument: {state.message}.</p>}
      {state.kind === "error" && view === null && <ErrorText error={state.message} />}
      {returns && (
        <>
          <p className="forecast-headline">
            <span className={returns.prob_up >= 0.5 ? "change change-up" : "change change-down"}>
              <span aria-hidden="true">{returns.prob_up >= 0.5 ? "▲ " : "▼ "}</span>
              {Math.round(returns.prob_up * 100)}% chance up
            </span>{" "}
            over the next {returns.horizon === 1 ? "bar" : `${returns.horizon} bars`} of {returns.interval}
          </p>
          <table className="compact">
            <caption className="visually-hidden">Forecast return quantiles</caption>
            <thead>
              <tr>
                <th scope="col">Quantile</th>
                <th scope="col" className="num">
                  Return
                </th>
                <th scope="col" className="num">
                  Price
                </th>
              </tr>
            </thead>
            <tbody>
              {(
                [
                  ["90%", returns.q90],
                  ["50% (median)", returns.q50],
                  ["10%", returns.q10],
                ] as const
              ).map(([name, q]) => {
                const base = series.last()?.close;
                return (
                  <tr key={name}>
                    <th scope="row">{name}</th>
                    <td className="num">{percent((Math.exp(q) - 1) * 100)}</td>
                    <td className="num">{base ? fixed(base * Math.exp(q), Math.max(2, decimalsOf(String(base)))) : "—"}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
          {fanOf(view, series) === null && series.last() && (
            <p className="muted small">
              The fan is drawn on charts of {returns.interval} or nearby intervals (its horizon is {duration(returns.horizon * (INTERVAL_SECONDS[returns.interval as Interval] ?? 0))}).
            </p>
          )}
        </>
      )}
      {volatility && (
        <p>
          Next volatility: <strong>{fixed(volatility.volatility * 100, 2)}%</strong> over {volatility.horizon} bars of {volatility.interval}
        </p>
      )}
      {view && (
        <dl className="facts small">
          {returns && (
            <div>
              <dt>Returns model</dt>
              <dd>
                {returns.model} v{returns.version}
              </dd>
            </div>
          )}
          {volatility && (
            <div>
              <dt>Volatility model</dt>
              <dd>
                {volatility.model} v{volatility.version}
              </dd>
            </div>
          )}
          <div>
            <dt>Made</dt>
            <dd>{dateTimeOfNs(view.made_at_ns)}</dd>
          </div>
        </dl>
      )}
    </div>
  );
}

function OrderBookView({ ladder }: { ladder: Ladder }) {
  if (ladder.bids.length === 0 && ladder.asks.length === 0) {
    // The live feed sends a new subscriber the book as it stands, so this lasts only until the
    // first event: longer, the venue streams no book (or the feed just lost it).
    return <p className="muted">Waiting for the order book… (not every venue streams one)</p>;
  }
  const deepest = Math.max(ladder.bids[ladder.bids.length - 1]?.total ?? 0, ladder.asks[ladder.asks.length - 1]?.total ?? 0) || 1;
  const decimals = decimalsOf(ladder.asks[0]?.price ?? ladder.bids[0]?.price);
  return (
    <>
      <p className="spread">
        Spread: <strong>{ladder.spread === null ? "—" : fixed(ladder.spread, decimals)}</strong>
        {ladder.spreadBps !== null && <span className="muted"> ({fixed(ladder.spreadBps, 1)} bps)</span>}
        {!ladder.complete && <span className="muted"> · partial book: updates since a gap, until the venue’s next full snapshot</span>}
      </p>
      <div className="book">
        {(["bids", "asks"] as const).map((side) => (
          <table key={side} className={`compact book-${side}`}>
            <caption>{side === "bids" ? "Bids (buyers)" : "Asks (sellers)"}</caption>
            <thead>
              <tr>
                <th scope="col" className="num">
                  Price
                </th>
                <th scope="col" className="num">
                  Size
                </th>
                <th scope="col" className="num">
                  Total
                </th>
              </tr>
            </thead>
            <tbody>
              {ladder[side].map((level) => (
                <tr key={level.price} style={{ ["--depth" as string]: `${Math.round((level.total / deepest) * 100)}%` }}>
                  <td className="num">{level.price}</td>
                  <td className="num">{level.size}</td>
                  <td className="num">{fixed(level.total, 4)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ))}
      </div>
    </>
  );
}

function TradeTape({ trades }: { trades: readonly TapeTrade[] }) {
  if (trades.length === 0) return <p className="muted">No trades yet.</p>;
  return (
    <div className="table-wrap tape">
      <table className="compact">
        <caption className="visually-hidden">Latest trades, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col" className="num">
              Price
            </th>
            <th scope="col" className="num">
              Size
            </th>
            <th scope="col">Side</th>
          </tr>
        </thead>
        <tbody>
          {trades.map((trade) => (
            <tr key={trade.id}>
              <td>{timeOfNs(trade.ts)}</td>
              <td className="num">{trade.price}</td>
              <td className="num">{trade.size}</td>
              <td>
                {trade.side === "buy" ? (
                  <span className="change change-up">
                    <span aria-hidden="true">▲ </span>Buy
                  </span>
                ) : trade.side === "sell" ? (
                  <span className="change change-down">
                    <span aria-hidden="true">▼ </span>Sell
                  </span>
                ) : (
                  "—"
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
