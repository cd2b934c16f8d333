/**
 * Candles, volume and the forecast fan, drawn with lightweight-charts (only pages that chart
 * load this module, and with it the library).
 */
import {
  CandlestickSeries,
  ColorType,
  HistogramSeries,
  LineSeries,
  LineStyle,
  createChart,
  type CandlestickData,
  type HistogramData,
  type IChartApi,
  type ISeriesApi,
  type LineData,
  type UTCTimestamp,
} from "lightweight-charts";
import { useEffect, useRef } from "react";
import type { Candle, CandleSeries } from "../market/candles";

export interface Fan {
  /** Seconds: the last candle's time, and when the forecast horizon ends. */
  from: number;
  to: number;
  base: number;
  q10: number;
  q50: number;
  q90: number;
}

interface Drawn {
  chart: IChartApi;
  candles: ISeriesApi<"Candlestick">;
  volume: ISeriesApi<"Histogram">;
  fan: Array<ISeriesApi<"Line">>;
  lastTime: number | null;
  /** Nothing drawn yet: the next draw is a full one. */
  fresh: boolean;
}

function cssColor(name: string, fallback: string): string {
  const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return value || fallback;
}

const ts = (seconds: number) => seconds as UTCTimestamp;

export default function CandleChart({
  series,
  version,
  fan,
  label,
}: {
  series: CandleSeries;
  /** Changes whenever `series` changed. */
  version: number;
  fan: Fan | null;
  label: string;
}) {
  const container = useRef<HTMLDivElement>(null);
  const drawn = useRef<Drawn | null>(null);

  useEffect(() => {
    const element = container.current;
    if (element === null) return undefined;
    const up = cssColor("--up", "#1a7f37");
    const down = cssColor("--down", "#cf222e");
    const text = cssColor("--fg", "#1f2328");
    const grid = cssColor("--grid", "rgba(128,128,128,0.15)");
    const chart = createChart(element, {
      autoSize: true,
      layout: {
        background: { type: ColorType.Solid, color: "transparent" },
        textColor: text,
        fontFamily: getComputedStyle(document.body).fontFamily,
        // The logo brings an inline <style> element the page's CSP refuses; the credit the
        // library's licence asks for is the ChartCredit link beside the chart instead.
        attributionLogo: false,
      },
      grid: { vertLines: { color: grid }, horzLines: { color: grid } },
      timeScale: { timeVisible: series.intervalS < 86_400, secondsVisible: series.intervalS < 60, rightOffset: 4 },
      rightPriceScale: { scaleMargins: { top: 0.08, bottom: 0.28 } },
    });
    // Up candles hollow, down candles filled: told apart without colour too.
    const candles = chart.addSeries(CandlestickSeries, {
      upColor: "rgba(0,0,0,0)",
      borderUpColor: up,
      wickUpColor: up,
      downColor: down,
      borderDownColor: down,
      wickDownColor: down,
      priceLineVisible: true,
    });
    const volume = chart.addSeries(HistogramSeries, {
      priceFormat: { type: "volume" },
      priceScaleId: "volume",
      color: cssColor("--volume", "rgba(110,118,129,0.45)"),
      lastValueVisible: false,
      priceLineVisible: false,
    });
    chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.78, bottom: 0 } });
    const fanColor = cssColor("--accent", "#0969da");
    const fanSeries = (["q90", "q50", "q10"] as const).map((title) =>
      chart.addSeries(LineSeries, {
        color: fanColor,
        lineWidth: title === "q50" ? 2 : 1,
        lineStyle: title === "q50" ? LineStyle.Solid : LineStyle.Dashed,
        priceLineVisible: false,
        lastValueVisible: true,
        crosshairMarkerVisible: false,
        title: { q90: "90%", q50: "50%", q10: "10%" }[title],
      }),
    );
    drawn.current = { chart, candles, volume, fan: fanSeries, lastTime: null, fresh: true };
    return () => {
      drawn.current = null;
      chart.remove();
    };
  }, [series]);

  useEffect(() => {
    const view = drawn.current;
    if (view === null) return;
    const taken = series.takeChanges();
    const changes = view.fresh ? { reset: true, from: null } : taken;
    view.fresh = false;
    const all = series.candles();
    const last = all[all.length - 1];
    const candleOf = (c: Candle): CandlestickData => ({ time: ts(c.time), open: c.open, high: c.high, low: c.low, close: c.close });
    const volumeOf = (c: Candle): HistogramData => ({ time: ts(c.time), value: c.volume });
    const incremental =
      !changes.reset && view.lastTime !== null && changes.from !== null && changes.from >= view.lastTime;
    if (incremental) {
      for (const candle of all.slice(all.findIndex((c) => c.time >= (changes.from as number)))) {
        view.candles.update(candleOf(candle));
        view.volume.update(volumeOf(candle));
      }
    } else if (changes.reset || changes.from !== null) {
      view.candles.setData(all.map(candleOf));
      view.volume.setData(all.map(volumeOf));
      if (changes.reset) view.chart.timeScale().fitContent();
    }
    view.lastTime = last ? last.time : null;
  }, [series, version]);

  useEffect(() => {
    const view = drawn.current;
    if (view === null) return;
    const [q90, q50, q10] = view.fan;
    if (fan === null || fan.to <= fan.from) {
      for (const line of view.fan) line.setData([]);
      return;
    }
    const line = (q: number): LineData[] => [
      { time: ts(fan.from), value: fan.base },
      { time: ts(fan.to), value: fan.base * Math.exp(q) },
    ];
    q90?.setData(line(fan.q90));
    q50?.setData(line(fan.q50));
    q10?.setData(line(fan.q10));
  }, [fan, series]);

  return (
    <>
      <div ref={container} className="chart" role="img" aria-label={label} />
      <p className="muted small chart-credit">
        Charts by{" "}
        <a href="https://www.tradingview.com/" target="_blank" rel="noopener noreferrer">
          TradingView Lightweight Charts™
        </a>
        , © TradingView, Inc.
      </p>
    </>
  );
}
