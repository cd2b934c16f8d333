import { Suspense, lazy, useEffect, useRef, useState, type ReactNode } from "react";
import type { Role } from "./api/types";
import { feed, session } from "./app/services";
import { ErrorText, Loading } from "./components/common";
import { Toasts } from "./components/Toasts";
import { toastStore } from "./components/toasts";
import { useConnection, useSession } from "./lib/hooks";
import { Link, matchPath, navigate, useLocation } from "./lib/router";
import type { ConnectionState, FeedNotice } from "./live/feedClient";
import { firedText } from "./market/alertText";

const SignIn = lazy(() => import("./pages/SignIn"));
const Markets = lazy(() => import("./pages/Markets"));
const Instrument = lazy(() => import("./pages/Instrument"));
const Watchlists = lazy(() => import("./pages/Watchlists"));
const WatchlistBoard = lazy(() => import("./pages/WatchlistBoard"));
const Alerts = lazy(() => import("./pages/Alerts"));
const Account = lazy(() => import("./pages/Account"));
const Operations = lazy(() => import("./pages/Operations"));
const Admin = lazy(() => import("./pages/Admin"));

const OPERATORS: readonly Role[] = ["operator", "admin"];

export function App() {
  const state = useSession();
  const { pathname, search, href } = useLocation();

  useEffect(() => {
    void session.restore();
  }, []);

  // A fired alert pops at once, whatever page is open.
  useEffect(
    () =>
      feed.onAlert((alert) => {
        toastStore.push({ title: "Alert fired", body: firedText(alert), tone: "alert" });
      }),
    [],
  );

  const signedIn = state.status === "signed_in";
  useEffect(() => {
    if (state.status === "signed_out" && pathname !== "/signin") {
      const next = pathname === "/" ? "" : `?next=${encodeURIComponent(href)}`;
      navigate(`/signin${next}`, { replace: true });
    } else if (signedIn && (pathname === "/signin" || pathname === "/")) {
      const next = search.get("next");
      navigate(next && next.startsWith("/") && !next.startsWith("//") ? next : "/markets", { replace: true });
    }
  }, [state.status, signedIn, pathname, href, search]);

  if (state.status === "restoring") {
    return (
      <main className="splash">
        <p role="status">Restoring your session…</p>
      </main>
    );
  }
  if (!signedIn) {
    return (
      <main id="main" className="signin-main">
        <Suspense fallback={<Loading what="the sign-in page" />}>
          <SignIn />
        </Suspense>
      </main>
    );
  }
  return (
    <Shell role={state.me?.role ?? "user"} email={state.me?.email ?? ""}>
      <Suspense fallback={<Loading what="the page" />}>
        <Page pathname={pathname} role={state.me?.role ?? "user"} />
      </Suspense>
    </Shell>
  );
}

function Page({ pathname, role }: { pathname: string; role: Role }) {
  if (pathname === "/markets" || pathname === "/" || pathname === "/signin") return <Markets />;
  const instrument = matchPath("/instrument/:id", pathname);
  if (instrument?.id) return <Instrument key={instrument.id} instrument={instrument.id} />;
  if (pathname === "/watchlists") return <Watchlists />;
  const board = matchPath("/watchlists/:id", pathname);
  if (board?.id) return <WatchlistBoard key={board.id} watchlistId={board.id} />;
  if (pathname === "/alerts") return <Alerts />;
  if (pathname === "/account") return <Account />;
  if (pathname === "/operations") {
    return OPERATORS.includes(role) ? <Operations /> : <Forbidden what="Operations" needs="the operator or admin role" />;
  }
  if (pathname === "/admin") return role === "admin" ? <Admin /> : <Forbidden what="Admin" needs="the admin role" />;
  return (
    <section>
      <h1 tabIndex={-1}>Not found</h1>
      <p>
        There is no page at <code>{pathname}</code>. <Link to="/markets">Go to the markets</Link>.
      </p>
    </section>
  );
}

function Forbidden({ what, needs }: { what: string; needs: string }) {
  return (
    <section>
      <h1 tabIndex={-1}>{what}</h1>
      <ErrorText error={`This page needs ${needs}.`} />
    </section>
  );
}

const CONNECTION_TEXT: Record<ConnectionState, string> = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};
const CONNECTION_ICON: Record<ConnectionState, string> = { connecting: "◌", live: "●", reconnecting: "◌", offline: "✕" };

function describe(notice: FeedNotice): string | null {
  switch (notice.kind) {
    case "closed":
      if (notice.code === 4008) return "The live feed dropped this connection for falling behind; resuming.";
      if (notice.code === 4029) return "Too many live connections are open for your account (close some tabs); retrying.";
      if (notice.code === 4403) return `The live feed refused this connection: ${notice.reason}`;
      return null;
    case "error":
      return `Live feed: ${notice.message}`;
    case "gap":
      return null; // shown where the stream is drawn
  }
}

function ConnectionBadge() {
  const state = useConnection();
  const [note, setNote] = useState<string | null>(null);
  useEffect(
    () =>
      feed.onNotice((notice) => {
        const text = describe(notice);
        if (text !== null) setNote(text);
      }),
    [],
  );
  useEffect(() => {
    if (state === "live" && note !== null) {
      const timer = setTimeout(() => setNote(null), 8_000);
      return () => clearTimeout(timer);
    }
    return undefined;
  }, [state, note]);
  return (
    <div className="connection" role="status" aria-live="polite">
      <span className={`state state-${state}`}>
        <span aria-hidden="true">{CONNECTION_ICON[state]} </span>
        Live feed: {CONNECTION_TEXT[state]}
      </span>
      {note && state !== "live" && <span className="muted small connection-note">{note}</span>}
    </div>
  );
}

function Shell({ role, email, children }: { role: Role; email: string; children: ReactNode }) {
  const { pathname } = useLocation();
  const main = useRef<HTMLElement>(null);
  const first = useRef(true);
  const [signingOut, setSigningOut] = useState(false);

  // After a navigation, focus goes to the new page's heading (or main) for keyboard and
  // screen-reader users.
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    const timer = setTimeout(() => {
      const heading = main.current?.querySelector<HTMLElement>("h1");
      (heading ?? main.current)?.focus({ preventScroll: true });
    }, 50);
    return () => clearTimeout(timer);
  }, [pathname]);

  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <Link to="/markets" className="brand">
          Finance One Stop
        </Link>
        <nav aria-label="Main">
          <ul>
            <li>
              <Link to="/markets">Markets</Link>
            </li>
            <li>
              <Link to="/watchlists">Watchlists</Link>
            </li>
            <li>
              <Link to="/alerts">Alerts</Link>
            </li>
            <li>
              <Link to="/account">Account</Link>
            </li>
            {OPERATORS.includes(role) && (
              <li>
                <Link to="/operations">Operations</Link>
              </li>
            )}
            {role === "admin" && (
              <li>
                <Link to="/admin">Admin</Link>
              </li>
            )}
          </ul>
        </nav>
        <ConnectionBadge />
        <div className="user">
          <span className="muted small">{email}</span>
          <button
            type="button"
            className="secondary"
            disabled={signingOut}
            onClick={() => {
              setSigningOut(true);
              void session.signOut();
            }}
          >
            Sign out
          </button>
        </div>
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        {children}
      </main>
      <Toasts />
    </>
  );
}
