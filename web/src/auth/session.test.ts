import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Session } from "./session";

const ME = {
  user_id: "u-1",
  email: "ann@example.com",
  role: "user",
  disabled: false,
  created_at: "2025-11-26T09:40:12Z",
  scopes: ["account", "market:read", "predictions:read", "stream:read"],
  client_id: null,
};

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

function tokens(token: string, expiresIn = 900): Response {
  return json(200, { access_token: token, token_type: "bearer", expires_in: expiresIn, refresh_token: null, scope: "account" });
}

interface Seen {
  path: string;
  method: string;
  authorization: string | null;
  transport: string | null;
  body: string;
}

/** A gateway stand-in: `handle` answers each request; every request is recorded. */
function gateway(handle: (request: Seen) => Response | Promise<Response>) {
  const seen: Seen[] = [];
  const fetch = async (request: Request) => {
    const entry: Seen = {
      path: new URL(request.url).pathname,
      method: request.method,
      authorization: request.headers.get("Authorization"),
      transport: request.headers.get("X-Token-Transport"),
      body: request.body ? await request.text() : "",
    };
    seen.push(entry);
    return handle(entry);
  };
  return { seen, fetch };
}

const refreshes = (seen: Seen[]) => seen.filter((r) => r.path === "/v1/auth/token" && r.body.includes("grant_type=refresh_token"));

describe("Session", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("signs in with a form-encoded password grant asking for the cookie transport", async () => {
    const server = gateway((r) => (r.path === "/v1/auth/token" ? tokens("t-1") : json(200, ME)));
    const session = new Session({ baseUrl: "http://gateway", fetch: server.fetch, lock: (task) => task() });
    await session.signIn("ann@example.com", "correct horse battery staple");
    const [token, me] = server.seen;
    expect(token?.transport).toBe("cookie");
    expect(new URLSearchParams(token?.body)).toEqual(
      new URLSearchParams({ grant_type: "password", username: "ann@example.com", password: "correct horse battery staple" }),
    );
    expect(me?.authorization).toBe("Bearer t-1");
    expect(session.getState()).toMatchObject({ status: "signed_in", me: { email: "ann@example.com" } });
  });

  it("shows the API's message when sign-in is refused", async () => {
    const server = gateway(() => json(401, { code: "invalid_grant", message: "incorrect email or password", details: null }));
    const session = new Session({ baseUrl: "http://gateway", fetch: server.fetch, lock: (task) => task() });
    await expect(session.signIn("ann@example.com", "nope")).rejects.toThrow("incorrect email or password");
    expect(session.token()).toBeNull();
  });

  it("restores a session on start with one silent refresh from the cookie", async () => {
    const server = gateway((r) => (r.path === "/v1/auth/token" ? tokens("t-restored") : json(200, ME)));
    const session = new Session({ baseUrl: "http://gateway", fetch: server.fetch, lock: (task) => task() });
    expect(await session.restore()).toBe(true);
    expect(refreshes(server.seen)).toHaveLength(1);
    expect(refreshes(server.seen)[0]?.body).toBe("grant_type=refresh_token");
    expect(session.getState().status).toBe("signed_in");
  });

  it("keeps trying the cookie on later starts when the server is busy at restore", async () => {
    let flag = true;
    const hint = { get: () => flag, set: (on: boolean) => void (flag = on) };
    const server = gateway(() => json(429, { code: "rate_limited", message: "too many requests", details: null }));
    const session = new Session({ baseUrl: "http://gateway", fetch: server.fetch, lock: (task) => task(), hint });
    expect(await session.restore()).toBe(false);
    expect(session.getState()).toMatchObject({ status: "signed_out", notice: expect.stringContaining("too many requests") });
    expect(flag).toBe(true);
  });

  it("shows sign-in when there is no session to restore", async () => {
    const server = gateway(() => json(400, { code: "invalid_grant", message: "no refresh token", details: null }));
    const session = new Session({ baseUrl: "http://gateway", fetch: server.fetch, lock: (task) => task() });
    expect(await session.restore()).toBe(false);
    expect(session.getState()).toEqual({ status: "signed_out", me: null, notice: null });
  });

  it("answers a 401 with one refresh and one retry with the new token", async () => {
    let listCalls = 0;
    const server = gateway((r) => {
      if (r.path === "/v1/auth/token") return tokens(r.body.includes("password") ? "t-old" : "t-new");
      if (r.path === "/v1/auth/me") return json(200, ME);
      listCalls += 1;
      return r.authorization === "Bearer t-new" ? json(200, []) : json(401, { code: "invalid_token", message: "expired", details: null });
    });
    const session = new Session({ baseUrl: "http://gateway", fetch: server.fetch, lock: (task) => task() });
    await session.signIn("ann@example.com", "pw");
    const result = await session.api.GET("/v1/watchlists");
    expect(result.data).toEqual([]);
    expect(listCalls).toBe(2);
    expect(refreshes(server.seen)).toHaveLength(1);
    expect(session.getState().status).toBe("signed_in");
  });

  it("refreshes once for many calls refused at the same time", async () => {
    const server = gateway((r) => {
      if (r.path === "/v1/auth/token") return tokens(r.body.includes("password") ? "t-old" : "t-new");
      if (r.path === "/v1/auth/me") return json(200, ME);
      return r.authorization === "Bearer t-new" ? json(200, []) : json(401, { code: "invalid_token", message: "expired", details: null });
    });
    const session = new Session({ baseUrl: "http://gateway", fetch: server.fetch, lock: (task) => task() });
    await session.signIn("ann@example.com", "pw");
    const results = await Promise.all([session.api.GET("/v1/watchlists"), session.api.GET("/v1/alerts"), session.api.GET("/v1/watchlists")]);
    expect(results.every((result) => result.response.ok)).toBe(true);
    expect(refreshes(server.seen)).toHaveLength(1);
  });

  it("returns to sign-in when the retry is refused too", async () => {
    const server = gateway((r) => {
      if (r.path === "/v1/auth/token") return tokens("t");
      if (r.path === "/v1/auth/me") return json(200, ME);
      return json(401, { code: "invalid_token", message: "revoked", details: null });
    });
    const session = new Session({ baseUrl: "http://gateway", fetch: server.fetch, lock: (task) => task() });
    await session.signIn("ann@example.com", "pw");
    const result = await session.api.GET("/v1/alerts");
    expect(result.response.status).toBe(401);
    expect(server.seen.filter((r) => r.path === "/v1/alerts")).toHaveLength(2);
    expect(session.getState()).toMatchObject({ status: "signed_out", notice: expect.stringContaining("session has ended") });
    expect(session.token()).toBeNull();
  });

  it("returns to sign-in when the refresh is refused", async () => {
    const server = gateway((r) => {
      if (r.path === "/v1/auth/token") {
        return r.body.includes("password") ? tokens("t") : json(400, { code: "invalid_grant", message: "reused", details: null });
      }
      if (r.path === "/v1/auth/me") return json(200, ME);
      return json(401, { code: "invalid_token", message: "expired", details: null });
    });
    const session = new Session({ baseUrl: "http://gateway", fetch: server.fetch, lock: (task) => task() });
    await session.signIn("ann@example.com", "pw");
    await session.api.GET("/v1/alerts");
    expect(server.seen.filter((r) => r.path === "/v1/alerts")).toHaveLength(1);
    expect(session.getState().status).toBe("signed_out");
  });

  it("refreshes the token at 80% of its lifetime and tells the live feed", async () => {
    let issued = 0;
    const server = gateway((r) => {
      if (r.path === "/v1/auth/token") return tokens(`t-${++issued}`, 100);
      return json(200, ME);
    });
    const session = new Session({ baseUrl: "http://gateway", fetch: server.fetch, lock: (task) => task() });
    const told: string[] = [];
    session.onToken((token) => told.push(token));
    await session.signIn("ann@example.com", "pw");
    await vi.advanceTimersByTimeAsync(79_000);
    expect(refreshes(server.seen)).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(refreshes(server.seen)).toHaveLength(1);
    expect(session.token()).toBe("t-2");
    expect(told).toEqual(["t-1", "t-2"]);
    await vi.advanceTimersByTimeAsync(80_000);
    expect(session.token()).toBe("t-3");
  });

  it("keeps the session through a network failure while refreshing, and retries", async () => {
    let down = false;
    let issued = 0;
    const server = gateway((r) => {
      if (down) throw new TypeError("Failed to fetch");
      if (r.path === "/v1/auth/token") return tokens(`t-${++issued}`, 100);
      return json(200, ME);
    });
    const session = new Session({ baseUrl: "http://gateway", fetch: server.fetch, lock: (task) => task() });
    await session.signIn("ann@example.com", "pw");
    down = true;
    await vi.advanceTimersByTimeAsync(80_000);
    expect(session.getState().status).toBe("signed_in");
    down = false;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(session.token()).toBe("t-2");
  });

  it("signs out locally even when the server cannot be told", async () => {
    let down = false;
    const server = gateway((r) => {
      if (down) throw new TypeError("Failed to fetch");
      return r.path === "/v1/auth/token" ? tokens("t") : json(200, ME);
    });
    const session = new Session({ baseUrl: "http://gateway", fetch: server.fetch, lock: (task) => task() });
    await session.signIn("ann@example.com", "pw");
    down = true;
    await session.signOut();
    expect(session.token()).toBeNull();
    expect(session.getState()).toMatchObject({ status: "signed_out", notice: expect.stringContaining("could not be told") });
  });

  it("signs out here before telling the server, with the session's token and the cookie", async () => {
    const server = gateway((r) => (r.path === "/v1/auth/token" ? tokens("t-1") : json(200, ME)));
    const session = new Session({ baseUrl: "http://gateway", fetch: server.fetch, lock: (task) => task() });
    await session.signIn("ann@example.com", "pw");
    const states: string[] = [];
    session.subscribe(() => states.push(session.getState().status));
    const ending = session.signOut();
    expect(session.getState()).toMatchObject({ status: "signed_out", notice: "You signed out." });
    await ending;
    const logout = server.seen.find((r) => r.path === "/v1/auth/logout");
    expect(logout).toMatchObject({ authorization: "Bearer t-1", transport: "cookie" });
    expect(states).toEqual(["signed_out"]);
    expect(session.getState().notice).toBe("You signed out.");
  });

  it("does not refresh for a request refused because the session ended while it was sent", async () => {
    let answer: (response: Response) => void = () => undefined;
    const server = gateway((r) => {
      if (r.path === "/v1/auth/token") return tokens("t-1");
      if (r.path === "/v1/watchlists") return new Promise<Response>((resolve) => (answer = resolve));
      return json(200, ME);
    });
    const session = new Session({ baseUrl: "http://gateway", fetch: server.fetch, lock: (task) => task() });
    await session.signIn("ann@example.com", "pw");
    const pending = session.api.GET("/v1/watchlists");
    await vi.waitFor(() => expect(server.seen.some((r) => r.path === "/v1/watchlists")).toBe(true));
    await session.signOut();
    answer(json(401, { code: "invalid_token", message: "the session has ended; log in again", details: null }));
    expect((await pending).response.status).toBe(401);
    expect(refreshes(server.seen)).toHaveLength(0);
    expect(server.seen.filter((r) => r.path === "/v1/watchlists")).toHaveLength(1);
  });
});

describe("Session and the live feed", () => {
  it("ends the session when the feed's refresh is refused", async () => {
    const server = gateway((r) => {
      if (r.path === "/v1/auth/token") {
        return r.body.includes("password") ? tokens("t") : json(401, { code: "invalid_grant", message: "session revoked", details: null });
      }
      return json(200, ME);
    });
    const session = new Session({ baseUrl: "http://gateway", fetch: server.fetch, lock: (task) => task() });
    await session.signIn("ann@example.com", "pw");
    expect(await session.refresh()).toBeNull();
    expect(session.getState().status).toBe("signed_out");
  });
});

describe("Session hint", () => {
  it("skips the refresh on start in a browser that never signed in, and remembers a sign-in", async () => {
    let flag = false;
    const hint = { get: () => flag, set: (on: boolean) => void (flag = on) };
    const server = gateway((r) => (r.path === "/v1/auth/token" ? tokens("t") : json(200, ME)));
    const session = new Session({ baseUrl: "http://gateway", fetch: server.fetch, lock: (task) => task(), hint });
    expect(await session.restore()).toBe(false);
    expect(server.seen).toHaveLength(0);
    expect(session.getState().status).toBe("signed_out");
    await session.signIn("ann@example.com", "pw");
    expect(flag).toBe(true);
    const again = new Session({ baseUrl: "http://gateway", fetch: server.fetch, lock: (task) => task(), hint });
    expect(await again.restore()).toBe(true);
    await again.signOut();
    expect(flag).toBe(false);
  });
});
