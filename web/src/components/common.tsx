import type { ReactNode } from "react";
import { type Direction, SIMULATED_VENUE, signed, percent } from "../market/format";

/** An error where it happened, with the API's message; read out when it appears. */
export function ErrorText({ error, children }: { error?: string | null; children?: ReactNode }) {
  if (!error && !children) return null;
  return (
    <p className="error" role="alert">
      {error}
      {children}
    </p>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p className="muted" role="status">
      Loading {what}…
    </p>
  );
}

const ARROWS: Record<Direction, string> = { up: "▲", down: "▼", flat: "■" };
const WORDS: Record<Direction, string> = { up: "up", down: "down", flat: "unchanged" };

/** Up or down by arrow, sign and words, not by colour alone. */
export function Change({ delta, base, decimals }: { delta: number | null; base: number | null; decimals: number }) {
  if (delta === null || base === null || !Number.isFinite(delta) || base === 0) {
    return <span className="muted">—</span>;
  }
  const dir: Direction = delta > 0 ? "up" : delta < 0 ? "down" : "flat";
  return (
    <span className={`change change-${dir}`}>
      <span aria-hidden="true">{ARROWS[dir]} </span>
      <span className="visually-hidden">{WORDS[dir]} </span>
      {signed(delta, decimals)} ({percent((delta / base) * 100)})
    </span>
  );
}

export function Arrow({ dir }: { dir: Direction }) {
  return (
    <span className={`change change-${dir}`}>
      <span aria-hidden="true">{ARROWS[dir]}</span>
      <span className="visually-hidden">{WORDS[dir]}</span>
    </span>
  );
}

export function VenueLabel({ venue }: { venue: string }) {
  if (venue === SIMULATED_VENUE) {
    return (
      <span>
        {venue} <span className="badge badge-simulated" title="A stand-in exchange with made-up prices, for the demo">simulated</span>
      </span>
    );
  }
  return <span>{venue}</span>;
}

const FEED_STATE_LABEL: Record<string, string> = {
  live: "● live",
  connecting: "◌ connecting",
  reconnecting: "◌ reconnecting",
  failed: "✕ failed",
  stopped: "■ stopped",
  unreachable: "✕ unreachable",
};

export function FeedState({ state }: { state: string }) {
  return <span className={`state state-${state}`}>{FEED_STATE_LABEL[state] ?? state}</span>;
}
