/** Display helpers. Prices and sizes are shown as the exchange wrote them; numbers derived from
 * them (changes, spreads) are formatted with as many decimals as the price has. */

export type Direction = "up" | "down" | "flat";

export function decimalsOf(text: string | null | undefined): number {
  if (!text) return 2;
  const dot = text.indexOf(".");
  return dot < 0 ? 0 : Math.min(10, text.length - dot - 1);
}

export function direction(delta: number | null | undefined): Direction {
  if (delta === null || delta === undefined || !Number.isFinite(delta) || delta === 0) return "flat";
  return delta > 0 ? "up" : "down";
}

const MINUS = "\u2212";

/** "+1.25", "−0.50", "0.00": the sign is always written. */
export function signed(value: number, decimals: number): string {
  const text = Math.abs(value).toFixed(decimals);
  if (Number(text) === 0) return text;
  return `${value > 0 ? "+" : MINUS}${text}`;
}

export function percent(value: number, decimals = 2): string {
  return `${signed(value, decimals)}%`;
}

export function fixed(value: number | null | undefined, decimals = 2): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  return value.toLocaleString(undefined, { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

export function compact(value: number | null | undefined, decimals = 1): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  return value.toLocaleString(undefined, { maximumFractionDigits: decimals });
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

export function timeOfNs(ns: number): string {
  return timeFormat.format(new Date(ns / 1e6));
}

export function dateTimeOfNs(ns: number): string {
  return dateTimeFormat.format(new Date(ns / 1e6));
}

export function dateOfNs(ns: number): string {
  return dateFormat.format(new Date(ns / 1e6));
}

export function dateTime(iso: string | null | undefined): string {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : dateTimeFormat.format(date);
}

/** The symbol part of an instrument id (`binance:BTC-USDT` → `BTC-USDT`). */
export function symbolOf(instrument: string): string {
  const at = instrument.indexOf(":");
  return at < 0 ? instrument : instrument.slice(at + 1);
}

export function venueOf(instrument: string): string {
  const at = instrument.indexOf(":");
  return at < 0 ? "" : instrument.slice(0, at);
}

export const SIMULATED_VENUE = "simulated";

export function duration(seconds: number): string {
  if (seconds % 86_400 === 0) return `${seconds / 86_400} d`;
  if (seconds % 3_600 === 0) return `${seconds / 3_600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}
