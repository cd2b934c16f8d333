"""The gateway's request metrics, exported through Ray's metrics agent like every other part's.

Requests are timed by an ASGI middleware and labelled with the route *template* that handled
them (``/v1/watchlists/{watchlist_id}``), never the raw path, so a series exists per endpoint
rather than per id a caller makes up. WebSocket connections are not requests: the live feed
counts its own (``serve.stream_hub``).
"""

from __future__ import annotations

import time

from ray.util.metrics import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RequestMetrics", "LATENCY_BUCKETS_S", "UNMATCHED_ROUTE"]

# Seconds: from a millisecond (a cached read) to ten seconds (a request about to time out).
LATENCY_BUCKETS_S = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
UNMATCHED_ROUTE = "unmatched"
# Any token is a valid HTTP method on the wire; others are one series, not one each.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    """Times every HTTP request into ``finone_http_request_seconds{method, route, status}``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._seconds = Histogram(
            "finone_http_request_seconds",
            "Seconds from a request's arrival to its last response byte, per route template",
            LATENCY_BUCKETS_S,
            ("method", "route", "status"),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # What an exception escaping the app becomes, once the error middleware outside answers.
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            method = scope["method"]
            self._seconds.observe(
                time.perf_counter() - started,
                tags={
                    "method": method if method in _METHODS else "other",
                    "route": _route_template(scope),
                    "status": str(status),
                },
            )


def _route_template(scope: Scope) -> str:
    # The router records the route it chose in the (shared) scope; 404s never get one.
    route = scope.get("route")
    if route is not None:
        return str(route.path)
    # FastAPI's own pages (/docs, /openapi.json) are matched without recording their route;
    # without parameters, their path is their template.
    if "endpoint" in scope and not scope.get("path_params"):
        return str(scope["path"]).removeprefix(scope.get("root_path", ""))
    return UNMATCHED_ROUTE
