import { describe, expect, it } from "vitest";
import type { RetrainStatus } from "../api/types";
import { elapsed, lastRun, runProgress } from "./retraining";

function status(changes: Partial<RetrainStatus>): RetrainStatus {
  return {
    state: "idle",
    detail: "no run yet",
    runs: 0,
    last_run_at: null,
    last_run_duration_s: null,
    decisions: [],
    instruments: ["alpaca:IBM"],
    intervals: ["1d"],
    interval: null,
    started_at: null,
    elapsed_s: null,
    progress: null,
    ...changes,
  };
}

const training = { state: "training", detail: "running (requested)", started_at: 1_764_151_200 } as const;

describe("retraining on the Operations page", () => {
  it("writes times as finone status does", () => {
    expect([elapsed(0.4), elapsed(45), elapsed(72.4), elapsed(599.6), elapsed(3_600), elapsed(7_530)]).toEqual([
      "0s",
      "45s",
      "1m 12s",
      "10m 00s",
      "1h 00m",
      "2h 05m",
    ]);
  });

  it("shows a run's phase, counts, last unit and clock, moving from report to report", () => {
    const first = runProgress(
      status({ ...training, elapsed_s: 72.4, progress: { phase: "search", done: 3, total: 8, unit: "trial 3/8 (gru, 12 epochs)" } }),
    );
    expect(first?.step).toEqual({ phase: "search", done: 3, total: 8, unit: "trial 3/8 (gru, 12 epochs)" });
    expect(first?.text).toBe("search 3 of 8 · trial 3/8 (gru, 12 epochs) done · 1m 12s elapsed");

    const later = runProgress(
      status({ ...training, elapsed_s: 190, progress: { phase: "walk-forward", done: 2, total: 8, unit: "IBM fold 2/4: baselines" } }),
    );
    expect(later?.text).toBe("walk-forward 2 of 8 · IBM fold 2/4: baselines done · 3m 10s elapsed");
  });

  it("shows a run with no step ended yet as starting, its clock already going", () => {
    expect(runProgress(status({ ...training, elapsed_s: 5 }))).toEqual({ step: null, text: "starting · 5s elapsed" });
    expect(runProgress(status({ ...training, elapsed_s: 5, interval: "1m" }))?.text).toBe("1m bars · starting · 5s elapsed");
  });

  it("shows no progress outside a run: idle, waiting for data, failed, or restarted", () => {
    const states = [
      status({ state: "idle", detail: "last run 3f9c (schedule)", runs: 1, last_run_at: 1_764_147_600, last_run_duration_s: 734.6 }),
      status({ state: "waiting", detail: "not enough history: no 1d bars for alpaca:NOPE" }),
      status({ state: "failed", detail: "PlatformError: FINONE_MODEL_SIGNING_KEY is not set" }),
      status({ state: "waiting", detail: "restarted, no run since" }),
    ];
    expect(states.map(runProgress)).toEqual([null, null, null, null]);
  });

  it("says when the last run ended and how long it took, or that there was none", () => {
    expect(lastRun(status({}))).toBe("never");
    const finished = lastRun(status({ last_run_at: 1_764_147_600, last_run_duration_s: 734.6 }));
    expect(finished).toMatch(/2025.*, took 12m 15s$/);
  });
});
