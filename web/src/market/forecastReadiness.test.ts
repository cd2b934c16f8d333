import { describe, expect, it } from "vitest";
import type { Interval, ServedModelView } from "../api/types";
import { barsWanted, forecastInterval, readiness, servedIntervals } from "./forecastReadiness";

function served(
  target: "returns" | "volatility",
  version: string | null,
  bars: number,
  refused: string | null = null,
  interval: Interval = "1d",
): ServedModelView {
  return {
    target,
    model: interval === "1d" ? `finone-${target}` : `finone-${target}-${interval}`,
    interval,
    version,
    horizon: version === null ? null : target === "returns" ? 1 : 5,
    bars_needed: version === null ? null : bars,
    refused,
  };
}

describe("forecast readiness", () => {
  it("says training while no model of the interval serves, and why a registered one is refused", () => {
    expect(readiness([served("returns", null, 0), served("volatility", null, 0)], new Map(), "1d")).toEqual({
      kind: "training",
      message: "no 1d champion model is registered yet",
    });
    const refused = readiness([served("returns", null, 0, "finone-returns v4 has no signature"), served("volatility", null, 0)], new Map(), "1d");
    expect(refused).toEqual({ kind: "training", message: "no champion can be served: finone-returns v4 has no signature" });
  });

  it("asks only when the instrument has the bars the models read", () => {
    const models = [served("returns", "3", 40), served("volatility", "3", 21)];
    expect(barsWanted(models)).toEqual(new Map([["1d", 40]]));
    expect(readiness(models, new Map([["1d", 40]]), "1d")).toEqual({ kind: "ask" });
    expect(readiness(models, new Map([["1d", 39]]), "1d")).toEqual({
      kind: "none",
      message: "the models forecast from the latest 40 bars of 1d (it has 39)",
    });
    expect(readiness(models, new Map(), "1d")).toEqual({ kind: "none", message: "the models forecast from the latest 40 bars of 1d (it has 0)" });
  });

  it("reads each interval by its own models", () => {
    const models = [served("returns", "3", 40), served("volatility", "3", 21), served("returns", "2", 30, null, "1m"), served("volatility", null, 0, null, "1m")];
    expect(barsWanted(models)).toEqual(new Map([["1d", 40], ["1m", 30]]));
    // Minute bars enough for the minute models, and no daily ones: a minute forecast only.
    const minutes = new Map([["1m", 30]]);
    expect(readiness(models, minutes, "1m")).toEqual({ kind: "ask" });
    expect(readiness(models, minutes, "1d")).toEqual({ kind: "none", message: "the models forecast from the latest 40 bars of 1d (it has 0)" });
    expect(readiness([served("returns", "3", 40), served("returns", null, 0, null, "1m")], minutes, "1m")).toEqual({
      kind: "training",
      message: "no 1m champion model is registered yet",
    });
  });
});

describe("forecast intervals", () => {
  const both = [served("returns", "3", 40), served("returns", null, 0, null, "1m"), served("volatility", null, 0, null, "1m")];

  it("lists each interval forecast once, shortest first, whether or not a champion serves yet", () => {
    expect(servedIntervals(both)).toEqual(["1m", "1d"]);
    expect(servedIntervals([])).toEqual([]);
  });

  it("shows the chosen interval while it is forecast, else daily, else the shortest", () => {
    expect(forecastInterval(["1m", "1d"], null)).toBe("1d");
    expect(forecastInterval(["1m", "1d"], "1m")).toBe("1m");
    expect(forecastInterval(["1m", "1d"], "5m")).toBe("1d");
    expect(forecastInterval(["1s", "1m"], null)).toBe("1s");
    // Before /v1/models answers: the API's default.
    expect(forecastInterval([], "1m")).toBe("1d");
  });
});
