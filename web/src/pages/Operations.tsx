import { useState } from "react";
import { ApiError, messageOf, unwrap } from "../api/errors";
import type { FeedStatusView, RetrainStatus } from "../api/types";
import { api } from "../app/services";
import { ErrorText, FeedState, Loading } from "../components/common";
import { useInterval, useLoad, useTitle } from "../lib/hooks";
import { compact } from "../market/format";
import { lastRun, runProgress } from "../ops/retraining";

/** Feeds, recording, retraining and the health of backing services (operators and admins). */
export default function Operations() {
  useTitle("Operations");
  return (
    <section aria-labelledby="ops-title">
      <div className="page-head">
        <h1 id="ops-title" tabIndex={-1}>
          Operations
        </h1>
        <Consoles />
      </div>
      <Feeds />
      <Retraining />
      <Services />
    </section>
  );
}

/** The MLflow UI and the Ray dashboard live on their own servers, wherever the platform says
 * (they are not under the gateway's origin). */
function Consoles() {
  const consoles = useLoad((signal) => unwrap(api.GET("/v1/ops/consoles", { signal })), []);
  const links = [
    { name: "MLflow UI", url: consoles.data?.mlflow_ui },
    { name: "Ray dashboard", url: consoles.data?.ray_dashboard },
  ];
  return (
    <nav aria-label="Operator tools" className="actions">
      {consoles.error && <span className="error small">Consoles: {consoles.error}</span>}
      {links.map(({ name, url }) =>
        url ? (
          <a key={name} href={url} target="_blank" rel="noopener noreferrer">
            {name}
          </a>
        ) : (
          consoles.data && (
            <span key={name} className="muted small">
              {name}: not configured
            </span>
          )
        ),
      )}
    </nav>
  );
}

function age(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 120) return `${seconds.toFixed(1)} s`;
  return `${Math.round(seconds / 60)} min`;
}

function Feeds() {
  const feeds = useLoad((signal) => unwrap(api.GET("/v1/ops/feeds", { signal })), []);
  useInterval(feeds.reload, 5_000);
  const [messages, setMessages] = useState<Record<string, { text: string; error: boolean }>>({});
  const [busy, setBusy] = useState<string | null>(null);

  function say(connection: string, text: string, error = false) {
    setMessages((current) => ({ ...current, [connection]: { text, error } }));
  }

  async function restart(feed: FeedStatusView) {
    setBusy(feed.connection);
    try {
      await unwrap(api.POST("/v1/ops/feeds/{connection}/restart", { params: { path: { connection: feed.connection } } }));
      say(feed.connection, "Restarting: it reconnects at once and publishes a gap.");
      feeds.reload();
    } catch (error) {
      say(feed.connection, messageOf(error), true);
    } finally {
      setBusy(null);
    }
  }

  async function record(feed: FeedStatusView, on: boolean) {
    setBusy(feed.connection);
    try {
      const state = await unwrap(
        api.PUT("/v1/ops/feeds/{connection}/recording", { params: { path: { connection: feed.connection } }, body: { on } }),
      );
      say(feed.connection, state.recording ? `Recording to ${state.capture_file ?? "a capture file"}.` : "Recording stopped.");
      feeds.setData((current) => current?.map((other) => (other.connection === feed.connection ? { ...other, recording: state.recording } : other)));
    } catch (error) {
      say(feed.connection, messageOf(error), true);
    } finally {
      setBusy(null);
    }
  }

  return (
    <div className="card">
      <h2>Feeds</h2>
      {feeds.loading && feeds.data === undefined && <Loading what="feed status" />}
      <ErrorText error={feeds.error} />
      {feeds.data && feeds.data.length === 0 && <p className="muted">No feed connection is configured.</p>}
      {feeds.data && feeds.data.length > 0 && (
        <div className="table-wrap">
          <table>
            <caption className="visually-hidden">Feed connections, refreshed every 5 seconds</caption>
            <thead>
              <tr>
                <th scope="col">Connection</th>
                <th scope="col">State</th>
                <th scope="col" className="num">
                  Symbols
                </th>
                <th scope="col" className="num">
                  Messages/s
                </th>
                <th scope="col" className="num">
                  Events/s
                </th>
                <th scope="col" className="num">
                  Last message
                </th>
                <th scope="col" className="num">
                  Gaps
                </th>
                <th scope="col" className="num">
                  Reconnects
                </th>
                <th scope="col" className="num" title="Connections replaced at the venue's age limit without a gap">
                  Rotations
                </th>
                <th scope="col" className="num">
                  Unpublished
                </th>
                <th scope="col">Recording</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {feeds.data.map((feed) => {
                const problems = Object.entries(feed.problems ?? {});
                const note = messages[feed.connection];
                return (
                  <tr key={feed.connection}>
                    <th scope="row">
                      {feed.connection}
                      <div className="muted small">{feed.venue}</div>
                    </th>
                    <td>
                      <FeedState state={feed.state} />
                      {feed.detail && <div className="muted small">{feed.detail}</div>}
                      {problems.length > 0 && (
                        <div className="muted small">Problems: {problems.map(([name, count]) => `${name} ${count}`).join(", ")}</div>
                      )}
                      {feed.redis_ok === false && <div className="error small">Redis unreachable</div>}
                    </td>
                    <td className="num">{feed.symbols?.length ?? 0}</td>
                    <td className="num">{compact(feed.messages_per_s)}</td>
                    <td className="num">{compact(feed.events_per_s)}</td>
                    <td className="num">{age(feed.last_message_age_s)}</td>
                    <td className="num">{feed.gaps ?? "—"}</td>
                    <td className="num">{feed.reconnects ?? "—"}</td>
                    <td className="num">{feed.rotations ?? "—"}</td>
                    <td className="num">{feed.unpublished ?? "—"}</td>
                    <td>
                      <label className="switch">
                        <input
                          type="checkbox"
                          role="switch"
                          checked={feed.recording === true}
                          disabled={busy === feed.connection || feed.recording === null || feed.recording === undefined}
                          onChange={(event) => void record(feed, event.target.checked)}
                        />
                        <span>{feed.recording ? "On" : "Off"}</span>
                        <span className="visually-hidden"> recording of {feed.connection}</span>
                      </label>
                    </td>
                    <td>
                      <button type="button" className="secondary" disabled={busy === feed.connection} onClick={() => void restart(feed)} aria-label={`Restart ${feed.connection}`}>
                        Restart
                      </button>
                      {note && (
                        <p className={note.error ? "error small" : "muted small"} role={note.error ? "alert" : "status"}>
                          {note.text}
                        </p>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

function Retraining() {
  const status = useLoad((signal) => unwrap(api.GET("/v1/ops/retrain", { signal })), []);
  const data: RetrainStatus | undefined = status.data;
  // More often while a run goes, so that its steps and its clock are seen to move.
  useInterval(status.reload, data?.state === "training" ? 2_000 : 10_000);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function retrain() {
    setBusy(true);
    setError(null);
    try {
      const next = await unwrap(api.POST("/v1/ops/retrain"));
      status.setData(() => next);
    } catch (failure) {
      setError(messageOf(failure));
    } finally {
      setBusy(false);
    }
  }

  const unavailable = status.failure instanceof ApiError && status.failure.status === 503;
  const run = data && runProgress(data);
  return (
    <div className="card" aria-live="polite">
      <div className="card-head">
        <h2>Retraining</h2>
        <button type="button" onClick={() => void retrain()} disabled={busy || data?.state === "training"}>
          Retrain now
        </button>
      </div>
      <ErrorText error={error} />
      {status.loading && data === undefined && <Loading what="the retraining state" />}
      {unavailable && <p className="muted">{status.error}</p>}
      {!unavailable && <ErrorText error={status.error} />}
      {data && (
        <>
          <dl className="facts">
            <div>
              <dt>State</dt>
              <dd>
                <span className={`state state-${data.state}`}>{data.state}</span>
              </dd>
            </div>
            <div>
              <dt>Detail</dt>
              <dd>{data.detail || "—"}</dd>
            </div>
            <div>
              <dt>Runs</dt>
              <dd>{data.runs}</dd>
            </div>
            <div>
              <dt>Last run</dt>
              <dd>{lastRun(data)}</dd>
            </div>
            <div>
              <dt>Trains on</dt>
              <dd>{data.instruments.join(", ") || "—"}</dd>
            </div>
            <div>
              <dt>Bar intervals</dt>
              <dd>{data.intervals.join(", ")}</dd>
            </div>
          </dl>
          {run && (
            // Off the card's live region: its clock changes with every poll, the detail above is
            // read out when a step ends.
            <div className="run-progress" aria-live="off">
              <progress max={run.step?.total} value={run.step?.done} aria-label={`Retraining: ${run.step?.phase ?? "starting"}`} />
              <span className="small">{run.text}</span>
            </div>
          )}
          {data.decisions.length > 0 && (
            <div className="table-wrap">
              <table>
                <caption>Decisions of the last run</caption>
                <thead>
                  <tr>
                    <th scope="col">Model</th>
                    <th scope="col">Version</th>
                    <th scope="col">Alias</th>
                    <th scope="col">Reason</th>
                  </tr>
                </thead>
                <tbody>
                  {data.decisions.map((decision) => (
                    <tr key={`${decision.model}-${decision.version}`}>
                      <th scope="row">{decision.model}</th>
                      <td>{decision.version}</td>
                      <td>{decision.alias}</td>
                      <td>{decision.reason}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </>
      )}
    </div>
  );
}

function Services() {
  const report = useLoad((signal) => unwrap(api.GET("/v1/ops/services", { signal })), []);
  useInterval(report.reload, 15_000);
  return (
    <div className="card">
      <h2>Backing services</h2>
      {report.loading && report.data === undefined && <Loading what="service health" />}
      <ErrorText error={report.error} />
      {report.data && (
        <div className="table-wrap">
          <table>
            <caption>{report.data.healthy ? "All services answer." : "Some services do not answer."}</caption>
            <thead>
              <tr>
                <th scope="col">Service</th>
                <th scope="col">Health</th>
                <th scope="col">Detail</th>
                <th scope="col" className="num">
                  Latency
                </th>
              </tr>
            </thead>
            <tbody>
              {report.data.checks.map((check) => (
                <tr key={check.name}>
                  <th scope="row">{check.name}</th>
                  <td>{check.ok ? <span className="state state-live">✓ ok</span> : <span className="state state-failed">✕ failing</span>}</td>
                  <td>{check.detail}</td>
                  <td className="num">{check.latency_ms === null || check.latency_ms === undefined ? "—" : `${check.latency_ms.toFixed(1)} ms`}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}
