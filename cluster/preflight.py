"""Checks made before anything starts, so a doomed ``finone up`` leaves nothing running."""

from __future__ import annotations

import asyncio
import fcntl
import os
import stat
from pathlib import Path
from typing import IO

from cluster.ports import port_is_free
from cluster.state import read_state
from core.errors import PlatformError
from core.health import Check, check_mlflow, check_postgres, check_redis
from core.settings import Settings
from core.urls import redact_url

__all__ = ["ensure_writable_data_dir", "DataDirLock", "check_ports", "check_external_services"]


def ensure_writable_data_dir(data_dir: Path) -> None:
    probe = data_dir / f".write-probe-{os.getpid()}"
    try:
        # It holds the generated credentials, the databases and the logs: the owner's only.
        # Only ever narrowed: a folder its owner made read-only stays so (and is refused below).
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # The group's search bit stays: as root, Postgres' own user passes through by it.
        data_dir.chmod(stat.S_IMODE(data_dir.stat().st_mode) & 0o710)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise PlatformError(
            f"data directory {data_dir} is not writable ({error.strerror}); fix its permissions "
            "or choose another with FINONE_DATA_DIR"
        ) from None


class DataDirLock:
    """An exclusive lock on the data directory, held for the life of the stack's supervisor."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        handle = (self.data_dir / "finone.lock").open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            state = read_state(self.data_dir)
            holder = f" (pid {state.supervisor_pid})" if state else ""
            raise PlatformError(
                f"finone is already running on {self.data_dir}{holder}; stop it with `finone down` "
                "or use another FINONE_DATA_DIR"
            ) from None
        self._handle = handle

    @property
    def held(self) -> bool:
        return self._handle is not None

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def check_ports(settings: Settings, *, starts_ray_head: bool) -> None:
    """Every port the stack will listen on must be distinct and free."""
    wanted: list[tuple[int, str, str]] = [(settings.api_port, "the API", "FINONE_API_PORT")]
    if settings.redis_url is None:
        wanted.append((settings.redis_port, "embedded Redis", "FINONE_REDIS_PORT"))
    if settings.database_url is None:
        wanted.append((settings.postgres_port, "embedded Postgres", "FINONE_POSTGRES_PORT"))
    if settings.mlflow_tracking_uri is None:
        wanted.append((settings.mlflow_port, "the MLflow server", "FINONE_MLFLOW_PORT"))
    if starts_ray_head:
        wanted += [
            (settings.ray_port, "the Ray head", "FINONE_RAY_PORT"),
            (settings.dashboard_port, "the Ray dashboard", "FINONE_DASHBOARD_PORT"),
            (settings.metrics_port, "Prometheus metrics", "FINONE_METRICS_PORT"),
        ]
    seen: dict[int, str] = {}
    for port, what, variable in wanted:
        if port in seen:
            raise PlatformError(
                f"port {port} is configured for both {seen[port]} and {what}; set {variable} "
                "to another port"
            )
        seen[port] = what
        if not port_is_free(settings.host, port):
            raise PlatformError(
                f"port {port} for {what} is already in use on {settings.host}; stop what holds "
                f"it or set {variable} to a free port"
            )


def check_external_services(settings: Settings) -> None:
    """Services given by URL must answer now; the embedded ones are started later instead."""
    timeout = max(settings.health_timeout_s, 5.0)
    probes: list[tuple[str, str, str]] = []
    if settings.redis_url is not None:
        probes.append(("REDIS_URL", settings.redis_url, "Redis"))
    if settings.database_url is not None:
        probes.append(("DATABASE_URL", settings.database_url, "Postgres"))
    if settings.mlflow_tracking_uri is not None:
        probes.append(("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri, "MLflow"))
    if not probes:
        return
    checkers = {"Redis": check_redis, "Postgres": check_postgres, "MLflow": check_mlflow}

    async def run_all() -> list[Check]:
        return list(
            await asyncio.gather(*(checkers[kind](url, timeout) for _, url, kind in probes))
        )

    for (variable, url, kind), check in zip(probes, asyncio.run(run_all()), strict=True):
        if not check.ok:
            raise PlatformError(
                f"cannot reach {variable} {redact_url(url)} ({check.detail}); start {kind} there "
                f"or unset {variable} to use the embedded one"
            )
