"""The running stack's description in ``<data_dir>/stack.json``: how status and down find it."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from cluster.processes import ChildRecord

__all__ = ["StackState", "state_path", "read_state", "write_state", "remove_state"]


class StackState(msgspec.Struct, frozen=True):
    """Where every part of a running stack can be reached.

    Holds credentials (the URLs carry passwords), so the file is readable by its owner only.
    """

    stack_id: str
    supervisor_pid: int
    started_at_ns: int
    data_dir: str
    namespace: str
    ray_address: str
    ray_token_path: str | None
    dashboard_url: str | None
    metrics_url: str | None
    redis_url: str
    database_url: str
    mlflow_url: str
    api_url: str
    children: list[ChildRecord] = []


def state_path(data_dir: Path) -> Path:
    return data_dir / "stack.json"


def read_state(data_dir: Path) -> StackState | None:
    try:
        raw = state_path(data_dir).read_bytes()
    except FileNotFoundError:
        return None
    return msgspec.json.decode(raw, type=StackState)


def write_state(data_dir: Path, state: StackState) -> None:
    path = state_path(data_dir)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(msgspec.json.format(msgspec.json.encode(state)))
    tmp.replace(path)


def remove_state(data_dir: Path) -> None:
    state_path(data_dir).unlink(missing_ok=True)
