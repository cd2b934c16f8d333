"""Running the `finone` command as a user does: its own process, with the services named in its
environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["FINONE", "finone_env", "run_finone"]

FINONE = str(Path(sys.executable).parent / "finone")


def finone_env(data_dir: Path, **urls: str) -> dict[str, str]:
    """This process's environment with a data directory and service URLs
    (``DATABASE_URL=...``, ``MLFLOW_TRACKING_URI=...``)."""
    return {**os.environ, "FINONE_DATA_DIR": str(data_dir), **urls}


def run_finone(
    *args: str, env: dict[str, str], timeout: float, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FINONE, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
