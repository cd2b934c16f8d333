"""The API's one error format: ``{"code": "...", "message": "...", "details": ...}``.

``code`` is stable and meant for programs; ``message`` is for people. Nothing else escapes: an
unexpected exception becomes ``internal_error`` without a stack trace.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import asyncpg
import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

__all__ = [
    "ApiError",
    "ErrorBody",
    "OpenApiResponses",
    "install_error_handlers",
    "error_response",
    "on_http_error",
    "token_errors",
]

log = logging.getLogger(__name__)
# The detail of the 400 FastAPI raises for a body it cannot decode at all.
_UNREADABLE_BODY = "There was an error parsing the body"

# A route's documented responses by status, as FastAPI's ``responses`` takes them.
OpenApiResponses = dict[int | str, dict[str, Any]]


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any | None = None


def token_errors(forbidden: str) -> OpenApiResponses:
    """The OpenAPI responses of routes that need a token: 401, and 403 for ``forbidden``."""
    return {
        401: {"model": ErrorBody, "description": "missing or invalid token"},
        403: {"model": ErrorBody, "description": forbidden},
    }


class ApiError(Exception):
    """Raised by endpoints to answer with a given status and stable error code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(code=code, message=message, details=details)
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _code_for_status(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "http_error"


async def _on_api_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    return error_response(error.status, error.code, error.message, error.details, error.headers)


async def on_http_error(request: Request, error: Exception) -> JSONResponse:
    """An HTTP error (404, 405...) in the API's error format."""
    assert isinstance(error, StarletteHTTPException)
    if error.status_code == 400 and error.detail == _UNREADABLE_BODY:
        # FastAPI's answer to a body that is not even text: the same 422 as any invalid body,
        # the one status every operation with a body documents.
        problem = {"location": ["body"], "problem": "the body is not UTF-8 JSON"}
        return error_response(422, "invalid_request", "the request is not valid", [problem])
    message = (
        error.detail if isinstance(error.detail, str) else HTTPStatus(error.status_code).phrase
    )
    headers = dict(error.headers or {})
    if error.status_code == 405:
        # Starlette names the methods of the first route on the path only.
        headers["Allow"] = ", ".join(_methods_of_path(request))
    return error_response(
        error.status_code, _code_for_status(error.status_code), message, headers=headers
    )


def _methods_of_path(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches(request.scope)
            if match is not Match.NONE:
                methods |= route.methods
    return sorted(methods)


async def _on_validation_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = [
        {"location": list(item.get("loc", ())), "problem": item.get("msg", "")}
        for item in error.errors()
    ]
    return error_response(422, "invalid_request", "the request is not valid", problems)


# A backing service that cannot be reached is an outage to retry through, not a server bug.
_OUTAGES = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    asyncpg.PostgresConnectionError,
    ConnectionError,
    TimeoutError,
)


async def _on_outage(request: Request, error: Exception) -> JSONResponse:
    log.warning(
        "%s %s: backing service unavailable (%s)",
        request.method,
        request.url.path,
        type(error).__name__,
    )
    return error_response(
        503,
        "service_unavailable",
        "a backing service is unavailable; retry shortly",
        headers={"Retry-After": "5"},
    )


# Postgres stores no NUL character (in text or JSON): such input is invalid, not a server fault.
_UNSTORABLE_TEXT = (
    asyncpg.exceptions.CharacterNotInRepertoireError,
    asyncpg.exceptions.UntranslatableCharacterError,
)


async def _on_unstorable_text(_: Request, error: Exception) -> JSONResponse:
    return error_response(
        422, "invalid_request", "the request contains characters that cannot be stored (NUL)"
    )


async def _on_unexpected_error(request: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return error_response(500, "internal_error", "an internal error occurred")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    for outage in _OUTAGES:
        app.add_exception_handler(outage, _on_outage)
    for unstorable in _UNSTORABLE_TEXT:
        app.add_exception_handler(unstorable, _on_unstorable_text)
    app.add_exception_handler(Exception, _on_unexpected_error)
