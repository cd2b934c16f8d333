"""Where a one-off command finds the platform's services: the URL settings, else the running stack."""

from __future__ import annotations

from cluster.errors import PlatformError
from cluster.settings import Settings
from cluster.state import read_state

__all__ = ["redis_url_for", "database_url_for"]


def _not_running(settings: Settings, variable: str) -> PlatformError:
    return PlatformError(
        f"the platform is not running on {settings.data_path} and {variable} is not set; "
        f"start it with `finone up` or set {variable}"
    )


def redis_url_for(settings: Settings) -> str:
    if settings.redis_url:
        return settings.redis_url
    state = read_state(settings.data_path)
    if state is None:
        raise _not_running(settings, "REDIS_URL")
    return state.redis_url


def database_url_for(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    state = read_state(settings.data_path)
    if state is None:
        raise _not_running(settings, "DATABASE_URL")
    return state.database_url
