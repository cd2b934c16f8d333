import { useState, type FormEvent } from "react";
import { messageOf, unwrap } from "../api/errors";
import type { WatchlistView } from "../api/types";
import { api } from "../app/services";
import { ErrorText, Loading } from "../components/common";
import { InstrumentPicker } from "../components/InstrumentPicker";
import { useLoad, useTitle } from "../lib/hooks";
import { Link, navigate } from "../lib/router";
import { dateTime } from "../market/format";

/** Your watchlists: create, rename, delete; each opens as a live board. */
export default function Watchlists() {
  useTitle("Watchlists");
  const lists = useLoad((signal) => unwrap(api.GET("/v1/watchlists", { signal })), []);
  const known = useLoad((signal) => unwrap(api.GET("/v1/instruments", { signal })), []);
  const knownIds = known.data?.instruments.map((item) => item.instrument) ?? [];

  const [name, setName] = useState("");
  const [picked, setPicked] = useState<string[]>([]);
  const [createError, setCreateError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function create(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setCreateError(null);
    try {
      const created = await unwrap(api.POST("/v1/watchlists", { body: { name: name.trim(), instruments: picked } }));
      lists.setData((current) => [...(current ?? []), created].sort((a, b) => a.name.localeCompare(b.name)));
      setName("");
      setPicked([]);
    } catch (error) {
      setCreateError(messageOf(error));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section aria-labelledby="watchlists-title">
      <h1 id="watchlists-title" tabIndex={-1}>
        Watchlists
      </h1>
      {lists.loading && lists.data === undefined && <Loading what="your watchlists" />}
      <ErrorText error={lists.error} />
      {lists.data && lists.data.length === 0 && <p className="muted">No watchlist yet: create one below.</p>}
      {lists.data && lists.data.length > 0 && (
        <div className="table-wrap">
          <table>
            <caption>Your watchlists, by name</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col" className="num">
                  Instruments
                </th>
                <th scope="col">Updated</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {lists.data.map((list) => (
                <WatchlistRow
                  key={list.watchlist_id}
                  list={list}
                  onChanged={(next) =>
                    lists.setData((current) =>
                      next === null
                        ? current?.filter((other) => other.watchlist_id !== list.watchlist_id)
                        : current?.map((other) => (other.watchlist_id === list.watchlist_id ? next : other)),
                    )
                  }
                />
              ))}
            </tbody>
          </table>
        </div>
      )}

      <div className="card form" role="group" aria-labelledby="new-watchlist">
        <h2 id="new-watchlist">New watchlist</h2>
        <form id="new-watchlist-form" className="form" onSubmit={create}>
          <label htmlFor="watchlist-name">Name</label>
          <input id="watchlist-name" required maxLength={100} value={name} onChange={(event) => setName(event.target.value)} />
        </form>
        <InstrumentPicker known={knownIds} exclude={picked} onAdd={(instrument) => setPicked([...picked, instrument])} />
        {picked.length === 0 ? (
          <p className="muted small">No instruments yet (you can add them later too).</p>
        ) : (
          <ul className="chips" aria-label="Instruments of the new watchlist">
            {picked.map((instrument) => (
              <li key={instrument}>
                {instrument}{" "}
                <button type="button" className="link-button" onClick={() => setPicked(picked.filter((p) => p !== instrument))} aria-label={`Remove ${instrument}`}>
                  Remove
                </button>
              </li>
            ))}
          </ul>
        )}
        <ErrorText error={createError} />
        <div className="actions">
          <button type="submit" form="new-watchlist-form" disabled={busy}>
            Create watchlist
          </button>
        </div>
      </div>
    </section>
  );
}

function WatchlistRow({ list, onChanged }: { list: WatchlistView; onChanged: (next: WatchlistView | null) => void }) {
  const [renaming, setRenaming] = useState(false);
  const [name, setName] = useState(list.name);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function rename(event: FormEvent) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const next = await unwrap(
        api.PUT("/v1/watchlists/{watchlist_id}", {
          params: { path: { watchlist_id: list.watchlist_id } },
          body: { name: name.trim(), instruments: list.instruments },
        }),
      );
      onChanged(next);
      setRenaming(false);
    } catch (failure) {
      setError(messageOf(failure));
    } finally {
      setBusy(false);
    }
  }

  async function remove() {
    if (!window.confirm(`Delete the watchlist “${list.name}”?`)) return;
    setBusy(true);
    setError(null);
    try {
      await unwrap(api.DELETE("/v1/watchlists/{watchlist_id}", { params: { path: { watchlist_id: list.watchlist_id } } }));
      onChanged(null);
    } catch (failure) {
      setError(messageOf(failure));
      setBusy(false);
    }
  }

  return (
    <tr>
      <th scope="row">
        {renaming ? (
          <form className="inline-form" onSubmit={rename}>
            <label htmlFor={`rename-${list.watchlist_id}`} className="visually-hidden">
              New name for {list.name}
            </label>
            <input id={`rename-${list.watchlist_id}`} required maxLength={100} value={name} onChange={(event) => setName(event.target.value)} autoFocus />
            <button type="submit" disabled={busy}>
              Save
            </button>
            <button type="button" className="secondary" onClick={() => setRenaming(false)}>
              Cancel
            </button>
          </form>
        ) : (
          <Link to={`/watchlists/${list.watchlist_id}`}>{list.name}</Link>
        )}
        <ErrorText error={error} />
      </th>
      <td className="num">{list.instruments.length}</td>
      <td>{dateTime(list.updated_at)}</td>
      <td className="actions">
        <button type="button" className="secondary" onClick={() => navigate(`/watchlists/${list.watchlist_id}`)}>
          Open board
        </button>
        {!renaming && (
          <button type="button" className="secondary" onClick={() => setRenaming(true)} aria-label={`Rename ${list.name}`}>
            Rename
          </button>
        )}
        <button type="button" className="danger" onClick={() => void remove()} disabled={busy} aria-label={`Delete ${list.name}`}>
          Delete
        </button>
      </td>
    </tr>
  );
}
