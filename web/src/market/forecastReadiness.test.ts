import { describe, expect, it } from "vitest";
import type { ServedModelView } from "../api/types";
import { barsWanted, readiness } from "./forecastReadiness";

function served(target: "returns" | "volatility", version: string | null, bars: number, refused: string | null = null): ServedModelView {
  return {
    target,
    model: `finone-${target}`,
    version,
    interval: version === null ? null : "1d",
    horizon: version === null ? null : target === "returns" ? 1 : 5,
    bars_needed: version === null ? null : bars,
    refused,
  };
}

describe("forecast readiness", () => {
  it("says training while no model serves, and why a registered one is refused", () => {
    expect(readiness([served("returns", null, 0), served("volatility", null, 0)], new Map())).toEqual({
      kind: "training",
      message: "no champion model is registered yet",
    });
    const refused = readiness([served("returns", null, 0, "finone-returns v4 has no signature"), served("volatility", null, 0)], new Map());
    expect(refused).toEqual({ kind: "training", message: "no champion can be served: finone-returns v4 has no signature" });
  });

  it("asks only when the instrument has the bars the models read", () => {
    const models = [served("returns", "3", 40), served("volatility", "3", 21)];
    expect(barsWanted(models)).toEqual(new Map([["1d", 40]]));
    expect(readiness(models, new Map([["1d", 40]]))).toEqual({ kind: "ask" });
    expect(readiness(models, new Map([["1d", 39]]))).toEqual({
      kind: "none",
      message: "the models forecast from the latest 40 bars of 1d (it has 39)",
    });
    expect(readiness(models, new Map())).toEqual({ kind: "none", message: "the models forecast from the latest 40 bars of 1d (it has 0)" });
  });

  it("asks when one serving model can read the instrument though the other cannot", () => {
    const minutes: ServedModelView = { ...served("volatility", "2", 30), interval: "1m" };
    const models = [served("returns", "3", 40), minutes];
    expect(readiness(models, new Map([["1m", 30]]))).toEqual({ kind: "ask" });
    expect(readiness(models, new Map([["1d", 2], ["1m", 5]]))).toEqual({
      kind: "none",
      message: "the models forecast from the latest 40 bars of 1d (it has 2) or 30 bars of 1m (it has 5)",
    });
  });
});
