import { useMemo, useState, type FormEvent } from "react";
import { ApiError, messageOf, unwrap } from "../api/errors";
import type { WatchlistView } from "../api/types";
import { api } from "../app/services";
import { ErrorText, Loading } from "../components/common";
import { InstrumentPicker } from "../components/InstrumentPicker";
import { MarketBoard } from "../components/MarketBoard";
import { useLoad, useTitle } from "../lib/hooks";
import { Link, navigate } from "../lib/router";
import type { FeedSpec } from "../live/feedClient";
import { venueOf } from "../market/format";

/** One watchlist as a live board (subscribed by the watchlist's id), and its editing. */
export default function WatchlistBoard({ watchlistId }: { watchlistId: string }) {
  const list = useLoad(
    (signal) => unwrap(api.GET("/v1/watchlists/{watchlist_id}", { params: { path: { watchlist_id: watchlistId } }, signal })),
    [watchlistId],
  );
  const known = useLoad((signal) => unwrap(api.GET("/v1/instruments", { signal })), []);
  useTitle(list.data?.name ?? "Watchlist");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [renaming, setRenaming] = useState(false);
  const [name, setName] = useState("");
  // A new subscription whenever the instruments change, so the board follows the edit.
  const instrumentsKey = list.data?.instruments.join(",") ?? "";
  const spec = useMemo<FeedSpec | null>(
    () => (instrumentsKey ? { watchlist: watchlistId, channels: ["trades", "quotes", "bars"] } : null),
    [watchlistId, instrumentsKey],
  );

  async function save(next: { name?: string; instruments?: string[] }) {
    const current = list.data;
    if (!current) return;
    setBusy(true);
    setError(null);
    try {
      const saved = await unwrap(
        api.PUT("/v1/watchlists/{watchlist_id}", {
          params: { path: { watchlist_id: watchlistId } },
          body: { name: next.name ?? current.name, instruments: next.instruments ?? current.instruments },
        }),
      );
      list.setData(() => saved);
      setRenaming(false);
    } catch (failure) {
      setError(messageOf(failure));
    } finally {
      setBusy(false);
    }
  }

  async function remove(current: WatchlistView) {
    if (!window.confirm(`Delete the watchlist “${current.name}”?`)) return;
    setBusy(true);
    try {
      await unwrap(api.DELETE("/v1/watchlists/{watchlist_id}", { params: { path: { watchlist_id: watchlistId } } }));
      navigate("/watchlists");
    } catch (failure) {
      setError(messageOf(failure));
      setBusy(false);
    }
  }

  function rename(event: FormEvent) {
    event.preventDefault();
    void save({ name: name.trim() });
  }

  if (list.data === undefined) {
    return (
      <section>
        <p className="breadcrumbs">
          <Link to="/watchlists">Watchlists</Link>
        </p>
        <h1 tabIndex={-1}>Watchlist</h1>
        {list.loading ? (
          <Loading what="the watchlist" />
        ) : (
          <ErrorText error={list.failure instanceof ApiError && list.failure.status === 404 ? "You have no watchlist with this id." : list.error} />
        )}
      </section>
    );
  }

  const current = list.data;
  const venues = new Map((known.data?.instruments ?? []).map((item) => [item.instrument, item]));
  return (
    <section aria-labelledby="board-title">
      <p className="breadcrumbs">
        <Link to="/watchlists">Watchlists</Link> › {current.name}
      </p>
      <div className="page-head">
        {renaming ? (
          <form className="inline-form" onSubmit={rename}>
            <label htmlFor="board-rename">New name</label>
            <input id="board-rename" required maxLength={100} value={name} onChange={(event) => setName(event.target.value)} autoFocus />
            <button type="submit" disabled={busy}>
              Save
            </button>
            <button type="button" className="secondary" onClick={() => setRenaming(false)}>
              Cancel
            </button>
          </form>
        ) : (
          <h1 id="board-title" tabIndex={-1}>
            {current.name}
          </h1>
        )}
        <div className="actions">
          {!renaming && (
            <button
              type="button"
              className="secondary"
              onClick={() => {
                setName(current.name);
                setRenaming(true);
              }}
            >
              Rename
            </button>
          )}
          <button type="button" className="danger" onClick={() => void remove(current)} disabled={busy}>
            Delete
          </button>
        </div>
      </div>
      <ErrorText error={error} />
      {current.instruments.length === 0 ? (
        <p className="muted">This watchlist has no instruments yet: add some below.</p>
      ) : (
        <MarketBoard
          items={current.instruments.map((instrument) => {
            const info = venues.get(instrument);
            return { instrument, venue: info?.venue ?? venueOf(instrument), state: info?.state ?? "not streamed" };
          })}
          spec={spec}
          caption={`${current.instruments.length} instruments, live. Change is since the start of each trend line.`}
        />
      )}
      <div className="card">
        <h2>Instruments</h2>
        <InstrumentPicker
          known={known.data?.instruments.map((item) => item.instrument) ?? []}
          exclude={current.instruments}
          busy={busy}
          onAdd={(instrument) => save({ instruments: [...current.instruments, instrument] })}
        />
        {current.instruments.length > 0 && (
          <ul className="chips" aria-label="Instruments in this watchlist">
            {current.instruments.map((instrument) => (
              <li key={instrument}>
                {instrument}{" "}
                <button
                  type="button"
                  className="link-button"
                  disabled={busy}
                  onClick={() => void save({ instruments: current.instruments.filter((other) => other !== instrument) })}
                  aria-label={`Remove ${instrument} from ${current.name}`}
                >
                  Remove
                </button>
              </li>
            ))}
          </ul>
        )}
      </div>
    </section>
  );
}
