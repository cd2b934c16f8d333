/** An API call that did not succeed, with the API's own `message` for people. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;
  readonly retryAfterS: number | null;

  constructor(status: number, code: string, message: string, details?: unknown, retryAfterS?: number | null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfterS = retryAfterS ?? null;
  }
}

export const NETWORK_ERROR = "network_error";

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Validation problems, as the gateway writes them: [{location: [...], problem: "..."}]. */
function problems(details: unknown): string {
  if (!Array.isArray(details)) return "";
  const parts = details
    .filter(isRecord)
    .map((item) => {
      const where = Array.isArray(item.location)
        ? item.location.filter((p) => p !== "body" && p !== "query").join(".")
        : "";
      const what = typeof item.problem === "string" ? item.problem : "";
      return where && what ? `${where}: ${what}` : what;
    })
    .filter(Boolean);
  return parts.length ? ` (${parts.join("; ")})` : "";
}

/** The error an API response stands for: the body is `{code, message, details}`, or anything
 * else a proxy in between may have answered. */
export function errorFromResponse(response: Response, body: unknown): ApiError {
  const retry = Number(response.headers.get("Retry-After"));
  const retryAfter = Number.isFinite(retry) && retry > 0 ? retry : null;
  if (isRecord(body) && typeof body.code === "string" && typeof body.message === "string") {
    const extra = body.code === "invalid_request" ? problems(body.details) : "";
    return new ApiError(response.status, body.code, body.message + extra, body.details, retryAfter);
  }
  // A short plain-text answer says more than the status; markup (a proxy's error page) does not.
  const text = typeof body === "string" && body.length < 200 && !body.includes("<") ? body.trim() : "";
  return new ApiError(
    response.status,
    `http_${response.status}`,
    text || `the server answered ${response.status} ${response.statusText}`.trim(),
    undefined,
    retryAfter,
  );
}

/** A message for anything thrown, for showing where it happened. */
export function messageOf(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}

type Result<D> = { data?: D; error?: unknown; response: Response };

/** The data of an openapi-fetch call, or its error thrown as an ApiError. */
export async function unwrap<D>(call: Promise<Result<D>>): Promise<D> {
  let result: Result<D>;
  try {
    result = await call;
  } catch (error) {
    if (error instanceof ApiError) throw error;
    if (error instanceof DOMException && error.name === "AbortError") throw error;
    throw new ApiError(0, NETWORK_ERROR, "cannot reach the server; check the connection and retry");
  }
  if (!result.response.ok) throw errorFromResponse(result.response, result.error);
  return result.data as D;
}
