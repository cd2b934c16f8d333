"""The MLflow tracking server: SQLite backend store and local artifacts under the data directory,
behind MLflow's own basic-auth app.

Three kinds of login: ``admin`` for people (every right, its password generated and printed by
``finone mlflow-password``), the platform's service account for training and inference (created
by the launcher as an ordinary user: it manages the experiments and models it creates), and any
other user an admin adds, who can read everything and change nothing they were not granted.
Anonymous requests are refused, except the health probe.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import httpx

from cluster.processes import STACK_MARKER_ENV, ManagedProcess
from cluster.secrets_file import read_or_create_secret, write_secret
from core.errors import PlatformError

__all__ = [
    "ADMIN_USERNAME",
    "SERVICE_USERNAME",
    "EmbeddedMlflow",
    "admin_password_path",
    "service_password_path",
]

ADMIN_USERNAME = "admin"
SERVICE_USERNAME = "finone-service"
# What the server needs of the launcher's environment; the platform's secret, the admin
# password and the database URLs stay out of it.
_INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", STACK_MARKER_ENV)


def service_password_path(data_dir: Path) -> Path:
    """Where the local stack keeps its MLflow service account's password."""
    return data_dir / "secrets" / "mlflow_service_password"


def admin_password_path(data_dir: Path) -> Path:
    """Where the local stack keeps the password of MLflow's ``admin``."""
    return data_dir / "secrets" / "mlflow_admin_password"


class EmbeddedMlflow:
    """A real ``mlflow server`` process; clients log artifacts through it (--serve-artifacts)."""

    def __init__(self, data_dir: Path, host: str, port: int, env: Mapping[str, str]) -> None:
        self.dir = data_dir / "mlflow"
        self.host = host
        self.port = port
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.admin_password = read_or_create_secret(admin_password_path(data_dir))
        self.service_password = read_or_create_secret(service_password_path(data_dir))
        config_path = self._write_auth_config()
        flask_secret = read_or_create_secret(data_dir / "secrets" / "mlflow_flask_secret")
        self.process = ManagedProcess(
            "mlflow",
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--app-name",
                "basic-auth",
                "--backend-store-uri",
                f"sqlite:///{self.dir / 'mlflow.db'}",
                "--artifacts-destination",
                str(self.dir / "artifacts"),
                "--serve-artifacts",
                "--host",
                host,
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env={
                **{name: env[name] for name in _INHERITED_ENV if name in env},
                "MLFLOW_AUTH_CONFIG_PATH": str(config_path),
                # The auth app's CSRF protection needs a key that survives restarts.
                "MLFLOW_FLASK_SERVER_SECRET_KEY": flask_secret,
                # Server-side jobs (GenAI judges, trace archival) would start five worker
                # processes, about 1 GB, for features the platform does not use.
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            },
            log_path=data_dir / "logs" / "mlflow.log",
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _write_auth_config(self) -> Path:
        config = self.dir / "basic_auth.ini"
        # Owner-only from creation: it holds the admin's bootstrap password. MLflow creates the
        # admin from it when the user store is new and ignores it afterwards.
        lines = [
            "[mlflow]",
            "default_permission = READ",
            f"database_uri = sqlite:///{self.dir / 'basic_auth.db'}",
            f"admin_username = {ADMIN_USERNAME}",
            f"admin_password = {self.admin_password}",
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth",
        ]
        write_secret(config, "\n".join(lines) + "\n")
        return config

    async def ready(self, timeout_s: float) -> bool:
        """Whether the server answers, its service account set up with the stored password.

        Raises PlatformError when the server refuses the stored admin password (an auth store
        kept from a data directory whose secrets were replaced)."""
        admin = httpx.BasicAuth(ADMIN_USERNAME, self.admin_password)
        account = {"username": SERVICE_USERNAME, "password": self.service_password}
        try:
            async with httpx.AsyncClient(base_url=self.url, auth=admin, timeout=timeout_s) as http:
                if (await http.get("/health")).status_code != 200:
                    return False
                created = await http.post("/api/2.0/mlflow/users/create", json=account)
                if created.status_code == 400 and "RESOURCE_ALREADY_EXISTS" in created.text:
                    # Set again each start: the stored password is the one that holds.
                    created = await http.patch(
                        "/api/2.0/mlflow/users/update-password", json=account
                    )
        except httpx.HTTPError:
            return False
        if created.status_code == 401:
            raise PlatformError(
                f"MLflow refuses the admin password kept in {self.dir.parent / 'secrets'}; its "
                f"user store {self.dir / 'basic_auth.db'} comes from other secrets"
            )
        return created.status_code == 200
