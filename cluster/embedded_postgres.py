"""An embedded Postgres server: the binaries shipped by pgserver, run as our child over TCP.

pgserver's own ``get_server`` serves a unix socket only and stops the server from an atexit hook
of whichever process last held it; the stack needs a TCP port that Ray workers can reach and a
lifetime it controls, so it runs the same binaries directly.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

with warnings.catch_warnings():
    # pgserver computes a runtime directory at import for its own server mode, which we do not use.
    warnings.simplefilter("ignore")
    from pgserver._commands import POSTGRES_BIN_PATH
    from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

from cluster.errors import PlatformError
from cluster.processes import ManagedProcess
from cluster.secrets_file import read_or_create_secret

__all__ = ["EmbeddedPostgres", "DATABASE_NAME"]

DATABASE_NAME = "finone"
SUPERUSER = "postgres"
# Postgres refuses to run as root; as root the server runs as this system user, as pgserver does.
SYSTEM_USER_WHEN_ROOT = "pgserver"


class EmbeddedPostgres:
    """Postgres on loopback with a generated password; the cluster lives in ``<data_dir>/postgres``."""

    def __init__(self, data_dir: Path, host: str, port: int, env: Mapping[str, str]) -> None:
        self.pgdata = data_dir / "postgres"
        self.host = host
        self.port = port
        self.password = read_or_create_secret(data_dir / "secrets" / "postgres_password")
        self.system_user = SYSTEM_USER_WHEN_ROOT if os.geteuid() == 0 else None
        self._env = dict(env)
        self.process = ManagedProcess(
            "postgres",
            [
                str(POSTGRES_BIN_PATH / "postgres"),
                "-D", str(self.pgdata),
                "-p", str(port),
                "-c", f"listen_addresses={host}",
                "-c", "unix_socket_directories=",
            ],
            env=env,
            log_path=data_dir / "logs" / "postgres.log",
            # SIGINT is Postgres' "fast" shutdown: roll back open transactions, then exit cleanly.
            stop_signal=signal.SIGINT,
            user=self.system_user,
        )

    @property
    def url(self) -> str:
        return self.url_for(DATABASE_NAME)

    def url_for(self, database: str) -> str:
        password = quote(self.password, safe="")
        return f"postgresql://{SUPERUSER}:{password}@{self.host}:{self.port}/{database}"

    def prepare(self) -> None:
        """Create the database cluster on first use; later starts reuse its data."""
        self.pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
        account: pwd.struct_passwd | None = None
        if self.system_user is not None:
            ensure_user_exists(self.system_user)
            account = pwd.getpwnam(self.system_user)
            os.chown(self.pgdata, account.pw_uid, account.pw_gid)
            # The server's user must be able to reach its data and pgserver's binaries.
            ensure_prefix_permissions(self.pgdata)
            ensure_prefix_permissions(POSTGRES_BIN_PATH)
            ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", 0o044)
        if (self.pgdata / "PG_VERSION").exists():
            return
        with tempfile.NamedTemporaryFile("w", prefix="finone-pw-", delete=False) as pwfile:
            pwfile.write(self.password)
        try:
            if account is not None:
                os.chown(pwfile.name, account.pw_uid, account.pw_gid)
            result = subprocess.run(
                [
                    str(POSTGRES_BIN_PATH / "initdb"),
                    "-D", str(self.pgdata),
                    "-U", SUPERUSER,
                    f"--pwfile={pwfile.name}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                env=self._env,
                capture_output=True,
                text=True,
                user=self.system_user,
                check=False,
            )
        finally:
            os.unlink(pwfile.name)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            raise PlatformError(f"initdb failed for {self.pgdata}: {detail[0]}")
