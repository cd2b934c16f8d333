import { createElement } from "react";
import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";
import type { InsightView } from "../api/types";
import type { InsightEvent } from "../live/protocol";
import { InsightCard, insightOf } from "./InsightCard";

const AS_OF = 1_362_096_000_000_000_000; // 2013-03-01 00:00 UTC

const INSIGHT: InsightView = {
  instrument: "alpaca:IBM",
  interval: "1d",
  as_of_ts_ns: AS_OF,
  returns: { model: "finone-returns", version: "3" },
  volatility: { model: "finone-volatility", version: "4" },
  summary: "Volatility typical (78th percentile of the past year); 80% range for the next 1d bar 199.37 to 204.98; no directional edge.",
  findings: [
    {
      kind: "next_bar_range",
      verdict: "range",
      numbers: { close: 202.04, low: 199.37, high: 204.98, low_percent: -1.32, high_percent: 1.45 },
      text: "Over the next 1d bar the model puts an 80% chance on a close between 199.37 and 204.98, -1.3% to +1.4% from the last close of 202.04.",
    },
    {
      kind: "directional_edge",
      verdict: "no_edge",
      numbers: { hit_rate: 0.516, p_value: 0.21 },
      text: "The model has no directional edge: out of sample it called up or down right 51.6% of the time, no better than a coin (p = 0.21), so do not read its median as a call on the direction.",
    },
    {
      kind: "calibration",
      verdict: "not_measured",
      numbers: { coverage_80: null },
      text: "How often outcomes fall inside its 80% ranges was not measured out of sample.",
    },
  ],
};

function render(insight: InsightView): string {
  return renderToStaticMarkup(createElement(InsightCard, { insight }));
}

describe("insight card", () => {
  it("shows the summary and every finding as the API words them", () => {
    const html = render(INSIGHT);

    expect(html).toContain(`<p class="insight-summary">${INSIGHT.summary}</p>`);
    for (const finding of INSIGHT.findings) expect(html).toContain(finding.text);
    expect(html).toContain("finone-returns v3 and finone-volatility v4 on the 1d bar of 2013-03-01 00:00 UTC");
  });

  it("marks in words a finding that warns off the forecast, and only those", () => {
    const html = render(INSIGHT);

    expect(html.match(/Caution: /g)).toHaveLength(1);
    expect(html).toContain('<li class="finding finding-no_edge"><strong class="caution">Caution: </strong>The model has no directional edge');
    expect(html).toContain('<li class="finding finding-not_measured">How often');
  });

  it("names only the models that serve", () => {
    expect(render({ ...INSIGHT, volatility: null })).toContain("Read from finone-returns v3 on the 1d bar");
  });

  it("reads a live-feed event as the endpoint's answer, stamped with its bar", () => {
    const event: InsightEvent = {
      kind: "insight",
      instrument: INSIGHT.instrument,
      exchange_ts_ns: AS_OF,
      receive_ts_ns: AS_OF,
      interval: INSIGHT.interval,
      returns: INSIGHT.returns,
      volatility: INSIGHT.volatility,
      summary: INSIGHT.summary,
      findings: INSIGHT.findings,
    };

    expect(insightOf(event)).toEqual(INSIGHT);
  });
});
