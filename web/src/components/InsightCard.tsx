import type { InsightView } from "../api/types";
import type { InsightEvent } from "../live/protocol";

type Verdict = InsightView["findings"][number]["verdict"];

/** Outcomes that tell the reader not to lean on a number: marked in words, not by colour alone. */
const CAUTION: ReadonlySet<Verdict> = new Set<Verdict>(["no_edge", "too_narrow", "too_wide", "no_better"]);

/** The insight a live-feed event carries, as GET /v1/insights answers it. */
export function insightOf(event: InsightEvent): InsightView {
  const { instrument, interval, returns, volatility, summary, findings } = event;
  return { instrument, interval, as_of_ts_ns: event.exchange_ts_ns, returns, volatility, summary, findings };
}

/** A plain-language reading of the instrument beside its forecast: the summary, then each
 * finding in a sentence, as the API words them. */
export function InsightCard({ insight }: { insight: InsightView }) {
  // In UTC, as the chart's times are: a daily bar starts at midnight there.
  const barStart = new Date(insight.as_of_ts_ns / 1e6).toISOString().slice(0, 16).replace("T", " ");
  const models = [insight.returns, insight.volatility]
    .filter((model) => model !== null)
    .map((model) => `${model.model} v${model.version}`);
  return (
    <div className="card insight" aria-live="polite">
      <h2>What the forecast says</h2>
      <p className="insight-summary">{insight.summary}</p>
      <ul className="findings">
        {insight.findings.map((finding) => (
          <li key={finding.kind} className={`finding finding-${finding.verdict}`}>
            {CAUTION.has(finding.verdict) && <strong className="caution">Caution: </strong>}
            {finding.text}
          </li>
        ))}
      </ul>
      <p className="muted small">
        Read from {models.join(" and ")} on the {insight.interval} bar of {barStart} UTC; out-of-sample figures come from the
        models’ training runs.
      </p>
    </div>
  );
}
