import { describe, expect, it } from "vitest";
import { ApiError, errorFromResponse, unwrap } from "./errors";

describe("API errors", () => {
  it("carries the API's code and message", () => {
    const error = errorFromResponse(new Response(null, { status: 409, headers: { "Retry-After": "30" } }), {
      code: "email_taken",
      message: "an account with this email already exists",
      details: null,
    });
    expect(error).toMatchObject({ status: 409, code: "email_taken", message: "an account with this email already exists", retryAfterS: 30 });
  });

  it("names the fields of an invalid request", () => {
    const error = errorFromResponse(new Response(null, { status: 422 }), {
      code: "invalid_request",
      message: "the request is not valid",
      details: [{ location: ["body", "email"], problem: "value is not a valid email address" }],
    });
    expect(error.message).toBe("the request is not valid (email: value is not a valid email address)");
  });

  it("says something useful when a proxy answered instead of the API", () => {
    const error = errorFromResponse(new Response(null, { status: 502, statusText: "Bad Gateway" }), "<html>bad gateway</html>");
    expect(error.code).toBe("http_502");
    expect(error.message).toContain("502");
  });

  it("turns an unreachable server into a network error", async () => {
    await expect(unwrap(Promise.reject(new TypeError("Failed to fetch")))).rejects.toMatchObject({ code: "network_error" });
    await expect(unwrap(Promise.reject(new TypeError("Failed to fetch")))).rejects.toBeInstanceOf(ApiError);
  });
});
