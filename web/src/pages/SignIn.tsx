import { useState, type FormEvent } from "react";
import { messageOf } from "../api/errors";
import { session } from "../app/services";
import { useSession, useTitle } from "../lib/hooks";

/** Sign in, or create an account and sign in with it. */
export default function SignIn() {
  useTitle("Sign in");
  const { notice } = useSession();
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState<"signin" | "register" | null>(null);
  const [error, setError] = useState<string | null>(null);

  async function run(kind: "signin" | "register") {
    setBusy(kind);
    setError(null);
    try {
      if (kind === "signin") await session.signIn(email.trim(), password);
      else await session.register(email.trim(), password);
    } catch (failure) {
      setError(messageOf(failure));
      setBusy(null);
    }
  }

  function submit(event: FormEvent) {
    event.preventDefault();
    void run("signin");
  }

  return (
    <div className="signin">
      <h1 tabIndex={-1}>Finance One Stop</h1>
      <p className="muted">Live markets, forecasts and alerts.</p>
      {notice && (
        <p className="notice" role="status">
          {notice}
        </p>
      )}
      <form onSubmit={submit} className="card form" aria-describedby={error ? "signin-error" : undefined}>
        <label htmlFor="signin-email">Email</label>
        <input
          id="signin-email"
          type="email"
          autoComplete="username"
          required
          value={email}
          onChange={(event) => setEmail(event.target.value)}
        />
        <label htmlFor="signin-password">Password</label>
        <input
          id="signin-password"
          type="password"
          autoComplete="current-password"
          required
          value={password}
          onChange={(event) => setPassword(event.target.value)}
        />
        {error && (
          <p id="signin-error" className="error" role="alert">
            {error}
          </p>
        )}
        {busy && (
          <p className="muted" role="status">
            {busy === "signin" ? "Signing in…" : "Creating your account…"}
          </p>
        )}
        <div className="actions">
          <button type="submit" disabled={busy !== null}>
            Sign in
          </button>
          <button
            type="button"
            className="secondary"
            disabled={busy !== null}
            onClick={(event) => {
              const form = event.currentTarget.form;
              if (form && !form.reportValidity()) return;
              void run("register");
            }}
          >
            Create account
          </button>
        </div>
        <p className="muted small">New here? Type an email and a password (8 characters or more), then Create account.</p>
      </form>
    </div>
  );
}
