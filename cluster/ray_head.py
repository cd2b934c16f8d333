"""The local Ray head node, started with ``ray start --head --block`` and token authentication."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from cluster.ports import free_port
from cluster.processes import ManagedProcess
from cluster.secrets_file import read_or_create_secret, write_secret

__all__ = ["RayHead", "ray_auth_env", "token_path"]

WILDCARD_HOSTS = frozenset({"0.0.0.0", "::"})


def token_path(data_dir: Path) -> Path:
    """Where the local stack keeps the token of its Ray cluster (generated on first start)."""
    return data_dir / "secrets" / "ray_auth_token"


def ray_auth_env(token_path: Path) -> dict[str, str]:
    """What a process needs in its environment to talk to a token-protected Ray cluster."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path)}


class RayHead:
    """A single-node Ray cluster whose dashboard and metrics listen on the configured ports."""

    def __init__(
        self,
        data_dir: Path,
        host: str,
        port: int,
        dashboard_port: int,
        metrics_port: int,
        num_cpus: int | None,
        env: Mapping[str, str],
    ) -> None:
        self.host = host
        self.port = port
        self.dashboard_port = dashboard_port
        self.token_path = token_path(data_dir)
        if shared_token := env.get("RAY_AUTH_TOKEN"):
            # Ray prefers this variable over any file; on a multi-node deployment every node
            # gets it, so the file `finone dashboard-token` reads must hold the same token.
            write_secret(self.token_path, shared_token)
        else:
            read_or_create_secret(self.token_path)
        ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
        argv = [
            ray_cli,
            "start",
            "--head",
            "--block",
            "--port",
            str(port),
            "--include-dashboard",
            "true",
            "--dashboard-host",
            host,
            "--dashboard-port",
            str(dashboard_port),
            "--metrics-export-port",
            str(metrics_port),
            "--disable-usage-stats",
            # Internal listeners get fresh ports so two stacks (or a test cluster) can share a host.
            "--node-manager-port",
            str(free_port()),
            "--object-manager-port",
            str(free_port()),
            "--dashboard-agent-listen-port",
            str(free_port()),
            "--dashboard-agent-grpc-port",
            str(free_port()),
            "--runtime-env-agent-port",
            str(free_port()),
            "--ray-client-server-port",
            str(free_port()),
            "--min-worker-port",
            "0",
            "--max-worker-port",
            "0",
        ]
        if host not in WILDCARD_HOSTS:
            # Keep a laptop stack on loopback; bound to every interface, Ray picks the node IP.
            argv += ["--node-ip-address", host]
        if num_cpus is not None:
            argv += ["--num-cpus", str(num_cpus)]
        head_env = {
            **env,
            **ray_auth_env(self.token_path),
            # One node: there is nowhere to drain to, and Serve is shut down before the head.
            "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
            "RAY_USAGE_STATS_ENABLED": "0",
        }
        self.process = ManagedProcess(
            "ray", argv, env=head_env, log_path=data_dir / "logs" / "ray-head.log"
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://{self.host}:{self.dashboard_port}"
