import { useState, type FormEvent } from "react";
import { messageOf, unwrap } from "../api/errors";
import { SCOPES, type CreatedClient, type Scope } from "../api/types";
import { api, session } from "../app/services";
import { ErrorText, Loading } from "../components/common";
import { useLoad, useSession, useTitle } from "../lib/hooks";
import { dateTime } from "../market/format";

const SCOPE_HELP: Record<Scope, string> = {
  "market:read": "instruments, quotes and history",
  "stream:read": "the live feed",
  "predictions:read": "forecasts",
  account: "watchlists, alerts and the account",
  operations: "operations (operators only)",
  admin: "administration (admins only)",
};

/** Password, sessions and machine clients. */
export default function Account() {
  useTitle("Account");
  const { me } = useSession();
  return (
    <section aria-labelledby="account-title">
      <h1 id="account-title" tabIndex={-1}>
        Account
      </h1>
      {me && (
        <dl className="facts card">
          <div>
            <dt>Email</dt>
            <dd>{me.email}</dd>
          </div>
          <div>
            <dt>Role</dt>
            <dd>{me.role}</dd>
          </div>
          <div>
            <dt>Member since</dt>
            <dd>{dateTime(me.created_at)}</dd>
          </div>
        </dl>
      )}
      <ChangePassword />
      <Sessions />
      <MachineClients />
    </section>
  );
}

function ChangePassword() {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [repeat, setRepeat] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState(false);
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setError(null);
    setDone(false);
    if (next !== repeat) {
      setError("The new passwords differ.");
      return;
    }
    setBusy(true);
    try {
      await session.changePassword(current, next);
      setDone(true);
      setCurrent("");
      setNext("");
      setRepeat("");
    } catch (failure) {
      setError(messageOf(failure));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form className="card form" onSubmit={submit} aria-labelledby="password-title">
      <h2 id="password-title">Change password</h2>
      <p className="muted small">Every other session of yours ends; this one stays signed in.</p>
      <label htmlFor="password-current">Current password</label>
      <input id="password-current" type="password" autoComplete="current-password" required value={current} onChange={(event) => setCurrent(event.target.value)} />
      <label htmlFor="password-new">New password</label>
      <input id="password-new" type="password" autoComplete="new-password" required minLength={8} value={next} onChange={(event) => setNext(event.target.value)} />
      <label htmlFor="password-repeat">New password again</label>
      <input id="password-repeat" type="password" autoComplete="new-password" required value={repeat} onChange={(event) => setRepeat(event.target.value)} />
      <ErrorText error={error} />
      {done && (
        <p className="success" role="status">
          Password changed.
        </p>
      )}
      <div className="actions">
        <button type="submit" disabled={busy}>
          Change password
        </button>
      </div>
    </form>
  );
}

function Sessions() {
  const [busy, setBusy] = useState(false);
  async function run(task: () => Promise<void>) {
    setBusy(true);
    await task();
  }
  return (
    <div className="card">
      <h2>Sessions</h2>
      <div className="actions">
        <button type="button" className="secondary" disabled={busy} onClick={() => void run(() => session.signOut())}>
          Sign out
        </button>
        <button
          type="button"
          className="danger"
          disabled={busy}
          onClick={() => {
            if (window.confirm("Sign out on every device and browser, this one included?")) void run(() => session.signOutEverywhere());
          }}
        >
          Sign out everywhere
        </button>
      </div>
    </div>
  );
}

function MachineClients() {
  const clients = useLoad((signal) => unwrap(api.GET("/v1/auth/clients", { signal })), []);
  const { me } = useSession();
  const [name, setName] = useState("");
  const [scopes, setScopes] = useState<Scope[]>(["market:read"]);
  const [error, setError] = useState<string | null>(null);
  const [created, setCreated] = useState<CreatedClient | null>(null);
  const [busy, setBusy] = useState(false);
  const [copied, setCopied] = useState<string | null>(null);
  const allowed = SCOPES.filter((scope) => me === null || me.scopes.includes(scope));

  async function create(event: FormEvent) {
    event.preventDefault();
    setError(null);
    if (scopes.length === 0) {
      setError("Choose at least one scope.");
      return;
    }
    setBusy(true);
    try {
      const client = await unwrap(api.POST("/v1/auth/clients", { body: { name: name.trim(), scopes } }));
      setCreated(client);
      setCopied(null);
      setName("");
      clients.setData((current) => [...(current ?? []), client]);
    } catch (failure) {
      setError(messageOf(failure));
    } finally {
      setBusy(false);
    }
  }

  async function revoke(clientId: string, clientName: string) {
    if (!window.confirm(`Revoke “${clientName}”? Its tokens stop working at once.`)) return;
    setError(null);
    try {
      await unwrap(api.DELETE("/v1/auth/clients/{client_id}", { params: { path: { client_id: clientId } } }));
      clients.setData((current) => current?.filter((client) => client.client_id !== clientId));
      if (created?.client_id === clientId) setCreated(null);
    } catch (failure) {
      setError(messageOf(failure));
    }
  }

  async function copy(secret: string) {
    try {
      await navigator.clipboard.writeText(secret);
      setCopied("Copied to the clipboard.");
    } catch {
      setCopied("Copying is not allowed here: select the secret and copy it by hand.");
    }
  }

  return (
    <div className="card" aria-labelledby="clients-title" role="group">
      <h2 id="clients-title">Machine clients</h2>
      <p className="muted small">For programs: they sign in with the client-credentials grant, with only the scopes you give them.</p>
      {clients.loading && clients.data === undefined && <Loading what="your machine clients" />}
      <ErrorText error={clients.error} />
      {created && (
        <div className="secret" role="status">
          <p>
            <strong>{created.name}</strong> was created. Its secret is shown this once: store it now.
          </p>
          <dl className="facts">
            <div>
              <dt>Client id</dt>
              <dd>
                <code>{created.client_id}</code>
              </dd>
            </div>
            <div>
              <dt>Client secret</dt>
              <dd>
                <code className="select-all">{created.client_secret}</code>
              </dd>
            </div>
          </dl>
          <div className="actions">
            <button type="button" onClick={() => void copy(created.client_secret)}>
              Copy secret
            </button>
            <button type="button" className="secondary" onClick={() => setCreated(null)}>
              I stored it
            </button>
          </div>
          {copied && <p className="muted small">{copied}</p>}
        </div>
      )}
      {clients.data && clients.data.length > 0 && (
        <div className="table-wrap">
          <table>
            <caption className="visually-hidden">Your machine clients</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Client id</th>
                <th scope="col">Scopes</th>
                <th scope="col">Created</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {clients.data.map((client) => (
                <tr key={client.client_id}>
                  <th scope="row">{client.name}</th>
                  <td>
                    <code>{client.client_id}</code>
                  </td>
                  <td>{client.scopes.join(", ")}</td>
                  <td>{dateTime(client.created_at)}</td>
                  <td>
                    <button type="button" className="danger" onClick={() => void revoke(client.client_id, client.name)} aria-label={`Revoke ${client.name}`}>
                      Revoke
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {clients.data && clients.data.length === 0 && <p className="muted">No machine client yet.</p>}
      <form className="form" onSubmit={create}>
        <h3>New machine client</h3>
        <label htmlFor="client-name">Name</label>
        <input id="client-name" required maxLength={100} placeholder="trading bot" value={name} onChange={(event) => setName(event.target.value)} />
        <fieldset>
          <legend>Scopes</legend>
          {allowed.map((scope) => (
            <div key={scope} className="check">
              <input
                id={`scope-${scope}`}
                type="checkbox"
                checked={scopes.includes(scope)}
                onChange={(event) =>
                  setScopes(event.target.checked ? [...scopes, scope] : scopes.filter((other) => other !== scope))
                }
              />
              <label htmlFor={`scope-${scope}`}>
                <code>{scope}</code> <span className="muted">— {SCOPE_HELP[scope]}</span>
              </label>
            </div>
          ))}
        </fieldset>
        <ErrorText error={error} />
        <div className="actions">
          <button type="submit" disabled={busy}>
            Create client
          </button>
        </div>
      </form>
    </div>
  );
}
