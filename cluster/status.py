"""``finone status``: the health of every part of a running stack, found through its state file."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

from cluster.components import registered_components
from cluster.service_urls import ray_session
from cluster.state import StackState, read_state
from core.errors import PlatformError
from core.health import Check, check_services
from core.settings import Settings

__all__ = ["collect_status", "supervisor_is_running"]


def supervisor_is_running(pid: int) -> bool:
    """Whether ``pid`` is alive and still a ``finone up`` process (pids get reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"up" in cmdline and any(b"finone" in part or b"cluster" in part for part in cmdline)


def collect_status(settings: Settings) -> list[Check]:
    state = read_state(settings.data_path)
    if state is None:
        raise PlatformError(
            f"the platform is not running on {settings.data_path}; start it with `finone up`"
        )
    checks = [
        Check(
            name="supervisor",
            ok=supervisor_is_running(state.supervisor_pid),
            detail=f"finone up, pid {state.supervisor_pid}",
        )
    ]
    checks += asyncio.run(
        check_services(
            state.redis_url, state.database_url, state.mlflow_url, settings.health_timeout_s
        )
    )
    checks += _ray_checks(state, settings)
    return checks


def _gcs_reachable(address: str, timeout_s: float) -> bool:
    host, _, port = address.rpartition(":")
    with contextlib.suppress(OSError), socket.create_connection((host, int(port)), timeout_s):
        return True
    return False


def _ray_checks(state: StackState, settings: Settings) -> list[Check]:
    if not _gcs_reachable(state.ray_address, settings.health_timeout_s):
        return [Check(name="ray", ok=False, detail=f"GCS at {state.ray_address} is not reachable")]
    with ray_session(state.ray_address, state.ray_token_path):
        import ray  # after the session set up Ray's token: Ray reads it when first imported

        # Ray leaves ray.nodes unannotated.
        nodes: list[dict[str, object]] = ray.nodes()  # type: ignore[no-untyped-call]
        alive = [node for node in nodes if node["Alive"]]
        checks = [
            Check(
                name="ray",
                ok=bool(alive),
                detail=f"{len(alive)} node(s) alive, GCS at {state.ray_address}",
            )
        ]
        resolved = settings.model_copy(
            update={
                "redis_url": state.redis_url,
                "database_url": state.database_url,
                "mlflow_tracking_uri": state.mlflow_url,
                "ray_address": state.ray_address,
            }
        )
        for component in registered_components():
            try:
                checks += component.health(resolved)
            except Exception as error:  # a broken component is a status line, not a crash
                checks.append(
                    Check(name=component.name, ok=False, detail=f"health check failed: {error}")
                )
        return checks
