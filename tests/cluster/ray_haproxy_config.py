"""The HAProxy config Ray Serve's own template renders, as finone-haproxy receives it."""

from __future__ import annotations

from pathlib import Path

from ray.serve._private.haproxy import HAProxyApi, HAProxyConfig
from ray.serve.config import HTTPOptions

__all__ = ["ray_config"]


def ray_config(
    directory: Path,
    host: str = "0.0.0.0",
    port: int = 8000,
    stats_port: int = 8404,
    metrics_port: int = 9101,
) -> str:
    """The config Ray writes for an API on ``host:port`` with no application deployed yet."""
    api = HAProxyApi(
        cfg=HAProxyConfig(
            http_options=HTTPOptions(host=host, port=port),
            socket_path=str(directory / "admin.sock"),
            server_state_base=str(directory),
            server_state_file=str(directory / "server-state"),
            metrics_socket_path=str(directory / "metrics.sock"),
            stats_port=stats_port,
            metrics_port=metrics_port,
        ),
        config_file_path=str(directory / "haproxy.cfg"),
    )
    api._generate_config_file_internal()
    return (directory / "haproxy.cfg").read_text()
