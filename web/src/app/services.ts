/** The app's one session and one live-feed connection, shared by every page. */
import { Session } from "../auth/session";
import { FeedClient } from "../live/feedClient";

function feedUrl(): string {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${window.location.host}/v1/stream`;
}

export const session = new Session({ baseUrl: window.location.origin });
export const api = session.api;
export const feed = new FeedClient({ url: feedUrl(), auth: session });

// The feed runs while someone is signed in.
session.subscribe(() => {
  if (session.getState().status === "signed_in") feed.start();
  else if (session.getState().status === "signed_out") feed.stop();
});
