"""The MLflow tracking server: SQLite backend store and local artifacts under the data directory."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from cluster.processes import ManagedProcess

__all__ = ["EmbeddedMlflow"]


class EmbeddedMlflow:
    """A real ``mlflow server`` process; clients log artifacts through it (``--serve-artifacts``)."""

    def __init__(self, data_dir: Path, host: str, port: int, env: Mapping[str, str]) -> None:
        self.dir = data_dir / "mlflow"
        self.host = host
        self.port = port
        self.dir.mkdir(parents=True, exist_ok=True)
        self.process = ManagedProcess(
            "mlflow",
            [
                sys.executable, "-m", "mlflow", "server",
                "--backend-store-uri", f"sqlite:///{self.dir / 'mlflow.db'}",
                "--artifacts-destination", str(self.dir / "artifacts"),
                "--serve-artifacts",
                "--host", host,
                "--port", str(port),
                "--workers", "1",
            ],
            # Server-side jobs (GenAI judges, trace archival) would start five worker processes,
            # about 1 GB, for features the platform does not use.
            env={**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            log_path=data_dir / "logs" / "mlflow.log",
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
