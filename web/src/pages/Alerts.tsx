import { useEffect, useState, type FormEvent } from "react";
import { messageOf, unwrap } from "../api/errors";
import { CONDITIONS, INSTRUMENT_PATTERN, type AlertRequest, type AlertView, type Condition } from "../api/types";
import { api, feed } from "../app/services";
import { ErrorText, Loading } from "../components/common";
import { useLoad, useTitle } from "../lib/hooks";
import { instrumentPath, Link } from "../lib/router";
import { conditionText } from "../market/alertText";
import { dateTime } from "../market/format";

const CONDITION_LABEL: Record<Condition, string> = {
  crosses_above: "Crosses above a price",
  crosses_below: "Crosses below a price",
  percent_move: "Moves by a percentage within a window",
};

const UNITS = { seconds: 1, minutes: 60, hours: 3_600 } as const;
type Unit = keyof typeof UNITS;
// The API's own rule (CrossingAlert/MoveAlert threshold): a decimal above zero.
const THRESHOLD = /^(?:[0-9]*[1-9][0-9]*(?:\.[0-9]+)?|[0-9]+\.[0-9]*[1-9][0-9]*)$/;
const FIRED_PAGE = 50;

/** Price alerts: create, list waiting and fired, delete. Fired ones also pop a notification on
 * every page (see App). */
export default function Alerts() {
  useTitle("Alerts");
  // Waiting alerts have a quota (one page holds them all); fired ones come a page at a time.
  const waiting = useLoad((signal) => unwrap(api.GET("/v1/alerts", { params: { query: { state: "waiting", limit: 100 } }, signal })), []);
  const fired = useLoad((signal) => unwrap(api.GET("/v1/alerts", { params: { query: { state: "fired", limit: FIRED_PAGE } }, signal })), []);
  const known = useLoad((signal) => unwrap(api.GET("/v1/instruments", { signal })), []);
  const [olderError, setOlderError] = useState<string | null>(null);
  const reloadWaiting = waiting.reload;
  const reloadFired = fired.reload;
  // A fired alert: list it as fired (once more a moment later, in case the store lags the feed).
  useEffect(() => {
    const reload = () => {
      reloadWaiting();
      reloadFired();
    };
    const timers: Array<ReturnType<typeof setTimeout>> = [];
    const stop = feed.onAlert(() => {
      reload();
      timers.push(setTimeout(reload, 1_500));
    });
    return () => {
      stop();
      for (const timer of timers) clearTimeout(timer);
    };
  }, [reloadWaiting, reloadFired]);

  async function showOlder(cursor: string) {
    setOlderError(null);
    try {
      const older = await unwrap(api.GET("/v1/alerts", { params: { query: { state: "fired", limit: FIRED_PAGE, cursor } } }));
      fired.setData((current) => ({ items: [...(current?.items ?? []), ...older.items], next_cursor: older.next_cursor }));
    } catch (failure) {
      setOlderError(messageOf(failure));
    }
  }

  const [instrument, setInstrument] = useState("");
  const [condition, setCondition] = useState<Condition>("crosses_above");
  const [threshold, setThreshold] = useState("");
  const [windowValue, setWindowValue] = useState("60");
  const [unit, setUnit] = useState<Unit>("minutes");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function create(event: FormEvent) {
    event.preventDefault();
    setError(null);
    const id = instrument.trim();
    if (!INSTRUMENT_PATTERN.test(id)) {
      setError("Write the instrument as venue:SYMBOL, for example binance:BTC-USDT.");
      return;
    }
    if (!THRESHOLD.test(threshold.trim())) {
      setError("The threshold is a decimal number above zero such as 100000.5 (a dot, no thousands separators).");
      return;
    }
    let body: AlertRequest;
    if (condition === "percent_move") {
      const windowS = Math.round(Number(windowValue) * UNITS[unit]);
      if (!Number.isFinite(windowS) || windowS < 1 || windowS > 86_400) {
        setError("The window is between 1 second and 24 hours.");
        return;
      }
      body = { instrument: id, condition, threshold: threshold.trim(), window_s: windowS };
    } else {
      body = { instrument: id, condition, threshold: threshold.trim() };
    }
    setBusy(true);
    try {
      const created = await unwrap(api.POST("/v1/alerts", { body }));
      waiting.setData((current) => current && { ...current, items: [created, ...current.items] });
      setThreshold("");
    } catch (failure) {
      setError(messageOf(failure));
    } finally {
      setBusy(false);
    }
  }


  return (
    <section aria-labelledby="alerts-title">
      <h1 id="alerts-title" tabIndex={-1}>
        Alerts
      </h1>
      <form className="card form" onSubmit={create} aria-labelledby="new-alert">
        <h2 id="new-alert">New alert</h2>
        <p className="muted small">An alert fires once, the moment its condition is met on the live feed; you are notified on whatever page is open.</p>
        <label htmlFor="alert-instrument">Instrument</label>
        <input
          id="alert-instrument"
          list="alert-instruments"
          required
          placeholder="venue:SYMBOL"
          value={instrument}
          onChange={(event) => setInstrument(event.target.value)}
        />
        <datalist id="alert-instruments">
          {known.data?.instruments.map((item) => (
            <option key={item.instrument} value={item.instrument} />
          ))}
        </datalist>
        <label htmlFor="alert-condition">Condition</label>
        <select id="alert-condition" value={condition} onChange={(event) => setCondition(event.target.value as Condition)}>
          {CONDITIONS.map((value) => (
            <option key={value} value={value}>
              {CONDITION_LABEL[value]}
            </option>
          ))}
        </select>
        <label htmlFor="alert-threshold">{condition === "percent_move" ? "Move (percent)" : "Price"}</label>
        <input
          id="alert-threshold"
          inputMode="decimal"
          required
          placeholder={condition === "percent_move" ? "2.5" : "100000.5"}
          value={threshold}
          onChange={(event) => setThreshold(event.target.value)}
        />
        {condition === "percent_move" && (
          <fieldset className="inline-fieldset">
            <legend>Window</legend>
            <label htmlFor="alert-window">Length</label>
            <input id="alert-window" type="number" min={1} step="any" required value={windowValue} onChange={(event) => setWindowValue(event.target.value)} />
            <label htmlFor="alert-window-unit">Unit</label>
            <select id="alert-window-unit" value={unit} onChange={(event) => setUnit(event.target.value as Unit)}>
              {(Object.keys(UNITS) as Unit[]).map((value) => (
                <option key={value} value={value}>
                  {value}
                </option>
              ))}
            </select>
          </fieldset>
        )}
        <ErrorText error={error} />
        <div className="actions">
          <button type="submit" disabled={busy}>
            Create alert
          </button>
        </div>
      </form>

      {(waiting.loading || fired.loading) && (waiting.data === undefined || fired.data === undefined) && <Loading what="your alerts" />}
      <ErrorText error={waiting.error ?? fired.error} />
      {waiting.data && fired.data && (
        <>
          <AlertTable
            caption="Waiting"
            alerts={waiting.data.items}
            empty="No alert is waiting."
            fired={false}
            onDeleted={(id) => waiting.setData((current) => current && { ...current, items: current.items.filter((alert) => alert.alert_id !== id) })}
          />
          <AlertTable
            caption="Fired"
            alerts={fired.data.items}
            empty="No alert has fired yet."
            fired
            onDeleted={(id) => fired.setData((current) => current && { ...current, items: current.items.filter((alert) => alert.alert_id !== id) })}
            older={fired.data.next_cursor ? { cursor: fired.data.next_cursor, show: showOlder, error: olderError } : null}
          />
        </>
      )}
    </section>
  );
}

function AlertTable({
  caption,
  alerts,
  empty,
  fired,
  onDeleted,
  older = null,
}: {
  caption: string;
  alerts: readonly AlertView[];
  empty: string;
  fired: boolean;
  onDeleted: (id: string) => void;
  /** More of them than shown: the next page's cursor. */
  older?: { cursor: string; show: (cursor: string) => Promise<void>; error: string | null } | null;
}) {
  const [error, setError] = useState<string | null>(null);
  async function remove(alert: AlertView) {
    setError(null);
    try {
      await unwrap(api.DELETE("/v1/alerts/{alert_id}", { params: { path: { alert_id: alert.alert_id } } }));
      onDeleted(alert.alert_id);
    } catch (failure) {
      setError(messageOf(failure));
    }
  }
  return (
    <div className="card">
      <h2>{caption}</h2>
      <ErrorText error={error} />
      {alerts.length === 0 ? (
        <p className="muted">{empty}</p>
      ) : (
        <div className="table-wrap">
          <table>
            <caption className="visually-hidden">{caption} alerts</caption>
            <thead>
              <tr>
                <th scope="col">Instrument</th>
                <th scope="col">Condition</th>
                <th scope="col">Created</th>
                {fired && <th scope="col">Fired</th>}
                {fired && (
                  <th scope="col" className="num">
                    At price
                  </th>
                )}
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {alerts.map((alert) => (
                <tr key={alert.alert_id}>
                  <th scope="row">
                    <Link to={instrumentPath(alert.instrument)}>{alert.instrument}</Link>
                  </th>
                  <td>{conditionText(alert.condition, alert.threshold, alert.window_s)}</td>
                  <td>{dateTime(alert.created_at)}</td>
                  {fired && <td>{dateTime(alert.triggered_at)}</td>}
                  {fired && <td className="num">{alert.triggered_price ?? "—"}</td>}
                  <td>
                    <button
                      type="button"
                      className="danger"
                      onClick={() => void remove(alert)}
                      aria-label={`Delete the alert on ${alert.instrument} that ${conditionText(alert.condition, alert.threshold, alert.window_s)}`}
                    >
                      Delete
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {older && (
        <div className="actions">
          <ErrorText error={older.error} />
          <button type="button" onClick={() => void older.show(older.cursor)}>
            Show older {caption.toLowerCase()} alerts
          </button>
        </div>
      )}
    </div>
  );
}
