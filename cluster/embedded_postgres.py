"""An embedded Postgres server: the binaries shipped by pgserver, run as our child over TCP.

pgserver's own ``get_server`` serves a unix socket only and stops the server from an atexit hook
of whichever process last held it; the stack needs a TCP port that Ray workers can reach and a
lifetime it controls, so it runs the same binaries directly.
"""

from __future__ import annotations

import os
import pwd
import signal
import stat
import subprocess
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

import asyncpg

with warnings.catch_warnings():
    # pgserver computes a runtime directory at import for its own server mode, which we do not use.
    warnings.simplefilter("ignore")
    from pgserver._commands import POSTGRES_BIN_PATH
    from pgserver.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

from cluster.processes import ManagedProcess, as_system_user, service_env
from cluster.secrets_file import read_or_create_secret
from core.errors import PlatformError

__all__ = ["EmbeddedPostgres", "DATABASE_NAME"]

DATABASE_NAME = "finone"
SUPERUSER = "postgres"
APP_ROLE = "finone"
# The public schema and the tables earlier versions created in it as the superuser (their
# sequences follow them), handed to the platform's role.
_HAND_OVER = f"""
DO $$
DECLARE item record;
BEGIN
  EXECUTE 'ALTER SCHEMA public OWNER TO {APP_ROLE}';
  FOR item IN
    SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tableowner <> '{APP_ROLE}'
  LOOP
    EXECUTE format('ALTER TABLE public.%I OWNER TO {APP_ROLE}', item.tablename);
  END LOOP;
END $$;
"""
# Postgres refuses to run as root; as root the server runs as this system user, as pgserver does.
SYSTEM_USER_WHEN_ROOT = "pgserver"


def _let_traverse(data_dir: Path, gid: int) -> None:
    """Let the server's system user pass through ``data_dir`` and the folders above it, and no
    more: the data directory gets the user's group with search permission only (0710), so it
    cannot list or read the credentials and logs beside its own folder; a folder above that it
    cannot pass (/root is 0700) gets search permission for others, never read."""
    os.chown(data_dir, -1, gid)
    data_dir.chmod(0o710)
    for folder in data_dir.parents:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)


class EmbeddedPostgres:
    """Postgres on loopback with a generated password; its cluster is ``<data_dir>/postgres``."""

    def __init__(self, data_dir: Path, host: str, port: int, env: Mapping[str, str]) -> None:
        self.pgdata = data_dir / "postgres"
        self.host = host
        self.port = port
        self.password = read_or_create_secret(data_dir / "secrets" / "postgres_password")
        self.app_password = read_or_create_secret(data_dir / "secrets" / "postgres_app_password")
        self.system_user = SYSTEM_USER_WHEN_ROOT if os.geteuid() == 0 else None
        self._env = service_env(env)
        self.process = ManagedProcess(
            "postgres",
            [
                str(POSTGRES_BIN_PATH / "postgres"),
                "-D",
                str(self.pgdata),
                "-p",
                str(port),
                "-c",
                f"listen_addresses={host}",
                "-c",
                "unix_socket_directories=",
            ],
            env=self._env,
            log_path=data_dir / "logs" / "postgres.log",
            # SIGINT is Postgres' "fast" shutdown: roll back open transactions, then exit cleanly.
            stop_signal=signal.SIGINT,
            user=self.system_user,
        )

    @property
    def url(self) -> str:
        """The platform's own URL: its role, which owns the database and nothing more."""
        password = quote(self.app_password, safe="")
        return f"postgresql://{APP_ROLE}:{password}@{self.host}:{self.port}/{DATABASE_NAME}"

    def url_for(self, database: str) -> str:
        """The superuser's URL of ``database``, for provisioning only."""
        password = quote(self.password, safe="")
        return f"postgresql://{SUPERUSER}:{password}@{self.host}:{self.port}/{database}"

    async def provision(self, timeout_s: float) -> None:
        """The platform's role and database, the role owning the database, its schema and every
        table in it (a data directory from before the role existed included).

        The platform never connects as the superuser: SQL it is tricked into running cannot
        read server files, run programs (``COPY ... TO PROGRAM``) or touch other databases.
        """
        admin = await asyncpg.connect(self.url_for("postgres"), timeout=timeout_s)
        try:
            password = self.app_password.replace("'", "''")
            if await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", APP_ROLE):
                await admin.execute(f"ALTER ROLE {APP_ROLE} WITH LOGIN PASSWORD '{password}'")
            else:
                await admin.execute(
                    f"CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                    f"PASSWORD '{password}'"
                )
            if await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE_NAME):
                await admin.execute(f'ALTER DATABASE "{DATABASE_NAME}" OWNER TO {APP_ROLE}')
            else:
                await admin.execute(f'CREATE DATABASE "{DATABASE_NAME}" OWNER {APP_ROLE}')
        finally:
            await admin.close()
        database = await asyncpg.connect(self.url_for(DATABASE_NAME), timeout=timeout_s)
        try:
            await database.execute(_HAND_OVER)
        finally:
            await database.close()

    def prepare(self) -> None:
        """Create the database cluster on first use; later starts reuse its data."""
        self.pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
        account: pwd.struct_passwd | None = None
        if self.system_user is not None:
            ensure_user_exists(self.system_user)
            account = pwd.getpwnam(self.system_user)
            os.chown(self.pgdata, account.pw_uid, account.pw_gid)
            # The server's user must be able to reach its data and pgserver's binaries.
            _let_traverse(self.pgdata.parent, account.pw_gid)
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
                    "-D",
                    str(self.pgdata),
                    "-U",
                    SUPERUSER,
                    f"--pwfile={pwfile.name}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                env=self._env,
                capture_output=True,
                text=True,
                check=False,
                **as_system_user(self.system_user),
            )
        finally:
            os.unlink(pwfile.name)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            raise PlatformError(f"initdb failed for {self.pgdata}: {detail[0]}")
