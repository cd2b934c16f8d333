/** Whether an instrument can be forecast at an interval, from what /v1/models says serves:
 * asked before /v1/predictions, so that an instrument the models cannot read (a crypto market
 * without daily bars) or a platform still training its first model is said plainly instead of
 * being asked for, and refused, over and over. The server stays the judge: "ask" may still be
 * refused, and that refusal is shown as it comes. Which intervals can be asked for at all is
 * what /v1/models lists too: each target has models of every interval forecast. */
import { INTERVALS, type Interval, type ServedModelView } from "../api/types";

export type Readiness =
  | { kind: "ask" }
  | { kind: "training"; message: string }
  | { kind: "none"; message: string };

/** interval -> the most bars any serving model of that interval reads. */
export function barsWanted(models: readonly ServedModelView[]): Map<string, number> {
  const wanted = new Map<string, number>();
  for (const model of models) {
    if (model.version === null || model.interval === null || model.bars_needed === null) continue;
    wanted.set(model.interval, Math.max(wanted.get(model.interval) ?? 0, model.bars_needed));
  }
  return wanted;
}

/** The intervals forecast on the platform, shortest first: those the forecast cards offer. */
export function servedIntervals(models: readonly ServedModelView[]): Interval[] {
  const listed = new Set(models.map((model) => model.interval));
  return INTERVALS.filter((interval) => listed.has(interval));
}

/** The interval the forecast cards show: the one chosen while it is forecast, else daily (the
 * API's own default) where it is, else the shortest forecast. */
export function forecastInterval(served: readonly Interval[], chosen: Interval | null): Interval {
  if (chosen !== null && served.includes(chosen)) return chosen;
  return served.includes("1d") ? "1d" : (served[0] ?? "1d");
}

/** Whether the instrument can be forecast at `interval`, by that interval's models. `bars`:
 * interval -> how many bars of the instrument there are (counted up to `barsWanted`). */
export function readiness(models: readonly ServedModelView[], bars: ReadonlyMap<string, number>, interval: Interval): Readiness {
  const ofInterval = models.filter((model) => model.interval === interval);
  const serving = ofInterval.filter((model) => model.version !== null);
  if (serving.length === 0) {
    const refused = ofInterval.map((model) => model.refused).filter((why): why is string => why !== null);
    return {
      kind: "training",
      message: refused.length > 0 ? `no champion can be served: ${refused.join("; ")}` : `no ${interval} champion model is registered yet`,
    };
  }
  const short: string[] = [];
  for (const [interval, needed] of barsWanted(serving)) {
    const have = bars.get(interval) ?? 0;
    if (have >= needed) return { kind: "ask" };
    short.push(`${needed} bars of ${interval} (it has ${have})`);
  }
  return { kind: "none", message: `the models forecast from the latest ${short.join(" or ")}` };
}
