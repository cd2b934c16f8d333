"""The web app's refresh token travels in a cookie, never through JavaScript.

A browser asks for it with the header ``X-Token-Transport: cookie``: the token endpoint then
sets the refresh token as an HttpOnly cookie (script on the page, injected or not, cannot read
it) scoped to ``/v1/auth`` (sent nowhere else) with SameSite=Strict (never sent on a request
another site starts), and leaves it out of the JSON body. The endpoint reads the cookie only from
requests that carry the header again, which a cross-site form cannot send: the cookie alone
buys an attacker nothing. API clients that send no header get the token in the body, as before.
"""

from __future__ import annotations

from fastapi import Request, Response

__all__ = ["COOKIE", "HEADER", "PATH", "wants_cookie", "cookie_token", "deliver", "clear"]

COOKIE = "finone_refresh"
HEADER = "X-Token-Transport"
PATH = "/v1/auth"


def wants_cookie(request: Request) -> bool:
    return request.headers.get(HEADER, "").strip().lower() == "cookie"


def cookie_token(request: Request) -> str | None:
    """The refresh token from the cookie, for requests that asked for cookie transport."""
    return request.cookies.get(COOKIE) if wants_cookie(request) else None


def deliver(
    request: Request, response: Response, refresh_token: str | None, lifetime_s: int
) -> str | None:
    """Put a new refresh token where the caller asked for it; returns what the body carries."""
    if refresh_token is None or not wants_cookie(request):
        return refresh_token
    response.set_cookie(
        COOKIE,
        refresh_token,
        max_age=lifetime_s,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return None


def clear(response: Response) -> None:
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict")
