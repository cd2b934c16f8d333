/** What the Operations page says of the retrain scheduler: how far its run is (a progress bar and
 * a line of text) and how long the last one took. The times are the server's, taken when it
 * answered: the browser's clock, which may be off, plays no part. */
import type { RetrainProgressView, RetrainStatus } from "../api/types";
import { dateTime } from "../market/format";

/** "45s", "1m 12s", "2h 05m", as `finone status` writes them. */
export function elapsed(seconds: number): string {
  const whole = Math.round(seconds);
  const hours = Math.floor(whole / 3_600);
  const minutes = Math.floor((whole % 3_600) / 60);
  const secs = whole % 60;
  const two = (n: number) => String(n).padStart(2, "0");
  if (hours > 0) return `${hours}h ${two(minutes)}m`;
  return minutes > 0 ? `${minutes}m ${two(secs)}s` : `${secs}s`;
}

export interface RunProgress {
  /** The run's latest step; null until its first one ends (the bar then only says it runs). */
  step: RetrainProgressView | null;
  text: string;
}

/** The run in progress, or null when none is. */
export function runProgress(status: RetrainStatus): RunProgress | null {
  if (status.state !== "training" || status.elapsed_s == null) return null;
  const clock = `${elapsed(status.elapsed_s)} elapsed`;
  const bars = status.interval ? `${status.interval} bars · ` : "";
  const step = status.progress ?? null;
  if (step === null) return { step, text: `${bars}starting · ${clock}` };
  return { step, text: `${bars}${step.phase} ${step.done} of ${step.total} · ${step.unit} done · ${clock}` };
}

/** When the last finished run ended and how long it took; "never" before the first. */
export function lastRun(status: RetrainStatus): string {
  if (status.last_run_at === null) return "never";
  const ended = dateTime(new Date(status.last_run_at * 1000).toISOString());
  return status.last_run_duration_s === null ? ended : `${ended}, took ${elapsed(status.last_run_duration_s)}`;
}
