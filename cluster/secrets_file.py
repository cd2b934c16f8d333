"""Generated credentials kept in the data directory, readable by the owner only."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["read_or_create_secret", "write_secret"]


def read_or_create_secret(path: Path, nbytes: int = 32) -> str:
    """The secret stored at ``path``; a fresh random one is written there the first time."""
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_hex(nbytes)
    write_secret(path, value)
    return value


def write_secret(path: Path, value: str) -> None:
    """Store ``value`` at ``path`` with owner-only permissions, replacing what was there."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
