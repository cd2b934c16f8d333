import { useCallback, useEffect, useRef, useState, useSyncExternalStore } from "react";
import { messageOf } from "../api/errors";
import { feed, session } from "../app/services";
import type { SessionState } from "../auth/session";
import type { ConnectionState, FeedItem, FeedSpec, SubscriptionStatus } from "../live/feedClient";

export function useSession(): SessionState {
  return useSyncExternalStore(session.subscribe, session.getState);
}

export function useConnection(): ConnectionState {
  return useSyncExternalStore(feed.onState, feed.getState);
}

export interface Loaded<T> {
  data: T | undefined;
  error: string | null;
  /** The error itself, for callers that look at its code. */
  failure: unknown;
  loading: boolean;
  reload: () => void;
  setData: (update: (current: T | undefined) => T | undefined) => void;
}

/** Loads with `load` whenever `deps` change (the previous load is aborted). */
export function useLoad<T>(load: (signal: AbortSignal) => Promise<T>, deps: readonly unknown[]): Loaded<T> {
  const [state, setState] = useState<{ data: T | undefined; failure: unknown; loading: boolean }>({
    data: undefined,
    failure: null,
    loading: true,
  });
  const [round, setRound] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    const controller = new AbortController();
    setState((current) => ({ ...current, loading: true }));
    loadRef.current(controller.signal).then(
      (data) => {
        if (!controller.signal.aborted) setState({ data, failure: null, loading: false });
      },
      (failure: unknown) => {
        if (!controller.signal.aborted) setState((current) => ({ data: current.data, failure, loading: false }));
      },
    );
    return () => controller.abort();
  }, [...deps, round]);
  const reload = useCallback(() => setRound((r) => r + 1), []);
  const setData = useCallback(
    (update: (current: T | undefined) => T | undefined) => setState((current) => ({ ...current, data: update(current.data) })),
    [],
  );
  return {
    data: state.data,
    failure: state.failure,
    error: state.failure === null ? null : messageOf(state.failure),
    loading: state.loading,
    reload,
    setData,
  };
}

/** Subscribes to the live feed while mounted (and `spec` is not null); `onItems` gets at most
 * one batch per animation frame. Returns the subscription's status. */
export function useFeed(spec: FeedSpec | null, onItems: (items: FeedItem[]) => void): SubscriptionStatus {
  const [status, setStatus] = useState<SubscriptionStatus>({ state: "pending" });
  const handler = useRef(onItems);
  handler.current = onItems;
  const key = spec === null ? "" : JSON.stringify(spec);
  useEffect(() => {
    if (spec === null) return undefined;
    const subscription = feed.subscribe(spec, {
      items: (items) => handler.current(items),
      status: setStatus,
    });
    return () => subscription.close();
  }, [key]);
  return status;
}

/** Calls `tick` every `ms` while mounted and the page is visible. */
export function useInterval(tick: () => void, ms: number): void {
  const ref = useRef(tick);
  ref.current = tick;
  useEffect(() => {
    const timer = setInterval(() => {
      if (document.visibilityState !== "hidden") ref.current();
    }, ms);
    return () => clearInterval(timer);
  }, [ms]);
}

/** Re-renders when called: for views drawn from mutable state kept in refs. With `everyMs`,
 * calls within that time make one re-render at its end: a view fed faster than a person can read
 * (a book flooded with updates) is drawn at a readable rate and leaves the main thread free. */
export function useRedraw(everyMs = 0): () => void {
  const [, setTick] = useState(0);
  const pending = useRef<ReturnType<typeof setTimeout> | null>(null);
  useEffect(() => () => {
    if (pending.current !== null) clearTimeout(pending.current);
  }, []);
  return useCallback(() => {
    if (everyMs <= 0) {
      setTick((t) => (t + 1) % 1_000_000);
      return;
    }
    if (pending.current !== null) return;
    pending.current = setTimeout(() => {
      pending.current = null;
      setTick((t) => (t + 1) % 1_000_000);
    }, everyMs);
  }, [everyMs]);
}

export function useTitle(title: string): void {
  useEffect(() => {
    document.title = `${title} · Finance One Stop`;
  }, [title]);
}
