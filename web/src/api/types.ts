// Named views of the generated OpenAPI schema (schema.d.ts is written by `npm run generate`).
import type { components, paths } from "./schema";

type Schemas = components["schemas"];

export type { paths };
export type ErrorBody = Schemas["ErrorBody"];
export type TokenResponse = Schemas["TokenResponse"];
export type Me = Schemas["Me"];
export type Role = Schemas["Role"];
export type Scope = Schemas["Scope"];
export type UserView = Schemas["UserView"];
export type InstrumentView = Schemas["InstrumentView"];
export type FeedView = Schemas["FeedView"];
export type QuoteView = Schemas["QuoteView"];
export type BarRow = Schemas["BarRow"];
export type TradeRow = Schemas["TradeRow"];
export type WatchlistView = Schemas["WatchlistView"];
export type WatchlistBody = Schemas["WatchlistBody"];
export type AlertView = Schemas["AlertView"];
/** A new alert: a price crossing or a move within a window, told apart by `condition`. */
export type AlertRequest = Schemas["CrossingAlert"] | Schemas["MoveAlert"];
export type Condition = Schemas["Condition"];
export type PredictionView = Schemas["PredictionView"];
export type ServedModelView = Schemas["ServedModelView"];
export type ReturnForecastView = Schemas["ReturnForecastView"];
export type VolatilityForecastView = Schemas["VolatilityForecastView"];
export type InsightView = Schemas["InsightView"];
export type ClientView = Schemas["ClientView"];
export type CreatedClient = Schemas["CreatedClient"];
export type FeedStatusView = Schemas["FeedStatusView"];
export type RecordingState = Schemas["RecordingState"];
export type RetrainStatus = Schemas["RetrainStatus"];
export type RetrainProgressView = Schemas["RetrainProgressView"];
export type ServicesReport = Schemas["ServicesReport"];
export type AuditRecord = Schemas["AuditRecord"];
export type AuditEvent = Schemas["AuditEvent"];

/** The bar lengths /v1/history/bars accepts. */
export type Interval = NonNullable<paths["/v1/history/bars"]["get"]["parameters"]["query"]>["interval"];

/** Every member of a string union, listed at run time: the compiler rejects a list that misses
 * one the API added or names one it dropped, so such an API change breaks the build. */
export function exhaustive<T extends string>() {
  return <const L extends readonly T[]>(
    list: L & ([T] extends [L[number]] ? unknown : { missing: Exclude<T, L[number]> }),
  ): readonly T[] => list;
}

export const INTERVALS = exhaustive<Interval>()(["1s", "1m", "5m", "15m", "1h", "1d"]);
export const SCOPES = exhaustive<Scope>()([
  "market:read",
  "stream:read",
  "predictions:read",
  "account",
  "operations",
  "admin",
]);
export const ROLES = exhaustive<Role>()(["user", "operator", "admin"]);
export const CONDITIONS = exhaustive<Condition>()(["crosses_above", "crosses_below", "percent_move"]);
export const AUDIT_EVENTS = exhaustive<AuditEvent>()([
  "registered",
  "login_succeeded",
  "login_failed",
  "login_rate_limited",
  "refresh_token_reused",
  "logged_out",
  "logged_out_everywhere",
  "password_changed",
  "role_changed",
  "user_disabled",
  "user_enabled",
  "client_created",
  "client_revoked",
  "client_authentication_failed",
  "signing_key_rotated",
  "signing_key_revoked",
  "access_denied",
]);

/** Instrument ids as the API's pattern has them: venue:SYMBOL. */
export const INSTRUMENT_PATTERN = /^[a-z0-9_]{1,32}:[A-Za-z0-9._/-]{1,48}$/;
