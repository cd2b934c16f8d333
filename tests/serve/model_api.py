"""Asking the gateway for what inference makes, for the serve tests: forecasts
(``/v1/predictions``) and insights (``/v1/insights``) share their parameters and errors."""

from __future__ import annotations

from typing import Literal

import httpx

from core.intervals import Interval
from tests.serve.auth_api import Session

__all__ = ["MODEL_PATHS", "ModelPath", "ask"]

ModelPath = Literal["predictions", "insights"]
MODEL_PATHS: tuple[ModelPath, ...] = ("predictions", "insights")


async def ask(
    http: httpx.AsyncClient,
    url: str,
    session: Session,
    path: ModelPath,
    instrument: str,
    interval: Interval | None = None,
) -> httpx.Response:
    """``GET /v1/<path>`` of ``instrument``, at ``interval`` (the API's default, daily, when
    None)."""
    params = {"instrument": instrument} | ({} if interval is None else {"interval": interval})
    return await http.get(f"{url}/v1/{path}", params=params, headers=session.headers)
