"""Where a one-off command finds the platform: the URL settings, else the running stack's."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from cluster.embedded_mlflow import SERVICE_USERNAME, service_password_path
from cluster.ray_head import ray_auth_env
from cluster.state import StackState, read_state
from core.errors import PlatformError
from core.model_signing import signing_key_env
from core.named_actors import RAY_NAMESPACE
from core.settings import Settings

__all__ = [
    "redis_url_for",
    "database_url_for",
    "mlflow_url_for",
    "mlflow_client_env_for",
    "training_env",
    "ray_session",
    "ray_connection",
]


def _configured_or_running(
    settings: Settings,
    configured: str | None,
    variable: str,
    from_state: Callable[[StackState], str],
) -> str:
    """The URL the settings give, else the running stack's; says how to get one otherwise."""
    if configured:
        return configured
    state = read_state(settings.data_path)
    if state is None:
        raise PlatformError(
            f"the platform is not running on {settings.data_path} and {variable} is not set; "
            f"start it with `finone up` or set {variable}"
        )
    return from_state(state)


def redis_url_for(settings: Settings) -> str:
    return _configured_or_running(settings, settings.redis_url, "REDIS_URL", lambda s: s.redis_url)


def database_url_for(settings: Settings) -> str:
    return _configured_or_running(
        settings, settings.database_url, "DATABASE_URL", lambda s: s.database_url
    )


def mlflow_url_for(settings: Settings) -> str:
    return _configured_or_running(
        settings, settings.mlflow_tracking_uri, "MLFLOW_TRACKING_URI", lambda s: s.mlflow_url
    )


def mlflow_client_env_for(settings: Settings) -> dict[str, str]:
    """The MLflow service account a one-off command signs in with: the configured one, else
    the local stack's (kept in its data directory); empty for a server without auth."""
    if configured := settings.mlflow_client_env:
        return configured
    password = service_password_path(settings.data_path)
    if not password.exists():
        return {}
    return {
        "MLFLOW_TRACKING_USERNAME": SERVICE_USERNAME,
        "MLFLOW_TRACKING_PASSWORD": password.read_text().strip(),
    }


def training_env(settings: Settings) -> dict[str, str]:
    """What a training process and its Ray workers need in their environment: the MLflow
    service account, and the key that signs what they register."""
    secret = settings.secret_key.get_secret_value()
    return mlflow_client_env_for(settings) | signing_key_env(secret)


@contextmanager
def ray_session(
    address: str, token_path: str | None = None, worker_env: Mapping[str, str] | None = None
) -> Iterator[None]:
    """Connected, as a driver in the platform's namespace, to the Ray cluster at ``address``
    (``"local"`` starts one for this process alone), with the token kept at ``token_path``;
    ``worker_env`` is set in every task and actor the session starts (Tune trials too)."""
    if token_path:
        os.environ.update(ray_auth_env(Path(token_path)))
    import ray  # after the token is in the environment: Ray reads it when first imported

    ray.init(
        address=address,
        namespace=RAY_NAMESPACE,
        log_to_driver=False,
        logging_level=logging.ERROR,
        runtime_env={"env_vars": dict(worker_env)} if worker_env else None,
    )
    try:
        yield
    finally:
        ray.shutdown()


def ray_connection(
    settings: Settings, worker_env: Mapping[str, str]
) -> contextlib.AbstractContextManager[None]:
    """Ray for a one-off command: the cluster FINONE_RAY_ADDRESS names, else the running
    platform's (with its token), else a local one started for the command alone."""
    if settings.ray_address:
        return ray_session(settings.ray_address, worker_env=worker_env)
    state = read_state(settings.data_path)
    if state is not None:
        return ray_session(state.ray_address, state.ray_token_path, worker_env)
    return ray_session("local", worker_env=worker_env)
