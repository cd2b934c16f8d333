"""The actor tests flush Redis between tests: they get a logical database of their own, so the
auth state and streams the gateway's tests keep in the session's Redis never vanish under them,
whatever order the tests run in."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest


@pytest.fixture(scope="session")
def redis_url(redis_url: str) -> str:
    parts = urlsplit(redis_url)
    return urlunsplit(parts._replace(path="/1"))
