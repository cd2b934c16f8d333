import { duration, symbolOf } from "./format";

/** An alert's condition in words: "crosses above 100000.5", "moves 2.5% within 1 h". */
export function conditionText(condition: string, threshold: string, windowS: number | null | undefined): string {
  switch (condition) {
    case "crosses_above":
      return `crosses above ${threshold}`;
    case "crosses_below":
      return `crosses below ${threshold}`;
    case "percent_move":
      return `moves ${threshold}% within ${windowS ? duration(windowS) : "its window"}`;
    default:
      return `${condition} ${threshold}`;
  }
}

export function firedText(alert: { instrument: string; condition: string; threshold: string; price: string; window_s?: number | null }): string {
  const past = conditionText(alert.condition, alert.threshold, alert.window_s)
    .replace(/^crosses/, "crossed")
    .replace(/^moves/, "moved");
  return `${symbolOf(alert.instrument)} ${past}: now ${alert.price}`;
}
