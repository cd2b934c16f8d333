/**
 * The signed-in session: the access token (in this module's memory only, never in storage), its
 * refresh before expiry, and the typed API client that sends it.
 *
 * The refresh token is an HttpOnly cookie the gateway sets on /v1/auth when asked with
 * `X-Token-Transport: cookie`; this code never sees it. Any API call answered 401 triggers one
 * refresh and one retry, then the session ends (back to sign-in).
 */
import createClient, { type Client } from "openapi-fetch";
import { ApiError, NETWORK_ERROR, errorFromResponse, unwrap } from "../api/errors";
import type { Me, TokenResponse, paths } from "../api/types";

export type FetchLike = (request: Request) => Promise<Response>;

export type SessionStatus = "restoring" | "signed_in" | "signed_out";

export interface SessionState {
  readonly status: SessionStatus;
  readonly me: Me | null;
  /** Why the session ended, for the sign-in page ("your session has ended", ...). */
  readonly notice: string | null;
}

/** What the live feed needs of a session. */
export interface TokenSource {
  token(): string | null;
  onToken(listener: (token: string) => void): () => void;
  /** A fresh token, null when the server refused (the session is over); throws when the server
   * cannot be reached. */
  refresh(): Promise<string | null>;
}

export interface SessionOptions {
  baseUrl: string;
  fetch?: FetchLike;
  /** Fraction of the token's lifetime after which it is refreshed. */
  refreshAt?: number;
  /** Serializes refreshes across the browser's tabs: the refresh cookie is single-use. */
  lock?: <T>(task: () => Promise<T>) => Promise<T>;
  /** Whether this browser may hold a session cookie (see SessionHint). */
  hint?: SessionHint;
}

/**
 * A flag (not a token) saying this browser signed in and has not signed out since: without it
 * the silent refresh on start is skipped, so a first visit does not send a refresh doomed to
 * fail (the cookie is HttpOnly: the page cannot see whether there is one).
 */
export interface SessionHint {
  get(): boolean;
  set(signedIn: boolean): void;
}

const HINT_KEY = "finone.signed-in";

const storageHint: SessionHint = {
  get() {
    try {
      return typeof localStorage === "undefined" || localStorage.getItem(HINT_KEY) !== null;
    } catch {
      return true; // storage refused: just try
    }
  },
  set(signedIn) {
    try {
      if (typeof localStorage === "undefined") return;
      if (signedIn) localStorage.setItem(HINT_KEY, "1");
      else localStorage.removeItem(HINT_KEY);
    } catch {
      // storage refused: the refresh on start is simply always tried
    }
  },
};

export const TOKEN_TRANSPORT_HEADER = "X-Token-Transport";
const SESSION_ENDED = "Your session has ended. Sign in again.";
const RETRY_REFRESH_MS = 5_000;

function formBody(body: unknown): URLSearchParams {
  const form = new URLSearchParams();
  for (const [key, value] of Object.entries(body as Record<string, unknown>)) {
    if (value !== undefined && value !== null) form.set(key, String(value));
  }
  return form;
}

const FORM_HEADERS = {
  "Content-Type": "application/x-www-form-urlencoded",
  [TOKEN_TRANSPORT_HEADER]: "cookie",
};

function browserLock<T>(task: () => Promise<T>): Promise<T> {
  const locks = typeof navigator !== "undefined" ? navigator.locks : undefined;
  if (locks === undefined) return task();
  return locks.request("finone-token-refresh", task) as Promise<T>;
}

export class Session implements TokenSource {
  /** The typed API client: bearer token, one refresh and retry on 401. */
  readonly api: Client<paths>;
  private readonly publicApi: Client<paths>;
  private readonly rawFetch: FetchLike;
  private readonly refreshAt: number;
  private readonly lock: <T>(task: () => Promise<T>) => Promise<T>;
  private readonly hint: SessionHint;
  private accessToken: string | null = null;
  private expiresAtMs = 0;
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  private refreshing: Promise<string | null> | null = null;
  /** Counts the sessions ended here: a request sent before the latest end neither refreshes
   * nor retries when refused (its session is over, not its token). */
  private epoch = 0;
  private state: SessionState = { status: "restoring", me: null, notice: null };
  private readonly stateListeners = new Set<() => void>();
  private readonly tokenListeners = new Set<(token: string) => void>();

  constructor(options: SessionOptions) {
    const raw = options.fetch ?? ((request: Request) => globalThis.fetch(request));
    this.rawFetch = raw;
    this.refreshAt = options.refreshAt ?? 0.8;
    this.lock = options.lock ?? browserLock;
    this.hint = options.hint ?? storageHint;
    this.publicApi = createClient<paths>({ baseUrl: options.baseUrl, fetch: raw, credentials: "same-origin" });
    this.api = createClient<paths>({
      baseUrl: options.baseUrl,
      fetch: (request: Request) => this.authorizedFetch(request),
      credentials: "same-origin",
    });
  }

  // -- state ------------------------------------------------------------------------------

  getState = (): SessionState => this.state;

  subscribe = (listener: () => void): (() => void) => {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  };

  private setState(next: SessionState, keepHint = false): void {
    this.state = next;
    if (next.status !== "restoring" && !keepHint) this.hint.set(next.status === "signed_in");
    for (const listener of [...this.stateListeners]) listener();
  }

  token(): string | null {
    return this.accessToken;
  }

  onToken(listener: (token: string) => void): () => void {
    this.tokenListeners.add(listener);
    return () => this.tokenListeners.delete(listener);
  }

  private setToken(response: TokenResponse): string {
    this.accessToken = response.access_token;
    const lifetimeMs = Math.max(1, response.expires_in) * 1000;
    this.expiresAtMs = Date.now() + lifetimeMs;
    this.scheduleRefresh(lifetimeMs * this.refreshAt);
    for (const listener of [...this.tokenListeners]) listener(response.access_token);
    return response.access_token;
  }

  private scheduleRefresh(delayMs: number): void {
    if (this.refreshTimer !== null) clearTimeout(this.refreshTimer);
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = null;
      void this.scheduledRefresh();
    }, delayMs);
  }

  private async scheduledRefresh(): Promise<void> {
    if (this.accessToken === null) return;
    try {
      if ((await this.refresh()) === null) this.expire(SESSION_ENDED);
    } catch {
      // The server cannot be reached: try again, more often as the expiry nears.
      const left = this.expiresAtMs - Date.now();
      this.scheduleRefresh(Math.max(1_000, Math.min(RETRY_REFRESH_MS, left / 2)));
    }
  }

  private clearToken(): void {
    this.epoch += 1;
    this.accessToken = null;
    this.expiresAtMs = 0;
    if (this.refreshTimer !== null) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
  }

  // -- what people do -----------------------------------------------------------------------

  /** On start: one silent refresh restores a session the refresh cookie still holds. */
  async restore(): Promise<boolean> {
    this.setState({ status: "restoring", me: null, notice: null });
    if (!this.hint.get()) {
      this.setState({ status: "signed_out", me: null, notice: null });
      return false;
    }
    try {
      if ((await this.refresh()) !== null) {
        await this.loadMe();
        return true;
      }
      this.setState({ status: "signed_out", me: null, notice: null });
    } catch (error) {
      let notice: string | null = null;
      if (error instanceof ApiError && error.code === NETWORK_ERROR) {
        notice = "Cannot reach the server right now; sign in when it is back.";
      } else if (error instanceof ApiError && (error.status === 429 || error.status >= 500)) {
        notice = `The server could not restore your session just now (${error.message}); reload in a moment, or sign in.`;
      }
      this.clearToken();
      // Unreachable or busy is not signed out: the next start tries the cookie again.
      this.setState({ status: "signed_out", me: null, notice }, notice !== null);
    }
    return false;
  }

  async signIn(email: string, password: string): Promise<void> {
    const tokens = await unwrap(
      this.publicApi.POST("/v1/auth/token", {
        body: { grant_type: "password", username: email, password },
        bodySerializer: formBody,
        headers: FORM_HEADERS,
      }),
    );
    this.setToken(tokens);
    await this.loadMe();
  }

  async register(email: string, password: string): Promise<void> {
    await unwrap(this.publicApi.POST("/v1/auth/register", { body: { email, password } }));
    await this.signIn(email, password);
  }

  async loadMe(): Promise<Me> {
    const me = await unwrap(this.api.GET("/v1/auth/me"));
    if (this.accessToken !== null) this.setState({ status: "signed_in", me, notice: null });
    return me;
  }

  async changePassword(currentPassword: string, newPassword: string): Promise<void> {
    const tokens = await unwrap(
      this.api.POST("/v1/auth/password", {
        body: { current_password: currentPassword, new_password: newPassword },
        headers: { [TOKEN_TRANSPORT_HEADER]: "cookie" },
      }),
    );
    this.setToken(tokens);
  }

  async signOut(): Promise<void> {
    await this.end("/v1/auth/logout", "You signed out.");
  }

  async signOutEverywhere(): Promise<void> {
    await this.end("/v1/auth/logout-all", "You signed out on every device.");
  }

  /**
   * Signs out here whatever the server says; says so when the server could not be told.
   *
   * Signed out here first, then the server is told: the pages close and abort what they were
   * loading, so no request of theirs meets the ended session and tries to refresh it.
   */
  private async end(path: "/v1/auth/logout" | "/v1/auth/logout-all", notice: string): Promise<void> {
    let token = this.accessToken;
    let unreachable: unknown = null;
    if (token === null) {
      try {
        token = await this.refresh();
      } catch (error) {
        unreachable = error;
      }
    }
    this.clearToken();
    this.setState({ status: "signed_out", me: null, notice });
    let outcome = notice;
    try {
      if (unreachable !== null) throw unreachable;
      if (token !== null) {
        await unwrap(
          this.publicApi.POST(path, { headers: { Authorization: `Bearer ${token}`, [TOKEN_TRANSPORT_HEADER]: "cookie" } }),
        );
      }
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) {
        outcome = `${notice} The server could not be told (${error instanceof Error ? error.message : String(error)}); sign out again later to end the session there too.`;
      }
    }
    // Unless someone signed in again meanwhile.
    if (outcome !== notice && this.accessToken === null) this.setState({ status: "signed_out", me: null, notice: outcome });
  }

  /** The session is over (refused refresh, or a 401 after a refresh): back to sign-in. */
  expire(notice: string = SESSION_ENDED): void {
    if (this.state.status === "signed_out" && this.accessToken === null) return;
    this.clearToken();
    this.setState({ status: "signed_out", me: null, notice });
  }

  // -- tokens -------------------------------------------------------------------------------

  /** One refresh at a time (and one per browser, across tabs): everyone waiting shares it. */
  refresh(): Promise<string | null> {
    if (this.refreshing === null) {
      this.refreshing = this.lock(() => this.refreshNow()).finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  private async refreshNow(): Promise<string | null> {
    const result = await this.publicApi
      .POST("/v1/auth/token", {
        body: { grant_type: "refresh_token" },
        bodySerializer: formBody,
        headers: FORM_HEADERS,
      })
      .catch(() => {
        throw new ApiError(0, NETWORK_ERROR, "cannot reach the server; check the connection and retry");
      });
    if (result.response.ok && result.data !== undefined) return this.setToken(result.data);
    if (result.response.status >= 500 || result.response.status === 429) {
      throw errorFromResponse(result.response, result.error);
    }
    // 400 invalid_grant, 401: the session is over (or there was none to restore).
    if (this.accessToken !== null) this.expire(SESSION_ENDED);
    return null;
  }

  private async authorizedFetch(request: Request): Promise<Response> {
    const spare = request.clone();
    const sent = this.accessToken;
    const epoch = this.epoch;
    if (sent !== null) request.headers.set("Authorization", `Bearer ${sent}`);
    const first = await this.rawFetch(request);
    if (first.status !== 401 || epoch !== this.epoch) return first;
    // Another call may have refreshed meanwhile: then its token is the one to retry with.
    let fresh = this.accessToken !== null && this.accessToken !== sent ? this.accessToken : null;
    if (fresh === null) fresh = await this.refresh();
    if (fresh === null) {
      this.expire(SESSION_ENDED);
      return first;
    }
    spare.headers.set("Authorization", `Bearer ${fresh}`);
    const second = await this.rawFetch(spare);
    if (second.status === 401) this.expire(SESSION_ENDED);
    return second;
  }
}
