import { useState, type FormEvent } from "react";
import { messageOf, unwrap } from "../api/errors";
import { AUDIT_EVENTS, ROLES, type AuditEvent, type Role, type UserView } from "../api/types";
import { api } from "../app/services";
import { ErrorText, Loading } from "../components/common";
import { useLoad, useSession, useTitle } from "../lib/hooks";
import { dateTime } from "../market/format";

const PAGE_SIZE = 50;

/** Users (disable, enable, role) and the audit log, paged with the API's cursors (admins). */
export default function Admin() {
  useTitle("Admin");
  return (
    <section aria-labelledby="admin-title">
      <h1 id="admin-title" tabIndex={-1}>
        Admin
      </h1>
      <Users />
      <Audit />
      <SigningKey />
    </section>
  );
}

/** Cursor paging: the cursors of the pages seen, to go back as well as on. */
function usePages() {
  const [cursors, setCursors] = useState<Array<string | null>>([null]);
  const cursor = cursors[cursors.length - 1] ?? null;
  return {
    cursor,
    page: cursors.length,
    next: (nextCursor: string) => setCursors([...cursors, nextCursor]),
    previous: () => setCursors(cursors.length > 1 ? cursors.slice(0, -1) : cursors),
    first: () => setCursors([null]),
  };
}

function Pager({ page, nextCursor, onNext, onPrevious, label }: { page: number; nextCursor: string | null | undefined; onNext: (cursor: string) => void; onPrevious: () => void; label: string }) {
  return (
    <nav className="pager" aria-label={label}>
      <button type="button" className="secondary" disabled={page <= 1} onClick={onPrevious}>
        Previous page
      </button>
      <span>Page {page}</span>
      <button type="button" className="secondary" disabled={!nextCursor} onClick={() => nextCursor && onNext(nextCursor)}>
        Next page
      </button>
    </nav>
  );
}

function Users() {
  const pages = usePages();
  const users = useLoad(
    (signal) => unwrap(api.GET("/v1/admin/users", { params: { query: { limit: PAGE_SIZE, cursor: pages.cursor } }, signal })),
    [pages.cursor],
  );
  const { me } = useSession();
  return (
    <div className="card">
      <h2>Users</h2>
      {users.loading && users.data === undefined && <Loading what="users" />}
      <ErrorText error={users.error} />
      {users.data && (
        <>
          <div className="table-wrap">
            <table>
              <caption className="visually-hidden">Users by email, page {pages.page}</caption>
              <thead>
                <tr>
                  <th scope="col">Email</th>
                  <th scope="col">Role</th>
                  <th scope="col">Status</th>
                  <th scope="col">Created</th>
                  <th scope="col">Actions</th>
                </tr>
              </thead>
              <tbody>
                {users.data.items.map((user) => (
                  <UserRow
                    key={user.user_id}
                    user={user}
                    self={me?.user_id === user.user_id}
                    onChanged={(next) =>
                      users.setData((current) =>
                        current && { ...current, items: current.items.map((other) => (other.user_id === next.user_id ? next : other)) },
                      )
                    }
                  />
                ))}
              </tbody>
            </table>
          </div>
          <Pager page={pages.page} nextCursor={users.data.next_cursor} onNext={pages.next} onPrevious={pages.previous} label="Pages of users" />
        </>
      )}
    </div>
  );
}

function UserRow({ user, self, onChanged }: { user: UserView; self: boolean; onChanged: (user: UserView) => void }) {
  const [role, setRole] = useState<Role>(user.role);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function run(task: () => Promise<UserView>) {
    setBusy(true);
    setError(null);
    try {
      const next = await task();
      onChanged(next);
      setRole(next.role);
    } catch (failure) {
      setError(messageOf(failure));
    } finally {
      setBusy(false);
    }
  }

  const path = { params: { path: { user_id: user.user_id } } };
  function changeRole(event: FormEvent) {
    event.preventDefault();
    void run(() => unwrap(api.PUT("/v1/admin/users/{user_id}/role", { ...path, body: { role } })));
  }

  return (
    <tr>
      <th scope="row">
        {user.email}
        {self && <span className="muted small"> (you)</span>}
        <ErrorText error={error} />
      </th>
      <td>
        <form className="inline-form" onSubmit={changeRole}>
          <label htmlFor={`role-${user.user_id}`} className="visually-hidden">
            Role of {user.email}
          </label>
          <select id={`role-${user.user_id}`} value={role} onChange={(event) => setRole(event.target.value as Role)}>
            {ROLES.map((value) => (
              <option key={value} value={value}>
                {value}
              </option>
            ))}
          </select>
          <button type="submit" className="secondary" disabled={busy || role === user.role} aria-label={`Change the role of ${user.email}`}>
            Change role
          </button>
        </form>
      </td>
      <td>{user.disabled ? <span className="state state-failed">✕ disabled</span> : <span className="state state-live">✓ enabled</span>}</td>
      <td>{dateTime(user.created_at)}</td>
      <td>
        {user.disabled ? (
          <button type="button" className="secondary" disabled={busy} onClick={() => void run(() => unwrap(api.POST("/v1/admin/users/{user_id}/enable", path)))} aria-label={`Enable ${user.email}`}>
            Enable
          </button>
        ) : (
          <button
            type="button"
            className="danger"
            disabled={busy}
            onClick={() => {
              if (window.confirm(`Disable ${user.email}? Every session and client token of theirs stops working.`)) {
                void run(() => unwrap(api.POST("/v1/admin/users/{user_id}/disable", path)));
              }
            }}
            aria-label={`Disable ${user.email}`}
          >
            Disable
          </button>
        )}
      </td>
    </tr>
  );
}

function Audit() {
  const pages = usePages();
  const [event, setEvent] = useState<AuditEvent | "">("");
  const [userId, setUserId] = useState("");
  const [filters, setFilters] = useState<{ event: AuditEvent | null; userId: string | null }>({ event: null, userId: null });
  const log = useLoad(
    (signal) =>
      unwrap(
        api.GET("/v1/admin/audit", {
          params: { query: { limit: PAGE_SIZE, cursor: pages.cursor, event: filters.event, user_id: filters.userId } },
          signal,
        }),
      ),
    [pages.cursor, filters.event, filters.userId],
  );

  function apply(submitted: FormEvent) {
    submitted.preventDefault();
    setFilters({ event: event === "" ? null : event, userId: userId.trim() || null });
    pages.first();
  }

  return (
    <div className="card">
      <h2>Audit log</h2>
      <form className="inline-form" onSubmit={apply}>
        <label htmlFor="audit-event">Event</label>
        <select id="audit-event" value={event} onChange={(change) => setEvent(change.target.value as AuditEvent | "")}>
          <option value="">any</option>
          {AUDIT_EVENTS.map((value) => (
            <option key={value} value={value}>
              {value.replaceAll("_", " ")}
            </option>
          ))}
        </select>
        <label htmlFor="audit-user">User id</label>
        <input id="audit-user" value={userId} placeholder="any" onChange={(change) => setUserId(change.target.value)} />
        <button type="submit" className="secondary">
          Show
        </button>
      </form>
      {log.loading && log.data === undefined && <Loading what="the audit log" />}
      <ErrorText error={log.error} />
      {log.data && (
        <>
          {log.data.items.length === 0 ? (
            <p className="muted">No audit record matches.</p>
          ) : (
            <div className="table-wrap">
              <table>
                <caption className="visually-hidden">Audit records, newest first, page {pages.page}</caption>
                <thead>
                  <tr>
                    <th scope="col">When</th>
                    <th scope="col">Event</th>
                    <th scope="col">User</th>
                    <th scope="col">By</th>
                    <th scope="col">Client IP</th>
                    <th scope="col">Details</th>
                  </tr>
                </thead>
                <tbody>
                  {log.data.items.map((record) => (
                    <tr key={record.event_id}>
                      <td>{dateTime(record.at)}</td>
                      <th scope="row">{record.event.replaceAll("_", " ")}</th>
                      <td>
                        <code className="small">{record.user_id ?? "—"}</code>
                      </td>
                      <td>
                        <code className="small">{record.actor_id ?? "—"}</code>
                      </td>
                      <td>{record.client_ip ?? "—"}</td>
                      <td className="small">
                        {Object.keys(record.details).length ? (
                          <code>{JSON.stringify(record.details)}</code>
                        ) : (
                          "—"
                        )}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <Pager page={pages.page} nextCursor={log.data.next_cursor} onNext={pages.next} onPrevious={pages.previous} label="Pages of the audit log" />
        </>
      )}
    </div>
  );
}

function SigningKey() {
  const [message, setMessage] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  async function rotate() {
    if (!window.confirm("Sign new tokens with a fresh key?")) return;
    setBusy(true);
    setError(null);
    try {
      const rotated = await unwrap(api.POST("/v1/admin/signing-keys/rotate"));
      setMessage(`New tokens are signed with key ${rotated.kid}.`);
    } catch (failure) {
      setError(messageOf(failure));
    } finally {
      setBusy(false);
    }
  }
  return (
    <div className="card">
      <h2>Signing key</h2>
      <ErrorText error={error} />
      {message && (
        <p className="success" role="status">
          {message}
        </p>
      )}
      <button type="button" className="secondary" disabled={busy} onClick={() => void rotate()}>
        Rotate signing key
      </button>
    </div>
  );
}
